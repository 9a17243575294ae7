//! The exported registry: stable, complete, and every schema a valid Draft 2020-12 schema
//! that real payloads satisfy, checked by an independent validator (`jsonschema`).

use ops_contract_incidents::{IncidentOpened, Severity, v1};
use ops_core::contract::{Contract, UpcastError, Visibility};
use ops_registry::document::Export;
use ops_shared_people::ServiceRef;
use ops_tests::linked_registry;
use serde_json::{Value, json};

fn schema_of(name: &str, version: u32) -> Value {
    let descriptor = linked_registry().get(name, version).expect("registered");
    (descriptor.schema)()
}

#[test]
fn registry_export_snapshot() {
    let mut document = Export::of(linked_registry()).unwrap().document;
    // Lines move with every edit above a declaration; the file is what the snapshot pins.
    for entry in &mut document.types {
        entry.source.line = 0;
    }
    insta::assert_json_snapshot!("registry_document", document);
}

#[test]
fn export_is_deterministic() {
    let first = serde_json::to_string(&Export::of(linked_registry()).unwrap().document).unwrap();
    let second = serde_json::to_string(&Export::of(linked_registry()).unwrap().document).unwrap();
    assert_eq!(first, second);
}

#[test]
fn every_schema_is_draft_2020_12_and_accepts_its_examples() {
    for descriptor in linked_registry().types() {
        let schema = (descriptor.schema)();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{}",
            descriptor.name
        );
        jsonschema::meta::validate(&schema)
            .unwrap_or_else(|error| panic!("{} v{}: {error}", descriptor.name, descriptor.version));
        let validator = jsonschema::validator_for(&schema).unwrap();
        let examples = schema["examples"].as_array().cloned().unwrap_or_default();
        assert!(
            !examples.is_empty() || descriptor.visibility == Visibility::Private,
            "{} has no example",
            descriptor.name
        );
        for example in examples {
            assert!(
                validator.is_valid(&example),
                "{} rejects its example {example}",
                descriptor.name
            );
            (descriptor.check_payload)(&example).unwrap();
        }
    }
}

#[test]
fn typed_payloads_validate_and_broken_ones_are_located() {
    let schema = schema_of(IncidentOpened::TYPE, 2);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let opened = IncidentOpened {
        incident_id: "INC-9".to_owned(),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: "search".to_owned(),
        },
        title: "Search is slow".to_owned(),
        severity: Severity::Sev2,
    };
    let payload = serde_json::to_value(&opened).unwrap();
    assert!(validator.is_valid(&payload));

    let mut broken = payload.clone();
    broken["service"]["id"] = json!(42);
    let errors: Vec<String> = validator
        .iter_errors(&broken)
        .map(|e| e.instance_path().to_string())
        .collect();
    assert_eq!(errors, vec!["/service/id".to_owned()]);
    let typed_error = (linked_registry()
        .get(IncidentOpened::TYPE, 2)
        .unwrap()
        .check_payload)(&broken)
    .unwrap_err();
    assert!(typed_error.contains("invalid type"), "{typed_error}");
}

#[test]
fn stored_v1_payloads_read_as_v2_through_the_upcaster() {
    let stored = serde_json::to_value(v1::IncidentOpened {
        incident_id: "INC-1".to_owned(),
        service: "checkout".to_owned(),
        title: "502s".to_owned(),
    })
    .unwrap();
    let (version, current) = linked_registry()
        .upcast_to_latest(IncidentOpened::TYPE, 1, stored)
        .unwrap();
    assert_eq!(version, 2);
    let validator = jsonschema::validator_for(&schema_of(IncidentOpened::TYPE, 2)).unwrap();
    assert!(validator.is_valid(&current), "{current}");
    let read: IncidentOpened = serde_json::from_value(current).unwrap();
    assert_eq!(read.service.id, "checkout");
    assert_eq!(read.severity, Severity::Sev3);
}

#[test]
fn upcasting_reports_unknown_types_versions_and_bad_payloads() {
    let registry = linked_registry();
    assert!(matches!(
        registry.upcast_to_latest("pack.nobody.x.Y", 1, json!({})),
        Err(UpcastError::UnknownType { .. })
    ));
    assert!(matches!(
        registry.upcast_to_latest(IncidentOpened::TYPE, 7, json!({})),
        Err(UpcastError::UnknownVersion { version: 7, .. })
    ));
    let error = registry
        .upcast_to_latest(IncidentOpened::TYPE, 1, json!({"incident_id": "INC-1"}))
        .unwrap_err();
    assert!(
        error.to_string().starts_with(
            "stored payload is not a valid `pack.incidents.incident.IncidentOpened` version 1"
        ),
        "{error}"
    );
}

#[test]
fn pack_manifests_list_what_the_pack_provides() {
    let export = Export::of(linked_registry()).unwrap();
    let incidents = export
        .document
        .packs
        .iter()
        .find(|p| p.manifest.id == "incidents")
        .unwrap();
    assert_eq!(incidents.manifest.migrations_prefix, "pack_incidents_");
    let provided: Vec<(&str, u32)> = incidents
        .manifest
        .provides
        .iter()
        .map(|t| (t.name.as_str(), t.version))
        .collect();
    assert!(provided.contains(&("pack.incidents.triage.TriageNoteAdded", 1)));
    assert!(provided.contains(&("pack.incidents.incident.IncidentOpened", 2)));
    assert_eq!(
        incidents.content_id,
        incidents.manifest.content_id().unwrap()
    );
    let mut changed = incidents.manifest.clone();
    changed.version = semver::Version::new(0, 2, 0);
    assert_ne!(changed.content_id().unwrap(), incidents.content_id);
}
