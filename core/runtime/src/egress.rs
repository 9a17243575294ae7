//! The outbox dispatcher and the egress gateway (A3, A5, A9).
//!
//! A dispatcher claims pending outbox rows for a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so several dispatchers or hosts never hold the same row; SQLite has one writer
//! at a time), passes each through the gateway's checks in order (kill switch, capability,
//! quota, approval, destination), runs the effect through its destination's executor with
//! the row's idempotency key, and closes the row with a receipt event in one transaction
//! that only commits while the dispatcher still holds the claim. A dispatcher that dies
//! after the effect but before the receipt leaves the row to be claimed again when the lease
//! ends; the destination sees the same idempotency key and does the effect once.
//!
//! An effect belongs to the saga of its command's correlation. An effect that cannot be
//! undone (its command declares no compensation) is held for [`Gateway::hold`] before any
//! dispatcher claims it, and can be cancelled meanwhile ([`Dispatcher::cancel`]). After
//! [`Gateway::max_attempts`] unconfirmed attempts an effect fails with an `EgressFailed`
//! receipt; a saga with a refused or failed effect is unwound by
//! `CommandBus::unwind_failed_sagas`, which compensates its executed effects.

use crate::clock::WallClock;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ops_core::capability::{Action, Authority, Decision, actor_label};
use ops_core::contract::{Contract, SafetyClass};
use ops_core::egress::{
    Approval, Check, EffectRequest, EffectState, EffectStateChanged, EgressExecuted, EgressFailed,
    EgressRefused, Reversibility,
};
use ops_core::envelope::{Actor, ActorId, Causation, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CommandId, ContentHash, CorrelationId};
use ops_core::time::Timestamp;
use serde_json::Value;

use crate::atomic::AtomicWrite;
use crate::outbox::{self, Approve, ClaimedRow, Close, CountedBy, HoldsClaim};
use crate::store::{AppendError, EventStore, ExpectedVersion};

/// A claimed outbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    pub id: i64,
    pub command_id: CommandId,
    pub command_type: String,
    pub destination: String,
    pub tenant_id: String,
    pub idempotency_key: ContentHash,
    pub request_hash: ContentHash,
    pub request: Value,
    pub actor: Actor,
    pub capability_id: CapabilityId,
    pub correlation_id: CorrelationId,
    pub approval: Option<Approval>,
    /// When an actor's approval stops counting.
    pub approval_expires_at: Option<Timestamp>,
    /// The effect this one undoes, for a compensation.
    pub compensates: Option<CommandId>,
    pub reversibility: Reversibility,
    pub attempts: i64,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Carries out effects at one destination. It must pass the idempotency key on, so the
/// destination does an effect once however often it is asked.
pub trait Executor: Send + Sync {
    fn execute<'a>(
        &'a self,
        idempotency_key: &'a ContentHash,
        request: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Approves effects by rule: a policy with an id and a version.
pub trait ApprovalPolicy: Send + Sync {
    fn approve(&self, effect: &Effect) -> Option<Approval>;
}

/// The gateway's settings.
#[derive(Default)]
pub struct Gateway {
    /// Everything stops.
    pub kill_all: bool,
    /// These destinations stop.
    pub killed: BTreeSet<String>,
    /// At most this many executed effects per destination in this window.
    pub quotas: BTreeMap<String, (i64, Duration)>,
    /// At most this many executed effects per requesting actor in this window.
    pub actor_quota: Option<(i64, Duration)>,
    pub policies: Vec<Box<dyn ApprovalPolicy>>,
    /// How long an irreversible effect waits after it was requested before it may be
    /// dispatched; until then it can be cancelled.
    pub hold: Duration,
    /// Unconfirmed attempts after which an effect fails; `None` tries until it is confirmed.
    pub max_attempts: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("claiming outbox rows failed: {0}")]
    Claim(sqlx::Error),
    #[error("outbox row {id} cannot be read: {reason}")]
    Corrupt { id: i64, reason: String },
    #[error("closing outbox row {id} failed: {source}")]
    Close { id: i64, source: AppendError },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub executed: usize,
    pub refused: usize,
    /// The destination failed; the row stays for another attempt.
    pub failed: usize,
    /// Another dispatcher holds the row now; its receipt is the other's to write.
    pub lost_claims: usize,
    /// Given up after the last attempt, with an `EgressFailed` receipt.
    pub gave_up: usize,
}

pub struct Dispatcher {
    store: EventStore,
    name: String,
    lease: Duration,
    gateway: Gateway,
    authority: Arc<dyn Authority>,
    executors: BTreeMap<String, Box<dyn Executor>>,
}

impl Dispatcher {
    pub fn new(
        store: EventStore,
        name: &str,
        gateway: Gateway,
        authority: Arc<dyn Authority>,
    ) -> Self {
        Dispatcher {
            store,
            name: name.to_owned(),
            lease: Duration::from_secs(30),
            gateway,
            authority,
            executors: BTreeMap::new(),
        }
    }

    pub fn with_executor(mut self, destination: &str, executor: Box<dyn Executor>) -> Self {
        self.executors.insert(destination.to_owned(), executor);
        self
    }

    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Claims up to `limit` pending rows and carries each through the gateway.
    pub async fn dispatch(&self, limit: usize) -> Result<DispatchReport, DispatchError> {
        let mut report = DispatchReport::default();
        let mut closing = Vec::new();
        let claimed = self.claim(limit).await?;
        // Durable before any destination is reached: these effects are under way.
        let dispatched: Vec<EventEnvelope> = claimed
            .iter()
            .map(|effect| effect.step(EffectState::Dispatched).event())
            .collect();
        if dispatched.is_empty() {
            return Ok(report);
        }
        self.store
            .append(
                &format!("egress/{}", self.name),
                ExpectedVersion::Any,
                &dispatched,
            )
            .await
            .map_err(|source| DispatchError::Close {
                id: claimed.first().map_or(0, |e| e.id),
                source,
            })?;
        for effect in claimed {
            let (approval, capability) = match self.gate(&effect).await {
                Err((check, reason)) => {
                    closing.push((effect, Outcome::Refused { check, reason }));
                    continue;
                }
                Ok(allowed) => allowed,
            };
            let executor = &self.executors[&effect.destination];
            // The destination gets the request as asked, personal data opened.
            let version = self
                .store
                .registry()
                .latest(&effect.command_type)
                .map_or(0, |declared| declared.version);
            let request = self
                .store
                .opened(&effect.command_type, version, &effect.request);
            let reason = match executor.execute(&effect.idempotency_key, &request).await {
                Ok(()) => {
                    closing.push((
                        effect,
                        Outcome::Executed {
                            approval,
                            capability,
                        },
                    ));
                    continue;
                }
                Err(reason) => reason,
            };
            if self
                .gateway
                .max_attempts
                .is_some_and(|max| effect.attempts >= i64::from(max))
            {
                tracing::warn!(command = %effect.command_id, destination = %effect.destination, %reason, "effect failed its last attempt");
                closing.push((
                    effect,
                    Outcome::Failed {
                        approval,
                        capability,
                        reason,
                    },
                ));
                continue;
            }
            tracing::warn!(command = %effect.command_id, destination = %effect.destination, %reason, "effect failed; it stays in the outbox");
            report.failed += 1;
            let failed = effect.step(EffectState::AttemptFailed).note(reason).event();
            // Only while the claim holds: if it ran out, the attempt is another
            // dispatcher's story now.
            let recorded = self
                .store
                .append_with(
                    &format!("egress/{}", self.name),
                    ExpectedVersion::Any,
                    &[failed],
                    &[&HoldsClaim {
                        id: effect.id,
                        claimed_by: &self.name,
                    }],
                )
                .await;
            match recorded {
                Ok(_) => {}
                Err(AppendError::Fenced { .. }) => report.lost_claims += 1,
                Err(source) => {
                    return Err(DispatchError::Close {
                        id: effect.id,
                        source,
                    });
                }
            }
        }
        // One transaction for the whole batch; if a claim was lost meanwhile, close the
        // rows one by one so the others keep their receipts.
        match self.close(&closing).await {
            Ok(()) => count(&closing, &mut report),
            Err(DispatchError::Close {
                source: AppendError::Fenced { .. },
                ..
            }) => {
                for one in closing.chunks(1) {
                    match self.close(one).await {
                        Ok(()) => count(one, &mut report),
                        Err(DispatchError::Close {
                            source: AppendError::Fenced { what },
                            ..
                        }) => {
                            tracing::warn!(%what, "lost the claim before writing the receipt");
                            report.lost_claims += 1;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            Err(error) => return Err(error),
        }
        Ok(report)
    }

    /// The checks of A5, in order; the first that fails refuses the effect.
    async fn gate(&self, effect: &Effect) -> Gated {
        let gateway = &self.gateway;
        if gateway.kill_all || gateway.killed.contains(&effect.destination) {
            return Err((
                Check::KillSwitch,
                format!("the kill switch for `{}` is on", effect.destination),
            ));
        }
        // Enforcement asks about now; the receipt names the state it relied on.
        let decision = self.authority.check(
            effect.capability_id,
            &Action {
                actor: effect.actor.clone(),
                command_type: effect.command_type.clone(),
                safety: SafetyClass::WriteExternalSideEffect,
                tenant: Some(effect.tenant_id.clone()),
                destination: Some(effect.destination.clone()),
            },
            Timestamp::now(),
        );
        if !decision.allowed {
            return Err((
                Check::Capability,
                decision
                    .reason
                    .unwrap_or_else(|| "the capability does not allow it".to_owned()),
            ));
        }
        if let Some((max, window)) = gateway.quotas.get(&effect.destination) {
            let used = self
                .executed_since(&effect.destination, *window)
                .await
                .map_err(|error| (Check::Quota, format!("the quota cannot be read: {error}")))?;
            if used >= *max {
                return Err((
                    Check::Quota,
                    format!(
                        "`{}` had {used} effects in the last {}s, its quota is {max}",
                        effect.destination,
                        window.as_secs()
                    ),
                ));
            }
        }
        if let Some((max, window)) = gateway.actor_quota {
            let used = self
                .executed_by_since(&effect.actor, window)
                .await
                .map_err(|error| (Check::Quota, format!("the quota cannot be read: {error}")))?;
            if used >= max {
                return Err((
                    Check::Quota,
                    format!(
                        "{} had {used} effects in the last {}s, the quota per actor is {max}",
                        actor_label(&effect.actor),
                        window.as_secs()
                    ),
                ));
            }
        }
        let now = Timestamp::now();
        let expired = effect
            .approval_expires_at
            .filter(|expires| *expires <= now)
            .filter(|_| effect.approval.is_some());
        let approval = effect
            .approval
            .clone()
            .filter(|_| expired.is_none())
            .or_else(|| gateway.policies.iter().find_map(|p| p.approve(effect)))
            .ok_or_else(|| match expired {
                Some(expires) => (
                    Check::Approval,
                    format!("its approval expired at {expires} and no policy covers it"),
                ),
                None => (
                    Check::Approval,
                    "no actor approved it and no policy covers it".to_owned(),
                ),
            })?;
        if !self.executors.contains_key(&effect.destination) {
            return Err((
                Check::Destination,
                format!("`{}` is not a known destination", effect.destination),
            ));
        }
        Ok((approval, decision))
    }

    async fn executed_since(
        &self,
        destination: &str,
        window: Duration,
    ) -> Result<i64, sqlx::Error> {
        let since = Timestamp::now().unix_micros() - window.as_micros() as i64;
        outbox::executed_since(self.store.db(), CountedBy::Destination(destination), since).await
    }

    async fn executed_by_since(&self, actor: &Actor, window: Duration) -> Result<i64, sqlx::Error> {
        let since = Timestamp::now().unix_micros() - window.as_micros() as i64;
        let actor = serde_json::to_string(actor).expect("an actor is plain JSON");
        outbox::executed_since(self.store.db(), CountedBy::Actor(&actor), since).await
    }

    /// Cancels a pending effect that no dispatcher holds (an irreversible one during its
    /// hold, say): it is refused at the hold check, with a receipt naming who cancelled it
    /// and why. `false` when there was no such effect to cancel.
    pub async fn cancel(
        &self,
        command_id: &CommandId,
        by: &Actor,
        reason: &str,
    ) -> Result<bool, DispatchError> {
        let claimed = self.claim_rows(1, Some(command_id)).await?;
        let Some(effect) = claimed.into_iter().next() else {
            return Ok(false);
        };
        let refusal = Outcome::Refused {
            check: Check::Hold,
            reason: format!("cancelled by {} before dispatch: {reason}", actor_label(by)),
        };
        self.close(&[(effect, refusal)]).await?;
        Ok(true)
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Effect>, DispatchError> {
        self.claim_rows(limit, None).await
    }

    /// Claims pending rows whose hold is over, or the one row of `only` whatever its hold.
    async fn claim_rows(
        &self,
        limit: usize,
        only: Option<&CommandId>,
    ) -> Result<Vec<Effect>, DispatchError> {
        let now = Timestamp::now().unix_micros();
        let until = now + self.lease.as_micros() as i64;
        let only = only.map(ToString::to_string);
        let which = match &only {
            Some(command_id) => outbox::Claim::Only(command_id),
            None => outbox::Claim::HoldOver {
                held_until_us: now - self.gateway.hold.as_micros() as i64,
                limit: limit as i64,
            },
        };
        outbox::claim(self.store.db(), &self.name, until, now, which)
            .await
            .map_err(DispatchError::Claim)?
            .into_iter()
            .map(Effect::try_from)
            .collect()
    }

    /// The receipts and the rows' final states, in one transaction, while the claims hold.
    async fn close(&self, closing: &[(Effect, Outcome)]) -> Result<(), DispatchError> {
        if closing.is_empty() {
            return Ok(());
        }
        let mut receipts: Vec<EventEnvelope> = Vec::new();
        for (effect, outcome) in closing {
            let step = effect.step(outcome.state());
            let step = match outcome {
                Outcome::Executed { .. } => step,
                Outcome::Refused { reason, .. } | Outcome::Failed { reason, .. } => {
                    step.note(reason.clone())
                }
            };
            receipts.push(receipt(effect, outcome.clone()));
            receipts.push(step.event());
            // The effect this one undoes is compensated now.
            if let (Outcome::Executed { .. }, Some(original)) = (outcome, effect.compensates) {
                let mut undone = effect.step(EffectState::Compensated);
                undone.command_id = original;
                receipts.push(
                    undone
                        .note(format!("undone by {}", effect.command_id))
                        .event(),
                );
            }
        }
        let closes: Vec<Close<'_>> = closing
            .iter()
            .map(|(effect, outcome)| Close {
                id: effect.id,
                claimed_by: &self.name,
                state: outcome.row_state(),
            })
            .collect();
        let sides: Vec<&dyn AtomicWrite> = closes.iter().map(|c| c as &dyn AtomicWrite).collect();
        self.store
            .append_with(
                &format!("egress/{}", self.name),
                ExpectedVersion::Any,
                &receipts,
                &sides,
            )
            .await
            .map(drop)
            .map_err(|source| DispatchError::Close {
                id: closing[0].0.id,
                source,
            })
    }
}

/// What the gateway passed: the approval and the capability decision that allowed it.
type Allowed = (Approval, Decision);
/// Where the gateway stopped an effect, and why.
type Gated = Result<Allowed, (Check, String)>;

/// How a claimed effect ends.
#[derive(Clone, Debug)]
enum Outcome {
    Executed {
        approval: Approval,
        capability: Decision,
    },
    Refused {
        check: Check,
        reason: String,
    },
    Failed {
        approval: Approval,
        capability: Decision,
        reason: String,
    },
}

impl Outcome {
    fn state(&self) -> EffectState {
        match self {
            Outcome::Executed { .. } => EffectState::Executed,
            Outcome::Refused { .. } => EffectState::Refused,
            Outcome::Failed { .. } => EffectState::Failed,
        }
    }

    /// The outbox row's final state.
    fn row_state(&self) -> &'static str {
        match self {
            Outcome::Executed { .. } => "executed",
            Outcome::Refused { .. } => "refused",
            Outcome::Failed { .. } => "failed",
        }
    }
}

fn count(closed: &[(Effect, Outcome)], report: &mut DispatchReport) {
    for (_, outcome) in closed {
        match outcome {
            Outcome::Executed { .. } => report.executed += 1,
            Outcome::Refused { .. } => report.refused += 1,
            Outcome::Failed { .. } => report.gave_up += 1,
        }
    }
}

/// The receipt of one effect; its id derives from the command, so an effect has one.
fn receipt(effect: &Effect, outcome: Outcome) -> EventEnvelope {
    let origin = effect.origin(effect.command_id.to_string(), gateway_actor());
    let request = EffectRequest {
        command_id: effect.command_id,
        destination: effect.destination.clone(),
        tenant_id: effect.tenant_id.clone(),
        idempotency_key: effect.idempotency_key,
        request_hash: effect.request_hash,
        requested_by: effect.actor.clone(),
        capability_id: effect.capability_id,
    };
    let receipt = match outcome {
        Outcome::Executed {
            approval,
            capability,
        } => EventEnvelope::new(
            &EgressExecuted {
                effect: request,
                capability_state_ref: capability.state_ref,
                capability_chain: capability.chain,
                approval,
            },
            origin,
        ),
        Outcome::Refused { check, reason } => EventEnvelope::new(
            &EgressRefused {
                effect: request,
                check,
                reason,
            },
            origin,
        ),
        Outcome::Failed {
            approval,
            capability,
            reason,
        } => EventEnvelope::new(
            &EgressFailed {
                effect: request,
                capability_state_ref: capability.state_ref,
                capability_chain: capability.chain,
                approval,
                attempts: effect.attempts as u32,
                reason,
            },
            origin,
        ),
    };
    receipt.expect("a receipt is plain JSON")
}

impl Effect {
    /// A step of this effect at its current attempt, by the gateway.
    fn step(&self, state: EffectState) -> Step {
        Step::new(
            self.command_id,
            self.correlation_id,
            self.capability_id,
            gateway_actor(),
            state,
        )
        .attempt(self.attempts as u32)
    }

    fn origin(&self, native_id: String, actor: Actor) -> EventOrigin {
        step_origin(
            native_id,
            self.correlation_id,
            self.command_id,
            actor,
            self.capability_id,
        )
    }
}

fn step_origin(
    native_id: String,
    correlation_id: CorrelationId,
    command_id: CommandId,
    actor: Actor,
    capability_id: CapabilityId,
) -> EventOrigin {
    EventOrigin {
        source_ref: "egress".to_owned(),
        source_native_id: native_id,
        source_sequence: None,
        occurred_at: Timestamp::now(),
        ingested_at: Timestamp::now(),
        effective_at: None,
        correlation_id,
        causation: Causation::Command(command_id),
        actor,
        capability_id,
    }
}

/// A step of an effect's life, before it becomes an event of the egress log.
pub(crate) struct Step {
    pub command_id: CommandId,
    pub correlation_id: CorrelationId,
    pub capability_id: CapabilityId,
    pub actor: Actor,
    pub state: EffectState,
    pub attempt: u32,
    pub note: Option<String>,
    pub compensates: Option<CommandId>,
}

impl Step {
    pub fn new(
        command_id: CommandId,
        correlation_id: CorrelationId,
        capability_id: CapabilityId,
        actor: Actor,
        state: EffectState,
    ) -> Self {
        Step {
            command_id,
            correlation_id,
            capability_id,
            actor,
            state,
            attempt: 0,
            note: None,
            compensates: None,
        }
    }

    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    pub fn note(mut self, note: String) -> Self {
        self.note = Some(note);
        self
    }

    pub fn event(self) -> EventEnvelope {
        let origin = step_origin(
            format!("{}:{:?}:{}", self.command_id, self.state, self.attempt),
            self.correlation_id,
            self.command_id,
            self.actor,
            self.capability_id,
        );
        let step = EffectStateChanged {
            command_id: self.command_id,
            state: self.state,
            attempt: self.attempt,
            note: self.note,
            compensates: self.compensates,
        };
        EventEnvelope::new(&step, origin).expect("a state change is plain JSON")
    }
}

fn gateway_actor() -> Actor {
    Actor::Service(ActorId::new("core.egress").expect("a valid actor id"))
}

/// An effect's steps so far, oldest first, and where it is now.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectStatus {
    pub command_id: CommandId,
    /// Its saga: the correlation of the command that asked for it.
    pub correlation_id: CorrelationId,
    pub state: EffectState,
    pub attempt: u32,
    pub steps: Vec<EffectState>,
    pub note: Option<String>,
    /// For a compensation: the effect it undoes.
    pub compensates: Option<CommandId>,
}

/// Every external effect with its steps, from the log.
pub async fn effects(store: &EventStore) -> Result<Vec<EffectStatus>, crate::store::ReadError> {
    let mut by_command: BTreeMap<CommandId, EffectStatus> = BTreeMap::new();
    for event in store.read_by_type(EffectStateChanged::TYPE).await? {
        let correlation_id = event.envelope.correlation_id;
        let Ok(step) = serde_json::from_value::<EffectStateChanged>(event.envelope.payload) else {
            continue;
        };
        let status = by_command
            .entry(step.command_id)
            .or_insert_with(|| EffectStatus {
                command_id: step.command_id,
                correlation_id,
                state: step.state,
                attempt: step.attempt,
                steps: Vec::new(),
                note: None,
                compensates: None,
            });
        status.steps.push(step.state);
        status.compensates = status.compensates.or(step.compensates);
        // A receipt ends an effect, except that an executed effect may still be
        // compensated; a late step of a dispatcher that lost its claim is history.
        let undoing = matches!(
            step.state,
            EffectState::Compensating | EffectState::Compensated
        );
        if !status.state.is_final() || undoing {
            status.state = step.state;
            status.attempt = step.attempt;
            status.note = step.note;
        }
    }
    Ok(by_command.into_values().collect())
}

/// Where a saga (the effects of one correlation) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaState {
    /// Some effect is still on its way.
    Running,
    /// Every effect was executed.
    Completed,
    /// An effect was refused or failed, and executed ones are not all undone yet.
    Failed,
    /// Its executed effects are being undone.
    Compensating,
    /// An effect was refused or failed, and every executed effect was undone.
    Compensated,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SagaStatus {
    pub correlation_id: CorrelationId,
    pub state: SagaState,
    /// Its effects, compensations included, in command id order.
    pub effects: Vec<EffectStatus>,
}

/// Every saga, from the log: the effects grouped by correlation.
pub async fn sagas(store: &EventStore) -> Result<Vec<SagaStatus>, crate::store::ReadError> {
    let mut by_saga: BTreeMap<String, Vec<EffectStatus>> = BTreeMap::new();
    for effect in effects(store).await? {
        by_saga
            .entry(effect.correlation_id.to_string())
            .or_default()
            .push(effect);
    }
    Ok(by_saga
        .into_values()
        .map(|effects| SagaStatus {
            correlation_id: effects[0].correlation_id,
            state: saga_state(&effects),
            effects,
        })
        .collect())
}

fn saga_state(effects: &[EffectStatus]) -> SagaState {
    let steps: Vec<&EffectStatus> = effects.iter().filter(|e| e.compensates.is_none()).collect();
    let broke = steps
        .iter()
        .any(|e| matches!(e.state, EffectState::Refused | EffectState::Failed));
    let is = |state: EffectState| steps.iter().any(|e| e.state == state);
    let undoing = |e: &&&EffectStatus| {
        matches!(
            e.state,
            EffectState::Compensating | EffectState::Compensated
        )
    };
    let running = steps.iter().any(|e| !e.state.is_final() && !undoing(&e));
    if is(EffectState::Compensating) {
        SagaState::Compensating
    } else if broke && is(EffectState::Executed) {
        SagaState::Failed
    } else if running {
        SagaState::Running
    } else if broke || is(EffectState::Compensated) {
        SagaState::Compensated
    } else {
        SagaState::Completed
    }
}

impl TryFrom<ClaimedRow> for Effect {
    type Error = DispatchError;

    /// A row whose contents do not parse is corrupt, reported with its id: never read as
    /// an empty string or a zero.
    fn try_from(row: ClaimedRow) -> Result<Self, DispatchError> {
        let id = row.id;
        let corrupt = |column: &str, reason: String| DispatchError::Corrupt {
            id,
            reason: format!("`{column}`: {reason}"),
        };
        fn parsed<T: std::str::FromStr<Err = ops_core::id::IdError>>(
            id: i64,
            column: &str,
            text: &str,
        ) -> Result<T, DispatchError> {
            text.parse()
                .map_err(|e: ops_core::id::IdError| DispatchError::Corrupt {
                    id,
                    reason: format!("`{column}`: {e}"),
                })
        }
        Ok(Effect {
            id,
            command_id: parsed(id, "command_id", &row.command_id)?,
            idempotency_key: parsed(id, "idempotency_key", &row.idempotency_key)?,
            request_hash: parsed(id, "request_hash", &row.request_hash)?,
            capability_id: parsed(id, "capability_id", &row.capability_id)?,
            request: serde_json::from_str(&row.request)
                .map_err(|e| corrupt("request", e.to_string()))?,
            actor: serde_json::from_str(&row.actor).map_err(|e| corrupt("actor", e.to_string()))?,
            approval: row
                .approval
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("approval", e.to_string()))?,
            correlation_id: match row.correlation_id.as_str() {
                // Enqueued before sagas were recorded: its own saga.
                "" => CorrelationId::of(&row.command_id)
                    .map_err(|e| corrupt("correlation_id", e.to_string()))?,
                stored => parsed(id, "correlation_id", stored)?,
            },
            compensates: row
                .compensates
                .as_deref()
                .map(|text| parsed(id, "compensates", text))
                .transpose()?,
            reversibility: if row.reversible {
                Reversibility::Reversible
            } else {
                Reversibility::Irreversible
            },
            approval_expires_at: row
                .approval_expires_us
                .map(|micros| {
                    Timestamp::from_unix_micros(micros).ok_or_else(|| {
                        corrupt("approval_expires_us", format!("{micros} is out of range"))
                    })
                })
                .transpose()?,
            attempts: row.attempts,
            command_type: row.command_type,
            destination: row.destination,
            tenant_id: row.tenant_id,
        })
    }
}

/// The destinations of effects still pending in the outbox.
pub async fn pending_destinations(store: &EventStore) -> Result<Vec<String>, sqlx::Error> {
    outbox::pending_destinations(store.db()).await
}

/// Records an actor's approval of a pending effect; an approval with `expires_at` no
/// longer counts at dispatch after that time.
pub async fn approve(
    store: &EventStore,
    command_id: &CommandId,
    approval: &Approval,
    expires_at: Option<Timestamp>,
) -> Result<bool, AppendError> {
    let text = serde_json::to_string(approval).expect("an approval is plain JSON");
    let row = outbox::pending_effect(store.db(), &command_id.to_string()).await?;
    let Some((capability_id, correlation_id)) = row.and_then(|(capability, correlation)| {
        let correlation = match correlation.as_str() {
            "" => CorrelationId::of(&command_id.to_string()).ok()?,
            stored => stored.parse().ok()?,
        };
        Some((capability.parse::<CapabilityId>().ok()?, correlation))
    }) else {
        return Ok(false);
    };
    let approver = match approval {
        Approval::Actor { actor } => actor.clone(),
        Approval::Policy { .. } => gateway_actor(),
    };
    let mut step = Step::new(
        *command_id,
        correlation_id,
        capability_id,
        approver,
        EffectState::Approved,
    );
    if let Some(expires_at) = expires_at {
        step = step.note(format!("until {expires_at}"));
    }
    let command = command_id.to_string();
    let stored = store
        .append_with(
            &format!("effect/{command_id}"),
            ExpectedVersion::Any,
            &[step.event()],
            &[&Approve {
                command_id: &command,
                approval: &text,
                expires_at_us: expires_at.map(|at| at.unix_micros()),
            }],
        )
        .await;
    match stored {
        Ok(_) => Ok(true),
        Err(AppendError::Fenced { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}
