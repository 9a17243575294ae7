//! Releases of packs, contract modules and tool manifests in the log (Section 3, A7).
//!
//! [`Releases::record`] records a release, signed or not. [`Releases::activate`] makes it
//! the active version of its artifact only when all of these hold, and records
//! `ReleaseActivated` with what it checked:
//! - the release as presented now hashes to the recorded content id (a changed artifact
//!   is refused as tampered);
//! - a trusted key signed that content id;
//! - its pins match what this host runs (core version, contract module versions);
//! - the model-change impact check: when its pinned models or tools differ from the
//!   active release's, a recorded eval that passes its thresholds ran with exactly the new
//!   versions, and the derived artifacts computed with the replaced versions are listed.

use crate::capability::StepCheck;
use ops_core::capability::CheckedStep;
use std::collections::BTreeMap;
use std::sync::RwLock;

use ops_core::contract::Contract;
use ops_core::envelope::EventEnvelope;
use ops_core::governance::{EvalRecorded, vouching_eval};
use ops_core::id::{CapabilityId, ContentId};
use ops_core::supply_chain::{
    ImpactReport, Release, ReleaseActivated, ReleaseBook, ReleaseRecorded, SignatureRef,
    may_record, model_changes,
};

use crate::acting::Acting;
use crate::lineage::{Lineage, LineageError};
use crate::service_event;
use crate::signing::Trust;
use crate::store::{AppendError, EventStore, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{release}: {reason}")]
    Refused { release: String, reason: String },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Lineage(#[from] LineageError),
    #[error("recording the release failed; nothing was written: {0}")]
    Append(#[from] AppendError),
    #[error("capability {capability} does not allow this release step: {reason}")]
    Denied {
        capability: CapabilityId,
        reason: String,
    },
}

pub struct Releases {
    store: EventStore,
    book: RwLock<ReleaseBook>,
    trust: Trust,
    capability_id: CapabilityId,
    /// How each step is checked (see `Policies::checked_by`).
    steps: StepCheck,
}

impl Releases {
    pub async fn load(
        store: EventStore,
        trust: Trust,
        capability_id: CapabilityId,
    ) -> Result<Self, ReleaseError> {
        let events = store
            .read_by_types(&[ReleaseRecorded::TYPE, ReleaseActivated::TYPE])
            .await?;
        let mut book = ReleaseBook::default();
        for event in &events {
            apply(&mut book, &event.envelope);
        }
        Ok(Releases {
            steps: StepCheck::new(store.clone(), capability_id, "core.supply_chain"),
            store,
            book: RwLock::new(book),
            trust,
            capability_id,
        })
    }

    /// Checks each step with `authority` on the capability given at load: the actor's.
    pub fn checked_by(
        mut self,
        authority: std::sync::Arc<dyn ops_core::capability::Authority>,
    ) -> Self {
        self.steps.checked_by(authority);
        self
    }

    pub fn book(&self) -> ReleaseBook {
        self.book.read().expect("never poisoned").clone()
    }

    /// Records a release; a signature, optional here, is verified when given. Recording
    /// the same release again changes nothing.
    pub async fn record(
        &self,
        release: &Release,
        signature: Option<SignatureRef>,
        by: &Acting,
    ) -> Result<ContentId, ReleaseError> {
        let content_id = release.content_id();
        let refuse = |reason: String| refused(release, reason);
        if let Some(signature) = &signature {
            self.trust.verify(&content_id, signature).map_err(refuse)?;
        }
        let recorded = self
            .book()
            .find(release.kind, &release.name, &release.version)
            .map(Release::content_id);
        if !may_record(&release.version, content_id, recorded).map_err(refuse)? {
            return Ok(content_id);
        }
        let recorded = ReleaseRecorded {
            release: release.clone(),
            content_id,
            signature,
            capability_state_ref: String::new(),
        };
        self.append(&recorded, &format!("{content_id}:recorded"), by)
            .await?;
        Ok(content_id)
    }

    /// Makes `release`, as it is now, the active version of its artifact. Naming an
    /// earlier version than the active one is the explicit rollback.
    pub async fn activate(
        &self,
        release: &Release,
        signature: &SignatureRef,
        eval_id: Option<ContentId>,
        reason: &str,
        by: &Acting,
    ) -> Result<ReleaseActivated, ReleaseError> {
        let refuse = |reason: String| refused(release, reason);
        let content_id = release.content_id();
        let book = self.book();
        if book.release(&content_id).is_none() {
            return Err(refuse(
                match book.find(release.kind, &release.name, &release.version) {
                    Some(recorded) => format!(
                        "it no longer hashes to {}, the content id it was recorded with; it changed after it was recorded",
                        recorded.content_id()
                    ),
                    None => "it was never recorded; record it first".to_owned(),
                },
            ));
        }
        let active = book.active(release.kind, &release.name);
        if active.is_some_and(|(id, _)| *id == content_id) {
            return Err(refuse("it is already active".to_owned()));
        }
        self.trust.verify(&content_id, signature).map_err(&refuse)?;
        if let Some(mismatch) = self.trust.pin_mismatch(&release.pins) {
            return Err(refuse(mismatch));
        }
        let empty = BTreeMap::new();
        let replaced_tools = active.map_or(&empty, |(_, active)| &active.pins.tools);
        let impact = self
            .impact(release, replaced_tools, eval_id)
            .await?
            .map_err(refuse)?;
        let activated = ReleaseActivated {
            kind: release.kind,
            name: release.name.clone(),
            version: release.version.clone(),
            content_id,
            signature: signature.clone(),
            impact,
            replaces: active.map(|(_, active)| active.version.clone()),
            reason: reason.to_owned(),
            capability_state_ref: String::new(),
        };
        self.append(
            &activated,
            &format!("{content_id}:activated:{}", by.cause.label()),
            by,
        )
        .await?;
        Ok(activated)
    }

    /// The model-change impact check: `Ok(Err(why))` when it does not pass.
    async fn impact(
        &self,
        release: &Release,
        replaced_tools: &BTreeMap<String, String>,
        eval_id: Option<ContentId>,
    ) -> Result<Result<ImpactReport, String>, ReleaseError> {
        let changes = model_changes(replaced_tools, &release.pins.tools);
        if changes.is_empty() {
            return Ok(Ok(ImpactReport {
                eval_id,
                ..ImpactReport::default()
            }));
        }
        let changed: Vec<String> = changes
            .iter()
            .map(|c| format!("`{}` {:?} -> {:?}", c.tool, c.from, c.to))
            .collect();
        let Some(eval_id) = eval_id else {
            return Ok(Err(format!(
                "it changes {}; the model-change impact check needs an eval run with the new versions",
                changed.join(", ")
            )));
        };
        // Read now: evals are recorded through governance, by any host.
        let eval = self
            .store
            .read_by_type(EvalRecorded::TYPE)
            .await?
            .into_iter()
            .filter_map(|event| serde_json::from_value::<EvalRecorded>(event.envelope.payload).ok())
            .find(|recorded| recorded.eval_id == eval_id)
            .map(|recorded| recorded.artifact);
        if let Err(refusal) = vouching_eval(&eval_id, eval.as_ref(), &release.pins.tools) {
            return Ok(Err(refusal));
        }
        let affected_artifacts = Lineage::new(self.store.clone(), self.capability_id)
            .affected_by(&changes)
            .await?;
        Ok(Ok(ImpactReport {
            changes,
            affected_artifacts,
            eval_id: Some(eval_id),
        }))
    }

    async fn append<E: CheckedStep>(
        &self,
        event: &E,
        native_id: &str,
        by: &Acting,
    ) -> Result<(), ReleaseError> {
        let event = self
            .steps
            .relying_on(by, event, format!("supply-chain/{native_id}"))
            .await?
            .map_err(|reason| ReleaseError::Denied {
                capability: self.capability_id,
                reason,
            })?;
        let origin = by.origin("core.supply_chain", native_id, self.capability_id);
        let envelope = service_event::record(&self.store, "supply-chain", &event, origin).await?;
        apply(&mut self.book.write().expect("never poisoned"), &envelope);
        Ok(())
    }
}

fn refused(release: &Release, reason: String) -> ReleaseError {
    ReleaseError::Refused {
        release: release.label(),
        reason,
    }
}

fn apply(book: &mut ReleaseBook, envelope: &EventEnvelope) {
    let payload = envelope.payload.clone();
    match envelope.event_type.as_str() {
        ReleaseRecorded::TYPE => {
            if let Ok(recorded) = serde_json::from_value(payload) {
                book.recorded(&recorded);
            }
        }
        ReleaseActivated::TYPE => {
            if let Ok(activated) = serde_json::from_value(payload) {
                book.activated(&activated);
            }
        }
        _ => {}
    }
}
