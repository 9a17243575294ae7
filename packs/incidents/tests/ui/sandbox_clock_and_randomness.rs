// A fold that reads the wall clock or iterates an OS-seeded hash map gives another result on
// every replay. ops-core has no `Timestamp::now()` for packs; the time is the envelope's.
#![no_std]
#![forbid(unsafe_code)]
extern crate std;
use ops_core::prelude::*;
use ops_core::time::Timestamp;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

pub fn stamp(paged: &Paged) -> String {
    let now = Timestamp::now();
    let wall = std::time::SystemTime::now();
    let mut seen = std::collections::HashMap::new();
    seen.insert(paged.incident_id.clone(), 1);
    format!("{now:?}{wall:?}{}", seen.len())
}

fn main() {}
