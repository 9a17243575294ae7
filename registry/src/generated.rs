//! Synthetic registry exports, for the policy tests and `cargo xtask bench`: many types
//! with realistic schemars-shaped schemas, without compiling many crates.

use ops_core::canonical::to_canonical_vec;
use ops_core::contract::{Kind, Visibility};
use ops_core::envelope::ENVELOPE_VERSION;
use ops_core::id::ContentHash;
use serde_json::{Value, json};

use crate::document::{
    DOCUMENT_FORMAT, Export, RegistryDocument, SourceLocation, TypeEntry, schema_file_name,
};

pub fn empty() -> Export {
    Export {
        document: RegistryDocument {
            format: DOCUMENT_FORMAT,
            envelope_version: ENVELOPE_VERSION,
            types: Vec::new(),
            packs: Vec::new(),
        },
        schemas: Default::default(),
    }
}

/// A public event of `ops-contract-<pack>` at version 0.1.0, without a schema yet.
pub fn event(pack: &str, name: &str, version: u32) -> TypeEntry {
    let type_name = format!("pack.{pack}.generated.{name}");
    TypeEntry {
        schema_file: schema_file_name(&type_name, version),
        name: type_name,
        version,
        kind: Kind::Event,
        visibility: Visibility::Public,
        safety: None,
        dedupe: None,
        compensation: None,
        renamed_from: None,
        owner_crate: format!("ops-contract-{pack}"),
        owner_crate_version: "0.1.0".to_owned(),
        rust_type: format!("ops_contract_{pack}::{name}"),
        source: SourceLocation {
            file: format!("contracts/{pack}/src/lib.rs"),
            line: 1,
        },
        schema_hash: ContentHash::of_bytes(b""),
        upcast_chain: (1..version).collect(),
    }
}

/// Adds `entry` with `schema`, keeping the document sorted and the hash true.
pub fn insert(export: &mut Export, mut entry: TypeEntry, schema: Value) {
    entry.schema_hash = hash(&schema);
    export.schemas.insert(entry.schema_file.clone(), schema);
    export
        .document
        .types
        .retain(|t| (t.name.as_str(), t.version) != (entry.name.as_str(), entry.version));
    export.document.types.push(entry);
    export
        .document
        .types
        .sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
}

/// Replaces the schema of a type version already in `export`.
pub fn set_schema(export: &mut Export, name: &str, version: u32, schema: Value) {
    let entry = export
        .document
        .types
        .iter()
        .find(|t| t.name == name && t.version == version)
        .cloned()
        .unwrap_or_else(|| panic!("`{name}` v{version} is not in the export"));
    insert(export, entry, schema);
}

pub fn hash(schema: &Value) -> ContentHash {
    ContentHash::of_bytes(&to_canonical_vec(schema).expect("JSON values canonicalise"))
}

/// The schema schemars writes for a struct of a few fields, one optional, one an enum and
/// one a nested struct behind `$ref`; `seed` varies names and bounds.
pub fn struct_schema(name: &str, seed: usize) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": name,
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1 + seed % 5},
            "count": {"type": "integer", "format": "uint32", "minimum": 0},
            "note": {"type": ["string", "null"]},
            "state": {"type": "string", "enum": ["open", "closed", format!("state{}", seed % 7)]},
            "owner": {"$ref": "#/$defs/Owner"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
        },
        "required": ["id", "count", "state", "owner"],
        "$defs": {
            "Owner": {
                "type": "object",
                "properties": {
                    "system": {"type": "string"},
                    "id": {"type": "string"}
                },
                "required": ["system", "id"]
            }
        }
    })
}

/// `count` public events spread over packs of 50 types each.
pub fn export(count: usize) -> Export {
    let mut export = empty();
    for index in 0..count {
        let name = format!("Event{index}");
        let mut entry = event(&format!("p{}", index / 50), &name, 1);
        let schema = struct_schema(&name, index);
        entry.schema_hash = hash(&schema);
        export.schemas.insert(entry.schema_file.clone(), schema);
        export.document.types.push(entry);
    }
    export
        .document
        .types
        .sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    export
}
