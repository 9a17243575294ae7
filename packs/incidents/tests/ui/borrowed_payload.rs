// Payloads own their data.
use ops_core::event;

#[event(domain = "triage")]
pub(crate) struct NoteAdded {
    body: &'static str,
    tags: Vec<&'static str>,
}

fn main() {}
