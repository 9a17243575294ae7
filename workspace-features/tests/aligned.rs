//! The packages that depend on `workspace-features` resolve every dependency with the
//! features `cargo test --workspace` builds it with. When one drifts (a new dependency, a
//! feature turned on somewhere), this names the crate and the features to add to
//! `workspace-features/Cargo.toml`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// `cargo tree` lines, `name version features`, for `selection` with the given edges.
fn resolved(root: &Path, selection: &[&str], edges: &str) -> BTreeSet<String> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args([
            "tree", "--quiet", "--prefix", "none", "--format", "{p} {f}", "-e", edges,
        ])
        .args(selection)
        .output()
        .expect("running cargo tree");
    assert!(
        output.status.success(),
        "cargo tree {selection:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        // A repeated crate is printed again with ` (*)`; members by their path.
        .map(|line| line.trim_end_matches(" (*)").to_owned())
        .filter(|line| !line.contains(" (/"))
        .collect()
}

#[test]
fn the_tools_build_their_dependencies_as_the_workspace_tests_do() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("a member one level below the root");
    let metadata = cargo_metadata::MetadataCommand::new()
        .current_dir(root)
        .no_deps()
        .exec()
        .expect("cargo metadata");
    let aligned: Vec<String> = metadata
        .workspace_packages()
        .into_iter()
        .filter(|package| {
            package
                .dependencies
                .iter()
                .any(|dependency| dependency.name == env!("CARGO_PKG_NAME"))
        })
        .map(|package| package.name.to_string())
        .collect();
    assert!(
        aligned.iter().any(|name| name == "ops-host") && aligned.iter().any(|name| name == "xtask"),
        "ops-host and xtask (what the gates run) depend on this crate; found {aligned:?}"
    );
    let workspace = resolved(root, &["--workspace"], "normal,build,dev");
    for package in &aligned {
        let alone = resolved(root, &["--package", package], "normal,build");
        let different: Vec<&String> = alone.difference(&workspace).collect();
        assert!(
            different.is_empty(),
            "`cargo run -p {package}` builds these with other features than `cargo test --workspace` \
             (name, version, features), so it compiles them and all above them again; add the \
             workspace's features to workspace-features/Cargo.toml:\n{}\nthe workspace has:\n{}",
            different
                .iter()
                .map(|line| format!("  {line}"))
                .collect::<Vec<_>>()
                .join("\n"),
            different
                .iter()
                .filter_map(|line| line.split(' ').next())
                .flat_map(|name| workspace
                    .iter()
                    .filter(move |line| line.split(' ').next() == Some(name)))
                .map(|line| format!("  {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
