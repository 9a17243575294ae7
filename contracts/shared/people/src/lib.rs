//! References to people and services that several packs talk about. They are external
//! refs with provenance (Section 1): the id is the source system's, the system says whose.

#![no_std]
#![forbid(unsafe_code)]

use ops_core::data;
use ops_core::prelude::*;

/// A person as known to some identity source (e.g. the on-call tool).
#[data]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PersonRef {
    /// Which system the id belongs to, e.g. `pagerduty`.
    #[subject]
    pub system: String,
    #[subject]
    pub id: String,
    /// Personal data: queries redact it unless the capability reveals it, and the log
    /// keeps it encrypted under this person's key, so destroying the key erases it.
    #[sensitive]
    pub display_name: String,
}

/// A service in the service catalogue.
#[data]
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    pub system: String,
    pub id: String,
}
