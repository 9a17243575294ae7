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

//!
//! The module is four parts: `dispatcher` claims and carries effects out and writes their
//! receipts, `gateway` is the checks (pure, judged on facts read beforehand), `saga` owns
//! an effect's steps, their folds into effects and sagas, approval, compensation and
//! unwinding, and the outbox table itself is `crate::outbox`'s.

mod dispatcher;
mod gateway;
mod saga;

pub use dispatcher::{
    BoxFuture, Cancelled, DispatchError, DispatchReport, Dispatcher, Executor, pending_destinations,
};
pub use gateway::{ApprovalPolicy, Facts, Gateway};
pub(crate) use saga::Step;
pub use saga::{Approved, Approver, EffectStatus, SagaState, SagaStatus, approve, effects, sagas};

use ops_core::egress::{Approval, EffectState, Reversibility};
use ops_core::envelope::{Actor, EventOrigin};
use ops_core::id::{CapabilityId, CommandId, ContentHash, CorrelationId};
use ops_core::time::Timestamp;
use serde_json::Value;

use crate::outbox::ClaimedRow;
use crate::steps::{gateway_actor, step_origin};

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
    /// When its command was accepted and the effect asked for.
    pub requested_at: Timestamp,
}

impl Effect {
    /// This effect, as an action of `actor`'s: what its requester's capability must allow,
    /// and an approver's or canceller's too.
    pub fn action_of(&self, actor: Actor) -> ops_core::capability::Action {
        ops_core::capability::Action {
            actor,
            command_type: self.command_type.clone(),
            safety: ops_core::contract::SafetyClass::WriteExternalSideEffect,
            tenant: Some(self.tenant_id.clone()),
            destination: Some(self.destination.clone()),
        }
    }

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

impl TryFrom<ClaimedRow> for Effect {
    type Error = DispatchError;

    /// A row whose contents do not parse is corrupt, reported with its id: never read as
    /// an empty string or a zero.
    fn try_from(claimed: ClaimedRow) -> Result<Self, DispatchError> {
        let (id, row) = (claimed.id, claimed.row);
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
            approval: claimed
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
            approval_expires_at: claimed
                .approval_expires_us
                .map(|micros| {
                    Timestamp::from_unix_micros(micros).ok_or_else(|| {
                        corrupt("approval_expires_us", format!("{micros} is out of range"))
                    })
                })
                .transpose()?,
            attempts: claimed.attempts,
            requested_at: Timestamp::from_unix_micros(claimed.created_at_us).ok_or_else(|| {
                corrupt(
                    "created_at_us",
                    format!("{} is out of range", claimed.created_at_us),
                )
            })?,
            command_type: row.command_type,
            destination: row.destination,
            tenant_id: row.tenant_id,
        })
    }
}
