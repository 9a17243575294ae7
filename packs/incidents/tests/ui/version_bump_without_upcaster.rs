// Version 2 of a payload must say how to read version 1.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::event;

#[event(domain = "triage", version = 2)]
pub(crate) struct TriageNoteAdded {
    note: String,
}

fn main() {}
