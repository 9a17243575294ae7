//! Runs `deps-check` on a fixture workspace that breaks each rule once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn run_on(manifest: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["deps-check", "--manifest-path"])
        .arg(manifest)
        .output()
        .expect("xtask runs");
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
        ("section-9/denied-crate", "pack-e", "tokio"),
    ]
    .into_iter()
    .map(|(rule, from, to)| (rule.to_owned(), from.to_owned(), to.to_owned()))
    .collect();
    assert_eq!(findings(&report), expected, "{report}");
    assert!(
        report.contains("path: pack-c -> wrapper -> reqwest"),
        "{report}"
    );
    assert!(
        report.contains("fix: depend on `ops-contract-b`"),
        "{report}"
    );
}

#[test]
fn a_denied_crate_without_its_denied_features_is_allowed() {
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
