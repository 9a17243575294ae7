//! Every event the example packs and the core produce, checked against the envelope
//! contract (A1): all fields present and well-formed, ids recompute, the causation type
//! matches its id, the type's namespace matches its registered owner, the payload version
//! is registered and the payload validates against its schema (independent validator).

use ops_contract_incidents::IncidentOpenings;
use ops_contract_incidents::{IncidentOpened, Severity, v1};
use ops_core::envelope::{ENVELOPE_VERSION, EventEnvelope};
use ops_core::registry::Registry;
use ops_core_runtime::connector::{ConnectorOptions, ConnectorRunner, JsonLinesDirectory};
use ops_core_runtime::store::{EventStore, ExpectedVersion};
use ops_shared_people::{PersonRef, ServiceRef};
use ops_tests::storage::Backend;
use ops_tests::{linked_registry, on_both_backends, origin, origin_at};
use pack_filesync::{SAMPLE_EXPORT, TicketExport};
use serde_json::Value;

on_both_backends!(every_stored_event_keeps_the_envelope_contract);

/// The log after the packs did everything they do: a connector sync (facts, a tombstone, a
/// drift), a second source and reconciliation (a conflict), a private triage note and a
/// legacy v1 payload.
async fn populated(backend: Backend) -> EventStore {
    let store = backend
        .store("every_stored_event_keeps_the_envelope_contract")
        .await;
    ConnectorRunner::new(
        store.clone(),
        &TicketExport,
        Box::new(JsonLinesDirectory::new(SAMPLE_EXPORT)),
        ConnectorOptions::default(),
    )
    .unwrap()
    .sync()
    .await
    .unwrap();
    let pager = IncidentOpened {
        incident_id: "T-100".to_owned(),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: "checkout".to_owned(),
        },
        title: "Card authorisations time out".to_owned(),
        severity: Severity::Sev2,
    };
    let legacy = v1::IncidentOpened {
        incident_id: "T-1".to_owned(),
        service: "checkout".to_owned(),
        title: "Checkout returns 502".to_owned(),
    };
    let note = pack_incidents::triage_note(
        "T-100",
        "Issuer 4411 only",
        PersonRef {
            system: "oncall".to_owned(),
            id: "U042".to_owned(),
            display_name: "Ada".to_owned(),
        },
        origin("note-1"),
    )
    .unwrap();
    let events = [
        EventEnvelope::new(
            &pager,
            origin_at("page-1", 1_795_165_300_000_000, "pager", None),
        )
        .unwrap(),
        EventEnvelope::new(&legacy, origin("legacy-1")).unwrap(),
        note,
    ];
    store
        .append("others", ExpectedVersion::Any, &events)
        .await
        .unwrap();
    ops_core_runtime::reconcile::reconcile(&store, &IncidentOpenings)
        .await
        .unwrap();
    store
}

/// The namespace a crate's types must be in.
fn namespace_of(crate_name: &str) -> String {
    if crate_name == "ops-core" {
        "core.".to_owned()
    } else if let Some(package) = crate_name.strip_prefix("ops-shared-") {
        format!("shared.{}.", package.replace('-', "_"))
    } else {
        let id = crate_name
            .strip_prefix("ops-contract-")
            .or_else(|| crate_name.strip_prefix("pack-"))
            .unwrap_or_else(|| panic!("`{crate_name}` cannot own types"));
        format!("pack.{}.", id.replace('-', "_"))
    }
}

fn is_micro_timestamp(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.len() == "2026-11-20T09:00:00.000000Z".len()
            && text.ends_with('Z')
            && text
                .parse::<ops_core::time::Timestamp>()
                .is_ok_and(|t| t.to_string() == text)
    })
}

fn has_id(value: &Value, prefix: &str) -> bool {
    value.as_str().is_some_and(|text| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|hex| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

fn check(
    envelope: &EventEnvelope,
    registry: &Registry,
    envelope_schema: &jsonschema::Validator,
) -> Vec<String> {
    let mut problems = Vec::new();
    let json = serde_json::to_value(envelope).unwrap();
    for field in [
        "envelope_version",
        "event_id",
        "event_type",
        "payload_schema_version",
        "payload",
        "payload_hash",
        "occurred_at",
        "ingested_at",
        "correlation_id",
        "causation_type",
        "causation_id",
        "source_ref",
        "source_native_id",
        "actor",
        "capability_id",
    ] {
        if json.get(field).is_none_or(Value::is_null) {
            problems.push(format!("`{field}` is missing"));
        }
    }
    if let Some(error) = envelope_schema.iter_errors(&json).next() {
        problems.push(format!(
            "the envelope breaks its schema at `{}`: {error}",
            error.instance_path()
        ));
    }
    if json["envelope_version"] != ENVELOPE_VERSION {
        problems.push("`envelope_version` is not this build's".to_owned());
    }
    for (field, prefix) in [
        ("event_id", "evt"),
        ("correlation_id", "cor"),
        ("capability_id", "cap"),
        ("payload_hash", "b3"),
    ] {
        if !has_id(&json[field], prefix) {
            problems.push(format!(
                "`{field}` is not a `{prefix}_` id: {}",
                json[field]
            ));
        }
    }
    for field in ["occurred_at", "ingested_at"] {
        if !is_micro_timestamp(&json[field]) {
            problems.push(format!(
                "`{field}` is not a UTC microsecond timestamp: {}",
                json[field]
            ));
        }
    }
    let causation_prefix = match json["causation_type"].as_str() {
        Some("event") => "evt",
        Some("command") => "cmd",
        Some("derived_artifact") => "art",
        Some("user_action") => "act",
        other => {
            problems.push(format!("unknown `causation_type` {other:?}"));
            ""
        }
    };
    if !has_id(&json["causation_id"], causation_prefix) {
        problems.push(format!(
            "`causation_id` {} is not the id of a {}",
            json["causation_id"], json["causation_type"]
        ));
    }
    if let Err(error) = envelope.verify() {
        problems.push(format!("ids do not recompute: {error}"));
    }
    match registry.get(&envelope.event_type, envelope.payload_schema_version) {
        None => problems.push(format!(
            "`{}` v{} is not registered",
            envelope.event_type, envelope.payload_schema_version
        )),
        Some(descriptor) => {
            let namespace = namespace_of(descriptor.crate_name);
            if !envelope.event_type.starts_with(&namespace) {
                problems.push(format!(
                    "`{}` is owned by `{}`, whose types are `{namespace}*`",
                    envelope.event_type, descriptor.crate_name
                ));
            }
            let schema = (descriptor.schema)();
            let validator = jsonschema::validator_for(&schema).unwrap();
            if let Some(error) = validator.iter_errors(&envelope.payload).next() {
                problems.push(format!(
                    "the payload breaks its schema at `{}`: {error}",
                    error.instance_path()
                ));
            }
        }
    }
    problems
}

async fn every_stored_event_keeps_the_envelope_contract(backend: Backend) {
    let store = populated(backend).await;
    let registry = linked_registry();
    let envelope_schema = schemars::schema_for!(EventEnvelope).to_value();
    let envelope_schema = jsonschema::validator_for(&envelope_schema).unwrap();
    let events = store.replay(None, 1_000).await.unwrap();
    let kinds: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e.envelope.event_type.as_str())
        .collect();
    // Every kind of producer is in the sample: pack facts, core tombstone, drift and
    // conflict events, the grant of the connector's capability, a private event and a legacy
    // version.
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "core.CapabilityGranted",
            "core.SourceFactsConflicted",
            "core.SourceRecordDeleted",
            "core.SourceSchemaDrifted",
            "pack.incidents.incident.IncidentAcknowledged",
            "pack.incidents.incident.IncidentOpened",
            "pack.incidents.incident.IncidentResolved",
            "pack.incidents.triage.TriageNoteAdded",
        ]
    );
    assert!(events.iter().any(|e| e.envelope.payload_schema_version == 1
        && e.envelope.event_type == "pack.incidents.incident.IncidentOpened"));
    for event in &events {
        let problems = check(&event.envelope, registry, &envelope_schema);
        assert!(
            problems.is_empty(),
            "{} ({}): {problems:#?}",
            event.envelope.event_id,
            event.envelope.event_type
        );
    }
}

/// The checker itself catches each kind of breach.
#[test]
fn the_checker_finds_each_breach() {
    let registry = linked_registry();
    let envelope_schema = schemars::schema_for!(EventEnvelope).to_value();
    let envelope_schema = jsonschema::validator_for(&envelope_schema).unwrap();
    let good = EventEnvelope::new(
        &v1::IncidentOpened {
            incident_id: "T-1".to_owned(),
            service: "checkout".to_owned(),
            title: "down".to_owned(),
        },
        origin("x"),
    )
    .unwrap();
    assert_eq!(
        check(&good, registry, &envelope_schema),
        Vec::<String>::new()
    );
    let breach = |edit: &dyn Fn(&mut Value)| {
        let mut json = serde_json::to_value(&good).unwrap();
        edit(&mut json);
        let envelope: EventEnvelope = serde_json::from_value(json).unwrap();
        check(&envelope, registry, &envelope_schema).join("\n")
    };
    assert!(breach(&|j| j["payload"]["title"] = "changed".into()).contains("ids do not recompute"));
    assert!(breach(&|j| j["payload_schema_version"] = 9.into()).contains("is not registered"));
    // A causation id of the wrong kind cannot even be read as an envelope.
    let mut mismatched = serde_json::to_value(&good).unwrap();
    mismatched["causation_type"] = "event".into();
    let error = serde_json::from_value::<EventEnvelope>(mismatched).unwrap_err();
    assert!(
        error.to_string().contains("expected the prefix `evt_`"),
        "{error}"
    );
    assert!(
        breach(&|j| j["event_type"] = "pack.other.incident.IncidentOpened".into())
            .contains("is not registered")
    );
    assert!(
        breach(&|j| j["payload"] = serde_json::json!({"incident_id": 1}))
            .contains("breaks its schema")
    );
}
