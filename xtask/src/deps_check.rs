//! `cargo xtask deps-check`: the dependency graph of constitution Section 7, and the I/O
//! deny-list of Sections 9 and 12, read from `cargo metadata`.
//!
//! Only normal and build dependencies count: dev-dependencies are linked into a crate's
//! own tests, never into the crate a host installs.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;

use anyhow::Context;
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Node, PackageId};
use serde::Deserialize;

use crate::{Verdict, repo_root};

/// What a workspace crate is, read from its name (DESIGN.md, "Crates and folders").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Core,
    Macros,
    Runtime,
    Shared,
    Contract,
    Pack,
    Registry,
    Host,
    Xtask,
    Tests,
}

impl Role {
    fn of(name: &str) -> Option<Role> {
        Some(match name {
            "ops-core" => Role::Core,
            "ops-macros" => Role::Macros,
            "ops-core-runtime" => Role::Runtime,
            "ops-registry" => Role::Registry,
            "ops-host" => Role::Host,
            "xtask" => Role::Xtask,
            "ops-tests" => Role::Tests,
            _ if name.starts_with("ops-shared-") => Role::Shared,
            _ if name.starts_with("ops-contract-") => Role::Contract,
            _ if name.starts_with("pack-") => Role::Pack,
            _ => return None,
        })
    }

    /// Crates whose whole dependency tree must stay free of raw I/O.
    fn is_sandboxed(self) -> bool {
        matches!(
            self,
            Role::Core | Role::Macros | Role::Shared | Role::Contract | Role::Pack
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub rule: &'static str,
    pub from: String,
    pub to: String,
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error[{}]: `{}` -> `{}`: {}\n  fix: {}",
            self.rule, self.from, self.to, self.message, self.fix
        )
    }
}

#[derive(Debug, Deserialize)]
struct DenyList {
    deny: Vec<DenyEntry>,
}

#[derive(Debug, Deserialize)]
struct DenyEntry {
    #[serde(rename = "crate")]
    crate_name: String,
    #[serde(default)]
    features: Vec<String>,
    reason: String,
}

pub fn run(manifest_path: Option<&Path>, deny_list: Option<&Path>) -> anyhow::Result<Verdict> {
    let violations = check(manifest_path, deny_list)?;
    for violation in &violations {
        println!("{violation}\n");
    }
    if violations.is_empty() {
        println!("deps-check: the dependency graph follows Section 7 and the deny-list");
        Ok(Verdict::Clean)
    } else {
        println!("deps-check: {} violation(s)", violations.len());
        Ok(Verdict::Violations)
    }
}

pub fn check(
    manifest_path: Option<&Path>,
    deny_list: Option<&Path>,
) -> anyhow::Result<Vec<Violation>> {
    let root = repo_root();
    let manifest_path = manifest_path.map_or_else(|| root.join("Cargo.toml"), Path::to_owned);
    let deny_path = deny_list.map_or_else(|| root.join("xtask/deny-list.toml"), Path::to_owned);
    let deny_text = std::fs::read_to_string(&deny_path)
        .with_context(|| format!("reading the deny-list {}", deny_path.display()))?;
    let deny: DenyList = toml::from_str(&deny_text)
        .with_context(|| format!("parsing the deny-list {}", deny_path.display()))?;
    if let Some(entry) = deny
        .deny
        .iter()
        .find(|entry| entry.reason.trim().is_empty())
    {
        anyhow::bail!(
            "{}: the entry for `{}` has no reason; every denied crate says why",
            deny_path.display(),
            entry.crate_name
        );
    }
    let metadata = MetadataCommand::new()
        .manifest_path(&manifest_path)
        .exec()
        .with_context(|| format!("running `cargo metadata` on {}", manifest_path.display()))?;
    let mut violations = graph_violations(&metadata);
    violations.extend(deny_violations(&metadata, &deny.deny));
    violations.sort();
    violations.dedup();
    Ok(violations)
}

fn linked_deps(node: &Node) -> impl Iterator<Item = &PackageId> {
    node.deps
        .iter()
        .filter(|dep| {
            dep.dep_kinds
                .iter()
                .any(|info| matches!(info.kind, DependencyKind::Normal | DependencyKind::Build))
        })
        .map(|dep| &dep.pkg)
}

fn nodes(metadata: &Metadata) -> HashMap<&PackageId, &Node> {
    metadata
        .resolve
        .as_ref()
        .map(|resolve| resolve.nodes.iter().map(|node| (&node.id, node)).collect())
        .unwrap_or_default()
}

fn graph_violations(metadata: &Metadata) -> Vec<Violation> {
    let nodes = nodes(metadata);
    let members: BTreeSet<&PackageId> = metadata.workspace_members.iter().collect();
    let mut violations = Vec::new();
    for package in metadata.workspace_packages() {
        let from = package.name.to_string();
        let Some(from_role) = Role::of(&from) else {
            violations.push(Violation {
                rule: "crate-role",
                from: from.clone(),
                to: from.clone(),
                message: "this crate's name gives it no place in the dependency graph".into(),
                fix: "name it `pack-<id>`, `ops-contract-<id>` or `ops-shared-<pkg>`, or add its role to DESIGN.md and deps-check".into(),
            });
            continue;
        };
        let Some(node) = nodes.get(&package.id) else {
            continue;
        };
        for dep_id in linked_deps(node).filter(|id| members.contains(id)) {
            let to = metadata[dep_id].name.to_string();
            let Some(to_role) = Role::of(&to) else {
                continue;
            };
            if let Some((rule, message, fix)) = edge_rule(from_role, to_role, &to) {
                violations.push(Violation {
                    rule,
                    from: from.clone(),
                    to,
                    message,
                    fix,
                });
            }
        }
    }
    violations
}

/// `None` when `from -> to` is allowed; otherwise the rule, what is wrong and the fix.
fn edge_rule(from: Role, to: Role, to_name: &str) -> Option<(&'static str, String, String)> {
    use Role::*;
    let contract_of = |pack: &str| pack.replacen("pack-", "ops-contract-", 1);
    let broken = match (from, to) {
        (Host | Tests, _) => return None,
        (_, Pack) if from == Pack => (
            "section-7/pack-to-pack",
            "a pack depends on another pack".to_owned(),
            format!(
                "depend on `{}` and use its public events and commands",
                contract_of(to_name)
            ),
        ),
        (Contract, Pack) => (
            "section-7/contract-to-pack",
            "a contract depends on a pack".to_owned(),
            format!(
                "move what the contract needs out of `{to_name}` into the contract or an `ops-shared-*` crate"
            ),
        ),
        (_, Pack) => (
            "section-7/only-host-links-packs",
            "only ops-host links packs".to_owned(),
            format!("install `{to_name}` with one line in host/Cargo.toml instead"),
        ),
        (Xtask, Runtime | Registry | Core) => return None,
        (_, Runtime) => (
            "section-7/runtime-is-host-only",
            "only ops-host, xtask and tests use the core runtime".to_owned(),
            "use the typed handles of ops-core; the host passes them in".to_owned(),
        ),
        (Core, Macros) => return None,
        (Core | Macros, _) => (
            "section-7/core-depends-on-nothing",
            "ops-core depends on none of our crates".to_owned(),
            "move the code into ops-core, or invert the dependency".to_owned(),
        ),
        (Shared, Core) => return None,
        (Shared, _) => (
            "section-7/shared-only-core",
            "shared crates depend only on ops-core".to_owned(),
            "move the type into ops-core or into this shared crate".to_owned(),
        ),
        (Contract | Pack, Core | Shared | Contract) => return None,
        (Runtime | Registry, Core) => return None,
        (Contract | Pack | Runtime | Registry | Xtask, _) => (
            "section-7/layering",
            format!("{from:?} crates may not depend on {to:?} crates"),
            "see the dependency table in DESIGN.md".to_owned(),
        ),
    };
    Some(broken)
}

/// Denied crates reachable from a sandboxed crate through linked dependencies.
fn deny_violations(metadata: &Metadata, deny: &[DenyEntry]) -> Vec<Violation> {
    let nodes = nodes(metadata);
    let mut violations = Vec::new();
    for package in metadata.workspace_packages() {
        let from = package.name.to_string();
        if !Role::of(&from).is_some_and(Role::is_sandboxed) {
            continue;
        }
        // Breadth-first, remembering how each crate was reached to show the path.
        let mut reached_via: HashMap<&PackageId, Option<&PackageId>> = HashMap::new();
        let mut queue = VecDeque::from([&package.id]);
        reached_via.insert(&package.id, None);
        while let Some(id) = queue.pop_front() {
            let Some(node) = nodes.get(id) else { continue };
            let name = metadata[id].name.to_string();
            if let Some(entry) = denied(deny, &name, node) {
                violations.push(Violation {
                    rule: "section-9/denied-crate",
                    from: from.clone(),
                    to: name,
                    message: format!(
                        "{} (path: {})",
                        entry.reason,
                        path_to(metadata, &reached_via, id)
                    ),
                    fix: "remove the dependency; ask the core for a typed handle instead".into(),
                });
                continue;
            }
            for dep in linked_deps(node) {
                if !reached_via.contains_key(dep) {
                    reached_via.insert(dep, Some(id));
                    queue.push_back(dep);
                }
            }
        }
    }
    violations
}

fn denied<'a>(deny: &'a [DenyEntry], name: &str, node: &Node) -> Option<&'a DenyEntry> {
    deny.iter().find(|entry| {
        entry.crate_name == name
            && (entry.features.is_empty()
                || node
                    .features
                    .iter()
                    .any(|f| entry.features.iter().any(|d| f == d)))
    })
}

fn path_to<'a>(
    metadata: &Metadata,
    reached_via: &HashMap<&'a PackageId, Option<&'a PackageId>>,
    mut id: &'a PackageId,
) -> String {
    let mut names = vec![metadata[id].name.to_string()];
    while let Some(Some(parent)) = reached_via.get(id) {
        names.push(metadata[*parent].name.to_string());
        id = parent;
    }
    names.reverse();
    names.join(" -> ")
}
