//! `ops-registry`: the registry as a document. [`document`] turns the live registry of a
//! binary into `registry.json` plus one JSON Schema file per type version, sorted and
//! stable so it can be committed and diffed.

pub mod compat;
pub mod document;
pub mod generated;
pub mod instances;
pub mod policy;
pub mod releases;
pub mod snapshot;
