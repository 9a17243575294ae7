//! The two real backends: SQLite (one file, WAL; the embedded default) and PostgreSQL
//! (several hosts on one database). Code that is the same for both is written once and
//! compiled for each through [`on_db!`]; where the SQL differs, [`Dialect`] says how.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the SQLite database {path}: {source}")]
    OpenSqlite { path: String, source: sqlx::Error },
    #[error("cannot back up to {path}: {reason}")]
    Backup { path: String, reason: String },
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    ConnectPostgres { url: String, source: sqlx::Error },
    #[error("`{schema}` is not a usable schema name: use `[a-z_][a-z0-9_]*`")]
    SchemaName { schema: String },
    #[error("`{url}` is neither `sqlite://PATH` nor `postgres://...`")]
    Url { url: String },
    #[error("schema `{schema}` is for a PostgreSQL store, and `{url}` is a SQLite file")]
    SchemaOnSqlite { schema: String, url: String },
    #[error("there is no store at {place}; this command only reads one, and creates none")]
    NoStore { place: String },
    #[error("cannot open the SQLite database {place} to write: {WRITES_TO_READ_ONLY}")]
    ReadOnly { place: String },
    #[error(
        "the store at {path} is read-only and its write-ahead log ({wal}) holds commits the file does not have yet; open it once where it can be written so they are checkpointed"
    )]
    ReadOnlyWithLog { path: String, wal: String },
}

/// What a command that writes is told of a store it cannot write.
pub const WRITES_TO_READ_ONLY: &str = "the store is read-only (its filesystem, its file's permissions or its server say so) and this command writes to it; commands that only read (`status`, `log`, `projections status`, …) work on it";

impl DbError {
    /// Whether the caller named something that is not there or not a store (a URL, a
    /// schema name, a store to read): their input, not a failure of the database.
    pub fn is_bad_input(&self) -> bool {
        match self {
            DbError::NoStore { .. }
            | DbError::ReadOnly { .. }
            | DbError::Url { .. }
            | DbError::SchemaName { .. }
            | DbError::SchemaOnSqlite { .. } => true,
            // The URL names a database the server does not have (SQLSTATE 3D000): the
            // operator's input, not the server's fault.
            DbError::ConnectPostgres {
                source: sqlx::Error::Database(error),
                ..
            } => error.code().as_deref() == Some("3D000"),
            _ => false,
        }
    }
}

/// Whether opening may create the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Existing {
    Create,
    Required,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `count` placeholders from the `first`th, comma-separated, for values bound in the
    /// order they appear: `?` on SQLite, whose lookup of a numbered parameter (`$n`) scans
    /// every parameter (a statement naming a thousand rows would cost a million steps),
    /// `$n` on PostgreSQL.
    pub fn placeholders(self, first: usize, count: usize) -> String {
        match self {
            Dialect::Sqlite => vec!["?"; count].join(", "),
            Dialect::Postgres => numbered_placeholders(first, count),
        }
    }

    /// What orders commits: on PostgreSQL the writing transaction's id, so followers can
    /// tell which rows are final (see `EventStore::follow`); SQLite has one writer at a
    /// time, so commit order is row order and this is 0.
    pub fn tx_order_expr(self) -> &'static str {
        match self {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "pg_current_xact_id()::text::bigint",
        }
    }
}

/// `$first, $first+1, …`: `count` numbered placeholders, which both backends read, for a
/// statement whose values are not all bound in the order they appear.
pub(crate) fn numbered_placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pool of one backend. Cloning shares the pool.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A `LIKE … ESCAPE '!'` pattern for every text that starts with `prefix`: `_` and `%`
/// (wildcards to `LIKE`) and `!` stand for themselves.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let escaped = prefix
        .replace('!', "!!")
        .replace('_', "!_")
        .replace('%', "!%");
    format!("{escaped}%")
}

/// Runs `$body` with `$pool` bound to the typed pool of whichever backend `$db` is.
#[macro_export]
#[doc(hidden)]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub use on_db;

/// Whether a pooled connection is outside any transaction. One whose COMMIT failed (a full
/// disk) and whose ROLLBACK found nothing to roll back stays counted inside its transaction,
/// and every `begin` on it would fail; the pool drops it instead of handing it out, so the
/// next job gets a fresh connection and works once the disk has room.
fn outside_any_transaction<DB: sqlx::Database>(connection: &DB::Connection) -> bool {
    <DB::TransactionManager as sqlx::TransactionManager>::get_transaction_depth(connection) == 0
}

/// Makes a plain dump restore with `psql -v ON_ERROR_STOP=1` into a database where its schema
/// exists already (`public` always does): `CREATE SCHEMA x;` becomes `CREATE SCHEMA IF NOT
/// EXISTS x;`. Streamed line by line through a file beside the dump, then renamed over it.
fn restorable_into_an_existing_schema(path: &Path) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let rewritten = path.with_extension("rewriting");
    {
        let input = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut output = std::io::BufWriter::new(std::fs::File::create(&rewritten)?);
        for line in input.split(b'\n') {
            let line = line?;
            match line.strip_prefix(b"CREATE SCHEMA ") {
                Some(rest) if !rest.starts_with(b"IF NOT EXISTS") => {
                    output.write_all(b"CREATE SCHEMA IF NOT EXISTS ")?;
                    output.write_all(rest)?;
                }
                _ => output.write_all(&line)?,
            }
            output.write_all(b"\n")?;
        }
        output.flush()?;
    }
    std::fs::rename(&rewritten, path)
}

/// libpq's name of an SSL mode, for `PGSSLMODE`.
fn ssl_mode_name(mode: sqlx::postgres::PgSslMode) -> &'static str {
    use sqlx::postgres::PgSslMode;
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The password of a PostgreSQL URL, percent-decoded; `None` when it has none.
fn password_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let password = parsed.password()?;
    Some(
        percent_encoding::percent_decode_str(password)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// The PostgreSQL server's clock, in microseconds since the epoch (`clock_timestamp`, not
/// the transaction's start).
pub(crate) const POSTGRES_NOW_US: &str =
    "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint";

impl Db {
    /// A SQLite file, created if missing, in WAL mode.
    pub async fn open_sqlite(path: &Path) -> Result<Self, DbError> {
        Self::sqlite(path, Existing::Create).await
    }

    async fn sqlite(path: &Path, existing: Existing) -> Result<Self, DbError> {
        if existing == Existing::Required && !path.is_file() {
            return Err(DbError::NoStore {
                place: path.display().to_string(),
            });
        }
        let read_only = match writable(path) {
            Writable::Yes | Writable::Missing => None,
            Writable::No { filesystem } if existing == Existing::Required => Some(filesystem),
            Writable::No { .. } => {
                return Err(DbError::ReadOnly {
                    place: path.display().to_string(),
                });
            }
        };
        let mut options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(existing == Existing::Create)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable against application crashes; a power loss may
            // drop the last commits but never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        if let Some(filesystem) = read_only {
            options = options.read_only(true);
            // On a read-only filesystem SQLite cannot make the WAL index a reader needs.
            // With no commit left in the write-ahead log, nobody can write there either, so
            // the file is read as immutable; with commits there, it is read through the
            // index its last writer left (`-shm`), and refused when there is none, since
            // they would not be seen.
            if filesystem {
                let beside = |suffix: &str| {
                    path.with_extension(match path.extension() {
                        Some(extension) => format!("{}-{suffix}", extension.to_string_lossy()),
                        None => format!("-{suffix}"),
                    })
                };
                let wal = beside("wal");
                let logged = std::fs::metadata(&wal).is_ok_and(|wal| wal.len() > 0);
                if !logged {
                    options = options.immutable(true);
                } else if !beside("shm").is_file() {
                    return Err(DbError::ReadOnlyWithLog {
                        path: path.display().to_string(),
                        wal: wal.display().to_string(),
                    });
                }
            }
        }
        // Switching a new file to WAL takes a lock SQLite does not wait for (its busy
        // handler is not asked), so hosts opening one new file at once may find it locked:
        // they try again, for as long as the busy timeout would have waited.
        let mut attempt = 0u32;
        let pool = loop {
            let opened = SqlitePoolOptions::new()
                .max_connections(8)
                // A connection to a file cannot go stale the way a network one can: no ping
                // (a round trip to its worker thread) before every use.
                .test_before_acquire(false)
                .before_acquire(|connection, _| {
                    Box::pin(async move { Ok(outside_any_transaction::<sqlx::Sqlite>(connection)) })
                })
                .connect_with(options.clone())
                .await;
            match opened {
                Err(sqlx::Error::Database(error))
                    if error.code().as_deref() == Some("5") && attempt < 300 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 + u64::from(attempt % 10) * 7))
                        .await;
                }
                opened => {
                    break opened.map_err(|source| DbError::OpenSqlite {
                        path: path.display().to_string(),
                        source,
                    })?;
                }
            }
        };
        Ok(Db::Sqlite(pool))
    }

    /// A SQLite file that must exist already ([`DbError::NoStore`] otherwise); a file that
    /// cannot be written is opened read-only, so commands that only read still work.
    pub async fn open_sqlite_existing(path: &Path) -> Result<Self, DbError> {
        Self::sqlite(path, Existing::Required).await
    }

    /// PostgreSQL at `url`; with `schema`, every connection works in that schema (created
    /// if missing), so tests and tenants can share one database.
    pub async fn connect_postgres(url: &str, schema: Option<&str>) -> Result<Self, DbError> {
        Self::postgres(url, schema, Existing::Create).await
    }

    async fn postgres(
        url: &str,
        schema: Option<&str>,
        existing: Existing,
    ) -> Result<Self, DbError> {
        let connect_error = |source| DbError::ConnectPostgres {
            url: url.to_owned(),
            source,
        };
        let mut options = PgConnectOptions::from_str(url).map_err(connect_error)?;
        if let Some(schema) = schema {
            let valid = schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(DbError::SchemaName {
                    schema: schema.to_owned(),
                });
            }
            let setup = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await
                .map_err(connect_error)?;
            if existing == Existing::Required {
                let found: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                        .bind(schema)
                        .fetch_optional(&setup)
                        .await
                        .map_err(connect_error)?;
                setup.close().await;
                if found.is_none() {
                    return Err(DbError::NoStore {
                        place: format!("schema `{schema}` of {url}"),
                    });
                }
            } else {
                // Hosts starting together take turns: `IF NOT EXISTS` alone races. The name
                // was checked above, so it can stand in the statement.
                let create = format!(
                    "SELECT pg_advisory_xact_lock(7202, hashtext('{schema}')); CREATE SCHEMA IF NOT EXISTS {schema}"
                );
                let mut tx = setup.begin().await.map_err(connect_error)?;
                sqlx::raw_sql(&create)
                    .execute(&mut *tx)
                    .await
                    .map_err(connect_error)?;
                tx.commit().await.map_err(connect_error)?;
                setup.close().await;
            }
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .before_acquire(|connection, _| {
                Box::pin(async move { Ok(outside_any_transaction::<sqlx::Postgres>(connection)) })
            })
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Db::Postgres(pool))
    }

    /// `sqlite://PATH` or `postgres://...`, in `schema` if given (PostgreSQL only); a
    /// missing SQLite file or schema is created.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, DbError> {
        Self::at(url, schema, Existing::Create).await
    }

    /// As [`Db::connect`], for a store that must exist already: a missing SQLite file or
    /// schema is [`DbError::NoStore`], and nothing is created.
    pub async fn connect_existing(url: &str, schema: Option<&str>) -> Result<Self, DbError> {
        Self::at(url, schema, Existing::Required).await
    }

    async fn at(url: &str, schema: Option<&str>, existing: Existing) -> Result<Self, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(schema) = schema {
                return Err(DbError::SchemaOnSqlite {
                    schema: schema.to_owned(),
                    url: url.to_owned(),
                });
            }
            Db::sqlite(Path::new(path), existing).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Db::postgres(url, schema, existing).await
        } else {
            Err(DbError::Url {
                url: url.to_owned(),
            })
        }
    }

    /// Now, in microseconds since the epoch, by the clock that judges leases: the
    /// database server's for PostgreSQL (one clock for every host sharing it, however far
    /// theirs are off), this machine's for SQLite (whose every user is on this machine).
    pub async fn now_us(&self) -> Result<i64, sqlx::Error> {
        match self {
            Db::Sqlite(_) => {
                Ok(<ops_core::time::Timestamp as crate::clock::WallClock>::now().unix_micros())
            }
            Db::Postgres(pool) => sqlx::query_scalar(POSTGRES_NOW_US).fetch_one(pool).await,
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A consistent copy of the database in one new file, taken while it is in use: SQLite
    /// with `VACUUM INTO` (a database file), PostgreSQL with `pg_dump` (a plain SQL script
    /// of this schema, restored with `psql -f`; pg_dump authenticates as libpq does, with
    /// `PGPASSWORD` or `~/.pgpass`). It holds what the database holds: sealed personal data
    /// stays sealed, and subject keys, which live outside the database, are not in it.
    /// `url` is the store's PostgreSQL URL, whose password `pg_dump` is given through its
    /// environment (never its command line, which other users of the machine can read).
    pub async fn backup_to(&self, path: &Path, url: Option<&str>) -> Result<(), DbError> {
        let failed = |reason: String| DbError::Backup {
            path: path.display().to_string(),
            reason,
        };
        if path.exists() {
            return Err(failed("the file exists; choose a new path".to_owned()));
        }
        match self {
            Db::Sqlite(pool) => sqlx::query("VACUUM INTO $1")
                .bind(path.display().to_string())
                .execute(pool)
                .await
                .map(drop)
                .map_err(|error| failed(error.to_string())),
            Db::Postgres(pool) => {
                let schema: String = sqlx::query_scalar("SELECT current_schema()")
                    .fetch_one(pool)
                    .await
                    .map_err(|error| failed(error.to_string()))?;
                let options = pool.connect_options();
                let mut dump = std::process::Command::new("pg_dump");
                dump.args([
                    "--format=plain",
                    "--no-owner",
                    "--schema",
                    &schema,
                    "--file",
                ])
                .arg(path)
                .env("PGHOST", options.get_host())
                .env("PGPORT", options.get_port().to_string())
                .env("PGUSER", options.get_username());
                if let Some(database) = options.get_database() {
                    dump.env("PGDATABASE", database);
                }
                dump.env("PGSSLMODE", ssl_mode_name(options.get_ssl_mode()));
                if let Some(password) = url.and_then(password_of) {
                    dump.env("PGPASSWORD", password);
                }
                let output = tokio::task::spawn_blocking(move || dump.output())
                    .await
                    .map_err(|error| failed(error.to_string()))?
                    .map_err(|error| {
                        failed(format!(
                            "cannot run pg_dump ({error}); install PostgreSQL's client tools, of the server's version or newer"
                        ))
                    })?;
                if output.status.success() {
                    restorable_into_an_existing_schema(path).map_err(|error| {
                        let _ = std::fs::remove_file(path);
                        failed(format!("rewriting the dump: {error}"))
                    })
                } else {
                    let _ = std::fs::remove_file(path);
                    Err(failed(format!(
                        "pg_dump failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    )))
                }
            }
        }
    }

    /// Closes every connection. SQLite copies its write-ahead log into the file only when
    /// its last connection closes alone: two closing at the same instant can each see the
    /// other and both leave it, and a store's reading connections may outlive its pool. The
    /// log is recovered on the next open, but a store copied or checked file by file would
    /// lack it; so once the pool is closed, a log left with frames is checkpointed and
    /// truncated on a connection of its own. A store that cannot be written keeps its log.
    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pool) => {
                pool.close().await;
                let path = pool.connect_options().get_filename().to_owned();
                let truncated =
                    tokio::task::spawn_blocking(move || truncate_write_ahead_log(&path)).await;
                if let Ok(Err(error)) = truncated {
                    tracing::debug!(%error, "the write-ahead log is left for the next open");
                }
            }
        }
    }
}

/// Copies every frame of `path`'s write-ahead log into the file and empties the log; nothing
/// to do (and nothing opened) when there is no log or it is empty.
fn truncate_write_ahead_log(path: &Path) -> rusqlite::Result<()> {
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    if !std::fs::metadata(&log).is_ok_and(|log| log.len() > 0) {
        return Ok(());
    }
    open_existing_with_c_api(path)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

/// A connection through SQLite's C API to the store's file, which must exist: opened for
/// writing (never creating), waiting for locks as the pool's connections do.
fn open_existing_with_c_api(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(Duration::from_secs(30))?;
    Ok(connection)
}

/// `DELETE FROM table WHERE column IN (keys)`, in one statement, in the transaction of the
/// receipt that names the rows: how a table's owner removes rows it names by key
/// (retention), so a receipt and its removal are written together or not at all.
pub(crate) struct DeleteWhereIn<'a> {
    keys: &'a [String],
    statement: String,
}

impl<'a> DeleteWhereIn<'a> {
    pub fn new(dialect: Dialect, table: &str, column: &str, keys: &'a [String]) -> Self {
        // No key deletes nothing (`IN (NULL)` matches no row).
        let list = if keys.is_empty() {
            "NULL".to_owned()
        } else {
            dialect.placeholders(1, keys.len())
        };
        DeleteWhereIn {
            keys,
            statement: format!("DELETE FROM {table} WHERE {column} IN ({list})"),
        }
    }
}

impl crate::atomic::AtomicWrite for DeleteWhereIn<'_> {
    fn statement(&self) -> &str {
        &self.statement
    }

    fn binds(&self) -> Vec<crate::atomic::Bind<'_>> {
        self.keys
            .iter()
            .map(|key| crate::atomic::Bind::Text(key))
            .collect()
    }
}

/// Whether a store's file can be written.
enum Writable {
    Yes,
    Missing,
    /// Its permissions, or its whole filesystem (`filesystem`), say no.
    No {
        filesystem: bool,
    },
}

/// Asks the kernel by opening the file for writing (which changes nothing): its answer
/// covers permissions, a read-only mount and root's exemptions alike.
fn writable(path: &Path) -> Writable {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => Writable::Yes,
        Err(error) => match error.kind() {
            std::io::ErrorKind::ReadOnlyFilesystem => Writable::No { filesystem: true },
            std::io::ErrorKind::PermissionDenied => Writable::No { filesystem: false },
            // Missing, or a folder: opening says what it is.
            _ => Writable::Missing,
        },
    }
}

/// Whether `error` says the store refused a write because it is read-only (SQLite's
/// `SQLITE_READONLY` and its extended codes, PostgreSQL's `read_only_sql_transaction`).
pub fn is_read_only(error: &(dyn std::error::Error + 'static)) -> bool {
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(database)) => match database.code().as_deref() {
            Some("25006") => true,
            Some(code) => code.parse::<u32>().is_ok_and(|code| code & 0xff == 8),
            None => false,
        },
        _ => false,
    }
}

/// Whether `error` says the database is damaged (SQLite's "database disk image is
/// malformed", "file is not a database"): no later statement on it can work, so a worker
/// stops instead of failing every tick.
pub fn is_damaged(error: &(dyn std::error::Error + 'static)) -> bool {
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(database)) => {
            // SQLITE_CORRUPT and SQLITE_NOTADB, and their extended codes.
            let primary = database
                .code()
                .and_then(|code| code.parse::<u32>().ok())
                .map(|code| code & 0xff);
            matches!(primary, Some(11 | 26))
        }
        _ => false,
    }
}

/// Connections of our own to a SQLite store's file through its C API (`rusqlite`), beside
/// sqlx's pool: [`SqliteReads`] (idle ones) and [`SqliteWrites`] (one).
#[derive(Default)]
pub(crate) struct SqliteFile<Connections> {
    path: std::path::PathBuf,
    connections: std::sync::Mutex<Connections>,
    /// Set at a failure that means this file cannot be used this way: sqlx does it all.
    off: std::sync::atomic::AtomicBool,
}

impl<Connections: Default> SqliteFile<Connections> {
    /// Those of `db`'s file, none open yet; `None` for PostgreSQL.
    pub fn of(db: &Db) -> Option<std::sync::Arc<Self>> {
        match db {
            Db::Sqlite(pool) => Some(std::sync::Arc::new(SqliteFile {
                path: pool.connect_options().get_filename().to_owned(),
                ..Default::default()
            })),
            Db::Postgres(_) => None,
        }
    }
}

/// Statements that are a whole transaction on their own (an append that fits one insert),
/// run through SQLite's C API (`rusqlite`) on the caller's thread. sqlx's SQLite driver
/// hands each statement to its connection thread and the result back, two thread switches
/// that cost an append of one event more than SQLite takes to store it. The connection
/// never waits, so the caller's thread is never held: when another connection holds the
/// write lock, or another task this connection, `None` says to run the statement through
/// the pool, which waits. A statement that fails wrote nothing (it was its own
/// transaction), and the pool's run of it reports why. Like any connection's commit, one
/// of these now and then copies the write-ahead log into the file (SQLite's automatic
/// checkpoint), here on the caller's thread: turning that off would let a log that only
/// these statements write grow without end.
pub(crate) type SqliteWrites = SqliteFile<Option<rusqlite::Connection>>;

impl SqliteWrites {
    /// The first column of every row `sql` returns, bound with `binds` in order (`?`
    /// placeholders); `None`: it did not run here (busy, in use, or failed), run it
    /// through the pool.
    pub fn returning_ints(&self, sql: &str, binds: &[crate::atomic::Bind<'_>]) -> Option<Vec<i64>> {
        use std::sync::atomic::Ordering;
        if self.off.load(Ordering::Relaxed) {
            return None;
        }
        let mut slot = self.connections.try_lock().ok()?;
        if slot.is_none() {
            match self.open() {
                Ok(connection) => *slot = Some(connection),
                Err(error) => {
                    tracing::debug!(%error, path = %self.path.display(), "writing through sqlx from now on");
                    self.off.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let connection = slot.as_ref()?;
        Self::run(connection, sql, binds)
            .inspect_err(|error| tracing::debug!(%error, "a direct write is run through sqlx"))
            .ok()
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let connection = open_existing_with_c_api(&self.path)?;
        // Never waits: a busy file is written through the pool, whose connections wait.
        connection.busy_timeout(Duration::ZERO)?;
        // As the pool's connections are set up (`Db::sqlite`): both are per connection.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        Ok(connection)
    }

    fn run(
        connection: &rusqlite::Connection,
        sql: &str,
        binds: &[crate::atomic::Bind<'_>],
    ) -> rusqlite::Result<Vec<i64>> {
        use crate::atomic::Bind;
        let mut statement = connection.prepare_cached(sql)?;
        for (place, bind) in (1..).zip(binds) {
            match *bind {
                Bind::Text(text) => statement.raw_bind_parameter(place, text)?,
                Bind::MaybeText(text) => statement.raw_bind_parameter(place, text)?,
                Bind::Int(value) => statement.raw_bind_parameter(place, value)?,
                Bind::MaybeInt(value) => statement.raw_bind_parameter(place, value)?,
                // The database's clock is read in a transaction of the pool's.
                Bind::Now => {
                    return Err(rusqlite::Error::InvalidParameterName(format!(
                        "?{place}, the database's clock"
                    )));
                }
            }
        }
        if binds.len() != statement.parameter_count() {
            return Err(rusqlite::Error::InvalidParameterCount(
                binds.len(),
                statement.parameter_count(),
            ));
        }
        let mut rows = statement.raw_query();
        let mut values = Vec::new();
        while let Some(row) = rows.next()? {
            values.push(row.get(0)?);
        }
        Ok(values)
    }
}

/// A value bound to a read through [`SqliteReads`], by its place (`$1`, `$2`, …).
pub(crate) enum ReadBind {
    Int(i64),
    Text(String),
}

/// Reads of many rows on SQLite through its C API (`rusqlite`), on `query_only` connections of
/// their own to the same file, each query on a blocking thread. sqlx's SQLite driver hands
/// every row over from its connection thread one at a time, which cost a replay more than
/// decoding the rows; here a page costs one hand-over. A store these connections cannot
/// read (one opened immutable on a read-only filesystem, say) is read through sqlx, as
/// before: the first failure turns them off for good, so nothing is read twice by chance.
pub(crate) type SqliteReads = SqliteFile<Vec<rusqlite::Connection>>;

impl SqliteReads {
    /// Every row of `sql` with `binds`, each made by `row`; `None` when these reads are off
    /// (the caller reads through sqlx).
    pub async fn query<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        sql: &str,
        binds: Vec<ReadBind>,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Vec<T>> {
        use std::sync::atomic::Ordering;
        if self.off.load(Ordering::Relaxed) {
            return None;
        }
        let (reads, sql) = (self.clone(), sql.to_owned());
        let read = tokio::task::spawn_blocking(move || {
            let idle = reads
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let connection = match idle {
                Some(connection) => connection,
                None => reads.open()?,
            };
            let rows = Self::rows(&connection, &sql, &binds, row)?;
            reads
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(connection);
            Ok::<_, rusqlite::Error>(rows)
        })
        .await;
        match read {
            Ok(Ok(rows)) => Some(rows),
            Ok(Err(error)) => {
                tracing::debug!(%error, path = %self.path.display(), "reading through sqlx from now on");
                self.off.store(true, Ordering::Relaxed);
                None
            }
            Err(failed) => std::panic::resume_unwind(failed.into_panic()),
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        // Opened for writing, but `query_only`: a read-only connection that closes last
        // cannot copy the write-ahead log into the file, and leaves it.
        let connection = open_existing_with_c_api(&self.path)?;
        connection.pragma_update(None, "query_only", true)?;
        Ok(connection)
    }

    fn rows<T>(
        connection: &rusqlite::Connection,
        sql: &str,
        binds: &[ReadBind],
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let mut statement = connection.prepare_cached(sql)?;
        let mut bound = 0;
        for (place, bind) in binds.iter().enumerate() {
            let Some(index) = statement.parameter_index(&format!("${}", place + 1))? else {
                continue;
            };
            bound += 1;
            match bind {
                ReadBind::Int(value) => statement.raw_bind_parameter(index, value)?,
                ReadBind::Text(value) => statement.raw_bind_parameter(index, value.as_str())?,
            }
        }
        // Every parameter is one of `$1`…`$n`, or one would be read as NULL.
        if bound != statement.parameter_count() {
            return Err(rusqlite::Error::InvalidParameterCount(
                bound,
                statement.parameter_count(),
            ));
        }
        let mut rows = statement.raw_query();
        let mut read = Vec::new();
        while let Some(next) = rows.next()? {
            read.push(row(next)?);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_dump_gets_the_urls_password_decoded_and_its_ssl_mode() {
        assert_eq!(
            password_of("postgres://ops:p%40ss%2Fw0rd@db.example:5432/ops?sslmode=require"),
            Some("p@ss/w0rd".to_owned())
        );
        assert_eq!(password_of("postgres://ops@db.example/ops"), None);
        let options =
            PgConnectOptions::from_str("postgres://ops@db.example/ops?sslmode=verify-full")
                .expect("a URL");
        assert_eq!(ssl_mode_name(options.get_ssl_mode()), "verify-full");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reads_see_every_commit_and_turn_off_at_the_first_failure() {
        let dir = std::env::temp_dir().join(format!("ops-sqlite-reads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let db = Db::open_sqlite(&dir.join("store.db"))
            .await
            .expect("a store");
        let Db::Sqlite(pool) = &db else {
            unreachable!("opened on SQLite")
        };
        sqlx::raw_sql("CREATE TABLE t (n INTEGER, s TEXT)")
            .execute(pool)
            .await
            .expect("a table");
        let reads = SqliteReads::of(&db).expect("SQLite has them");
        let row = |row: &rusqlite::Row<'_>| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?));
        let select = "SELECT n, s FROM t WHERE n > $2 AND s <> $1 ORDER BY n";
        let binds = || vec![ReadBind::Text("skip".to_owned()), ReadBind::Int(1)];
        assert_eq!(reads.query(select, binds(), row).await, Some(Vec::new()));
        for (n, s) in [(1, "a"), (2, "b"), (3, "skip"), (4, "d")] {
            sqlx::query("INSERT INTO t VALUES ($1, $2)")
                .bind(n)
                .bind(s)
                .execute(pool)
                .await
                .expect("a row");
        }
        // Committed through sqlx, read on a connection of its own, binds by their place.
        let read = reads.query(select, binds(), row).await;
        assert_eq!(read, Some(vec![(2, "b".to_owned()), (4, "d".to_owned())]));
        // A parameter not among `$1`…`$n` would read as NULL: refused, and reads turn off.
        let unbound = "SELECT n, s FROM t WHERE n > ?3";
        assert_eq!(reads.query(unbound, binds(), row).await, None);
        assert_eq!(reads.query(select, binds(), row).await, None);
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    /// A closed store leaves no write-ahead log with frames, even while its reading
    /// connections are still open (a store copied or checked file by file after a run would
    /// lack the log): closing empties it on a connection of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_store_leaves_no_write_ahead_log_while_its_reads_are_open() {
        let dir = std::env::temp_dir().join(format!("ops-sqlite-close-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let path = dir.join("store.db");
        let db = Db::open_sqlite(&path).await.expect("a store");
        let reads = SqliteReads::of(&db).expect("SQLite has them");
        let Db::Sqlite(pool) = &db else {
            unreachable!("opened on SQLite")
        };
        sqlx::raw_sql("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)")
            .execute(pool)
            .await
            .expect("a row");
        let row = |row: &rusqlite::Row<'_>| row.get::<_, i64>(0);
        assert_eq!(
            reads.query("SELECT n FROM t", Vec::new(), row).await,
            Some(vec![1])
        );
        db.close().await;
        let log = dir.join("store.db-wal");
        assert!(
            std::fs::metadata(&log).map_or(true, |log| log.len() == 0),
            "{} is left with {:?} bytes",
            log.display(),
            std::fs::metadata(&log).map(|log| log.len())
        );
        drop(reads);
        let reopened = rusqlite::Connection::open(&path).expect("the file");
        let rows: i64 = reopened
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("the row is still there");
        assert_eq!(rows, 1);
        drop(reopened);
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
