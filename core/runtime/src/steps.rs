//! An external effect's steps as events: each a `core.EffectStateChanged` of the egress log,
//! its id derived from the command, the state's wire name and the attempt. The command bus
//! writes the first (`pending`) with its command; the saga (`crate::egress`) writes the
//! rest and folds them. Below both, so neither imports the other for it.

use crate::clock::WallClock;

use ops_core::egress::{EffectState, EffectStateChanged};
use ops_core::envelope::{Actor, ActorId, Causation, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CommandId, CorrelationId};
use ops_core::time::Timestamp;

pub(crate) fn step_origin(
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
            format!(
                "{}:{}:{}",
                self.command_id,
                state_name(self.state),
                self.attempt
            ),
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

pub(crate) fn gateway_actor() -> Actor {
    Actor::Service(ActorId::new("core.egress").expect("a valid actor id"))
}

/// The name a state has on the wire (`approved`, `attempt_failed`): what a step's id is
/// derived from, so it never depends on how Rust prints the enum.
fn state_name(state: EffectState) -> String {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("an effect state serializes as its name, not {other:?}"),
    }
}
