//! How the core's own services (capabilities, governance, budgets, lineage, secrets,
//! shredding) append their events, once built with the origin `Acting::origin` gives (the
//! service as source, the acting actor and capability, the cause's time and causation), so
//! every receipt of the core carries the same provenance.

use ops_core::contract::Event;
use ops_core::envelope::{EventEnvelope, EventOrigin};

use crate::store::{AppendError, EventStore, ExpectedVersion};

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

/// As [`record`], with the event's `source_sequence` set to its version in `stream`, so
/// events of one stream at the same instant keep the order they were recorded in. The
/// append expects that version; a writer that came first makes it take the next.
pub(crate) async fn record_in_sequence<E: Event>(
    store: &EventStore,
    stream: &str,
    event: &E,
    mut origin: EventOrigin,
) -> Result<EventEnvelope, AppendError> {
    const ATTEMPTS: usize = 8;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = store.stream_version(stream).await?;
        origin.source_sequence = Some(current as u64 + 1);
        let envelope =
            EventEnvelope::new(event, origin.clone()).expect("core events are plain JSON");
        let expected = match current {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        match store
            .append(stream, expected, std::slice::from_ref(&envelope))
            .await
        {
            Err(AppendError::Conflict { .. }) if attempt < ATTEMPTS => continue,
            Err(error) => return Err(error),
            Ok(outcome) if outcome.duplicates.is_empty() => return Ok(envelope),
            // Recorded before (a retry): the stored one is the event, with its sequence.
            Ok(_) => {
                let stored = store.read_stream(stream).await.ok().and_then(|events| {
                    events
                        .into_iter()
                        .find(|stored| stored.envelope.event_id == envelope.event_id)
                });
                return Ok(stored.map_or(envelope, |stored| stored.envelope));
            }
        }
    }
}
