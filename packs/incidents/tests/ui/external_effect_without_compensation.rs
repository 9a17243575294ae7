// A command with an external side effect must name the command that undoes it.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::command;

#[command(domain = "paging", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress)]
pub(crate) struct PageOnCall {
    incident_id: String,
}

fn main() {}
