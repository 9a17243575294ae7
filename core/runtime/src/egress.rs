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

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ops_core::contract::Contract;
use ops_core::egress::{
    Approval, Check, EffectRequest, EffectState, EffectStateChanged, EgressExecuted, EgressRefused,
};
use ops_core::envelope::{Actor, ActorId, Causation, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CommandId, ContentHash, CorrelationId};
use ops_core::time::Timestamp;
use serde_json::Value;
use sqlx::Row;

use crate::db::{Dialect, on_db};
use crate::store::{AppendError, EventStore, ExpectedVersion, SideWrite};

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
    pub approval: Option<Approval>,
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

/// Whether a capability allows an effect, and which state of it did. (Issue 7 replaces
/// the allow-list with event-sourced capabilities evaluated as of the action.)
pub trait CapabilityCheck: Send + Sync {
    fn allows(&self, effect: &Effect) -> Result<String, String>;
}

/// A real allow-list: capability → destinations it may reach.
#[derive(Default)]
pub struct AllowList {
    allowed: BTreeSet<(CapabilityId, String)>,
}

impl AllowList {
    pub fn allow(mut self, capability: CapabilityId, destination: &str) -> Self {
        self.allowed.insert((capability, destination.to_owned()));
        self
    }
}

impl CapabilityCheck for AllowList {
    fn allows(&self, effect: &Effect) -> Result<String, String> {
        if self
            .allowed
            .contains(&(effect.capability_id, effect.destination.clone()))
        {
            Ok(format!("grant:{}", effect.capability_id))
        } else {
            Err(format!(
                "capability {} does not reach `{}`",
                effect.capability_id, effect.destination
            ))
        }
    }
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
    pub policies: Vec<Box<dyn ApprovalPolicy>>,
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
}

pub struct Dispatcher {
    store: EventStore,
    name: String,
    lease: Duration,
    gateway: Gateway,
    capabilities: Box<dyn CapabilityCheck>,
    executors: BTreeMap<String, Box<dyn Executor>>,
}

impl Dispatcher {
    pub fn new(
        store: EventStore,
        name: &str,
        gateway: Gateway,
        capabilities: Box<dyn CapabilityCheck>,
    ) -> Self {
        Dispatcher {
            store,
            name: name.to_owned(),
            lease: Duration::from_secs(30),
            gateway,
            capabilities,
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
            .map(|effect| {
                effect_event(
                    effect.command_id,
                    effect.capability_id,
                    gateway_actor(),
                    EffectState::Dispatched,
                    effect.attempts as u32,
                    None,
                )
            })
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
            match self.gate(&effect).await {
                Err(refusal) => closing.push((effect, Err(refusal))),
                Ok(allowed) => {
                    let executor = &self.executors[&effect.destination];
                    match executor
                        .execute(&effect.idempotency_key, &effect.request)
                        .await
                    {
                        Ok(()) => closing.push((effect, Ok(allowed))),
                        Err(reason) => {
                            tracing::warn!(command = %effect.command_id, destination = %effect.destination, %reason, "effect failed; it stays in the outbox");
                            report.failed += 1;
                            let failed = effect_event(
                                effect.command_id,
                                effect.capability_id,
                                gateway_actor(),
                                EffectState::AttemptFailed,
                                effect.attempts as u32,
                                Some(reason),
                            );
                            // Only while the claim holds: if it ran out, the attempt is
                            // another dispatcher's story now.
                            let recorded = self
                                .store
                                .append_with(
                                    &format!("egress/{}", self.name),
                                    ExpectedVersion::Any,
                                    &[failed],
                                    &[SideWrite::HoldsClaim {
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
                    }
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
        let state_ref = self
            .capabilities
            .allows(effect)
            .map_err(|reason| (Check::Capability, reason))?;
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
        let approval = effect
            .approval
            .clone()
            .or_else(|| gateway.policies.iter().find_map(|p| p.approve(effect)))
            .ok_or((
                Check::Approval,
                "no actor approved it and no policy covers it".to_owned(),
            ))?;
        if !self.executors.contains_key(&effect.destination) {
            return Err((
                Check::Destination,
                format!("`{}` is not a known destination", effect.destination),
            ));
        }
        Ok((approval, state_ref))
    }

    async fn executed_since(
        &self,
        destination: &str,
        window: Duration,
    ) -> Result<i64, sqlx::Error> {
        let since = Timestamp::now().unix_micros() - window.as_micros() as i64;
        on_db!(self.store.db(), pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM core_outbox WHERE destination = $1 AND state = 'executed' AND updated_at_us >= $2",
            )
            .bind(destination)
            .bind(since)
            .fetch_one(pool)
            .await
        })
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Effect>, DispatchError> {
        let now = Timestamp::now().unix_micros();
        let until = now + self.lease.as_micros() as i64;
        let lock = match self.store.db().dialect() {
            // Rows another dispatcher is claiming right now are skipped, not waited for.
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE core_outbox SET claimed_by = $1, claimed_until_us = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM core_outbox WHERE state = 'pending' AND claimed_until_us < $3 \
             ORDER BY id LIMIT $4 {lock}) \
             RETURNING id, command_id, command_type, destination, tenant_id, idempotency_key, request_hash, \
             request, actor, capability_id, approval, attempts"
        );
        let rows = on_db!(self.store.db(), pool => {
            sqlx::query(&sql)
                .bind(&self.name)
                .bind(until)
                .bind(now)
                .bind(limit as i64)
                .fetch_all(pool)
                .await
                .map_err(DispatchError::Claim)?
                .iter()
                .map(|row| {
                    let text = |column: &str| row.try_get::<String, _>(column).unwrap_or_default();
                    let id: i64 = row.try_get("id").unwrap_or_default();
                    let corrupt = |reason: String| DispatchError::Corrupt { id, reason };
                    Ok(Effect {
                        id,
                        command_id: text("command_id").parse().map_err(|e: ops_core::id::IdError| corrupt(e.to_string()))?,
                        command_type: text("command_type"),
                        destination: text("destination"),
                        tenant_id: text("tenant_id"),
                        idempotency_key: text("idempotency_key").parse().map_err(|e: ops_core::id::IdError| corrupt(e.to_string()))?,
                        request_hash: text("request_hash").parse().map_err(|e: ops_core::id::IdError| corrupt(e.to_string()))?,
                        request: serde_json::from_str(&text("request")).map_err(|e| corrupt(e.to_string()))?,
                        actor: serde_json::from_str(&text("actor")).map_err(|e| corrupt(e.to_string()))?,
                        capability_id: text("capability_id").parse().map_err(|e: ops_core::id::IdError| corrupt(e.to_string()))?,
                        approval: row
                            .try_get::<Option<String>, _>("approval")
                            .ok()
                            .flatten()
                            .map(|text| serde_json::from_str(&text))
                            .transpose()
                            .map_err(|e| corrupt(e.to_string()))?,
                        attempts: row.try_get("attempts").unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>, DispatchError>>()
        })?;
        Ok(rows)
    }

    /// The receipts and the rows' final states, in one transaction, while the claims hold.
    async fn close(&self, closing: &[(Effect, Gated)]) -> Result<(), DispatchError> {
        if closing.is_empty() {
            return Ok(());
        }
        let receipts: Vec<EventEnvelope> = closing
            .iter()
            .flat_map(|(effect, gated)| {
                let (state, note) = match gated {
                    Ok(_) => (EffectState::Executed, None),
                    Err((_, reason)) => (EffectState::Refused, Some(reason.clone())),
                };
                [
                    receipt(effect, gated.clone()),
                    effect_event(
                        effect.command_id,
                        effect.capability_id,
                        gateway_actor(),
                        state,
                        effect.attempts as u32,
                        note,
                    ),
                ]
            })
            .collect();
        let sides: Vec<SideWrite<'_>> = closing
            .iter()
            .map(|(effect, gated)| SideWrite::CloseOutbox {
                id: effect.id,
                claimed_by: &self.name,
                state: if gated.is_ok() { "executed" } else { "refused" },
            })
            .collect();
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

/// What the gateway said: allowed (with the approval and capability state), or refused.
type Gated = Result<(Approval, String), (Check, String)>;

fn count(closed: &[(Effect, Gated)], report: &mut DispatchReport) {
    for (_, gated) in closed {
        match gated {
            Ok(_) => report.executed += 1,
            Err(_) => report.refused += 1,
        }
    }
}

/// The receipt of one effect; its id derives from the command, so an effect has one.
fn receipt(effect: &Effect, gated: Gated) -> EventEnvelope {
    let origin = EventOrigin {
        source_ref: "egress".to_owned(),
        source_native_id: effect.command_id.to_string(),
        source_sequence: None,
        occurred_at: Timestamp::now(),
        ingested_at: Timestamp::now(),
        effective_at: None,
        correlation_id: CorrelationId::of(&effect.command_id.to_string())
            .expect("plain strings have a canonical form"),
        causation: Causation::Command(effect.command_id),
        actor: Actor::Service(ActorId::new("core.egress").expect("a valid actor id")),
        capability_id: effect.capability_id,
    };
    let request = EffectRequest {
        command_id: effect.command_id,
        destination: effect.destination.clone(),
        tenant_id: effect.tenant_id.clone(),
        idempotency_key: effect.idempotency_key,
        request_hash: effect.request_hash,
        requested_by: effect.actor.clone(),
        capability_id: effect.capability_id,
    };
    let receipt = match gated {
        Ok((approval, capability_state_ref)) => EventEnvelope::new(
            &EgressExecuted {
                effect: request,
                capability_state_ref,
                approval,
            },
            origin,
        ),
        Err((check, reason)) => EventEnvelope::new(
            &EgressRefused {
                effect: request,
                check,
                reason,
            },
            origin,
        ),
    };
    receipt.expect("a receipt is plain JSON")
}

/// A step of an effect's life, as an event of the egress log.
pub(crate) fn effect_event(
    command_id: CommandId,
    capability_id: CapabilityId,
    actor: Actor,
    state: EffectState,
    attempt: u32,
    note: Option<String>,
) -> EventEnvelope {
    let origin = EventOrigin {
        source_ref: "egress".to_owned(),
        source_native_id: format!("{command_id}:{state:?}:{attempt}"),
        source_sequence: None,
        occurred_at: Timestamp::now(),
        ingested_at: Timestamp::now(),
        effective_at: None,
        correlation_id: CorrelationId::of(&command_id.to_string())
            .expect("plain strings have a canonical form"),
        causation: Causation::Command(command_id),
        actor,
        capability_id,
    };
    let step = EffectStateChanged {
        command_id,
        state,
        attempt,
        note,
    };
    EventEnvelope::new(&step, origin).expect("a state change is plain JSON")
}

fn gateway_actor() -> Actor {
    Actor::Service(ActorId::new("core.egress").expect("a valid actor id"))
}

/// An effect's steps so far, oldest first, and where it is now.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectStatus {
    pub command_id: CommandId,
    pub state: EffectState,
    pub attempt: u32,
    pub steps: Vec<EffectState>,
    pub note: Option<String>,
}

/// Every external effect with its steps, from the log.
pub async fn effects(store: &EventStore) -> Result<Vec<EffectStatus>, crate::store::ReadError> {
    let mut by_command: BTreeMap<CommandId, EffectStatus> = BTreeMap::new();
    for event in store.read_by_type(EffectStateChanged::TYPE).await? {
        let Ok(step) = serde_json::from_value::<EffectStateChanged>(event.envelope.payload) else {
            continue;
        };
        let status = by_command
            .entry(step.command_id)
            .or_insert_with(|| EffectStatus {
                command_id: step.command_id,
                state: step.state,
                attempt: step.attempt,
                steps: Vec::new(),
                note: None,
            });
        status.steps.push(step.state);
        // A receipt ends a saga, except that an executed effect may still be compensated;
        // a late step of a dispatcher that lost its claim is history, not a state.
        let settled = status.state.is_final() && step.state != EffectState::Compensating;
        if !settled {
            status.state = step.state;
            status.attempt = step.attempt;
            status.note = step.note;
        }
    }
    Ok(by_command.into_values().collect())
}

/// Records an actor's approval of a pending effect.
pub async fn approve(
    store: &EventStore,
    command_id: &CommandId,
    approval: &Approval,
) -> Result<bool, AppendError> {
    let text = serde_json::to_string(approval).expect("an approval is plain JSON");
    let capability: Option<String> = on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT capability_id FROM core_outbox WHERE command_id = $1 AND state = 'pending'")
            .bind(command_id.to_string())
            .fetch_optional(pool)
            .await?
    });
    let Some(capability_id) = capability.and_then(|text| text.parse::<CapabilityId>().ok()) else {
        return Ok(false);
    };
    let approver = match approval {
        Approval::Actor { actor } => actor.clone(),
        Approval::Policy { .. } => gateway_actor(),
    };
    let step = effect_event(
        *command_id,
        capability_id,
        approver,
        EffectState::Approved,
        0,
        None,
    );
    let command = command_id.to_string();
    let stored = store
        .append_with(
            &format!("effect/{command_id}"),
            ExpectedVersion::Any,
            &[step],
            &[SideWrite::Approve {
                command_id: &command,
                approval: &text,
            }],
        )
        .await;
    match stored {
        Ok(_) => Ok(true),
        Err(AppendError::Fenced { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}
