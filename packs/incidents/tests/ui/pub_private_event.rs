// A private event cannot be `pub`: that would leak it to other crates.
use ops_core::event;

#[event(domain = "triage")]
pub struct TriageNoteEdited {
    pub note: String,
}

fn main() {}
