//! The event envelope (A1) and command envelope (A2). Both are `#[non_exhaustive]`: their
//! fields are readable everywhere but the envelopes can only be built here, where the ids
//! are derived from content, so no caller can attach an id that does not match.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{Command, Contract, DedupeKind, Event};
pub use crate::id::DedupeScope;
use crate::id::{
    CapabilityId, CommandId, ContentHash, CorrelationId, DerivedArtifactId, EventId, EventIdInputs,
    UserActionId,
};
use crate::id::{payload_hash, payload_hash_of};
use crate::time::Timestamp;

pub mod packed;

/// Structural version of both envelopes; changing it is a core decision (Section 1).
pub const ENVELOPE_VERSION: u32 = 1;

/// What caused an event or command: exactly one kind of id, and the kind is part of the
/// value, so a causation id without its type cannot be written down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    tag = "causation_type",
    content = "causation_id",
    rename_all = "snake_case"
)]
pub enum Causation {
    Event(EventId),
    Command(CommandId),
    DerivedArtifact(DerivedArtifactId),
    UserAction(UserActionId),
}

/// A stable actor identity: `[a-z0-9][a-z0-9._@-]*`, at most 128 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ActorId(#[schemars(regex(pattern = r"^[a-z0-9][a-z0-9._@-]{0,127}$"))] String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an actor id: use 1 to 128 of `a-z 0-9 . _ @ -`, starting with a letter or digit"
)]
pub struct ActorIdError(String);

impl ActorId {
    pub fn new(id: impl Into<String>) -> Result<Self, ActorIdError> {
        let id = id.into();
        let mut chars = id.chars();
        let valid = id.len() <= 128
            && matches!(chars.next(), Some('a'..='z' | '0'..='9'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '@' | '-'));
        if valid {
            Ok(ActorId(id))
        } else {
            Err(ActorIdError(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ActorId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ActorId::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Who acted (A4): a person, a service or an agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    Human(ActorId),
    Service(ActorId),
    Agent(ActorId),
}

impl DedupeScope {
    pub fn kind(&self) -> DedupeKind {
        match self {
            DedupeScope::Connector { .. } => DedupeKind::Connector,
            DedupeScope::Egress { .. } => DedupeKind::Egress,
            DedupeScope::Command { .. } => DedupeKind::Command,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("cannot encode the payload of `{type_name}`: {message}")]
    Encode { type_name: String, message: String },
    #[error("the payload is not a `{type_name}`: {message}")]
    NotOfType { type_name: String, message: String },
    #[error(
        "envelope version {found} is not supported; this build reads version {ENVELOPE_VERSION}"
    )]
    UnsupportedVersion { found: u32 },
    #[error("`payload_hash` of {id} is {stored} but the payload hashes to {computed}")]
    PayloadHashMismatch {
        id: String,
        stored: ContentHash,
        computed: ContentHash,
    },
    #[error("`event_id` {stored} does not match its inputs, which give {computed}")]
    EventIdMismatch { stored: EventId, computed: EventId },
    #[error("`command_id` {stored} does not match its inputs, which give {computed}")]
    CommandIdMismatch {
        stored: CommandId,
        computed: CommandId,
    },
    #[error(
        "command `{command_type}` deduplicates by `{expected:?}` scope, but a `{found:?}` scope was given"
    )]
    DedupeKindMismatch {
        command_type: String,
        expected: DedupeKind,
        found: DedupeKind,
    },
}

/// An immutable fact in the log (A1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[non_exhaustive]
pub struct EventEnvelope {
    pub envelope_version: u32,
    pub event_id: EventId,
    pub event_type: String,
    pub payload_schema_version: u32,
    pub payload: Value,
    pub payload_hash: ContentHash,
    pub occurred_at: Timestamp,
    pub ingested_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<Timestamp>,
    pub correlation_id: CorrelationId,
    #[serde(flatten)]
    pub causation: Causation,
    pub source_ref: String,
    /// The id of the record at its source; an input of `event_id` (A6).
    pub source_native_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sequence: Option<u64>,
    pub actor: Actor,
    pub capability_id: CapabilityId,
}

/// Where an event comes from and on whose authority: everything but the payload.
#[derive(Clone, Debug)]
pub struct EventOrigin {
    pub source_ref: String,
    pub source_native_id: String,
    pub source_sequence: Option<u64>,
    pub occurred_at: Timestamp,
    pub ingested_at: Timestamp,
    pub effective_at: Option<Timestamp>,
    pub correlation_id: CorrelationId,
    pub causation: Causation,
    pub actor: Actor,
    pub capability_id: CapabilityId,
}

impl EventEnvelope {
    pub fn new<E: Event>(event: &E, origin: EventOrigin) -> Result<Self, EnvelopeError> {
        // Hashed from the typed value: the same bytes as from `payload`, without walking it.
        let payload_hash = payload_hash_of(event).map_err(|error| encode_error::<E>(&error))?;
        let payload = encode(event)?;
        Ok(EventEnvelope::with_payload_hash(
            E::TYPE.to_owned(),
            E::VERSION,
            payload,
            payload_hash,
            origin,
        ))
    }

    /// An envelope for a payload that is already JSON, e.g. a type this build does not link.
    /// Everything but the payload, as given when it was built.
    pub fn origin(&self) -> EventOrigin {
        EventOrigin {
            source_ref: self.source_ref.clone(),
            source_native_id: self.source_native_id.clone(),
            source_sequence: self.source_sequence,
            occurred_at: self.occurred_at,
            ingested_at: self.ingested_at,
            effective_at: self.effective_at,
            correlation_id: self.correlation_id,
            causation: self.causation,
            actor: self.actor.clone(),
            capability_id: self.capability_id,
        }
    }

    pub fn from_parts(
        _core: crate::CoreToken,
        event_type: String,
        payload_schema_version: u32,
        payload: Value,
        origin: EventOrigin,
    ) -> Self {
        let payload_hash = payload_hash(&payload);
        EventEnvelope::with_payload_hash(
            event_type,
            payload_schema_version,
            payload,
            payload_hash,
            origin,
        )
    }

    /// The envelope of `payload`, whose hash its caller computed.
    fn with_payload_hash(
        event_type: String,
        payload_schema_version: u32,
        payload: Value,
        payload_hash: ContentHash,
        origin: EventOrigin,
    ) -> Self {
        let event_id = EventId::derive(EventIdInputs {
            source_ref: &origin.source_ref,
            source_native_id: &origin.source_native_id,
            payload_hash: &payload_hash,
            occurred_at: origin.occurred_at,
        });
        EventEnvelope {
            envelope_version: ENVELOPE_VERSION,
            event_id,
            event_type,
            payload_schema_version,
            payload,
            payload_hash,
            occurred_at: origin.occurred_at,
            ingested_at: origin.ingested_at,
            effective_at: origin.effective_at,
            correlation_id: origin.correlation_id,
            causation: origin.causation,
            source_ref: origin.source_ref,
            source_native_id: origin.source_native_id,
            source_sequence: origin.source_sequence,
            actor: origin.actor,
            capability_id: origin.capability_id,
        }
    }

    /// Recomputes `payload_hash` and `event_id`; an envelope read from anywhere is only
    /// trusted after this.
    pub fn verify(&self) -> Result<(), EnvelopeError> {
        if self.envelope_version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                found: self.envelope_version,
            });
        }
        let computed = payload_hash(&self.payload);
        if computed != self.payload_hash {
            return Err(EnvelopeError::PayloadHashMismatch {
                id: self.event_id.to_string(),
                stored: self.payload_hash,
                computed,
            });
        }
        let computed = EventId::derive(EventIdInputs {
            source_ref: &self.source_ref,
            source_native_id: &self.source_native_id,
            payload_hash: &self.payload_hash,
            occurred_at: self.occurred_at,
        });
        if computed != self.event_id {
            return Err(EnvelopeError::EventIdMismatch {
                stored: self.event_id,
                computed,
            });
        }
        Ok(())
    }
}

/// A request to change state (A2). Its id is its idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[non_exhaustive]
pub struct CommandEnvelope {
    pub envelope_version: u32,
    pub command_id: CommandId,
    pub command_type: String,
    pub payload_schema_version: u32,
    pub payload: Value,
    pub target_ref: String,
    pub dedupe_scope: DedupeScope,
    pub correlation_id: CorrelationId,
    #[serde(flatten)]
    pub causation: Causation,
    pub actor: Actor,
    pub requested_at: Timestamp,
}

/// Everything about a command request but its payload.
#[derive(Clone, Debug)]
pub struct CommandRequest {
    pub target_ref: String,
    pub dedupe_scope: DedupeScope,
    pub correlation_id: CorrelationId,
    pub causation: Causation,
    pub actor: Actor,
    pub requested_at: Timestamp,
}

/// A command's id: its type, target, canonical payload and dedupe scope, never the time it
/// was asked, so a retry is the same command. The one place it is derived.
fn command_id_of(
    command_type: &str,
    target_ref: &str,
    payload: &Value,
    dedupe_scope: &DedupeScope,
) -> CommandId {
    CommandId::derive(
        command_type,
        target_ref,
        &payload_hash(payload),
        dedupe_scope,
    )
}

impl CommandEnvelope {
    pub fn new<C: Command>(command: &C, request: CommandRequest) -> Result<Self, EnvelopeError> {
        check_dedupe(C::TYPE, C::DEDUPE, &request)?;
        Ok(Self::assemble(
            C::TYPE,
            C::VERSION,
            encode(command)?,
            request,
        ))
    }

    /// The envelope of a checked payload: its id derived from type, target, payload and
    /// scope.
    pub(crate) fn assemble(
        command_type: &str,
        payload_schema_version: u32,
        payload: Value,
        request: CommandRequest,
    ) -> Self {
        CommandEnvelope {
            envelope_version: ENVELOPE_VERSION,
            command_id: command_id_of(
                command_type,
                &request.target_ref,
                &payload,
                &request.dedupe_scope,
            ),
            command_type: command_type.to_owned(),
            payload_schema_version,
            payload,
            target_ref: request.target_ref,
            dedupe_scope: request.dedupe_scope,
            correlation_id: request.correlation_id,
            causation: request.causation,
            actor: request.actor,
            requested_at: request.requested_at,
        }
    }

    /// The command that undoes `self`: `compensation_type` (the type its declaration names
    /// as compensation; the command bus checks that) with the same payload, target and
    /// scope, caused by `self`.
    pub fn compensation(
        &self,
        _core: crate::CoreToken,
        compensation_type: &str,
        payload_schema_version: u32,
        actor: Actor,
        requested_at: Timestamp,
    ) -> Self {
        let command_id = command_id_of(
            compensation_type,
            &self.target_ref,
            &self.payload,
            &self.dedupe_scope,
        );
        CommandEnvelope {
            envelope_version: ENVELOPE_VERSION,
            command_id,
            command_type: compensation_type.to_owned(),
            payload_schema_version,
            payload: self.payload.clone(),
            target_ref: self.target_ref.clone(),
            dedupe_scope: self.dedupe_scope.clone(),
            correlation_id: self.correlation_id,
            causation: Causation::Command(self.command_id),
            actor,
            requested_at,
        }
    }

    /// The same command with `payload` in place of its own (the runtime seals personal data
    /// this way) and its id derived again from it, so the id is always the payload's.
    pub fn with_payload(&self, payload: Value) -> Self {
        CommandEnvelope {
            command_id: command_id_of(
                &self.command_type,
                &self.target_ref,
                &payload,
                &self.dedupe_scope,
            ),
            payload,
            ..self.clone()
        }
    }

    pub fn verify(&self) -> Result<(), EnvelopeError> {
        if self.envelope_version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                found: self.envelope_version,
            });
        }
        let computed = command_id_of(
            &self.command_type,
            &self.target_ref,
            &self.payload,
            &self.dedupe_scope,
        );
        if computed != self.command_id {
            return Err(EnvelopeError::CommandIdMismatch {
                stored: self.command_id,
                computed,
            });
        }
        Ok(())
    }
}

/// The explicit outcome of a command (A2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommandOutcome {
    Accepted,
    Rejected { reason: String },
}

/// A command's dedupe scope must be of the kind its type declares.
pub(crate) fn check_dedupe(
    command_type: &str,
    expected: crate::contract::DedupeKind,
    request: &CommandRequest,
) -> Result<(), EnvelopeError> {
    if request.dedupe_scope.kind() == expected {
        return Ok(());
    }
    Err(EnvelopeError::DedupeKindMismatch {
        command_type: command_type.to_owned(),
        expected,
        found: request.dedupe_scope.kind(),
    })
}

fn encode<T: Contract>(value: &T) -> Result<Value, EnvelopeError> {
    serde_json::to_value(value).map_err(|error| encode_error::<T>(&error))
}

fn encode_error<T: Contract>(error: &dyn std::fmt::Display) -> EnvelopeError {
    EnvelopeError::Encode {
        type_name: T::TYPE.to_owned(),
        message: error.to_string(),
    }
}
