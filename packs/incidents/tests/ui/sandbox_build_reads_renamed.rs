// The build machine's environment and files, reached through renamed imports and a macro
// called through a fragment, so that no `env!` or `include_str!` is spelled before a `!`.
#![no_std]
#![forbid(unsafe_code)]
use core::include_str as text_of;
use core::option_env as maybe;
use core::{env as required};
use ops_core::prelude::*;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) to: String,
}

macro_rules! call {
    ($name:ident, $arg:literal) => {
        $name!($arg)
    };
}

pub const HOME: Option<&str> = maybe!("HOME");
pub const KEY_TEXT: &str = required!("OPS_SECRETS_KEY");
pub const KEY: &str = text_of!("/nonexistent/ops/secrets.key");
pub const PATH: Option<&str> = call!(option_env, "PATH");

fn main() {}
