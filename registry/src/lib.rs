//! `ops-registry`: the registry as a document, and what CI checks with it.
//!
//! - [`document`] turns the live registry of a binary into `registry.json` plus one JSON
//!   Schema file per type version, sorted and stable so it can be committed and diffed.
//! - [`snapshot`] is the committed history of public types, crate versions and manifests.
//! - [`contract_policy`] is the contract-diff policy: findings, semver impact and upcaster
//!   checks. Schema compatibility itself is decided by the `schema-compat` crate.
//! - [`releases`] describes what a binary links as releases, with its pins.
//! - [`generated`] builds synthetic exports for tests and benchmarks.

pub mod contract_policy;
pub mod document;
pub mod generated;
pub mod releases;
pub mod snapshot;
