//! Real backends for tests: a SQLite file per test, and a PostgreSQL schema per test on
//! the server at `DATABASE_URL` (default: the local one CI provides). A test that cannot
//! reach PostgreSQL fails, loudly; it never skips.
//!
//! Schema (and restore database) names are unique to the run: `t<pid>_<n>_<test>`, so two
//! runs against one server never touch each other's state, and never `public`. A test
//! drops its schemas when it passes ([`drop_schemas_of`], which `on_both_backends!` calls);
//! what a failed or killed run left is dropped by the next run, once its process is gone.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ops_core_runtime::db::Db;
use ops_core_runtime::store::EventStore;

use crate::linked_registry;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A fresh path for a file of `test` (a key file, a secrets file), named by `suffix`.
pub fn temp_file(test: &str, suffix: &str) -> std::path::PathBuf {
    let path = sqlite_path(test).with_extension(suffix);
    let _ = std::fs::remove_file(&path);
    path
}

/// Where the SQLite database of `test` lives, so a test can read its raw bytes.
pub fn sqlite_path(test: &str) -> std::path::PathBuf {
    let dir = sqlite_dir();
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{test}-{}.db", std::process::id()))
}

/// Where [`sqlite_path`] puts the stores' files. The first call of a run removes the files
/// earlier runs left there whose process is gone (a failed test keeps its store for a look;
/// the next run removes it), as [`sweep_runs_that_are_gone`] does for PostgreSQL.
fn sqlite_dir() -> std::path::PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let dir = std::env::temp_dir().join("ops-tests");
    SWEPT.call_once(|| {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if run_is_gone(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    });
    dir
}

/// Whether the file `name` (`<test>-<pid>.<suffix>`, as [`sqlite_path`] and [`temp_file`]
/// name them) belongs to a process that is no longer running. A name of another form is
/// not one of ours and is kept.
fn run_is_gone(name: &str) -> bool {
    // A store's log and index are named after its database file.
    let file = SQLITE_FILES[1..]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    let Some((_, after)) = file.rsplit_once('-') else {
        return false;
    };
    let pid: String = after.chars().take_while(char::is_ascii_digit).collect();
    after[pid.len()..].starts_with('.') && process_is_gone(&pid)
}

/// Whether `pid` (digits read from a store's name) is another process's that has ended:
/// what the sweeps of both backends remove. Not this run's, nor a running process's.
fn process_is_gone(pid: &str) -> bool {
    !pid.is_empty()
        && pid != std::process::id().to_string()
        && !std::path::Path::new("/proc").join(pid).exists()
}

/// A SQLite store's files: the database and, beside it, its write-ahead log and index.
const SQLITE_FILES: [&str; 3] = ["", "-wal", "-shm"];

/// The schemas (and restore databases) this process made, by the test name they were made
/// for: the same name gives the same schema for the whole run, so a restore reconnects to it.
static MADE: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// The PostgreSQL schema of `test` in this run.
pub fn schema_of(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    made.entry(test.to_owned())
        .or_insert_with(|| {
            format!(
                "t{}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                test.to_lowercase()
            )
            .chars()
            .take(63)
            .collect()
        })
        .clone()
}

/// The database a restore of `test`'s backup goes to, `r` + its schema's name.
fn restore_database_of(test: &str) -> String {
    format!("r{}", &schema_of(test)[1..])
        .chars()
        .take(63)
        .collect()
}

/// A connection to the server itself, for creating and dropping schemas and databases.
async fn admin() -> sqlx::PgPool {
    let url = database_url();
    match Db::connect_postgres(&url, None).await {
        Ok(Db::Postgres(pool)) => pool,
        Ok(_) => unreachable!("a PostgreSQL url opens PostgreSQL"),
        Err(error) => panic!(
            "PostgreSQL is unreachable ({error}); set DATABASE_URL. Storage tests never skip."
        ),
    }
}

/// Drops what earlier runs left behind: schemas and restore databases of processes that
/// are gone (a failed test keeps its schema for a look; the next run removes it).
async fn sweep_runs_that_are_gone(admin: &sqlx::PgPool) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let gone = |name: &String| {
                let pid: String = name[1..].chars().take_while(char::is_ascii_digit).collect();
                process_is_gone(&pid)
            };
            let schemas: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t[0-9]+_[0-9]+_'",
            )
            .fetch_all(admin)
            .await
            .expect("listing test schemas");
            for schema in schemas.iter().filter(|name| gone(name)) {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(admin)
                    .await;
            }
            let databases: Vec<String> = sqlx::query_scalar(
                "SELECT datname::text FROM pg_database WHERE datname ~ '^r[0-9]+_[0-9]+_'",
            )
            .fetch_all(admin)
            .await
            .expect("listing restore databases");
            for database in databases.iter().filter(|name| gone(name)) {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                    .execute(admin)
                    .await;
            }
        })
        .await;
}

/// Drops the schemas and restore databases this run made for tests whose name starts with
/// `test`: what a passing test calls last.
pub async fn drop_schemas_of(test: &str) {
    let names: Vec<String> = {
        let made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        made.keys()
            .filter(|name| name.starts_with(test))
            .cloned()
            .collect()
    };
    if names.is_empty() {
        return;
    }
    let admin = admin().await;
    for name in &names {
        let schema = schema_of(name);
        let database = restore_database_of(name);
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&admin)
            .await
            .expect("dropping the test schema");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&admin)
            .await
            .expect("dropping the restore database");
    }
    admin.close().await;
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for name in names {
        made.remove(&name);
    }
}

/// Removes the stores this run made for tests or benchmarks whose name starts with
/// `prefix`: their PostgreSQL schemas and restore databases, and their SQLite files.
pub async fn remove_stores_of(prefix: &str) {
    drop_schemas_of(prefix).await;
    let this_run = format!("-{}.db", std::process::id());
    let Ok(entries) = std::fs::read_dir(sqlite_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = SQLITE_FILES
            .iter()
            .any(|suffix| name.ends_with(&format!("{this_run}{suffix}")));
        if ours && name.starts_with(prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Backend {
    /// An empty database of this backend, named after the test.
    pub async fn db(self, test: &str) -> Db {
        match self {
            Backend::Sqlite => {
                let path = sqlite_path(test);
                for suffix in SQLITE_FILES {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Backend::Postgres => {
                let admin = admin().await;
                sweep_runs_that_are_gone(&admin).await;
                sqlx::query(&format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    schema_of(test)
                ))
                .execute(&admin)
                .await
                .expect("drop the test schema");
                admin.close().await;
            }
        }
        self.open(test).await
    }

    /// `test`'s database as it is, on connections of its own.
    async fn open(self, test: &str) -> Db {
        match self {
            Backend::Sqlite => Db::open_sqlite(&sqlite_path(test))
                .await
                .expect("open SQLite"),
            Backend::Postgres => Db::connect_postgres(&database_url(), Some(&schema_of(test)))
                .await
                .expect("connect to the test schema"),
        }
    }

    /// The database a backup of `test`'s made by `Db::backup_to` restores to: the SQLite
    /// file itself, or for PostgreSQL a fresh database of this run, in which the test's
    /// schema exists already, into which `psql -v ON_ERROR_STOP=1` runs the dump, read in
    /// that schema.
    pub async fn restore(self, test: &str, backup: &std::path::Path) -> Db {
        match self {
            Backend::Sqlite => Db::open_sqlite(backup).await.expect("opening the backup"),
            Backend::Postgres => {
                let url = database_url();
                let database = restore_database_of(test);
                let admin = admin().await;
                for statement in [
                    format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                    format!("CREATE DATABASE {database}"),
                ] {
                    sqlx::query(&statement)
                        .execute(&admin)
                        .await
                        .expect("a database for the restore");
                }
                admin.close().await;
                let (base, query) = url.split_once('?').unwrap_or((&url, ""));
                let (server, _) = base.rsplit_once('/').expect("a database in DATABASE_URL");
                let restored_url = format!("{server}/{database}")
                    + &(if query.is_empty() {
                        String::new()
                    } else {
                        format!("?{query}")
                    });
                // The schema exists in the target already, as `public` always does: the dump
                // must still restore with every error stopping it.
                let target = sqlx::PgPool::connect(&restored_url)
                    .await
                    .expect("connect to the restore database");
                sqlx::query(&format!("CREATE SCHEMA {}", schema_of(test)))
                    .execute(&target)
                    .await
                    .expect("the schema, made before the restore");
                target.close().await;
                let output = std::process::Command::new("psql")
                    .args(["-v", "ON_ERROR_STOP=1", "-q", "-d", &restored_url, "-f"])
                    .arg(backup)
                    .output()
                    .expect("psql runs");
                assert!(
                    output.status.success(),
                    "restoring {}: {}",
                    backup.display(),
                    String::from_utf8_lossy(&output.stderr)
                );
                Db::connect_postgres(&restored_url, Some(&schema_of(test)))
                    .await
                    .expect("connect to the restored schema")
            }
        }
    }

    /// Another worker's store on `test`'s database as it is (nothing cleared): its own
    /// connections, which it can lose all at once, as a killed process does.
    pub async fn another_worker(self, test: &str) -> EventStore {
        store_on(self.open(test).await).await
    }

    /// An event store with every example pack's types, on an empty database.
    pub async fn store(self, test: &str) -> EventStore {
        store_on(self.db(test).await).await
    }
}

async fn store_on(db: Db) -> EventStore {
    EventStore::open(db, linked_registry())
        .await
        .expect("open the event store")
}

/// Runs each `async fn name(backend: Backend)` once per backend, as `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::storage::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::storage::Backend::Postgres).await;
                    $crate::storage::drop_schemas_of(::core::stringify!($test)).await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::run_is_gone;

    #[test]
    fn only_the_files_of_processes_that_are_gone_are_swept() {
        // No process has the largest pid the kernel could give; pid 1 always runs.
        let gone = u32::MAX;
        let this = std::process::id();
        for name in [
            format!("append-{gone}.db"),
            format!("append-{gone}.db-wal"),
            format!("append-{gone}.db-shm"),
            format!("a-test-with-dashes-{gone}.key"),
        ] {
            assert!(run_is_gone(&name), "{name} is of a run that is gone");
        }
        for name in [
            format!("append-{this}.db"),
            format!("append-{this}.db-wal"),
            "append-1.db".to_owned(),
            "notes.txt".to_owned(),
            "append-wal".to_owned(),
            format!("append-{gone}"),
        ] {
            assert!(!run_is_gone(&name), "{name} is kept");
        }
    }
}
