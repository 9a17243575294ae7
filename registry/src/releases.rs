//! The releases (Section 3, A7) of what a binary links: each installed pack and each
//! contract module, with their content hashes and pins, and the pins of the binary itself,
//! against which a release's pins are checked before it becomes active.

use std::collections::BTreeMap;

use ops_core::governance::Pins;
use ops_core::id::payload_hash;
use ops_core::pack::PackDescriptor;
use ops_core::registry::{Registry, TypeDescriptor};
use ops_core::supply_chain::{ArtifactKind, Release};
use serde_json::{Value, json};

/// Crates whose types are a contract module's (Section 1): `ops-contract-*`, `ops-shared-*`.
fn is_contract_module(crate_name: &str) -> bool {
    crate_name.starts_with("ops-contract-") || crate_name.starts_with("ops-shared-")
}

/// What this binary runs: the core version and the version of every contract module.
pub fn environment(registry: &Registry) -> Pins {
    Pins {
        core_version: ops_core::VERSION.to_owned(),
        contracts: registry
            .types()
            .filter(|t| is_contract_module(t.crate_name))
            .map(|t| (t.crate_name.to_owned(), t.crate_version.to_owned()))
            .collect(),
        tools: BTreeMap::new(),
    }
}

/// `name@vN` → the hash of its schema, for the types `select` picks.
fn schema_hashes(registry: &Registry, select: impl Fn(&TypeDescriptor) -> bool) -> Value {
    let hashes: BTreeMap<String, String> = registry
        .types()
        .filter(|t| select(t))
        .map(|t| {
            let schema = registry
                .schema(t.name, t.version)
                .expect("every registered type has a schema");
            (
                format!("{}@v{}", t.name, t.version),
                payload_hash(schema).to_string(),
            )
        })
        .collect();
    json!(hashes)
}

/// A pack's release: its manifest, its code (the hash `#[pack]` took of the crate's files),
/// its migrations' SQL and its types' schemas, pinned to the core and the contract modules
/// it declares, as `running` has them.
fn pack_release(registry: &Registry, pack: &PackDescriptor, running: &Pins) -> Release {
    let manifest = registry.manifest(pack);
    let namespace = format!("pack.{}.", pack.id);
    let migrations: Vec<(&str, &str)> = pack.migrations.iter().map(|m| (m.name, m.sql)).collect();
    let content = json!({
        "manifest": manifest,
        "code": pack.code_hash,
        "migrations": migrations,
        "schemas": schema_hashes(registry, |t| t.name.starts_with(&namespace)),
    });
    Release {
        kind: ArtifactKind::Pack,
        name: pack.id.to_owned(),
        version: pack.version.to_owned(),
        content_hash: payload_hash(&content),
        pins: Pins {
            core_version: running.core_version.clone(),
            contracts: running
                .contracts
                .iter()
                .filter(|(module, _)| pack.contracts.contains(&module.as_str()))
                .map(|(module, version)| (module.clone(), version.clone()))
                .collect(),
            tools: BTreeMap::new(),
        },
    }
}

/// A contract module's release: the schemas of the types it defines.
fn contract_module_release(registry: &Registry, module: &str, version: &str) -> Release {
    Release {
        kind: ArtifactKind::ContractModule,
        name: module.to_owned(),
        version: version.to_owned(),
        content_hash: payload_hash(&schema_hashes(registry, |t| t.crate_name == module)),
        pins: Pins {
            core_version: ops_core::VERSION.to_owned(),
            ..Pins::default()
        },
    }
}

/// Every installed pack's and contract module's release, packs first, by name.
pub fn installed(registry: &Registry) -> Vec<Release> {
    let running = environment(registry);
    let mut packs: Vec<Release> = registry
        .packs()
        .map(|pack| pack_release(registry, pack, &running))
        .collect();
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    packs
        .into_iter()
        .chain(
            running
                .contracts
                .iter()
                .map(|(module, version)| contract_module_release(registry, module, version)),
        )
        .collect()
}
