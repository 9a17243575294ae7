// A pack never holds a credential. What it may hold names a secret and has no value to
// read, and the types that carry values live in the runtime, which no pack can link.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::secrets::SecretHandle;
use ops_core_runtime::secrets::SecretValue;

// An ops macro expands here, so the pack's own build runs the sandbox over this file: the
// refusal is the sandbox's, whatever else the compiler says about unlinked crates.
#[ops_core::data]
pub struct Page {
    pub to: String,
}

pub fn leak(handle: &SecretHandle) -> Vec<u8> {
    handle.expose().to_vec()
}

pub fn print(value: &SecretValue) -> String {
    format!("{value:?}")
}

fn main() {}
