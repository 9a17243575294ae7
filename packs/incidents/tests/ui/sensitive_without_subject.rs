// Personal data is sealed under the key of the person its object names with `#[subject]`.
// Without a subject it would be stored in clear and could never be erased.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;

#[ops_core::event(domain = "triage")]
pub(crate) struct CallerNoted {
    pub(crate) incident_id: String,
    #[sensitive]
    pub(crate) caller_phone: String,
}

#[ops_core::data]
pub enum Contact {
    Person {
        #[subject]
        id: String,
        #[sensitive]
        name: String,
    },
    Anonymous {
        #[sensitive]
        phone: String,
    },
}

fn main() {}
