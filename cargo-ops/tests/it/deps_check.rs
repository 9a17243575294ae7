//! Runs `deps-check` on a fixture workspace that breaks each rule once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn run_on(manifest: &Path) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-ops"));
    command
        .args(["deps-check", "--manifest-path"])
        .arg(manifest);
    // A fixture workspace brings its own allow-list.
    let allow_list = manifest.with_file_name("allow-list.toml");
    if allow_list.is_file() {
        command.arg("--allow-list").arg(allow_list);
    }
    let output = command.output().expect("cargo-ops runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// `(rule, from, to)` of every reported violation.
fn findings(report: &str) -> BTreeSet<(String, String, String)> {
    report
        .lines()
        .filter_map(|line| line.strip_prefix("error["))
        .map(|rest| {
            let (rule, rest) = rest.split_once("]: `").expect("rule then crates");
            let (from, rest) = rest.split_once("` -> `").expect("from crate");
            let (to, _) = rest.split_once('`').expect("to crate");
            (rule.to_owned(), from.to_owned(), to.to_owned())
        })
        .collect()
}

#[test]
fn every_broken_rule_in_the_fixture_is_reported() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-workspace/Cargo.toml");
    let (code, report) = run_on(&fixture);
    assert_eq!(code, Some(1), "{report}");
    let expected: BTreeSet<(String, String, String)> = [
        ("crate-role", "utilities", "utilities"),
        (
            "section-7/core-depends-on-nothing",
            "ops-core",
            "ops-shared-x",
        ),
        (
            "section-7/shared-only-core",
            "ops-shared-x",
            "ops-contract-a",
        ),
        ("section-7/contract-to-pack", "ops-contract-a", "pack-b"),
        ("section-7/pack-to-pack", "pack-a", "pack-b"),
        ("section-7/only-host-links-packs", "ops-registry", "pack-b"),
        ("section-9/denied-crate", "pack-a", "sqlx"),
        ("section-9/denied-crate", "pack-c", "reqwest"),
        ("section-9/not-allowed", "pack-c", "wrapper"),
        ("section-9/denied-crate", "pack-e", "tokio"),
        // An I/O crate through a crate outside the workspace.
        ("section-9/not-allowed", "pack-f", "io-helper"),
        ("section-9/denied-crate", "pack-f", "mio"),
        // Another pack outside the workspace, directly and through a relay crate.
        ("section-7/pack-to-pack", "pack-g", "pack-y"),
        ("section-9/not-allowed", "pack-g", "relay"),
        ("section-7/pack-to-pack", "pack-g", "pack-z"),
        // Source: the standard library's network, without `no_std` and `forbid(unsafe_code)`.
        ("sandbox/no-std", "pack-h", "crate root"),
        ("sandbox/forbid-unsafe", "pack-h", "crate root"),
        ("sandbox/network", "pack-h", "std::net::TcpStream::connect"),
        // Borrowed identity: a build script that sets `CARGO_PKG_NAME`, a library renamed.
        ("sandbox/build-script", "ops-contract-evil", "build.rs"),
        ("sandbox/crate-name", "ops-contract-evil", "ops_contract_a"),
        // A pure crate with the one feature that reads the clock.
        (
            "section-9/feature-not-allowed",
            "ops-contract-evil",
            "clocky",
        ),
    ]
    .into_iter()
    .map(|(rule, from, to)| (rule.to_owned(), from.to_owned(), to.to_owned()))
    .collect();
    assert_eq!(findings(&report), expected, "{report}");
    for path in [
        "path: pack-c -> wrapper -> reqwest",
        "path: pack-f -> io-helper -> mio",
        "path: pack-g -> relay -> pack-z",
    ] {
        assert!(report.contains(path), "{report}");
    }
    assert!(
        report.contains("(at src/lib.rs:3:13)")
            && report
                .contains("fix: ask for the effect with a `WRITE_EXTERNAL_SIDE_EFFECT` command"),
        "{report}"
    );
    assert!(
        report.contains("fix: depend on `ops-contract-b`"),
        "{report}"
    );
}

/// The host turns `clock` on for itself; the pack, built alone, has only `serde`.
#[test]
fn features_are_judged_per_crate_not_by_the_unified_set() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good-workspace/Cargo.toml");
    let (code, report) = run_on(&fixture);
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn this_workspace_is_clean() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let (code, report) = run_on(&workspace);
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn an_unreadable_manifest_is_a_usage_error() {
    let (code, report) = run_on(Path::new("/nonexistent/Cargo.toml"));
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("/nonexistent/Cargo.toml"), "{report}");
}
