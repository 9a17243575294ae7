// A payload has one schema, so it cannot be generic.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::event;

#[event(domain = "triage")]
pub(crate) struct NoteAdded<T> {
    body: T,
}

fn main() {}
