// Naming the previous version is not enough: the upcaster must exist.
use ops_core::event;

mod v1 {
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
