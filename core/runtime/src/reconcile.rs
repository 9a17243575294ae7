//! Reconciliation (A8): when two sources state facts about the same subject that disagree,
//! the disagreement becomes a [`SourceFactsConflicted`] event. Its id derives from the
//! conflicting events, so reconciling again adds nothing.

use crate::clock::WallClock;
use crate::service_capability;

use ops_core::connector::{DynReconciler, SourceFactsConflicted};
use ops_core::contract::EventType;
use ops_core::envelope::{Causation, EventEnvelope, EventOrigin};
use ops_core::id::CorrelationId;

use crate::jail::PieceError;
use crate::store::{
    AppendError, AppendOutcome, CurrentPayload, EventStore, ExpectedVersion, ReadError, StoredEvent,
};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("storing the conflicts failed; none was stored: {0}")]
    Append(#[from] AppendError),
    #[error("the reconciler's code did not answer: {0}")]
    Faulted(String),
}

/// Whose code reconcilers are in fault receipts: contract crates', no one pack's.
const CONTRACTS: &str = "contracts";

/// Compares the facts of the reconciler's event types from different sources about the
/// same subject and appends a conflict event for each disagreeing pair.
pub async fn reconcile(
    store: &EventStore,
    reconciler: &dyn DynReconciler,
) -> Result<AppendOutcome, ReconcileError> {
    let mut facts: Vec<(StoredEvent, serde_json::Value)> = Vec::new();
    for event_type in reconciler.event_types().iter().map(EventType::name) {
        for event in store.read_by_type(event_type).await? {
            // Personal data stays sealed, as projections fold it: a reconciler's conflict
            // text becomes a public event, so it must not see what its readers may not.
            if let CurrentPayload::Current { payload, .. } =
                store.current_sealed_payload(&event.envelope)
            {
                facts.push((event, payload));
            }
        }
    }
    let described: Vec<(&str, &str, &serde_json::Value)> = facts
        .iter()
        .map(|(event, payload)| {
            (
                event.envelope.event_type.as_str(),
                event.envelope.source_ref.as_str(),
                payload,
            )
        })
        .collect();
    let found = match store.pack_code().reconcile(reconciler, &described) {
        Ok(found) => found,
        Err(PieceError::Refused(reason)) => return Err(ReconcileError::Faulted(reason)),
        Err(PieceError::Fault(fault)) => {
            let receipt = crate::faults::record(
                store,
                CONTRACTS,
                &format!("reconciler {}", reconciler.name()),
                crate::faults::Input::Record("reconciliation"),
                &fault,
                &mut crate::faults::FaultCount::default(),
            )
            .await?;
            return Err(ReconcileError::Faulted(format!(
                "{fault} (receipt {})",
                receipt.event_id
            )));
        }
        Err(PieceError::Jail(error)) => return Err(ReconcileError::Faulted(error.to_string())),
    };
    let conflicts: Vec<EventEnvelope> = found
        .into_iter()
        .map(|conflict| {
            conflict_event(
                &conflict.subject,
                &facts[conflict.first].0.envelope,
                &facts[conflict.second].0.envelope,
                conflict.reason,
            )
        })
        .collect();
    if !conflicts.is_empty() {
        store
            .grant_service(service_capability::RECONCILIATION)
            .await?;
    }
    Ok(store
        .append("reconciliation", ExpectedVersion::Any, &conflicts)
        .await?)
}

fn conflict_event(
    subject: &str,
    first: &EventEnvelope,
    second: &EventEnvelope,
    reason: String,
) -> EventEnvelope {
    let mut ids = [first.event_id.to_string(), second.event_id.to_string()];
    ids.sort();
    let later = if first.occurred_at >= second.occurred_at {
        first
    } else {
        second
    };
    let canonical = "plain strings have a canonical form";
    let origin = EventOrigin {
        source_ref: "reconciliation".to_owned(),
        source_native_id: format!("{subject}:{}:{}", ids[0], ids[1]),
        source_sequence: None,
        occurred_at: later.occurred_at,
        ingested_at: ops_core::time::Timestamp::now(),
        effective_at: None,
        correlation_id: CorrelationId::of(subject).expect(canonical),
        causation: Causation::Event(later.event_id),
        actor: service_capability::actor(service_capability::RECONCILIATION),
        capability_id: service_capability::of(service_capability::RECONCILIATION),
    };
    let event = SourceFactsConflicted {
        subject: subject.to_owned(),
        event_ids: ids.to_vec(),
        reason,
    };
    EventEnvelope::new(&event, origin).expect("a conflict event is plain JSON")
}
