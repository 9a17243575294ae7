//! What each crate is, in any workspace: pack code by its name (the ops macros namespace
//! its types by that name, so no other name can hold a pack), and the crates whose names
//! are a team's own (its host, its tooling, its test crates) by
//! `[package.metadata.ops] role = "host" | "tooling" | "tests"` in their manifest. A crate
//! that depends on `ops-host` and declares nothing is a host.

use cargo_metadata::Package;

/// A crate's place in the dependency graph of constitution Section 7 (ARCHITECTURE.md,
/// "Code map").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Core,
    Macros,
    /// `ops-sandbox`: the sandbox rules, used by the macros and deps-check.
    Sandbox,
    Runtime,
    Shared,
    Contract,
    Pack,
    Registry,
    /// `schema-compat`: JSON Schema inclusion, knowing nothing of ops.
    SchemaCompat,
    /// `ops-host`, or a team's host crate that links packs.
    Host,
    /// `ops-host-build`: a host crate's build script helper, knowing nothing of ops.
    HostBuild,
    /// `xtask`, `cargo-ops` and a team's own chores.
    Tooling,
    Tests,
}

/// The roles a manifest may declare; the rest follow from names.
pub const DECLARABLE: &[(&str, Role)] = &[
    ("host", Role::Host),
    ("tooling", Role::Tooling),
    ("tests", Role::Tests),
];

impl Role {
    /// The role a crate's name gives it.
    pub fn of_name(name: &str) -> Option<Role> {
        Some(match name {
            "ops-core" => Role::Core,
            "ops-macros" => Role::Macros,
            "ops-sandbox" => Role::Sandbox,
            "ops-core-runtime" => Role::Runtime,
            "ops-registry" => Role::Registry,
            "schema-compat" => Role::SchemaCompat,
            "ops-host" => Role::Host,
            "ops-host-build" => Role::HostBuild,
            "xtask" | "cargo-ops" => Role::Tooling,
            "ops-tests" => Role::Tests,
            _ if name.starts_with("ops-shared-") => Role::Shared,
            _ if name.starts_with("ops-contract-") => Role::Contract,
            _ if name.starts_with("pack-") => Role::Pack,
            _ => return None,
        })
    }

    /// The role of a package: its name's, else what its manifest declares, else `Host`
    /// when it depends on `ops-host`. `Err` names a declared role that is not one.
    pub fn of(package: &Package) -> Result<Option<Role>, String> {
        if let Some(role) = Role::of_name(&package.name) {
            return Ok(Some(role));
        }
        match declared(package) {
            Some(declared) => DECLARABLE
                .iter()
                .find(|(name, _)| *name == declared)
                .map(|(_, role)| Some(*role))
                .ok_or_else(|| {
                    format!(
                        "`[package.metadata.ops] role = \"{declared}\"` is not a role a manifest can declare ({})",
                        DECLARABLE
                            .iter()
                            .map(|(name, _)| format!("`{name}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }),
            None => Ok(package
                .dependencies
                .iter()
                .any(|dep| dep.name == "ops-host" && dep.kind == cargo_metadata::DependencyKind::Normal)
                .then_some(Role::Host)),
        }
    }

    /// A package's role, a declared role that is not one counting as none.
    pub fn of_package(package: &Package) -> Option<Role> {
        Role::of(package).ok().flatten()
    }

    /// Crates whose whole dependency tree must stay free of raw I/O.
    pub fn is_sandboxed(self) -> bool {
        matches!(
            self,
            Role::Core | Role::Macros | Role::Sandbox | Role::Shared | Role::Contract | Role::Pack
        )
    }

    /// Crates that hold pack code: no ambient authority, dependencies by allow-list only.
    pub fn is_pack_code(self) -> bool {
        matches!(self, Role::Shared | Role::Contract | Role::Pack)
    }
}

fn declared(package: &Package) -> Option<&str> {
    package.metadata.get("ops")?.get("role")?.as_str()
}

/// The id of the pack crate `pack-<id>` (`pack-crm-sync` would be `crm_sync`, which
/// `#[pack]` and the host refuse).
pub fn pack_id(crate_name: &str) -> Option<String> {
    crate_name
        .strip_prefix("pack-")
        .map(|rest| rest.replace('-', "_"))
}

/// The crate of pack `id`: `pack-<id>`, with `_` written `-`.
pub fn pack_crate(id: &str) -> String {
    format!("pack-{}", id.replace('_', "-"))
}

/// The contract crate of pack `id`: `ops-contract-<id>`, with `_` written `-`.
pub fn contract_crate(id: &str) -> String {
    format!("ops-contract-{}", id.replace('_', "-"))
}

/// The contract crate of the pack crate `pack-<id>`.
pub fn contract_of_pack_crate(crate_name: &str) -> String {
    crate_name.replacen("pack-", "ops-contract-", 1)
}
