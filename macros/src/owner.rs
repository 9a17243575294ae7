//! The owner of a contract type is the crate that defines it. It is read from Cargo's
//! `CARGO_PKG_NAME` during expansion, never from the attribute, so no attribute can claim
//! another owner's namespace.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `ops-core`: `core.<Name>`.
    Core,
    /// `ops-shared-<pkg>`: `shared.<pkg>.<Name>`.
    Shared { package: String },
    /// `ops-contract-<id>`: the public surface of pack `<id>`.
    Contract { pack_id: String },
    /// `pack-<id>`: the pack itself; its contract types are private.
    Pack { pack_id: String },
}

#[derive(Clone, Debug)]
pub struct OwningCrate {
    pub crate_name: String,
    pub owner: Result<Owner, String>,
    /// The Rust crate the generated code must find itself in (`pack_incidents`): Cargo's
    /// environment can be rewritten by a build script, `module_path!()` cannot, so the
    /// expansion asserts the two agree. `None` for trybuild's cases, compiled as binaries
    /// named after the case.
    pub compiled_as: Option<String>,
}

impl OwningCrate {
    pub fn from_env() -> Self {
        let crate_name = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
        let trybuild = trybuild_identity(&crate_name);
        let owner = owner_of(trybuild.unwrap_or(&crate_name));
        let compiled_as = trybuild.is_none().then(|| crate_name.replace('-', "_"));
        OwningCrate {
            crate_name,
            owner,
            compiled_as,
        }
    }
}

/// trybuild compiles the UI tests of crate `x` as a generated crate `x-tests` under
/// `target/tests/trybuild/x/`. Those cases are written as if they were code of `x`, so
/// they get `x`'s identity; a real crate named `x-tests` elsewhere does not.
fn trybuild_identity(crate_name: &str) -> Option<&str> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let under_trybuild = std::path::Path::new(&manifest_dir)
        .components()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|pair| pair[0].as_os_str() == "tests" && pair[1].as_os_str() == "trybuild");
    if under_trybuild {
        crate_name.strip_suffix("-tests")
    } else {
        None
    }
}

pub fn owner_of(crate_name: &str) -> Result<Owner, String> {
    let segment = |rest: &str| -> Result<String, String> {
        let id = rest.replace('-', "_");
        if is_identifier(&id) {
            Ok(id)
        } else {
            Err(format!(
                "crate `{crate_name}` does not name a valid owner id; use lower-case letters, digits and `-`"
            ))
        }
    };
    // A pack's tables are `pack_<id>_*`: an id with `_` would share its prefix with a
    // shorter id's, so pack ids (and the contract modules named after them) have none.
    let pack_id = |rest: &str| -> Result<String, String> {
        let id = segment(rest)?;
        if id.contains('_') {
            return Err(format!(
                "crate `{crate_name}` would make pack `{id}`, whose tables `pack_{id}_*` pack `{}` could claim too; pack ids are lower-case letters and digits, so name it `{}{}`",
                id.split('_').next().unwrap_or_default(),
                crate_name.strip_suffix(rest).unwrap_or_default(),
                rest.replace('-', "")
            ));
        }
        Ok(id)
    };
    if crate_name == "ops-core" {
        Ok(Owner::Core)
    } else if let Some(rest) = crate_name.strip_prefix("ops-shared-") {
        segment(rest).map(|package| Owner::Shared { package })
    } else if let Some(rest) = crate_name.strip_prefix("ops-contract-") {
        pack_id(rest).map(|pack_id| Owner::Contract { pack_id })
    } else if let Some(rest) = crate_name.strip_prefix("pack-") {
        pack_id(rest).map(|pack_id| Owner::Pack { pack_id })
    } else {
        Err(format!(
            "crate `{crate_name}` cannot own contract types; define them in `pack-<id>`, `ops-contract-<id>`, `ops-shared-<pkg>` or `ops-core`"
        ))
    }
}

/// Lower-case ASCII identifier: `[a-z][a-z0-9_]*`.
pub fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

impl Owner {
    /// The namespaced type name, `domain` being required exactly for pack owners.
    pub fn type_name(&self, domain: Option<&str>, name: &str) -> String {
        match (self, domain) {
            (Owner::Core, _) => format!("core.{name}"),
            (Owner::Shared { package }, _) => format!("shared.{package}.{name}"),
            (Owner::Contract { pack_id } | Owner::Pack { pack_id }, Some(domain)) => {
                format!("pack.{pack_id}.{domain}.{name}")
            }
            (Owner::Contract { pack_id } | Owner::Pack { pack_id }, None) => {
                format!("pack.{pack_id}.{name}")
            }
        }
    }

    /// The prefix every type name of this owner starts with.
    pub fn namespace(&self) -> String {
        match self {
            Owner::Core => "core.".to_owned(),
            Owner::Shared { package } => format!("shared.{package}."),
            Owner::Contract { pack_id } | Owner::Pack { pack_id } => format!("pack.{pack_id}."),
        }
    }

    pub fn needs_domain(&self) -> bool {
        matches!(self, Owner::Contract { .. } | Owner::Pack { .. })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Core => f.write_str("ops-core"),
            Owner::Shared { package } => write!(f, "shared package `{package}`"),
            Owner::Contract { pack_id } => write!(f, "the contract of pack `{pack_id}`"),
            Owner::Pack { pack_id } => write!(f, "pack `{pack_id}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_map_to_owners() {
        assert_eq!(owner_of("ops-core"), Ok(Owner::Core));
        assert_eq!(
            owner_of("ops-shared-people"),
            Ok(Owner::Shared {
                package: "people".into()
            })
        );
        assert_eq!(
            owner_of("ops-contract-incidents"),
            Ok(Owner::Contract {
                pack_id: "incidents".into()
            })
        );
        // Its tables would start `pack_crm_sync_`, which pack `crm` may also claim.
        let refused = owner_of("pack-crm-sync").unwrap_err();
        assert!(refused.contains("name it `pack-crmsync`"), "{refused}");
        assert!(owner_of("ops-contract-crm-sync").is_err());
        assert_eq!(
            owner_of("pack-crmsync"),
            Ok(Owner::Pack {
                pack_id: "crmsync".into()
            })
        );
        assert_eq!(
            owner_of("ops-shared-people-directory"),
            Ok(Owner::Shared {
                package: "people_directory".into()
            })
        );
        assert!(owner_of("serde").is_err());
        assert!(owner_of("pack-9lives").is_err());
    }

    #[test]
    fn type_names_follow_the_namespace_rules() {
        let pack = Owner::Pack {
            pack_id: "incidents".into(),
        };
        assert_eq!(
            pack.type_name(Some("incident"), "Opened"),
            "pack.incidents.incident.Opened"
        );
        assert_eq!(
            Owner::Core.type_name(None, "CapabilityGranted"),
            "core.CapabilityGranted"
        );
        let shared = Owner::Shared {
            package: "people".into(),
        };
        assert_eq!(
            shared.type_name(None, "PersonRef"),
            "shared.people.PersonRef"
        );
    }
}
