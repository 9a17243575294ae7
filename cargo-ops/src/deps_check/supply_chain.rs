//! Dependencies by source, not by name (constitution Section 3). A name is what anyone can
//! give a crate: a path, a git repository, `[patch]` or `[replace]` can put any code under
//! `serde` or `ops-core`. So:
//!
//! - a crate of the allow-list is the one crates.io serves under that name, checksummed in
//!   `Cargo.lock`; from any other source it is refused, whatever its name;
//! - the framework's crates (`ops-core`, `ops-macros`, `ops-sandbox`, the runtime, the
//!   host, the gates) are the ones of the framework's checkout (`--framework`, by default
//!   the checkout this tool was built from), known by where their manifest is, or of the
//!   git repository the workspace's own manifest names for `ops-core` (what `cargo ops
//!   new` writes), known by their source;
//! - pack, contract and shared crates are members of the workspace or of the framework;
//! - no two packages of the graph carry one ops name: the second is refused with both
//!   places named, in CI, before a host refuses it at start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, Package};
use serde::Deserialize;

use super::{AllowEntry, Violation};
use crate::roles::Role;

/// The registry sources that are crates.io.
const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

#[derive(Debug, Deserialize)]
struct Lockfile {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Debug, Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// The checksums `Cargo.lock` records, by name and version of crates.io packages.
pub fn checksums(workspace_root: &Path) -> anyhow::Result<BTreeSet<(String, String)>> {
    let path = workspace_root.join("Cargo.lock");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(error) => anyhow::bail!("reading {}: {error}", path.display()),
    };
    let lock: Lockfile = toml::from_str(&text)
        .map_err(|error| anyhow::anyhow!("parsing {}: {error}", path.display()))?;
    Ok(lock
        .package
        .into_iter()
        .filter(|p| p.source.as_deref().is_some_and(|s| CRATES_IO.contains(&s)))
        .filter(|p| p.checksum.as_deref().is_some_and(|c| !c.is_empty()))
        .map(|p| (p.name, p.version))
        .collect())
}

/// The git repository the workspace at `root` names for `ops-core` in its
/// `[workspace.dependencies]`: the framework, as the team's own manifest says it gets it.
fn framework_repository(root: &Path) -> Option<String> {
    crate::manifest::Manifest::read(&root.join("Cargo.toml"))
        .ok()?
        .string_at(&["workspace", "dependencies", "ops-core", "git"])
        .map(str::to_owned)
}

pub fn violations(
    metadata: &Metadata,
    allow: &[AllowEntry],
    checksummed: &BTreeSet<(String, String)>,
    framework: &Path,
) -> Vec<Violation> {
    let members: BTreeSet<_> = metadata.workspace_members.iter().collect();
    let framework = canonical(framework);
    let framework_git = framework_repository(metadata.workspace_root.as_std_path());
    let mut violations = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<&Package>> = BTreeMap::new();
    for package in &metadata.packages {
        let name = package.name.as_str();
        let source = package.source.as_ref().map(|s| s.repr.as_str());
        let place = place_of(package);
        if let Some(entry) = allow.iter().find(|entry| entry.crate_name == name) {
            if let Some(violation) = version_violation(entry, package) {
                violations.push(violation);
            }
            let from_crates_io = source.is_some_and(|s| CRATES_IO.contains(&s));
            if !from_crates_io {
                violations.push(Violation {
                    rule: "supply-chain/not-from-crates-io",
                    from: name.to_owned(),
                    to: source.unwrap_or("path").to_owned(),
                    message: format!(
                        "`{name}` is allowed as the crate crates.io serves under that name; this one comes from {place}, so its code (and its build script or macros, which run on the build machine) is not what the allow-list vouches for"
                    ),
                    fix: format!(
                        "depend on `{name}` from crates.io (remove its `path`/`git` source, its `[patch]` or `[replace]` entry) and commit `Cargo.lock` with its checksum"
                    ),
                });
            } else if !checksummed.contains(&(name.to_owned(), package.version.to_string())) {
                violations.push(Violation {
                    rule: "supply-chain/no-checksum",
                    from: name.to_owned(),
                    to: package.version.to_string(),
                    message: format!(
                        "`Cargo.lock` has no checksum for `{name}` {}, so nothing binds the build to the crate crates.io serves",
                        package.version
                    ),
                    fix: "run `cargo generate-lockfile` (or any build) and commit `Cargo.lock`".into(),
                });
            }
        }
        let Some(role) = Role::of_name(name) else {
            continue;
        };
        by_name.entry(name).or_default().push(package);
        let manifest = canonical(package.manifest_path.as_std_path());
        let in_framework = match (source, &framework_git) {
            (None, _) => manifest.starts_with(&framework),
            (Some(source), Some(repository)) => source.strip_prefix("git+").is_some_and(|rest| {
                rest.strip_prefix(repository.as_str())
                    .is_some_and(|after| after.is_empty() || after.starts_with(['?', '#']))
            }),
            (Some(_), None) => false,
        };
        let member = members.contains(&package.id);
        let allowed = if role.is_pack_code() {
            member || in_framework
        } else if matches!(role, Role::Tooling | Role::Tests | Role::Host) && member {
            // A team's own host, tools and tests are its members, under its own names.
            true
        } else {
            in_framework
        };
        if !allowed {
            let (what, fix) = if role.is_pack_code() {
                (
                    "pack, contract and shared crates are members of the workspace (or of the framework)",
                    format!(
                        "make `{name}` a member of this workspace, or remove the dependency; a pack's code is reviewed where it is built"
                    ),
                )
            } else {
                (
                    "the framework's crates come from the framework's checkout",
                    format!(
                        "depend on `{name}` from the framework (the checkout `cargo ops` was built from, or `--framework DIR`) and remove any `[patch]` or `[replace]` of it"
                    ),
                )
            };
            violations.push(Violation {
                rule: "supply-chain/ops-crate-source",
                from: name.to_owned(),
                to: source.unwrap_or("path").to_owned(),
                message: format!("{what}; this `{name}` comes from {place}"),
                fix,
            });
        }
    }
    for (name, packages) in by_name {
        if let [first, second, ..] = packages.as_slice() {
            violations.push(Violation {
                rule: "supply-chain/duplicate-package",
                from: name.to_owned(),
                to: name.to_owned(),
                message: format!(
                    "two packages are named `{name}`: {} and {}; an ops name is an identity, so one package holds it",
                    place_of(first),
                    place_of(second)
                ),
                fix: "rename or remove one of them".into(),
            });
        }
    }
    violations
}

/// The allow-list entry's version requirement, when the package's version does not meet it
/// (or the requirement does not parse).
fn version_violation(entry: &AllowEntry, package: &Package) -> Option<Violation> {
    let requirement = entry.version.as_deref()?;
    let name = package.name.to_string();
    match cargo_metadata::semver::VersionReq::parse(requirement) {
        Ok(req) if req.matches(&package.version) => None,
        Ok(_) => Some(Violation {
            rule: "supply-chain/version-not-allowed",
            from: name.clone(),
            to: package.version.to_string(),
            message: format!(
                "`{name}` is allowed at versions `{requirement}`, and this is {}",
                package.version
            ),
            fix: format!(
                "depend on `{name}` at `{requirement}`, or review the new version and widen the allow-list entry"
            ),
        }),
        Err(error) => Some(Violation {
            rule: "supply-chain/version-not-allowed",
            from: name,
            to: requirement.to_owned(),
            message: format!(
                "the allow-list's version requirement `{requirement}` does not parse: {error}"
            ),
            fix: "write a semver requirement such as `\"1\"` or `\">=1.0.200, <2\"`".into(),
        }),
    }
}

/// Where a package comes from, for messages: its source, or its manifest's folder.
fn place_of(package: &Package) -> String {
    match &package.source {
        Some(source) => source.repr.clone(),
        None => package
            .manifest_path
            .parent()
            .map_or_else(|| package.manifest_path.to_string(), ToString::to_string),
    }
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}
