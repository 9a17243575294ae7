//! The event store: one API over SQLite and PostgreSQL.
//!
//! - `append` is idempotent on `event_id` (a stored event is reported as a duplicate, not
//!   stored again), atomic per batch, checks the stream's expected version, and validates
//!   every payload against its registered type before anything is written.
//! - `replay` reads in the canonical order `(occurred_at, source_ref, source_sequence?,
//!   event_id)` of A6, served by an index.
//! - `follow` reads in commit order and never skips an event. On PostgreSQL a row's
//!   sequence number is taken before its transaction commits, so a reader following by
//!   sequence alone can pass over a row that commits late. Each row therefore records its
//!   transaction id, and followers order by `(transaction id, seq)`. Which rows are final
//!   is decided per store, not per server: every append holds a shared advisory lock of
//!   its store (schema) for its transaction, taken before it is given a transaction id; a
//!   follower takes the same lock exclusively for an instant, so every append that began
//!   before has committed or rolled back, and reads the snapshot's `xmax` as its bound.
//!   Appends that begin later get ids at or above it. Rows below the bound are final, so
//!   every row that can still appear sorts after the cursor. Only this store's appends in
//!   flight delay a follower, for as long as they take; a transaction elsewhere on the
//!   server (an analytics session, `pg_dump`, another tenant's schema) delays none.
//! - Unknown event types (an uninstalled pack) read as raw envelopes, never as errors.

use crate::clock::WallClock;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use ops_core::envelope::{EnvelopeError, EventEnvelope};
use ops_core::id::{CorrelationId, EventId};
use ops_core::registry::Registry;
use ops_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::QueryBuilder;
use sqlx::Row;
use sqlx::error::ErrorKind;

use crate::atomic::{self, AtomicWrite};
use crate::custody::SubjectKeys;
use crate::db::{Db, Dialect, on_db};
use crate::migrate::{self, MigrationError};
use crate::service_capability;

/// The advisory lock of this store's appends, per schema: shared by every append for its
/// transaction (taken with the stream's version, [`STREAM_VERSION_APPENDING`]), exclusive
/// for an instant when a follower takes its bound.
const APPENDING_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock(28528, hashtext(current_schema()))";

/// A stream's version (0 for none), written so both backends read one index entry.
const STREAM_VERSION: &str = "SELECT COALESCE((SELECT stream_version FROM core_events WHERE stream_id = $1 \
     ORDER BY stream_version DESC LIMIT 1), 0)";

/// [`STREAM_VERSION`] with the appends' shared lock taken first, in one round trip.
const STREAM_VERSION_APPENDING: &str = "SELECT COALESCE((SELECT stream_version FROM core_events WHERE stream_id = $1 \
     ORDER BY stream_version DESC LIMIT 1), 0) FROM (SELECT pg_advisory_xact_lock_shared(28528, hashtext(current_schema()))) AS appending";

/// Rows per multi-row statement: well under SQLite's 32,766 and PostgreSQL's 65,535
/// bind parameters.
const ROWS_PER_STATEMENT: usize = 500;
/// Attempts when a concurrent writer took the same stream version first.
const APPEND_ATTEMPTS: usize = 8;

/// A place in commit order; see the module docs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    pub tx_order: i64,
    pub seq: i64,
}

/// The canonical sort key of A6; `source_sequence` absent sorts as -1, before any present.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CanonicalKey {
    pub occurred_at_us: i64,
    pub source_ref: String,
    pub source_sequence_key: i64,
    pub event_id: String,
}

impl CanonicalKey {
    /// A key below every event's: where a replay from the start begins.
    fn before_all() -> Self {
        CanonicalKey {
            occurred_at_us: i64::MIN,
            source_ref: String::new(),
            source_sequence_key: i64::MIN,
            event_id: String::new(),
        }
    }

    pub fn of(envelope: &EventEnvelope) -> Self {
        CanonicalKey {
            occurred_at_us: envelope.occurred_at.unix_micros(),
            source_ref: envelope.source_ref.clone(),
            source_sequence_key: Self::source_sequence_key(envelope),
            event_id: envelope.event_id.to_string(),
        }
    }

    /// `source_sequence`, or -1 when absent.
    pub fn source_sequence_key(envelope: &EventEnvelope) -> i64 {
        envelope
            .source_sequence
            .map_or(-1, |sequence| i64::try_from(sequence).unwrap_or(i64::MAX))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    Any,
    /// The stream has no event yet.
    NoStream,
    /// The stream's last event has this version.
    Exact(i64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub position: LogPosition,
    pub stream_id: String,
    pub stream_version: i64,
    pub recorded_at: Timestamp,
    pub envelope: EventEnvelope,
}

/// A row whose envelope cannot be decoded (written by another build, or damaged).
#[derive(Clone, Debug, PartialEq)]
pub struct CorruptEvent {
    pub position: LogPosition,
    /// Which row: `seq <n>` (its envelope, and so its event id, cannot be read).
    pub reference: String,
    pub reason: String,
    pub raw: String,
}

/// The payload of a stored event as this build reads it: owned, or, from
/// [`EventStore::current_sealed_payloads`], borrowed from its envelope when it is stored at
/// the current version already (`Cow<Value>`: most are, and a copy of each cost a replay
/// as much as decoding it).
#[derive(Clone, Debug, PartialEq)]
pub enum CurrentPayload<Payload = Value> {
    /// Upcast to the current version of its type.
    Current { version: u32, payload: Payload },
    /// No linked crate declares this type (say, its pack was uninstalled).
    UnknownType,
    /// Declared, but the stored payload does not read as it.
    Unreadable { reason: String },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendOutcome {
    pub appended: Vec<EventId>,
    /// Already stored (or twice in the batch): not stored again.
    pub duplicates: Vec<EventId>,
    /// The stream's version after the append.
    pub stream_version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(
        "event {index} of the batch ({event_type} v{version}) is not a registered type of this build; declare it with `#[event]` in a linked crate"
    )]
    UnknownType {
        index: usize,
        event_type: String,
        version: u32,
    },
    #[error(
        "event {index} of the batch ({event_type} v{version}) has an invalid payload: {reason}"
    )]
    InvalidPayload {
        index: usize,
        event_type: String,
        version: u32,
        reason: String,
    },
    #[error("event {index} of the batch has a forged or damaged envelope: {source}")]
    Envelope { index: usize, source: EnvelopeError },
    #[error("event {index} of the batch: source_sequence {sequence} is above {max}", max = i64::MAX)]
    SourceSequence { index: usize, sequence: u64 },
    #[error(
        "`{stream}` is at version {actual}, but the append expected {expected:?}; nothing was written"
    )]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        actual: i64,
    },
    #[error(
        "other writers kept storing the same events during {attempts} attempts; nothing was written, try again"
    )]
    Contended { attempts: usize },
    #[error("{what}; nothing was written")]
    Fenced { what: String },
    #[error("the data subject keys cannot be used; nothing was written: {0}")]
    Keys(String),
    #[error("the database refused the append; nothing was written: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the event at {reference} ({position:?}) cannot be decoded: {reason}")]
    Corrupt {
        position: LogPosition,
        reference: String,
        reason: String,
    },
    #[error("reading the event log failed: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error(
        "the store is not set up for this build: migrations {} are not applied; a command that only reads changes nothing, so run one that writes (`ops-host run`) first",
        pending.join(", ")
    )]
    NotMigrated { pending: Vec<&'static str> },
    #[error("reading the store's migrations failed: {0}")]
    Ledger(sqlx::Error),
}

/// What `follow` found after a position.
#[derive(Debug, Default)]
pub struct FollowBatch {
    pub events: Vec<StoredEvent>,
    pub corrupt: Vec<CorruptEvent>,
    /// Where the next `follow` starts.
    pub next: LogPosition,
}

#[derive(Clone)]
pub struct EventStore {
    db: Db,
    registry: &'static Registry,
    /// When set, personal data is sealed per subject on the way in (see `shredding`).
    keys: Option<Arc<SubjectKeys>>,
    /// Where the packs' code that reads this log runs (see `jail`).
    code: crate::jail::PackCode,
    /// The services this handle (and its clones) saw granted their capability: each asks
    /// the log once, not before every receipt.
    granted_services: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// On SQLite, pages of events are read through its C API (see `db::SqliteReads`).
    sqlite_reads: Option<Arc<crate::db::SqliteReads>>,
    /// On SQLite, appends that are one statement are written through its C API when they
    /// can be (see `db::SqliteWrites`).
    sqlite_writes: Option<Arc<crate::db::SqliteWrites>>,
}

/// Read with every event; each column costs time per row, so only what decoding needs (the
/// event id is in the envelope).
const COLUMNS: &str =
    "seq, tx_order, stream_id, stream_version, recorded_at_us, envelope, stream_bucket";

/// A value bound to a read query.
enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// A stream as a number: 63 bits of blake3 of its id, the same on every host and build
/// (stored with each event as `stream_bucket`).
pub fn stream_bucket(stream_id: &str) -> i64 {
    let digest = blake3::hash(stream_id.as_bytes());
    let word = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
    (word >> 1) as i64
}

/// A share of the streams: those whose bucket is `index` modulo `count`. `0 of 1` is every
/// stream. A projection split by stream runs one runner per share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

impl Partition {
    pub const WHOLE: Partition = Partition { index: 0, count: 1 };

    pub fn is_split(self) -> bool {
        self.count > 1
    }

    /// Whether events of `stream_id` are in this share.
    pub fn holds(self, stream_id: &str) -> bool {
        !self.is_split() || self.holds_bucket(stream_bucket(stream_id))
    }

    fn holds_bucket(self, bucket: i64) -> bool {
        bucket % i64::from(self.count) == i64::from(self.index)
    }

    /// Whether a row read is in this share: by its stored bucket, or (stored before
    /// buckets were) by its stream id.
    fn holds_row(self, row: &RawRow) -> bool {
        match row.stream_bucket {
            _ if !self.is_split() => true,
            Some(bucket) => self.holds_bucket(bucket),
            None => self.holds(&row.stream_id),
        }
    }

    /// The condition a row of `core_events` in this share meets (events stored before
    /// buckets were pass it, for [`Partition::holds`] to decide): numbers this type holds,
    /// not text, so it is written into the statement. Written as a `CASE`, not as
    /// `stream_bucket IS NULL OR …`: PostgreSQL's planner takes that for a condition
    /// almost no row meets (its default for `x % n = k`), and once the log had statistics
    /// it read the whole table and sorted it for every page, a catch-up quadratic in the
    /// log. A `CASE` it takes for half the rows, so a page walks the index in its order
    /// and passes over the other shares' rows
    /// (`on_postgres_a_shares_page_walks_an_index_once_the_log_has_statistics`).
    fn condition(self) -> String {
        if self.is_split() {
            format!(
                " AND CASE WHEN stream_bucket IS NULL THEN TRUE ELSE stream_bucket % {} = {} END",
                self.count, self.index
            )
        } else {
            String::new()
        }
    }
}

/// A page of [`EventStore::replay_of`].
#[derive(Debug, Default)]
pub struct ReplayPage {
    pub events: Vec<StoredEvent>,
    /// The key the next page starts after; `None` when this one read nothing.
    pub next: Option<CanonicalKey>,
    /// Rows read, kept or not.
    pub read: usize,
}

/// A row as read, before its envelope is decoded.
#[derive(Clone)]
struct RawRow {
    position: LogPosition,
    stream_id: String,
    stream_version: i64,
    recorded_at_us: i64,
    envelope: String,
    /// `None` for rows stored before buckets were.
    stream_bucket: Option<i64>,
}

impl EventStore {
    /// Opens the store on `db`, bringing core's tables up to date.
    pub async fn open(db: Db, registry: &'static Registry) -> Result<Self, OpenError> {
        migrate::run_core(&db).await?;
        Ok(Self::on(db, registry))
    }

    /// Grants `service` (an actor id) the capability it records on, unless the log has
    /// it: once per store, whoever asks first (see `service_capability`).
    pub async fn grant_service(
        &self,
        service: &str,
    ) -> Result<ops_core::id::CapabilityId, AppendError> {
        let capability_id = service_capability::of(service);
        let known = self
            .granted_services
            .lock()
            .expect("never poisoned")
            .contains(service);
        if known {
            return Ok(capability_id);
        }
        let stream = service_capability::stream(capability_id);
        if self.stream_version(&stream).await? == 0 {
            // The same envelope from every writer: one that lost the race is a duplicate.
            self.append(
                &stream,
                ExpectedVersion::Any,
                &[service_capability::grant(service)],
            )
            .await?;
        }
        self.granted_services
            .lock()
            .expect("never poisoned")
            .insert(service.to_owned());
        Ok(capability_id)
    }

    fn on(db: Db, registry: &'static Registry) -> Self {
        EventStore {
            sqlite_reads: crate::db::SqliteReads::of(&db),
            sqlite_writes: crate::db::SqliteWrites::of(&db),
            db,
            registry,
            keys: None,
            code: crate::jail::PackCode::default(),
            granted_services: Arc::default(),
        }
    }

    /// Opens a store that is set up already, for commands that only read: one whose core
    /// migrations are not all applied is refused, and nothing is created or migrated.
    pub async fn open_existing(db: Db, registry: &'static Registry) -> Result<Self, OpenError> {
        migrate::refuse_newer_core(&db).await?;
        let pending = migrate::core_pending(&db)
            .await
            .map_err(OpenError::Ledger)?;
        if !pending.is_empty() {
            return Err(OpenError::NotMigrated { pending });
        }
        Ok(Self::on(db, registry))
    }

    /// Runs pack code through `code` from now on: every runner of projections, handlers,
    /// reactions and connectors over this store calls its pieces that way.
    pub fn with_pack_code(mut self, code: crate::jail::PackCode) -> Self {
        self.code = code;
        self
    }

    pub fn pack_code(&self) -> &crate::jail::PackCode {
        &self.code
    }

    pub fn subject_keys(&self) -> Option<&Arc<SubjectKeys>> {
        self.keys.as_ref()
    }

    /// Seals personal data per subject from now on, with keys kept in `keys`.
    pub fn with_subject_keys(mut self, keys: Arc<SubjectKeys>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// `envelope` with its personal data sealed, and its hash and id recomputed over the
    /// sealed payload; `None` when there is nothing to seal.
    fn sealed_event(&self, envelope: &EventEnvelope) -> Result<Option<EventEnvelope>, AppendError> {
        let payload = self.sealed_payload(
            &envelope.event_type,
            envelope.payload_schema_version,
            &envelope.payload,
        )?;
        Ok(payload.map(|payload| {
            EventEnvelope::from_parts(
                crate::CORE,
                envelope.event_type.clone(),
                envelope.payload_schema_version,
                payload,
                envelope.origin(),
            )
        }))
    }

    /// The batch with personal data sealed, or `None` when no event changes: the one place
    /// events are sealed.
    pub(crate) fn seal_all(
        &self,
        events: &[EventEnvelope],
    ) -> Result<Option<Vec<EventEnvelope>>, AppendError> {
        let mut sealed: Option<Vec<EventEnvelope>> = None;
        for (index, event) in events.iter().enumerate() {
            if let Some(event) = self.sealed_event(event)? {
                sealed.get_or_insert_with(|| events.to_vec())[index] = event;
            }
        }
        Ok(sealed)
    }

    /// `payload` of `type_name` with its personal data sealed; `None` when nothing in it
    /// is sealed now (no keys, no sensitive field, or sealed already), so callers copy only
    /// what changed.
    pub fn sealed_payload(
        &self,
        type_name: &str,
        version: u32,
        payload: &Value,
    ) -> Result<Option<Value>, AppendError> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        if !self.registry.has_sensitive_fields(type_name, version) {
            return Ok(None);
        }
        let schema = self
            .registry
            .schema(type_name, version)
            .expect("a type with sensitive fields has a schema");
        let mut sealed = payload.clone();
        let changed = keys
            .seal(&mut sealed, schema)
            .map_err(|error| AppendError::Keys(error.to_string()))?;
        Ok(changed.then_some(sealed))
    }

    /// `payload` of `type_name` with its sealed fields opened (or `[shredded]`); borrowed
    /// as it is when the store seals nothing.
    pub fn opened<'a>(&self, type_name: &str, version: u32, payload: &'a Value) -> Cow<'a, Value> {
        if self.keys.is_none() || !self.registry.has_sensitive_fields(type_name, version) {
            return Cow::Borrowed(payload);
        }
        let mut opened = payload.clone();
        self.open_payload(type_name, version, &mut opened);
        Cow::Owned(opened)
    }

    /// A stored payload of `type_name` with its sealed fields opened (or `[shredded]`).
    pub fn open_payload(&self, type_name: &str, version: u32, payload: &mut Value) {
        if let Some(keys) = &self.keys
            && self.registry.has_sensitive_fields(type_name, version)
            && let Some(schema) = self.registry.schema(type_name, version)
        {
            keys.open(payload, schema);
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn registry(&self) -> &'static Registry {
        self.registry
    }

    /// Appends `events` to `stream` as one transaction: all of them, or none.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventEnvelope],
    ) -> Result<AppendOutcome, AppendError> {
        self.append_with_cursor(stream, expected, events, None)
            .await
    }

    /// As [`EventStore::append`], and moves a connector's cursor in the same transaction,
    /// so a batch and the cursor that led past it are stored together or not at all.
    pub async fn append_with_cursor(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventEnvelope],
        cursor: Option<&crate::cursors::CursorUpdate>,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_under_lease(stream, expected, events, cursor, None)
            .await
    }

    /// As [`EventStore::append_with_cursor`], and only while `lease`, if given, is still
    /// its worker's (the write renews it): what a runner under a lease stores.
    pub(crate) async fn append_under_lease(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventEnvelope],
        cursor: Option<&crate::cursors::CursorUpdate>,
        lease: Option<&crate::leases::Lease>,
    ) -> Result<AppendOutcome, AppendError> {
        let fence = lease.map(crate::leases::Lease::fence);
        let sides: Vec<&dyn AtomicWrite> = cursor
            .map(|cursor| cursor as &dyn AtomicWrite)
            .into_iter()
            .chain(fence.as_ref().map(|fence| fence as &dyn AtomicWrite))
            .collect();
        self.append_with(stream, expected, events, &sides).await
    }

    /// Appends `events` and writes `sides` in the same transaction.
    pub(crate) async fn append_with(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventEnvelope],
        sides: &[&dyn AtomicWrite],
    ) -> Result<AppendOutcome, AppendError> {
        // Copied only when something in the batch is sealed now (most types hold no
        // personal data).
        let sealed = self.seal_all(events)?;
        self.append_sealed_with(stream, expected, sealed.as_deref().unwrap_or(events), sides)
            .await
    }

    /// As [`EventStore::append_with`], for a batch its caller sealed already with
    /// [`EventStore::seal_all`] (the bus does, to take the events' ids): sealed once.
    pub(crate) async fn append_sealed_with(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventEnvelope],
        sides: &[&dyn AtomicWrite],
    ) -> Result<AppendOutcome, AppendError> {
        let rows = self.validate(events)?;
        let mut attempt = 0;
        // Most batches are new: insert them straight away, and only when one turns out to
        // be stored already, start again looking every id up first.
        let mut look_up_stored = false;
        loop {
            attempt += 1;
            match self
                .try_append(stream, expected, events, &rows, sides, look_up_stored)
                .await
            {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) if attempt < APPEND_ATTEMPTS => look_up_stored = true,
                Ok(None) => return Err(AppendError::Contended { attempts: attempt }),
                Err(AppendError::Database(sqlx::Error::Database(error)))
                    if error.kind() == ErrorKind::UniqueViolation && attempt < APPEND_ATTEMPTS =>
                {
                    // Another writer stored one of these events or took the next stream
                    // version first; the next attempt sees its rows.
                    tracing::debug!(stream, attempt, "append raced another writer; retrying");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Checks every event before anything is written; returns each envelope's JSON text.
    fn validate(&self, events: &[EventEnvelope]) -> Result<Vec<String>, AppendError> {
        self.check_all(events)?;
        Ok(events
            .iter()
            .map(|envelope| serde_json::to_string(envelope).expect("an envelope is plain JSON"))
            .collect())
    }

    /// What `append` checks of each event, for callers that want to set one bad event
    /// aside (a connector's record) instead of failing its whole batch.
    pub fn check(&self, envelope: &EventEnvelope) -> Result<(), AppendError> {
        self.check_all(std::slice::from_ref(envelope))
    }

    /// Each envelope's own checks, then whether each payload decodes as its type: through
    /// the pack code (the decoding of a pack's or contract's type is its crate's code).
    fn check_all(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        for (index, envelope) in events.iter().enumerate() {
            self.check_at(index, envelope)?;
        }
        let payloads: Vec<(&str, u32, &Value)> = events
            .iter()
            .map(|e| (e.event_type.as_str(), e.payload_schema_version, &e.payload))
            .collect();
        let checked = self.code.check_payloads(self.registry, &payloads);
        match checked
            .into_iter()
            .enumerate()
            .find_map(|(index, c)| Some(index).zip(c.err()))
        {
            Some((index, reason)) => Err(AppendError::InvalidPayload {
                index,
                event_type: events[index].event_type.clone(),
                version: events[index].payload_schema_version,
                reason,
            }),
            None => Ok(()),
        }
    }

    /// An envelope's checks that run no pack code: its ids, its sequence, its type.
    fn check_at(&self, index: usize, envelope: &EventEnvelope) -> Result<(), AppendError> {
        envelope
            .verify()
            .map_err(|source| AppendError::Envelope { index, source })?;
        if let Some(sequence) = envelope.source_sequence
            && i64::try_from(sequence).is_err()
        {
            return Err(AppendError::SourceSequence { index, sequence });
        }
        match self
            .registry
            .get(&envelope.event_type, envelope.payload_schema_version)
        {
            Some(descriptor) if descriptor.kind == ops_core::contract::Kind::Event => Ok(()),
            _ => Err(AppendError::UnknownType {
                index,
                event_type: envelope.event_type.clone(),
                version: envelope.payload_schema_version,
            }),
        }
    }

    async fn try_append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventEnvelope],
        rows: &[String],
        sides: &[&dyn AtomicWrite],
        look_up_stored: bool,
    ) -> Result<Option<AppendOutcome>, AppendError> {
        let dialect = self.db.dialect();
        let recorded_at_us = Timestamp::now().unix_micros();
        if let (Db::Sqlite(pool), [], false, 1..=ROWS_PER_STATEMENT) =
            (&self.db, sides, look_up_stored, events.len())
        {
            let direct = self.sqlite_writes.as_deref();
            return append_in_one_statement(
                pool,
                direct,
                stream,
                expected,
                events,
                rows,
                recorded_at_us,
            )
            .await;
        }
        on_db!(&self.db, pool => {
            let mut tx = match dialect {
                // Take the write lock now, not on the first insert: a deferred upgrade
                // from reader to writer fails at once under contention.
                Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
                Dialect::Postgres => pool.begin().await?,
            };
            // The stream's version now, read through one index entry; on PostgreSQL in the
            // same round trip as the appends' shared lock, taken before any write gives this
            // transaction its id (see the module docs).
            let current: i64 = sqlx::query_scalar(match dialect {
                Dialect::Sqlite => STREAM_VERSION,
                Dialect::Postgres => STREAM_VERSION_APPENDING,
            })
            .bind(stream)
            .fetch_one(&mut *tx)
            .await?;
            // A lease's fence renews it by the database's clock (`Db::now_us`).
            let clock_us = if dialect == Dialect::Postgres
                && sides.iter().any(|side| side.on_the_database_clock())
            {
                sqlx::query_scalar(crate::db::POSTGRES_NOW_US).fetch_one(&mut *tx).await?
            } else {
                recorded_at_us
            };
            let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
            let mut stored: BTreeSet<String> = BTreeSet::new();
            for chunk in ids.chunks(ROWS_PER_STATEMENT).filter(|_| look_up_stored) {
                let mut query = QueryBuilder::new("SELECT event_id FROM core_events WHERE event_id IN (");
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(id.as_str());
                }
                query.push(")");
                for row in query.build().fetch_all(&mut *tx).await? {
                    stored.insert(row.try_get::<String, _>(0)?);
                }
            }
            let mut outcome = AppendOutcome::default();
            // Without the look-up every event is taken as new: one stored already, or twice
            // in the batch, makes the insert below come up short, and the retry looks.
            let fresh: Vec<usize> = if look_up_stored {
                let mut fresh = Vec::new();
                for (index, id) in ids.iter().enumerate() {
                    if stored.insert(id.clone()) {
                        fresh.push(index);
                        outcome.appended.push(events[index].event_id);
                    } else {
                        outcome.duplicates.push(events[index].event_id);
                    }
                }
                fresh
            } else {
                outcome.appended = events.iter().map(|e| e.event_id).collect();
                (0..events.len()).collect()
            };
            outcome.stream_version = current;
            if fresh.is_empty() {
                for side in sides {
                    let done = atomic::bound(side.statement(), &side.binds(), clock_us).execute(&mut *tx).await?;
                    side.check(done.rows_affected())
                        .map_err(|fenced| AppendError::Fenced { what: fenced.what })?;
                }
                tx.commit().await?;
                return Ok(Some(outcome));
            }
            let matches = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current == 0,
                ExpectedVersion::Exact(version) => current == version,
            };
            // Without the look-up, a mismatch may only mean the batch is a retry of one
            // already stored: look before calling it a conflict.
            if !matches && !look_up_stored {
                return Ok(None);
            }
            if !matches {
                return Err(AppendError::Conflict {
                    stream: stream.to_owned(),
                    expected,
                    actual: current,
                });
            }
            let bucket = stream_bucket(stream);
            let correlations = correlation_texts(events);
            for (chunk_index, chunk) in fresh.chunks(ROWS_PER_STATEMENT).enumerate() {
                let mut query = QueryBuilder::new(
                    "INSERT INTO core_events (tx_order, event_id, stream_id, stream_version, event_type, \
                     payload_schema_version, occurred_at_us, source_ref, source_sequence_key, \
                     correlation_id, recorded_at_us, envelope, stream_bucket) ",
                );
                query.push_values(chunk.iter().enumerate(), |mut row, (offset, &index)| {
                    let envelope = &events[index];
                    let version = current + (chunk_index * ROWS_PER_STATEMENT + offset) as i64 + 1;
                    row.push(dialect.tx_order_expr())
                        .push_bind(ids[index].as_str())
                        .push_bind(stream)
                        .push_bind(version);
                    for column in envelope_columns(envelope, &correlations[index]) {
                        match column {
                            atomic::Bind::Text(text) => row.push_bind(text),
                            atomic::Bind::Int(value) => row.push_bind(value),
                            _ => unreachable!("an envelope's columns are text and numbers"),
                        };
                    }
                    row.push_bind(recorded_at_us)
                        .push_bind(rows[index].as_str())
                        .push_bind(bucket);
                });
                query.push(" ON CONFLICT (event_id) DO NOTHING");
                let inserted = query.build().execute(&mut *tx).await?.rows_affected();
                if inserted != chunk.len() as u64 {
                    // Some were stored already; dropping the transaction rolls it back.
                    return Ok(None);
                }
            }
            for side in sides {
                let done = atomic::bound(side.statement(), &side.binds(), clock_us).execute(&mut *tx).await?;
                side.check(done.rows_affected())
                        .map_err(|fenced| AppendError::Fenced { what: fenced.what })?;
            }
            tx.commit().await?;
            outcome.stream_version = current + fresh.len() as i64;
            Ok(Some(outcome))
        })
    }

    /// Every event of `stream`, in stream order.
    pub async fn read_stream(&self, stream: &str) -> Result<Vec<StoredEvent>, ReadError> {
        self.read_stream_after(stream, 0).await
    }

    /// The events of `stream` after its version `version`, in stream order: what a state
    /// folded up to `version` has not seen yet.
    pub async fn read_stream_after(
        &self,
        stream: &str,
        version: i64,
    ) -> Result<Vec<StoredEvent>, ReadError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM core_events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        );
        decode_all(
            self.fetch(&sql, &[Bind::Text(stream), Bind::Int(version)])
                .await?,
        )
    }

    /// How many events of `event_type` the log holds: it grows with every one committed
    /// (a position would not: on PostgreSQL a later commit can hold an earlier `seq`).
    pub async fn count_of_type(&self, event_type: &str) -> Result<i64, ReadError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM core_events WHERE event_type = $1")
                .bind(event_type)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Every event of a type, in commit order.
    pub async fn read_by_type(&self, event_type: &str) -> Result<Vec<StoredEvent>, ReadError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM core_events WHERE event_type = $1 ORDER BY tx_order, seq"
        );
        decode_all(self.fetch(&sql, &[Bind::Text(event_type)]).await?)
    }

    /// Every event of any of `event_types`, in commit order: what a service folds whose
    /// state several event types make.
    pub async fn read_by_types(&self, event_types: &[&str]) -> Result<Vec<StoredEvent>, ReadError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM core_events WHERE event_type IN ({}) ORDER BY tx_order, seq",
            crate::db::numbered_placeholders(1, event_types.len())
        );
        let binds: Vec<Bind<'_>> = event_types.iter().map(|t| Bind::Text(t)).collect();
        decode_all(self.fetch(&sql, &binds).await?)
    }

    /// When the first event of any of `event_types` after `after` (in commit order, final
    /// rows only) was recorded: how long the oldest event a follower of those types has
    /// not seen has waited. `None` when there is none.
    pub async fn first_recorded_after(
        &self,
        after: LogPosition,
        event_types: &[&str],
        partition: Partition,
    ) -> Result<Option<Timestamp>, ReadError> {
        if event_types.is_empty() {
            return Ok(None);
        }
        // Rows stored before buckets pass the condition; the first few are looked at, and
        // an old row of another partition found alone counts (a lag reported too high,
        // never one hidden).
        let sql = format!(
            "SELECT {COLUMNS} FROM core_events WHERE (tx_order, seq) > ($1, $2) AND tx_order < $3 \
             AND event_type IN ({}){} ORDER BY tx_order, seq LIMIT 50",
            crate::db::numbered_placeholders(4, event_types.len()),
            partition.condition()
        );
        let bound = self.final_bound().await?;
        let binds: Vec<Bind<'_>> = [after.tx_order, after.seq, bound]
            .into_iter()
            .map(Bind::Int)
            .chain(event_types.iter().map(|t| Bind::Text(t)))
            .collect();
        let rows = self.fetch(&sql, &binds).await?;
        let first = rows
            .iter()
            .find(|row| partition.holds_row(row))
            .or(rows.first());
        Ok(first.and_then(|row| Timestamp::from_unix_micros(row.recorded_at_us)))
    }

    /// Every event of one correlation, in commit order.
    pub async fn read_by_correlation(
        &self,
        correlation: &CorrelationId,
    ) -> Result<Vec<StoredEvent>, ReadError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM core_events WHERE correlation_id = $1 ORDER BY tx_order, seq"
        );
        decode_all(
            self.fetch(&sql, &[Bind::Text(&correlation.to_string())])
                .await?,
        )
    }

    async fn fetch(&self, sql: &str, binds: &[Bind<'_>]) -> Result<Vec<RawRow>, sqlx::Error> {
        if let Some(reads) = &self.sqlite_reads {
            let owned = binds
                .iter()
                .map(|bind| match bind {
                    Bind::Int(value) => crate::db::ReadBind::Int(*value),
                    Bind::Text(value) => crate::db::ReadBind::Text((*value).to_owned()),
                })
                .collect();
            if let Some(rows) = reads.query(sql, owned, sqlite_raw_row).await {
                return Ok(rows);
            }
        }
        on_db!(&self.db, pool => {
            let mut query = sqlx::query(sql);
            for bind in binds {
                query = match bind {
                    Bind::Int(value) => query.bind(*value),
                    Bind::Text(value) => query.bind(*value),
                };
            }
            // Each row taken apart as it arrives: a page of driver rows held whole and then
            // copied out cost a replay a tenth of its time.
            query.try_map(|row| raw_row(&row)).fetch_all(pool).await
        })
    }

    /// Up to `limit` events after `after` in canonical order (`None`: from the start).
    pub async fn replay(
        &self,
        after: Option<&CanonicalKey>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, ReadError> {
        self.replay_until(after, None, limit).await
    }

    /// As [`EventStore::replay`], only events at or before `until` in commit order: what a
    /// follower that reached `until` has seen, for rebuilding exactly that state.
    pub async fn replay_until(
        &self,
        after: Option<&CanonicalKey>,
        until: Option<LogPosition>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, ReadError> {
        let start = after.cloned().unwrap_or_else(CanonicalKey::before_all);
        let until = until.unwrap_or(LogPosition {
            tx_order: i64::MAX,
            seq: i64::MAX,
        });
        let sql = format!(
            "SELECT {COLUMNS} FROM core_events \
             WHERE (occurred_at_us, source_ref, source_sequence_key, event_id) > ($1, $2, $3, $4) \
             AND (tx_order, seq) <= ($5, $6) \
             ORDER BY occurred_at_us, source_ref, source_sequence_key, event_id LIMIT $7"
        );
        let rows = self
            .fetch(
                &sql,
                &[
                    Bind::Int(start.occurred_at_us),
                    Bind::Text(&start.source_ref),
                    Bind::Int(start.source_sequence_key),
                    Bind::Text(&start.event_id),
                    Bind::Int(until.tx_order),
                    Bind::Int(until.seq),
                    Bind::Int(limit as i64),
                ],
            )
            .await?;
        decode_all(rows)
    }

    /// As [`EventStore::replay_until`], keeping only rows of `event_types` in `partition`'s
    /// streams, the others passed over in the database or before they are decoded;
    /// `next` is where the next page starts (`None`: no row was left to read).
    pub async fn replay_of(
        &self,
        after: Option<&CanonicalKey>,
        until: LogPosition,
        limit: usize,
        event_types: &[&str],
        partition: Partition,
    ) -> Result<ReplayPage, ReadError> {
        let start = after.cloned().unwrap_or_else(CanonicalKey::before_all);
        let sql = Self::replay_statement(partition);
        let rows: Vec<(RawRow, String)> = on_db!(&self.db, pool => {
            sqlx::query(&sql)
                .bind(start.occurred_at_us)
                .bind(&start.source_ref)
                .bind(start.source_sequence_key)
                .bind(&start.event_id)
                .bind(until.tx_order)
                .bind(until.seq)
                .bind(limit as i64)
                .try_map(|row| Ok((raw_row(&row)?, Row::try_get::<String, _>(&row, 7)?)))
                .fetch_all(pool)
                .await?
        });
        // The page's last row says where the next one starts, whoever's it is.
        let next = match rows.last() {
            None => None,
            Some((last, event_type))
                if partition.holds_row(last) && event_types.contains(&event_type.as_str()) =>
            {
                None
            }
            Some((last, _)) => Some(decode_all(vec![last.clone()])?.remove(0)),
        };
        let read = rows.len();
        let rows: Vec<RawRow> = rows
            .into_iter()
            .filter(|(row, event_type)| {
                event_types.contains(&event_type.as_str()) && partition.holds_row(row)
            })
            .map(|(row, _)| row)
            .collect();
        let events = decode_all(rows)?;
        let next = next
            .as_ref()
            .or(events.last())
            .map(|event| CanonicalKey::of(&event.envelope));
        Ok(ReplayPage { events, next, read })
    }

    /// The statement [`EventStore::replay_of`] runs for `partition`: `$1`-`$4` the key it
    /// starts after, `$5`, `$6` the position it reads up to, `$7` how many rows. Public so
    /// tests can ask the database how it would run it (`EXPLAIN`).
    #[doc(hidden)]
    pub fn replay_statement(partition: Partition) -> String {
        // Not filtered by type in SQL: both planners would then read the type's index and
        // sort every row of the type on every page. The type is read with each row, and a
        // row of another type or stream is passed over without being decoded.
        format!(
            "SELECT {COLUMNS}, event_type FROM core_events \
             WHERE (occurred_at_us, source_ref, source_sequence_key, event_id) > ($1, $2, $3, $4) \
             AND (tx_order, seq) <= ($5, $6){} \
             ORDER BY occurred_at_us, source_ref, source_sequence_key, event_id LIMIT $7",
            partition.condition()
        )
    }

    /// Up to `limit` events after `after` in commit order, never skipping one that commits
    /// late (see the module docs). Undecodable rows come back in `corrupt`, in place.
    pub async fn follow(&self, after: LogPosition, limit: usize) -> Result<FollowBatch, ReadError> {
        self.follow_types(&[], after, limit).await
    }

    /// As [`EventStore::follow`], only events of `event_types` (every type when empty):
    /// what a service that folds a few types reads to catch up with the log since it last
    /// did, instead of reading them all again. Each type is read through its own index
    /// range, in commit order, and the ranges merged (one query). A page that is not full
    /// has seen every final event of those types, so its `next` is the final head: a
    /// follower whose types the log's last events are not still reaches the head.
    pub async fn follow_types(
        &self,
        event_types: &[&str],
        after: LogPosition,
        limit: usize,
    ) -> Result<FollowBatch, ReadError> {
        self.follow_partition(event_types, after, limit, Partition::WHOLE)
            .await
    }

    /// [`Self::follow_types`], keeping only the events of `partition`'s streams: the others
    /// are passed over in the database (or, stored before buckets were, before they are
    /// decoded).
    pub async fn follow_partition(
        &self,
        event_types: &[&str],
        after: LogPosition,
        limit: usize,
        partition: Partition,
    ) -> Result<FollowBatch, ReadError> {
        let bound = self.final_bound().await?;
        let (rows, head) = if event_types.is_empty() {
            let sql = format!(
                "SELECT {COLUMNS} FROM core_events WHERE (tx_order, seq) > ($1, $2) AND tx_order < $4 \
                 ORDER BY tx_order, seq LIMIT $3"
            );
            let binds = [after.tx_order, after.seq, limit as i64, bound].map(Bind::Int);
            (self.fetch(&sql, &binds).await?, None)
        } else {
            // The head first: every row up to it is final, so the typed read, bounded by it,
            // misses none of its types up to there.
            let Some((head, _)) = self.last_below(bound).await? else {
                return Ok(FollowBatch {
                    next: after,
                    ..FollowBatch::default()
                });
            };
            let sql = Self::follow_statement(event_types.len(), partition);
            let binds: Vec<Bind<'_>> = [
                after.tx_order,
                after.seq,
                limit as i64,
                head.tx_order,
                head.seq,
            ]
            .into_iter()
            .map(Bind::Int)
            .chain(event_types.iter().map(|event_type| Bind::Text(event_type)))
            .collect();
            (self.fetch(&sql, &binds).await?, Some(head))
        };
        let full = rows.len() >= limit;
        let mut batch = FollowBatch {
            next: match (rows.last(), head) {
                (_, Some(head)) if !full && head > after => head,
                (Some(row), _) => row.position,
                (None, _) => after,
            },
            ..FollowBatch::default()
        };
        for row in rows.into_iter().filter(|row| partition.holds_row(row)) {
            match decode(row) {
                Ok(event) => batch.events.push(event),
                Err(corrupt) => batch.corrupt.push(corrupt),
            }
        }
        Ok(batch)
    }

    /// The statement [`EventStore::follow_partition`] runs for `types` event types and
    /// `partition`: `$1`, `$2` the position it starts after, `$3` how many rows, `$4`, `$5`
    /// the head it reads up to, `$6`… the types. Each type is read through its own index
    /// range and the ranges merged. Public so tests can ask the database how it would run
    /// it (`EXPLAIN`).
    #[doc(hidden)]
    pub fn follow_statement(types: usize, partition: Partition) -> String {
        let share = partition.condition();
        let per_type: Vec<String> = (0..types)
            .map(|n| {
                format!(
                    "SELECT * FROM (SELECT {COLUMNS} FROM core_events WHERE event_type = ${} \
                     AND (tx_order, seq) > ($1, $2) AND (tx_order, seq) <= ($4, $5){share} \
                     ORDER BY tx_order, seq LIMIT $3) AS of_type_{n}",
                    6 + n
                )
            })
            .collect();
        format!(
            "SELECT * FROM ({}) AS typed ORDER BY tx_order, seq LIMIT $3",
            per_type.join(" UNION ALL ")
        )
    }

    /// Rows whose `tx_order` is below this are final: no append of this store can still add
    /// one before them (see the module docs). SQLite has one writer at a time, so every
    /// committed row is final.
    async fn final_bound(&self) -> Result<i64, sqlx::Error> {
        match &self.db {
            Db::Sqlite(_) => Ok(i64::MAX),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(APPENDING_EXCLUSIVE).execute(&mut *tx).await?;
                let bound: i64 = sqlx::query_scalar(
                    "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
                )
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(bound)
            }
        }
    }

    /// The last position a follower can reach now, and when that event was recorded.
    pub async fn head(&self) -> Result<Option<(LogPosition, Timestamp)>, ReadError> {
        self.last_position(true).await
    }

    /// The last committed position, which a follower may not reach yet while an older
    /// transaction is still open (see the module docs).
    pub async fn committed_head(&self) -> Result<Option<(LogPosition, Timestamp)>, ReadError> {
        self.last_position(false).await
    }

    async fn last_position(
        &self,
        only_final: bool,
    ) -> Result<Option<(LogPosition, Timestamp)>, ReadError> {
        let bound = if only_final {
            self.final_bound().await?
        } else {
            i64::MAX
        };
        Ok(self.last_below(bound).await?)
    }

    /// The last position whose `tx_order` is below `bound`, and when it was recorded.
    async fn last_below(
        &self,
        bound: i64,
    ) -> Result<Option<(LogPosition, Timestamp)>, sqlx::Error> {
        let row: Option<(i64, i64, i64)> = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT tx_order, seq, recorded_at_us FROM core_events WHERE tx_order < $1 \
                 ORDER BY tx_order DESC, seq DESC LIMIT 1",
            )
            .bind(bound)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(tx_order, seq, recorded)| {
            (
                LogPosition { tx_order, seq },
                Timestamp::from_unix_micros(recorded).unwrap_or_else(Timestamp::now),
            )
        }))
    }

    /// Where a connector's stream was read up to, and its watermark.
    pub async fn cursor(
        &self,
        connector_id: &str,
        stream: &str,
    ) -> Result<Option<(String, Option<Timestamp>)>, ReadError> {
        Ok(crate::cursors::read(&self.db, connector_id, stream).await?)
    }

    /// The version of `stream` now: how many events it holds (0 for none).
    pub(crate) async fn stream_version(&self, stream: &str) -> Result<i64, sqlx::Error> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_scalar(STREAM_VERSION).bind(stream).fetch_one(pool).await?
        }))
    }

    /// The type of the stored event `id`, if it is stored.
    pub(crate) async fn event_type_of(&self, id: EventId) -> Result<Option<String>, sqlx::Error> {
        on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT event_type FROM core_events WHERE event_id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })
    }

    /// The payload hash of the stored event `id` (as its envelope records it), if it is
    /// stored.
    pub(crate) async fn payload_hash_of(
        &self,
        id: EventId,
    ) -> Result<Option<ops_core::id::ContentHash>, ReadError> {
        let envelope: Option<String> = on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT envelope FROM core_events WHERE event_id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?;
        Ok(envelope.and_then(|text| {
            serde_json::from_str::<EventEnvelope>(&text)
                .ok()
                .map(|envelope| envelope.payload_hash)
        }))
    }

    /// The stored envelopes whose text matches the SQL `LIKE` pattern, in log order: how an
    /// erasure finds what was sealed under a subject without reading every event.
    pub(crate) async fn envelopes_containing(
        &self,
        pattern: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT envelope FROM core_events WHERE envelope LIKE $1 ORDER BY seq")
                .bind(pattern)
                .fetch_all(pool)
                .await
        })
    }

    /// How many events of each type the log holds, by type.
    pub async fn count_by_type(&self) -> Result<Vec<(String, i64)>, ReadError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_as("SELECT event_type, COUNT(*) FROM core_events GROUP BY event_type ORDER BY event_type")
                .fetch_all(pool)
                .await?
        }))
    }

    /// How many events the log holds.
    pub async fn count(&self) -> Result<i64, ReadError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM core_events").fetch_one(pool).await?
        }))
    }

    /// The payload as this build reads it: upcast to the current version, with its sealed
    /// fields opened (or `[shredded]`), or why not.
    pub fn current_payload(&self, envelope: &EventEnvelope) -> CurrentPayload {
        self.current(envelope, true)
    }

    /// As [`EventStore::current_payload`], with personal data still sealed: what
    /// projections fold, so their rows hold no personal data in clear.
    pub fn current_sealed_payload(&self, envelope: &EventEnvelope) -> CurrentPayload {
        self.current(envelope, false)
    }

    fn current(&self, envelope: &EventEnvelope, open: bool) -> CurrentPayload {
        let current = self
            .current_sealed_payloads(std::slice::from_ref(&envelope))
            .pop()
            .expect("one payload for one envelope");
        match current {
            CurrentPayload::Current { version, payload } => {
                let mut payload = payload.into_owned();
                if open {
                    let name = self.registry.current_name(&envelope.event_type);
                    self.open_payload(
                        name.expect("a current payload's type is known"),
                        version,
                        &mut payload,
                    );
                }
                CurrentPayload::Current { version, payload }
            }
            CurrentPayload::UnknownType => CurrentPayload::UnknownType,
            CurrentPayload::Unreadable { reason } => CurrentPayload::Unreadable { reason },
        }
    }

    /// As [`EventStore::current_sealed_payload`] for many envelopes, with their upcasters
    /// run in one call per runner (see `jail`); a payload stored at its type's current
    /// version is borrowed from its envelope, not upcast.
    pub fn current_sealed_payloads<'e>(
        &self,
        envelopes: &[&'e EventEnvelope],
    ) -> Vec<CurrentPayload<Cow<'e, Value>>> {
        // Each envelope's registered name, and whether it is stored at the current version.
        let known: Vec<Option<(&'static str, bool)>> = envelopes
            .iter()
            .map(|envelope| {
                let name = self.registry.current_name(&envelope.event_type)?;
                let latest = self.registry.latest(name).map(|latest| latest.version);
                Some((name, latest == Some(envelope.payload_schema_version)))
            })
            .collect();
        let older: Vec<(&str, u32, Value)> = envelopes
            .iter()
            .zip(&known)
            .filter_map(|(envelope, known)| match known {
                Some((name, false)) => Some((
                    *name,
                    envelope.payload_schema_version,
                    envelope.payload.clone(),
                )),
                _ => None,
            })
            .collect();
        let mut upcast = self.code.upcast(self.registry, older).into_iter();
        envelopes
            .iter()
            .zip(known)
            .map(|(envelope, known)| {
                let Some((_, current)) = known else {
                    return CurrentPayload::UnknownType;
                };
                if current {
                    return CurrentPayload::Current {
                        version: envelope.payload_schema_version,
                        payload: Cow::Borrowed(&envelope.payload),
                    };
                }
                match upcast.next().expect("one result per older payload") {
                    Ok((version, payload)) => CurrentPayload::Current {
                        version,
                        payload: Cow::Owned(payload),
                    },
                    Err(reason) => CurrentPayload::Unreadable { reason },
                }
            })
            .collect()
    }

    /// Whether personal data is sealed per subject in this store.
    pub fn seals_personal_data(&self) -> bool {
        self.keys.is_some()
    }

    /// Opens every sealed string anywhere in `value` (a projection row has no schema to
    /// say where); one whose key was destroyed reads as `[shredded]`.
    pub fn open_sealed(&self, value: &mut Value) {
        if let Some(keys) = &self.keys {
            keys.open_everywhere(value);
        }
    }

    /// Keeps what could not be read or applied, with the reason, so nothing is dropped
    /// silently. `origin` says who found it (`projection:...`, `connector:...`); finding the
    /// same thing again for the same reason keeps one entry.
    pub async fn quarantine(
        &self,
        origin: &str,
        reference: &str,
        reason: &str,
        raw: &str,
    ) -> Result<(), sqlx::Error> {
        crate::quarantine::keep(&self.db, origin, reference, reason, raw).await
    }

    /// Everything set aside, oldest first: `(origin, reference, reason, when)`.
    pub async fn quarantine_entries(
        &self,
    ) -> Result<Vec<(String, String, String, Timestamp)>, sqlx::Error> {
        Ok(crate::quarantine::all(&self.db)
            .await?
            .into_iter()
            .map(|(origin, reference, reason, at)| {
                let at = Timestamp::from_unix_micros(at).unwrap_or_else(Timestamp::now);
                (origin, reference, reason, at)
            })
            .collect())
    }

    /// How many records each origin (a connector, projection or reaction) set aside.
    pub async fn quarantine_counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        crate::quarantine::counts(&self.db).await
    }

    pub async fn quarantined(
        &self,
        origin: &str,
    ) -> Result<Vec<(String, String, String)>, sqlx::Error> {
        crate::quarantine::of(&self.db, origin).await
    }
}

/// A [`RawRow`] from a row of [`COLUMNS`], each column read by its place with `$get`
/// (sqlx's `try_get`, rusqlite's `get`).
macro_rules! raw_row_of {
    ($row:expr, $get:ident) => {
        RawRow {
            position: LogPosition {
                seq: $row.$get(0)?,
                tx_order: $row.$get(1)?,
            },
            stream_id: $row.$get(2)?,
            stream_version: $row.$get(3)?,
            recorded_at_us: $row.$get(4)?,
            envelope: $row.$get(5)?,
            stream_bucket: $row.$get(6)?,
        }
    };
}

/// Reads the columns of [`COLUMNS`], by position.
fn raw_row<R>(row: &R) -> Result<RawRow, sqlx::Error>
where
    R: Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(raw_row_of!(row, try_get))
}

/// [`raw_row`] from SQLite's C API.
fn sqlite_raw_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(raw_row_of!(row, get))
}

fn decode(row: RawRow) -> Result<StoredEvent, CorruptEvent> {
    let corrupt = |reason: String| CorruptEvent {
        position: row.position,
        reference: format!("seq {}", row.position.seq),
        reason,
        raw: row.envelope.clone(),
    };
    let envelope: EventEnvelope = serde_json::from_str(&row.envelope)
        .map_err(|error| corrupt(format!("not an envelope: {error}")))?;
    let recorded_at = Timestamp::from_unix_micros(row.recorded_at_us).ok_or_else(|| {
        corrupt(format!(
            "recorded_at_us {} is out of range",
            row.recorded_at_us
        ))
    })?;
    Ok(StoredEvent {
        position: row.position,
        stream_id: row.stream_id,
        stream_version: row.stream_version,
        recorded_at,
        envelope,
    })
}

fn decode_all(rows: Vec<RawRow>) -> Result<Vec<StoredEvent>, ReadError> {
    rows.into_iter()
        .map(|row| {
            decode(row).map_err(|corrupt| ReadError::Corrupt {
                position: corrupt.position,
                reference: corrupt.reference,
                reason: corrupt.reason,
            })
        })
        .collect()
}

/// An append of new events on SQLite with nothing beside it, as one statement outside any
/// transaction: the stream's version read, checked against `expected`, and every row
/// inserted, atomically (a writing statement takes SQLite's write lock before it reads).
/// It costs one round trip to sqlx's connection thread where a transaction costs four, or
/// none when it runs through SQLite's C API on this thread (`direct`, see
/// [`crate::db::SqliteWrites`]), and most appends are one batch of new events. `None` when
/// the batch must take the careful road: nothing was inserted, because the version did not
/// match or an event was stored already (or raced in), which that road looks up.
async fn append_in_one_statement(
    pool: &sqlx::SqlitePool,
    direct: Option<&crate::db::SqliteWrites>,
    stream: &str,
    expected: ExpectedVersion,
    events: &[EventEnvelope],
    rows: &[String],
    recorded_at_us: i64,
) -> Result<Option<AppendOutcome>, AppendError> {
    let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    let correlations = correlation_texts(events);
    let mut sql = String::from(
        "WITH current(version) AS (SELECT COALESCE((SELECT stream_version FROM core_events \
         WHERE stream_id = ? ORDER BY stream_version DESC LIMIT 1), 0)), batch(position, \
         event_id, event_type, payload_schema_version, occurred_at_us, source_ref, \
         source_sequence_key, correlation_id, envelope) AS (VALUES ",
    );
    let mut binds = vec![atomic::Bind::Text(stream)];
    for (index, envelope) in events.iter().enumerate() {
        sql.push_str(if index == 0 {
            "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        });
        binds.extend([
            atomic::Bind::Int(index as i64 + 1),
            atomic::Bind::Text(&ids[index]),
        ]);
        binds.extend(envelope_columns(envelope, &correlations[index]));
        binds.push(atomic::Bind::Text(&rows[index]));
    }
    sql.push_str(
        ") INSERT INTO core_events (tx_order, event_id, stream_id, stream_version, event_type, \
         payload_schema_version, occurred_at_us, source_ref, source_sequence_key, correlation_id, \
         recorded_at_us, envelope, stream_bucket) \
         SELECT 0, batch.event_id, ?, current.version + batch.position, batch.event_type, \
         batch.payload_schema_version, batch.occurred_at_us, batch.source_ref, \
         batch.source_sequence_key, batch.correlation_id, ?, batch.envelope, ? FROM current, batch",
    );
    binds.extend([
        atomic::Bind::Text(stream),
        atomic::Bind::Int(recorded_at_us),
        atomic::Bind::Int(stream_bucket(stream)),
    ]);
    match expected {
        ExpectedVersion::Any => {}
        ExpectedVersion::NoStream => sql.push_str(" WHERE current.version = 0"),
        ExpectedVersion::Exact(version) => {
            sql.push_str(" WHERE current.version = ?");
            binds.push(atomic::Bind::Int(version));
        }
    }
    sql.push_str(" ORDER BY batch.position RETURNING stream_version");
    // The pool is closed: nothing may be written any more, this way or the other.
    let written_here = direct
        .filter(|_| !pool.is_closed())
        .and_then(|direct| direct.returning_ints(&sql, &binds));
    let versions: Vec<i64> = match written_here {
        Some(versions) => versions,
        None => match atomic::bound(&sql, &binds, recorded_at_us)
            .try_map(|row: sqlx::sqlite::SqliteRow| row.try_get::<i64, _>(0))
            .fetch_all(pool)
            .await
        {
            Ok(versions) => versions,
            Err(sqlx::Error::Database(error)) if error.kind() == ErrorKind::UniqueViolation => {
                return Ok(None);
            }
            Err(error) => return Err(error.into()),
        },
    };
    let Some(&last) = versions.iter().max() else {
        return Ok(None);
    };
    Ok(Some(AppendOutcome {
        appended: events.iter().map(|e| e.event_id).collect(),
        stream_version: last,
        ..AppendOutcome::default()
    }))
}

/// An envelope's own columns, in the order both inserts of `core_events` list them: its
/// type, payload version, time, source, place in its source and correlation (the canonical
/// key's parts, without formatting the id a second time); `correlation` is its
/// correlation id's text ([`correlation_texts`]).
fn envelope_columns<'a>(
    envelope: &'a EventEnvelope,
    correlation: &'a str,
) -> [atomic::Bind<'a>; 6] {
    [
        atomic::Bind::Text(&envelope.event_type),
        atomic::Bind::Int(i64::from(envelope.payload_schema_version)),
        atomic::Bind::Int(envelope.occurred_at.unix_micros()),
        atomic::Bind::Text(&envelope.source_ref),
        atomic::Bind::Int(CanonicalKey::source_sequence_key(envelope)),
        atomic::Bind::Text(correlation),
    ]
}

/// Each event's correlation id as text, for [`envelope_columns`].
fn correlation_texts(events: &[EventEnvelope]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.correlation_id.to_string())
        .collect()
}
