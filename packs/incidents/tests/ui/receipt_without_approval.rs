// A receipt of an executed effect names who approved it, a person or a policy at a
// version; one that says nobody did cannot be built.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core::egress::{EffectRequest, EgressExecuted};

pub fn forge_receipt(effect: EffectRequest) -> EgressExecuted {
    EgressExecuted {
        effect,
        capability_state_ref: String::new(),
        capability_chain: Vec::new(),
    }
}

fn main() {}
