// Spawning `curl`, or a thread to do it later, is an effect outside the gateway.
#![no_std]
#![forbid(unsafe_code)]
extern crate std;
use ops_core::prelude::*;
use std::process::Command as Shell;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

pub fn page_with_curl(paged: &Paged) {
    let incident = paged.incident_id.clone();
    std::thread::spawn(move || {
        let _ = Shell::new("curl").arg(incident).status();
    });
}

fn main() {}
