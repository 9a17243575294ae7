// A fold that reads the wall clock, iterates an OS-seeded hash map or counts in a static gives
// another result on every replay. ops-core has no `Timestamp::now()` for packs; the time is
// the envelope's.
#![no_std]
#![forbid(unsafe_code)]
extern crate std;
use ops_core::prelude::*;
use ops_core::time::Timestamp;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

static CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

pub fn stamp(paged: &Paged) -> String {
    CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let now = Timestamp::now();
    let wall = std::time::SystemTime::now();
    let mut seen = std::collections::HashMap::new();
    seen.insert(paged.incident_id.clone(), 1);
    format!("{now:?}{wall:?}{}", seen.len())
}

fn main() {}
