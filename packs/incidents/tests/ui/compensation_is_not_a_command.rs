// The compensation hook must itself be a command.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::command;

pub(crate) struct CancelPage;

#[command(domain = "paging", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress, compensation = CancelPage)]
pub(crate) struct PageOnCall {
    incident_id: String,
}

fn main() {}
