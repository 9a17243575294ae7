//! Retention (Section 11): how long each class of stored data is kept, stated explicitly,
//! and the receipt of every run of the job that applies it.
//!
//! The event log is the truth and is append-only, so retention never removes an event;
//! personal data in it is removed by crypto-shredding instead. What retention removes is
//! what the log makes redundant:
//! - **artifacts**: the stored bodies of query and derived artifacts; their
//!   `ArtifactRecorded` events stay, and a lineage chain says "removed by retention";
//! - **projections**: the state of projections whose pack is no longer installed and that
//!   nothing has updated within the period; reinstalling the pack rebuilds them from the log;
//! - **receipts**: the operational copies behind egress receipts (the outbox rows of
//!   finished sagas, with their request bodies); the receipts themselves are events and stay.

use crate::event;

/// Days each class is kept; explicit, with defaults an operator overrides.
#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub artifacts_days: u32,
    pub projections_days: u32,
    /// At least one: quotas count the last day's effects from these rows.
    pub receipts_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            artifacts_days: 365,
            projections_days: 30,
            receipts_days: 90,
        }
    }
}

/// A retention job removed what had outlived its retention; written before the removal,
/// also when nothing was due, so no removal is ever silent.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = RetentionApplied {
    class: "artifacts".to_owned(),
    retention_days: 90,
    removed: vec![crate::id::ContentId::example().to_string()],
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct RetentionApplied {
    /// `artifacts`, `projections` or `receipts`.
    pub class: String,
    pub retention_days: u32,
    /// What was removed: artifact ids, projections (`owner/name`) or the command ids of
    /// outbox rows.
    pub removed: Vec<String>,
    /// The capability event the operator's check relied on; empty when the runtime applied
    /// its own policy (the worker) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}
