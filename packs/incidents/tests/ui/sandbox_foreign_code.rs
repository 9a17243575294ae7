// Foreign code: a C function declared `safe` so no `unsafe` block is needed to call it, an
// exported symbol, and an `unsafe` block. The crate forbids unsafe code, and the sandbox
// names each.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

unsafe extern "C" {
    pub safe fn system(command: *const u8) -> i32;
}

#[unsafe(no_mangle)]
pub extern "C" fn exported() {}

pub fn length(paged: &Paged) -> usize {
    unsafe { paged.incident_id.as_bytes().as_ptr().read() as usize }
}

fn main() {}
