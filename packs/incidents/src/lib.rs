//! The incidents pack: handles incident commands, keeps private triage notes, the incident
//! board projection and the incident activity per stream (split across workers).

#![no_std]
#![forbid(unsafe_code)]

mod activity;
mod board;
mod handlers;
mod paging;

pub use activity::{IncidentActivity, events_per_stream};
pub use board::{IncidentBoard, open_by_service, time_to_acknowledge};
pub use handlers::{AcknowledgeIncidentHandler, Incident, IncidentRejection, OpenIncidentHandler};
pub use paging::page_responder;

use ops_core::envelope::{EnvelopeError, EventEnvelope, EventOrigin};
use ops_core::prelude::*;
use ops_core::{event, pack};
use ops_shared_people::PersonRef;

#[pack(id = "incidents", contracts = ["ops-contract-incidents"])]
pub struct IncidentsPack;

/// A responder's working note; internal to this pack, so other packs cannot depend on it.
#[event(domain = "triage")]
pub(crate) struct TriageNoteAdded {
    incident_id: String,
    note: String,
    by: PersonRef,
}

/// The stream an incident's commands act on: `incident/<id>`. Its handlers refuse one
/// submitted for another target.
pub fn incident_target(incident_id: &str) -> String {
    format!("incident/{incident_id}")
}

/// Triage notes leave the pack only as envelopes, never as their private type.
pub fn triage_note(
    incident_id: &str,
    note: &str,
    by: PersonRef,
    origin: EventOrigin,
) -> Result<EventEnvelope, EnvelopeError> {
    let event = TriageNoteAdded {
        incident_id: incident_id.to_owned(),
        note: note.to_owned(),
        by,
    };
    EventEnvelope::new(&event, origin)
}
