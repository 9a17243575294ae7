//! Runs `deps-check` on a fixture workspace that breaks each rule once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn run_on(manifest: &Path) -> (Option<i32>, String) {
    run_with(manifest, &[])
}

fn run_with(manifest: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-ops"));
    command
        .args(["deps-check", "--manifest-path"])
        .arg(manifest)
        .args(args);
    // Unless told otherwise, a fixture workspace brings its own allow-list and stands for the
    // framework whose ops crates it holds; its crates build where copies of workspaces build.
    let allow_list = manifest.with_file_name("allow-list.toml");
    if allow_list.is_file() && args.is_empty() {
        command.arg("--allow-list").arg(allow_list);
        command
            .arg("--framework")
            .arg(manifest.parent().expect("a fixture folder"));
    }
    command.env("CARGO_TARGET_DIR", crate::support::copies_target());
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
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.fixtures/bad-workspace/Cargo.toml");
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
        // Its manifest does not forbid `unsafe_code` on rustc's command line.
        ("sandbox/unsafe-lint", "pack-h", "Cargo.toml"),
        // An older edition than the workspace's.
        ("sandbox/edition", "ops-contract-evil", "edition 2021"),
        // An allow-listed name from a path, and pack crates from outside the workspace.
        ("supply-chain/not-from-crates-io", "clocky", "path"),
        ("supply-chain/ops-crate-source", "pack-y", "path"),
        ("supply-chain/ops-crate-source", "pack-z", "path"),
        // A file outside the crate and an environment variable, in the source and in
        // rustc's own record of the build.
        ("sandbox/build-files", "pack-i", "include_str!"),
        ("sandbox/build-environment", "pack-i", "option_env!"),
        ("sandbox/compiled-environment", "pack-i", "PATH"),
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
    .chain([(
        "sandbox/compiled-file".to_owned(),
        "pack-i".to_owned(),
        fixtures()
            .join("outside/secret.txt")
            .canonicalize()
            .unwrap()
            .display()
            .to_string(),
    )])
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
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.fixtures/good-workspace/Cargo.toml");
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

/// The fixture workspaces, in a hidden folder: their crates are named `ops-core` and
/// `ops-host` on purpose, and cargo looks for a git dependency's packages everywhere in the
/// repository but hidden folders, so a team getting the framework from git finds the
/// framework's crates, never a fixture's.
fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.fixtures")
}

/// Trusted names from other sources: an allow-listed crate from a path and one through
/// `[patch.crates-io]`, a member named `ops-core` that is not the framework's, and a second
/// package named like the workspace's contract crate.
#[test]
fn dependencies_are_judged_by_source_not_by_name() {
    let framework = fixtures().join("good-workspace");
    let (code, report) = run_with(
        &fixtures().join("supply-workspace/Cargo.toml"),
        &["--framework".as_ref(), framework.as_os_str()],
    );
    assert_eq!(code, Some(1), "{report}");
    let expected: BTreeSet<(String, String, String)> = [
        ("supply-chain/not-from-crates-io", "itoa", "path"),
        ("supply-chain/not-from-crates-io", "memchr", "path"),
        ("supply-chain/ops-crate-source", "ops-core", "path"),
        ("supply-chain/ops-crate-source", "ops-contract-s", "path"),
        (
            "supply-chain/duplicate-package",
            "ops-contract-s",
            "ops-contract-s",
        ),
    ]
    .into_iter()
    .map(|(rule, from, to)| (rule.to_owned(), from.to_owned(), to.to_owned()))
    .collect();
    assert_eq!(findings(&report), expected, "{report}");
    assert!(
        report.contains("supply-workspace/ops-contract-s and ")
            && report.contains("supply-workspace/elsewhere/ops-contract-s"),
        "both places are named: {report}"
    );
}

/// An allow-listed name from a git repository is refused like one from a path.
#[test]
fn an_allow_listed_name_from_git_is_refused() {
    let dir = std::env::temp_dir().join(format!("ops-deps-git-{}", std::process::id()));
    let repo = dir.join("ryu");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"ryu\"\nversion = \"1.0.20\"\nedition = \"2024\"\n",
    )
    .unwrap();
    std::fs::write(repo.join("src/lib.rs"), "#![no_std]\n").unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "a crate named like an allow-listed one"]);
    let workspace = dir.join("ws");
    for (file, text) in [
        (
            "Cargo.toml",
            "[workspace]\nresolver = \"3\"\nmembers = [\"pack-t\"]\n".to_owned(),
        ),
        (
            "pack-t/Cargo.toml",
            format!(
                "[package]\nname = \"pack-t\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nryu = {{ git = \"file://{}\" }}\n\n[lints.rust]\nunsafe_code = \"forbid\"\n",
                repo.display()
            ),
        ),
        (
            "pack-t/src/lib.rs",
            "#![no_std]\n#![forbid(unsafe_code)]\n".to_owned(),
        ),
    ] {
        let path = workspace.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let (code, report) = run_on(&workspace.join("Cargo.toml"));
    assert_eq!(code, Some(1), "{report}");
    assert!(
        findings(&report)
            .iter()
            .any(|(rule, from, to)| rule == "supply-chain/not-from-crates-io"
                && from == "ryu"
                && to.starts_with("git+file://")),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// An allow-list entry binds a crate to versions too: the same crates.io crate at a version
/// the entry does not allow is refused.
#[test]
fn an_allow_listed_crate_outside_its_versions_is_refused() {
    let fixture = fixtures().join("good-workspace");
    let list = std::env::temp_dir().join(format!("ops-allow-list-{}.toml", std::process::id()));
    std::fs::write(
        &list,
        "[[allow]]\ncrate = \"memchr\"\nversion = \"1\"\nfeatures = []\nreason = \"reviewed at 1.x only\"\n",
    )
    .unwrap();
    let (code, report) = run_with(
        &fixture.join("Cargo.toml"),
        &[
            "--allow-list".as_ref(),
            list.as_os_str(),
            "--framework".as_ref(),
            fixture.as_os_str(),
        ],
    );
    std::fs::remove_file(&list).ok();
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        findings(&report),
        BTreeSet::from([(
            "supply-chain/version-not-allowed".to_owned(),
            "memchr".to_owned(),
            "2.8.3".to_owned()
        )]),
        "{report}"
    );
}
