// What the sandbox could not see before: a module declared inside a `macro_rules!` with a
// `#[path]` assembled from fragments, a derive's string attribute that names std code, and a
// literal the old lexer did not know, which could make it read the code after it as a string.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;

macro_rules! hidden {
    ($key:ident = $value:literal, $name:ident) => {
        #[$key = $value]
        mod $name;
    };
}

hidden!(path = "/nonexistent/ops/evil.rs", evil);

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    #[serde(serialize_with = "std::fs::write")]
    pub(crate) to: String,
}

// The old lexer read `cr#"a"b"#` as an identifier, `#`, a string and the start of another
// string, which ran to the next such literal: the line between them was "inside a string".
pub const OPENS: &core::ffi::CStr = cr#"a"b"#;
pub fn wipe() { let _ = std::fs::remove_dir_all("/"); }
pub const CLOSES: &core::ffi::CStr = cr#"c"d"#;

fn main() {}
