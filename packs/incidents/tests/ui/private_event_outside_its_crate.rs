// Another crate cannot use a pack's private event; only its contract crate is public.
#![no_std]
#![forbid(unsafe_code)]
use pack_incidents::TriageNoteAdded;

fn main() {
    let _ = core::mem::size_of::<TriageNoteAdded>();
}
