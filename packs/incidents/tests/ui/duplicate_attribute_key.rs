// A key given twice is refused: which one wins would be a guess.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;

#[ops_core::event(domain = "triage", version = 1, domain = "paging")]
pub(crate) struct NoteAdded {
    pub(crate) note: String,
}

#[ops_core::pack(id = "incidents", contracts = [], contracts = ["ops-contract-incidents"])]
pub struct IncidentsPack;

fn main() {}
