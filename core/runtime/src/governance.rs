//! Governed policies in the log (Section 2, 3): drafting, simulation against recorded
//! decisions, approval, activation on a passing eval artifact and a verified Ed25519
//! signature, deprecation and explicit rollback. Each step is a core event whose actor is
//! who took it; [`PolicyBook`] says which step is allowed. [`ActivePolicies`] approves
//! effects for the egress gateway by the active versions, so receipts name the policy id
//! and version that approved them.

use crate::capability::StepCheck;
use crate::clock::WallClock;
use ops_core::capability::CheckedStep;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use ops_core::capability::Authority;

use ops_core::contract::Contract;
use ops_core::egress::{Approval, EgressExecuted};
use ops_core::envelope::EventEnvelope;
use ops_core::governance::{
    DecisionChange, EvalArtifact, EvalRecorded, Evidence, PolicyBook, PolicyDefinition,
    PolicyDrafted, PolicyPromoted, PolicyRolledBack, PolicyState, SimulationReport,
};
use ops_core::id::payload_hash;
use ops_core::id::{CapabilityId, CommandId, ContentId};
use ops_core::supply_chain::{ImpactReport, SignatureRef, may_record, model_changes};
use ops_core::time::{Timestamp, day_of_micros};

use crate::acting::Acting;
use crate::egress::{ApprovalPolicy, Effect};
use crate::lineage::Lineage;
use crate::signing::Trust;
use crate::store::{AppendError, EventStore, ExpectedVersion, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy `{policy}` {version}: {reason}")]
    Refused {
        policy: String,
        version: String,
        reason: String,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("reading recorded decisions failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("recording the step failed; nothing was written: {0}")]
    Append(#[from] AppendError),
    #[error("capability {capability} does not allow this policy step: {reason}")]
    Denied {
        capability: CapabilityId,
        reason: String,
    },
}

pub struct Policies {
    store: EventStore,
    book: RwLock<PolicyBook>,
    /// Keys whose signatures may activate a policy, and the pins it must match.
    trust: Trust,
    /// The capability governance steps are recorded under.
    capability_id: CapabilityId,
    /// How each step is checked: with an authority, the actor's capability must cover the
    /// step's event type (an operator's tooling); without, the caller is the runtime itself.
    steps: StepCheck,
}

impl Policies {
    pub async fn load(
        store: EventStore,
        trust: Trust,
        capability_id: CapabilityId,
    ) -> Result<Self, PolicyError> {
        let policies = Policies {
            steps: StepCheck::new(store.clone(), capability_id, "core.governance"),
            store,
            book: RwLock::new(PolicyBook::default()),
            trust,
            capability_id,
        };
        policies.refresh().await?;
        Ok(policies)
    }

    /// Reads the policies' events again: what other hosts recorded since.
    pub async fn refresh(&self) -> Result<(), PolicyError> {
        let events = self
            .store
            .read_by_types(&[
                PolicyDrafted::TYPE,
                PolicyPromoted::TYPE,
                PolicyRolledBack::TYPE,
                EvalRecorded::TYPE,
            ])
            .await?;
        let mut book = PolicyBook::default();
        for event in &events {
            apply(&mut book, &event.envelope);
        }
        *self.book.write().expect("never poisoned") = book;
        Ok(())
    }

    /// Checks each step with `authority` on the capability given at load: the actor's.
    pub fn checked_by(mut self, authority: Arc<dyn Authority>) -> Self {
        self.steps.checked_by(authority);
        self
    }

    pub fn book(&self) -> PolicyBook {
        self.book.read().expect("never poisoned").clone()
    }

    pub async fn draft(
        &self,
        definition: PolicyDefinition,
        by: &Acting,
    ) -> Result<ContentId, PolicyError> {
        let content_id = definition.content_id();
        let refuse = |reason: String| PolicyError::Refused {
            policy: definition.policy_id.clone(),
            version: definition.version.clone(),
            reason,
        };
        if !definition.owns_its_command() {
            return Err(refuse(format!(
                "it approves `{}`, which pack `{}` does not own: a pack's policy approves only its own effects",
                definition.rule.command_type, definition.owner_pack
            )));
        }
        let recorded = self
            .book()
            .version(&definition.policy_id, &definition.version)
            .map(|existing| existing.content_id);
        if !may_record(&definition.version, content_id, recorded).map_err(refuse)? {
            return Ok(content_id);
        }
        let drafted = PolicyDrafted {
            definition: definition.clone(),
            content_id,
            capability_state_ref: String::new(),
        };
        self.record(&drafted, &format!("{content_id}:drafted"), by)
            .await?;
        Ok(content_id)
    }

    /// Replays the recorded external effects against the candidate: which would it approve,
    /// which did the active version approve, and what the inputs were.
    pub async fn simulate(
        &self,
        policy_id: &str,
        version: &str,
        reason: &str,
        by: &Acting,
    ) -> Result<SimulationReport, PolicyError> {
        let definition = self.definition(policy_id, version)?;
        let rows = crate::outbox::closed(self.store.db()).await?;
        let mut approved_by_policy: BTreeMap<String, bool> = BTreeMap::new();
        for receipt in self.store.read_by_type(EgressExecuted::TYPE).await? {
            if let Ok(executed) = serde_json::from_value::<EgressExecuted>(receipt.envelope.payload)
            {
                let by_this = matches!(&executed.approval, Approval::Policy { policy_id: id, .. } if id == policy_id);
                approved_by_policy.insert(executed.effect.command_id.to_string(), by_this);
            }
        }
        let mut per_day: BTreeMap<i64, u32> = BTreeMap::new();
        let mut changed = Vec::new();
        for (command_id, command_type, destination, created_at_us) in &rows {
            let day = day_of_micros(*created_at_us);
            let candidate = definition.covers(command_type, destination) && {
                let used = per_day.entry(day).or_default();
                *used += 1;
                *used <= definition.rule.max_per_day
            };
            let active = approved_by_policy.get(command_id).copied().unwrap_or(false);
            if candidate != active {
                changed.push(DecisionChange {
                    command_id: command_id.parse::<CommandId>().map_err(|error| {
                        PolicyError::Refused {
                            policy: policy_id.to_owned(),
                            version: version.to_owned(),
                            reason: format!("outbox row {command_id} is damaged: {error}"),
                        }
                    })?,
                    active,
                    candidate,
                });
            }
        }
        let report = SimulationReport {
            compared: rows.len() as u32,
            changed,
            inputs_hash: payload_hash(&serde_json::to_value(&rows).expect("rows are plain JSON")),
        };
        self.promote(
            policy_id,
            version,
            PolicyState::Simulated,
            Evidence::Simulation {
                report: report.clone(),
            },
            reason,
            by,
        )
        .await?;
        Ok(report)
    }

    pub async fn approve(
        &self,
        policy_id: &str,
        version: &str,
        reason: &str,
        by: &Acting,
    ) -> Result<(), PolicyError> {
        let evidence = Evidence::Approval {
            approved_by: by.actor.clone(),
        };
        self.promote(
            policy_id,
            version,
            PolicyState::Approved,
            evidence,
            reason,
            by,
        )
        .await
    }

    pub async fn record_eval(
        &self,
        artifact: EvalArtifact,
        by: &Acting,
    ) -> Result<ContentId, PolicyError> {
        let eval_id = artifact.eval_id();
        let recorded = EvalRecorded {
            eval_id,
            artifact,
            capability_state_ref: String::new(),
        };
        self.record(&recorded, &format!("{eval_id}:eval"), by)
            .await?;
        Ok(eval_id)
    }

    /// Evaluates a simulated version and records the eval, computed here from the
    /// simulation the log holds, never typed in: the metric `decisions_unchanged` (the
    /// share of recorded decisions the version leaves as they were; 1 when there were none)
    /// against `unchanged_at_least`, for the pinned tools, in `environment`.
    pub async fn evaluate(
        &self,
        policy_id: &str,
        version: &str,
        unchanged_at_least: f64,
        environment: &str,
        by: &Acting,
    ) -> Result<(ContentId, EvalArtifact), PolicyError> {
        let (definition, report) = {
            let book = self.book();
            let found = book
                .version(policy_id, version)
                .ok_or_else(|| PolicyError::Refused {
                    policy: policy_id.to_owned(),
                    version: version.to_owned(),
                    reason: "it was never drafted".to_owned(),
                })?;
            (found.definition.clone(), found.simulation.clone())
        };
        let report = report.ok_or_else(|| PolicyError::Refused {
            policy: policy_id.to_owned(),
            version: version.to_owned(),
            reason: "it was never simulated; `ops-host policies simulate` replays the recorded decisions against it first".to_owned(),
        })?;
        let unchanged = if report.compared == 0 {
            1.0
        } else {
            1.0 - report.changed.len() as f64 / f64::from(report.compared)
        };
        let eval = EvalArtifact {
            inputs_hash: report.inputs_hash,
            policy_version: version.to_owned(),
            tool_versions: definition.pins.tools.clone(),
            model_config: BTreeMap::new(),
            metrics: [("decisions_unchanged".to_owned(), unchanged)].into(),
            thresholds: [("decisions_unchanged".to_owned(), unchanged_at_least)].into(),
            passed: unchanged >= unchanged_at_least,
            run_at: by.cause.at(),
            environment: environment.to_owned(),
            correlation_id: ops_core::id::CorrelationId::of(policy_id)
                .expect("plain strings have a canonical form"),
        };
        let eval_id = self.record_eval(eval.clone(), by).await?;
        Ok((eval_id, eval))
    }

    /// Activates a version on a recorded, passing eval and a signature by a trusted key.
    pub async fn activate(
        &self,
        policy_id: &str,
        version: &str,
        eval_id: ContentId,
        signature: &SignatureRef,
        reason: &str,
        by: &Acting,
    ) -> Result<(), PolicyError> {
        let refuse = |reason: String| PolicyError::Refused {
            policy: policy_id.to_owned(),
            version: version.to_owned(),
            reason,
        };
        let book = self.book();
        let Some(recorded) = book.version(policy_id, version) else {
            return Err(refuse("it was never drafted".to_owned()));
        };
        let definition = &recorded.definition;
        let content_id = definition.content_id();
        if recorded.content_id != content_id {
            return Err(refuse(format!(
                "its definition no longer hashes to {}; it was tampered with",
                recorded.content_id
            )));
        }
        self.trust.verify(&content_id, signature).map_err(refuse)?;
        if let Some(mismatch) = self.trust.pin_mismatch(&definition.pins) {
            return Err(refuse(mismatch));
        }
        // The eval must have run the pinned models (the book checks); what the models
        // they replace computed is named in the evidence.
        let replaced_tools = book
            .active()
            .find(|v| v.definition.policy_id == policy_id)
            .map(|v| v.definition.pins.tools.clone())
            .unwrap_or_default();
        let changes = model_changes(&replaced_tools, &definition.pins.tools);
        let impact = if changes.is_empty() {
            None
        } else {
            let affected_artifacts = Lineage::new(self.store.clone(), self.capability_id)
                .affected_by(&changes)
                .await
                .map_err(|error| {
                    refuse(format!("the impact check could not read lineage: {error}"))
                })?;
            Some(ImpactReport {
                changes,
                affected_artifacts,
                eval_id: Some(eval_id),
            })
        };
        let evidence = Evidence::Activation {
            eval_id,
            signature: signature.signature.clone(),
            signer: signature.signer.clone(),
            impact,
        };
        self.promote(
            policy_id,
            version,
            PolicyState::Active,
            evidence,
            reason,
            by,
        )
        .await
    }

    pub async fn deprecate(
        &self,
        policy_id: &str,
        version: &str,
        reason: &str,
        by: &Acting,
    ) -> Result<(), PolicyError> {
        let evidence = Evidence::Deprecation {
            reason: reason.to_owned(),
        };
        self.promote(
            policy_id,
            version,
            PolicyState::Deprecated,
            evidence,
            reason,
            by,
        )
        .await
    }

    /// Makes a named earlier version active again.
    pub async fn rollback(
        &self,
        policy_id: &str,
        to_version: &str,
        reason: &str,
        by: &Acting,
    ) -> Result<(), PolicyError> {
        let book = self.book();
        if let Some(reason) = book.refuses_rollback(policy_id, to_version) {
            return Err(PolicyError::Refused {
                policy: policy_id.to_owned(),
                version: to_version.to_owned(),
                reason,
            });
        }
        let from_version = book
            .active()
            .find(|v| v.definition.policy_id == policy_id)
            .map(|v| v.definition.version.clone())
            .unwrap_or_default();
        let rolled_back = PolicyRolledBack {
            policy_id: policy_id.to_owned(),
            from_version: from_version.clone(),
            to_version: to_version.to_owned(),
            reason: reason.to_owned(),
            capability_state_ref: String::new(),
        };
        self.record(
            &rolled_back,
            &format!(
                "{policy_id}:{from_version}->{to_version}:{}",
                by.cause.label()
            ),
            by,
        )
        .await
    }

    /// The approval policy the egress gateway asks: the active versions, with each one's
    /// daily count so far read from today's receipts.
    pub async fn active_approvals(&self) -> Result<ActivePolicies, PolicyError> {
        let today = Timestamp::now().day();
        let mut used: BTreeMap<String, u32> = BTreeMap::new();
        for receipt in self.store.read_by_type(EgressExecuted::TYPE).await? {
            let day = receipt.envelope.occurred_at.day();
            if let Ok(executed) = serde_json::from_value::<EgressExecuted>(receipt.envelope.payload)
                && let Approval::Policy { policy_id, .. } = executed.approval
                && day == today
            {
                *used.entry(policy_id).or_default() += 1;
            }
        }
        Ok(ActivePolicies {
            active: self.book().active().map(|v| v.definition.clone()).collect(),
            used: Mutex::new((today, used)),
        })
    }

    fn definition(&self, policy_id: &str, version: &str) -> Result<PolicyDefinition, PolicyError> {
        self.book()
            .version(policy_id, version)
            .map(|v| v.definition.clone())
            .ok_or_else(|| PolicyError::Refused {
                policy: policy_id.to_owned(),
                version: version.to_owned(),
                reason: "it was never drafted".to_owned(),
            })
    }

    async fn promote(
        &self,
        policy_id: &str,
        version: &str,
        to: PolicyState,
        evidence: Evidence,
        reason: &str,
        by: &Acting,
    ) -> Result<(), PolicyError> {
        let book = self.book();
        if let Some(reason) = book.refuses(policy_id, version, to, &evidence) {
            return Err(PolicyError::Refused {
                policy: policy_id.to_owned(),
                version: version.to_owned(),
                reason,
            });
        }
        let content_id = book
            .version(policy_id, version)
            .map(|v| v.content_id)
            .expect("checked: the version exists");
        let promoted = PolicyPromoted {
            policy_id: policy_id.to_owned(),
            version: version.to_owned(),
            content_id,
            to,
            evidence,
            reason: reason.to_owned(),
            capability_state_ref: String::new(),
        };
        let mut steps = vec![(promoted, format!("{content_id}:{to:?}"))];
        // The version this one replaces is deprecated in the same append, as its own step.
        let replaced = book
            .active()
            .find(|v| v.definition.policy_id == policy_id && v.definition.version != version);
        if let (PolicyState::Active, Some(replaced)) = (to, replaced) {
            let why = format!("replaced by {version}");
            steps.push((
                PolicyPromoted {
                    policy_id: policy_id.to_owned(),
                    version: replaced.definition.version.clone(),
                    content_id: replaced.content_id,
                    to: PolicyState::Deprecated,
                    evidence: Evidence::Deprecation {
                        reason: why.clone(),
                    },
                    reason: why,
                    capability_state_ref: String::new(),
                },
                format!(
                    "{}:{:?}:by:{content_id}",
                    replaced.content_id,
                    PolicyState::Deprecated
                ),
            ));
        }
        let steps: Vec<(&PolicyPromoted, String)> =
            steps.iter().map(|(step, id)| (step, id.clone())).collect();
        self.record_all(&steps, by).await
    }

    async fn record<E: CheckedStep>(
        &self,
        event: &E,
        native_id: &str,
        by: &Acting,
    ) -> Result<(), PolicyError> {
        self.record_all(&[(event, native_id.to_owned())], by).await
    }

    /// Records several steps in one append: all or none.
    async fn record_all<E: CheckedStep>(
        &self,
        steps: &[(&E, String)],
        by: &Acting,
    ) -> Result<(), PolicyError> {
        let Some((_, first)) = steps.first() else {
            return Ok(());
        };
        let relied_on = self
            .steps
            .allowed(by, E::TYPE, format!("governance/{first}"))
            .await?
            .map_err(|reason| PolicyError::Denied {
                capability: self.capability_id,
                reason,
            })?;
        let envelopes: Vec<EventEnvelope> = steps
            .iter()
            .map(|(event, native_id)| {
                let origin = by.origin("core.governance", native_id, self.capability_id);
                let event = (*event).clone().relying_on(relied_on.clone());
                EventEnvelope::new(&event, origin).expect("core events are plain JSON")
            })
            .collect();
        self.store
            .append("governance", ExpectedVersion::Any, &envelopes)
            .await?;
        let mut book = self.book.write().expect("never poisoned");
        for envelope in &envelopes {
            apply(&mut book, envelope);
        }
        Ok(())
    }
}

fn apply(book: &mut PolicyBook, envelope: &EventEnvelope) {
    let payload = envelope.payload.clone();
    match envelope.event_type.as_str() {
        PolicyDrafted::TYPE => {
            if let Ok(drafted) = serde_json::from_value::<PolicyDrafted>(payload) {
                book.drafted(&drafted, envelope.actor.clone());
            }
        }
        PolicyPromoted::TYPE => {
            if let Ok(promoted) = serde_json::from_value(payload) {
                book.promoted(&promoted);
            }
        }
        PolicyRolledBack::TYPE => {
            if let Ok(rolled_back) = serde_json::from_value(payload) {
                book.rolled_back(&rolled_back);
            }
        }
        EvalRecorded::TYPE => {
            if let Ok(recorded) = serde_json::from_value(payload) {
                book.eval_recorded(&recorded);
            }
        }
        _ => {}
    }
}

/// Approves effects by the active policy versions, each at most its daily count.
pub struct ActivePolicies {
    active: Vec<PolicyDefinition>,
    /// The day (since the epoch) and each policy's approvals on it.
    used: Mutex<(i64, BTreeMap<String, u32>)>,
}

impl ApprovalPolicy for ActivePolicies {
    fn approve(&self, effect: &Effect) -> Option<Approval> {
        let today = Timestamp::now().day();
        let mut used = self.used.lock().expect("never poisoned");
        if used.0 != today {
            *used = (today, BTreeMap::new());
        }
        let policy = self.active.iter().find(|policy| {
            policy.covers(&effect.command_type, &effect.destination)
                && used.1.get(&policy.policy_id).copied().unwrap_or(0) < policy.rule.max_per_day
        })?;
        *used.1.entry(policy.policy_id.clone()).or_default() += 1;
        Some(Approval::Policy {
            policy_id: policy.policy_id.clone(),
            policy_version: policy.version.clone(),
        })
    }
}
