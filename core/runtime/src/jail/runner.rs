//! The runner's side: the host binary started as `<host> __pack-runner <pack> <memory>`.
//! It finds its pack's installed pieces, confines itself, says it is ready, and answers
//! calls until its input ends. It holds a copy of each projection's rows it folds and the
//! handlers' states of the targets it decided on, nothing of other packs, and no handle on
//! anything: its only channel is the pipe pair to the host.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::Mutex;

use ops_core::connector::{DynConnector, Fact};
use ops_core::handler::{DynHandler, KeptState};
use ops_core::projection::{DynProjection, ProjectedEvent, State};
use ops_core::reaction::DynReaction;

use super::wire::{
    Call, ProjectedInput, ProjectedReply, ProposedCommand, Reply, StatedEvent, StatedFact,
    buffer_frame, decode, read_frame_into, write_frame,
};

/// The argument that starts the host binary as a runner.
pub const RUNNER_ARG: &str = "__pack-runner";

/// The longest a runner keeps folded events' replies before sending them.
const BURST: std::time::Duration = std::time::Duration::from_millis(20);

/// How many handler states of targets a runner keeps (as many as the bus keeps).
const KEPT_STATES: usize = 4096;

/// The most a call may be: the memory limit bounds it anyway.
const MAX_CALL_BYTES: usize = 1 << 30;

/// The last panic's message and place, as the hook saw it (the hook runs before unwinding).
static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// When the process was started as a runner, serves and returns its exit code; otherwise
/// `None`, and the host goes on. A host's `main` calls this first.
pub fn serve_if_runner() -> Option<ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(RUNNER_ARG) {
        return None;
    }
    let pack = args.next().unwrap_or_default();
    let memory = args.next().and_then(|m| m.parse::<u64>().ok());
    let confine = args.next().as_deref() != Some("unconfined");
    Some(serve(
        &pack,
        memory.unwrap_or(super::DEFAULT_MEMORY_BYTES),
        confine,
    ))
}

struct Pieces {
    /// Every contract's upcasters (a stored payload is all an upcaster is given).
    registry: Option<&'static ops_core::registry::Registry>,
    projections: BTreeMap<&'static str, &'static dyn DynProjection>,
    handlers: BTreeMap<&'static str, &'static dyn DynHandler>,
    reactions: BTreeMap<(&'static str, &'static str), &'static dyn DynReaction>,
    connectors: BTreeMap<&'static str, &'static dyn DynConnector>,
    /// Contract crates' reconcilers, served by the contracts' runner only.
    reconcilers: BTreeMap<&'static str, &'static dyn ops_core::connector::DynReconciler>,
}

impl Pieces {
    fn of(pack: &str) -> Self {
        let core = crate::CORE;
        Pieces {
            registry: ops_core::registry::registry(core).ok(),
            projections: ops_core::projection::installed(core)
                .into_iter()
                .filter(|p| p.pack_id() == pack)
                .map(|p| (p.name(), p))
                .collect(),
            handlers: ops_core::handler::installed(core)
                .into_iter()
                .filter(|h| h.pack_id() == pack)
                .map(|h| (h.command_type(), h))
                .collect(),
            reactions: ops_core::reaction::installed(core)
                .into_iter()
                .filter(|r| r.pack_id() == pack)
                .map(|r| ((r.event_type(), r.command_type()), r))
                .collect(),
            connectors: ops_core::connector::installed(core)
                .into_iter()
                .filter(|c| c.pack_id() == pack)
                .map(|c| (c.id(), c))
                .collect(),
            reconcilers: ops_core::connector::reconcilers(core)
                .into_iter()
                .filter(|_| pack == super::code::CONTRACTS_RUNNER)
                .map(|r| (r.name(), r))
                .collect(),
        }
    }
}

/// What the runner keeps between calls.
#[derive(Default)]
struct Held {
    /// Each host copy's rows, by its `Mirror` id.
    rows: HashMap<u64, State>,
    /// Handler states by command type and target, with the stream version each reached.
    states: HashMap<(String, String), (i64, KeptState)>,
}

fn serve(pack: &str, memory: u64, confine: bool) -> ExitCode {
    let pieces = Pieces::of(pack);
    // Before the filter: the panic hook keeps the message instead of printing it, and the
    // thread's hash keys are drawn now (drawing them later would be a system call the
    // filter refuses).
    std::panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(text) => (*text).to_owned(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic without a message".to_owned()),
        };
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message}{place}"));
    }));
    keep_freed_memory();
    let mut held = Held::default();
    let stdin = std::io::stdin();
    let mut calls = stdin.lock();
    let mut replies = BufWriter::new(std::io::stdout().lock());
    if confine && let Err(reason) = super::confine::confine(memory) {
        let _ = write_frame(&mut replies, &Reply::Unconfined(reason));
        return ExitCode::from(3);
    }
    if write_frame(&mut replies, &Reply::Ready).is_err() {
        return ExitCode::from(1);
    }
    let mut body = Vec::new();
    loop {
        let call = match read_frame_into(&mut calls, MAX_CALL_BYTES, &mut body) {
            Ok(true) => match decode::<Call>(&body) {
                Ok(call) => call,
                Err(_) => return ExitCode::from(1),
            },
            _ => return ExitCode::SUCCESS,
        };
        let answered = catch_unwind(AssertUnwindSafe(|| {
            answer(&pieces, &mut held, call, &mut replies)
        }));
        match answered {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return ExitCode::from(1),
            Err(_) => {
                let message = PANIC
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_else(|| "a panic".to_owned());
                let _ = write_frame(&mut replies, &Reply::Panicked(message));
                // What the panicking code left half-done is not used again.
                return ExitCode::from(101);
            }
        }
    }
}

/// A runner decodes each call into fresh allocations and frees them all before the next.
/// glibc's malloc would hand the freed top of its heap back to the kernel every time (its
/// trim threshold starts at 128 KiB) and fault the same pages in again for the next call:
/// an eighth of a projection runner's time. Kept, the freed memory is reused; the address
/// space never grows past what the largest call needed, which the memory limit bounds
/// either way.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets two of the allocator's tunables, under the allocator's own lock;
    // it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Allocations from this size on get pages of their own, returned when freed, so one huge
/// call does not stay in the heap. (Setting either tunable turns off glibc's own moving
/// threshold, which would otherwise give every frame over 128 KiB pages of its own.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

fn answer(
    pieces: &Pieces,
    held: &mut Held,
    call: Call,
    replies: &mut impl Write,
) -> std::io::Result<()> {
    match call {
        Call::Load { mirror, rows } => {
            let rows = rows.into_iter().map(|(t, k, v)| ((t, k), v));
            held.rows.insert(mirror, State::from_rows(rows));
            write_frame(replies, &Reply::Loaded)
        }
        Call::Forget { mirror } => {
            held.rows.remove(&mirror);
            Ok(())
        }
        Call::Project {
            projection,
            mirror,
            events,
            flush_each,
        } => {
            let Some(piece) = pieces.projections.get(projection.as_str()) else {
                return write_frame(replies, &Reply::Unknown(projection));
            };
            // The host loads a copy before it projects into it.
            let state = held.rows.entry(mirror).or_default();
            // Replies leave in bursts (a write per event would cost more than many folds),
            // so the host hears of progress at least every `BURST`.
            let mut flushed = std::time::Instant::now();
            for event in &events {
                let touched = fold(*piece, event, state);
                buffer_frame(replies, &ProjectedReply::of(&touched, state))?;
                if flush_each || flushed.elapsed() >= BURST {
                    replies.flush()?;
                    flushed = std::time::Instant::now();
                }
            }
            replies.flush()?;
            // The changes were sent with each reply; the host stores them.
            state.forget_changes();
            Ok(())
        }
        Call::Decide {
            command_type,
            target,
            from,
            events,
            to,
            payload,
        } => {
            let Some(handler) = pieces.handlers.get(command_type.as_str()) else {
                return write_frame(replies, &Reply::Unknown(command_type));
            };
            let key = (command_type, target);
            let mut state = match (from, held.states.remove(&key)) {
                (None, _) => handler.new_state(),
                (Some(from), Some((version, state))) if version == from => state,
                (Some(_), _) => return write_frame(replies, &Reply::Stale),
            };
            for event in &events {
                handler.apply(&mut state, event);
            }
            let decided = handler
                .decide(&payload, &key.1, &state)
                .map(|events| events.into_iter().map(StatedEvent::of).collect());
            // Bounded like the bus's own: past it an arbitrary state goes, and the host's
            // next call for that target is answered `Stale`.
            if held.states.len() >= KEPT_STATES
                && let Some(any) = held.states.keys().next().cloned()
            {
                held.states.remove(&any);
            }
            held.states.insert(key, (to, state));
            write_frame(replies, &Reply::Decided(decided))
        }
        Call::Target {
            command_type,
            payload,
        } => match pieces.handlers.get(command_type.as_str()) {
            Some(handler) => write_frame(replies, &Reply::Target(handler.target_of(&payload))),
            None => write_frame(replies, &Reply::Unknown(command_type)),
        },
        Call::React {
            event_type,
            command_type,
            event,
            payload,
        } => {
            let Some(reaction) = pieces
                .reactions
                .get(&(event_type.as_str(), command_type.as_str()))
            else {
                return write_frame(
                    replies,
                    &Reply::Unknown(format!("{event_type} -> {command_type}")),
                );
            };
            let proposed = reaction
                .react(&event, &payload)
                .map(|commands| {
                    commands
                        .into_iter()
                        .map(|command| ProposedCommand {
                            payload: command.payload,
                            target_ref: command.target_ref,
                            dedupe_scope: command.dedupe_scope,
                        })
                        .collect()
                })
                .map_err(|error| error.to_string());
            write_frame(replies, &Reply::Reacted(proposed))
        }
        Call::Interpret {
            connector,
            stream,
            records,
        } => {
            let Some(piece) = pieces.connectors.get(connector.as_str()) else {
                return write_frame(replies, &Reply::Unknown(connector));
            };
            for record in &records {
                let facts = piece
                    .interpret(&stream, record)
                    .map(|facts| facts.into_iter().map(stated_fact).collect());
                write_frame(replies, &Reply::Interpreted(facts))?;
            }
            Ok(())
        }
        Call::Reconcile { reconciler, facts } => {
            let Some(piece) = pieces.reconcilers.get(reconciler.as_str()) else {
                return write_frame(replies, &Reply::Unknown(reconciler));
            };
            let facts: Vec<(&str, &str, &serde_json::Value)> = facts
                .iter()
                .map(|(event_type, source, payload)| {
                    (event_type.as_str(), source.as_str(), payload)
                })
                .collect();
            write_frame(
                replies,
                &Reply::Reconciled(super::wire::conflicts_among(*piece, &facts)),
            )
        }
        Call::Check { payloads } => {
            let checked = payloads
                .into_iter()
                .map(|(type_name, version, payload)| {
                    match pieces.registry.and_then(|r| r.get(&type_name, version)) {
                        Some(descriptor) => (descriptor.check_payload)(&payload),
                        None => Err(format!("`{type_name}` v{version} is not registered")),
                    }
                })
                .collect();
            write_frame(replies, &Reply::Checked(checked))
        }
        Call::Upcast { payloads } => {
            let upcast = payloads
                .into_iter()
                .map(|(type_name, version, payload)| match pieces.registry {
                    Some(registry) => registry
                        .upcast_to_latest(&type_name, version, payload)
                        .map_err(|error| error.to_string()),
                    None => Err("this build's registry is not consistent".to_owned()),
                })
                .collect();
            write_frame(replies, &Reply::Upcast(upcast))
        }
        Call::Streams { connector } => match pieces.connectors.get(connector.as_str()) {
            Some(piece) => write_frame(replies, &Reply::Streams(piece.streams())),
            None => write_frame(replies, &Reply::Unknown(connector)),
        },
    }
}

/// Folds one event into the runner's copy of the rows; the rows it changed go back (as
/// they now stand in `state`).
fn fold(
    projection: &dyn DynProjection,
    input: &ProjectedInput,
    state: &mut State,
) -> Result<Vec<(String, String)>, String> {
    let event = ProjectedEvent {
        envelope: &input.envelope,
        stream_id: &input.stream_id,
        stream_version: input.stream_version,
        payload: input.payload.as_ref().unwrap_or(&input.envelope.payload),
        version: input.version,
    };
    state.savepoint();
    match projection.apply(&event, state) {
        Ok(()) => {
            let mut touched: Vec<(String, String)> = state
                .release_with_undo()
                .into_iter()
                .map(|(row, _)| row)
                .collect();
            touched.sort();
            touched.dedup();
            Ok(touched)
        }
        Err(reason) => {
            state.rollback();
            Err(reason)
        }
    }
}

fn stated_fact(fact: Fact) -> StatedFact {
    match fact {
        Fact::Event(fact) => StatedFact::Event {
            native_id: fact.native_id().to_owned(),
            occurred_at: fact.occurred_at(),
            source_sequence: fact.source_sequence(),
            event: StatedEvent::of(fact.into_event()),
        },
        Fact::Deleted {
            native_id,
            occurred_at,
        } => StatedFact::Deleted {
            native_id,
            occurred_at,
        },
    }
}
