//! Owns `core_quarantine`: what could not be read or applied, with the reason, so nothing
//! is dropped silently. Nothing else reads or writes the table.

use crate::clock::WallClock;
use ops_core::time::Timestamp;

use crate::db::{Db, on_db};

/// Keeps `raw` under `(origin, reference, reason)`; finding the same thing again for the same
/// reason keeps one entry.
pub(crate) async fn keep(
    db: &Db,
    origin: &str,
    reference: &str,
    reason: &str,
    raw: &str,
) -> Result<(), sqlx::Error> {
    tracing::warn!(origin, reference, reason, "quarantined");
    on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO core_quarantine (origin, reference, reason, raw, recorded_at_us) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (origin, reference, reason) DO NOTHING",
        )
        .bind(origin)
        .bind(reference)
        .bind(reason)
        .bind(raw)
        .bind(Timestamp::now().unix_micros())
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// The entries of `origin`, oldest first: `(reference, reason, raw)`.
pub(crate) async fn of(
    db: &Db,
    origin: &str,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as(
            "SELECT reference, reason, raw FROM core_quarantine WHERE origin = $1 ORDER BY id",
        )
        .bind(origin)
        .fetch_all(pool)
        .await
    })
}

/// How many entries each origin has kept, by origin.
pub(crate) async fn counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as("SELECT origin, COUNT(*) FROM core_quarantine GROUP BY origin ORDER BY origin")
            .fetch_all(pool)
            .await
    })
}

/// Every entry, oldest first: `(origin, reference, reason, recorded_at_us)`.
pub(crate) async fn all(db: &Db) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as("SELECT origin, reference, reason, recorded_at_us FROM core_quarantine ORDER BY id")
            .fetch_all(pool)
            .await
    })
}

/// Releases every entry of `(origin, reference)`: what was set aside there is stored now,
/// in the same transaction as this write.
pub(crate) struct Release<'a> {
    pub origin: &'a str,
    pub reference: &'a str,
}

impl crate::atomic::AtomicWrite for Release<'_> {
    fn statement(&self) -> &'static str {
        "DELETE FROM core_quarantine WHERE origin = $1 AND reference = $2"
    }

    fn binds(&self) -> Vec<crate::atomic::Bind<'_>> {
        vec![
            crate::atomic::Bind::Text(self.origin),
            crate::atomic::Bind::Text(self.reference),
        ]
    }
}
