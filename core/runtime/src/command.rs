//! The command bus (A2, A3): routes a command to the one handler of its owning pack, folds
//! the target's history into the handler's state, and records the outcome (`accepted` with the events it caused,
//! or `rejected` with the reason) in the same transaction as those events. A command is
//! decided once: submitting it again returns the recorded outcome and appends nothing.
//! The target's stream version is checked when the events are stored, so two commands
//! decided on the same state cannot both land: the later one is re-decided on the new
//! state, or, when the caller said which version it saw, refused as a conflict.
//!
//! The bus keeps each handler's folded state of the targets it decided on last, with the
//! stream version it was folded to, so the next command on a target folds only the events
//! since. A kept state is dropped when an erasure was recorded since it was folded: it may
//! hold the erased person's data in clear, which the log no longer opens.

use crate::clock::WallClock;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;

use ops_core::capability::{Action, Authority};

use crate::acting::{Acting, Cause};
use crate::capability::Denial;

use ops_core::contract::TypedEvent;
use ops_core::envelope::{
    Causation, CommandEnvelope, CommandOutcome, EnvelopeError, EventEnvelope, EventOrigin,
};
use ops_core::handler::{DynHandler, PastEvent, owned_by};
use serde_json::Value;

use crate::faults::FaultCount;
use crate::jail::{HandlerState, PieceError};
use ops_core::id::{CapabilityId, CommandId, EventId};
use ops_core::time::Timestamp;

use crate::atomic::AtomicWrite;
use crate::command_log::CommandRecord;
use crate::outbox::OutboxRow;
use crate::store::{
    AppendError, CurrentPayload, EventStore, ExpectedVersion, ReadError, StoredEvent,
};
use ops_core::contract::SafetyClass;
use ops_core::envelope::DedupeScope;
use ops_core::id::payload_hash;

/// How often a command is re-decided when its target moved while it was being decided.
const DECIDE_ATTEMPTS: usize = 3;

#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub command_id: CommandId,
    pub outcome: CommandOutcome,
    pub event_ids: Vec<EventId>,
    /// The capability state its check relied on (the capability's last event), as the
    /// command's record keeps it.
    pub capability_state_ref: String,
    /// The outcome recorded when this command was first submitted.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the command envelope is not valid: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("the installed handlers are inconsistent: {0}")]
    Handlers(String),
    #[error(
        "`{target}` is at version {actual}, not {expected} as the request assumed; nothing was written, decide again on the current state"
    )]
    Conflict {
        target: String,
        expected: i64,
        actual: i64,
    },
    #[error("capability {capability} does not allow `{command}`: {reason}")]
    Denied {
        command: String,
        capability: CapabilityId,
        reason: String,
    },
    #[error("{command} cannot be compensated: {reason}")]
    Compensation { command: String, reason: String },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Jail(crate::jail::JailError),
    #[error("recording the command failed; nothing was written: {0}")]
    Append(#[from] AppendError),
    #[error("reading the command record failed: {0}")]
    Database(#[from] sqlx::Error),
}

pub struct CommandBus {
    pub(crate) store: EventStore,
    handlers: BTreeMap<&'static str, &'static dyn DynHandler>,
    authority: Arc<dyn Authority>,
    /// Handlers' states by command type and target.
    kept: Mutex<HashMap<(&'static str, String), Kept>>,
    /// Each handler's faults in a row, and whether it is paused (read from the log at its
    /// first command).
    faults: tokio::sync::Mutex<HashMap<&'static str, FaultCount>>,
}

/// How many handler states of targets a bus keeps; past that, an arbitrary one goes.
const KEPT_STATES: usize = 4096;

/// A handler's state of a target (held here, or by the pack's runner), folded while the
/// log held `erasures` erasures.
struct Kept {
    erasures: i64,
    code: HandlerState,
}

impl CommandBus {
    /// A bus over every installed handler, checking each command's capability with
    /// `authority`.
    pub fn new(store: EventStore, authority: Arc<dyn Authority>) -> Result<Self, BusError> {
        Self::with_handlers(store, ops_core::handler::installed(crate::CORE), authority)
    }

    /// Checks again at start what `install_handler!` checks at compile time, for handlers
    /// registered by other means: one handler per command, by the command's owner.
    pub fn with_handlers(
        store: EventStore,
        handlers: Vec<&'static dyn DynHandler>,
        authority: Arc<dyn Authority>,
    ) -> Result<Self, BusError> {
        let mut by_type = BTreeMap::new();
        for handler in handlers {
            if !owned_by(handler.command_type(), handler.pack_id()) {
                return Err(BusError::Handlers(format!(
                    "pack `{}` handles `{}`, which it does not own",
                    handler.pack_id(),
                    handler.command_type()
                )));
            }
            if by_type.insert(handler.command_type(), handler).is_some() {
                return Err(BusError::Handlers(format!(
                    "`{}` has two handlers",
                    handler.command_type()
                )));
            }
        }
        Ok(CommandBus {
            store,
            handlers: by_type,
            authority,
            kept: Mutex::new(HashMap::new()),
            faults: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// What a command of `command_type` with `payload` acts on, when its handler reads it
    /// from the payload (`Handler::target`); `None` when it does not, or no handler of
    /// this bus takes the type. The handler is pack code: it runs where the store's does.
    pub fn target_of(
        &self,
        command_type: &str,
        payload: &Value,
    ) -> Result<Option<String>, PieceError> {
        match self.handlers.get(command_type) {
            Some(handler) => self.store.pack_code().target_of(*handler, payload),
            None => Ok(None),
        }
    }

    /// Decides `command` once, on the authority of `capability_id`. `expected` is the
    /// target version the caller saw, if it wants the command refused when it moved.
    pub async fn submit(
        &self,
        command: &CommandEnvelope,
        capability_id: CapabilityId,
        expected: Option<i64>,
    ) -> Result<Receipt, BusError> {
        command.verify()?;
        // With subject keys, the command is kept and identified by its sealed form, so its
        // id is no hash of personal data either; it is deterministic, so a retry matches.
        let sealed = self.sealed(command)?;
        let command = sealed.as_ref();
        // A command submitted again is checked like a new one before its recorded outcome
        // is given back: a capability revoked since then gets a denial, not the receipt.
        let state_ref = self.authorize(command, capability_id).await?;
        if let Some(receipt) = self.recorded(&command.command_id).await? {
            return Ok(receipt);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .decide_and_record(command, capability_id, &state_ref, expected)
                .await
            {
                Err(BusError::Append(AppendError::Conflict { actual, .. }))
                    if expected.is_none() && attempt < DECIDE_ATTEMPTS =>
                {
                    tracing::debug!(command = %command.command_id, actual, "target moved; deciding again");
                }
                Err(BusError::Append(AppendError::Conflict { actual, .. })) => {
                    return Err(BusError::Conflict {
                        target: command.target_ref.clone(),
                        expected: expected.unwrap_or_default(),
                        actual,
                    });
                }
                Err(BusError::Append(error)) => {
                    // The same command, submitted concurrently, may have been recorded first.
                    return match self.recorded(&command.command_id).await? {
                        Some(receipt) => Ok(receipt),
                        None => Err(BusError::Append(error)),
                    };
                }
                outcome => return outcome,
            }
        }
    }

    /// `command` with its personal data sealed and its id derived again from that; the
    /// same command, not a copy, when the store seals nothing.
    fn sealed<'a>(
        &self,
        command: &'a CommandEnvelope,
    ) -> Result<Cow<'a, CommandEnvelope>, BusError> {
        let Some(payload) = self.store.sealed_payload(
            &command.command_type,
            command.payload_schema_version,
            &command.payload,
        )?
        else {
            return Ok(Cow::Borrowed(command));
        };
        Ok(Cow::Owned(command.with_payload(payload)))
    }

    /// Whether `capability_id` allows `command` now: the check [`CommandBus::submit`] makes,
    /// with no receipt. A reaction asks before it spends its budget, so a command that will be
    /// denied costs none.
    pub fn allows(&self, command: &CommandEnvelope, capability_id: CapabilityId) -> bool {
        self.check(command, capability_id).allowed
    }

    /// The capability check of `command` now.
    fn check(
        &self,
        command: &CommandEnvelope,
        capability_id: CapabilityId,
    ) -> ops_core::capability::Decision {
        let safety = self
            .store
            .registry()
            .get(&command.command_type, command.payload_schema_version)
            .and_then(|declared| declared.safety)
            // What this build cannot classify is treated as the most dangerous.
            .unwrap_or(SafetyClass::WriteExternalSideEffect);
        let (tenant, destination) = match &command.dedupe_scope {
            DedupeScope::Egress {
                destination,
                tenant_id,
            } => (Some(tenant_id.clone()), Some(destination.clone())),
            _ => (None, None),
        };
        let action = Action {
            actor: command.actor.clone(),
            command_type: command.command_type.clone(),
            safety,
            tenant,
            destination,
        };
        self.authority
            .check(capability_id, &action, Timestamp::now())
    }

    /// Checks the command's capability now: the state the allowing check relied on. A
    /// denial is not a decision (the same command may pass once the capability allows it)
    /// but leaves a `CapabilityDenied` receipt.
    async fn authorize(
        &self,
        command: &CommandEnvelope,
        capability_id: CapabilityId,
    ) -> Result<String, BusError> {
        let decision = self.check(command, capability_id);
        if decision.allowed {
            return Ok(decision.state_ref);
        }
        let reason = decision
            .reason
            .clone()
            .unwrap_or_else(|| "the capability does not allow it".to_owned());
        // The same command is the same request: asked again under the same capability
        // state, it is the same denial.
        let by = Acting::new(command.actor.clone(), Cause::of_command(command));
        crate::capability::record_denial(
            &self.store,
            Denial {
                capability_id,
                by: &by,
                action: &command.command_type,
                subject: command.command_id.to_string(),
                reason: &reason,
                decision,
                correlation_id: command.correlation_id,
                source_ref: "core.bus",
            },
        )
        .await?;
        Err(BusError::Denied {
            command: command.command_type.clone(),
            capability: capability_id,
            reason,
        })
    }

    async fn decide_and_record(
        &self,
        command: &CommandEnvelope,
        capability_id: CapabilityId,
        capability_state_ref: &str,
        expected: Option<i64>,
    ) -> Result<Receipt, BusError> {
        let handler = self
            .handlers
            .get(command.command_type.as_str())
            .copied()
            .filter(|handler| handler.command_version() == command.payload_schema_version);
        let (current, history) = match handler {
            Some(handler) => {
                let (kept, newer) = self.history_of(handler, &command.target_ref).await?;
                let current = newer
                    .last()
                    .map(|event| event.stream_version)
                    .or(kept.code.version)
                    .unwrap_or(0);
                (current, Some((kept, newer)))
            }
            // Refused below without a decision: only the version is needed.
            None => (self.store.stream_version(&command.target_ref).await?, None),
        };
        if let Some(expected) = expected.filter(|expected| *expected != current) {
            if let (Some(handler), Some((kept, _))) = (handler, history) {
                // Nothing was folded: the state is kept at the version it had.
                self.keep(handler, &command.target_ref, kept);
            }
            return Err(BusError::Conflict {
                target: command.target_ref.clone(),
                expected,
                actual: current,
            });
        }
        // The handler decides on the command as it was asked, personal data opened.
        let opened = self.store.opened(
            &command.command_type,
            command.payload_schema_version,
            &command.payload,
        );
        let decided = match (handler, history) {
            (Some(handler), Some((kept, newer))) => self
                .decide(handler, command, kept, newer, current, &opened)
                .await?
                .and_then(|decided| {
                    // A handler states facts of its own pack; receipts, saga steps and
                    // other core events are the core's to write.
                    let registry = self.store.registry();
                    if let Some(forged) = decided.iter().find_map(|e| registry.check_typed(e).err()) {
                        return Err(forged);
                    }
                    match decided
                        .iter()
                        .find(|event| !owned_by(event.event_type(), handler.pack_id()))
                    {
                        Some(foreign) => Err(format!(
                            "the handler of pack `{}` decided `{}`, which is not its pack's to state",
                            handler.pack_id(),
                            foreign.event_type()
                        )),
                        None => Ok(decided),
                    }
                }),
            _ => Err(match self.handlers.get(command.command_type.as_str()) {
                None => format!("no installed pack handles `{}`", command.command_type),
                Some(handler) => format!(
                    "`{}` v{} is not the version this build handles (v{})",
                    command.command_type,
                    command.payload_schema_version,
                    handler.command_version()
                ),
            }),
        };
        let (outcome, events) = match decided {
            Ok(decided) => {
                let events = decided
                    .into_iter()
                    .enumerate()
                    .map(|(index, event)| {
                        let origin = EventOrigin {
                            effective_at: event.effective_at(),
                            ..origin(command, capability_id, index)
                        };
                        EventEnvelope::from_parts(
                            crate::CORE,
                            event.event_type().to_owned(),
                            event.version(),
                            event.into_payload(),
                            origin,
                        )
                    })
                    .collect::<Vec<_>>();
                (CommandOutcome::Accepted, events)
            }
            Err(reason) => (CommandOutcome::Rejected { reason }, Vec::new()),
        };
        let (outcome, effect) = match outcome {
            CommandOutcome::Accepted => match self.external_effect(command, capability_id) {
                Ok(effect) => (CommandOutcome::Accepted, effect),
                Err(reason) => (CommandOutcome::Rejected { reason }, None),
            },
            rejected => (rejected, None),
        };
        let mut events = if outcome == CommandOutcome::Accepted {
            events
        } else {
            Vec::new()
        };
        if let Some(effect) = &effect {
            let mut pending = crate::steps::Step::new(
                command.command_id,
                command.correlation_id,
                capability_id,
                command.actor.clone(),
                ops_core::egress::EffectState::Pending,
            );
            pending.compensates = effect.compensates.as_ref().and_then(|id| id.parse().ok());
            events.push(pending.event());
        }
        // Each event's place in the target stream, the one the append expects: events of
        // one stream at the same instant sort in the order they were decided (A6).
        for (event, version) in events.iter_mut().zip(current + 1..) {
            event.source_sequence = Some(version as u64);
        }
        // Personal data is sealed before any id is taken from the events, once.
        let events = self.store.seal_all(&events)?.unwrap_or(events);
        let event_ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
        let record = CommandRecord {
            command_id: command.command_id.to_string(),
            command_type: command.command_type.clone(),
            target_ref: command.target_ref.clone(),
            dedupe_scope: serde_json::to_string(&command.dedupe_scope)
                .expect("a dedupe scope is plain JSON"),
            envelope: serde_json::to_string(command).expect("an envelope is plain JSON"),
            capability_id: capability_id.to_string(),
            capability_state_ref: capability_state_ref.to_owned(),
            outcome: match outcome {
                CommandOutcome::Accepted => "accepted",
                CommandOutcome::Rejected { .. } => "rejected",
            },
            reason: match &outcome {
                CommandOutcome::Rejected { reason } => Some(reason.clone()),
                CommandOutcome::Accepted => None,
            },
            event_ids: serde_json::to_string(&event_ids).expect("ids are plain JSON"),
        };
        let expected_version = match current {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        let mut sides: Vec<&dyn AtomicWrite> = vec![&record];
        sides.extend(effect.as_ref().map(|row| row as &dyn AtomicWrite));
        self.store
            .append_sealed_with(&command.target_ref, expected_version, &events, &sides)
            .await?;
        Ok(Receipt {
            command_id: command.command_id,
            outcome,
            event_ids,
            capability_state_ref: capability_state_ref.to_owned(),
            replayed: false,
        })
    }

    /// The outbox row of an accepted `WRITE_EXTERNAL_SIDE_EFFECT` command: its effect is
    /// the gateway's to carry out, never the handler's (A5).
    fn external_effect(
        &self,
        command: &CommandEnvelope,
        capability_id: CapabilityId,
    ) -> Result<Option<OutboxRow>, String> {
        let Some(declared) = self
            .store
            .registry()
            .get(&command.command_type, command.payload_schema_version)
            .filter(|d| d.safety == Some(SafetyClass::WriteExternalSideEffect))
        else {
            return Ok(None);
        };
        let reversible = declared.compensation.is_some();
        // A compensation is sent by `compensate`, caused by the command it undoes.
        let compensates = match command.causation {
            Causation::Command(original) if reversible => Some(original.to_string()),
            _ => None,
        };
        let DedupeScope::Egress {
            destination,
            tenant_id,
        } = &command.dedupe_scope
        else {
            return Err(format!(
                "`{}` has an external side effect, which needs an `egress` dedupe scope naming its destination",
                command.command_type
            ));
        };
        // Over the sealed payload (see `submit`): no hash of personal data outlives its
        // subject's key.
        let request_hash = payload_hash(&command.payload);
        // The command type is in the key: a compensation carries the payload of what it
        // undoes, and must not pass for it at the destination.
        let idempotency_key = payload_hash(&serde_json::json!([
            destination,
            tenant_id,
            command.command_type,
            request_hash.to_string()
        ]));
        Ok(Some(OutboxRow {
            command_id: command.command_id.to_string(),
            command_type: command.command_type.clone(),
            destination: destination.clone(),
            tenant_id: tenant_id.clone(),
            idempotency_key: idempotency_key.to_string(),
            request_hash: request_hash.to_string(),
            request: command.payload.to_string(),
            actor: serde_json::to_string(&command.actor).expect("an actor is plain JSON"),
            capability_id: capability_id.to_string(),
            correlation_id: command.correlation_id.to_string(),
            compensates,
            reversible,
        }))
    }

    /// `handler`'s kept state of `target` and the target's events since the version it
    /// reached: all of them when nothing holds a state of it (or erasures since made it
    /// stale).
    async fn history_of(
        &self,
        handler: &'static dyn DynHandler,
        target: &str,
    ) -> Result<(Kept, Vec<StoredEvent>), BusError> {
        let erasures = self
            .store
            .count_of_type(
                <ops_core::redaction::RedactionApplied as ops_core::contract::Contract>::TYPE,
            )
            .await?;
        let kept = self
            .kept
            .lock()
            .expect("no code panics while holding the kept states")
            .remove(&(handler.command_type(), target.to_owned()))
            .filter(|kept| kept.erasures == erasures && self.store.pack_code().holds(&kept.code));
        let kept = kept.unwrap_or(Kept {
            erasures,
            code: HandlerState::default(),
        });
        let newer = self
            .store
            .read_stream_after(target, kept.code.version.unwrap_or(0))
            .await?;
        Ok((kept, newer))
    }

    /// The handler's decision, folded from its kept state and `newer` events (up to
    /// `current`): `Err` with the rejection's text, or with the fault its code ended in (a
    /// receipt recorded). A handler paused after faults in a row decides nothing.
    async fn decide(
        &self,
        handler: &'static dyn DynHandler,
        command: &CommandEnvelope,
        mut kept: Kept,
        mut newer: Vec<StoredEvent>,
        current: i64,
        payload: &Value,
    ) -> Result<Result<Vec<TypedEvent>, String>, BusError> {
        let piece = format!("handler {}", handler.command_type());
        let known = self
            .faults
            .lock()
            .await
            .get(handler.command_type())
            .cloned();
        let mut count = match known {
            Some(count) => count,
            None => FaultCount {
                paused: crate::faults::paused_piece(&self.store, &piece).await?,
                ..FaultCount::default()
            },
        };
        if let Some(receipt) = count.paused {
            return Ok(Err(format!(
                "the handler of `{}` is paused after {} faults in a row (receipt {receipt}); `ops-host quarantine retry \"{piece}\"` resumes it",
                handler.command_type(),
                crate::faults::PAUSE_AFTER
            )));
        }
        let code = self.store.pack_code();
        let registry = self.store.registry();
        let decided = loop {
            let history = history_seen_by(&self.store, handler.pack_id(), &newer);
            match code.decide(
                registry,
                handler,
                &mut kept.code,
                &command.target_ref,
                &history,
                current,
                payload,
            ) {
                // The runner that held the state is gone: fold the whole stream.
                Ok(None) => {
                    kept.code = HandlerState::default();
                    newer = self.store.read_stream(&command.target_ref).await?;
                }
                Ok(Some(decided)) => break Ok(decided),
                Err(PieceError::Refused(reason)) => break Err(reason),
                Err(PieceError::Fault(fault)) => {
                    let receipt = crate::faults::record(
                        &self.store,
                        handler.pack_id(),
                        &piece,
                        crate::faults::Input::Command(command.command_id),
                        &fault,
                        &mut count,
                    )
                    .await?;
                    self.faults
                        .lock()
                        .await
                        .insert(handler.command_type(), count);
                    return Ok(Err(format!(
                        "the handler's code faulted: {fault} (receipt {})",
                        receipt.event_id
                    )));
                }
                Err(PieceError::Jail(error)) => return Err(BusError::Jail(error)),
            }
        };
        count.answered();
        self.faults
            .lock()
            .await
            .insert(handler.command_type(), count);
        self.keep(handler, &command.target_ref, kept);
        Ok(decided)
    }

    fn keep(&self, handler: &'static dyn DynHandler, target: &str, folded: Kept) {
        let mut kept = self
            .kept
            .lock()
            .expect("no code panics while holding the kept states");
        if kept.len() >= KEPT_STATES
            && let Some(any) = kept.keys().next().cloned()
        {
            kept.remove(&any);
        }
        kept.insert((handler.command_type(), target.to_owned()), folded);
    }

    /// The outcome recorded for `command_id`, if it was decided before.
    async fn recorded(&self, command_id: &CommandId) -> Result<Option<Receipt>, BusError> {
        let row = crate::command_log::outcome_of(self.store.db(), &command_id.to_string()).await?;
        Ok(row.map(
            |(outcome, reason, event_ids, capability_state_ref)| Receipt {
                command_id: *command_id,
                outcome: match outcome.as_str() {
                    "accepted" => CommandOutcome::Accepted,
                    _ => CommandOutcome::Rejected {
                        reason: reason.unwrap_or_default(),
                    },
                },
                event_ids: serde_json::from_str(&event_ids).unwrap_or_default(),
                capability_state_ref,
                replayed: true,
            },
        ))
    }
}

/// The events a command causes happen when it was requested, on its actor's authority,
/// caused by it; their ids derive from the command's id, so deciding again gives the same.
/// When each took effect is the handler's to say (`Decided::effective_at`).
fn origin(command: &CommandEnvelope, capability_id: CapabilityId, index: usize) -> EventOrigin {
    EventOrigin {
        source_ref: format!("command:{}", command.command_type),
        source_native_id: format!("{}#{index}", command.command_id),
        source_sequence: None,
        occurred_at: command.requested_at,
        ingested_at: Timestamp::now(),
        effective_at: None,
        correlation_id: command.correlation_id,
        causation: ops_core::envelope::Causation::Command(command.command_id),
        actor: command.actor.clone(),
        capability_id,
    }
}

/// The past a handler of pack `pack_id` decides on: the target's events its pack may see
/// (its own, public core events, public events of the contract modules it lists) that this
/// build can read, each as the current version of its type. Another pack's private events in
/// the same stream are not its past.
pub fn history_seen_by(
    store: &EventStore,
    pack_id: &str,
    history: &[StoredEvent],
) -> Vec<PastEvent> {
    let registry = store.registry();
    history
        .iter()
        .filter(|event| registry.visible_to(pack_id, &event.envelope.event_type))
        .filter_map(|event| match store.current_payload(&event.envelope) {
            CurrentPayload::Current { version, payload } => Some(PastEvent {
                event_type: event.envelope.event_type.clone(),
                version,
                payload,
            }),
            CurrentPayload::UnknownType | CurrentPayload::Unreadable { .. } => None,
        })
        .collect()
}
