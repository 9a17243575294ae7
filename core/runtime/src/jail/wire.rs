//! What crosses between the host and a pack runner: length-prefixed MessagePack frames on the
//! runner's standard input and output. Every name in a call is the host's (from the
//! registry and the installed pieces); every reply is checked by the host like any other
//! untrusted input before anything is stored.

use std::io::{self, Read, Write};

use ops_core::connector::Drift;
use ops_core::envelope::EventEnvelope;
use ops_core::handler::PastEvent;
use ops_core::projection::State;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest reply the host reads: a runner that claims more is faulty.
pub(crate) const MAX_REPLY_BYTES: usize = 64 << 20;

/// One call to a runner. `Project` and `Interpret` get one reply per item, the others one.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Call {
    /// The projection's rows as the host holds them; the runner folds into this copy.
    /// The rows of the host's copy `mirror` of a projection's state (one per runner of
    /// the projection in the host).
    Load {
        mirror: u64,
        rows: Vec<(String, String, Value)>,
    },
    /// The host's copy `mirror` is gone: the runner drops its own. No reply.
    Forget {
        mirror: u64,
    },
    /// Replies are flushed in bursts, or one by one with `flush_each`.
    Project {
        projection: String,
        mirror: u64,
        events: Vec<ProjectedInput>,
        flush_each: bool,
    },
    /// Fold `events` into the handler's state of `target` (a new one when `from` is
    /// `None`, or the one the runner holds at version `from`), then decide on `payload`.
    Decide {
        command_type: String,
        target: String,
        from: Option<i64>,
        events: Vec<PastEvent>,
        to: i64,
        payload: Value,
    },
    /// What the command in `payload` acts on, by its handler's reading of it.
    Target {
        command_type: String,
        payload: Value,
    },
    React {
        event_type: String,
        command_type: String,
        #[serde(
            serialize_with = "ops_core::envelope::packed::serialize",
            deserialize_with = "boxed_envelope"
        )]
        event: Box<EventEnvelope>,
        payload: Value,
    },
    Interpret {
        connector: String,
        stream: String,
        records: Vec<Value>,
    },
    Streams {
        connector: String,
    },
    /// Which facts of different sources about one subject conflict, by the reconciler's
    /// own judgement: each fact is `(event type, source, payload)`.
    Reconcile {
        reconciler: String,
        facts: Vec<(String, String, Value)>,
    },
    /// Read stored payloads (`(type name, version, payload)`) as their current versions.
    Upcast {
        payloads: Vec<(String, u32, Value)>,
    },
    /// Whether payloads (`(type name, version, payload)`) decode as their types.
    Check {
        payloads: Vec<(String, u32, Value)>,
    },
}

/// An event as a projection sees it, owned.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProjectedInput {
    #[serde(with = "ops_core::envelope::packed")]
    pub envelope: EventEnvelope,
    pub stream_id: String,
    pub stream_version: i64,
    /// `None`: the envelope's own payload.
    pub payload: Option<Value>,
    pub version: u32,
}

fn boxed_envelope<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Box<EventEnvelope>, D::Error> {
    ops_core::envelope::packed::deserialize(deserializer).map(Box::new)
}

/// A row a projection's fold wrote (`Some`) or deleted (`None`).
pub(crate) type RowWrite = (String, String, Option<Value>);

/// [`Reply::Projected`] as the runner writes it: each row it touched by reference into
/// its copy of the state, not cloned for the write. The same frame (a test holds it to
/// that), read back as a `Reply`.
#[derive(Serialize)]
pub(crate) enum ProjectedReply<'a> {
    Projected(Result<Vec<RowWriteRef<'a>>, &'a str>),
}

/// A [`RowWrite`] by reference.
type RowWriteRef<'a> = (&'a str, &'a str, Option<&'a Value>);

impl<'a> ProjectedReply<'a> {
    pub fn of(touched: &'a Result<Vec<(String, String)>, String>, state: &'a State) -> Self {
        ProjectedReply::Projected(match touched {
            Ok(rows) => Ok(rows
                .iter()
                .map(|(table, key)| (table.as_str(), key.as_str(), state.get(table, key)))
                .collect()),
            Err(reason) => Err(reason),
        })
    }
}

/// An event a handler or connector stated, by registered name and version.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StatedEvent {
    pub event_type: String,
    pub version: u32,
    pub payload: Value,
    #[serde(default)]
    pub effective_at: Option<ops_core::time::Timestamp>,
}

impl StatedEvent {
    /// What crosses the boundary of an event a piece stated.
    pub(crate) fn of(event: ops_core::contract::TypedEvent) -> Self {
        StatedEvent {
            event_type: event.event_type().to_owned(),
            version: event.version(),
            effective_at: event.effective_at(),
            payload: event.into_payload(),
        }
    }
}

/// A command a reaction proposes; the host builds its envelope.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProposedCommand {
    pub payload: Value,
    pub target_ref: String,
    pub dedupe_scope: ops_core::envelope::DedupeScope,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum StatedFact {
    Event {
        event: StatedEvent,
        native_id: String,
        occurred_at: ops_core::time::Timestamp,
        source_sequence: Option<u64>,
    },
    Deleted {
        native_id: String,
        occurred_at: ops_core::time::Timestamp,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Confined and listening.
    Ready,
    /// The kernel would not confine it: it serves nothing.
    Unconfined(String),
    Loaded,
    Projected(Result<Vec<RowWrite>, String>),
    /// The runner does not hold the state the call folds from: send the whole history.
    Stale,
    Decided(Result<Vec<StatedEvent>, String>),
    Target(Result<Option<String>, String>),
    Reacted(Result<Vec<ProposedCommand>, String>),
    Interpreted(Result<Vec<StatedFact>, Drift>),
    Streams(Vec<String>),
    Upcast(Vec<Result<(u32, Value), String>>),
    Checked(Vec<Result<(), String>>),
    Reconciled(Vec<Conflict>),
    /// The call named a piece this runner's pack does not have.
    Unknown(String),
    /// The piece panicked; the runner exits after this reply.
    Panicked(String),
}

/// Two facts (indices into the call's facts) about `subject` that conflict, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub subject: String,
    pub first: usize,
    pub second: usize,
    pub reason: String,
}

/// The conflicts a reconciler finds among `facts` (`(event type, source, payload)`): facts
/// are grouped by the subject it names, and each pair of one subject from different sources
/// is compared. Run where the reconciler's code runs: in a runner, or in process.
pub(crate) fn conflicts_among(
    reconciler: &dyn ops_core::connector::DynReconciler,
    facts: &[(&str, &str, &Value)],
) -> Vec<Conflict> {
    let mut by_subject: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (index, (event_type, _, payload)) in facts.iter().enumerate() {
        if let Some(subject) = reconciler.subject(event_type, payload) {
            by_subject.entry(subject).or_default().push(index);
        }
    }
    let mut conflicts = Vec::new();
    for (subject, indices) in by_subject {
        for (n, &first) in indices.iter().enumerate() {
            for &second in &indices[n + 1..] {
                if facts[first].1 == facts[second].1 {
                    continue;
                }
                if let Some(reason) = reconciler.conflict(facts[first].2, facts[second].2) {
                    conflicts.push(Conflict {
                        subject: subject.clone(),
                        first,
                        second,
                        reason,
                    });
                }
            }
        }
    }
    conflicts
}

pub(crate) fn write_frame<W: Write, T: Serialize>(out: &mut W, value: &T) -> io::Result<()> {
    buffer_frame(out, value)?;
    out.flush()
}

/// Writes a frame without flushing: it leaves with the next flush. Frames are MessagePack
/// with named fields: self-describing like JSON (a payload is a `serde_json::Value`, read
/// back as one), but lengths come before strings and numbers are binary, so reading a
/// page of envelopes does not scan every string for escapes (the runner's share of a
/// jailed catch-up is on its critical path).
///
/// The body is written into a buffer the thread keeps, as a runner writes a reply per
/// event: a fresh one each time cost an allocation and a free per event.
pub(crate) fn buffer_frame<W: Write, T: Serialize>(out: &mut W, value: &T) -> io::Result<()> {
    thread_local! {
        static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BODY.with_borrow_mut(|body| {
        body.clear();
        let written = rmp_serde::encode::write_named(body, value)
            .map_err(io::Error::other)
            .and_then(|()| u32::try_from(body.len()).map_err(io::Error::other))
            .and_then(|length| {
                out.write_all(&length.to_le_bytes())?;
                out.write_all(body)
            });
        forget_if_large(body, 0);
        written
    })
}

/// The most of a frame's buffer kept between frames.
const KEPT_BODY_BYTES: usize = 1 << 20;

/// Lets a buffer that held a large frame (a projection's rows, loaded) go, rather than
/// keep it for the small ones that follow; one the next frame needs (`needed` bytes) stays.
fn forget_if_large(body: &mut Vec<u8>, needed: usize) {
    if body.capacity() > KEPT_BODY_BYTES.max(needed) {
        *body = Vec::new();
    }
}

/// One frame's bytes; `None` at the end of the stream. A frame longer than `max` is an
/// error, so a lying peer cannot make the reader allocate without bound.
pub(crate) fn read_frame_bytes<R: Read>(input: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    Ok(read_frame_into(input, max, &mut body)?.then_some(body))
}

/// [`read_frame_bytes`] into `body`, replacing what it held; `false` at the end of the
/// stream. A runner reads every call into one buffer: a fresh one per call was a large
/// allocation each time, and glibc tidies its free lists before each.
pub(crate) fn read_frame_into<R: Read>(
    input: &mut R,
    max: usize,
    body: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut length = [0u8; 4];
    match input.read_exact(&mut length) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(error) => return Err(error),
    }
    let length = u32::from_le_bytes(length) as usize;
    if length > max {
        return Err(io::Error::other(format!(
            "a frame of {length} bytes is over the limit of {max}"
        )));
    }
    forget_if_large(body, length);
    body.clear();
    body.resize(length, 0);
    input.read_exact(body)?;
    Ok(true)
}

pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(body).map_err(|error| format!("an unreadable frame: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projected_reply_by_reference_reads_back_as_the_reply() {
        let mut state = State::default();
        state.put(
            "open",
            "INC-1",
            serde_json::json!({"title": "down", "sev": 1}),
        );
        let touched = Ok(vec![
            ("open".to_owned(), "INC-1".to_owned()),
            ("open".to_owned(), "INC-2".to_owned()),
        ]);
        let owned = Reply::Projected(Ok(vec![
            (
                "open".to_owned(),
                "INC-1".to_owned(),
                state.get("open", "INC-1").cloned(),
            ),
            ("open".to_owned(), "INC-2".to_owned(), None),
        ]));
        let refused = Err("no such incident".to_owned());
        for (by_reference, owned) in [
            (&touched, owned),
            (
                &refused,
                Reply::Projected(Err("no such incident".to_owned())),
            ),
        ] {
            let mut frames = (Vec::new(), Vec::new());
            buffer_frame(&mut frames.0, &ProjectedReply::of(by_reference, &state)).unwrap();
            buffer_frame(&mut frames.1, &owned).unwrap();
            assert_eq!(frames.0, frames.1);
        }
    }
}
