//! Receipts of pack code's faults, and which pieces are paused. A piece whose calls fault
//! [`PAUSE_AFTER`] times in a row is paused: the runner of it gives it no more work (no
//! crash loop, and nothing else waits on it) until an operator resumes it
//! (`ops-host projections rebuild`, `ops-host quarantine retry`), and `ops-host status`
//! names it with the receipt that paused it. Both are events in the log, so every worker
//! and every restart sees the same.

use crate::service_capability;
use std::collections::BTreeMap;

use ops_core::contract::Contract;
use ops_core::envelope::{Causation, EventEnvelope, EventOrigin};
use ops_core::fault::{PackCodeFaulted, PackCodeRanUnconfined, PackPieceResumed};
use ops_core::id::{CorrelationId, EventId, UserActionId};
use ops_core::time::Timestamp;

use crate::clock::WallClock;
use crate::jail::Fault;
use crate::store::{AppendError, EventStore, ReadError};

/// Faults in a row after which a piece is paused.
pub const PAUSE_AFTER: u32 = 3;

/// What a piece was given when it faulted.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Event(EventId),
    Command(ops_core::id::CommandId),
    /// A source record, by where it was read.
    Record(&'a str),
}

/// One piece's faults as its runner counts them: in a row, and whether it is paused (with
/// the receipt that paused it).
#[derive(Clone, Debug, Default)]
pub struct FaultCount {
    /// Every fault this runner recorded.
    pub total: usize,
    pub in_a_row: u32,
    pub paused: Option<EventId>,
}

impl FaultCount {
    /// The piece answered: its count starts again.
    pub fn answered(&mut self) {
        self.in_a_row = 0;
    }
}

const CANONICAL: &str = "plain strings have a canonical form";

/// Appends `event` to `stream` as the jail states it now: `native_id` identifies it at
/// its source, the jail, and `correlation` is the piece (or host) it is about.
async fn state<E: ops_core::contract::Event>(
    store: &EventStore,
    stream: &str,
    event: &E,
    native_id: &str,
    correlation: &str,
    causation: Causation,
) -> Result<EventEnvelope, AppendError> {
    let now = Timestamp::now();
    let origin = EventOrigin {
        source_ref: "jail".to_owned(),
        source_native_id: native_id.to_owned(),
        source_sequence: None,
        occurred_at: now,
        ingested_at: now,
        effective_at: None,
        correlation_id: CorrelationId::of(correlation).expect(CANONICAL),
        causation,
        actor: service_capability::actor(service_capability::JAIL),
        capability_id: service_capability::of(service_capability::JAIL),
    };
    store.grant_service(service_capability::JAIL).await?;
    crate::service_event::record(store, stream, event, origin).await
}

/// Records that `piece` of `pack` faulted on `input`, counting it in `count`; the receipt
/// says whether this fault paused the piece.
pub async fn record(
    store: &EventStore,
    pack: &str,
    piece: &str,
    input: Input<'_>,
    fault: &Fault,
    count: &mut FaultCount,
) -> Result<EventEnvelope, AppendError> {
    count.in_a_row += 1;
    count.total += 1;
    let paused = count.in_a_row >= PAUSE_AFTER;
    let (input_text, causation) = match input {
        Input::Event(id) => (id.to_string(), Causation::Event(id)),
        Input::Command(id) => (id.to_string(), Causation::Command(id)),
        Input::Record(place) => (
            place.to_owned(),
            Causation::UserAction(UserActionId::of(place).expect(CANONICAL)),
        ),
    };
    let receipt = PackCodeFaulted {
        pack: pack.to_owned(),
        piece: piece.to_owned(),
        input: input_text,
        fault: fault.to_string(),
        confined: store.pack_code().confined(),
        paused,
    };
    let native_id = format!("{piece}:{}", receipt.input);
    let envelope = state(
        store,
        &format!("faults/{pack}"),
        &receipt,
        &native_id,
        piece,
        causation,
    )
    .await?;
    tracing::warn!(pack, piece, fault = %fault, paused, receipt = %envelope.event_id, "pack code faulted");
    if paused {
        count.paused = Some(envelope.event_id);
    }
    Ok(envelope)
}

/// The pieces paused now, by piece: their pack and the receipt that paused them.
pub async fn paused(store: &EventStore) -> Result<BTreeMap<String, (String, EventId)>, ReadError> {
    let events = store
        .read_by_types(&[PackCodeFaulted::TYPE, PackPieceResumed::TYPE])
        .await?;
    let mut paused = BTreeMap::new();
    for event in events {
        let payload = &event.envelope.payload;
        let text = |field: &str| payload[field].as_str().unwrap_or_default().to_owned();
        if event.envelope.event_type == PackPieceResumed::TYPE {
            paused.remove(&text("piece"));
        } else if payload["paused"] == serde_json::Value::Bool(true) {
            paused.insert(text("piece"), (text("pack"), event.envelope.event_id));
        }
    }
    Ok(paused)
}

/// Whether `piece` is paused now, with the receipt that paused it.
pub async fn paused_piece(store: &EventStore, piece: &str) -> Result<Option<EventId>, ReadError> {
    Ok(paused(store)
        .await?
        .remove(piece)
        .map(|(_, receipt)| receipt))
}

/// Gives a paused piece work again; `false` when it was not paused.
pub async fn resume(store: &EventStore, piece: &str, reason: &str) -> Result<bool, AppendError> {
    let Some((pack, receipt)) = paused(store).await?.remove(piece) else {
        return Ok(false);
    };
    let resumed = PackPieceResumed {
        pack: pack.clone(),
        piece: piece.to_owned(),
        reason: reason.to_owned(),
    };
    let native_id = format!("resume:{piece}:{receipt}");
    let stream = format!("faults/{pack}");
    state(
        store,
        &stream,
        &resumed,
        &native_id,
        piece,
        Causation::Event(receipt),
    )
    .await?;
    Ok(true)
}

/// Records that `host` runs pack code unconfined from now on (`--unjailed`).
pub async fn record_unconfined(store: &EventStore, host: &str) -> Result<(), AppendError> {
    let ran = PackCodeRanUnconfined {
        host: host.to_owned(),
    };
    let native_id = format!("unconfined:{host}:{}", Timestamp::now().unix_micros());
    let causation = Causation::UserAction(UserActionId::of(host).expect(CANONICAL));
    state(
        store,
        "faults/unconfined",
        &ran,
        &native_id,
        host,
        causation,
    )
    .await?;
    Ok(())
}

/// Every host start that ran pack code unconfined: the host, and when.
pub async fn unconfined_runs(store: &EventStore) -> Result<Vec<(String, Timestamp)>, ReadError> {
    Ok(store
        .read_by_type(PackCodeRanUnconfined::TYPE)
        .await?
        .into_iter()
        .map(|event| {
            let host = event.envelope.payload["host"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (host, event.envelope.occurred_at)
        })
        .collect())
}
