// A private event cannot be `pub`: that would leak it to other crates.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::event;

#[event(domain = "triage")]
pub struct TriageNoteEdited {
    pub note: String,
}

fn main() {}
