// A command with an external side effect is deduplicated by its destination and tenant;
// another scope would quarantine every proposal at run time.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::command;

#[command(domain = "paging", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = command, irreversible)]
pub(crate) struct PageOnCall {
    incident_id: String,
}

fn main() {}
