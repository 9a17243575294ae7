//! `cargo ops deps-check`: the dependency graph of constitution Section 7, the allow-list
//! of what pack, contract and shared crates may depend on, the I/O deny-list of Sections 9
//! and 12, and the sandbox rules of their manifests and source, read from `cargo metadata`
//! and `cargo tree`.
//!
//! Only normal and build dependencies count: dev-dependencies are linked into a crate's
//! own tests, never into the crate a host installs. Every crate of the graph is judged, in
//! the workspace or not (a path outside it, a registry): roles come from names.
//! Features are judged per crate, as `cargo tree -p <crate>` resolves them for that crate
//! built alone, not by the workspace's unified set.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Node, Package, PackageId};
use serde::Deserialize;

use crate::Verdict;
use crate::roles::{Role, contract_of_pack_crate};

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

#[derive(Debug, Deserialize)]
struct AllowList {
    allow: Vec<AllowEntry>,
}

#[derive(Debug, Deserialize)]
pub struct AllowEntry {
    #[serde(rename = "crate")]
    pub crate_name: String,
    /// The versions it may have (a semver requirement, `"1"`); `None`: any.
    #[serde(default)]
    pub version: Option<String>,
    /// Every feature it may have; `None`: any.
    features: Option<Vec<String>>,
    reason: String,
}

mod compiled_record;
mod supply_chain;

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The workspace to check (default: the current directory's).
    #[arg(long, value_name = "Cargo.toml")]
    pub manifest_path: Option<PathBuf>,
    /// The deny-list (default: cargo-ops/deny-list.toml, built in).
    #[arg(long, value_name = "FILE")]
    pub deny_list: Option<PathBuf>,
    /// The allow-list of pack, contract and shared dependencies (default:
    /// cargo-ops/allow-list.toml, built in).
    #[arg(long, value_name = "FILE")]
    pub allow_list: Option<PathBuf>,
    /// The framework's checkout, where the ops crates must come from (default: the
    /// checkout this `cargo ops` was built from).
    #[arg(long, value_name = "DIR")]
    pub framework: Option<PathBuf>,
}

/// The checkout this tool was built from: the framework whose ops crates it vouches for.
fn default_framework() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

pub fn run(options: &Options) -> anyhow::Result<Verdict> {
    let violations = check(options)?;
    for violation in &violations {
        println!("{violation}\n");
    }
    if violations.is_empty() {
        println!(
            "deps-check: the dependency graph follows Section 7, the allow-list and the deny-list, and pack source the sandbox rules"
        );
        Ok(Verdict::Clean)
    } else {
        println!("deps-check: {} violation(s)", violations.len());
        Ok(Verdict::Violations)
    }
}

/// The lists deps-check uses when it is given none: the ones next to this crate's manifest.
const DEFAULT_DENY_LIST: (&str, &str) = (
    "cargo-ops/deny-list.toml",
    include_str!("../deny-list.toml"),
);
const DEFAULT_ALLOW_LIST: (&str, &str) = (
    "cargo-ops/allow-list.toml",
    include_str!("../allow-list.toml"),
);

/// Reads a TOML list, the given file or else the default, whose every entry must give a
/// reason.
fn read_list<T: for<'de> Deserialize<'de>>(
    path: Option<&Path>,
    default: (&str, &str),
    reasons: impl Fn(&T) -> Vec<(&str, &str)>,
) -> anyhow::Result<T> {
    let (origin, text) = match path {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => (default.0.to_owned(), default.1.to_owned()),
    };
    let list: T = toml::from_str(&text).with_context(|| format!("parsing {origin}"))?;
    if let Some((name, _)) = reasons(&list)
        .into_iter()
        .find(|(_, reason)| reason.trim().is_empty())
    {
        anyhow::bail!("{origin}: the entry for `{name}` has no reason; every entry says why");
    }
    Ok(list)
}

/// The violations of the workspace of `options.manifest_path` (default: the current
/// directory's).
pub fn check(options: &Options) -> anyhow::Result<Vec<Violation>> {
    let (deny_list, allow_list) = (options.deny_list.as_deref(), options.allow_list.as_deref());
    let manifest_path =
        crate::workspace::Workspace::open(options.manifest_path.as_deref())?.manifest();
    let deny: DenyList = read_list(deny_list, DEFAULT_DENY_LIST, |list: &DenyList| {
        list.deny
            .iter()
            .map(|e| (e.crate_name.as_str(), e.reason.as_str()))
            .collect()
    })?;
    let allow: AllowList = read_list(allow_list, DEFAULT_ALLOW_LIST, |list: &AllowList| {
        list.allow
            .iter()
            .map(|e| (e.crate_name.as_str(), e.reason.as_str()))
            .collect()
    })?;
    let metadata = MetadataCommand::new()
        .manifest_path(&manifest_path)
        .exec()
        .with_context(|| format!("running `cargo metadata` on {}", manifest_path.display()))?;
    let mut violations = graph_violations(&metadata);
    let framework = options.framework.clone().unwrap_or_else(default_framework);
    violations.extend(supply_chain::violations(
        &metadata,
        &allow.allow,
        &supply_chain::checksums(metadata.workspace_root.as_std_path())?,
        &framework,
    ));
    let lists = Lists {
        deny: &deny.deny,
        allow: &allow.allow,
    };
    let edition = workspace_edition(metadata.workspace_root.as_std_path());
    let mut pack_code = Vec::new();
    for package in sandboxed(&metadata) {
        let role = Role::of_package(package).expect("sandboxed crates have a role");
        let tree = crate_tree(&manifest_path, package)?;
        violations.extend(tree_violations(role, &tree, &lists));
        if role.is_pack_code() {
            violations.extend(manifest_violations(package, &edition));
            violations.extend(source_violations(package)?);
            pack_code.push(package);
        }
    }
    // The workspace's own pack code: what comes from the framework is the framework's, and
    // its own CI read its record.
    pack_code.retain(|package| metadata.workspace_members.contains(&package.id));
    violations.extend(compiled_record::violations(
        &manifest_path,
        metadata.workspace_root.as_std_path(),
        &pack_code,
    )?);
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

/// Every package of the resolved graph with a sandboxed role, in the workspace or not.
fn sandboxed(metadata: &Metadata) -> Vec<&Package> {
    let nodes = nodes(metadata);
    let mut packages: Vec<&Package> = metadata
        .packages
        .iter()
        .filter(|p| nodes.contains_key(&p.id))
        .filter(|p| Role::of_package(p).is_some_and(Role::is_sandboxed))
        .collect();
    packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    packages
}

fn graph_violations(metadata: &Metadata) -> Vec<Violation> {
    let nodes = nodes(metadata);
    let members: BTreeSet<&PackageId> = metadata.workspace_members.iter().collect();
    let mut violations = Vec::new();
    for package in &metadata.packages {
        let from = package.name.to_string();
        let role = Role::of(package);
        match &role {
            Err(message) => violations.push(Violation {
                rule: "crate-role",
                from: from.clone(),
                to: from.clone(),
                message: message.clone(),
                fix: "declare `host`, `tooling` or `tests`, or remove the line and let the crate's name give its role".into(),
            }),
            Ok(None) if members.contains(&package.id) => violations.push(Violation {
                rule: "crate-role",
                from: from.clone(),
                to: from.clone(),
                message: "neither this crate's name nor its manifest gives it a place in the dependency graph".into(),
                fix: "name pack code `pack-<id>`, `ops-contract-<id>` or `ops-shared-<pkg>`; for a host, tool or test crate add `[package.metadata.ops] role = \"host\"` (or `\"tooling\"`, `\"tests\"`) to its Cargo.toml".into(),
            }),
            Ok(_) => {}
        }
        let role = role.ok().flatten();
        let (Some(from_role), Some(node)) = (role, nodes.get(&package.id)) else {
            continue;
        };
        for dep_id in linked_deps(node) {
            let to = metadata[dep_id].name.to_string();
            let Some(to_role) = Role::of_package(&metadata[dep_id]) else {
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
    let broken = match (from, to) {
        (Host | Tests, _) => return None,
        (_, Pack) if from == Pack => (
            "section-7/pack-to-pack",
            "a pack depends on another pack".to_owned(),
            format!(
                "depend on `{}` and use its public events and commands",
                contract_of_pack_crate(to_name)
            ),
        ),
        (Contract, Pack) => (
            "section-7/contract-to-pack",
            "a contract depends on a pack".to_owned(),
            format!(
                "move what the contract needs out of `{to_name}` into the contract or an `ops-shared-*` crate"
            ),
        ),
        (_, HostBuild) if from == Host => return None,
        (_, Pack) => (
            "section-7/only-host-links-packs",
            "only a host crate links packs".to_owned(),
            format!("install `{to_name}` with one line in the host crate's Cargo.toml instead"),
        ),
        (Tooling, Tooling | Runtime | Registry | Core | Sandbox | SchemaCompat) => return None,
        (Registry, SchemaCompat) => return None,
        (HostBuild, _) => (
            "section-7/host-build-stands-alone",
            "ops-host-build depends on none of our crates: it only reads a host's manifest".to_owned(),
            "keep it to the manifest; what the host does belongs in ops-host".to_owned(),
        ),
        (SchemaCompat, _) => (
            "section-7/schema-compat-stands-alone",
            "schema-compat depends on none of our crates: it decides JSON Schema inclusion for anyone".to_owned(),
            "keep ops knowledge in ops-registry and pass plain JSON schemas to schema-compat".to_owned(),
        ),
        (_, Runtime) => (
            "section-7/runtime-is-host-only",
            "only ops-host, xtask and tests use the core runtime".to_owned(),
            "use the typed handles of ops-core; the host passes them in".to_owned(),
        ),
        (Core, Macros) | (Macros, Sandbox) => return None,
        (Core | Macros | Sandbox, _) => (
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
        (Contract | Pack | Runtime | Registry | Tooling, _) => (
            "section-7/layering",
            format!("{from:?} crates may not depend on {to:?} crates"),
            "see the dependency table in ARCHITECTURE.md".to_owned(),
        ),
    };
    Some(broken)
}

/// One crate of a `cargo tree`, with its features as resolved for the root alone.
struct TreeNode {
    name: String,
    features: BTreeSet<String>,
    /// The crates from the root down to this one.
    path: Vec<String>,
}

/// The normal and build dependencies of `package` on every target, as `cargo tree -p`
/// resolves them for it alone.
fn crate_tree(manifest_path: &Path, package: &Package) -> anyhow::Result<Vec<TreeNode>> {
    let spec = format!("{}@{}", package.name, package.version);
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["tree", "--quiet", "--manifest-path"])
        .arg(manifest_path)
        .args(["-p", &spec, "-e", "normal,build", "--target", "all"])
        .args(["--prefix", "depth", "--no-dedupe", "--format", "{p}|{f}"])
        .output()
        .with_context(|| format!("running `cargo tree -p {spec}`"))?;
    if !output.status.success() {
        anyhow::bail!(
            "`cargo tree -p {spec}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut nodes = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let (described, features) = line[digits..]
            .split_once('|')
            .unwrap_or((&line[digits..], ""));
        let name = described.split(' ').next().unwrap_or_default().to_owned();
        stack.truncate(depth);
        stack.push(name.clone());
        nodes.push(TreeNode {
            name,
            features: features
                .trim_end_matches("(*)")
                .trim()
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
            path: stack.clone(),
        });
    }
    Ok(nodes)
}

struct Lists<'a> {
    deny: &'a [DenyEntry],
    allow: &'a [AllowEntry],
}

/// What a sandboxed crate reaches: denied crates for all of them, and for pack code every
/// crate that is neither an ops crate its role allows nor on the allow-list (with its
/// features), and any other pack, however far down. ops-core's own dependencies are the
/// core's: the walk does not enter it.
fn tree_violations(role: Role, tree: &[TreeNode], lists: &Lists<'_>) -> Vec<Violation> {
    let Some(root) = tree.first() else {
        return Vec::new();
    };
    let mut violations = Vec::new();
    // A path prefix under which nothing more is reported but packs (a crate already refused).
    let mut refused: Vec<Vec<String>> = Vec::new();
    let mut trusted: Vec<Vec<String>> = Vec::new();
    for node in &tree[1..] {
        let under = |prefixes: &[Vec<String>]| {
            prefixes
                .iter()
                .any(|p| node.path.len() > p.len() && node.path.starts_with(p))
        };
        if under(&trusted) {
            continue;
        }
        let through = node.path.join(" -> ");
        let node_role = Role::of_name(&node.name);
        let inside_refused = under(&refused);
        // A direct edge is `graph_violations`' to judge; this finds the ones through others.
        if role.is_pack_code()
            && node_role == Some(Role::Pack)
            && node.name != root.name
            && node.path.len() > 2
        {
            violations.push(Violation {
                rule: "section-7/pack-to-pack",
                from: root.name.clone(),
                to: node.name.clone(),
                message: format!("a pack's code reaches another pack (path: {through})"),
                fix: format!(
                    "depend on `{}` and use its public events and commands",
                    contract_of_pack_crate(&node.name)
                ),
            });
            continue;
        }
        if node.name == "ops-core" || (!role.is_pack_code() && node_role.is_some()) {
            trusted.push(node.path.clone());
            continue;
        }
        if let Some(entry) = denied(lists.deny, node) {
            violations.push(Violation {
                rule: "section-9/denied-crate",
                from: root.name.clone(),
                to: node.name.clone(),
                message: format!("{} (path: {through})", entry.reason),
                fix: "remove the dependency; ask the core for a typed handle instead".into(),
            });
            refused.push(node.path.clone());
            continue;
        }
        // Below a refused crate only denied crates and other packs are worth naming.
        if !role.is_pack_code() || inside_refused {
            continue;
        }
        if node_role.is_some() {
            // Ops crates: the role rules of `graph_violations` judge the edges themselves.
            trusted.push(node.path.clone());
            continue;
        }
        match lists.allow.iter().find(|e| e.crate_name == node.name) {
            Some(entry) => {
                let extra: Vec<&String> = match &entry.features {
                    Some(allowed) => node
                        .features
                        .iter()
                        .filter(|f| !allowed.contains(f))
                        .collect(),
                    None => Vec::new(),
                };
                if !extra.is_empty() {
                    violations.push(Violation {
                        rule: "section-9/feature-not-allowed",
                        from: root.name.clone(),
                        to: node.name.clone(),
                        message: format!(
                            "`{}` is allowed without {}: {} (path: {through})",
                            node.name,
                            extra.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
                            entry.reason
                        ),
                        fix: "turn the feature off (`default-features = false` and the features the pack needs)".into(),
                    });
                    refused.push(node.path.clone());
                }
            }
            None => {
                violations.push(Violation {
                    rule: "section-9/not-allowed",
                    from: root.name.clone(),
                    to: node.name.clone(),
                    message: format!(
                        "pack, contract and shared crates depend only on ops crates and the pure crates of the allow-list (path: {through})"
                    ),
                    fix: "remove the dependency (an effect is a `WRITE_EXTERNAL_SIDE_EFFECT` command, a source a connector), or add a pure crate with its reason to an allow-list (`cargo ops deps-check --allow-list FILE`; the default is cargo-ops/allow-list.toml)".into(),
                });
                refused.push(node.path.clone());
            }
        }
    }
    violations
}

fn denied<'a>(deny: &'a [DenyEntry], node: &TreeNode) -> Option<&'a DenyEntry> {
    deny.iter().find(|entry| {
        entry.crate_name == node.name
            && (entry.features.is_empty()
                || entry.features.iter().any(|d| node.features.contains(d)))
    })
}

/// A pack, contract or shared crate is one plain library: no build script (it runs code on
/// the build machine and can rewrite the crate's identity with `cargo::rustc-env`), no
/// procedural macro, and a library named after its package (the name is its identity).
fn manifest_violations(package: &Package, edition: &str) -> Vec<Violation> {
    let name = package.name.to_string();
    let mut violations = Vec::new();
    if package.edition.as_str() != edition {
        violations.push(Violation {
            rule: "sandbox/edition",
            from: name.clone(),
            to: format!("edition {}", package.edition.as_str()),
            message: format!(
                "pack code is compiled as the workspace's edition ({edition}), whose rules the sandbox reads (an older edition lets `#[no_mangle]` export a symbol without `unsafe`)"
            ),
            fix: "write `edition.workspace = true` in its `[package]`".into(),
        });
    }
    if !forbids_unsafe_on_the_command_line(package) {
        violations.push(Violation {
            rule: "sandbox/unsafe-lint",
            from: name.clone(),
            to: "Cargo.toml".into(),
            message: "pack code forbids `unsafe_code` on rustc's command line, where no attribute in its source can loosen it".into(),
            fix: "add `[lints.rust]` with `unsafe_code = \"forbid\"` to its Cargo.toml".into(),
        });
    }
    for target in &package.targets {
        let kinds: Vec<String> = target.kind.iter().map(ToString::to_string).collect();
        if kinds.iter().any(|k| k == "custom-build") {
            violations.push(Violation {
                rule: "sandbox/build-script",
                from: name.clone(),
                to: "build.rs".into(),
                message: "a build script runs arbitrary code on the build machine (network, files, environment) and can rewrite the crate's identity with `cargo::rustc-env=CARGO_PKG_NAME=…`".into(),
                fix: "remove the build script; migrations are listed in `#[pack(migrations = [...])]` and samples named with `ops_core::pack_path!`".into(),
            });
        }
        if kinds.iter().any(|k| k == "proc-macro") {
            violations.push(Violation {
                rule: "sandbox/proc-macro",
                from: name.clone(),
                to: target.name.clone(),
                message: "a procedural macro runs arbitrary code on the build machine".into(),
                fix: "write the code as ordinary Rust, or ask for a macro in ops-core".into(),
            });
        }
        if kinds.iter().any(|k| k == "lib") && target.name != name.replace('-', "_") {
            violations.push(Violation {
                rule: "sandbox/crate-name",
                from: name.clone(),
                to: target.name.clone(),
                message: format!(
                    "its library is named `{}`, not `{}`: the name of the crate rustc compiles is what the registry checks a type's owner against",
                    target.name,
                    name.replace('-', "_")
                ),
                fix: "remove `name` from the `[lib]` section".into(),
            });
        }
    }
    violations
}

/// The edition of the workspace's `[workspace.package]`, or the framework's own (2024).
fn workspace_edition(root: &Path) -> String {
    crate::manifest::Manifest::read(&root.join("Cargo.toml"))
        .ok()
        .and_then(|manifest| {
            manifest
                .string_at(&["workspace", "package", "edition"])
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "2024".to_owned())
}

/// Whether the package's manifest forbids `unsafe_code` in `[lints.rust]` (cargo passes it
/// to rustc as `--forbid unsafe_code`). `lints.workspace = true` defers to the workspace's.
fn forbids_unsafe_on_the_command_line(package: &Package) -> bool {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
    };
    let Some(manifest) = read(package.manifest_path.as_std_path()) else {
        return false;
    };
    let forbidden = |lints: Option<&toml::Value>| {
        lints
            .and_then(|lints| lints.get("rust"))
            .and_then(|rust| rust.get("unsafe_code"))
            .is_some_and(|level| {
                level.as_str() == Some("forbid")
                    || level.get("level").and_then(toml::Value::as_str) == Some("forbid")
            })
    };
    let lints = manifest.get("lints");
    if lints
        .and_then(|l| l.get("workspace"))
        .and_then(toml::Value::as_bool)
        == Some(true)
    {
        let root = package
            .manifest_path
            .ancestors()
            .skip(1)
            .map(|dir| dir.join("Cargo.toml"))
            .find_map(|path| read(path.as_std_path()).filter(|m| m.contains_key("workspace")));
        return forbidden(root.as_ref().and_then(|m| m.get("workspace")?.get("lints")));
    }
    forbidden(lints)
}

/// The sandbox rules over the crate's library source.
fn source_violations(package: &Package) -> anyhow::Result<Vec<Violation>> {
    if !package
        .targets
        .iter()
        .any(|t| t.kind.iter().any(|k| k.to_string() == "lib"))
    {
        return Ok(Vec::new());
    }
    let manifest_dir = package
        .manifest_path
        .parent()
        .map(|dir| dir.as_std_path().to_owned())
        .unwrap_or_default();
    let findings = ops_sandbox::scan_package(&manifest_dir)
        .with_context(|| format!("reading the source of `{}`", package.name))?;
    Ok(findings
        .into_iter()
        .map(|finding| {
            let file = finding
                .file
                .strip_prefix(&manifest_dir)
                .unwrap_or(&finding.file);
            Violation {
                rule: finding.rule.id(),
                from: package.name.to_string(),
                to: finding.found.clone(),
                message: format!(
                    "{} (at {}:{}:{})",
                    finding.rule.what(),
                    file.display(),
                    finding.line,
                    finding.column
                ),
                fix: finding.rule.instead().to_owned(),
            }
        })
        .collect())
}
