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
                let schema = format!("t_{}", test.to_lowercase())
                    .chars()
                    .take(63)
                    .collect::<String>();
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
