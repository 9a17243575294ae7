//! Governed policies (Section 2) and eval artifacts (Section 3), without I/O.
//!
//! A policy is owned by a pack and identified by its id, its semver version and its
//! [`ContentId`] (blake3 of the canonical form of its whole definition, pins included). Its
//! life is events: drafted → simulated (with the report of a replay of recorded decisions)
//! → approved (by an actor other than the drafter) → active (with a passing eval artifact
//! whose inputs are the simulation's, and a signature over the content id) → deprecated;
//! rollback names the earlier version that becomes active again. [`PolicyBook`] folds the
//! events and says which transition is allowed; the runtime writes them.

use std::collections::BTreeMap;

use crate::envelope::Actor;
use crate::event;
use crate::id::{CommandId, ContentHash, ContentId, CorrelationId};
use crate::time::Timestamp;

/// What an approval policy approves: external effects of one command type to one
/// destination, at most so many a day.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRule {
    pub command_type: String,
    pub destination: String,
    pub max_per_day: u32,
}

/// What a governed artifact was built and checked against (Section 3).
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Pins {
    pub core_version: String,
    /// Contract crate → version.
    pub contracts: BTreeMap<String, String>,
    /// Tool or model → version.
    pub tools: BTreeMap<String, String>,
}

#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDefinition {
    pub policy_id: String,
    /// Semver.
    pub version: String,
    pub owner_pack: String,
    pub description: String,
    pub rule: ApprovalRule,
    pub pins: Pins,
}

impl PolicyDefinition {
    /// Its identity: the canonical form of everything above.
    pub fn content_id(&self) -> ContentId {
        ContentId::of(self).expect("a policy definition is plain JSON")
    }

    /// Whether the rule covers an effect, quota aside: only an effect of a command its
    /// owning pack owns (a pack's policy approves that pack's effects alone).
    pub fn covers(&self, command_type: &str, destination: &str) -> bool {
        self.owns_its_command()
            && self.rule.command_type == command_type
            && self.rule.destination == destination
    }

    /// Whether the command its rule approves belongs to its owning pack.
    pub fn owns_its_command(&self) -> bool {
        crate::contract::owned_by(&self.rule.command_type, &self.owner_pack)
    }
}

#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PolicyState {
    Draft,
    Simulated,
    Approved,
    Active,
    Deprecated,
}

/// One recorded decision whose outcome the candidate would change.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionChange {
    pub command_id: CommandId,
    /// Whether the version active then approved it.
    pub active: bool,
    /// Whether the candidate would.
    pub candidate: bool,
}

/// A replay of recorded decisions against a candidate.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulationReport {
    pub compared: u32,
    pub changed: Vec<DecisionChange>,
    /// What was replayed: the hash of the decisions' inputs, which the eval must match.
    pub inputs_hash: ContentHash,
}

/// The evaluation a promotion to active rests on (Section 3).
#[crate::data]
#[derive(Clone, Debug, PartialEq)]
pub struct EvalArtifact {
    pub inputs_hash: ContentHash,
    pub policy_version: String,
    pub tool_versions: BTreeMap<String, String>,
    pub model_config: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    /// Metric → the least value that passes.
    pub thresholds: BTreeMap<String, f64>,
    pub passed: bool,
    pub run_at: Timestamp,
    pub environment: String,
    pub correlation_id: CorrelationId,
}

impl EvalArtifact {
    /// `eval_id`: the content id of the artifact.
    pub fn eval_id(&self) -> ContentId {
        ContentId::of(self).expect("an eval artifact is plain JSON")
    }

    /// Why it does not pass, if it does not: a metric under its threshold or missing, or a
    /// `passed` flag that contradicts the metrics.
    pub fn failure(&self) -> Option<String> {
        let failing: Vec<String> = self
            .thresholds
            .iter()
            .filter_map(|(metric, least)| match self.metrics.get(metric) {
                None => Some(format!("`{metric}` was not measured")),
                Some(value) if value < least => {
                    Some(format!("`{metric}` is {value}, under {least}"))
                }
                Some(_) => None,
            })
            .collect();
        match (failing.is_empty(), self.passed) {
            (true, true) => None,
            (true, false) => Some("it says it did not pass".to_owned()),
            (false, true) => Some(format!("it says it passed, but {}", failing.join(", "))),
            (false, false) => Some(failing.join(", ")),
        }
    }

    /// Which pinned models and tools it did not run at their pinned versions, if any.
    fn mismatched_tools(&self, pinned: &BTreeMap<String, String>) -> Option<String> {
        let mismatched: Vec<String> = pinned
            .iter()
            .filter(|(tool, version)| self.tool_versions.get(*tool) != Some(version))
            .map(|(tool, version)| match self.tool_versions.get(tool) {
                Some(ran) => format!("`{tool}` ran at {ran}, pinned at {version}"),
                None => format!("`{tool}` {version} was not in the run"),
            })
            .collect();
        (!mismatched.is_empty()).then(|| mismatched.join(", "))
    }
}

/// Eval `eval_id` (`None` when it is not recorded) if it vouches for an artifact that
/// pins `tools`, or why not. It must pass its thresholds and, for the model-change impact
/// check (Section 3), have run exactly the pinned model and tool versions.
pub fn vouching_eval<'a>(
    eval_id: &ContentId,
    eval: Option<&'a EvalArtifact>,
    tools: &BTreeMap<String, String>,
) -> Result<&'a EvalArtifact, String> {
    let eval = eval.ok_or_else(|| format!("eval {eval_id} is not recorded"))?;
    if let Some(failure) = eval.failure() {
        return Err(format!("eval {eval_id} fails its thresholds: {failure}"));
    }
    match eval.mismatched_tools(tools) {
        Some(mismatch) => Err(format!(
            "eval {eval_id} does not cover the pinned models and tools: {mismatch}"
        )),
        None => Ok(eval),
    }
}

fn example_definition() -> PolicyDefinition {
    PolicyDefinition {
        policy_id: "notify.oncall-sev1".to_owned(),
        version: "1.0.0".to_owned(),
        owner_pack: "notify".to_owned(),
        description: "auto-approve on-call notifications for SEV1 incidents".to_owned(),
        rule: ApprovalRule {
            command_type: "pack.notify.oncall.NotifyOnCall".to_owned(),
            destination: "webhook.oncall".to_owned(),
            max_per_day: 20,
        },
        pins: Pins::default(),
    }
}

#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = PolicyDrafted { definition: example_definition(), content_id: ContentId::example(), capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned() })]
pub struct PolicyDrafted {
    pub definition: PolicyDefinition,
    pub content_id: ContentId,
    /// The capability event the check of this step relied on; empty when the runtime took
    /// the step itself (nothing asked) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}

/// What a promotion rests on.
#[crate::data]
#[derive(Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    Simulation {
        report: SimulationReport,
    },
    Approval {
        approved_by: Actor,
    },
    Activation {
        eval_id: ContentId,
        /// Ed25519 over the content id's text, hex.
        signature: String,
        /// The verifying key, hex.
        signer: String,
        /// The model-change impact check against the version it replaces, when it
        /// changes a pinned model or tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        impact: Option<ImpactReport>,
    },
    Deprecation {
        reason: String,
    },
}

/// A policy version moved forward in its lifecycle.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = PolicyPromoted {
    policy_id: "notify.oncall-sev1".to_owned(),
    version: "1.0.0".to_owned(),
    content_id: ContentId::example(),
    to: PolicyState::Approved,
    evidence: Evidence::Approval { approved_by: Actor::Human(crate::envelope::ActorId::new("lead@example.com").expect("an actor id")) },
    reason: "the simulation changed no decision".to_owned(),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct PolicyPromoted {
    pub policy_id: String,
    pub version: String,
    pub content_id: ContentId,
    pub to: PolicyState,
    pub evidence: Evidence,
    /// Why the actor took the step (empty in events recorded before it was asked).
    #[serde(default)]
    pub reason: String,
    /// The capability event the check of this step relied on; empty when the runtime took
    /// the step itself (nothing asked) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}

/// The active version of a policy goes back to a named earlier one.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = PolicyRolledBack {
    policy_id: "notify.oncall-sev1".to_owned(),
    from_version: "1.1.0".to_owned(),
    to_version: "1.0.0".to_owned(),
    reason: "paged for SEV2 too".to_owned(),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct PolicyRolledBack {
    pub policy_id: String,
    pub from_version: String,
    pub to_version: String,
    pub reason: String,
    /// The capability event the check of this step relied on; empty when the runtime took
    /// the step itself (nothing asked) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}

/// An eval artifact, recorded so a promotion can name it.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = EvalRecorded {
    eval_id: ContentId::example(),
    artifact: EvalArtifact {
        inputs_hash: ContentHash::example(),
        policy_version: "1.0.0".to_owned(),
        tool_versions: BTreeMap::new(),
        model_config: BTreeMap::new(),
        metrics: [("precision".to_owned(), 1.0)].into(),
        thresholds: [("precision".to_owned(), 0.95)].into(),
        passed: true,
        run_at: "2026-11-26T09:00:00Z".parse().expect("a timestamp"),
        environment: "local".to_owned(),
        correlation_id: CorrelationId::of("example").expect("canonical"),
    },
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct EvalRecorded {
    pub eval_id: ContentId,
    pub artifact: EvalArtifact,
    /// The capability event the check of this step relied on; empty when the runtime took
    /// the step itself (nothing asked) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}

crate::capability::checked_step!(
    PolicyDrafted,
    PolicyPromoted,
    PolicyRolledBack,
    EvalRecorded
);

/// One version of a policy as the book knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyVersion {
    pub definition: PolicyDefinition,
    pub content_id: ContentId,
    pub state: PolicyState,
    pub drafted_by: Actor,
    pub simulation: Option<SimulationReport>,
    pub ever_active: bool,
}

/// Every policy's versions and which one is active.
#[derive(Clone, Debug, Default)]
pub struct PolicyBook {
    versions: BTreeMap<(String, String), PolicyVersion>,
    active: BTreeMap<String, String>,
    evals: BTreeMap<ContentId, EvalArtifact>,
}

impl PolicyBook {
    pub fn drafted(&mut self, drafted: &PolicyDrafted, by: Actor) {
        let key = (
            drafted.definition.policy_id.clone(),
            drafted.definition.version.clone(),
        );
        self.versions.entry(key).or_insert_with(|| PolicyVersion {
            definition: drafted.definition.clone(),
            content_id: drafted.content_id,
            state: PolicyState::Draft,
            drafted_by: by,
            simulation: None,
            ever_active: false,
        });
    }

    pub fn promoted(&mut self, promoted: &PolicyPromoted) {
        let key = (promoted.policy_id.clone(), promoted.version.clone());
        let Some(version) = self.versions.get_mut(&key) else {
            return;
        };
        version.state = promoted.to;
        if let Evidence::Simulation { report } = &promoted.evidence {
            version.simulation = Some(report.clone());
        }
        if promoted.to == PolicyState::Active {
            version.ever_active = true;
            let before = self
                .active
                .insert(promoted.policy_id.clone(), promoted.version.clone());
            self.retire(&promoted.policy_id, before, &promoted.version);
        }
    }

    pub fn rolled_back(&mut self, rolled_back: &PolicyRolledBack) {
        let before = self.active.insert(
            rolled_back.policy_id.clone(),
            rolled_back.to_version.clone(),
        );
        if let Some(version) = self.versions.get_mut(&(
            rolled_back.policy_id.clone(),
            rolled_back.to_version.clone(),
        )) {
            version.state = PolicyState::Active;
        }
        self.retire(&rolled_back.policy_id, before, &rolled_back.to_version);
    }

    /// The version that was active before another became so is deprecated by that.
    fn retire(&mut self, policy_id: &str, before: Option<String>, now: &str) {
        if let Some(old) = before.filter(|old| old != now)
            && let Some(version) = self.versions.get_mut(&(policy_id.to_owned(), old))
        {
            version.state = PolicyState::Deprecated;
        }
    }

    pub fn eval_recorded(&mut self, recorded: &EvalRecorded) {
        self.evals
            .insert(recorded.eval_id, recorded.artifact.clone());
    }

    pub fn version(&self, policy_id: &str, version: &str) -> Option<&PolicyVersion> {
        self.versions
            .get(&(policy_id.to_owned(), version.to_owned()))
    }

    pub fn eval(&self, eval_id: &ContentId) -> Option<&EvalArtifact> {
        self.evals.get(eval_id)
    }

    /// The active version of every policy.
    pub fn active(&self) -> impl Iterator<Item = &PolicyVersion> {
        self.active
            .iter()
            .filter_map(|(id, version)| self.version(id, version))
    }

    pub fn versions(&self) -> impl Iterator<Item = &PolicyVersion> {
        self.versions.values()
    }

    /// Why `policy_id` `version` may not move to `to` on `evidence` now, if it may not.
    /// The signature itself is verified by the caller, which holds the trusted keys.
    pub fn refuses(
        &self,
        policy_id: &str,
        version: &str,
        to: PolicyState,
        evidence: &Evidence,
    ) -> Option<String> {
        let Some(current) = self.version(policy_id, version) else {
            return Some(format!("policy `{policy_id}` {version} was never drafted"));
        };
        // Each promotion follows one state; deprecation follows any but itself.
        let follows = match to {
            PolicyState::Draft => return Some("a policy is drafted once".to_owned()),
            PolicyState::Simulated => Some(PolicyState::Draft),
            PolicyState::Approved => Some(PolicyState::Simulated),
            PolicyState::Active => Some(PolicyState::Approved),
            PolicyState::Deprecated => None,
        };
        match follows {
            Some(expected) if current.state != expected => {
                return Some(format!(
                    "`{policy_id}` {version} is {:?}; only a {expected:?} policy can become {to:?}",
                    current.state
                ));
            }
            None if current.state == PolicyState::Deprecated => {
                return Some(format!("`{policy_id}` {version} is deprecated already"));
            }
            _ => {}
        }
        match (to, evidence) {
            (PolicyState::Simulated, Evidence::Simulation { .. }) => None,
            (PolicyState::Approved, Evidence::Approval { approved_by }) => {
                (*approved_by == current.drafted_by).then(|| {
                    "the drafter cannot approve their own policy; ask another actor".to_owned()
                })
            }
            (PolicyState::Active, Evidence::Activation { eval_id, .. }) => {
                let eval = match vouching_eval(
                    eval_id,
                    self.eval(eval_id),
                    &current.definition.pins.tools,
                ) {
                    Ok(eval) => eval,
                    Err(refusal) => return Some(refusal),
                };
                if eval.policy_version != version {
                    return Some(format!(
                        "eval {eval_id} is of version {}, not {version}",
                        eval.policy_version
                    ));
                }
                match &current.simulation {
                    Some(report) if report.inputs_hash == eval.inputs_hash => None,
                    Some(report) => Some(format!(
                        "eval {eval_id} ran on inputs {}, the simulation on {}",
                        eval.inputs_hash, report.inputs_hash
                    )),
                    None => Some("it has no simulation".to_owned()),
                }
            }
            (PolicyState::Deprecated, Evidence::Deprecation { .. }) => None,
            (to, evidence) => Some(format!("{evidence:?} is not the evidence for {to:?}")),
        }
    }

    /// Why the active version of `policy_id` may not go back to `to_version`, if not.
    pub fn refuses_rollback(&self, policy_id: &str, to_version: &str) -> Option<String> {
        let Some(active) = self.active.get(policy_id) else {
            return Some(format!("`{policy_id}` has no active version to roll back"));
        };
        match self.version(policy_id, to_version) {
            None => Some(format!("`{policy_id}` {to_version} was never drafted")),
            Some(_) if active == to_version => Some(format!("{to_version} is already active")),
            Some(version) if !version.ever_active => {
                Some(format!("{to_version} was never active; promote it instead"))
            }
            Some(_) => None,
        }
    }
}

/// The model-change impact check an activation rests on.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ImpactReport {
    pub changes: Vec<ModelChange>,
    /// Derived artifacts computed with a version the release replaces.
    pub affected_artifacts: Vec<ContentId>,
    /// The passing eval run with the new versions; required when anything changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_id: Option<ContentId>,
}

/// A pinned model or tool whose version a release changes.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelChange {
    pub tool: String,
    /// `None` when the release adds it.
    pub from: Option<String>,
    /// `None` when the release drops it.
    pub to: Option<String>,
}
