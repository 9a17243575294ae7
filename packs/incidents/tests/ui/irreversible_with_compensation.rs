// An effect that a compensation undoes cannot also be declared irreversible, and only
// external effects are held at all.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::command;

#[command(domain = "paging", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress, compensation = CancelPage, irreversible)]
pub(crate) struct PageOnCall {
    incident_id: String,
}

#[command(domain = "paging", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress, irreversible)]
pub(crate) struct CancelPage {
    incident_id: String,
}

#[command(domain = "paging", safety = WRITE_INTERNAL, dedupe = command, irreversible)]
pub(crate) struct NotePage {
    incident_id: String,
}

fn main() {}
