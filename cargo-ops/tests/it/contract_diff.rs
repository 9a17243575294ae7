//! `cargo ops contract-diff` end to end, on a copy of this workspace: a breaking change
//! to a public event fails with the right rule; a new payload version with an upcaster and
//! a crate bump passes; blessing records it.
//!
//! The copy is this workspace's kept copy (shared with `cargo ops acceptance`, one test at a
//! time), building its own `ops-host` into `target/ops-workspace-copies`, so only what a
//! test edits builds again.

use std::path::PathBuf;
use std::process::Command;

use cargo_ops::workspace::KeptCopy;
use serde_json::Value;

use crate::support::{Run, copies_target, edit, repository};

struct Workspace {
    dir: PathBuf,
    _kept: KeptCopy,
}

impl Workspace {
    /// The kept copy, as this workspace is now.
    fn copy() -> Self {
        let kept = cargo_ops::workspace::Workspace::open(Some(&repository()))
            .unwrap()
            .kept_copy()
            .unwrap();
        Workspace {
            dir: kept.root.clone(),
            _kept: kept,
        }
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        edit(&self.dir, file, from, to);
    }

    fn contract_diff(&self, extra: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_cargo-ops"))
            .args(["contract-diff", "--format", "json", "--workspace"])
            .arg(&self.dir)
            .args(extra)
            .env("CARGO_TARGET_DIR", copies_target())
            .output()
            .unwrap();
        Run::of(&output)
    }
}

impl Workspace {
    /// Builds the code of a fix, pasted as printed into a crate of its own in the copy.
    fn compiles_as_printed(&self, fix: &str) {
        let code: String = fix
            .lines()
            .skip_while(|line| !line.starts_with("    "))
            .take_while(|line| !line.starts_with("then "))
            .map(|line| format!("{}\n", line.strip_prefix("    ").unwrap_or(line)))
            .collect();
        let crate_dir = self.dir.join("contracts/skeleton");
        std::fs::create_dir_all(crate_dir.join("src")).unwrap();
        std::fs::write(
            crate_dir.join("Cargo.toml"),
            "[package]\nname = \"ops-contract-skeleton\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\nops-core.workspace = true\n",
        )
        .unwrap();
        std::fs::write(
            crate_dir.join("src/lib.rs"),
            format!("#![no_std]\n#![forbid(unsafe_code)]\n\n{code}"),
        )
        .unwrap();
        self.edit(
            "Cargo.toml",
            "    \"contracts/incidents\",",
            "    \"contracts/incidents\",\n    \"contracts/skeleton\",",
        );
        let output = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "ops-contract-skeleton"])
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", copies_target())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the printed fix does not compile:\n{code}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.edit("Cargo.toml", "\n    \"contracts/skeleton\",", "");
        std::fs::remove_dir_all(crate_dir).unwrap();
    }
}

const ACKNOWLEDGED: &str = "pack.incidents.incident.IncidentAcknowledged";
const CONTRACT: &str = "contracts/incidents/src/lib.rs";

#[test]
fn breaking_change_fails_then_a_new_version_with_an_upcaster_passes() {
    let workspace = Workspace::copy();
    let clean = workspace.contract_diff(&["--require-blessed"]);
    assert_eq!(clean.code, Some(0), "{}", clean.stderr);
    assert_eq!(clean.report["violations"], 0);

    // Renaming a field on the wire breaks readers both ways.
    workspace.edit(
        CONTRACT,
        "pub struct IncidentAcknowledged {\n    pub incident_id: String,\n    pub by: PersonRef,",
        "pub struct IncidentAcknowledged {\n    pub incident_id: String,\n    #[serde(rename = \"acknowledged_by\")]\n    pub by: PersonRef,",
    );
    let broken = workspace.contract_diff(&[]);
    assert_eq!(broken.code, Some(1), "{}", broken.stderr);
    assert!(
        broken.has("schema-changed-in-place", ACKNOWLEDGED),
        "{:?}",
        broken.rules()
    );
    let finding = broken.report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "schema-changed-in-place")
        .unwrap();
    assert_eq!(finding["version"], 1);
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains("Upcast<incident_acknowledged_v1::IncidentAcknowledged>"),
        "{fix}"
    );
    assert!(
        fix.ends_with("`ops-contract-incidents`'s Cargo.toml to 0.1.1"),
        "{fix}"
    );
    let witness = &finding["witnesses"][0];
    assert_eq!(witness["direction"], "backward", "{finding}");
    assert!(
        witness["payload"].get("by").is_some(),
        "an old event has `by`: {finding}"
    );
    workspace.compiles_as_printed(fix);

    // Keep version 1, declare version 2 with its upcaster.
    workspace.edit(
        CONTRACT,
        "#[event(public, domain = \"incident\")]\n#[derive(Clone, Debug, PartialEq)]\n#[schemars(example = IncidentAcknowledged",
        "#[event(public, domain = \"incident\", version = 2, upcast_from = v1::IncidentAcknowledged)]\n#[derive(Clone, Debug, PartialEq)]\n#[schemars(example = IncidentAcknowledged",
    );
    workspace.edit(
        CONTRACT,
        "pub mod v1 {\n    use super::event;",
        "pub mod v1 {\n    use super::event;\n\n    #[event(public, domain = \"incident\", version = 1)]\n    #[derive(Clone, Debug, PartialEq)]\n    pub struct IncidentAcknowledged {\n        pub incident_id: String,\n        pub by: super::PersonRef,\n    }",
    );
    workspace.edit(
        CONTRACT,
        "fn example_responder()",
        "impl Upcast<v1::IncidentAcknowledged> for IncidentAcknowledged {\n    fn upcast(old: v1::IncidentAcknowledged) -> Self {\n        IncidentAcknowledged { incident_id: old.incident_id, by: old.by }\n    }\n}\n\nfn example_responder()",
    );
    let unbumped = workspace.contract_diff(&[]);
    assert_eq!(unbumped.code, Some(1), "{}", unbumped.stderr);
    assert!(
        unbumped.has("version-added", ACKNOWLEDGED),
        "{:?}",
        unbumped.rules()
    );
    assert!(
        unbumped.has("upcaster-checked", ACKNOWLEDGED),
        "{:?}",
        unbumped.rules()
    );
    assert!(
        unbumped.has("semver-bump-too-small", "ops-contract-incidents"),
        "{:?}",
        unbumped.rules()
    );
    assert!(!unbumped.has("schema-changed-in-place", ACKNOWLEDGED));
    // The pack provides the new version too, so its manifest gained a type.
    assert!(
        unbumped.has("semver-bump-too-small", "incidents"),
        "{:?}",
        unbumped.rules()
    );

    workspace.edit(
        "contracts/incidents/Cargo.toml",
        "version = \"0.1.0\"",
        "version = \"0.1.1\"",
    );
    // One place to bump: `#[pack]` takes its version from the crate.
    workspace.edit(
        "packs/incidents/Cargo.toml",
        "version = \"0.1.1\"",
        "version = \"0.1.2\"",
    );
    let fixed = workspace.contract_diff(&[]);
    assert_eq!(fixed.code, Some(0), "{:?}\n{}", fixed.rules(), fixed.stderr);
    assert!(fixed.has("snapshot-not-blessed", "registry/snapshot.json"));
    let unblessed = workspace.contract_diff(&["--require-blessed"]);
    assert_eq!(unblessed.code, Some(1), "{:?}", unblessed.rules());

    let blessed = workspace.contract_diff(&["--bless"]);
    assert_eq!(blessed.code, Some(0), "{}", blessed.stderr);
    let snapshot: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.dir.join("registry/snapshot.json")).unwrap(),
    )
    .unwrap();
    let versions = snapshot["types"][ACKNOWLEDGED]["versions"]
        .as_object()
        .unwrap();
    assert_eq!(versions.keys().collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(snapshot["crates"]["ops-contract-incidents"], "0.1.1");
    let after = workspace.contract_diff(&["--require-blessed"]);
    assert_eq!(after.code, Some(0), "{:?}", after.rules());
    assert_eq!(after.rules(), Vec::<(String, String)>::new());

    // An upcaster that produces invalid payloads is caught on the samples.
    workspace.edit(
        CONTRACT,
        "IncidentAcknowledged { incident_id: old.incident_id, by: old.by }",
        "IncidentAcknowledged { incident_id: old.incident_id, by: old.by }; panic!(\"lost\")",
    );
    workspace.edit(
        CONTRACT,
        "version = 2, upcast_from = v1::IncidentAcknowledged)]\n#[derive",
        "version = 3, upcast_from = v2::IncidentAcknowledged)]\n#[derive",
    );
    workspace.edit(
        CONTRACT,
        "pub mod v1 {",
        "pub mod v2 {\n    use super::event;\n    use ops_core::prelude::*;\n\n    #[event(public, domain = \"incident\", version = 2, upcast_from = super::v1::IncidentAcknowledged)]\n    #[derive(Clone, Debug, PartialEq)]\n    pub struct IncidentAcknowledged {\n        pub incident_id: String,\n        #[serde(rename = \"acknowledged_by\")]\n        pub by: super::PersonRef,\n    }\n\n    impl super::Upcast<super::v1::IncidentAcknowledged> for IncidentAcknowledged {\n        fn upcast(old: super::v1::IncidentAcknowledged) -> Self {\n            IncidentAcknowledged { incident_id: old.incident_id, by: old.by }\n        }\n    }\n}\n\npub mod v1 {",
    );
    workspace.edit(
        CONTRACT,
        "impl Upcast<v1::IncidentAcknowledged> for IncidentAcknowledged {\n    fn upcast(old: v1::IncidentAcknowledged)",
        "impl Upcast<v2::IncidentAcknowledged> for IncidentAcknowledged {\n    fn upcast(old: v2::IncidentAcknowledged)",
    );
    workspace.edit(
        "contracts/incidents/Cargo.toml",
        "version = \"0.1.1\"",
        "version = \"0.1.2\"",
    );
    workspace.edit(
        "packs/incidents/Cargo.toml",
        "version = \"0.1.2\"",
        "version = \"0.1.3\"",
    );
    let failing = workspace.contract_diff(&[]);
    assert_eq!(
        failing.code,
        Some(1),
        "{:?}\n{}",
        failing.rules(),
        failing.stderr
    );
    assert!(
        failing.has("upcaster-failed", ACKNOWLEDGED),
        "{:?}",
        failing.rules()
    );
}

#[test]
fn an_acceptance_without_a_reason_is_an_input_error() {
    let workspace = Workspace::copy();
    std::fs::write(
        workspace.dir.join("registry/acceptances.toml"),
        "[[accept]]\nrule = \"safety-lowered\"\nsubject = \"pack.incidents.incident.OpenIncident\"\n",
    )
    .unwrap();
    let run = workspace.contract_diff(&[]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("registry/acceptances.toml") && run.stderr.contains("has no reason"),
        "{}",
        run.stderr
    );
}

/// The attack of a crate that borrows another's identity: its build script tells Cargo it
/// is `ops-contract-incidents`, so its types would be named `pack.incidents.incident.*` and
/// the victim asked for a version bump. The type's own build refuses it, the report never
/// blames the victim, and deps-check refuses the build script.
#[test]
fn a_crate_that_borrows_another_crates_name_is_refused_and_the_victim_not_blamed() {
    let workspace = Workspace::copy();
    let thief = workspace.dir.join("contracts/thief");
    std::fs::create_dir_all(thief.join("src")).unwrap();
    std::fs::write(
        thief.join("Cargo.toml"),
        "[package]\nname = \"ops-contract-thief\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\nops-core.workspace = true\n",
    )
    .unwrap();
    std::fs::write(
        thief.join("build.rs"),
        "fn main() {\n    println!(\"cargo::rustc-env=CARGO_PKG_NAME=ops-contract-incidents\");\n}\n",
    )
    .unwrap();
    std::fs::write(
        thief.join("src/lib.rs"),
        "#![no_std]\n#![forbid(unsafe_code)]\nuse ops_core::prelude::*;\n\n#[ops_core::event(public, domain = \"incident\")]\npub struct IncidentEscalated {\n    pub incident_id: String,\n}\n",
    )
    .unwrap();
    workspace.edit(
        "Cargo.toml",
        "    \"contracts/incidents\",",
        "    \"contracts/incidents\",\n    \"contracts/thief\",",
    );
    workspace.edit(
        "host/Cargo.toml",
        "pack-notify.workspace = true",
        "pack-notify.workspace = true\nops-contract-thief = { path = \"../contracts/thief\" }",
    );
    let run = workspace.contract_diff(&[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("this type claims the owner of crate `ops-contract-incidents`, but it is compiled in another crate"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("bump") && run.report.is_null(),
        "{}",
        run.stderr
    );
    let deps = Command::new(env!("CARGO_BIN_EXE_cargo-ops"))
        .args(["deps-check", "--manifest-path"])
        .arg(workspace.dir.join("Cargo.toml"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&deps.stdout);
    assert_eq!(deps.status.code(), Some(1), "{report}");
    assert!(
        report.contains("error[sandbox/build-script]: `ops-contract-thief` -> `build.rs`"),
        "{report}"
    );
}
