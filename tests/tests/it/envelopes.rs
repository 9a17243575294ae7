//! Envelope contract: every A1/A2 field is present, ids recompute from their inputs, and
//! tampering is caught.

use ops_contract_incidents::{IncidentOpened, OpenIncident, Severity};
use ops_core::contract::DedupeKind;
use ops_core::envelope::{
    Causation, CommandEnvelope, CommandRequest, DedupeScope, EnvelopeError, EventEnvelope,
};
use ops_core::id::{CommandId, CorrelationId};
use ops_shared_people::ServiceRef;
use ops_tests::{origin, responder};
use serde_json::{Value, json};

fn opened(id: &str) -> IncidentOpened {
    IncidentOpened {
        incident_id: id.to_owned(),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: "payments".to_owned(),
        },
        title: "Timeouts".to_owned(),
        severity: Severity::Sev1,
    }
}

#[test]
fn event_envelope_has_every_a1_field_and_round_trips() {
    let envelope = EventEnvelope::new(&opened("INC-1"), origin("T-1")).unwrap();
    let json = serde_json::to_value(&envelope).unwrap();
    for field in [
        "event_id",
        "event_type",
        "payload",
        "occurred_at",
        "ingested_at",
        "correlation_id",
        "causation_id",
        "causation_type",
        "source_ref",
        "source_sequence",
        "actor",
        "capability_id",
        "envelope_version",
        "payload_schema_version",
    ] {
        assert!(json.get(field).is_some(), "missing `{field}` in {json}");
    }
    assert_eq!(json["causation_type"], "user_action");
    assert_eq!(json["event_type"], "pack.incidents.incident.IncidentOpened");
    assert_eq!(json["payload_schema_version"], 2);
    let back: EventEnvelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, envelope);
    back.verify().unwrap();
}

#[test]
fn the_same_fact_gets_the_same_id_and_another_fact_another() {
    let first = EventEnvelope::new(&opened("INC-1"), origin("T-1")).unwrap();
    let mut later = origin("T-1");
    later.ingested_at = "2030-01-01T00:00:00Z".parse().unwrap();
    let replayed = EventEnvelope::new(&opened("INC-1"), later).unwrap();
    assert_eq!(
        first.event_id, replayed.event_id,
        "ingestion time is not identity"
    );
    let other = EventEnvelope::new(&opened("INC-2"), origin("T-1")).unwrap();
    assert_ne!(first.event_id, other.event_id);
}

#[test]
fn tampered_envelopes_fail_verification() {
    let envelope = EventEnvelope::new(&opened("INC-1"), origin("T-1")).unwrap();
    let mut json = serde_json::to_value(&envelope).unwrap();
    json["payload"]["title"] = json!("Nothing to see");
    let tampered: EventEnvelope = serde_json::from_value(json.clone()).unwrap();
    assert!(matches!(
        tampered.verify(),
        Err(EnvelopeError::PayloadHashMismatch { .. })
    ));

    let mut json = serde_json::to_value(&envelope).unwrap();
    json["source_native_id"] = json!("T-2");
    let moved: EventEnvelope = serde_json::from_value(json).unwrap();
    assert!(matches!(
        moved.verify(),
        Err(EnvelopeError::EventIdMismatch { .. })
    ));
}

#[test]
fn causation_id_and_type_must_agree() {
    let envelope = EventEnvelope::new(&opened("INC-1"), origin("T-1")).unwrap();
    let mut json = serde_json::to_value(&envelope).unwrap();
    json["causation_type"] = json!("event");
    let error = serde_json::from_value::<EventEnvelope>(json)
        .unwrap_err()
        .to_string();
    assert!(error.contains("expected the prefix `evt_`"), "{error}");
}

#[test]
fn malformed_envelopes_are_rejected_naming_the_field() {
    let envelope = EventEnvelope::new(&opened("INC-1"), origin("T-1")).unwrap();
    let mut json = serde_json::to_value(&envelope).unwrap();
    json["occurred_at"] = json!("last tuesday");
    let error = serde_json::from_value::<EventEnvelope>(json)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("`last tuesday` is not an RFC 3339 timestamp"),
        "{error}"
    );
    let mut json = serde_json::to_value(&envelope).unwrap();
    json["actor"] = json!({"kind": "robot", "id": "r2"});
    assert!(serde_json::from_value::<EventEnvelope>(json).is_err());
}

fn request(scope: DedupeScope) -> CommandRequest {
    CommandRequest {
        target_ref: "incident/INC-1".to_owned(),
        dedupe_scope: scope,
        correlation_id: CorrelationId::of("INC-1").unwrap(),
        causation: Causation::Event(
            EventEnvelope::new(&opened("INC-1"), origin("T-1"))
                .unwrap()
                .event_id,
        ),
        actor: responder(),
        requested_at: "2026-11-26T07:00:00Z".parse().unwrap(),
    }
}

fn open_command() -> OpenIncident {
    let IncidentOpened {
        incident_id,
        service,
        title,
        severity,
    } = opened("INC-1");
    OpenIncident {
        incident_id,
        service,
        title,
        severity,
    }
}

#[test]
fn command_ids_are_idempotency_keys() {
    let scope = DedupeScope::Command {
        aggregate_ref: "incident/INC-1".to_owned(),
    };
    let first = CommandEnvelope::new(&open_command(), request(scope.clone())).unwrap();
    let mut retry = request(scope.clone());
    retry.requested_at = "2026-11-26T07:05:00Z".parse().unwrap();
    let retried = CommandEnvelope::new(&open_command(), retry).unwrap();
    assert_eq!(
        first.command_id, retried.command_id,
        "a retry is the same command"
    );
    let mut changed = open_command();
    changed.severity = Severity::Sev2;
    let other = CommandEnvelope::new(&changed, request(scope)).unwrap();
    assert_ne!(first.command_id, other.command_id);
    first.verify().unwrap();
    let json: Value = serde_json::to_value(&first).unwrap();
    for field in [
        "command_id",
        "command_type",
        "payload",
        "target_ref",
        "dedupe_scope",
        "correlation_id",
        "causation_id",
        "causation_type",
        "actor",
        "requested_at",
    ] {
        assert!(json.get(field).is_some(), "missing `{field}` in {json}");
    }
    assert_eq!(json["dedupe_scope"]["kind"], "command");
}

#[test]
fn a_command_refuses_a_dedupe_scope_of_another_kind() {
    let scope = DedupeScope::Egress {
        destination: "slack".to_owned(),
        tenant_id: "acme".to_owned(),
    };
    let error = CommandEnvelope::new(&open_command(), request(scope)).unwrap_err();
    assert_eq!(
        error,
        EnvelopeError::DedupeKindMismatch {
            command_type: "pack.incidents.incident.OpenIncident".to_owned(),
            expected: DedupeKind::Command,
            found: DedupeKind::Egress,
        }
    );
}

#[test]
fn caller_supplied_keys_are_content_hashes() {
    let key = ops_core::id::ContentHash::of_bytes(b"upstream request 42");
    assert_eq!(
        CommandId::from_idempotency_key(&key),
        CommandId::from_idempotency_key(&key)
    );
    let other = ops_core::id::ContentHash::of_bytes(b"upstream request 43");
    assert_ne!(
        CommandId::from_idempotency_key(&key),
        CommandId::from_idempotency_key(&other)
    );
}
