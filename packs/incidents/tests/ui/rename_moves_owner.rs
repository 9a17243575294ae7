// A rename keeps the owner: a pack cannot adopt another pack's type name through
// `renamed_from`, a type is not renamed from itself, and the old name is a type name.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::event;

#[event(domain = "triage", renamed_from = "pack.crm.contact.NoteAdded")]
pub(crate) struct NoteAdded {
    body: String,
}

#[event(domain = "triage", renamed_from = "pack.incidents.triage.NoteEdited")]
pub(crate) struct NoteEdited {
    body: String,
}

#[event(domain = "triage", renamed_from = "pack.incidents.Triage.note-removed")]
pub(crate) struct NoteRemoved {
    body: String,
}

fn main() {}
