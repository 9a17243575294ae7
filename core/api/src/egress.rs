//! External side effects (A5): what the egress gateway records for each one.
//!
//! A command of class `WRITE_EXTERNAL_SIDE_EFFECT` is never executed by its pack: the command
//! bus enqueues it in the outbox, in the transaction that records it, and the runtime's
//! gateway checks it (kill switch, capability, quota, approval) before an executor runs it
//! against its destination with its idempotency key. Every effect ends in a receipt event:
//! [`EgressExecuted`], which cannot be built without an [`Approval`], or [`EgressRefused`],
//! which says at which check and why, or [`EgressFailed`] when the destination never
//! confirmed it.

use crate::envelope::Actor;
use crate::event;
use crate::id::{CapabilityId, CommandId, ContentHash};

/// Who or what allowed an external effect: a person, or a policy at a version.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Approval {
    Actor {
        actor: Actor,
    },
    Policy {
        policy_id: String,
        policy_version: String,
    },
}

/// The gateway's checks, in the order they run.
#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    KillSwitch,
    Capability,
    Quota,
    Approval,
    /// An effect that cannot be undone waits out its hold; cancelled during it, it is
    /// refused here.
    Hold,
    Destination,
}

/// Whether an effect can be undone: it can when its command declares a compensation.
/// Effects that cannot are held before dispatch, so a person can still cancel them.
#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reversibility {
    Reversible,
    Irreversible,
}

/// What an effect was: which command asked, where it goes, with which key, on whose
/// authority. Both receipts carry it.
#[crate::data]
#[derive(Clone, Debug, PartialEq)]
pub struct EffectRequest {
    pub command_id: CommandId,
    pub destination: String,
    pub tenant_id: String,
    pub idempotency_key: ContentHash,
    pub request_hash: ContentHash,
    /// The actor of the command that asked for the effect.
    pub requested_by: Actor,
    pub capability_id: CapabilityId,
    /// Whether it could be undone (A5, S2): what decided that it was held before dispatch,
    /// and whether its saga can compensate it. Absent only in receipts written before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversibility: Option<Reversibility>,
}

fn example_request() -> EffectRequest {
    EffectRequest {
        command_id: "cmd_0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .expect("an id"),
        destination: "pager".to_owned(),
        tenant_id: "acme".to_owned(),
        idempotency_key: "b3_0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .expect("a hash"),
        request_hash: "b3_0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .expect("a hash"),
        requested_by: Actor::Human(
            crate::envelope::ActorId::new("ada@example.com").expect("an actor id"),
        ),
        capability_id: "cap_0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .expect("an id"),
        reversibility: Some(Reversibility::Irreversible),
    }
}

/// The receipt of an effect that was carried out.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = EgressExecuted {
    effect: example_request(),
    capability_state_ref: "grant:cap_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    capability_chain: Vec::new(),
    approval: Approval::Policy { policy_id: "paging-sev1".to_owned(), policy_version: "1.0.0".to_owned() },
})]
pub struct EgressExecuted {
    pub effect: EffectRequest,
    /// Which state of the capability allowed it (A4): the id of its last event then.
    pub capability_state_ref: String,
    /// The capability and the ones it was delegated from, nearest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_chain: Vec<CapabilityId>,
    pub approval: Approval,
}

/// The receipt of an effect the gateway refused. Version 2 added the hold check; version 3
/// the capability state the refusal was judged on (A4), as every receipt carries it.
#[event(public, version = 3, upcast_from = v2::EgressRefused)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = EgressRefused {
    effect: example_request(),
    check: Check::KillSwitch,
    reason: "the kill switch for `pager` is on".to_owned(),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    capability_chain: Vec::new(),
})]
pub struct EgressRefused {
    pub effect: EffectRequest,
    pub check: Check,
    pub reason: String,
    /// The capability event the checks relied on (the requester's; a cancellation's is the
    /// canceller's): empty when the capability was unknown, and in receipts written before
    /// version 3.
    pub capability_state_ref: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_chain: Vec<CapabilityId>,
}

/// The receipt of an effect the destination never confirmed, after the gateway's last
/// attempt. The destination may or may not have done it; its saga fails, and the effects
/// already executed in it are compensated.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = EgressFailed {
    effect: example_request(),
    capability_state_ref: "grant:cap_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    capability_chain: Vec::new(),
    approval: Approval::Policy { policy_id: "paging-sev1".to_owned(), policy_version: "1.0.0".to_owned() },
    attempts: 5,
    reason: "http://127.0.0.1:8080/hook answered 503 Service Unavailable".to_owned(),
})]
pub struct EgressFailed {
    pub effect: EffectRequest,
    pub capability_state_ref: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_chain: Vec<CapabilityId>,
    pub approval: Approval,
    pub attempts: u32,
    /// What the destination said the last time.
    pub reason: String,
}

/// Where an external effect is in its life (A9): each step is a durable event.
#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum EffectState {
    /// Accepted and in the outbox.
    Pending,
    /// An actor approved it.
    Approved,
    /// A dispatcher claimed it and is about to reach the destination.
    Dispatched,
    /// The destination did not confirm it; it will be claimed again.
    AttemptFailed,
    /// Done, with an [`EgressExecuted`] receipt.
    Executed,
    /// Refused by a check, with an [`EgressRefused`] receipt.
    Refused,
    /// Cancelled by an actor before it was dispatched (during its hold, or while it waited
    /// for an approval), with an [`EgressRefused`] receipt naming who and why.
    Cancelled,
    /// Given up after the gateway's last attempt, with an [`EgressFailed`] receipt.
    Failed,
    /// Done, then undone: its compensating command was sent (its own effect follows).
    Compensating,
    /// Its compensating effect was executed.
    Compensated,
}

impl EffectState {
    /// A receipt was written: the effect will not be attempted again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            EffectState::Executed
                | EffectState::Refused
                | EffectState::Cancelled
                | EffectState::Failed
        )
    }

    /// It ended without being done: its saga's executed effects are to be undone.
    pub fn broke(self) -> bool {
        matches!(
            self,
            EffectState::Refused | EffectState::Cancelled | EffectState::Failed
        )
    }
}

/// A step of an external effect (the command that asked for it), in order. Version 2
/// added the failed and compensated states and `compensates`; version 3 the cancelled state.
#[event(public, version = 3, upcast_from = v2::EffectStateChanged)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = EffectStateChanged {
    command_id: "cmd_0000000000000000000000000000000000000000000000000000000000000000".parse().expect("an id"),
    state: EffectState::Dispatched,
    attempt: 1,
    note: None,
    compensates: None,
})]
pub struct EffectStateChanged {
    pub command_id: CommandId,
    pub state: EffectState,
    /// The dispatch attempt it belongs to; 0 before the first claim.
    pub attempt: u32,
    /// Why, for failed attempts and refusals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// On a compensation's first step: the effect it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensates: Option<CommandId>,
}

/// A v2 refusal did not record the capability state it was judged on.
impl crate::contract::Upcast<v2::EgressRefused> for EgressRefused {
    fn upcast(old: v2::EgressRefused) -> Self {
        EgressRefused {
            effect: old.effect,
            check: old.check,
            reason: old.reason,
            capability_state_ref: String::new(),
            capability_chain: Vec::new(),
        }
    }
}

/// Every v1 receipt and step reads as v2: v2 only added values and an optional field.
impl crate::contract::Upcast<v1::EgressRefused> for v2::EgressRefused {
    fn upcast(old: v1::EgressRefused) -> Self {
        v2::EgressRefused {
            effect: old.effect,
            check: match old.check {
                v1::Check::KillSwitch => Check::KillSwitch,
                v1::Check::Capability => Check::Capability,
                v1::Check::Quota => Check::Quota,
                v1::Check::Approval => Check::Approval,
                v1::Check::Destination => Check::Destination,
            },
            reason: old.reason,
        }
    }
}

/// Every v2 step reads as v3: v3 only added a state.
impl crate::contract::Upcast<v2::EffectStateChanged> for EffectStateChanged {
    fn upcast(old: v2::EffectStateChanged) -> Self {
        EffectStateChanged {
            command_id: old.command_id,
            state: match old.state {
                v2::EffectState::Pending => EffectState::Pending,
                v2::EffectState::Approved => EffectState::Approved,
                v2::EffectState::Dispatched => EffectState::Dispatched,
                v2::EffectState::AttemptFailed => EffectState::AttemptFailed,
                v2::EffectState::Executed => EffectState::Executed,
                v2::EffectState::Refused => EffectState::Refused,
                v2::EffectState::Failed => EffectState::Failed,
                v2::EffectState::Compensating => EffectState::Compensating,
                v2::EffectState::Compensated => EffectState::Compensated,
            },
            attempt: old.attempt,
            note: old.note,
            compensates: old.compensates,
        }
    }
}

impl crate::contract::Upcast<v1::EffectStateChanged> for v2::EffectStateChanged {
    fn upcast(old: v1::EffectStateChanged) -> Self {
        v2::EffectStateChanged {
            command_id: old.command_id,
            state: match old.state {
                v1::EffectState::Pending => v2::EffectState::Pending,
                v1::EffectState::Approved => v2::EffectState::Approved,
                v1::EffectState::Dispatched => v2::EffectState::Dispatched,
                v1::EffectState::AttemptFailed => v2::EffectState::AttemptFailed,
                v1::EffectState::Executed => v2::EffectState::Executed,
                v1::EffectState::Refused => v2::EffectState::Refused,
                v1::EffectState::Compensating => v2::EffectState::Compensating,
            },
            attempt: old.attempt,
            note: old.note,
            compensates: None,
        }
    }
}

/// Refusals before they carried their capability state; steps before cancellation was a
/// state of its own.
pub mod v2 {
    use super::{Check, EffectRequest, example_request};
    use crate::event;
    use crate::id::CommandId;

    #[crate::data]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    #[serde(rename_all = "snake_case")]
    pub enum EffectState {
        Pending,
        Approved,
        Dispatched,
        AttemptFailed,
        Executed,
        Refused,
        Failed,
        Compensating,
        Compensated,
    }

    #[event(public, version = 2, upcast_from = super::v1::EffectStateChanged)]
    #[derive(Clone, Debug, PartialEq)]
    #[schemars(example = EffectStateChanged {
        command_id: "cmd_0000000000000000000000000000000000000000000000000000000000000000".parse().expect("an id"),
        state: EffectState::Dispatched,
        attempt: 1,
        note: None,
        compensates: None,
    })]
    pub struct EffectStateChanged {
        pub command_id: CommandId,
        pub state: EffectState,
        pub attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub note: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub compensates: Option<CommandId>,
    }

    #[event(public, version = 2, upcast_from = super::v1::EgressRefused)]
    #[derive(Clone, Debug, PartialEq)]
    #[schemars(example = EgressRefused {
        effect: example_request(),
        check: Check::KillSwitch,
        reason: "the kill switch for `pager` is on".to_owned(),
    })]
    pub struct EgressRefused {
        pub effect: EffectRequest,
        pub check: Check,
        pub reason: String,
    }
}

/// Earlier payload versions, kept so stored receipts and steps stay readable.
pub mod v1 {
    use super::{EffectRequest, example_request};
    use crate::event;
    use crate::id::CommandId;

    /// The gateway's checks before holds.
    #[crate::data]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    #[serde(rename_all = "snake_case")]
    pub enum Check {
        KillSwitch,
        Capability,
        Quota,
        Approval,
        Destination,
    }

    #[event(public, version = 1)]
    #[derive(Clone, Debug, PartialEq)]
    #[schemars(example = EgressRefused {
        effect: example_request(),
        check: Check::KillSwitch,
        reason: "the kill switch for `pager` is on".to_owned(),
    })]
    pub struct EgressRefused {
        pub effect: EffectRequest,
        pub check: Check,
        pub reason: String,
    }

    /// An effect's states before sagas could fail and be compensated.
    #[crate::data]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    #[serde(rename_all = "snake_case")]
    pub enum EffectState {
        Pending,
        Approved,
        Dispatched,
        AttemptFailed,
        Executed,
        Refused,
        Compensating,
    }

    #[event(public, version = 1)]
    #[derive(Clone, Debug, PartialEq)]
    #[schemars(example = EffectStateChanged {
        command_id: "cmd_0000000000000000000000000000000000000000000000000000000000000000".parse().expect("an id"),
        state: EffectState::Dispatched,
        attempt: 1,
        note: None,
    })]
    pub struct EffectStateChanged {
        pub command_id: CommandId,
        pub state: EffectState,
        pub attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub note: Option<String>,
    }
}
