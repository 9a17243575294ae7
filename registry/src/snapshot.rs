//! The committed snapshot `registry/snapshot.json`: the history of every public contract.
//!
//! It keeps every payload version's schema of every public type, even after the type is
//! removed or made private (stored events outlive the code), with its owner, visibility,
//! safety class and rename; the versions of the crates that own public types; the envelope
//! version; and every installed pack's manifest. [`Snapshot::blessed`] folds a new export
//! into it without ever dropping a version.

use std::collections::BTreeMap;
use std::path::Path;

use ops_core::contract::{DedupeKind, Kind, SafetyClass, Visibility};
use ops_core::id::ContentHash;
use ops_core::pack::PackManifest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{Export, TypeEntry};

/// Bumped when the shape of `snapshot.json` changes.
pub const SNAPSHOT_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub envelope_version: u32,
    /// The version of every crate that owns a public type.
    pub crates: BTreeMap<String, semver::Version>,
    pub types: BTreeMap<String, TypeHistory>,
    pub packs: BTreeMap<String, PackManifest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeHistory {
    pub kind: Kind,
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<DedupeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    pub owner_crate: String,
    /// No longer declared by any linked crate; kept so its stored events stay describable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    pub versions: BTreeMap<u32, VersionHistory>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionHistory {
    pub schema_hash: ContentHash,
    pub schema: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a registry snapshot at line {line}, column {column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: snapshot format {found} is not the supported format {SNAPSHOT_FORMAT}")]
    Format { path: String, found: u32 },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl Snapshot {
    /// The public surface of one export; private types only appear in pack manifests.
    pub fn of(export: &Export) -> Self {
        let mut types: BTreeMap<String, TypeHistory> = BTreeMap::new();
        let mut crates = BTreeMap::new();
        let public = export
            .document
            .types
            .iter()
            .filter(|entry| entry.visibility == Visibility::Public);
        for entry in public {
            let history = types
                .entry(entry.name.clone())
                .or_insert_with(|| TypeHistory::describing(entry));
            // Entries come sorted by version, so the last one describes the type.
            *history = TypeHistory {
                versions: std::mem::take(&mut history.versions),
                ..TypeHistory::describing(entry)
            };
            let schema = export
                .schema(&entry.name, entry.version)
                .cloned()
                .unwrap_or(Value::Null);
            history.versions.insert(
                entry.version,
                VersionHistory {
                    schema_hash: entry.schema_hash,
                    schema,
                },
            );
            if let Ok(version) = semver::Version::parse(&entry.owner_crate_version) {
                crates.insert(entry.owner_crate.clone(), version);
            }
        }
        let packs = export
            .document
            .packs
            .iter()
            .map(|pack| (pack.manifest.id.clone(), pack.manifest.clone()))
            .collect();
        Snapshot {
            format: SNAPSHOT_FORMAT,
            envelope_version: export.document.envelope_version,
            crates,
            types,
            packs,
        }
    }

    /// This snapshot after a deliberate change to `current`: the current surface, plus the
    /// history of every type and version it no longer declares.
    pub fn blessed(&self, current: &Export) -> Self {
        let mut next = Snapshot::of(current);
        for (name, old) in &self.types {
            match next.types.get_mut(name) {
                Some(history) => {
                    for (version, entry) in &old.versions {
                        history
                            .versions
                            .entry(*version)
                            .or_insert_with(|| entry.clone());
                    }
                }
                None => {
                    let still_declared = current.document.types.iter().any(|t| t.name == *name);
                    let mut kept = old.clone();
                    if still_declared {
                        kept.visibility = Visibility::Private;
                    } else {
                        kept.removed = true;
                    }
                    next.types.insert(name.clone(), kept);
                }
            }
        }
        next
    }

    pub fn read(path: &Path) -> Result<Self, SnapshotError> {
        let text = std::fs::read_to_string(path).map_err(|source| SnapshotError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// `origin` names where the text came from (a path, or `REF:path`) in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SnapshotError> {
        let format = serde_json::from_str::<FormatOnly>(text).map(|only| only.format);
        if let Ok(found) = format
            && found != SNAPSHOT_FORMAT
        {
            return Err(SnapshotError::Format {
                path: origin.to_owned(),
                found,
            });
        }
        serde_json::from_str(text).map_err(|error| SnapshotError::Parse {
            path: origin.to_owned(),
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        })
    }

    /// Pretty JSON with a final newline, so the committed file diffs line by line; the
    /// folder is created when it does not exist yet.
    pub fn write(&self, path: &Path) -> Result<(), SnapshotError> {
        let mut text = serde_json::to_string_pretty(self).expect("a snapshot is plain JSON");
        text.push('\n');
        let failed = |source| SnapshotError::Write {
            path: path.display().to_string(),
            source,
        };
        // The first `--bless` of a workspace creates the folder the snapshot lives in.
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(failed)?;
        }
        std::fs::write(path, text).map_err(failed)
    }

    /// Public, still-declared types: the surface the policy protects.
    pub fn live_types(&self) -> impl Iterator<Item = (&String, &TypeHistory)> {
        self.types
            .iter()
            .filter(|(_, history)| history.visibility == Visibility::Public && !history.removed)
    }
}

#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

impl TypeHistory {
    fn describing(entry: &TypeEntry) -> Self {
        TypeHistory {
            kind: entry.kind,
            visibility: entry.visibility,
            safety: entry.safety,
            dedupe: entry.dedupe,
            compensation: entry.compensation.clone(),
            renamed_from: entry.renamed_from.clone(),
            owner_crate: entry.owner_crate.clone(),
            removed: false,
            versions: BTreeMap::new(),
        }
    }

    pub fn latest_version(&self) -> u32 {
        self.versions.keys().next_back().copied().unwrap_or(0)
    }
}
