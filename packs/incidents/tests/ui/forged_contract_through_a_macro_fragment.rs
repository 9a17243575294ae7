// The trait reaches the impl through a `macro_rules!` fragment, so no spelling of it stands
// before `for`; the claim (another pack's private event, made public) still does not
// compile, because `Contract` and `Event` are sealed and only `#[event]` writes their seals.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;

#[ops_core::data]
pub struct Forged {
    pub incident_id: String,
}

macro_rules! claim {
    ($contract:path, $event:path) => {
        impl $contract for Forged {
            const TYPE: &'static str = "pack.notify.oncall.OnCallNotified";
            const VERSION: u32 = 1;
            const KIND: ops_core::contract::Kind = ops_core::contract::Kind::Event;
            const VISIBILITY: ops_core::contract::Visibility =
                ops_core::contract::Visibility::Public;
        }
        impl $event for Forged {}
    };
}

claim!(ops_core::contract::Contract, ops_core::contract::Event);

fn main() {}
