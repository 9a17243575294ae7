//! How the core's own services (capabilities, governance, budgets, lineage, secrets,
//! shredding) state their events: the service is the source, the acting actor and the
//! capability are recorded, and the action is the causation. One place, so every receipt
//! of the core carries the same provenance.

use crate::clock::WallClock;
use ops_core::contract::Event;
use ops_core::envelope::{Actor, Causation, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId, UserActionId};
use ops_core::time::Timestamp;

use crate::store::{AppendError, EventStore, ExpectedVersion};

/// The origin of an event `service` states now about `native_id`, for `actor` on
/// `capability_id`, correlated and caused by the action `native_id` names. Callers adjust
/// the time or correlation with struct update syntax.
pub(crate) fn origin(
    service: &str,
    native_id: &str,
    actor: &Actor,
    capability_id: CapabilityId,
) -> EventOrigin {
    let now = Timestamp::now();
    EventOrigin {
        source_ref: service.to_owned(),
        source_native_id: native_id.to_owned(),
        source_sequence: None,
        occurred_at: now,
        ingested_at: now,
        effective_at: None,
        correlation_id: CorrelationId::of(native_id).expect("plain strings have a canonical form"),
        causation: Causation::UserAction(
            UserActionId::of(native_id).expect("plain strings have a canonical form"),
        ),
        actor: actor.clone(),
        capability_id,
    }
}

/// Builds the event and appends it to `stream`.
pub(crate) async fn record<E: Event>(
    store: &EventStore,
    stream: &str,
    event: &E,
    origin: EventOrigin,
) -> Result<EventEnvelope, AppendError> {
    let envelope = EventEnvelope::new(event, origin).expect("core events are plain JSON");
    store
        .append(
            stream,
            ExpectedVersion::Any,
            std::slice::from_ref(&envelope),
        )
        .await?;
    Ok(envelope)
}
