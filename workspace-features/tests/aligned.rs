//! The packages that depend on `workspace-features` (the ones the gates run) compile nothing
//! that `cargo test --workspace` did not compile already, but their own binaries. When
//! something drifts (a new dependency, a feature turned on somewhere, a profile setting),
//! this names the first crate built differently and the features the workspace builds it
//! with, to add to `workspace-features/Cargo.toml`.
//!
//! It reads cargo's unit graph: the one exact account of what cargo compiles (a crate's
//! features, profile, and the same for everything below it). `--unit-graph` is unstable;
//! `RUSTC_BOOTSTRAP=1` lets the pinned stable cargo print it, for this read only.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The units cargo would compile for `arguments`, each with an identity that covers what
/// decides whether a build of it can be reused: the package, target, mode, features,
/// profile settings (not the profile's name: `test` and `dev` alike build a dependency the
/// same) and, recursively, the identities of what it depends on.
fn units(root: &Path, arguments: &[&str]) -> Vec<(u64, Value)> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(arguments)
        .args(["--quiet", "--unit-graph", "-Z", "unstable-options"])
        .output()
        .expect("running cargo");
    assert!(
        output.status.success(),
        "cargo {arguments:?} --unit-graph failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut graph: Value = serde_json::from_slice(&output.stdout).expect("a unit graph");
    let Value::Array(units) = graph["units"].take() else {
        panic!("a unit graph has units");
    };
    let mut identities: HashMap<usize, u64> = HashMap::new();
    fn identity(index: usize, units: &[Value], identities: &mut HashMap<usize, u64>) -> u64 {
        if let Some(known) = identities.get(&index) {
            return *known;
        }
        let unit = &units[index];
        let mut profile = unit["profile"].clone();
        profile.as_object_mut().expect("a profile").remove("name");
        let mut below: Vec<u64> = unit["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|dependency| {
                let at = dependency["index"].as_u64().expect("an index") as usize;
                identity(at, units, identities)
            })
            .collect();
        below.sort_unstable();
        let mut hasher = DefaultHasher::new();
        (
            unit["pkg_id"].to_string(),
            unit["target"]["name"].to_string(),
            unit["target"]["kind"].to_string(),
            unit["mode"].to_string(),
            unit["features"].to_string(),
            profile.to_string(),
            below,
        )
            .hash(&mut hasher);
        let id = hasher.finish();
        identities.insert(index, id);
        id
    }
    let ids: Vec<u64> = (0..units.len())
        .map(|index| identity(index, &units, &mut identities))
        .collect();
    ids.into_iter().zip(units).collect()
}

/// `name@version` of a unit's package.
fn package_of(unit: &Value) -> String {
    let id = unit["pkg_id"].as_str().unwrap_or_default();
    id.rsplit(['#', '/']).next().unwrap_or(id).to_owned()
}

#[test]
fn the_tools_compile_nothing_the_workspace_tests_did_not() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("a member one level below the root");
    let metadata = cargo_metadata::MetadataCommand::new()
        .current_dir(root)
        .no_deps()
        .exec()
        .expect("cargo metadata");
    let aligned: Vec<(String, String)> = metadata
        .workspace_packages()
        .into_iter()
        .filter(|package| {
            package
                .dependencies
                .iter()
                .any(|dependency| dependency.name == env!("CARGO_PKG_NAME"))
        })
        .map(|package| (package.name.to_string(), package.id.repr.clone()))
        .collect();
    assert!(
        ["ops-host", "xtask"]
            .iter()
            .all(|tool| aligned.iter().any(|(name, _)| name == tool)),
        "ops-host and xtask (what the gates run) depend on this crate; found {aligned:?}"
    );
    let tested = units(root, &["test", "--workspace", "--no-run"]);
    let built_by_tests: BTreeSet<u64> = tested.iter().map(|(id, _)| *id).collect();
    for (package, package_id) in &aligned {
        let run = units(root, &["build", "--package", package]);
        let again: BTreeSet<u64> = run
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !built_by_tests.contains(id))
            .collect();
        // The first to differ: built again though everything below it is reused. The
        // package's own binaries are expected (the tests build a binary only when an
        // integration test runs it).
        let first: Vec<String> = run
            .iter()
            .filter(|(id, unit)| {
                again.contains(id)
                    && !(unit["pkg_id"] == package_id.as_str()
                        && unit["target"]["kind"] == serde_json::json!(["bin"]))
            })
            .filter(|(_, unit)| {
                unit["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .all(|dependency| {
                        let at = dependency["index"].as_u64().expect("an index") as usize;
                        !again.contains(&run[at].0)
                    })
            })
            .map(|(_, unit)| {
                let same_package: Vec<String> = tested
                    .iter()
                    .filter(|(_, other)| other["pkg_id"] == unit["pkg_id"])
                    .map(|(_, other)| other["features"].to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                format!(
                    "  {} ({} {}): features {}, profile {}; the workspace's test build has features {}",
                    package_of(unit),
                    unit["target"]["name"],
                    unit["mode"],
                    unit["features"],
                    unit["profile"],
                    same_package.join(" or ")
                )
            })
            .collect();
        assert!(
            first.is_empty(),
            "`cargo run -p {package}` after `cargo test --workspace` compiles these again, and \
             everything above them; give them the workspace's features in \
             workspace-features/Cargo.toml, or to the crates they are built on when their own \
             features already match (or align the profile in Cargo.toml):\n{}",
            first.join("\n")
        );
    }
}
