// A crate root without `#![no_std]` and `#![forbid(unsafe_code)]` has the whole standard
// library in reach, so the sandbox refuses the root itself (and still names the socket).
use ops_core::prelude::*;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

pub fn page(paged: &Paged) {
    let _ = std::net::TcpStream::connect(paged.incident_id.as_str());
}

fn main() {}
