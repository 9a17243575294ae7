// One mistake, one error: the event's domain is invalid, but it is still an event with its
// schema, so the projection and the fact that use it report nothing more.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::connector::Fact;
use ops_core::prelude::*;
use ops_core::projection::{ProjectedEvent, Projection, State};

#[ops_core::pack(id = "incidents")]
pub struct IncidentsPack;

#[ops_core::event(domain = "Not A Domain")]
pub(crate) struct NoteAdded {
    pub(crate) note: String,
}

struct Notes;

impl Projection for Notes {
    type Pack = IncidentsPack;
    const NAME: &'static str = "notes";
    const VERSION: u32 = 1;
    const EVENTS: &'static [EventType] = &[EventType::of::<NoteAdded>()];

    fn apply(&self, event: &ProjectedEvent<'_>, _state: &mut State) -> Result<(), String> {
        let _ = event.decode::<NoteAdded>();
        Ok(())
    }
}

pub fn fact(note: &NoteAdded) -> Result<Fact, String> {
    Fact::event(note, "n-1", "2026-01-01T00:00:00Z".parse().expect("a time"), None)
}

fn main() {}
