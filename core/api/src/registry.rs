//! The type registry: every `#[event]`, `#[command]` and `#[pack]` linked into the binary,
//! gathered once through `inventory`. Building it rejects duplicates (naming both places),
//! gaps in version chains and packs that name contracts which are not linked.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use crate::contract::{DedupeKind, Kind, SafetyClass, UpcastError, Visibility};
use crate::pack::{PackDescriptor, PackManifest, ProvidedType};

/// What `#[event]` and `#[command]` submit for each type version.
#[derive(Debug)]
pub struct TypeDescriptor {
    pub name: &'static str,
    pub version: u32,
    pub kind: Kind,
    pub visibility: Visibility,
    pub safety: Option<SafetyClass>,
    pub dedupe: Option<DedupeKind>,
    /// The type name of the compensating command, for external side effects.
    pub compensation: Option<&'static str>,
    /// The name this type had before, stated on its latest version; stored events under the
    /// old name read as this type.
    pub renamed_from: Option<&'static str>,
    pub rust_type: &'static str,
    /// `core::any::type_name` of the Rust type: its first segment is the crate rustc really
    /// compiled it in, which no build script or environment override can change.
    pub type_path: fn() -> &'static str,
    pub crate_name: &'static str,
    pub crate_version: &'static str,
    pub file: &'static str,
    pub line: u32,
    /// JSON Schema (Draft 2020-12) of the payload.
    pub schema: fn() -> Value,
    /// Whether a JSON payload decodes as this type version; the error says where it does not.
    pub check_payload: fn(&Value) -> Result<(), String>,
    /// Reads a payload of `version - 1` as this version.
    pub upcast_from_previous: Option<fn(Value) -> Result<Value, UpcastError>>,
}

inventory::collect!(TypeDescriptor);

impl TypeDescriptor {
    pub fn location(&self) -> Location {
        Location {
            rust_type: self.rust_type,
            file: self.file,
            line: self.line,
        }
    }
}

/// Where a type or pack was declared, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub rust_type: &'static str,
    pub file: &'static str,
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` at {}:{}", self.rust_type, self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryProblem {
    #[error(
        "type `{name}` version {version} is declared twice: by {first} and by {second}; rename one of them"
    )]
    DuplicateType {
        name: &'static str,
        version: u32,
        first: Location,
        second: Location,
    },
    #[error(
        "type `{name}` has version {present} but no version {missing}; declare every version from 1 with its upcaster"
    )]
    MissingVersion {
        name: &'static str,
        present: u32,
        missing: u32,
    },
    #[error(
        "type `{name}` ({renamed}) is renamed from `{old}`, but `{old}` is still declared by {still}; remove the old declaration or `renamed_from`"
    )]
    RenamedTypeStillDeclared {
        name: &'static str,
        old: &'static str,
        renamed: Location,
        still: Location,
    },
    #[error("pack `{id}` is declared twice: by {first} and by {second}")]
    DuplicatePack {
        id: &'static str,
        first: Location,
        second: Location,
    },
    #[error("pack `{id}` version `{version}` is not semver: {reason}")]
    PackVersion {
        id: &'static str,
        version: &'static str,
        reason: String,
    },
    #[error(
        "pack `{id}` lists contract `{contract}`, but no type of it is linked; add `{contract}` to the pack's dependencies or remove it from `contracts`"
    )]
    MissingContract {
        id: &'static str,
        contract: &'static str,
    },
}

/// Every problem found while building the registry, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the type registry is inconsistent:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RegistryError {
    pub problems: Vec<RegistryProblem>,
}

pub struct Registry {
    types: BTreeMap<(&'static str, u32), &'static TypeDescriptor>,
    packs: BTreeMap<&'static str, &'static PackDescriptor>,
    /// Each type version's schema, generated on first use: readers that walk schemas per
    /// event (sealing, opening, redacting) must not generate one per event.
    schemas: BTreeMap<(&'static str, u32), OnceLock<Schema>>,
}

/// A generated schema and whether any field in it is marked sensitive.
struct Schema {
    document: serde_json::Value,
    sensitive: bool,
}

/// The registry of this binary, built on first use.
pub fn registry() -> Result<&'static Registry, &'static RegistryError> {
    static REGISTRY: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            Registry::build(
                inventory::iter::<TypeDescriptor>(),
                inventory::iter::<PackDescriptor>(),
            )
        })
        .as_ref()
}

impl Registry {
    pub fn build(
        types: impl IntoIterator<Item = &'static TypeDescriptor>,
        packs: impl IntoIterator<Item = &'static PackDescriptor>,
    ) -> Result<Self, RegistryError> {
        let mut problems = Vec::new();
        let mut by_key: BTreeMap<(&'static str, u32), &'static TypeDescriptor> = BTreeMap::new();
        // Sorted by location so the "first" of a duplicate does not depend on link order.
        let mut types: Vec<_> = types.into_iter().collect();
        types.sort_by_key(|t| (t.file, t.line, t.rust_type));
        for descriptor in types {
            if let Some(first) = by_key.insert((descriptor.name, descriptor.version), descriptor) {
                problems.push(RegistryProblem::DuplicateType {
                    name: descriptor.name,
                    version: descriptor.version,
                    first: first.location(),
                    second: descriptor.location(),
                });
            }
        }
        let mut latest: BTreeMap<&'static str, u32> = BTreeMap::new();
        for &(name, version) in by_key.keys() {
            let entry = latest.entry(name).or_default();
            *entry = (*entry).max(version);
        }
        for (&name, &present) in &latest {
            for missing in (1..present).filter(|v| !by_key.contains_key(&(name, *v))) {
                problems.push(RegistryProblem::MissingVersion {
                    name,
                    present,
                    missing,
                });
            }
        }
        for descriptor in by_key.values() {
            if let Some(old) = descriptor.renamed_from
                && let Some(still) = by_key.values().find(|t| t.name == old)
            {
                problems.push(RegistryProblem::RenamedTypeStillDeclared {
                    name: descriptor.name,
                    old,
                    renamed: descriptor.location(),
                    still: still.location(),
                });
            }
        }
        let mut by_id: BTreeMap<&'static str, &'static PackDescriptor> = BTreeMap::new();
        for pack in packs {
            if let Err(error) = semver::Version::parse(pack.version) {
                problems.push(RegistryProblem::PackVersion {
                    id: pack.id,
                    version: pack.version,
                    reason: error.to_string(),
                });
            }
            for &contract in pack.contracts {
                if !by_key.values().any(|t| t.crate_name == contract) {
                    problems.push(RegistryProblem::MissingContract {
                        id: pack.id,
                        contract,
                    });
                }
            }
            if let Some(first) = by_id.insert(pack.id, pack) {
                problems.push(RegistryProblem::DuplicatePack {
                    id: pack.id,
                    first: pack_location(first),
                    second: pack_location(pack),
                });
            }
        }
        if problems.is_empty() {
            Ok(Registry {
                schemas: by_key.keys().map(|key| (*key, OnceLock::new())).collect(),
                types: by_key,
                packs: by_id,
            })
        } else {
            Err(RegistryError { problems })
        }
    }

    /// Every type version, sorted by name then version.
    pub fn types(&self) -> impl Iterator<Item = &'static TypeDescriptor> + '_ {
        self.types.values().copied()
    }

    pub fn get(&self, name: &str, version: u32) -> Option<&'static TypeDescriptor> {
        self.types
            .range((name, version)..=(name, version))
            .next()
            .map(|(_, t)| *t)
    }

    /// The JSON Schema of `name` v`version`, generated once per registry.
    pub fn schema(&self, name: &str, version: u32) -> Option<&serde_json::Value> {
        self.generated(name, version).map(|schema| &schema.document)
    }

    /// Whether `name` v`version` has a field marked `#[sensitive]`, anywhere inside it.
    pub fn has_sensitive_fields(&self, name: &str, version: u32) -> bool {
        self.generated(name, version)
            .is_some_and(|schema| schema.sensitive)
    }

    fn generated(&self, name: &str, version: u32) -> Option<&Schema> {
        let descriptor = self.get(name, version)?;
        let cell = self.schemas.get(&(descriptor.name, descriptor.version))?;
        Some(cell.get_or_init(|| {
            let document = (descriptor.schema)();
            Schema {
                sensitive: crate::redaction::marks_sensitive(&document),
                document,
            }
        }))
    }

    /// The current (highest) version of `name`.
    pub fn latest(&self, name: &str) -> Option<&'static TypeDescriptor> {
        self.types
            .range((name, 0)..=(name, u32::MAX))
            .next_back()
            .map(|(_, descriptor)| *descriptor)
    }

    /// The current name of a type stored under `name`: itself, or the type renamed from it.
    pub fn current_name(&self, name: &str) -> Option<&'static str> {
        if let Some(descriptor) = self.latest(name) {
            return Some(descriptor.name);
        }
        self.types
            .values()
            .find(|descriptor| descriptor.renamed_from == Some(name))
            .map(|descriptor| descriptor.name)
    }

    /// Reads a stored payload of `name` at `version` as the current version, through every
    /// upcaster in between. Returns the current version and the payload.
    pub fn upcast_to_latest(
        &self,
        name: &str,
        version: u32,
        mut payload: Value,
    ) -> Result<(u32, Value), UpcastError> {
        let latest = self.latest(name).ok_or_else(|| UpcastError::UnknownType {
            type_name: name.to_owned(),
        })?;
        if self.get(name, version).is_none() {
            return Err(UpcastError::UnknownVersion {
                type_name: name.to_owned(),
                version,
            });
        }
        for next in version + 1..=latest.version {
            let step = self
                .get(name, next)
                .and_then(|descriptor| descriptor.upcast_from_previous)
                .ok_or_else(|| UpcastError::UnknownVersion {
                    type_name: name.to_owned(),
                    version: next,
                })?;
            payload = step(payload)?;
        }
        Ok((latest.version, payload))
    }

    pub fn packs(&self) -> impl Iterator<Item = &'static PackDescriptor> + '_ {
        self.packs.values().copied()
    }

    /// The manifest of an installed pack: its types are those of `pack.<id>.*`, whether
    /// defined in the pack crate or its contract crate.
    pub fn manifest(&self, pack: &PackDescriptor) -> PackManifest {
        let namespace = format!("pack.{}.", pack.id);
        let provides = self
            .types()
            .filter(|t| t.name.starts_with(&namespace))
            .map(|t| ProvidedType {
                name: t.name.to_owned(),
                version: t.version,
                kind: t.kind,
                visibility: t.visibility,
            })
            .collect();
        let mut contracts: Vec<String> = pack.contracts.iter().map(|c| (*c).to_owned()).collect();
        contracts.sort();
        PackManifest {
            id: pack.id.to_owned(),
            version: semver::Version::parse(pack.version)
                .expect("checked when the registry was built"),
            crate_name: pack.crate_name.to_owned(),
            contracts,
            provides,
            migrations_prefix: format!("pack_{}_", pack.id),
        }
    }
}

fn pack_location(pack: &PackDescriptor) -> Location {
    Location {
        rust_type: pack.rust_type,
        file: pack.file,
        line: pack.line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_schema() -> Value {
        json!({})
    }

    const fn descriptor(name: &'static str, version: u32, line: u32) -> TypeDescriptor {
        TypeDescriptor {
            name,
            version,
            kind: Kind::Event,
            visibility: Visibility::Public,
            safety: None,
            dedupe: None,
            compensation: None,
            renamed_from: None,
            rust_type: "fixture::Opened",
            type_path: || "ops_contract_fixture::Opened",
            crate_name: "ops-contract-fixture",
            crate_version: "0.1.0",
            file: "fixture.rs",
            line,
            schema: no_schema,
            check_payload: |_| Ok(()),
            upcast_from_previous: None,
        }
    }

    static FIRST: TypeDescriptor = descriptor("pack.fixture.incident.Opened", 1, 10);
    static SECOND: TypeDescriptor = descriptor("pack.fixture.incident.Opened", 1, 20);
    static THIRD: TypeDescriptor = descriptor("pack.fixture.incident.Opened", 3, 30);

    #[test]
    fn duplicate_names_are_rejected_with_both_locations() {
        let error = Registry::build([&FIRST, &SECOND], [])
            .err()
            .expect("duplicate accepted");
        let message = error.to_string();
        assert!(
            message.contains("fixture.rs:10") && message.contains("fixture.rs:20"),
            "{message}"
        );
        assert!(matches!(
            error.problems[0],
            RegistryProblem::DuplicateType { version: 1, .. }
        ));
    }

    #[test]
    fn version_gaps_are_rejected() {
        let error = Registry::build([&FIRST, &THIRD], [])
            .err()
            .expect("gap accepted");
        assert_eq!(
            error.problems,
            vec![RegistryProblem::MissingVersion {
                name: "pack.fixture.incident.Opened",
                present: 3,
                missing: 2
            }]
        );
    }

    static RENAMED: TypeDescriptor = TypeDescriptor {
        renamed_from: Some("pack.fixture.incident.Opened"),
        ..descriptor("pack.fixture.incident.Raised", 1, 40)
    };

    #[test]
    fn old_names_resolve_to_the_renamed_type() {
        let registry = Registry::build([&RENAMED], []).expect("registry");
        assert_eq!(
            registry.current_name("pack.fixture.incident.Opened"),
            Some("pack.fixture.incident.Raised")
        );
        assert_eq!(
            registry.current_name("pack.fixture.incident.Raised"),
            Some("pack.fixture.incident.Raised")
        );
        assert_eq!(registry.current_name("pack.fixture.incident.Closed"), None);
    }

    #[test]
    fn a_rename_must_retire_the_old_declaration() {
        let error = Registry::build([&FIRST, &RENAMED], [])
            .err()
            .expect("rename beside its old name accepted");
        let message = error.to_string();
        assert!(
            message.contains("renamed from `pack.fixture.incident.Opened`")
                && message.contains("fixture.rs:10"),
            "{message}"
        );
    }

    #[test]
    fn packs_must_link_the_contracts_they_list() {
        static PACK: PackDescriptor = PackDescriptor {
            id: "fixture",
            version: "0.1.0",
            crate_name: "pack-fixture",
            contracts: &["ops-contract-fixture", "ops-contract-missing"],
            migrations: &[],
            rust_type: "fixture::FixturePack",
            type_path: || "pack_fixture::FixturePack",
            file: "pack.rs",
            line: 1,
        };
        let error = Registry::build([&FIRST], [&PACK])
            .err()
            .expect("missing contract accepted");
        assert_eq!(
            error.problems,
            vec![RegistryProblem::MissingContract {
                id: "fixture",
                contract: "ops-contract-missing"
            }]
        );
    }
}
