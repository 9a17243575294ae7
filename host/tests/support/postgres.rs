//! A PostgreSQL schema of its own for one test (at `DATABASE_URL`), named `t<pid>_<n>_<name>`
//! (the pattern the workspace tests' clean-up knows) and dropped when the value is.

use std::sync::atomic::{AtomicUsize, Ordering};

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub struct Schema {
    pub name: String,
    runtime: tokio::runtime::Runtime,
    pool: sqlx::PgPool,
}

impl Schema {
    pub fn new(name: &str) -> Schema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}_{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let pool = runtime
            .block_on(sqlx::PgPool::connect(&database_url()))
            .unwrap_or_else(|error| {
                panic!("PostgreSQL at {} is unreachable: {error}", database_url())
            });
        Schema {
            name,
            runtime,
            pool,
        }
    }

    #[allow(dead_code)] // not every test binary that shares this reads rows
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        use sqlx::Row;
        let sql = sql.replace("{schema}", &self.name);
        self.runtime
            .block_on(sqlx::query(&sql).fetch_all(&self.pool))
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get::<String, _>(i)
                            .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                            .unwrap()
                    })
                    .collect()
            })
            .collect()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        let _ = self
            .runtime
            .block_on(sqlx::query(&drop).execute(&self.pool));
    }
}
