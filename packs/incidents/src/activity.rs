//! Incident activity per stream: how many incident events each stream holds, and its
//! latest. Every row is one stream's, so workers may share it: it is split by stream.

use ops_contract_incidents::{IncidentAcknowledged, IncidentOpened, IncidentResolved};
use ops_core::prelude::*;
use ops_core::projection::{ProjectedEvent, Projection, Split, State};

use crate::IncidentsPack;

/// Rows: `streams/<stream id>` with `events`, `first_at`, `last_at` and `last_type`.
pub struct IncidentActivity;

const STREAMS: &str = "streams";

impl Projection for IncidentActivity {
    type Pack = IncidentsPack;
    const NAME: &'static str = "incident_activity";
    const VERSION: u32 = 1;
    const SPLIT: Split = Split::ByStream { partitions: 2 };

    const EVENTS: &'static [EventType] = &[
        EventType::of::<IncidentOpened>(),
        EventType::of::<IncidentAcknowledged>(),
        EventType::of::<IncidentResolved>(),
    ];

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        let at = event.envelope.occurred_at.to_string();
        let mut row = state
            .get(STREAMS, event.stream_id)
            .cloned()
            .unwrap_or_else(|| json!({"events": 0, "first_at": at}));
        row["events"] = json!(row["events"].as_u64().unwrap_or(0) + 1);
        row["last_at"] = json!(at);
        row["last_type"] = json!(event.event_type());
        state.put(STREAMS, event.stream_id, row);
        Ok(())
    }
}

/// Each stream's incident events, from an activity state: `(stream, events)`, sorted.
pub fn events_per_stream(state: &State) -> Vec<(String, u64)> {
    state
        .table(STREAMS)
        .map(|(stream, row)| (stream.to_owned(), row["events"].as_u64().unwrap_or(0)))
        .collect()
}

ops_core::install_projection!(IncidentActivity);
