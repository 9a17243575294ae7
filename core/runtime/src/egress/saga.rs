//! An effect's life as a saga step at a time (`pending` → `approved` → `dispatched` →
//! `executed` | `failed` | `refused`, then `compensating` → `compensated`), each step a
//! `core.EffectStateChanged` event written with the change it records; the folds of those
//! steps into effects and sagas; approval of a pending effect; and compensation and
//! unwinding of sagas (on [`CommandBus`](crate::command::CommandBus)).

use crate::clock::WallClock;
use std::collections::BTreeMap;

use ops_core::capability::{Action, Authority};
use ops_core::contract::{Contract, SafetyClass};
use ops_core::egress::{Approval, EffectState, EffectStateChanged};
use ops_core::envelope::{Actor, CommandEnvelope, CommandOutcome};
use ops_core::id::{CapabilityId, CommandId, CorrelationId};
use ops_core::time::Timestamp;

use crate::acting::Acting;
use crate::capability::{Asked, check_or_deny};
use crate::command::{BusError, CommandBus, Receipt};
use crate::outbox::{self, Approve};
pub(crate) use crate::steps::{Step, gateway_actor};
use crate::store::{AppendError, EventStore, ExpectedVersion};

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
    /// An effect was refused or failed before any was executed: there is nothing to undo.
    Aborted,
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
    let broke = steps.iter().any(|e| e.state.broke());
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
    } else if is(EffectState::Compensated) {
        SagaState::Compensated
    } else if broke {
        SagaState::Aborted
    } else {
        SagaState::Completed
    }
}

/// What recording an approval came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approved {
    Recorded,
    /// There is no pending effect of that command (never asked, or ended already).
    NotPending,
    /// The approver is who asked for the effect: nobody approves their own (A9).
    ByRequester,
    /// The approver's capability does not allow the effect it would approve; the denial
    /// has its receipt.
    Denied {
        reason: String,
    },
}

/// Who approves an effect: an actor, on a capability that must allow the effect itself
/// (its command, tenant and destination, as an external side effect), checked by
/// `authority`.
pub struct Approver<'a> {
    /// Who approves, in which action: a denial's receipt takes the action's time.
    pub by: Acting,
    pub capability_id: CapabilityId,
    pub authority: &'a dyn Authority,
}

/// Records `approver`'s approval of a pending effect: refused to its requester and to an
/// approver whose capability does not reach the effect. An approval with `expires_at` no
/// longer counts at dispatch after that time. The step names the approver's capability,
/// and its note the capability state the check relied on.
pub async fn approve(
    store: &EventStore,
    command_id: &CommandId,
    approver: Approver<'_>,
    expires_at: Option<Timestamp>,
) -> Result<Approved, AppendError> {
    let Some(pending) = outbox::pending_effect(store.db(), &command_id.to_string())
        .await?
        .and_then(|row| PendingEffect::read(command_id, row))
    else {
        return Ok(Approved::NotPending);
    };
    if approver.by.actor == pending.requester {
        return Ok(Approved::ByRequester);
    }
    let action = Action {
        actor: approver.by.actor.clone(),
        command_type: pending.command_type.clone(),
        safety: SafetyClass::WriteExternalSideEffect,
        tenant: pending.tenant.clone(),
        destination: Some(pending.destination.clone()),
    };
    let asked = Asked {
        subject: command_id.to_string(),
        source_ref: "core.egress.approval",
        correlation_id: pending.correlation_id,
        by: &approver.by,
    };
    let decision = match check_or_deny(
        store,
        approver.authority,
        approver.capability_id,
        &action,
        asked,
    )
    .await?
    {
        Ok(decision) => decision,
        Err(reason) => return Ok(Approved::Denied { reason }),
    };
    let approval = Approval::Actor {
        actor: approver.by.actor.clone(),
    };
    let text = serde_json::to_string(&approval).expect("an approval is plain JSON");
    let mut note = format!("capability state {}", decision.state_ref);
    if let Some(expires_at) = expires_at {
        note.push_str(&format!(", until {expires_at}"));
    }
    let step = Step::new(
        *command_id,
        pending.correlation_id,
        approver.capability_id,
        approver.by.actor,
        EffectState::Approved,
    )
    .note(note);
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
        Ok(_) => Ok(Approved::Recorded),
        Err(AppendError::Fenced { .. }) => Ok(Approved::NotPending),
        Err(error) => Err(error),
    }
}

/// A pending effect's outbox row, as much of it as approving needs.
struct PendingEffect {
    correlation_id: CorrelationId,
    requester: Actor,
    command_type: String,
    destination: String,
    tenant: Option<String>,
}

impl PendingEffect {
    fn read(command_id: &CommandId, row: outbox::PendingRow) -> Option<Self> {
        let correlation_id = match row.correlation_id.as_str() {
            "" => CorrelationId::of(&command_id.to_string()).ok()?,
            stored => stored.parse().ok()?,
        };
        Some(PendingEffect {
            correlation_id,
            requester: serde_json::from_str(&row.actor).ok()?,
            command_type: row.command_type,
            destination: row.destination,
            tenant: Some(row.tenant_id).filter(|tenant| !tenant.is_empty()),
        })
    }
}

/// Compensation and unwinding: the saga's, run through the bus so an undoing command is
/// decided, recorded and fenced like any other.
impl CommandBus {
    /// Undoes the executed effect of `command_id` by sending the command its declaration
    /// names as compensation, with the same payload, caused by it; that command's own effect
    /// is dispatched and receipted like any other. Sending it again returns the first outcome.
    pub async fn compensate(
        &self,
        command_id: &CommandId,
        actor: Actor,
        capability_id: CapabilityId,
    ) -> Result<Receipt, BusError> {
        let refuse = |reason: String| BusError::Compensation {
            command: command_id.to_string(),
            reason,
        };
        let envelope =
            crate::command_log::envelope_of(self.store.db(), &command_id.to_string()).await?;
        let state = crate::outbox::state_of(self.store.db(), &command_id.to_string()).await?;
        let original: CommandEnvelope = envelope
            .ok_or_else(|| refuse("it was never submitted".to_owned()))
            .and_then(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| refuse(format!("its record is damaged: {e}")))
            })?;
        if state.as_deref() != Some("executed") {
            return Err(refuse(format!(
                "it has no executed effect to undo (its effect is {})",
                state.as_deref().unwrap_or("absent")
            )));
        }
        let registry = self.store.registry();
        let compensation = registry
            .get(&original.command_type, original.payload_schema_version)
            .and_then(|descriptor| descriptor.compensation)
            .and_then(|name| registry.latest(name))
            .ok_or_else(|| {
                refuse(format!(
                    "`{}` names no compensation installed here",
                    original.command_type
                ))
            })?;
        let decodes = self
            .store
            .pack_code()
            .check_payloads(
                self.store.registry(),
                &[(compensation.name, compensation.version, &original.payload)],
            )
            .pop()
            .expect("one answer for one payload");
        decodes.map_err(|reason| {
            refuse(format!(
                "its payload is not a `{}`: {reason}",
                compensation.name
            ))
        })?;
        let command = original.compensation(
            crate::CORE,
            compensation.name,
            compensation.version,
            actor.clone(),
            Timestamp::now(),
        );
        let receipt = self.submit(&command, capability_id, None).await?;
        if receipt.outcome == CommandOutcome::Accepted && !receipt.replayed {
            let mut step = Step::new(
                *command_id,
                original.correlation_id,
                capability_id,
                actor,
                ops_core::egress::EffectState::Compensating,
            );
            step.note = Some(format!("compensated by {}", command.command_id));
            let step = step.event();
            self.store
                .append(
                    &format!("effect/{command_id}"),
                    ExpectedVersion::Any,
                    &[step],
                )
                .await?;
        }
        Ok(receipt)
    }

    /// Unwinds every saga with a refused or failed effect: each of its executed effects
    /// that can be undone and is not undone yet is compensated, on `actor`'s authority.
    /// Running it again finds nothing new to do; an effect executed later in such a saga
    /// is compensated by the next run.
    pub async fn unwind_failed_sagas(
        &self,
        actor: &Actor,
        capability_id: CapabilityId,
    ) -> Result<Vec<Receipt>, BusError> {
        let to_undo = crate::outbox::awaiting_compensation(self.store.db()).await?;
        let mut receipts = Vec::new();
        for command_id in to_undo {
            let command_id: CommandId =
                command_id.parse().map_err(|error| BusError::Compensation {
                    command: command_id.clone(),
                    reason: format!("its outbox row is damaged: {error}"),
                })?;
            receipts.push(
                self.compensate(&command_id, actor.clone(), capability_id)
                    .await?,
            );
        }
        Ok(receipts)
    }
}
