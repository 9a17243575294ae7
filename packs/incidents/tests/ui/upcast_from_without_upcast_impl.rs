// Naming the previous version is not enough: the upcaster must exist.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::event;

mod v1 {
    use ops_core::prelude::*;
    #[ops_core::event(domain = "triage", version = 1)]
    pub(crate) struct TriageNoteAdded {
        pub(crate) note: String,
    }
}

#[event(domain = "triage", version = 2, upcast_from = v1::TriageNoteAdded)]
pub(crate) struct TriageNoteAdded {
    note: String,
    author: String,
}

fn main() {}
