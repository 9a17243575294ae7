// A fold that reads where a value lives in memory: the address differs between runs, so a
// replay would not give the same state. Every spelling: `{:p}` with flags, a raw pointer
// cast to an integer, `ptr` helpers, `as_ptr`, `fmt::Pointer`, and a format string that
// `concat!` assembles so no literal holds `{:p}`.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) to: String,
}

pub(crate) fn fingerprints(event: &Paged) -> Vec<String> {
    vec![
        format!("{:p}", event),
        format!("{event:#018p}"),
        format!("{}", event as *const Paged as usize),
        format!("{}", core::ptr::from_ref(event).addr()),
        format!("{}", event.to.as_ptr() as usize),
        format!(concat!("{", ":p}"), event),
    ]
}

pub(crate) struct Shown<'a>(&'a Paged);

impl core::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Pointer::fmt(&self.0, f)
    }
}

fn main() {}
