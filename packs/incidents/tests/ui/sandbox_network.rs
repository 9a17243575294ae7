// A pack that opens a socket itself, in several spellings: the standard library under
// another name, a macro that hides the path, an OS-specific socket. Each is refused and
// named, with what to use instead (a `WRITE_EXTERNAL_SIDE_EFFECT` command).
#![no_std]
#![forbid(unsafe_code)]
extern crate std as platform;
use ops_core::prelude::*;
use platform::net::TcpStream;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

macro_rules! dial {
    ($address:expr) => {
        platform::net::UdpSocket::bind($address)
    };
}

pub fn page_by_hand(paged: &Paged) {
    let _ = TcpStream::connect("pager.example.com:443");
    let _ = dial!("0.0.0.0:0");
    let _ = platform::os::unix::net::UnixStream::connect("/run/pager.sock");
    let _ = &paged.incident_id;
}

fn main() {}
