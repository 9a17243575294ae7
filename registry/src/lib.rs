//! `ops-registry`: the registry as a document, and what CI checks with it.
//!
//! - [`document`] turns the live registry of a binary into `registry.json` plus one JSON
//!   Schema file per type version, sorted and stable so it can be committed and diffed.
//! - [`snapshot`] is the committed history of public types, crate versions and manifests.
//! - [`compat`] is the schema compatibility engine (typed producers), and [`instances`]
//!   makes sample payloads of a schema for upcaster checks.
//! - [`policy`] is the contract-diff policy: findings, semver impact and upcaster checks.
//! - [`releases`] describes what a binary links as releases, with its pins.
//! - [`generated`] builds synthetic exports for tests and benchmarks.

pub mod compat;
pub mod document;
pub mod generated;
pub mod instances;
pub mod policy;
pub mod releases;
pub mod snapshot;
