// A pack trying to reach the outside by itself. It cannot name the executor trait (the
// runtime is not linkable from a pack) and has no HTTP client to call.
#![no_std]
#![forbid(unsafe_code)]
use ops_core as _;
use ops_core_runtime::egress::Executor;

// An ops macro expands here, so the pack's own build runs the sandbox over this file: the
// refusal is the sandbox's, whatever else the compiler says about unlinked crates.
#[ops_core::data]
pub struct Page {
    pub to: String,
}

pub struct MyOwnPager;

impl Executor for MyOwnPager {}

pub fn page_directly() {
    let _ = reqwest::blocking::get("https://pager.example.com/page");
}

fn main() {}
