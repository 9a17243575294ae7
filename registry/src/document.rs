//! The exported registry: `registry.json` and `schemas/<type>@v<N>.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ops_core::canonical::to_canonical_vec;
use ops_core::contract::{DedupeKind, Kind, SafetyClass, Visibility};
use ops_core::envelope::ENVELOPE_VERSION;
use ops_core::id::{ContentHash, ContentId};
use ops_core::pack::PackManifest;
use ops_core::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bumped when the shape of `registry.json` changes.
pub const DOCUMENT_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistryDocument {
    pub format: u32,
    pub envelope_version: u32,
    pub types: Vec<TypeEntry>,
    pub packs: Vec<PackEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeEntry {
    pub name: String,
    pub version: u32,
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
    pub owner_crate_version: String,
    pub rust_type: String,
    /// Where the type is declared, relative to the workspace root.
    pub source: SourceLocation,
    /// blake3 of the canonical schema.
    pub schema_hash: ContentHash,
    /// Relative to the document: `schemas/<name>@v<version>.json`.
    pub schema_file: String,
    /// Versions this one reads through upcasters, oldest first (`[1, 2]` for version 3).
    pub upcast_chain: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackEntry {
    pub content_id: ContentId,
    pub manifest: PackManifest,
}

/// A document with the schemas it refers to.
pub struct Export {
    pub document: RegistryDocument,
    /// Keyed by `schema_file`.
    pub schemas: BTreeMap<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
}

pub fn schema_file_name(name: &str, version: u32) -> String {
    format!("schemas/{name}@v{version}.json")
}

impl Export {
    pub fn of(registry: &Registry) -> Result<Self, ExportError> {
        let mut types = Vec::new();
        let mut schemas = BTreeMap::new();
        for descriptor in registry.types() {
            let schema = (descriptor.schema)();
            let canonical = to_canonical_vec(&schema).map_err(|error| ExportError::Encode {
                what: format!(
                    "the schema of `{}` v{}",
                    descriptor.name, descriptor.version
                ),
                message: error.to_string(),
            })?;
            let schema_file = schema_file_name(descriptor.name, descriptor.version);
            types.push(TypeEntry {
                name: descriptor.name.to_owned(),
                version: descriptor.version,
                kind: descriptor.kind,
                visibility: descriptor.visibility,
                safety: descriptor.safety,
                dedupe: descriptor.dedupe,
                compensation: descriptor.compensation.map(str::to_owned),
                renamed_from: descriptor.renamed_from.map(str::to_owned),
                owner_crate: descriptor.crate_name.to_owned(),
                owner_crate_version: descriptor.crate_version.to_owned(),
                rust_type: descriptor.rust_type.to_owned(),
                source: SourceLocation {
                    file: descriptor.file.to_owned(),
                    line: descriptor.line,
                },
                schema_hash: ContentHash::of_bytes(&canonical),
                schema_file: schema_file.clone(),
                upcast_chain: (1..descriptor.version).collect(),
            });
            schemas.insert(schema_file, schema);
        }
        let mut packs = Vec::new();
        for pack in registry.packs() {
            let manifest = registry.manifest(pack);
            let content_id = manifest.content_id().map_err(|error| ExportError::Encode {
                what: format!("the manifest of pack `{}`", pack.id),
                message: error.to_string(),
            })?;
            packs.push(PackEntry {
                content_id,
                manifest,
            });
        }
        let document = RegistryDocument {
            format: DOCUMENT_FORMAT,
            envelope_version: ENVELOPE_VERSION,
            types,
            packs,
        };
        Ok(Export { document, schemas })
    }

    /// The exported schema of one type version.
    pub fn schema(&self, name: &str, version: u32) -> Option<&Value> {
        self.schemas.get(&schema_file_name(name, version))
    }

    /// Reads what [`Export::write_to`] wrote; errors name the file and what is wrong.
    pub fn read_from(dir: &Path) -> Result<Self, ExportError> {
        let document: RegistryDocument = read_json(&dir.join("registry.json"))?;
        if document.format != DOCUMENT_FORMAT {
            return Err(ExportError::Read {
                path: dir.join("registry.json"),
                message: format!(
                    "document format {} is not the supported format {DOCUMENT_FORMAT}",
                    document.format
                ),
            });
        }
        let schemas = document
            .types
            .iter()
            .map(|entry| {
                Ok((
                    entry.schema_file.clone(),
                    read_json(&dir.join(&entry.schema_file))?,
                ))
            })
            .collect::<Result<_, ExportError>>()?;
        Ok(Export { document, schemas })
    }

    /// Writes `dir/registry.json` and `dir/schemas/*.json`, pretty-printed with a final
    /// newline. Stale schema files from an earlier export are removed.
    pub fn write_to(&self, dir: &Path) -> Result<(), ExportError> {
        let schemas_dir = dir.join("schemas");
        if schemas_dir.exists() {
            std::fs::remove_dir_all(&schemas_dir).map_err(|source| ExportError::Write {
                path: schemas_dir.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(&schemas_dir).map_err(|source| ExportError::Write {
            path: schemas_dir.clone(),
            source,
        })?;
        write_json(&dir.join("registry.json"), &self.document)?;
        for (file, schema) in &self.schemas {
            write_json(&dir.join(file), schema)?;
        }
        Ok(())
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ExportError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|error| ExportError::Encode {
        what: path.display().to_string(),
        message: error.to_string(),
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|source| ExportError::Write {
        path: path.to_owned(),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExportError> {
    let read_error = |message: String| ExportError::Read {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|error| read_error(error.to_string()))?;
    serde_json::from_str(&text).map_err(|error| {
        read_error(format!(
            "line {}, column {}: {error}",
            error.line(),
            error.column()
        ))
    })
}
