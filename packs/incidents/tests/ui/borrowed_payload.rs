// Payloads own their data.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::event;

#[event(domain = "triage")]
pub(crate) struct NoteAdded {
    body: &'static str,
    tags: Vec<&'static str>,
}

fn main() {}
