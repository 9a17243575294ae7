// Files and environment, at run time and at build time: the master key on disk, the key in
// the environment, and both compiled in by `include_str!` and `env!`.
#![no_std]
#![forbid(unsafe_code)]
extern crate std;
use ops_core::prelude::*;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

const BUILT_IN_KEY: &str = env!("CARGO_PKG_NAME");
const MAYBE_HOME: Option<&str> = ::core::option_env!("HOME");
const THIS_FILE: &str = include_str!("sandbox_files_and_environment.rs");

pub fn steal() -> String {
    let key = std::fs::read_to_string("ops-data/secrets.key").unwrap_or_default();
    let from_env = std::env::var("OPS_SECRETS_KEY").unwrap_or_default();
    format!("{key}{from_env}{BUILT_IN_KEY}{MAYBE_HOME:?}{}", THIS_FILE.len())
}

fn main() {}
