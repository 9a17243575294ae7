//! Pack manifests (A7: packs are governed artifacts with a content id and a semver).

use serde::{Deserialize, Serialize};

use crate::canonical::CanonicalError;
use crate::contract::{Kind, Visibility};
use crate::id::ContentId;

/// Implemented by `#[pack]` on the pack's unit struct, and by nothing else (sealed).
pub trait Pack: crate::__private::PackSeal + 'static {
    const ID: &'static str;
    const VERSION: &'static str;
    /// The contract modules its manifest lists: the only crates whose public types it may
    /// name besides its own and the core's.
    const CONTRACTS: &'static [&'static str];
}

/// Whether `id` may be a pack's id: lower-case letters and digits, a letter first. No `_`:
/// a pack's tables are `pack_<id>_*`, and with `_` in ids pack `crm` would own the prefix
/// of pack `crm_sync`'s tables. (`#[pack]` refuses such a crate at compile time; the host
/// checks again, since the id is the pack's constant.)
pub fn is_valid_pack_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// What `#[pack]` submits to the registry.
#[derive(Debug)]
pub struct PackDescriptor {
    pub id: &'static str,
    pub version: &'static str,
    pub crate_name: &'static str,
    /// Contract modules the pack depends on (`ops-contract-*`, `ops-shared-*`).
    pub contracts: &'static [&'static str],
    /// SQL migrations of the pack's own tables (`pack_<id>_*`), in order; the host runs
    /// them in the pack's name and refuses any that touches another prefix.
    pub migrations: &'static [PackMigration],
    /// The hash of the crate's code (`Cargo.toml`, `build.rs`, `src/`, `migrations/`), as
    /// `#[pack]` computed it when the crate was compiled: what its release covers.
    pub code_hash: &'static str,
    pub rust_type: &'static str,
    /// `core::any::type_name` of the pack struct (see `TypeDescriptor::type_path`).
    pub type_path: fn() -> &'static str,
    pub file: &'static str,
    pub line: u32,
}

inventory::collect!(PackDescriptor);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackMigration {
    /// The file stem, e.g. `0001_create_notes`.
    pub name: &'static str,
    pub sql: &'static str,
}

/// The manifest shape; changing it is a major change (Section 4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackManifest {
    pub id: String,
    pub version: semver::Version,
    pub crate_name: String,
    pub contracts: Vec<String>,
    pub provides: Vec<ProvidedType>,
    /// Tables of this pack are named with this prefix and no other (Section 1).
    pub migrations_prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProvidedType {
    pub name: String,
    pub version: u32,
    pub kind: Kind,
    pub visibility: Visibility,
}

impl PackManifest {
    /// blake3 over the canonical JSON of the manifest.
    pub fn content_id(&self) -> Result<ContentId, CanonicalError> {
        ContentId::of(self)
    }
}
