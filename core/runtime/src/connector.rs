//! Runs a pack's [`Connector`] against a source (A8).
//!
//! Per page of source records: each record is interpreted by the connector; facts become
//! envelopes whose ids derive from the source (`source_ref`, native id, payload,
//! `occurred_at`), so reading again from the same cursor gives the same events; records the
//! connector cannot read are quarantined with a [`SourceSchemaDrifted`] event and the rest
//! go on; deletes become [`SourceRecordDeleted`] tombstones. The page's events and the
//! cursor past it are stored in one transaction. Reads are rate-limited and transient
//! source errors retried with exponential backoff, per connector.

use crate::clock::WallClock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ops_core::connector::{Drift, DynConnector, Fact, SourceRecordDeleted, SourceSchemaDrifted};
use ops_core::contract::Contract;
use ops_core::envelope::{Causation, EventEnvelope, EventOrigin};
use ops_core::id::{CorrelationId, DerivedArtifactId};
use ops_core::time::Timestamp;
use serde_json::Value;

use crate::cursors::{CursorFence, CursorUpdate};
use crate::jail::PieceError;
use crate::leases::{self, Lease, Leases};
use crate::store::{AppendError, EventStore, ExpectedVersion, ReadError};

/// One record as the source holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// The cursor just past this record.
    pub cursor: String,
    /// Where it is, for people: `tickets/0002.jsonl:4`.
    pub location: String,
    /// The record, or why it is not JSON.
    pub content: Result<Value, String>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Worth retrying: the source is busy or briefly away.
    #[error("the source is unavailable: {0}")]
    Transient(String),
    #[error("the source cannot be read: {0}")]
    Permanent(String),
    /// The cursor points past anything this source has: from another source, or the future.
    #[error("cursor `{cursor}` is beyond this source: {reason}")]
    CursorBeyondEnd { cursor: String, reason: String },
    /// What the cursor was read from has changed, so reading on from it could skip records;
    /// the operator decides where to go on (`ops-host connectors reset`).
    #[error(
        "the source changed under cursor `{cursor}`: {reason}; nothing after it was read. Check the source, then move the cursor with `ops-host connectors reset`"
    )]
    Changed { cursor: String, reason: String },
}

/// Where a connector's records come from; the host configures one per connector. It is
/// the connector's only way to the outside world.
pub trait SourceReader: Send + Sync {
    /// Up to `limit` complete records of `stream` after `cursor` (`None`: from the start).
    fn read_after(
        &self,
        stream: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawRecord>, SourceError>;
}

/// Whether `name` is `[a-z][a-z0-9_-]*`: what a connector id and a stream name must be, so
/// neither can be a path.
pub fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A directory of JSON-lines export files: `ROOT/<stream>/*.jsonl`, read in file-name
/// order.
///
/// The cursor is `<file>:<line>@<before>.<read>`: the last record read, with digests of the
/// names of the files before `<file>` and of the bytes of `<file>` up to that line. Reading
/// on from a cursor checks both, so nothing is skipped silently: a file that now sorts
/// before the cursor's, or a cursor's file truncated, rewritten or deleted, is
/// [`SourceError::Changed`] (the sync stops and says so; `ops-host connectors reset` moves
/// the cursor on, with a receipt). A cursor of the older `<file>:<line>` form is read
/// without the checks.
///
/// A last line without its newline is still being written and is not read yet, unless a
/// later file exists (the writer has moved on): then it is a record. A UTF-8 byte-order mark
/// is not part of the first record; a line that is not UTF-8, or longer than the record
/// limit, is a record whose content is the reason, so it is quarantined, never altered.
pub struct JsonLinesDirectory {
    root: PathBuf,
    max_record_bytes: usize,
}

/// The longest record a source reads by default: 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

impl JsonLinesDirectory {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        JsonLinesDirectory {
            root: root.into(),
            max_record_bytes: MAX_RECORD_BYTES,
        }
    }

    /// Records longer than `bytes` are quarantined with their size, not parsed.
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// The folder of `stream`, which must be a name and, links resolved, lie inside the root.
    fn stream_dir(&self, stream: &str) -> Result<PathBuf, SourceError> {
        if !is_name(stream) {
            return Err(SourceError::Permanent(format!(
                "stream `{stream}` is not a name (`[a-z][a-z0-9_-]*`), so it is not read"
            )));
        }
        self.inside_root(&self.root.join(stream), SourceError::Permanent)
    }

    /// `path` with its links resolved, refused unless it lies inside the root (a link in the
    /// source that points elsewhere is not followed out of it); `unreadable` says how an I/O
    /// failure counts.
    fn inside_root(
        &self,
        path: &Path,
        unreadable: fn(String) -> SourceError,
    ) -> Result<PathBuf, SourceError> {
        let cannot = |what: &Path, error: std::io::Error| {
            unreadable(format!("cannot read {}: {error}", what.display()))
        };
        let root = self
            .root
            .canonicalize()
            .map_err(|e| cannot(&self.root, e))?;
        let resolved = path.canonicalize().map_err(|e| cannot(path, e))?;
        if resolved.starts_with(&root) {
            Ok(resolved)
        } else {
            Err(SourceError::Permanent(format!(
                "{} resolves to {}, outside the source folder {}; it is not read",
                path.display(),
                resolved.display(),
                root.display()
            )))
        }
    }

    fn files(&self, stream: &str) -> Result<Vec<String>, SourceError> {
        let dir = self.stream_dir(stream)?;
        let entries = std::fs::read_dir(&dir).map_err(|error| {
            SourceError::Permanent(format!("cannot list {}: {error}", dir.display()))
        })?;
        let mut files: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".jsonl"))
            .collect();
        files.sort();
        Ok(files)
    }

    fn read_file(&self, stream: &str, file: &str) -> Result<Vec<u8>, SourceError> {
        let path = self.inside_root(&self.root.join(stream).join(file), SourceError::Transient)?;
        std::fs::read(&path).map_err(|error| {
            SourceError::Transient(format!("cannot read {}: {error}", path.display()))
        })
    }

    /// Where a cursor points, checked against the source as it is now.
    fn resume<'c>(
        &self,
        stream: &str,
        files: &[String],
        cursor: &'c str,
    ) -> Result<Cursor<'c>, SourceError> {
        let parsed = Cursor::parse(cursor)?;
        let changed = |reason: String| SourceError::Changed {
            cursor: cursor.to_owned(),
            reason,
        };
        if !files.iter().any(|f| f == parsed.file) {
            return Err(SourceError::CursorBeyondEnd {
                cursor: cursor.to_owned(),
                reason: format!(
                    "`{stream}/{}` is not in the source; move the cursor with `ops-host connectors reset`",
                    parsed.file
                ),
            });
        }
        let Some((before, read)) = parsed.digests else {
            return Ok(parsed);
        };
        if names_digest(files, parsed.file) != before {
            return Err(changed(format!(
                "the files before `{stream}/{}` are not those read before it (a file was added or removed ahead of the cursor)",
                parsed.file
            )));
        }
        let text = self.read_file(stream, parsed.file)?;
        let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        if lines.len() < parsed.line || content_digest(&lines[..parsed.line]) != read {
            return Err(changed(format!(
                "`{stream}/{}` no longer begins with the {} lines read from it (truncated or rewritten)",
                parsed.file, parsed.line
            )));
        }
        Ok(parsed)
    }
}

/// A parsed cursor: the file, how many of its lines were read, and the digests that say
/// what the source looked like then.
struct Cursor<'c> {
    file: &'c str,
    line: usize,
    digests: Option<(&'c str, &'c str)>,
}

impl<'c> Cursor<'c> {
    fn parse(cursor: &'c str) -> Result<Self, SourceError> {
        let (place, digests) = match cursor.split_once('@') {
            Some((place, digests)) => (place, digests.split_once('.').map(Some).unwrap_or(None)),
            None => (cursor, None),
        };
        place
            .rsplit_once(':')
            .and_then(|(file, line)| {
                Some(Cursor {
                    file,
                    line: line.parse().ok()?,
                    digests,
                })
            })
            .ok_or_else(|| SourceError::CursorBeyondEnd {
                cursor: cursor.to_owned(),
                reason: "expected `<file>:<line>@<digests>`".to_owned(),
            })
    }
}

/// Whether `cursor` reads as a JSON-lines cursor (`<file>:<line>`, digests optional): what
/// an operator may give `connectors reset --to`.
pub fn is_cursor(cursor: &str) -> bool {
    Cursor::parse(cursor).is_ok_and(|parsed| !parsed.file.is_empty())
}

/// Where a cursor points, for people: `0002.jsonl:5` of `0002.jsonl:5@<digests>`.
pub fn cursor_place(cursor: &str) -> &str {
    cursor.split_once('@').map_or(cursor, |(place, _)| place)
}

/// A short digest of the names of the files that sort before `file`.
fn names_digest(files: &[String], file: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for name in files.iter().take_while(|name| name.as_str() < file) {
        hasher.update(name.as_bytes());
        hasher.update(b"\n");
    }
    short(hasher)
}

/// A short digest of the bytes of `lines`.
fn content_digest(lines: &[&[u8]]) -> String {
    let mut hasher = blake3::Hasher::new();
    for line in lines {
        hasher.update(line);
    }
    short(hasher)
}

fn short(hasher: blake3::Hasher) -> String {
    hasher.finalize().to_hex()[..16].to_owned()
}

/// `bytes` as text: its UTF-8 as it is, each byte that is not UTF-8 as `\\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

/// The UTF-8 byte-order mark some tools write at the start of a file.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

impl SourceReader for JsonLinesDirectory {
    fn read_after(
        &self,
        stream: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawRecord>, SourceError> {
        let files = self.files(stream)?;
        let start = cursor
            .map(|cursor| self.resume(stream, &files, cursor))
            .transpose()?;
        let mut records = Vec::new();
        for (index, file) in files.iter().enumerate() {
            if start.as_ref().is_some_and(|s| file.as_str() < s.file) {
                continue;
            }
            let text = self.read_file(stream, file)?;
            let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
            let skip = match &start {
                Some(s) if s.file == file => s.line,
                _ => 0,
            };
            if skip > lines.len() {
                return Err(SourceError::CursorBeyondEnd {
                    cursor: cursor.unwrap_or_default().to_owned(),
                    reason: format!("`{stream}/{file}` has {} lines, not {skip}", lines.len()),
                });
            }
            // A newer file means the writer has moved on: this file's last line is whole.
            let finished = index + 1 < files.len();
            let before = names_digest(&files, file);
            for (at, line) in lines.iter().enumerate().skip(skip) {
                if !line.ends_with(b"\n") && !finished {
                    break;
                }
                let number = at + 1;
                let mut bytes: &[u8] = line;
                if at == 0 {
                    bytes = bytes.strip_prefix(BYTE_ORDER_MARK).unwrap_or(bytes);
                }
                let bytes = bytes.trim_ascii_end();
                if bytes.is_empty() {
                    continue;
                }
                if records.len() == limit {
                    return Ok(records);
                }
                let (text, content) = self.record(bytes);
                records.push(RawRecord {
                    cursor: format!(
                        "{file}:{number}@{before}.{}",
                        content_digest(&lines[..number])
                    ),
                    location: format!("{stream}/{file}:{number}"),
                    content,
                    text,
                });
            }
        }
        Ok(records)
    }
}

impl JsonLinesDirectory {
    /// A record's text and content: JSON, or the reason it is not (too long, not UTF-8, not
    /// JSON). What is not UTF-8 is kept escaped (`\\xff`), so the text is never altered.
    fn record(&self, bytes: &[u8]) -> (String, Result<Value, String>) {
        if bytes.len() > self.max_record_bytes {
            return (
                format!("{} bytes", bytes.len()),
                Err(format!(
                    "a record of {} bytes is over this source's limit of {} bytes",
                    bytes.len(),
                    self.max_record_bytes
                )),
            );
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => (
                text.to_owned(),
                serde_json::from_str(text).map_err(|e| format!("not JSON: {e}")),
            ),
            Err(error) => (
                escaped(bytes),
                Err(format!(
                    "not UTF-8: invalid byte at offset {}",
                    error.valid_up_to()
                )),
            ),
        }
    }
}

/// Moves `connector_id`'s `stream` cursor to `to` (`None`: back to the start), with its
/// `SourceCursorReset` receipt in the same transaction, on a capability that allows
/// recording that receipt; a denial is receipted and moves nothing. `Ok(Err(reason))`:
/// denied.
pub async fn reset_cursor(
    store: &EventStore,
    authority: &dyn ops_core::capability::Authority,
    reset: ops_core::connector::SourceCursorReset,
    by: &crate::acting::Acting,
    capability_id: ops_core::id::CapabilityId,
) -> Result<Result<(), String>, AppendError> {
    use ops_core::contract::Contract;
    let subject = format!("connector:{}/{}", reset.connector_id, reset.stream);
    let resetting =
        crate::capability::step_of(&by.actor, ops_core::connector::SourceCursorReset::TYPE);
    let asked = crate::capability::Asked::by_user(by, subject.clone(), "core.connectors");
    if let Err(reason) =
        crate::capability::check_or_deny(store, authority, capability_id, &resetting, asked).await?
    {
        return Ok(Err(reason));
    }
    let origin = by.origin(
        "core.connectors",
        &format!(
            "{subject}:{}->{}",
            reset.from.as_deref().unwrap_or("start"),
            reset.to.as_deref().unwrap_or("start")
        ),
        capability_id,
    );
    let receipt = EventEnvelope::new(&reset, origin).expect("core events are plain JSON");
    let moved = reset.to.clone().map(|cursor| CursorUpdate {
        connector_id: reset.connector_id.clone(),
        stream: reset.stream.clone(),
        cursor,
        watermark: None,
        expected: CursorFence::Is(reset.from.clone()),
    });
    let cleared = crate::cursors::ClearCursor {
        connector_id: &reset.connector_id,
        stream: &reset.stream,
    };
    let side: &dyn crate::atomic::AtomicWrite = match &moved {
        Some(moved) => moved,
        None => &cleared,
    };
    store
        .append_with(&subject, ExpectedVersion::Any, &[receipt], &[side])
        .await?;
    Ok(Ok(()))
}

/// The longest a sync sleeps for a stream's rate limit: a longer wait ends the stream's
/// sync for now (the worker's other jobs run meanwhile), and a later sync reads on.
const LONGEST_RATE_WAIT: Duration = Duration::from_secs(1);

/// How a stream's source is read (A8): its rate limit and its retry model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadModel {
    /// At least this long between two reads of the stream's source: its rate limit.
    pub min_interval: Duration,
    /// Reads of one page before an error that is worth retrying is given up on.
    pub max_attempts: u32,
    /// The first retry waits this long; each next one twice as long, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ReadModel {
    fn default() -> Self {
        ReadModel {
            min_interval: Duration::ZERO,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl ReadModel {
    /// The wait before retry `retry` (from 1): the first backoff, doubled for each retry
    /// before it, at most the longest.
    pub fn backoff(&self, retry: u32) -> Duration {
        let doubled = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(doubled)
            .min(self.max_backoff)
    }
}

impl std::fmt::Display for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min_interval.is_zero() {
            write!(f, "no rate limit")?;
        } else {
            write!(
                f,
                "at most one read every {} ms",
                self.min_interval.as_millis()
            )?;
        }
        write!(
            f,
            "; a read that fails for now is tried {} times, waiting {} ms, doubled each time up to {} ms",
            self.max_attempts,
            self.initial_backoff.as_millis(),
            self.max_backoff.as_millis()
        )
    }
}

#[derive(Clone, Debug)]
pub struct ConnectorOptions {
    pub page_size: usize,
    /// How each stream is read, unless `streams` names it.
    pub reading: ReadModel,
    /// Streams read their own way, by name.
    pub streams: BTreeMap<String, ReadModel>,
    /// How far after its reading a fact may be dated; later ones are quarantined.
    pub max_future: Duration,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        ConnectorOptions {
            page_size: 200,
            reading: ReadModel::default(),
            streams: BTreeMap::new(),
            max_future: Duration::from_secs(86_400),
        }
    }
}

impl ConnectorOptions {
    /// How `stream` is read.
    pub fn reading_of(&self, stream: &str) -> ReadModel {
        self.streams.get(stream).copied().unwrap_or(self.reading)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("connector `{connector}`: {source}")]
    Jail {
        connector: &'static str,
        source: crate::jail::JailError,
    },
    #[error("connector `{connector}`: asking its code for its streams failed: {reason}")]
    Streams {
        connector: &'static str,
        reason: String,
    },
    #[error("connector id `{connector}` is not valid: use `[a-z][a-z0-9_-]*`")]
    Id { connector: &'static str },
    #[error(
        "connector `{connector}` names stream `{stream}`, which is not a name: a stream is `[a-z][a-z0-9_-]*`, so it cannot reach outside its source's folder"
    )]
    Stream {
        connector: &'static str,
        stream: String,
    },
    #[error(
        "connector `{connector}` has no stream `{stream}` to read its own way; its streams are: {streams}"
    )]
    UnknownStream {
        connector: &'static str,
        stream: String,
        streams: String,
    },
    #[error("connector `{connector}`, stream `{stream}`: {source}")]
    Source {
        connector: &'static str,
        stream: String,
        source: SourceError,
    },
    #[error(
        "connector `{connector}`, stream `{stream}`: storing the page failed, and neither its events nor its cursor were stored: {source}"
    )]
    Append {
        connector: &'static str,
        stream: String,
        source: Box<AppendError>,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("connector `{connector}`: quarantining a record failed: {source}")]
    Quarantine {
        connector: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "connector `{connector}`, stream `{stream}`: its lease could not be read or taken: {source}"
    )]
    Lease {
        connector: &'static str,
        stream: String,
        source: sqlx::Error,
    },
}

/// What retrying a stream's quarantined records came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retried {
    /// Records read now: where, and how many new events they stored.
    pub stored: Vec<(String, usize)>,
    /// Records still unreadable: where, and why.
    pub still_failing: Vec<(String, String)>,
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub records: usize,
    pub appended: usize,
    pub duplicates: usize,
    pub deleted: usize,
    pub quarantined: usize,
    pub retries: usize,
    /// How long reads waited for the stream's rate limit.
    pub rate_limited: Duration,
    /// The rate limit held the next read back this long, longer than a sync waits: the
    /// stream reads on at a later sync.
    pub held_back: Option<Duration>,
    /// Pages another worker stored first: this worker's copy was refused, and it went on
    /// from the stored cursor.
    pub superseded: usize,
    /// Another worker holds this stream's lease: this one read nothing.
    pub held_by: Option<String>,
    /// Another worker took the lease over mid-run: this one's last page was refused and it
    /// stopped.
    pub lease_lost: bool,
    pub cursor: Option<String>,
}

pub struct ConnectorRunner {
    store: EventStore,
    connector: &'static dyn DynConnector,
    reader: Box<dyn SourceReader>,
    options: ConnectorOptions,
    /// When each stream's source was last read, for its rate limit.
    last_read: BTreeMap<String, Instant>,
    leases: Option<Leases>,
    /// Told, page by page, how many records a sync has read (a source does not say how
    /// many it holds, so the total is what is read so far).
    progress: Option<crate::projection::Progress>,
}

/// How a page is stored.
#[derive(Clone, Copy)]
enum Fencing<'a> {
    /// Only if the stored cursor is still where this worker read it (else the worker goes
    /// on from the stored one), and, with a lease, while the lease is still this worker's.
    Cursor(Option<&'a Lease>),
    /// Whatever is stored (a backfill reads again on purpose).
    None,
}

/// The time of records whose own time cannot be read: they keep a deterministic id.
const UNKNOWN_TIME_US: i64 = 0;

impl ConnectorRunner {
    pub fn new(
        store: EventStore,
        connector: &'static dyn DynConnector,
        reader: Box<dyn SourceReader>,
        options: ConnectorOptions,
    ) -> Result<Self, ConnectorError> {
        let id = connector.id();
        if !is_name(id) {
            return Err(ConnectorError::Id { connector: id });
        }
        Ok(ConnectorRunner {
            progress: None,
            store,
            connector,
            reader,
            options,
            last_read: BTreeMap::new(),
            leases: None,
        })
    }

    /// Reads each stream only under its lease of `leases` (see [`crate::leases`]), each page
    /// fenced by it.
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// The service this connector records as: its actor, and the name of the capability
    /// the core grants it.
    fn service(&self) -> String {
        format!("connector.{}", self.connector.id())
    }

    /// Makes sure the capability this connector records on is granted, before its first
    /// record.
    async fn grant_capability(&self, stream: &str) -> Result<(), ConnectorError> {
        self.store
            .grant_service(&self.service())
            .await
            .map_err(|source| ConnectorError::Append {
                connector: self.connector.id(),
                stream: stream.to_owned(),
                source: Box::new(source),
            })?;
        Ok(())
    }

    pub fn lease_name(&self, stream: &str) -> String {
        format!("connector:{}/{stream}", self.connector.id())
    }

    /// Reports each page of a sync to `progress` (a backfill of a large source).
    pub fn with_progress(mut self, progress: crate::projection::Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Reads every stream from its stored cursor to the end of the source.
    pub async fn sync(&mut self) -> Result<Vec<(String, SyncReport)>, ConnectorError> {
        let mut reports = Vec::new();
        let streams = self
            .store
            .pack_code()
            .streams(self.connector)
            .map_err(|error| ConnectorError::Streams {
                connector: self.connector.id(),
                reason: error.to_string(),
            })?;
        // A stream read its own way that the connector does not have is a mistake in the
        // configuration, said rather than ignored.
        if let Some(unknown) = self
            .options
            .streams
            .keys()
            .find(|configured| !streams.contains(configured))
        {
            return Err(ConnectorError::UnknownStream {
                connector: self.connector.id(),
                stream: unknown.clone(),
                streams: streams.join(", "),
            });
        }
        for stream in streams {
            let report = self.sync_stream(&stream).await?;
            reports.push((stream, report));
        }
        Ok(reports)
    }

    /// Reads `stream` from its stored cursor to the end of the source. A stream is named by
    /// the pack, so its name is checked like an id before it reaches a source or a lease.
    pub async fn sync_stream(&mut self, stream: &str) -> Result<SyncReport, ConnectorError> {
        if !is_name(stream) {
            return Err(ConnectorError::Stream {
                connector: self.connector.id(),
                stream: stream.to_owned(),
            });
        }
        let held = leases::hold(self.leases.as_ref(), &self.lease_name(stream))
            .await
            .map_err(|source| self.lease_error(stream, source))?;
        let lease = match held {
            Ok(lease) => lease,
            Err(holder) => {
                return Ok(SyncReport {
                    held_by: Some(holder),
                    ..SyncReport::default()
                });
            }
        };
        let stored = self.store.cursor(self.connector.id(), stream).await?;
        let (cursor, watermark) = stored.map_or((None, None), |(c, w)| (Some(c), w));
        self.read_from(stream, cursor, watermark, Fencing::Cursor(lease.as_ref()))
            .await
    }

    /// Reads `stream` again from `cursor` (`None`: from the start), whatever is stored:
    /// what was stored before comes back as duplicates, with the same ids.
    pub async fn backfill(
        &mut self,
        stream: &str,
        cursor: Option<&str>,
    ) -> Result<SyncReport, ConnectorError> {
        self.read_from(stream, cursor.map(str::to_owned), None, Fencing::None)
            .await
    }

    /// Reads pages from `cursor`, each stored as `fencing` says.
    async fn read_from(
        &mut self,
        stream: &str,
        mut cursor: Option<String>,
        mut watermark: Option<Timestamp>,
        fencing: Fencing<'_>,
    ) -> Result<SyncReport, ConnectorError> {
        let mut report = SyncReport::default();
        loop {
            let records = self
                .read_page(stream, cursor.as_deref(), &mut report)
                .await?;
            let Some(last) = records.last() else {
                report.cursor = cursor;
                return Ok(report);
            };
            let next_cursor = last.cursor.clone();
            let mut events = Vec::new();
            for record in &records {
                report.records += 1;
                for event in self.record_events(stream, record, &mut report).await? {
                    watermark = watermark.max(Some(event.occurred_at));
                    events.push(event);
                }
            }
            let update = CursorUpdate {
                connector_id: self.connector.id().to_owned(),
                stream: stream.to_owned(),
                cursor: next_cursor.clone(),
                watermark,
                expected: match fencing {
                    Fencing::Cursor(_) => CursorFence::Is(cursor.clone()),
                    Fencing::None => CursorFence::Any,
                },
            };
            let lease = match fencing {
                Fencing::Cursor(lease) => lease,
                Fencing::None => None,
            };
            if !events.is_empty() {
                self.grant_capability(stream).await?;
            }
            let appended = self
                .store
                .append_under_lease(
                    &format!("connector/{}/{stream}", self.connector.id()),
                    ExpectedVersion::Any,
                    &events,
                    Some(&update),
                    lease,
                )
                .await;
            let outcome = match appended {
                Ok(outcome) => outcome,
                Err(AppendError::Fenced { what })
                    if leases::taken_over(self.leases.as_ref(), lease)
                        .await
                        .map_err(|source| self.lease_error(stream, source))? =>
                {
                    tracing::info!(%what, "another worker took this stream's lease; stopping");
                    report.lease_lost = true;
                    report.cursor = cursor;
                    return Ok(report);
                }
                Err(AppendError::Fenced { what }) => {
                    tracing::info!(%what, "another worker stored this page first; going on from its cursor");
                    report.superseded += 1;
                    let stored = self.store.cursor(self.connector.id(), stream).await?;
                    (cursor, watermark) = stored.map_or((None, None), |(c, w)| (Some(c), w));
                    continue;
                }
                Err(source) => return Err(self.append_error(stream, source)),
            };
            report.appended += outcome.appended.len();
            report.duplicates += outcome.duplicates.len();
            if let Some(progress) = &self.progress {
                progress(report.records as u64, report.records as u64);
            }
            cursor = Some(next_cursor);
        }
    }

    fn append_error(&self, stream: &str, source: AppendError) -> ConnectorError {
        ConnectorError::Append {
            connector: self.connector.id(),
            stream: stream.to_owned(),
            source: Box::new(source),
        }
    }

    fn lease_error(&self, stream: &str, source: sqlx::Error) -> ConnectorError {
        ConnectorError::Lease {
            connector: self.connector.id(),
            stream: stream.to_owned(),
            source,
        }
    }

    /// One page, rate-limited, with transient errors retried; empty, as at the end of the
    /// source, when the rate limit holds the next read back longer than a sync waits
    /// (`report.held_back`: the stream reads on at a later sync, from its stored cursor).
    async fn read_page(
        &mut self,
        stream: &str,
        cursor: Option<&str>,
        report: &mut SyncReport,
    ) -> Result<Vec<RawRecord>, ConnectorError> {
        let model = self.options.reading_of(stream);
        let mut attempt = 0;
        loop {
            if let Some(last) = self.last_read.get(stream) {
                let wait = model.min_interval.saturating_sub(last.elapsed());
                if wait > LONGEST_RATE_WAIT {
                    report.held_back = Some(wait);
                    return Ok(Vec::new());
                }
                if !wait.is_zero() {
                    report.rate_limited += wait;
                    tokio::time::sleep(wait).await;
                }
            }
            self.last_read.insert(stream.to_owned(), Instant::now());
            attempt += 1;
            match self
                .reader
                .read_after(stream, cursor, self.options.page_size)
            {
                Ok(records) => return Ok(records),
                Err(SourceError::Transient(reason)) if attempt < model.max_attempts => {
                    tracing::info!(connector = self.connector.id(), stream, attempt, %reason, "source unavailable; retrying");
                    report.retries += 1;
                    tokio::time::sleep(model.backoff(attempt)).await;
                }
                Err(source) => {
                    return Err(ConnectorError::Source {
                        connector: self.connector.id(),
                        stream: stream.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Reads again every record of `stream` the quarantine holds, with this build's
    /// connector: one it now reads is stored (its events, deduplicated by their ids) and
    /// released from the quarantine in the same transaction; one it still cannot read
    /// stays, with why. The stream's cursor does not move.
    pub async fn retry_quarantined(&self, stream: &str) -> Result<Retried, ConnectorError> {
        let origin = format!("connector:{}/{stream}", self.connector.id());
        let mut retried = Retried::default();
        let mut seen = std::collections::BTreeSet::new();
        for (location, _, text) in
            self.store
                .quarantined(&origin)
                .await
                .map_err(|source| ConnectorError::Quarantine {
                    connector: self.connector.id(),
                    source,
                })?
        {
            // One entry per reason: a record is retried once.
            if !seen.insert(location.clone()) {
                continue;
            }
            let record = RawRecord {
                cursor: String::new(),
                content: serde_json::from_str(&text).map_err(|error| format!("not JSON: {error}")),
                location,
                text,
            };
            let events = match self.events_of(stream, &record).await? {
                Ok(events) => events,
                Err(drift) => {
                    retried
                        .still_failing
                        .push((record.location, drift.to_string()));
                    continue;
                }
            };
            let release = crate::quarantine::Release {
                origin: &origin,
                reference: &record.location,
            };
            self.grant_capability(stream).await?;
            let outcome = self
                .store
                .append_with(
                    &format!("connector/{}/{stream}", self.connector.id()),
                    ExpectedVersion::Any,
                    &events,
                    &[&release],
                )
                .await
                .map_err(|source| self.append_error(stream, source))?;
            retried
                .stored
                .push((record.location, outcome.appended.len()));
        }
        Ok(retried)
    }

    /// The envelopes of one record: its facts, or a drift event after quarantining it.
    async fn record_events(
        &self,
        stream: &str,
        record: &RawRecord,
        report: &mut SyncReport,
    ) -> Result<Vec<EventEnvelope>, ConnectorError> {
        match self.events_of(stream, record).await? {
            Ok(events) => {
                report.deleted += events
                    .iter()
                    .filter(|e| e.event_type == SourceRecordDeleted::TYPE)
                    .count();
                Ok(events)
            }
            Err(drift) => {
                report.quarantined += 1;
                self.store
                    .quarantine(
                        &format!("connector:{}/{stream}", self.connector.id()),
                        &record.location,
                        &drift.to_string(),
                        &record.text,
                    )
                    .await
                    .map_err(|source| ConnectorError::Quarantine {
                        connector: self.connector.id(),
                        source,
                    })?;
                let drifted = SourceSchemaDrifted {
                    connector_id: self.connector.id().to_owned(),
                    stream: stream.to_owned(),
                    location: record.location.clone(),
                    pointer: drift.pointer.clone(),
                    reason: drift.reason.clone(),
                };
                let at = Timestamp::from_unix_micros(UNKNOWN_TIME_US).expect("the epoch");
                let origin = self.origin(stream, record, &record.location, at, None);
                Ok(vec![
                    EventEnvelope::new(&drifted, origin).expect("a drift event is plain JSON"),
                ])
            }
        }
    }

    /// A fact dated further after its reading than `max_future` is not believed: stored, it
    /// would sort after every real event and make each one after it late for every
    /// projection. It is quarantined with its record instead.
    fn plausible(&self, occurred_at: Timestamp) -> Result<(), Drift> {
        let latest = Timestamp::now()
            .unix_micros()
            .saturating_add(crate::clock::micros(self.options.max_future));
        if occurred_at.unix_micros() > latest {
            return Err(Drift::at(
                "",
                format!(
                    "it is dated {occurred_at}, more than {} s after it was read; a source's clock or data is wrong",
                    self.options.max_future.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// The envelopes of the facts the connector reads in `record`, or where it drifted. A
    /// fault of the connector's code is receipted and the record set aside like a drift,
    /// with the fault as its reason.
    async fn events_of(
        &self,
        stream: &str,
        record: &RawRecord,
    ) -> Result<Result<Vec<EventEnvelope>, Drift>, ConnectorError> {
        let value = match &record.content {
            Ok(value) => value,
            Err(reason) => return Ok(Err(Drift::at("", reason.clone()))),
        };
        let code = self.store.pack_code();
        let facts = match code.interpret(self.store.registry(), self.connector, stream, value) {
            Ok(facts) => facts,
            Err(PieceError::Refused(reason)) => Err(Drift::at("", reason)),
            Err(PieceError::Fault(fault)) => {
                let receipt = crate::faults::record(
                    &self.store,
                    self.connector.pack_id(),
                    &format!("connector {}", self.connector.id()),
                    crate::faults::Input::Record(&record.location),
                    &fault,
                    &mut crate::faults::FaultCount::default(),
                )
                .await
                .map_err(|source| self.append_error(stream, source))?;
                Err(Drift::at(
                    "",
                    format!(
                        "the connector's code faulted: {fault} (receipt {})",
                        receipt.event_id
                    ),
                ))
            }
            Err(PieceError::Jail(error)) => {
                return Err(ConnectorError::Jail {
                    connector: self.connector.id(),
                    source: error,
                });
            }
        };
        Ok(facts.and_then(|facts| self.envelopes(stream, record, facts)))
    }

    fn envelopes(
        &self,
        stream: &str,
        record: &RawRecord,
        facts: Vec<Fact>,
    ) -> Result<Vec<EventEnvelope>, Drift> {
        facts
            .into_iter()
            .map(|fact| self.envelope(stream, record, fact))
            .collect()
    }

    fn envelope(
        &self,
        stream: &str,
        record: &RawRecord,
        fact: Fact,
    ) -> Result<EventEnvelope, Drift> {
        match fact {
            Fact::Event(fact) => {
                self.plausible(fact.occurred_at())?;
                let event_type = fact.event().event_type();
                self.store
                    .registry()
                    .check_typed(fact.event())
                    .map_err(|reason| Drift::at("", reason))?;
                // Receipts, tombstones, drift and other core events are the core's to state.
                if event_type.starts_with("core.") {
                    return Err(Drift::at(
                        "",
                        format!("`{event_type}` is a core event; a connector cannot state it"),
                    ));
                }
                let pack_id = self.connector.pack_id();
                if !self.store.registry().visible_to(pack_id, event_type) {
                    return Err(Drift::at(
                        "",
                        format!(
                            "`{event_type}` is not visible to pack `{pack_id}`, so its connector cannot state it; a connector states its own pack's events or public events of the contract modules its pack lists in `#[pack(contracts = [...])]`"
                        ),
                    ));
                }
                let origin = self.origin(
                    stream,
                    record,
                    fact.native_id(),
                    fact.occurred_at(),
                    fact.source_sequence(),
                );
                let event = fact.into_event();
                // When it took effect, as the source says (A1); not part of its id or order.
                let origin = EventOrigin {
                    effective_at: event.effective_at(),
                    ..origin
                };
                let envelope = EventEnvelope::from_parts(
                    crate::CORE,
                    event_type.to_owned(),
                    event.version(),
                    event.into_payload(),
                    origin,
                );
                // Checked here, per record, so one bad record cannot fail the whole page.
                self.store
                    .check(&envelope)
                    .map_err(|error| Drift::at("", error.to_string()))?;
                Ok(envelope)
            }
            Fact::Deleted {
                native_id,
                occurred_at,
            } => {
                self.plausible(occurred_at)?;
                let tombstone = SourceRecordDeleted {
                    connector_id: self.connector.id().to_owned(),
                    stream: stream.to_owned(),
                    native_id: native_id.clone(),
                };
                let origin = self.origin(stream, record, &native_id, occurred_at, None);
                EventEnvelope::new(&tombstone, origin).map_err(|e| Drift::at("", e.to_string()))
            }
        }
    }

    /// Everything about an event but its payload, from the source alone: reading the same
    /// record again gives the same origin (except `ingested_at`, which is not in the id).
    fn origin(
        &self,
        stream: &str,
        record: &RawRecord,
        native_id: &str,
        occurred_at: Timestamp,
        source_sequence: Option<u64>,
    ) -> EventOrigin {
        let source_ref = format!("connector:{}/{stream}", self.connector.id());
        let canonical = "plain strings have a canonical form";
        EventOrigin {
            correlation_id: CorrelationId::of(&(self.connector.id(), stream, native_id))
                .expect(canonical),
            causation: Causation::DerivedArtifact(
                DerivedArtifactId::of(&(&source_ref, &record.location, &record.text))
                    .expect(canonical),
            ),
            source_ref,
            source_native_id: native_id.to_owned(),
            source_sequence,
            occurred_at,
            ingested_at: Timestamp::now(),
            effective_at: None,
            actor: crate::service_capability::actor(&self.service()),
            capability_id: crate::service_capability::of(&self.service()),
        }
    }
}

#[cfg(test)]
mod read_model {
    use super::ReadModel;
    use std::time::Duration;

    #[test]
    fn each_retry_waits_twice_as_long_up_to_the_longest_wait() {
        let model = ReadModel {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(300),
            ..ReadModel::default()
        };
        let waits: Vec<u128> = (1..=6)
            .map(|retry| model.backoff(retry).as_millis())
            .collect();
        assert_eq!(waits, [50, 100, 200, 300, 300, 300]);
        assert_eq!(model.backoff(u32::MAX), Duration::from_millis(300));
    }
}
