// Version 3 must upcast from version 2, not from version 1.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::contract::Upcast;
use ops_core::event;

mod v1 {
    use ops_core::prelude::*;
    #[ops_core::event(domain = "triage", version = 1)]
    pub(crate) struct TriageNoteAdded {
        pub(crate) note: String,
    }
}

#[event(domain = "triage", version = 3, upcast_from = v1::TriageNoteAdded)]
pub(crate) struct TriageNoteAdded {
    note: String,
}

impl Upcast<v1::TriageNoteAdded> for TriageNoteAdded {
    fn upcast(old: v1::TriageNoteAdded) -> Self {
        TriageNoteAdded { note: old.note }
    }
}

fn main() {}
