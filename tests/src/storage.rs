//! Real backends for tests: a SQLite file per test, and a PostgreSQL schema per test on
//! the server at `DATABASE_URL` (default: the local one CI provides). A test that cannot
//! reach PostgreSQL fails, loudly; it never skips.

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
    let dir = std::env::temp_dir().join("ops-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{test}-{}.db", std::process::id()))
}

/// The PostgreSQL schema of `test`.
fn schema_of(test: &str) -> String {
    format!("t_{}", test.to_lowercase())
        .chars()
        .take(63)
        .collect()
}

impl Backend {
    /// An empty database of this backend, named after the test.
    pub async fn db(self, test: &str) -> Db {
        match self {
            Backend::Sqlite => {
                let path = sqlite_path(test);
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Db::open_sqlite(&path).await.expect("open SQLite")
            }
            Backend::Postgres => {
                let url = database_url();
                let schema = schema_of(test);
                let admin = Db::connect_postgres(&url, None).await.unwrap_or_else(|error| {
                    panic!("PostgreSQL is unreachable ({error}); set DATABASE_URL. Storage tests never skip.")
                });
                if let Db::Postgres(pool) = &admin {
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(pool)
                        .await
                        .expect("drop the test schema");
                }
                admin.close().await;
                Db::connect_postgres(&url, Some(&schema))
                    .await
                    .expect("connect to the test schema")
            }
        }
    }

    /// The database a backup of `test`'s made by `Db::backup_to` restores to: the SQLite
    /// file itself, or for PostgreSQL a fresh database `r_<test>` into which `psql` runs
    /// the dump, read in the test's schema as the dump recreates it.
    pub async fn restore(self, test: &str, backup: &std::path::Path) -> Db {
        match self {
            Backend::Sqlite => Db::open_sqlite(backup).await.expect("opening the backup"),
            Backend::Postgres => {
                let url = database_url();
                let database = format!("r_{}", test.to_lowercase());
                let admin = Db::connect_postgres(&url, None).await.expect("PostgreSQL");
                if let Db::Postgres(pool) = &admin {
                    for statement in [
                        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                        format!("CREATE DATABASE {database}"),
                    ] {
                        sqlx::query(&statement)
                            .execute(pool)
                            .await
                            .expect("a database for the restore");
                    }
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

    /// An event store with every example pack's types, on an empty database.
    pub async fn store(self, test: &str) -> EventStore {
        EventStore::open(self.db(test).await, linked_registry())
            .await
            .expect("open the event store")
    }
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
                    super::$test($crate::storage::Backend::Postgres).await
                }
            )*
        }
    };
}
