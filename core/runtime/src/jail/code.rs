//! [`PackCode`]: how the runtime calls a pack's pieces. Jailed, each call goes to the
//! pack's runner and what comes back is checked before the host uses it; in process (a
//! library's choice, and the benchmarks' baseline), the call is made here, with panics
//! caught. Either way a call ends with its result, the piece's own refusal, or a
//! [`Fault`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use ops_core::connector::{Drift, DynConnector, EventFact, Fact};
use ops_core::contract::TypedEvent;
use ops_core::envelope::{Causation, CommandEnvelope, CommandRequest, EventEnvelope};
use ops_core::handler::{DynHandler, KeptState, PastEvent};
use ops_core::projection::{DynProjection, ProjectedEvent, RowBefore, State};
use ops_core::reaction::{DynReaction, reactor};
use ops_core::registry::Registry;
use serde::Serialize;
use serde_json::Value;

use super::wire::{Reply, StatedEvent, StatedFact};
use super::{Fault, Jail, JailError};

/// The runner of code that belongs to no pack: the contract and shared crates' upcasters,
/// reconcilers and the decoding of their types. Not a pack id (those have no `-`), so no
/// pack's runner is it.
pub(crate) const CONTRACTS_RUNNER: &str = "-contracts";

/// Events per call of a projection's batch.
const CHUNK: usize = 50;

/// Where pack code runs. Cheap to clone.
#[derive(Clone, Default)]
pub enum PackCode {
    /// In the host's process: panics are caught, nothing else is.
    #[default]
    InProcess,
    Jailed(Jail),
}

/// Why a piece gave no result.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    /// The piece's own answer: a projection's `Err`, a connector's drift, a handler's
    /// payload it cannot read.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Fault(#[from] Fault),
    #[error(transparent)]
    Jail(#[from] JailError),
}

/// What a jailed runner holds of one projection runner's rows: which runner, and which
/// revision of the host's [`State`] (`State::revision`). When either moved, the rows are
/// sent again. Each is its own copy in the runner (two runners of one projection in one
/// host do not share one), dropped there when this is dropped.
pub struct Mirror {
    id: u64,
    at: Option<(u64, u64)>,
    /// The jail and pack whose runner holds the copy, once one does.
    held_by: Option<(Jail, String)>,
}

impl Default for Mirror {
    fn default() -> Self {
        static MIRRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Mirror {
            id: MIRRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            at: None,
            held_by: None,
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some((jail, pack)) = self.held_by.take() {
            jail.forget(&pack, self.id);
        }
    }
}

/// One event's outcome in [`PackCode::project`]: how to undo what it changed (for a
/// journaled projection), or why it was not applied.
pub type Projected = Result<Vec<RowBefore>, PieceError>;

/// An event as the runtime gives it to [`PackCode::project`].
#[derive(Serialize)]
pub struct ProjectedRef<'a> {
    #[serde(serialize_with = "ops_core::envelope::packed::serialize")]
    pub envelope: &'a EventEnvelope,
    pub stream_id: &'a str,
    pub stream_version: i64,
    /// The payload as the projection reads it, when it is not the envelope's own (it was
    /// upcast or its personal data sealed): what is the same is not sent twice.
    pub payload: Option<&'a Value>,
    pub version: u32,
}

impl ProjectedRef<'_> {
    fn payload(&self) -> &Value {
        self.payload.unwrap_or(&self.envelope.payload)
    }
}

/// `wire::Call`'s variants, serialised from borrowed data (the same frame).
#[derive(Serialize)]
enum CallRef<'a> {
    Load {
        mirror: u64,
        rows: Vec<(&'a str, &'a str, &'a Value)>,
    },
    Forget {
        mirror: u64,
    },
    Project {
        projection: &'a str,
        mirror: u64,
        events: &'a [ProjectedRef<'a>],
        flush_each: bool,
    },
    Decide {
        command_type: &'a str,
        target: &'a str,
        from: Option<i64>,
        events: &'a [PastEvent],
        to: i64,
        payload: &'a Value,
    },
    Target {
        command_type: &'a str,
        payload: &'a Value,
    },
    React {
        event_type: &'a str,
        command_type: &'a str,
        #[serde(serialize_with = "ops_core::envelope::packed::serialize")]
        event: &'a EventEnvelope,
        payload: &'a Value,
    },
    Interpret {
        connector: &'a str,
        stream: &'a str,
        records: &'a [&'a Value],
    },
    Streams {
        connector: &'a str,
    },
    Upcast {
        payloads: &'a [(&'a str, u32, &'a Value)],
    },
    Check {
        payloads: &'a [(&'a str, u32, &'a Value)],
    },
    Reconcile {
        reconciler: &'a str,
        facts: &'a [(&'a str, &'a str, &'a Value)],
    },
}

fn unexpected(reply: Reply) -> Fault {
    Fault::Unreadable(format!("an answer of the wrong kind: {reply:?}"))
}

/// Runs `call` on this thread, turning a panic into a fault.
fn caught<T>(call: impl FnOnce() -> T) -> Result<T, Fault> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Fault::Panicked(message)
    })
}

/// Blocking work inside the runtime's async code: on a multi-threaded runtime the thread
/// is handed over first, so other tasks go on while a runner computes.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

impl PackCode {
    /// Whether pack code runs confined: jailed, with the kernel's filter on.
    pub fn confined(&self) -> bool {
        matches!(self, PackCode::Jailed(jail) if jail.confined())
    }

    pub fn jail(&self) -> Option<&Jail> {
        match self {
            PackCode::Jailed(jail) => Some(jail),
            PackCode::InProcess => None,
        }
    }

    /// Folds `events` into `state` in order, each under its own savepoint: a refused or
    /// faulted event leaves nothing behind, and the rest go on (a faulted runner is
    /// replaced and given the rows again), until `faults_allowed` faults in a row: the
    /// events after those are not given to it, and have no outcome (the result is shorter
    /// than `events`). With `journaled`, each applied event says how to undo it.
    pub fn project(
        &self,
        projection: &dyn DynProjection,
        mirror: &mut Mirror,
        events: &[ProjectedRef<'_>],
        state: &mut State,
        journaled: bool,
        faults_allowed: u32,
    ) -> Vec<Projected> {
        let mut outcomes: Vec<Projected> = Vec::with_capacity(events.len());
        let mut in_a_row = 0;
        let mut given = 0;
        while given < events.len() {
            // Faults end a call: what is given next starts after the last fault.
            let batch =
                self.project_until_fault(projection, mirror, &events[given..], state, journaled);
            given += batch.len();
            for outcome in batch {
                match &outcome {
                    Err(PieceError::Fault(_)) => in_a_row += 1,
                    _ => in_a_row = 0,
                }
                outcomes.push(outcome);
            }
            if in_a_row >= faults_allowed {
                break;
            }
        }
        outcomes
    }

    /// [`PackCode::project`] up to and including the first fault.
    fn project_until_fault(
        &self,
        projection: &dyn DynProjection,
        mirror: &mut Mirror,
        events: &[ProjectedRef<'_>],
        state: &mut State,
        journaled: bool,
    ) -> Vec<Projected> {
        let release = |state: &mut State| {
            if journaled {
                state.release_with_undo()
            } else {
                state.release();
                Vec::new()
            }
        };
        match self {
            PackCode::InProcess => {
                let mut outcomes = Vec::with_capacity(events.len());
                for event in events {
                    let event = ProjectedEvent {
                        envelope: event.envelope,
                        stream_id: event.stream_id,
                        stream_version: event.stream_version,
                        payload: event.payload(),
                        version: event.version,
                    };
                    state.savepoint();
                    let outcome = match caught(|| projection.apply(&event, state)) {
                        Ok(Ok(())) => Ok(release(state)),
                        Ok(Err(reason)) => {
                            state.rollback();
                            Err(PieceError::Refused(reason))
                        }
                        Err(fault) => {
                            state.rollback();
                            Err(PieceError::Fault(fault))
                        }
                    };
                    let faulted = matches!(outcome, Err(PieceError::Fault(_)));
                    outcomes.push(outcome);
                    if faulted {
                        break;
                    }
                }
                outcomes
            }
            PackCode::Jailed(jail) => blocking(|| {
                let pack = projection.pack_id();
                let slot = jail.pool.slot(pack);
                let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                let mut outcomes: Vec<Projected> = Vec::with_capacity(events.len());
                // Replies come in bursts; after a runner died without saying why, the
                // events it had not answered are given again with a reply each, so the
                // fault is known to be the event's it happens on.
                let mut flush_each = false;
                while outcomes.len() < events.len() {
                    let rest = &events[outcomes.len()..];
                    let synced = slot.alive().zip(Some(state.revision())) == mirror.at
                        && mirror.at.is_some();
                    if !synced {
                        let rows = state
                            .rows()
                            .map(|((table, key), document)| (table, key, document))
                            .collect();
                        let load = CallRef::Load {
                            mirror: mirror.id,
                            rows,
                        };
                        mirror.held_by = Some((jail.clone(), pack.to_owned()));
                        let loaded =
                            jail.pool.exchange(
                                pack,
                                &mut slot,
                                &[load],
                                1,
                                |_, reply| match reply {
                                    Reply::Loaded => Ok(()),
                                    other => Err(unexpected(other)),
                                },
                            );
                        match loaded {
                            Ok(Ok(())) => mirror.at = slot.alive().zip(Some(state.revision())),
                            Ok(Err((_, fault))) => {
                                outcomes.push(Err(PieceError::Fault(fault)));
                                break;
                            }
                            Err(error) => {
                                outcomes.extend(rest.iter().map(|_| {
                                    Err(PieceError::Jail(JailError::Protocol(error.to_string())))
                                }));
                                break;
                            }
                        }
                    }
                    // In chunks, so the runner folds one while the host encodes the next.
                    let calls: Vec<CallRef<'_>> = rest
                        .chunks(CHUNK)
                        .map(|events| CallRef::Project {
                            projection: projection.name(),
                            mirror: mirror.id,
                            events,
                            flush_each,
                        })
                        .collect();
                    let alive = slot.alive();
                    let exchanged =
                        jail.pool
                            .exchange(pack, &mut slot, &calls, rest.len(), |_, reply| {
                                match reply {
                                    Reply::Projected(Ok(writes)) => {
                                        state.savepoint();
                                        for (table, key, document) in writes {
                                            match document {
                                                Some(document) => state.put(&table, &key, document),
                                                None => state.delete(&table, &key),
                                            }
                                        }
                                        outcomes.push(Ok(release(state)));
                                    }
                                    Reply::Projected(Err(reason)) => {
                                        outcomes.push(Err(PieceError::Refused(reason)))
                                    }
                                    other => return Err(unexpected(other)),
                                }
                                // The runner applied the same writes to its copy.
                                mirror.at = alive.zip(Some(state.revision()));
                                Ok(())
                            });
                    match exchanged {
                        Ok(Ok(())) => {}
                        // A panic is said after every earlier reply; a death may have taken
                        // replies still buffered with it.
                        Ok(Err((_, fault)))
                            if flush_each || matches!(fault, Fault::Panicked(_)) =>
                        {
                            mirror.at = None;
                            outcomes.push(Err(PieceError::Fault(fault)));
                            break;
                        }
                        Ok(Err(_)) => {
                            mirror.at = None;
                            flush_each = true;
                        }
                        Err(error) => {
                            let error = error.to_string();
                            let missing = events.len() - outcomes.len();
                            outcomes.extend((0..missing).map(|_| {
                                Err(PieceError::Jail(JailError::Protocol(error.clone())))
                            }));
                        }
                    }
                }
                outcomes
            }),
        }
    }

    /// Whether the state `kept` says it has is still held: in process, when it is there;
    /// jailed, when the runner that holds it is still the pack's runner.
    pub fn holds(&self, kept: &HandlerState) -> bool {
        match self {
            PackCode::InProcess => kept.state.is_some(),
            PackCode::Jailed(_) => kept.runner.is_some(),
        }
    }

    /// What the command in `payload` acts on, when its handler reads it from the payload.
    pub fn target_of(
        &self,
        handler: &dyn DynHandler,
        payload: &Value,
    ) -> Result<Option<String>, PieceError> {
        let target = match self {
            PackCode::InProcess => caught(|| handler.target_of(payload))?,
            PackCode::Jailed(jail) => blocking(|| {
                let call = CallRef::Target {
                    command_type: handler.command_type(),
                    payload,
                };
                jail.one(handler.pack_id(), &call, |reply| match reply {
                    Reply::Target(target) => Ok(target),
                    other => Err(unexpected(other)),
                })
            })?,
        };
        target.map_err(PieceError::Refused)
    }

    /// The handler's decision on `payload` after folding `events` (the target's stream from
    /// version `from` to `to`) into its state. In process, `kept` is the state at `from`;
    /// jailed, the pack's runner holds it, and `Ok(None)` says the runner is not the one
    /// that held it (the caller sends the whole stream, `from` = `None`).
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        registry: &Registry,
        handler: &dyn DynHandler,
        kept: &mut HandlerState,
        target: &str,
        events: &[PastEvent],
        to: i64,
        payload: &Value,
    ) -> Result<Option<Vec<TypedEvent>>, PieceError> {
        match self {
            PackCode::InProcess => {
                let state = match &mut kept.state {
                    Some(state) => state,
                    none => none.insert(handler.new_state()),
                };
                let decided = caught(|| {
                    for event in events {
                        handler.apply(state, event);
                    }
                    handler.decide(payload, target, state)
                });
                kept.version = Some(to);
                match decided {
                    Ok(decided) => decided.map(Some).map_err(PieceError::Refused),
                    Err(fault) => {
                        kept.state = None;
                        kept.version = None;
                        Err(PieceError::Fault(fault))
                    }
                }
            }
            PackCode::Jailed(jail) => blocking(|| {
                let pack = handler.pack_id();
                let slot = jail.pool.slot(pack);
                let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                // Events since a version are no use to a runner that does not hold it.
                if kept.version.is_some() && (kept.runner.is_none() || kept.runner != slot.alive())
                {
                    kept.runner = None;
                    kept.version = None;
                    return Ok(None);
                }
                let from = kept.version;
                let call = CallRef::Decide {
                    command_type: handler.command_type(),
                    target,
                    from,
                    events,
                    to,
                    payload,
                };
                let mut answer = None;
                let exchanged = jail
                    .pool
                    .exchange(pack, &mut slot, &[call], 1, |_, reply| {
                        match reply {
                            Reply::Decided(decided) => answer = Some(Some(decided)),
                            Reply::Stale => answer = Some(None),
                            other => return Err(unexpected(other)),
                        }
                        Ok(())
                    })?;
                if let Err((_, fault)) = exchanged {
                    kept.runner = None;
                    kept.version = None;
                    return Err(PieceError::Fault(fault));
                }
                match answer.flatten() {
                    None => {
                        kept.runner = None;
                        kept.version = None;
                        Ok(None)
                    }
                    Some(decided) => {
                        kept.runner = slot.alive();
                        kept.version = Some(to);
                        let decided = decided.map_err(PieceError::Refused)?;
                        decided
                            .into_iter()
                            .map(|event| rebuilt(registry, event).map_err(PieceError::Refused))
                            .collect::<Result<Vec<_>, _>>()
                            .map(Some)
                    }
                }
            }),
        }
    }

    /// The commands `reaction` proposes for `event` (its payload read at the version the
    /// reaction reads). Jailed, the host builds the envelopes: the command type is the
    /// reaction's, and correlation, causation, actor and time are the event's, whatever the
    /// runner said.
    pub fn react(
        &self,
        registry: &Registry,
        reaction: &dyn DynReaction,
        event: &EventEnvelope,
        payload: &Value,
    ) -> Result<Vec<CommandEnvelope>, PieceError> {
        match self {
            PackCode::InProcess => caught(|| reaction.react(event, payload))?
                .map_err(|error| PieceError::Refused(error.to_string())),
            PackCode::Jailed(jail) => blocking(|| {
                let call = CallRef::React {
                    event_type: reaction.event_type(),
                    command_type: reaction.command_type(),
                    event,
                    payload,
                };
                let proposed = jail.one(reaction.pack_id(), &call, |reply| match reply {
                    Reply::Reacted(proposed) => Ok(proposed),
                    other => Err(unexpected(other)),
                })?;
                let proposed = proposed.map_err(PieceError::Refused)?;
                let descriptor = registry.latest(reaction.command_type()).ok_or_else(|| {
                    PieceError::Refused(format!("`{}` is not registered", reaction.command_type()))
                })?;
                let payloads: Vec<(&str, u32, &Value)> = proposed
                    .iter()
                    .map(|command| (descriptor.name, descriptor.version, &command.payload))
                    .collect();
                let decodes = self.check_payloads(registry, &payloads);
                proposed
                    .into_iter()
                    .zip(decodes)
                    .map(|(command, decodes)| {
                        CommandEnvelope::of_descriptor(
                            crate::CORE,
                            descriptor,
                            command.payload,
                            decodes,
                            CommandRequest {
                                target_ref: command.target_ref,
                                dedupe_scope: command.dedupe_scope,
                                correlation_id: event.correlation_id,
                                causation: Causation::Event(event.event_id),
                                actor: reactor(reaction.pack_id()),
                                requested_at: event.occurred_at,
                            },
                        )
                        .map_err(|error| PieceError::Refused(error.to_string()))
                    })
                    .collect()
            }),
        }
    }

    /// The facts `connector` reads in `record` of `stream`, or where it drifted.
    pub fn interpret(
        &self,
        registry: &Registry,
        connector: &dyn DynConnector,
        stream: &str,
        record: &Value,
    ) -> Result<Result<Vec<Fact>, Drift>, PieceError> {
        match self {
            PackCode::InProcess => Ok(caught(|| connector.interpret(stream, record))?),
            PackCode::Jailed(jail) => blocking(|| {
                let call = CallRef::Interpret {
                    connector: connector.id(),
                    stream,
                    records: &[record],
                };
                let facts = jail.one(connector.pack_id(), &call, |reply| match reply {
                    Reply::Interpreted(facts) => Ok(facts),
                    other => Err(unexpected(other)),
                })?;
                let Ok(facts) = facts else {
                    return Ok(facts.map(|_| Vec::new()));
                };
                facts
                    .into_iter()
                    .map(|fact| match fact {
                        StatedFact::Event {
                            event,
                            native_id,
                            occurred_at,
                            source_sequence,
                        } => Ok(EventFact::from_parts(
                            crate::CORE,
                            rebuilt(registry, event).map_err(PieceError::Refused)?,
                            native_id,
                            occurred_at,
                            source_sequence,
                        )),
                        StatedFact::Deleted {
                            native_id,
                            occurred_at,
                        } => Ok(Fact::Deleted {
                            native_id,
                            occurred_at,
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Ok)
            }),
        }
    }

    /// Stored payloads (`(type name, version, payload)`) as the current versions of their
    /// types, through every upcaster in between (contract code: jailed, it runs in the
    /// runner of the type's pack, or of the contract crates for theirs, one call per
    /// runner). A payload already at the current version is not sent anywhere: no code of
    /// its type runs for it.
    pub fn upcast(
        &self,
        registry: &Registry,
        payloads: Vec<(&str, u32, Value)>,
    ) -> Vec<Result<(u32, Value), String>> {
        let jail = match self {
            PackCode::InProcess => {
                return payloads
                    .into_iter()
                    .map(|(type_name, version, payload)| {
                        caught(|| registry.upcast_to_latest(type_name, version, payload))
                            .map_err(|fault| format!("its upcaster faulted: {fault}"))?
                            .map_err(|error| error.to_string())
                    })
                    .collect();
            }
            PackCode::Jailed(jail) => jail,
        };
        let borrowed: Vec<(&str, u32, &Value)> = payloads
            .iter()
            .map(|(type_name, version, payload)| (*type_name, *version, payload))
            .collect();
        let upcast = jail.by_type_runner(
            &borrowed,
            |(type_name, version, _)| {
                registry.latest(type_name).map(|latest| latest.version) != Some(*version)
            },
            |payloads| CallRef::Upcast { payloads },
            |reply| match reply {
                Reply::Upcast(upcast) => Some(upcast),
                _ => None,
            },
        );
        payloads
            .into_iter()
            .zip(upcast)
            .map(|((_, version, payload), upcast)| match upcast {
                None => Ok((version, payload)),
                Some(upcast) => upcast.map_err(|error| format!("its upcaster faulted: {error}"))?,
            })
            .collect()
    }

    /// Whether each payload (`(type name, version, payload)`) decodes as its registered
    /// type. Decoding runs the type's `Deserialize`, which its crate may have written (or
    /// pointed at its own functions): jailed, packs' and contracts' types are decoded in
    /// their runner, the core's here.
    pub fn check_payloads(
        &self,
        registry: &Registry,
        payloads: &[(&str, u32, &Value)],
    ) -> Vec<Result<(), String>> {
        let here = |(type_name, version, payload): &(&str, u32, &Value)| match registry
            .get(type_name, *version)
        {
            Some(descriptor) => caught(|| (descriptor.check_payload)(payload))
                .map_err(|fault| format!("decoding it faulted: {fault}"))?,
            None => Err(format!("`{type_name}` v{version} is not registered")),
        };
        let jail = match self {
            PackCode::InProcess => return payloads.iter().map(here).collect(),
            PackCode::Jailed(jail) => jail,
        };
        let checked = jail.by_type_runner(
            payloads,
            |(type_name, _, _)| !type_name.starts_with("core."),
            |payloads| CallRef::Check { payloads },
            |reply| match reply {
                Reply::Checked(checked) => Some(checked),
                _ => None,
            },
        );
        payloads
            .iter()
            .zip(checked)
            .map(|(item, checked)| match checked {
                None => here(item),
                Some(checked) => {
                    checked.map_err(|error| format!("decoding it faulted: {error}"))?
                }
            })
            .collect()
    }

    /// The conflicts `reconciler` (contract code: jailed, in the contracts' runner) finds
    /// among `facts` (`(event type, source, payload)`). Indices out of range or pairs of
    /// one source are not believed.
    pub fn reconcile(
        &self,
        reconciler: &dyn ops_core::connector::DynReconciler,
        facts: &[(&str, &str, &Value)],
    ) -> Result<Vec<super::wire::Conflict>, PieceError> {
        let conflicts = match self {
            PackCode::InProcess => caught(|| super::wire::conflicts_among(reconciler, facts))?,
            PackCode::Jailed(jail) => blocking(|| {
                let call = CallRef::Reconcile {
                    reconciler: reconciler.name(),
                    facts,
                };
                jail.one(CONTRACTS_RUNNER, &call, |reply| match reply {
                    Reply::Reconciled(conflicts) => Ok(conflicts),
                    other => Err(unexpected(other)),
                })
            })?,
        };
        Ok(conflicts
            .into_iter()
            .filter(|c| {
                c.first < c.second
                    && c.second < facts.len()
                    && facts[c.first].1 != facts[c.second].1
            })
            .collect())
    }

    /// The streams `connector` reads.
    pub fn streams(&self, connector: &dyn DynConnector) -> Result<Vec<String>, PieceError> {
        match self {
            PackCode::InProcess => Ok(caught(|| connector.streams())?),
            PackCode::Jailed(jail) => blocking(|| {
                let call = CallRef::Streams {
                    connector: connector.id(),
                };
                jail.one(connector.pack_id(), &call, |reply| match reply {
                    Reply::Streams(streams) => Ok(streams),
                    other => Err(unexpected(other)),
                })
            }),
        }
    }
}

/// A handler's state of one target as the bus keeps it between commands: the stream
/// version it reached, and the state itself (in process) or the runner that holds it.
#[derive(Default)]
pub struct HandlerState {
    pub version: Option<i64>,
    state: Option<KeptState>,
    runner: Option<u64>,
}

impl Jail {
    /// Tells `pack`'s runner, if one is alive, to drop its copy `mirror` (no reply).
    fn forget(&self, pack: &str, mirror: u64) {
        let slot = self.pool.slot(pack);
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.alive().is_some() {
            let forget = CallRef::Forget { mirror };
            let _ = self
                .pool
                .exchange(pack, &mut slot, &[forget], 0, |_, _| Ok(()));
        }
    }

    /// The `payloads` that `sent` picks, sent to the runner of each one's type (its
    /// pack's, or the contracts'), one call per runner; each payload's answer in their
    /// order (`None` for one not sent, `Err` with the fault when its runner's call
    /// faulted).
    fn by_type_runner<T>(
        &self,
        payloads: &[(&str, u32, &Value)],
        sent: impl Fn(&(&str, u32, &Value)) -> bool,
        call: impl for<'a> Fn(&'a [(&'a str, u32, &'a Value)]) -> CallRef<'a>,
        read: impl Fn(Reply) -> Option<Vec<T>>,
    ) -> Vec<Option<Result<T, PieceError>>> {
        let runner_of = |type_name: &str| -> String {
            type_name
                .strip_prefix("pack.")
                .and_then(|rest| rest.split_once('.'))
                .map_or(CONTRACTS_RUNNER, |(pack, _)| pack)
                .to_owned()
        };
        let mut by_runner: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (index, payload) in payloads.iter().enumerate().filter(|(_, p)| sent(p)) {
            by_runner
                .entry(runner_of(payload.0))
                .or_default()
                .push(index);
        }
        let mut answers: Vec<Option<Result<T, PieceError>>> =
            (0..payloads.len()).map(|_| None).collect();
        for (runner, indices) in by_runner {
            let batch: Vec<(&str, u32, &Value)> = indices.iter().map(|&i| payloads[i]).collect();
            let answered = blocking(|| {
                self.one(&runner, &call(&batch), |reply| match read(reply) {
                    Some(answers) if answers.len() == batch.len() => Ok(answers),
                    _ => Err(Fault::Unreadable(
                        "an answer of the wrong kind or length".to_owned(),
                    )),
                })
            });
            match answered {
                Ok(each) => {
                    for (&i, answer) in indices.iter().zip(each) {
                        answers[i] = Some(Ok(answer));
                    }
                }
                Err(error) => {
                    let error = error.to_string();
                    for &i in &indices {
                        answers[i] = Some(Err(PieceError::Refused(error.clone())));
                    }
                }
            }
        }
        answers
    }

    /// One call with one reply, read by `read`.
    fn one<T>(
        &self,
        pack: &str,
        call: &impl Serialize,
        read: impl FnOnce(Reply) -> Result<T, Fault>,
    ) -> Result<T, PieceError> {
        let slot = self.pool.slot(pack);
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        let mut read = Some(read);
        let mut answer = None;
        self.pool
            .exchange(
                pack,
                &mut slot,
                std::slice::from_ref(call),
                1,
                |_, reply| {
                    let read = read.take().expect("one reply");
                    answer = Some(read(reply)?);
                    Ok(())
                },
            )?
            .map_err(|(_, fault)| PieceError::Fault(fault))?;
        Ok(answer.expect("one reply was read"))
    }
}

/// An event a runner stated, as the registered type of its name and version.
fn rebuilt(registry: &Registry, event: StatedEvent) -> Result<TypedEvent, String> {
    let descriptor = registry
        .get(&event.event_type, event.version)
        .ok_or_else(|| {
            format!(
                "`{}` v{} is not a type registered in this build",
                event.event_type, event.version
            )
        })?;
    Ok(
        TypedEvent::registered(crate::CORE, descriptor, event.payload)
            .with_effective_at(event.effective_at),
    )
}
