// Version 2 of a payload must say how to read version 1.
use ops_core::event;

#[event(domain = "triage", version = 2)]
pub(crate) struct TriageNoteAdded {
    note: String,
}

fn main() {}
