// Public events live in the pack's contract crate, not in the pack.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::event;

#[event(public, domain = "incident")]
pub struct IncidentEscalated {
    pub incident_id: String,
}

fn main() {}
