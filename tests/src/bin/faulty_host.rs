//! A host that links the faulty test pack (`tests/faulty-pack`) beside this repository's
//! packs: the jail's tests run it as their pack runner, and as a whole host under
//! `ops-host run`, to show that a pack's panics, loops, allocations and forbidden system
//! calls end one call each and nothing else.
//!
//! It is also the test hook that stands for code that escaped the compile-time rules (a
//! soundness bug of the compiler, say): its allocator opens a UDP socket when asked for
//! exactly `pack_faulty::SOCKET_CUE_BYTES`, which the faulty pack asks for on cue. Under
//! the jail the kernel kills the runner at that system call.

use std::alloc::{GlobalAlloc, Layout, System};

use pack_faulty as _;
use pack_filesync as _;
use pack_incidents as _;
use pack_notify as _;

struct SocketOnCue;

// SAFETY: every call is passed to the system allocator unchanged; the cue only adds a
// socket before it.
unsafe impl GlobalAlloc for SocketOnCue {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() == pack_faulty::SOCKET_CUE_BYTES {
            let _ = std::net::UdpSocket::bind("127.0.0.1:0");
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, which is the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: SocketOnCue = SocketOnCue;

fn main() -> std::process::ExitCode {
    ops_host::main(&[
        "pack_faulty",
        "pack_filesync",
        "pack_incidents",
        "pack_notify",
    ])
}
