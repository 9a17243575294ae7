//! Governed releases (Section 3, A7) of the artifacts that are not policies: packs,
//! contract modules and tool manifests, without I/O.
//!
//! A [`Release`] is one artifact at one semver version: the hash of its content (for a
//! pack its manifest, migrations and schemas; for a contract module its schemas; for a
//! tool its [`ToolManifest`]) and the versions it was built against ([`Pins`]). Its
//! identity is the [`ContentId`] of all of that. A release is recorded, signed or not
//! (signing is optional for drafts), and becomes active only with an Ed25519 signature
//! over its content id by a trusted key, pins that match the running host, and, when it
//! changes a model or tool version, an impact check: what was computed with the old
//! versions, and a passing eval run with the new ones. Activating an earlier version
//! again is the explicit rollback.

use std::collections::{BTreeMap, BTreeSet};

use crate::event;
use crate::governance::Pins;
pub use crate::governance::{ImpactReport, ModelChange};
use crate::id::{ContentHash, ContentId};

#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    Pack,
    ContractModule,
    ToolManifest,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Pack => "pack",
            ArtifactKind::ContractModule => "contract module",
            ArtifactKind::ToolManifest => "tool manifest",
        }
    }
}

#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub kind: ArtifactKind,
    pub name: String,
    /// Semver.
    pub version: String,
    /// blake3 of the artifact's canonical content.
    pub content_hash: ContentHash,
    pub pins: Pins,
}

impl Release {
    /// Its identity: the canonical form of everything above.
    pub fn content_id(&self) -> ContentId {
        ContentId::of(self).expect("a release is plain JSON")
    }

    /// `kind name version`, for messages.
    pub fn label(&self) -> String {
        format!("{} `{}` {}", self.kind.as_str(), self.name, self.version)
    }
}

/// What a tool (an executor, a model wrapper) is: its identity for the supply chain.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolManifest {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Egress destinations it executes for.
    pub destinations: Vec<String>,
    /// Model → version it calls, if any.
    pub models: BTreeMap<String, String>,
}

impl ToolManifest {
    /// Its release: the content is the manifest; the models it calls are pinned.
    pub fn release(&self, pins: Pins) -> Release {
        Release {
            kind: ArtifactKind::ToolManifest,
            name: self.name.clone(),
            version: self.version.clone(),
            content_hash: crate::id::payload_hash(
                &serde_json::to_value(self).expect("a manifest is plain JSON"),
            ),
            pins: Pins {
                tools: pins.tools.into_iter().chain(self.models.clone()).collect(),
                ..pins
            },
        }
    }
}

/// Whether `version` of a governed artifact may be recorded with `content_id`, given what
/// was recorded under it before: `Ok(true)` when it is new, `Ok(false)` when exactly this
/// content was (recording again changes nothing), and why not otherwise.
pub fn may_record(
    version: &str,
    content_id: ContentId,
    recorded: Option<ContentId>,
) -> Result<bool, String> {
    semver::Version::parse(version)
        .map_err(|error| format!("`{version}` is not a semver version: {error}"))?;
    match recorded {
        None => Ok(true),
        Some(recorded) if recorded == content_id => Ok(false),
        Some(_) => Err("this version was recorded with other content; bump the version".to_owned()),
    }
}

/// Every pinned model or tool whose version differs between two pin sets.
pub fn model_changes(
    active: &BTreeMap<String, String>,
    candidate: &BTreeMap<String, String>,
) -> Vec<ModelChange> {
    let tools: BTreeSet<&String> = active.keys().chain(candidate.keys()).collect();
    tools
        .into_iter()
        .filter(|tool| active.get(*tool) != candidate.get(*tool))
        .map(|tool| ModelChange {
            tool: tool.clone(),
            from: active.get(tool).cloned(),
            to: candidate.get(tool).cloned(),
        })
        .collect()
}

/// An Ed25519 signature over the text of a content id.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureRef {
    /// 64 bytes, hex.
    pub signature: String,
    /// The verifying key, hex.
    pub signer: String,
}

fn example_release() -> Release {
    Release {
        kind: ArtifactKind::Pack,
        name: "incidents".to_owned(),
        version: "0.1.1".to_owned(),
        content_hash: ContentHash::example(),
        pins: Pins::default(),
    }
}

/// A release was recorded; drafts may be unsigned.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = ReleaseRecorded { release: example_release(), content_id: ContentId::example(), signature: None, capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned() })]
pub struct ReleaseRecorded {
    pub release: Release,
    pub content_id: ContentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureRef>,
    /// The capability event the check of this step relied on; empty when the runtime took
    /// the step itself (nothing asked) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}

/// A release became the active version of its artifact, verified.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = ReleaseActivated {
    kind: ArtifactKind::Pack,
    name: "incidents".to_owned(),
    version: "0.1.1".to_owned(),
    content_id: ContentId::example(),
    signature: SignatureRef { signature: "00".repeat(64), signer: "00".repeat(32) },
    impact: ImpactReport::default(),
    replaces: None,
    reason: "first release".to_owned(),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct ReleaseActivated {
    pub kind: ArtifactKind,
    pub name: String,
    pub version: String,
    pub content_id: ContentId,
    pub signature: SignatureRef,
    pub impact: ImpactReport,
    /// The version that was active before; an earlier one than this is a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    pub reason: String,
    /// The capability event the check of this step relied on; empty when the runtime took
    /// the step itself (nothing asked) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}

crate::capability::checked_step!(ReleaseRecorded, ReleaseActivated);

/// Every recorded release and the active version of each artifact.
#[derive(Clone, Debug, Default)]
pub struct ReleaseBook {
    recorded: BTreeMap<ContentId, Release>,
    active: BTreeMap<(ArtifactKind, String), ContentId>,
}

impl ReleaseBook {
    pub fn recorded(&mut self, recorded: &ReleaseRecorded) {
        self.recorded
            .insert(recorded.content_id, recorded.release.clone());
    }

    pub fn activated(&mut self, activated: &ReleaseActivated) {
        self.active.insert(
            (activated.kind, activated.name.clone()),
            activated.content_id,
        );
    }

    pub fn release(&self, content_id: &ContentId) -> Option<&Release> {
        self.recorded.get(content_id)
    }

    /// The recorded release of `kind name version`.
    pub fn find(&self, kind: ArtifactKind, name: &str, version: &str) -> Option<&Release> {
        self.recorded
            .values()
            .find(|r| r.kind == kind && r.name == name && r.version == version)
    }

    pub fn active(&self, kind: ArtifactKind, name: &str) -> Option<(&ContentId, &Release)> {
        let id = self.active.get(&(kind, name.to_owned()))?;
        Some((id, self.recorded.get(id)?))
    }

    /// Every active release.
    pub fn all_active(&self) -> impl Iterator<Item = (&ContentId, &Release)> {
        self.active
            .values()
            .filter_map(|id| Some((id, self.recorded.get(id)?)))
    }
}
