//! Who acts, and in answer to what (A6, A7). A receipt of the core's services takes its
//! time and its causation from its cause: the event it answers, the command, or the
//! operator's action. Never from the clock at the moment it is written, so a retry (the
//! same event redelivered, the same command asked again, the operator giving the same
//! action key) yields the receipt already stored, with the same id, not a second one.

use ops_core::contract::Contract;
use ops_core::envelope::{Actor, Causation, CommandEnvelope, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CommandId, CorrelationId, EventId, UserActionId};
use ops_core::operator::{OperatorActionTaken, is_valid_action_key};
use ops_core::time::Timestamp;

use crate::clock::WallClock;
use crate::store::{AppendError, EventStore, ExpectedVersion, ReadError};

/// An actor acting in answer to a cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acting {
    pub actor: Actor,
    pub cause: Cause,
}

impl Acting {
    pub fn new(actor: Actor, cause: Cause) -> Self {
        Acting { actor, cause }
    }

    /// The origin of an event `service` states about `native_id`, for this actor on
    /// `capability_id`: it takes the time and causation of the cause (never the clock's
    /// reading as it is written, so a retry of the cause states the same event), and is
    /// correlated by `native_id`. Callers adjust the correlation with struct update syntax.
    pub(crate) fn origin(
        &self,
        service: &str,
        native_id: &str,
        capability_id: CapabilityId,
    ) -> EventOrigin {
        EventOrigin {
            source_ref: service.to_owned(),
            source_native_id: native_id.to_owned(),
            source_sequence: None,
            occurred_at: self.cause.at(),
            ingested_at: Timestamp::now(),
            effective_at: None,
            correlation_id: CorrelationId::of(native_id)
                .expect("plain strings have a canonical form"),
            causation: self.cause.causation(),
            actor: self.actor.clone(),
            capability_id,
        }
    }
}

/// What a receipt answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An event: the receipt takes the time the event occurred.
    Event { id: EventId, occurred_at: Timestamp },
    /// A command: the receipt takes the time it was requested (a retry of the same
    /// request is the same command, with the same time).
    Command {
        id: CommandId,
        requested_at: Timestamp,
    },
    /// An operator's action: the receipt takes the time the action was first taken.
    Operator(OperatorAction),
    /// An act that is new each time it happens, which nothing retries (a read, a token
    /// issued): named by what it acts on, at the time it happens.
    Act { id: UserActionId, at: Timestamp },
}

impl Cause {
    pub fn of_event(envelope: &EventEnvelope) -> Self {
        Cause::Event {
            id: envelope.event_id,
            occurred_at: envelope.occurred_at,
        }
    }

    pub fn of_command(command: &CommandEnvelope) -> Self {
        Cause::Command {
            id: command.command_id,
            requested_at: command.requested_at,
        }
    }

    /// The act on `subject` happening at `at`.
    pub fn act(subject: &str, at: Timestamp) -> Self {
        Cause::Act {
            id: UserActionId::of(&(subject, at)).expect("plain data has a canonical form"),
            at,
        }
    }

    /// The time of the cause: the time of every receipt it causes.
    pub fn at(&self) -> Timestamp {
        match self {
            Cause::Event { occurred_at, .. } => *occurred_at,
            Cause::Command { requested_at, .. } => *requested_at,
            Cause::Operator(action) => action.at,
            Cause::Act { at, .. } => *at,
        }
    }

    pub fn causation(&self) -> Causation {
        match self {
            Cause::Event { id, .. } => Causation::Event(*id),
            Cause::Command { id, .. } => Causation::Command(*id),
            Cause::Operator(action) => Causation::UserAction(action.id),
            Cause::Act { id, .. } => Causation::UserAction(*id),
        }
    }

    /// The cause's id as text, for the native ids of the receipts it causes.
    pub fn label(&self) -> String {
        match self {
            Cause::Event { id, .. } => id.to_string(),
            Cause::Command { id, .. } => id.to_string(),
            Cause::Operator(action) => action.id.to_string(),
            Cause::Act { id, .. } => id.to_string(),
        }
    }
}

/// An operator's action: its id (from the key the operator gave, or a new one) and the
/// time it was first taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorAction {
    id: UserActionId,
    at: Timestamp,
}

/// Why an action could not be taken under its key.
#[derive(Debug, thiserror::Error)]
pub enum OperatorActionError {
    #[error(
        "the action key {key:?} is not one: give 1 to {} characters of letters, digits, `.`, `_`, `:` or `-`",
        ops_core::operator::MAX_ACTION_KEY
    )]
    InvalidKey { key: String },
    #[error(
        "the action key {key:?} was taken by {actor} for `{verb}` at {at}; a retry repeats that action with the same verb and actor, anything else needs a key of its own"
    )]
    KeyTaken {
        key: String,
        verb: String,
        actor: String,
        at: Timestamp,
    },
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl OperatorAction {
    /// The action keyed `key`, taken at `at`, not recorded: for a caller that keeps its own
    /// record of when its actions were taken (a test, a script's journal).
    pub fn keyed(key: &str, at: Timestamp) -> Result<Self, OperatorActionError> {
        if !is_valid_action_key(key) {
            return Err(OperatorActionError::InvalidKey {
                key: key.to_owned(),
            });
        }
        Ok(OperatorAction {
            id: UserActionId::of(key).expect("a plain string has a canonical form"),
            at,
        })
    }

    /// Records that `actor` takes action `key` with `verb` at `now`, the first time. A
    /// retry (the same key, verb and actor) answers the action as first recorded, with its
    /// first time; the same key for another verb or actor is refused.
    pub async fn record(
        store: &EventStore,
        key: &str,
        verb: &str,
        actor: &Actor,
        capability_id: CapabilityId,
        now: Timestamp,
    ) -> Result<Self, OperatorActionError> {
        let fresh = OperatorAction::keyed(key, now)?;
        let taken = OperatorActionTaken {
            key: key.to_owned(),
            verb: verb.to_owned(),
        };
        let stream = format!("operator-actions/{key}");
        // The action is its own cause: the record takes its time and names its id.
        let by = Acting::new(actor.clone(), Cause::Operator(fresh.clone()));
        let origin = by.origin("core.operator", key, capability_id);
        let envelope = EventEnvelope::new(&taken, origin).expect("core events are plain JSON");
        match store
            .append(&stream, ExpectedVersion::NoStream, &[envelope])
            .await
        {
            Ok(_) => return Ok(fresh),
            Err(AppendError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        // Taken before: a retry when it is the same verb by the same actor.
        let first = store
            .read_stream(&stream)
            .await?
            .into_iter()
            .find(|stored| stored.envelope.event_type == OperatorActionTaken::TYPE)
            .map(|stored| stored.envelope);
        let recorded = first.as_ref().and_then(|envelope| {
            serde_json::from_value::<OperatorActionTaken>(envelope.payload.clone()).ok()
        });
        match (first, recorded) {
            (Some(first), Some(recorded)) if recorded.verb == verb && first.actor == *actor => {
                Ok(OperatorAction {
                    at: first.occurred_at,
                    ..fresh
                })
            }
            (first, recorded) => Err(OperatorActionError::KeyTaken {
                key: key.to_owned(),
                verb: recorded.map(|recorded| recorded.verb).unwrap_or_default(),
                actor: first
                    .as_ref()
                    .map(|first| ops_core::capability::actor_label(&first.actor))
                    .unwrap_or_default(),
                at: first.map_or(now, |first| first.occurred_at),
            }),
        }
    }

    pub fn id(&self) -> UserActionId {
        self.id
    }

    pub fn at(&self) -> Timestamp {
        self.at
    }
}
