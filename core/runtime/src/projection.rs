//! Runs a pack's [`Projection`]: follows the log, applies events in the order the
//! projection declared, and stores its changed rows together with its checkpoint in one
//! transaction, so a crash never applies an event twice or loses one.
//!
//! State lives in one table of the owning pack per projection version,
//! `pack_<id>_<name>_v<version>` (`tbl`, `key`, `document`). A new version is built from
//! the log into its own table while the old one stays readable, then one transaction points
//! `core_projections` at it and drops the old table.
//!
//! Canonical projections see each batch sorted canonically. An event that sorts before one
//! already applied is late: with [`LateEvents::Rebuild`] the state is rewound to where the
//! event belongs (the runner journals how to undo each event it applied, up to
//! `JOURNAL_EVENTS`) and the log is applied again from there in canonical order, so the
//! state equals what a replay from scratch gives at the cost of how late the event is; only
//! an event earlier than the journal reaches (a runner just started on stored state) is
//! handled by replaying everything the follower has reached. With
//! [`LateEvents::ApplyInArrivalOrder`] it is applied as it comes. Either way it is counted,
//! never dropped. Events a projection cannot read or apply are quarantined with the reason.
//!
//! A projection split by stream ([`ops_core::projection::Split::ByStream`]) runs as one runner per [`Partition`]:
//! each folds the events of its streams, in the declared order, with its own lease and
//! checkpoint row (`<name>.<index>of<count>`), into the rows of one shared table
//! (`pack_<id>_<name>_v<version>_p<count>`, a `part` column saying whose each row is). A
//! partition's write refuses a row another partition owns, so a fold that relates streams
//! fails loudly instead of mixing states. A new version or partition count switches over
//! when its last partition is built: that one drops the tables of every other layout.

use crate::clock::WallClock;
use std::collections::BTreeMap;

use ops_core::projection::{DynProjection, LateEvents, Ordering, State, is_valid_name};
use ops_core::time::Timestamp;
use serde_json::Value;
use sqlx::{QueryBuilder, Row};

use crate::atomic::{self, AtomicWrite};
use crate::db::{Dialect, on_db};
use crate::jail::PieceError;
use crate::leases::{self, Lease, Leases};
use crate::store::{
    CanonicalKey, CurrentPayload, EventStore, FollowBatch, LogPosition, ReadError, ReplayPage,
    StoredEvent,
};

/// Events per read while following or replaying.
const PAGE: usize = 500;

/// Rows one multi-row statement writes: three parameters each, well under either
/// backend's limit on a statement's parameters.
const ROWS_PER_STATEMENT: usize = 300;
/// How long `catch_up` waits for committed events held back by an older open transaction.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The most partitions a projection may declare: each is a lease, a checkpoint row and a
/// runner on every worker.
pub const MAX_PARTITIONS: u32 = 64;

/// The page after the one being applied, read meanwhile on another of the runtime's
/// threads: its query and the decoding of each envelope need not wait for this page's
/// fold (in a jailed runner, the host only waits for the reply) and write. Used only
/// when the reader is where the read started (`after`); dropped unused, it is stopped.
struct ReadAhead<At, Page> {
    after: At,
    read: tokio::task::JoinHandle<Result<Page, ReadError>>,
}

impl<At, Page: Send + 'static> ReadAhead<At, Page> {
    fn start(
        after: At,
        read: impl std::future::Future<Output = Result<Page, ReadError>> + Send + 'static,
    ) -> Self {
        ReadAhead {
            after,
            read: tokio::spawn(read),
        }
    }

    async fn page(mut self) -> Result<Page, ReadError> {
        match (&mut self.read).await {
            Ok(read) => read,
            Err(failed) => std::panic::resume_unwind(failed.into_panic()),
        }
    }

    /// The page after `at`: the one `ahead` read if it started there, or `read` now.
    async fn or_read(
        ahead: Option<Self>,
        at: &At,
        read: impl std::future::Future<Output = Result<Page, ReadError>>,
    ) -> Result<Page, ReadError>
    where
        At: PartialEq,
    {
        match ahead {
            Some(ahead) if ahead.after == *at => ahead.page().await,
            _ => read.await,
        }
    }
}

impl<At, Page> Drop for ReadAhead<At, Page> {
    fn drop(&mut self) {
        self.read.abort();
    }
}

/// Which of a split projection's partitions a runner folds.
pub use crate::store::Partition;

/// Every partition `projection` runs as (one, for a projection not split).
pub fn partitions_of(projection: &dyn DynProjection) -> Vec<Partition> {
    let count = projection.split().partitions();
    (0..count).map(|index| Partition { index, count }).collect()
}

/// The name of `partition` of projection `name`: its checkpoint row's, its lease's and its
/// job's, beside the projection's own (a `.` no projection name contains).
pub fn partition_name(name: &str, partition: Partition) -> String {
    if partition.is_split() {
        format!("{name}.{}of{}", partition.index, partition.count)
    } else {
        name.to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionRunError {
    #[error(
        "projection `{name}` of pack `{pack}`: `{name}` is not a valid name; use `[a-z][a-z0-9_]*`, at most 40 characters"
    )]
    Name {
        pack: &'static str,
        name: &'static str,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "projection `{projection}`: the database failed, and its state was reloaded from the last checkpoint: {source}"
    )]
    Database {
        projection: String,
        source: sqlx::Error,
    },
    #[error(
        "projection `{projection}` is run by worker `{holder}` now, and a rebuild would race it: stop that worker, or wait until its lease ends"
    )]
    Held { projection: String, holder: String },
    #[error(
        "projection `{projection}`: another worker stored its state during the rebuild, so the rebuild stored nothing; run it again"
    )]
    Overtaken { projection: String },
    #[error("projection `{projection}`: {source}; its state was reloaded from the last checkpoint")]
    Jail {
        projection: String,
        source: crate::jail::JailError,
    },
    #[error("projection `{projection}`: recording a fault of its code: {source}")]
    Receipt {
        projection: String,
        source: crate::store::AppendError,
    },
    #[error(
        "projection `{name}` of pack `{pack}` declares {partitions} partitions; declare 1 to {MAX_PARTITIONS}"
    )]
    Partitions {
        pack: &'static str,
        name: &'static str,
        partitions: u32,
    },
    #[error(
        "projection `{projection}` may not be split by stream: row {table}/{key} belongs to partition {owner}, and partition {writer} wrote it too; declare `Split::Whole`, or key each row by one stream; its state was reloaded from the last checkpoint"
    )]
    CrossPartition {
        projection: String,
        table: String,
        key: String,
        owner: i64,
        writer: u32,
    },
    #[error(
        "projection `{projection}` is split by stream and runs as one runner per partition; start them with `start_all` or `start_partition`"
    )]
    Split { projection: String },
    #[error("projection `{projection}`: stored row {table}/{key} is not JSON: {reason}")]
    CorruptRow {
        projection: String,
        table: String,
        key: String,
        reason: String,
    },
}

/// Where a projection is, and whether it is as fresh as it promised.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Freshness {
    pub owner: String,
    pub name: String,
    pub version: u32,
    pub position: LogPosition,
    pub head: Option<LogPosition>,
    pub lag_ms: u64,
    pub max_lag_ms: u64,
    pub within_objective: bool,
    pub applied_events: i64,
    pub late_events: i64,
    pub rebuilds: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Checkpoint {
    /// The stored checkpoint's generation this runner last read or wrote; `None` before
    /// the first write. A write succeeds only if it is still the stored one.
    generation: Option<i64>,
    follow: LogPosition,
    canonical_mark: Option<CanonicalKey>,
    applied: i64,
    late: i64,
    rebuilds: i64,
}

/// What one `catch_up` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatchUp {
    pub applied: usize,
    /// Batches another worker stored first: this runner's were discarded and its state
    /// reloaded from theirs, so no event was applied twice.
    pub superseded: usize,
    pub late: usize,
    pub quarantined: usize,
    pub rebuilt: bool,
    /// Events applied again because a late one rewound the state to where it belongs.
    pub reapplied: usize,
    /// Another worker holds this projection's lease: this one did nothing.
    pub held_by: Option<String>,
    /// Another worker took the lease over mid-run: this one's last batch was refused, its
    /// state reloaded, and it stopped.
    pub lease_lost: bool,
    /// Calls of the projection's code that faulted (each event quarantined, with a receipt).
    pub faulted: usize,
    /// The projection is paused after faults in a row: the receipt that paused it. A
    /// paused projection is given no events until a rebuild resumes it.
    pub paused: Option<ops_core::id::EventId>,
    /// Stopped at the end of its slice of batches with more to apply
    /// ([`ProjectionRunner::catch_up_within`]).
    pub more: bool,
}

impl CatchUp {
    /// Counts a batch of `applied` events as `written`; `false` when the runner stops. When
    /// another worker stored the batch first, its state was loaded and the runner goes on
    /// from its checkpoint; when another took the lease, the runner stops.
    fn count(&mut self, written: Written, applied: usize) -> bool {
        match written {
            Written::Stored => self.applied += applied,
            Written::Superseded => self.superseded += 1,
            Written::LeaseLost => self.lease_lost = true,
            Written::Crossed(..) => unreachable!("`persist` makes a crossed row an error"),
        }
        written != Written::LeaseLost
    }
}

/// What a write of rows and checkpoint came to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Written {
    Stored,
    /// A row of this batch belongs to another partition (`(tbl, key)`, its owner).
    Crossed(String, String, i64),
    /// Another worker stored a checkpoint since this one read it.
    Superseded,
    /// Another worker took this runner's lease over.
    LeaseLost,
}

pub struct ProjectionRunner {
    store: EventStore,
    projection: &'static dyn DynProjection,
    /// Which of its streams this runner folds.
    partition: Partition,
    state: State,
    checkpoint: Checkpoint,
    /// With leases, a catch-up runs only while this worker holds the projection's lease,
    /// and each write is fenced by it.
    leases: Option<Leases>,
    lease: Option<Lease>,
    /// Told how far a rebuild is: events replayed, and the log's size.
    progress: Option<Progress>,
    /// Its freshness objective: the projection's own, unless the operator set another.
    max_lag_ms: u64,
    /// How to undo the events applied last, in canonical order: what lets a late event
    /// rewind the state to where it belongs.
    journal: Journal,
    /// What a jailed runner holds of `state`.
    mirror: crate::jail::Mirror,
    /// The projection's faults in a row, and whether it is paused (read from the log when
    /// the runner starts).
    faults: crate::faults::FaultCount,
}

/// How many applied events the journal keeps; a later event that sorts before all of them
/// is handled by a whole rebuild, as before there was a journal.
const JOURNAL_EVENTS: usize = 50_000;

/// One event the runner applied (or set aside: it is tried again in its new place), with
/// how to undo what it did.
struct JournalEntry {
    key: CanonicalKey,
    undo: Vec<ops_core::projection::RowBefore>,
    event: StoredEvent,
    /// `false`: it was set aside, not applied.
    applied: bool,
}

/// The undo of each event applied since the state was loaded or rebuilt, in canonical
/// order, with the point below which nothing is journaled. A late event at key `k` can be
/// handled by undoing every journaled event after `k` and applying the log again from
/// there: work proportional to how late it is, not to the whole log.
#[derive(Default)]
struct Journal {
    entries: std::collections::VecDeque<JournalEntry>,
    /// Every applied event after this key is journaled; `None`: every one since the state
    /// was empty.
    floor: Option<CanonicalKey>,
    /// Whether `floor` means "nothing below it is known" (loaded state, evicted entries)
    /// rather than "from the start".
    floored: bool,
}

impl Journal {
    /// A journal for a state that holds everything up to `mark` already.
    fn from(mark: Option<&CanonicalKey>) -> Self {
        Journal {
            entries: Default::default(),
            floor: mark.cloned(),
            floored: mark.is_some(),
        }
    }

    fn record(&mut self, entry: JournalEntry) {
        if self.entries.len() == JOURNAL_EVENTS
            && let Some(evicted) = self.entries.pop_front()
        {
            self.floor = Some(evicted.key);
            self.floored = true;
        }
        self.entries.push_back(entry);
    }

    /// Whether every applied event after `key` is journaled.
    fn reaches(&self, key: &CanonicalKey) -> bool {
        !self.floored || self.floor.as_ref().is_some_and(|floor| floor < key)
    }

    /// Undoes every journaled event after `key`, newest first; returns them, oldest first,
    /// and the key of the last event still applied (`None`: none is).
    fn rewind(
        &mut self,
        key: &CanonicalKey,
        state: &mut State,
    ) -> (Vec<JournalEntry>, Option<CanonicalKey>) {
        let mut undone = Vec::new();
        while self.entries.back().is_some_and(|entry| entry.key > *key) {
            let mut entry = self.entries.pop_back().expect("checked");
            state.undo(std::mem::take(&mut entry.undo));
            undone.push(entry);
        }
        undone.reverse();
        let last = self
            .entries
            .back()
            .map(|entry| entry.key.clone())
            .or_else(|| self.floor.clone());
        (undone, last)
    }
}

/// Called as long work goes: how much is done, of how much.
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

fn owner_of(projection: &dyn DynProjection) -> String {
    format!("pack:{}", projection.pack_id())
}

/// Appends the `(tbl, key)` pairs of `changes` to `query`, comma-separated, each bound.
fn push_row_keys<'a, DB>(
    query: &mut QueryBuilder<'a, DB>,
    changes: &[&'a ((String, String), Option<Value>)],
) where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut rows = query.separated(", ");
    for ((tbl, key), _) in changes {
        rows.push("(");
        rows.push_bind_unseparated(tbl.as_str());
        rows.push_unseparated(", ");
        rows.push_bind_unseparated(key.as_str());
        rows.push_unseparated(")");
    }
}

/// The rows of one projection in `core_projections`, whatever its version or layout: its
/// own (`$2`) and its partitions' (`$3`, from [`partitions_like`]), of owner `$1`.
const OF_PROJECTION: &str = "owner = $1 AND (name = $2 OR name LIKE $3 ESCAPE '!')";

/// The condition on a state table's rows that keeps `partition`'s (every row, unless the
/// projection is split): its index is a number of ours, so it is written into the statement.
fn own_rows(partition: Partition) -> String {
    if partition.is_split() {
        format!(" AND part = {}", partition.index)
    } else {
        String::new()
    }
}

/// The `LIKE` pattern of the partition rows of projection `name`.
fn partitions_like(name: &str) -> String {
    crate::db::like_prefix(&format!("{name}."))
}

/// Whether `table` is a name this module made (`pack_` and `[a-z0-9_]`): what it drops.
pub(crate) fn is_state_table_name(table: &str) -> bool {
    table.starts_with("pack_")
        && table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The state table of one projection version, not split.
pub fn state_table(pack_id: &str, name: &str, version: u32) -> String {
    format!("pack_{pack_id}_{name}_v{version}")
}

/// The state table of the build of `projection` this binary runs: its version and, when
/// it is split, its number of partitions.
pub fn state_table_of(projection: &dyn DynProjection) -> String {
    let table = state_table(
        projection.pack_id(),
        projection.name(),
        projection.version(),
    );
    match projection.split().partitions() {
        1 => table,
        partitions => format!("{table}_p{partitions}"),
    }
}

impl ProjectionRunner {
    /// Loads the projection's state and checkpoint; builds it from the log first when it is
    /// new or its version changed.
    pub async fn start(
        store: EventStore,
        projection: &'static dyn DynProjection,
    ) -> Result<Self, ProjectionRunError> {
        let mut runner = Self::new(store, projection)?;
        if projection.split().partitions() > 1 {
            return Err(ProjectionRunError::Split {
                projection: runner.label(),
            });
        }
        runner.prepare().await?;
        Ok(runner)
    }

    /// A runner for each partition of `projection` (one, when it is not split), each
    /// loaded or built, with no leases: for a process that runs it alone.
    pub async fn start_all(
        store: EventStore,
        projection: &'static dyn DynProjection,
    ) -> Result<Vec<Self>, ProjectionRunError> {
        let mut runners = Vec::new();
        for partition in partitions_of(projection) {
            let mut runner = Self::new(store.clone(), projection)?;
            runner.partition = partition;
            runner.prepare().await?;
            runners.push(runner);
        }
        Ok(runners)
    }

    /// A runner that works only while this worker holds the projection's lease of
    /// `leases` (see [`crate::leases`]), each write fenced by it. Nothing is loaded or
    /// built until it first holds the lease, so workers starting together build a new
    /// version once, not once each.
    pub fn start_with_leases(
        store: EventStore,
        projection: &'static dyn DynProjection,
        leases: Leases,
    ) -> Result<Self, ProjectionRunError> {
        Self::start_partition(store, projection, leases, Partition::WHOLE)
    }

    /// A runner of one `partition` of a projection split by stream (see
    /// [`partitions_of`]), under `leases` as [`Self::start_with_leases`].
    pub fn start_partition(
        store: EventStore,
        projection: &'static dyn DynProjection,
        leases: Leases,
        partition: Partition,
    ) -> Result<Self, ProjectionRunError> {
        let mut runner = Self::new(store, projection)?;
        if partition.count != projection.split().partitions() || partition.index >= partition.count
        {
            return Err(ProjectionRunError::Partitions {
                pack: projection.pack_id(),
                name: projection.name(),
                partitions: partition.count,
            });
        }
        runner.partition = partition;
        runner.leases = Some(leases);
        Ok(runner)
    }

    fn new(
        store: EventStore,
        projection: &'static dyn DynProjection,
    ) -> Result<Self, ProjectionRunError> {
        if !is_valid_name(projection.name()) {
            return Err(ProjectionRunError::Name {
                pack: projection.pack_id(),
                name: projection.name(),
            });
        }
        // A pack's constant, checked like any of its input.
        let partitions = projection.split().partitions();
        if partitions > MAX_PARTITIONS {
            return Err(ProjectionRunError::Partitions {
                pack: projection.pack_id(),
                name: projection.name(),
                partitions,
            });
        }
        // Without leases a runner is alone: it folds every stream.
        let partition = Partition::WHOLE;
        Ok(ProjectionRunner {
            store,
            projection,
            partition,
            state: State::default(),
            checkpoint: Checkpoint::default(),
            leases: None,
            lease: None,
            progress: None,
            max_lag_ms: projection.max_lag_ms(),
            journal: Journal::default(),
            mirror: crate::jail::Mirror::default(),
            faults: crate::faults::FaultCount::default(),
        })
    }

    /// Holds it to `max_lag_ms` in place of the objective its pack declares (an operator's
    /// `ops.toml`); stored with its checkpoint, where `status` reads it.
    pub fn with_objective(mut self, max_lag_ms: u64) -> Self {
        self.set_objective(Some(max_lag_ms));
        self
    }

    /// Its freshness objective from now on: `max_lag_ms`, or the projection's own.
    pub fn set_objective(&mut self, max_lag_ms: Option<u64>) {
        self.max_lag_ms = max_lag_ms.unwrap_or_else(|| self.projection.max_lag_ms());
    }

    /// Reports a rebuild's progress to `progress` page by page.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Loads the stored state and checkpoint, or builds this version from the log when it
    /// is new or another version is active.
    async fn prepare(&mut self) -> Result<(), ProjectionRunError> {
        self.faults.paused = crate::faults::paused_piece(&self.store, &self.piece()).await?;
        match self.stored_version().await? {
            Some((version, _)) if version == self.projection.version() => self.load().await,
            previous => {
                self.checkpoint = Checkpoint {
                    generation: previous.map(|(_, generation)| generation),
                    ..Checkpoint::default()
                };
                self.create_table().await?;
                self.rebuild_state().await?;
                self.switch_to_this_version(previous.map(|(version, _)| version))
                    .await
            }
        }
    }

    /// The lease of this projection, the same for every version.
    pub fn lease_name(&self) -> String {
        format!("projection:{}", self.label())
    }

    /// Takes or renews the lease, when leases are in use: `Err(holder)` when another worker
    /// holds it (or took it over while this one was building). A lease newly taken loads
    /// the state (which its last holder moved on) or builds it.
    async fn hold_lease(&mut self) -> Result<Result<(), String>, ProjectionRunError> {
        let held = leases::hold(self.leases.as_ref(), &self.lease_name())
            .await
            .map_err(|e| self.db_error(e))?;
        let lease = match held {
            Ok(None) => return Ok(Ok(())),
            Ok(Some(lease)) => lease,
            Err(holder) => {
                self.lease = None;
                return Ok(Err(holder));
            }
        };
        let taken = self
            .lease
            .as_ref()
            .is_none_or(|held| held.generation != lease.generation);
        // Held from here on, so the build's own writes are fenced too.
        self.lease = Some(lease);
        if taken && let Err(error) = self.prepare().await {
            // Not loaded or built (a full disk, say): held again, it prepares again, rather
            // than going on from a state and checkpoint that were never stored.
            self.lease = None;
            return Err(error);
        }
        match self.lease {
            Some(_) => Ok(Ok(())),
            None => Ok(Err("another worker".to_owned())),
        }
    }

    /// Whether this runner held its lease when it last tried (always, without leases).
    pub fn holds_lease(&self) -> bool {
        self.leases.is_none() || self.lease.is_some()
    }

    /// Ends its lease, so another worker takes the work over at once; its state is loaded
    /// again when it next holds it.
    pub async fn release_lease(&mut self) -> Result<(), ProjectionRunError> {
        if let (Some(leases), Some(_)) = (&self.leases, self.lease.take()) {
            leases
                .release(&self.lease_name())
                .await
                .map_err(|e| self.db_error(e))?;
        }
        Ok(())
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn position(&self) -> LogPosition {
        self.checkpoint.follow
    }

    pub fn projection(&self) -> &'static dyn DynProjection {
        self.projection
    }

    fn label(&self) -> String {
        format!("{}/{}", owner_of(self.projection), self.row_name())
    }

    /// Its checkpoint row's name: the projection's, or its partition's.
    fn row_name(&self) -> String {
        partition_name(self.projection.name(), self.partition)
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    fn db_error(&self, source: sqlx::Error) -> ProjectionRunError {
        ProjectionRunError::Database {
            projection: self.label(),
            source,
        }
    }

    fn table(&self) -> String {
        state_table_of(self.projection)
    }

    /// The stored version and the generation of its checkpoint.
    async fn stored_version(&self) -> Result<Option<(u32, i64)>, ProjectionRunError> {
        let owner = owner_of(self.projection);
        let stored: Option<(i64, i64)> = on_db!(self.store.db(), pool => {
            sqlx::query_as("SELECT version, generation FROM core_projections WHERE owner = $1 AND name = $2")
                .bind(&owner)
                .bind(self.row_name())
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.db_error(e))?;
        Ok(stored.map(|(version, generation)| (version as u32, generation)))
    }

    async fn create_table(&self) -> Result<(), ProjectionRunError> {
        let table = self.table();
        // A split projection's rows say whose they are.
        let (part, by_part) = if self.partition.is_split() {
            (
                ", part BIGINT NOT NULL",
                format!("; CREATE INDEX IF NOT EXISTS {table}_part ON {table} (part)"),
            )
        } else {
            ("", String::new())
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} (tbl TEXT NOT NULL, key TEXT NOT NULL, document TEXT NOT NULL{part}, PRIMARY KEY (tbl, key)){by_part}"
        );
        // Workers starting together create the table once: on PostgreSQL two concurrent
        // `CREATE TABLE IF NOT EXISTS` can both try, so they take turns on a lock first.
        on_db!(self.store.db(), pool => async {
            let mut tx = pool.begin().await?;
            if self.store.db().dialect() == Dialect::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(7203, hashtext($1))")
                    .bind(&table)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::raw_sql(&sql).execute(&mut *tx).await?;
            tx.commit().await
        }
        .await)
        .map_err(|e| self.db_error(e))?;
        Ok(())
    }

    /// Reads the state table and checkpoint of the active version.
    async fn load(&mut self) -> Result<(), ProjectionRunError> {
        let owner = owner_of(self.projection);
        let table = self.table();
        let (checkpoint, rows) = on_db!(self.store.db(), pool => async {
            let row = sqlx::query(
                "SELECT generation, follow_tx_order, follow_seq, canonical_mark, applied_events, late_events, rebuilds \
                 FROM core_projections WHERE owner = $1 AND name = $2",
            )
            .bind(&owner)
            .bind(self.row_name())
            .fetch_one(pool)
            .await?;
            let mark: Option<String> = row.try_get("canonical_mark")?;
            let checkpoint = Checkpoint {
                generation: Some(row.try_get("generation")?),
                follow: LogPosition {
                    tx_order: row.try_get("follow_tx_order")?,
                    seq: row.try_get("follow_seq")?,
                },
                canonical_mark: mark.and_then(|text| serde_json::from_str(&text).ok()),
                applied: row.try_get("applied_events")?,
                late: row.try_get("late_events")?,
                rebuilds: row.try_get("rebuilds")?,
            };
            let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
                "SELECT tbl, key, document FROM {table} WHERE TRUE{}",
                own_rows(self.partition)
            ))
            .fetch_all(pool)
            .await?;
            Ok::<_, sqlx::Error>((checkpoint, rows))
        }
        .await)
        .map_err(|e| self.db_error(e))?;
        let mut state = BTreeMap::new();
        for (tbl, key, document) in rows {
            let value: Value = serde_json::from_str(&document).map_err(|error| {
                ProjectionRunError::CorruptRow {
                    projection: self.label(),
                    table: tbl.clone(),
                    key: key.clone(),
                    reason: error.to_string(),
                }
            })?;
            state.insert((tbl, key), value);
        }
        self.state = State::from_rows(state);
        self.checkpoint = checkpoint;
        self.journal = Journal::from(self.checkpoint.canonical_mark.as_ref());
        Ok(())
    }

    /// Applies everything committed to the log when it is called; stores the result batch
    /// by batch, each with its checkpoint. Committed events that an older open transaction
    /// still holds back (PostgreSQL) are waited for, up to a bound.
    pub async fn catch_up(&mut self) -> Result<CatchUp, ProjectionRunError> {
        self.catch_up_within(usize::MAX).await
    }

    /// As [`ProjectionRunner::catch_up`], stopping after `batches` stored batches, with
    /// `more` set when the log held more then: a worker runs a long catch-up in slices, so
    /// that interactive work preempts it between batches (Section 6). The next call goes
    /// on from the checkpoint.
    pub async fn catch_up_within(&mut self, batches: usize) -> Result<CatchUp, ProjectionRunError> {
        if let Err(holder) = self.hold_lease().await? {
            return Ok(CatchUp {
                held_by: Some(holder),
                ..CatchUp::default()
            });
        }
        let target = self
            .store
            .committed_head()
            .await?
            .map(|(position, _)| position);
        let started = std::time::Instant::now();
        let faults_before = self.faults.total;
        let mut done = CatchUp::default();
        // Only the types it folds are read, each through the index of its type.
        let folded = self.folded_types();
        let mut stored_batches = 0;
        let mut ahead: Option<ReadAhead<LogPosition, FollowBatch>> = None;
        loop {
            done.faulted = self.faults.total - faults_before;
            done.paused = self.faults.paused;
            if done.paused.is_some() {
                return Ok(done);
            }
            if stored_batches == batches {
                done.more = target.is_none_or(|target| self.checkpoint.follow < target);
                return Ok(done);
            }
            let batch = self
                .follow_page(ahead.take(), &folded, self.checkpoint.follow)
                .await?;
            if batch.next == self.checkpoint.follow {
                let reached = target.is_none_or(|target| self.checkpoint.follow >= target);
                if reached || started.elapsed() > CATCH_UP_WAIT {
                    if !reached {
                        tracing::warn!(projection = %self.label(), "committed events are held back by an open transaction; catching up later");
                    }
                    return Ok(done);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
            stored_batches += 1;
            if stored_batches < batches {
                ahead = Some(self.follow_ahead(&folded, batch.next));
            }
            for corrupt in &batch.corrupt {
                self.quarantine(&corrupt.reference, &corrupt.reason, &corrupt.raw)
                    .await?;
                done.quarantined += 1;
            }
            // Each event's canonical key, computed once, when the order is canonical.
            let canonical = self.projection.ordering() == Ordering::Canonical;
            let mut events: Vec<(Option<CanonicalKey>, StoredEvent)> = batch
                .events
                .into_iter()
                .map(|e| (canonical.then(|| CanonicalKey::of(&e.envelope)), e))
                .collect();
            // Sorted when the projection wants the canonical order; one that applies events
            // as they come takes them in commit order, as its rebuild does.
            if !self.in_commit_order() {
                events.sort_by(|a, b| a.0.cmp(&b.0));
            }
            let late = match &self.checkpoint.canonical_mark {
                Some(mark) => events
                    .iter()
                    .filter(|(key, _)| key.as_ref().is_some_and(|key| key < mark))
                    .count(),
                None => 0,
            };
            if late > 0 {
                done.late += late;
                self.checkpoint.late += late as i64;
                tracing::info!(projection = %self.label(), late, "late events");
                let earliest = events.first().and_then(|(key, _)| key.clone());
                if self.projection.late_events() == LateEvents::Rebuild
                    && let Some(earliest) = earliest.filter(|key| self.journal.reaches(key))
                {
                    // Undo what was applied after the earliest late event, then apply those
                    // events again with this batch's, in canonical order: as much work as
                    // the event is late, and nothing read again from the store.
                    let (undone, last) = self.journal.rewind(&earliest, &mut self.state);
                    done.reapplied += undone.len();
                    self.checkpoint.applied -= undone.iter().filter(|e| e.applied).count() as i64;
                    self.checkpoint.canonical_mark = last;
                    let mut redo: Vec<(Option<CanonicalKey>, StoredEvent)> = undone
                        .into_iter()
                        .map(|entry| (Some(entry.key), entry.event))
                        .chain(events.into_iter().filter(|(key, _)| key.is_some()))
                        .collect();
                    redo.sort_by(|a, b| a.0.cmp(&b.0));
                    if !self.store_batch(&mut done, redo, batch.next).await? {
                        return Ok(done);
                    }
                    continue;
                }
                if self.projection.late_events() == LateEvents::Rebuild {
                    self.rebuild_state_until(Some(batch.next)).await?;
                    self.checkpoint.rebuilds += 1;
                    done.rebuilt = true;
                    let written = self.persist().await?;
                    if !done.count(written, 0) {
                        return Ok(done);
                    }
                    continue;
                }
            }
            if !self.store_batch(&mut done, events, batch.next).await? {
                return Ok(done);
            }
        }
    }

    /// Drops the state and replays the log in canonical order up to the last event a
    /// follower can reach; the new rows replace the old ones, with the checkpoint, in one
    /// transaction. Under leases it runs only while it holds the projection's lease; a
    /// rebuild another worker's write overtook stores nothing and says so.
    pub async fn rebuild(&mut self) -> Result<(), ProjectionRunError> {
        if let Err(holder) = self.hold_lease().await? {
            return Err(ProjectionRunError::Held {
                projection: self.label(),
                holder,
            });
        }
        // A rebuild is how an operator gives a paused projection its events again.
        let piece = self.piece();
        if crate::faults::resume(&self.store, &piece, "the projection was rebuilt")
            .await
            .map_err(|source| self.receipt_error(source))?
        {
            self.faults = crate::faults::FaultCount::default();
        }
        self.rebuild_state().await?;
        self.checkpoint.rebuilds += 1;
        match self.persist().await? {
            Written::Stored => Ok(()),
            Written::Superseded | Written::LeaseLost | Written::Crossed(..) => {
                Err(ProjectionRunError::Overtaken {
                    projection: self.label(),
                })
            }
        }
    }

    /// Applies a batch's `events`, moves the follower to `next` and stores the rows with
    /// the checkpoint, counting it in `done`; `false` when the runner stops.
    async fn store_batch(
        &mut self,
        done: &mut CatchUp,
        events: Vec<(Option<CanonicalKey>, StoredEvent)>,
        next: LogPosition,
    ) -> Result<bool, ProjectionRunError> {
        let (applied, quarantined) = self.apply_all(events).await?;
        done.quarantined += quarantined;
        self.checkpoint.follow = next;
        let written = self.persist().await?;
        Ok(done.count(written, applied))
    }

    fn receipt_error(&self, source: crate::store::AppendError) -> ProjectionRunError {
        ProjectionRunError::Receipt {
            projection: self.label(),
            source,
        }
    }

    /// The piece's name in fault receipts and pauses: `projection <pack>/<name>`.
    pub fn piece(&self) -> String {
        format!("projection {}", self.label())
    }

    /// Applies `events` in order, through the store's pack code (jailed, one call for the
    /// batch); returns how many applied and how many were quarantined instead. Each event
    /// with its canonical `key` moves into the journal with how to undo it (for projections
    /// that rebuild on late events), so it is kept without a copy, and moves the canonical
    /// mark. A fault quarantines its event with a receipt; faults in a row pause the
    /// projection, and the rest of the batch is set aside for the rebuild that resumes it.
    async fn apply_all(
        &mut self,
        events: Vec<(Option<CanonicalKey>, StoredEvent)>,
    ) -> Result<(usize, usize), ProjectionRunError> {
        // Personal data stays sealed: a projection may copy it, and only the query gateway
        // opens it, for readers who may see it.
        let envelopes: Vec<&ops_core::envelope::EventEnvelope> =
            events.iter().map(|(_, event)| &event.envelope).collect();
        let readable: Vec<Result<(u32, std::borrow::Cow<'_, Value>), String>> = self
            .store
            .current_sealed_payloads(&envelopes)
            .into_iter()
            .map(|current| match current {
                CurrentPayload::Current { version, payload } => Ok((version, payload)),
                CurrentPayload::UnknownType => {
                    Err("its type is not declared in this build".to_owned())
                }
                CurrentPayload::Unreadable { reason } => Err(reason),
            })
            .collect();
        let paused_before = self.faults.paused.is_some();
        let outcomes = if paused_before {
            Vec::new()
        } else {
            let inputs: Vec<crate::jail::ProjectedRef<'_>> = events
                .iter()
                .zip(&readable)
                .filter_map(|((_, event), readable)| {
                    let (version, payload) = readable.as_ref().ok()?;
                    Some(crate::jail::ProjectedRef {
                        envelope: &event.envelope,
                        stream_id: &event.stream_id,
                        stream_version: event.stream_version,
                        // Only an upcast payload goes along: one stored at the current
                        // version is the envelope's own (sealed, unopened), so the runner
                        // reads it there, with no copy sent and no deep comparison made.
                        payload: (*version != event.envelope.payload_schema_version)
                            .then_some(&**payload),
                        version: *version,
                    })
                })
                .collect();
            let journaled = self.journaled();
            self.store.pack_code().project(
                self.projection,
                &mut self.mirror,
                &inputs,
                &mut self.state,
                journaled,
                crate::faults::PAUSE_AFTER.saturating_sub(self.faults.in_a_row),
            )
        };
        let mut outcomes = outcomes.into_iter();
        // What could not be read, and why: the payloads themselves are done with.
        let readable: Vec<Result<(), String>> =
            readable.into_iter().map(|read| read.map(drop)).collect();
        let (mut applied, mut quarantined) = (0, 0);
        for ((key, event), readable) in events.into_iter().zip(readable) {
            let event_id = event.envelope.event_id;
            let not_given = || {
                format!(
                    "not given to the projection: it is paused after {} faults in a row (receipt {}); a rebuild resumes it",
                    crate::faults::PAUSE_AFTER,
                    self.faults
                        .paused
                        .map_or_else(|| "being recorded".to_owned(), |id| id.to_string())
                )
            };
            let set_aside = match readable {
                Err(reason) => Some(reason),
                Ok(_) if paused_before => Some(not_given()),
                Ok(_) => match outcomes.next() {
                    None => Some(not_given()),
                    Some(outcome) => match outcome {
                        Ok(undo) => {
                            self.faults.answered();
                            self.record(key, event, undo, true);
                            applied += 1;
                            continue;
                        }
                        Err(PieceError::Refused(reason)) => {
                            self.faults.answered();
                            Some(reason)
                        }
                        Err(PieceError::Fault(fault)) => {
                            let receipt = crate::faults::record(
                                &self.store,
                                self.projection.pack_id(),
                                &self.piece(),
                                crate::faults::Input::Event(event_id),
                                &fault,
                                &mut self.faults,
                            )
                            .await
                            .map_err(|source| self.receipt_error(source))?;
                            Some(format!(
                                "the projection's code faulted: {fault} (receipt {})",
                                receipt.event_id
                            ))
                        }
                        Err(PieceError::Jail(source)) => {
                            self.load().await?;
                            return Err(ProjectionRunError::Jail {
                                projection: self.label(),
                                source,
                            });
                        }
                    },
                },
            };
            let reason = set_aside.expect("an event not applied has its reason");
            let raw = serde_json::to_string(&event.envelope).unwrap_or_default();
            self.quarantine(&event_id.to_string(), &reason, &raw)
                .await?;
            quarantined += 1;
            // A set-aside event is journaled too, with nothing to undo: in its new place
            // after a late event it may apply (an acknowledgement whose opening arrived late).
            self.record(key, event, Vec::new(), false);
        }
        Ok((applied, quarantined))
    }

    /// Counts an event and moves the canonical mark to it, and journals it (for projections
    /// that rebuild on late events).
    fn record(
        &mut self,
        key: Option<CanonicalKey>,
        event: StoredEvent,
        undo: Vec<ops_core::projection::RowBefore>,
        applied: bool,
    ) {
        if applied {
            self.checkpoint.applied += 1;
        }
        if let Some(key) = &key
            && self
                .checkpoint
                .canonical_mark
                .as_ref()
                .is_none_or(|mark| key > mark)
        {
            self.checkpoint.canonical_mark = Some(key.clone());
        }
        if let Some(key) = key.filter(|_| self.journaled()) {
            self.journal.record(JournalEntry {
                key,
                undo,
                event,
                applied,
            });
        }
    }

    /// Whether applied events are journaled: for projections that rebuild on late events.
    fn journaled(&self) -> bool {
        self.projection.late_events() == LateEvents::Rebuild
    }

    async fn quarantine(
        &self,
        reference: &str,
        reason: &str,
        raw: &str,
    ) -> Result<(), ProjectionRunError> {
        self.store
            .quarantine(
                &format!("projection:{}", self.label()),
                reference,
                reason,
                raw,
            )
            .await
            .map_err(|e| self.db_error(e))
    }

    /// Drops the state and replays the log in canonical order up to where the follower is.
    async fn rebuild_state(&mut self) -> Result<(), ProjectionRunError> {
        let head = self.store.head().await?.map(|(position, _)| position);
        self.rebuild_state_until(head).await
    }

    async fn rebuild_state_until(
        &mut self,
        until: Option<LogPosition>,
    ) -> Result<(), ProjectionRunError> {
        let Some(until) = until else {
            self.state = State::default();
            self.checkpoint.follow = LogPosition::default();
            self.checkpoint.canonical_mark = None;
            self.journal = Journal::default();
            return Ok(());
        };
        self.state.clear();
        self.checkpoint.canonical_mark = None;
        self.checkpoint.applied = 0;
        self.journal = Journal::default();
        if self.in_commit_order() {
            self.replay_in_commit_order(until).await?;
        } else {
            self.replay_after(None, until).await?;
        }
        Ok(())
    }

    /// The names of the event types it folds: all it reads, each through its type's index.
    fn folded_types(&self) -> Vec<&'static str> {
        self.projection
            .event_types()
            .iter()
            .map(|event_type| event_type.name())
            .collect()
    }

    /// Whether it takes events in commit order, live and on rebuild: it declared each
    /// stream in its own order (`Ordering::PerStream`; streams interleave as committed),
    /// or late events applied as they come (`LateEvents::ApplyInArrivalOrder`). Either way
    /// a rebuild gives the state that following the log live gave.
    fn in_commit_order(&self) -> bool {
        self.projection.ordering() == Ordering::PerStream
            || self.projection.late_events() == LateEvents::ApplyInArrivalOrder
    }

    /// Its partition's page of `types` after `at`: the one `ahead` read if it started
    /// there, or read now.
    async fn follow_page(
        &self,
        ahead: Option<ReadAhead<LogPosition, FollowBatch>>,
        types: &[&'static str],
        at: LogPosition,
    ) -> Result<FollowBatch, ReadError> {
        let read_now = self.store.follow_partition(types, at, PAGE, self.partition);
        ReadAhead::or_read(ahead, &at, read_now).await
    }

    /// Its partition's page of `types` after `after`, read ahead.
    fn follow_ahead(
        &self,
        types: &[&'static str],
        after: LogPosition,
    ) -> ReadAhead<LogPosition, FollowBatch> {
        let (store, types, partition) = (self.store.clone(), types.to_vec(), self.partition);
        ReadAhead::start(after, async move {
            store.follow_partition(&types, after, PAGE, partition).await
        })
    }

    /// Applies, in commit order, every event of its types and partition up to `until`.
    async fn replay_in_commit_order(
        &mut self,
        until: LogPosition,
    ) -> Result<(), ProjectionRunError> {
        let folded = self.folded_types();
        let canonical = self.projection.ordering() == Ordering::Canonical;
        let mut position = LogPosition::default();
        let mut ahead: Option<ReadAhead<LogPosition, FollowBatch>> = None;
        while position < until {
            let batch = self.follow_page(ahead.take(), &folded, position).await?;
            if batch.next == position {
                break;
            }
            if batch.next < until {
                ahead = Some(self.follow_ahead(&folded, batch.next));
            }
            for corrupt in batch.corrupt.iter().filter(|c| c.position <= until) {
                self.quarantine(&corrupt.reference, &corrupt.reason, &corrupt.raw)
                    .await?;
            }
            let events = batch
                .events
                .into_iter()
                .filter(|event| event.position <= until)
                .map(|e| (canonical.then(|| CanonicalKey::of(&e.envelope)), e))
                .collect();
            self.apply_all(events).await?;
            position = batch.next;
        }
        self.checkpoint.follow = until;
        Ok(())
    }

    /// Applies, in canonical order, every event the follower can reach by `until` whose
    /// key sorts after `after` (`None`: from the start); returns how many it replayed.
    async fn replay_after(
        &mut self,
        mut after: Option<CanonicalKey>,
        until: LogPosition,
    ) -> Result<usize, ProjectionRunError> {
        let total = match &self.progress {
            Some(_) => self.store.count().await?.max(0) as u64,
            None => 0,
        };
        let mut replayed = 0u64;
        // Only the types it folds are read, and only its own streams' rows decoded.
        let folded = self.folded_types();
        let partition = self.partition;
        let mut ahead: Option<ReadAhead<Option<CanonicalKey>, ReplayPage>> = None;
        loop {
            let page = ReadAhead::or_read(
                ahead.take(),
                &after,
                self.store
                    .replay_of(after.as_ref(), until, PAGE, &folded, partition),
            )
            .await?;
            let Some(next) = page.next else { break };
            after = Some(next);
            let (store, types, from) = (self.store.clone(), folded.clone(), after.clone());
            ahead = Some(ReadAhead::start(after.clone(), async move {
                store
                    .replay_of(from.as_ref(), until, PAGE, &types, partition)
                    .await
            }));
            replayed += page.read as u64;
            if let Some(progress) = &self.progress {
                progress(replayed, total.max(replayed));
            }
            let events = page
                .events
                .into_iter()
                .map(|event| (Some(CanonicalKey::of(&event.envelope)), event))
                .collect();
            self.apply_all(events).await?;
        }
        // Events of other types were not read: the rebuild is done all the same.
        if let Some(progress) = &self.progress {
            progress(total.max(replayed), total.max(replayed));
        }
        self.checkpoint.follow = until;
        Ok(replayed as usize)
    }

    /// Stores the changed rows and the checkpoint in one transaction. When another worker
    /// had stored a checkpoint since this one read it, or took its lease, the write is
    /// refused and the stored state loaded instead. On failure the in-memory state is
    /// reloaded too, so memory never runs ahead of what is stored.
    async fn persist(&mut self) -> Result<Written, ProjectionRunError> {
        let changes = self.state.take_changes();
        match self.write(&changes, false).await {
            Ok(Written::Stored) => Ok(Written::Stored),
            Ok(Written::Crossed(table, key, owner)) => {
                self.load().await?;
                Err(self.crossed(table, key, owner))
            }
            Ok(refused) => {
                tracing::info!(projection = %self.label(), ?refused, "another worker stored this batch first or holds the lease; its state is loaded");
                if refused == Written::LeaseLost {
                    self.lease = None;
                }
                self.load().await?;
                Ok(refused)
            }
            Err(error) => {
                self.load().await?;
                Err(self.db_error(error))
            }
        }
    }

    fn crossed(&self, table: String, key: String, owner: i64) -> ProjectionRunError {
        ProjectionRunError::CrossPartition {
            projection: self.label(),
            table,
            key,
            owner,
            writer: self.partition.index,
        }
    }

    /// This runner's share of the new version is complete: point its `core_projections`
    /// row at it, in one transaction with the rows; when the build is complete (every
    /// partition switched), drop the tables of every other version or layout.
    async fn switch_to_this_version(
        &mut self,
        previous: Option<u32>,
    ) -> Result<(), ProjectionRunError> {
        // The table is emptied first (a crashed or overtaken build may have left rows), so
        // every row is written, not only those that differ from what was loaded.
        self.state.forget_changes();
        let changes: Vec<_> = self
            .state
            .rows()
            .map(|((table, key), row)| ((table.to_owned(), key.to_owned()), Some(row.clone())))
            .collect();
        let written = self
            .write(&changes, true)
            .await
            .map_err(|e| self.db_error(e))?;
        match written {
            Written::Stored => {}
            Written::Crossed(table, key, owner) => return Err(self.crossed(table, key, owner)),
            // Another worker built this version at the same time and switched first.
            Written::Superseded => return self.load().await,
            // Another worker took the lease over and builds it; this one tries again once
            // it holds the lease.
            Written::LeaseLost => {
                self.lease = None;
                return Ok(());
            }
        }
        if let Some(old) = previous {
            tracing::info!(projection = %self.label(), from = old, to = self.projection.version(), "projection rebuilt into a new version");
        }
        Ok(())
    }

    /// Writes rows and checkpoint if this runner's lease (when it has one) is still its own
    /// and the stored checkpoint is still the generation it read (else nothing is
    /// written), and moves the generation on.
    /// `switching`: this write makes the version active (for its partition); it replaces
    /// whatever the table holds (of its partition), since a worker that crashed while
    /// building, or lost the race to build, may have left rows there.
    async fn write(
        &mut self,
        changes: &[((String, String), Option<Value>)],
        switching: bool,
    ) -> Result<Written, sqlx::Error> {
        let table = self.table();
        let owner = owner_of(self.projection);
        let row_name = self.row_name();
        let partition = self.partition;
        let part = i64::from(partition.index);
        let partitions_like = partitions_like(self.projection.name());
        let dialect = self.store.db().dialect();
        let checkpoint = &self.checkpoint;
        let mark = checkpoint
            .canonical_mark
            .as_ref()
            .map(|mark| serde_json::to_string(mark).expect("a key is plain JSON"));
        let expected = checkpoint.generation;
        let next_generation = expected.map_or(1, |g| g + 1);
        let now_us = Timestamp::now().unix_micros();
        let fence = self.lease.as_ref().map(Lease::fence);
        let written = on_db!(self.store.db(), pool => async {
            let mut tx = match dialect {
                Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
                Dialect::Postgres => pool.begin().await?,
            };
            // The lease's fence first (with one), so a worker that lost it writes nothing;
            // it renews the lease by the database's clock (`Db::now_us`).
            if let Some(fence) = &fence {
                let now_us = match dialect {
                    Dialect::Postgres => {
                        sqlx::query_scalar(crate::db::POSTGRES_NOW_US).fetch_one(&mut *tx).await?
                    }
                    Dialect::Sqlite => now_us,
                };
                let touched = atomic::bound(fence.statement(), &fence.binds(), now_us).execute(&mut *tx).await?.rows_affected();
                if fence.check(touched).is_err() {
                    tx.rollback().await?;
                    return Ok(Written::LeaseLost);
                }
            }
            // A statement on this projection's rows (`OF_PROJECTION`), `$4` its new table.
            macro_rules! on_its_rows {
                ($make:path, $sql:literal) => {
                    $make(&format!($sql))
                        .bind(&owner)
                        .bind(self.projection.name())
                        .bind(&partitions_like)
                        .bind(&table)
                };
            }
            // The tables of other versions and layouts, read before this write moves its own
            // row off its old one.
            let retired: Vec<String> = if switching {
                let tables: Vec<String> = on_its_rows!(
                    sqlx::query_scalar,
                    "SELECT DISTINCT state_table FROM core_projections WHERE {OF_PROJECTION} AND state_table <> $4"
                )
                .fetch_all(&mut *tx)
                .await?;
                tables.into_iter().filter(|t| is_state_table_name(t)).collect()
            } else {
                Vec::new()
            };
            // Then the checkpoint's own fence, before any row: it is created only if there
            // is none, and replaced only at the generation this runner read. Another writer
            // of the same row waits on its lock, then sees the moved generation and writes
            // nothing.
            let fenced = match expected {
                None => sqlx::query(
                    "INSERT INTO core_projections (owner, name, version, state_table, follow_tx_order, follow_seq, \
                     canonical_mark, applied_events, late_events, rebuilds, max_lag_ms, updated_at_us, generation) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (owner, name) DO NOTHING",
                ),
                Some(_) => sqlx::query(
                    "UPDATE core_projections SET version = $3, state_table = $4, follow_tx_order = $5, follow_seq = $6, \
                     canonical_mark = $7, applied_events = $8, late_events = $9, rebuilds = $10, max_lag_ms = $11, \
                     updated_at_us = $12, generation = $13 WHERE owner = $1 AND name = $2 AND generation = $14",
                ),
            }
            .bind(&owner)
            .bind(&row_name)
            .bind(i64::from(self.projection.version()))
            .bind(&table)
            .bind(checkpoint.follow.tx_order)
            .bind(checkpoint.follow.seq)
            .bind(mark)
            .bind(checkpoint.applied)
            .bind(checkpoint.late)
            .bind(checkpoint.rebuilds)
            .bind(self.max_lag_ms as i64)
            .bind(now_us)
            .bind(next_generation);
            let fenced = match expected {
                Some(generation) => fenced.bind(generation),
                None => fenced,
            };
            if fenced.execute(&mut *tx).await?.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(Written::Superseded);
            }
            let own = own_rows(partition);
            if switching {
                sqlx::raw_sql(&format!("DELETE FROM {table} WHERE TRUE{own}")).execute(&mut *tx).await?;
            }
            // Many rows to a statement, not one: a batch's rows cost a few round trips.
            let (upserts, deletes): (Vec<_>, Vec<_>) =
                changes.iter().partition(|(_, document)| document.is_some());
            for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
                let columns = if partition.is_split() { ", part" } else { "" };
                let mut query = QueryBuilder::new(format!("INSERT INTO {table} (tbl, key, document{columns}) "));
                query.push_values(chunk, |mut row, ((tbl, key), document)| {
                    row.push_bind(tbl.as_str())
                        .push_bind(key.as_str())
                        .push_bind(document.as_ref().map(Value::to_string));
                    if partition.is_split() {
                        row.push_bind(part);
                    }
                });
                query.push(" ON CONFLICT (tbl, key) DO UPDATE SET document = excluded.document");
                if partition.is_split() {
                    // Another partition's row is left as it is, and the count tells.
                    query.push(format!(" WHERE {table}.part = excluded.part"));
                }
                let written = query.build().execute(&mut *tx).await?.rows_affected();
                if written != chunk.len() as u64 {
                    // Which row, and whose, for the error.
                    let mut query = QueryBuilder::new(format!("SELECT tbl, key, part FROM {table} WHERE part <> "));
                    query.push_bind(part).push(" AND (tbl, key) IN (");
                    push_row_keys(&mut query, chunk);
                    query.push(") ORDER BY tbl, key LIMIT 1");
                    let (tbl, key, owner): (String, String, i64) =
                        query.build_query_as().fetch_one(&mut *tx).await?;
                    tx.rollback().await?;
                    return Ok(Written::Crossed(tbl, key, owner));
                }
            }
            for chunk in deletes.chunks(ROWS_PER_STATEMENT) {
                let mut query = QueryBuilder::new(format!("DELETE FROM {table} WHERE (tbl, key) IN ("));
                push_row_keys(&mut query, chunk);
                query.push(format!("){own}"));
                query.build().execute(&mut *tx).await?;
            }
            if switching {
                // Partitions switching at once take turns from here to their commits, so
                // the last one counts every other's switch and retires the old layout
                // (SQLite's writers take turns anyway). Only from here: each one's rows
                // are written above at the same time as the others'.
                if dialect == Dialect::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock(7204, hashtext($1))")
                        .bind(format!("{owner}/{}", self.projection.name()))
                        .execute(&mut *tx)
                        .await?;
                }
                // The build is complete when every partition of this layout points at its
                // table: then every other layout's table goes, with its rows.
                let switched: i64 = on_its_rows!(
                    sqlx::query_scalar,
                    "SELECT count(*) FROM core_projections WHERE {OF_PROJECTION} AND state_table = $4"
                )
                .fetch_one(&mut *tx)
                .await?;
                if switched >= i64::from(partition.count) {
                    for old_table in &retired {
                        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {old_table}")).execute(&mut *tx).await?;
                    }
                    on_its_rows!(
                        sqlx::query,
                        "DELETE FROM core_projections WHERE {OF_PROJECTION} AND state_table <> $4"
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Written::Stored)
        }
        .await)?;
        if written == Written::Stored {
            self.checkpoint.generation = Some(next_generation);
        }
        Ok(written)
    }

    /// Freshness against the log head; a violated objective is logged.
    pub async fn freshness(&self) -> Result<Freshness, ProjectionRunError> {
        let freshness = freshness_of(
            &self.store,
            Some(self.projection),
            FreshnessRow {
                owner: owner_of(self.projection),
                name: self.row_name(),
                partition: self.partition,
                version: self.projection.version(),
                position: self.checkpoint.follow,
                max_lag_ms: self.max_lag_ms,
                applied_events: self.checkpoint.applied,
                late_events: self.checkpoint.late,
                rebuilds: self.checkpoint.rebuilds,
            },
        )
        .await?;
        Ok(freshness)
    }
}

struct FreshnessRow {
    owner: String,
    name: String,
    /// Whose streams' events count: a partition's lag is its own streams'.
    partition: Partition,
    version: u32,
    position: LogPosition,
    max_lag_ms: u64,
    applied_events: i64,
    late_events: i64,
    rebuilds: i64,
}

/// How fresh `row` is; `projection` (when this build has it) says which events it folds.
async fn freshness_of(
    store: &EventStore,
    projection: Option<&'static dyn DynProjection>,
    row: FreshnessRow,
) -> Result<Freshness, ReadError> {
    let head = store.committed_head().await?.map(|(position, _)| position);
    // Lag is how long the oldest event it folds and has not applied has waited: events of
    // other types after its checkpoint do not make it late. A projection this build does
    // not install is measured against every event.
    let oldest_unseen = match (head, projection) {
        (Some(head), _) if head <= row.position => None,
        (None, _) => None,
        (Some(_), Some(projection)) => {
            let types: Vec<&str> = projection.event_types().iter().map(|t| t.name()).collect();
            store
                .first_recorded_after(row.position, &types, row.partition)
                .await?
        }
        (Some(_), None) => store
            .follow(row.position, 1)
            .await?
            .events
            .first()
            .map(|e| e.recorded_at),
    };
    let lag_ms = oldest_unseen.map_or(0, |recorded| {
        let lag = Timestamp::now().unix_micros() - recorded.unix_micros();
        u64::try_from(lag / 1_000).unwrap_or(0)
    });
    let within_objective = lag_ms <= row.max_lag_ms;
    if !within_objective {
        tracing::warn!(
            projection = %format!("{}/{}", row.owner, row.name),
            lag_ms,
            max_lag_ms = row.max_lag_ms,
            "projection is behind its freshness objective"
        );
    }
    Ok(Freshness {
        owner: row.owner,
        name: row.name,
        version: row.version,
        position: row.position,
        head,
        lag_ms,
        max_lag_ms: row.max_lag_ms,
        within_objective,
        applied_events: row.applied_events,
        late_events: row.late_events,
        rebuilds: row.rebuilds,
    })
}

/// The freshness of every projection recorded in the database, for status commands.
pub async fn all_freshness(store: &EventStore) -> Result<Vec<Freshness>, ReadError> {
    let rows: Vec<FreshnessRow> = on_db!(store.db(), pool => {
        sqlx::query(
            "SELECT owner, name, version, follow_tx_order, follow_seq, max_lag_ms, applied_events, late_events, rebuilds \
             FROM core_projections ORDER BY owner, name",
        )
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| {
            let name: String = row.try_get("name")?;
            Ok::<_, sqlx::Error>(FreshnessRow {
                owner: row.try_get("owner")?,
                partition: partition_of_row(&name),
                name,
                version: row.try_get::<i64, _>("version")? as u32,
                position: LogPosition {
                    tx_order: row.try_get("follow_tx_order")?,
                    seq: row.try_get("follow_seq")?,
                },
                max_lag_ms: row.try_get::<i64, _>("max_lag_ms")? as u64,
                applied_events: row.try_get("applied_events")?,
                late_events: row.try_get("late_events")?,
                rebuilds: row.try_get("rebuilds")?,
            })
        })
        .collect::<Result<_, _>>()?
    });
    let mut out = Vec::new();
    for row in rows {
        let installed = ops_core::projection::installed(crate::CORE)
            .into_iter()
            .find(|p| owner_of(*p) == row.owner && projection_of_row(p.name(), &row.name));
        out.push(freshness_of(store, installed, row).await?);
    }
    Ok(out)
}

/// The partition a checkpoint row is of, by its name (`<name>.<index>of<count>`); a row
/// of a projection not split is `WHOLE`.
fn partition_of_row(row: &str) -> Partition {
    let parsed = row.rsplit_once('.').and_then(|(_, part)| {
        let (index, count) = part.split_once("of")?;
        Some(Partition {
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        })
    });
    parsed
        .filter(|partition| partition.index < partition.count)
        .unwrap_or(Partition::WHOLE)
}

/// Whether checkpoint row `row` is projection `name`'s own or one of its partitions'.
fn projection_of_row(name: &str, row: &str) -> bool {
    row.strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The stored rows of a projection's active version, sorted: `(tbl, key, document)` as
/// stored bytes, for comparing states exactly (every partition's, when it is split).
pub async fn stored_rows(
    store: &EventStore,
    projection: &dyn DynProjection,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    let table = state_table_of(projection);
    let sql = format!("SELECT tbl, key, document FROM {table} ORDER BY tbl, key");
    on_db!(store.db(), pool => sqlx::query_as(&sql).fetch_all(pool).await)
}

/// Every projection recorded in `core_projections`: `(owner, name)`, sorted.
pub async fn recorded(db: &crate::db::Db) -> Result<Vec<(String, String)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as("SELECT owner, name FROM core_projections ORDER BY owner, name")
            .fetch_all(pool)
            .await
    })
}

/// Projections nothing updated since `cutoff_us`: `(owner, name, state_table)`, sorted.
pub(crate) async fn idle_since(
    db: &crate::db::Db,
    cutoff_us: i64,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as(
            "SELECT owner, name, state_table FROM core_projections WHERE updated_at_us < $1 ORDER BY owner, name",
        )
        .bind(cutoff_us)
        .fetch_all(pool)
        .await
    })
}

/// Drops a projection's state table and its record, in one transaction (retention, after
/// its receipt). `table` must be a plain `pack_*` name; the caller checks it.
pub(crate) async fn forget(
    db: &crate::db::Db,
    owner: &str,
    name: &str,
    table: &str,
) -> Result<(), sqlx::Error> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM core_projections WHERE owner = $1 AND name = $2")
            .bind(owner)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
}
