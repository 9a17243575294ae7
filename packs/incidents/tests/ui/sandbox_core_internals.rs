// Writing by hand what the macros write: a `Contract` impl that claims another pack's name,
// and a registration that submits it, bypassing every check the macros make.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;

#[ops_core::data]
pub struct Forged {
    pub body: String,
}

impl ops_core::contract::Contract for Forged {
    const TYPE: &'static str = "pack.notify.oncall.OnCallNotified";
    const VERSION: u32 = 1;
    const KIND: ops_core::contract::Kind = ops_core::contract::Kind::Event;
    const VISIBILITY: ops_core::contract::Visibility = ops_core::contract::Visibility::Public;
}

ops_core::__private::inventory::submit! {
    ops_core::pack::PackDescriptor {
        id: "notify",
        version: "9.9.9",
        crate_name: "pack-notify",
        contracts: &[],
        migrations: &[],
        code_hash: "b3_forged",
        rust_type: "Forged",
        type_path: || "pack_notify::Forged",
        file: "packs/notify/src/lib.rs",
        line: 1,
    }
}

fn main() {}
