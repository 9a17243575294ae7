//! `cargo ops schema-diff` as CI and people call it.

use std::path::PathBuf;
use std::process::Command;

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("schema-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn schema_diff(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-ops"))
        .arg("schema-diff")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn json_format_prints_exactly_one_object_with_the_verdict() {
    let old = write(
        "old.json",
        r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
    );
    let new = write(
        "new.json",
        r#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}"#,
    );
    let (code, stdout, stderr) = schema_diff(&[
        old.as_os_str(),
        new.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["backward_compatible"], false);
    assert_eq!(report["forward_compatible"], false);
    let change = &report["changes"][0];
    assert_eq!(change["old_pointer"], "/properties/a");
    for key in ["rule", "new_pointer", "backward", "forward", "message"] {
        assert!(change.get(key).is_some(), "{key} missing in {change}");
    }
}

#[test]
fn invalid_input_exits_2_naming_the_file_and_pointer() {
    let good = write("good.json", r#"{"type":"string"}"#);
    let bad_ref = write(
        "bad-ref.json",
        r##"{"properties":{"a":{"$ref":"#/$defs/Missing"}}}"##,
    );
    let (code, _, stderr) = schema_diff(&[good.as_os_str(), bad_ref.as_os_str()]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("bad-ref.json") && stderr.contains("/properties/a/$ref"),
        "{stderr}"
    );

    let truncated = write("truncated.json", r#"{"type": "str"#);
    let (code, _, stderr) = schema_diff(&[truncated.as_os_str(), good.as_os_str()]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("truncated.json: not JSON at line 1"),
        "{stderr}"
    );

    let (code, _, stderr) = schema_diff(&["/nonexistent.json".as_ref(), good.as_os_str()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent.json"), "{stderr}");
}
