//! Lineage (Section 5): what a result was computed from, content-addressed.
//!
//! A [`QueryArtifact`] is a read of a projection at a snapshot (the log position it had
//! reached), with its version, freshness and the access scope it was read under. A
//! [`DerivedArtifact`] is anything computed from artifacts or events (a summary, a
//! suggestion) with the policy, tools and model that computed it and the eval that vouches
//! for them. Both are identified by the hash of their canonical form; feedback on either
//! is an event naming it.

use std::collections::BTreeMap;

use crate::event;
use crate::id::{CapabilityId, ContentHash, ContentId, EventId};
use crate::time::Timestamp;

#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryArtifact {
    /// The log position the projection had reached, as `tx_order:seq`.
    pub snapshot_id: String,
    /// `<pack>/<name>`.
    pub projection: String,
    pub projection_version: u32,
    /// When the last event the projection had applied was recorded.
    pub freshness_at: Timestamp,
    /// Who read it: the capability and the capability event the read relied on.
    pub capability_id: CapabilityId,
    pub capability_state_ref: String,
    /// The events the projection had folded by the snapshot.
    pub source_events: Vec<EventId>,
    pub result_hash: ContentHash,
}

/// What an input of a derived artifact is.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Input {
    Artifact(ContentId),
    Event(EventId),
}

#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedArtifact {
    pub inputs: Vec<Input>,
    /// The hash of each input's content, in the order of `inputs`.
    pub input_hashes: Vec<ContentHash>,
    pub policy_version: String,
    pub tool_versions: BTreeMap<String, String>,
    pub model_config: BTreeMap<String, String>,
    pub eval_id: Option<ContentId>,
    pub output_hash: ContentHash,
}

#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Artifact {
    Query(QueryArtifact),
    Derived(DerivedArtifact),
}

impl Artifact {
    pub fn artifact_id(&self) -> ContentId {
        ContentId::of(self).expect("an artifact is plain JSON")
    }
}

/// An artifact was stored under its content id.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = ArtifactRecorded {
    artifact_id: ContentId::example(),
    kind: "derived".to_owned(),
})]
pub struct ArtifactRecorded {
    pub artifact_id: ContentId,
    /// `query` or `derived`.
    pub kind: String,
}

#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    Accepted,
    Rejected,
    Edited,
    Overridden,
    Snoozed,
}

/// What a person (or agent) did with an artifact.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = FeedbackGiven {
    artifact_id: ContentId::example(),
    feedback: FeedbackKind::Edited,
    note: Some("shortened the summary".to_owned()),
})]
pub struct FeedbackGiven {
    pub artifact_id: ContentId,
    pub feedback: FeedbackKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
