// An envelope is only built by ops-core, which derives its id; a struct literal cannot forge one.
use ops_core::envelope::{Causation, EventEnvelope};
use ops_core::id::{CapabilityId, ContentHash, CorrelationId, EventId};

fn main() {
    let event_id: EventId = "evt_0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap();
    let _forged = EventEnvelope {
        envelope_version: 1,
        event_id,
        event_type: "pack.incidents.incident.IncidentOpened".to_owned(),
        payload_schema_version: 2,
        payload: serde_json::json!({}),
        payload_hash: ContentHash::of_bytes(b"{}"),
        occurred_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        ingested_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        effective_at: None,
        correlation_id: CorrelationId::of("x").unwrap(),
        causation: Causation::Event(event_id),
        source_ref: "x".to_owned(),
        source_native_id: "x".to_owned(),
        source_sequence: None,
        actor: ops_core::envelope::Actor::Human(ops_core::envelope::ActorId::new("x").unwrap()),
        capability_id: CapabilityId::of("x").unwrap(),
    };
}
