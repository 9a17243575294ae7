// A payload has one schema, so it cannot be generic.
use ops_core::event;

#[event(domain = "triage")]
pub(crate) struct NoteAdded<T> {
    body: T,
}

fn main() {}
