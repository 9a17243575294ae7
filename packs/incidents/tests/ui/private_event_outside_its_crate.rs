// Another crate cannot use a pack's private event; only its contract crate is public.
use pack_incidents::TriageNoteAdded;

fn main() {
    let _ = std::mem::size_of::<TriageNoteAdded>();
}
