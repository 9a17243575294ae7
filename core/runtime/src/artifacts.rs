//! Owns `core_artifacts`: the bodies of query, derived and eval artifacts under their
//! content id. Nothing else writes the table. A body is stored (once) in the transaction of
//! its `ArtifactRecorded` event ([`AtomicWrite`]).

use crate::atomic::{AtomicWrite, Bind};
use crate::db::{Db, on_db};

/// An artifact body, stored under its content id once.
pub(crate) struct StoreBody<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
}

impl AtomicWrite for StoreBody<'_> {
    fn statement(&self) -> &'static str {
        "INSERT INTO core_artifacts (artifact_id, kind, body, recorded_at_us) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (artifact_id) DO NOTHING"
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![
            Bind::Text(self.id),
            Bind::Text(self.kind),
            Bind::Text(self.body),
            Bind::Now,
        ]
    }
}

/// The body stored under `artifact_id`.
pub(crate) async fn body(db: &Db, artifact_id: &str) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar("SELECT body FROM core_artifacts WHERE artifact_id = $1")
            .bind(artifact_id)
            .fetch_optional(pool)
            .await
    })
}

/// Every body of `kind`, by id: `(artifact_id, body)`.
pub(crate) async fn bodies_of_kind(
    db: &Db,
    kind: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as("SELECT artifact_id, body FROM core_artifacts WHERE kind = $1 ORDER BY artifact_id")
            .bind(kind)
            .fetch_all(pool)
            .await
    })
}

/// The ids of bodies recorded before `cutoff_us`, sorted: what retention may remove.
pub(crate) async fn recorded_before(db: &Db, cutoff_us: i64) -> Result<Vec<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT artifact_id FROM core_artifacts WHERE recorded_at_us < $1 ORDER BY artifact_id",
        )
        .bind(cutoff_us)
        .fetch_all(pool)
        .await
    })
}

/// Removes these bodies (retention, with its receipt); their `ArtifactRecorded` events stay.
pub(crate) fn remove(
    dialect: crate::db::Dialect,
    artifact_ids: &[String],
) -> crate::db::DeleteWhereIn<'_> {
    crate::db::DeleteWhereIn::new(dialect, "core_artifacts", "artifact_id", artifact_ids)
}
