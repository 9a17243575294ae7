// The pack id comes from the crate name; a manifest cannot claim another.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::pack;

#[pack(id = "billing")]
pub struct BillingPack;

fn main() {}
