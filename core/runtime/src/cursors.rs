//! Owns `core_connector_cursors`: where each connector stream has been read up to, and its
//! watermark. Nothing else reads or writes the table. A cursor moves in the transaction
//! that stores the page it covers ([`AtomicWrite`]).

use ops_core::time::Timestamp;

use crate::atomic::{AtomicWrite, Bind, Fenced};
use crate::db::{Db, on_db};

/// Where a connector's stream has been read up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorUpdate {
    pub connector_id: String,
    pub stream: String,
    pub cursor: String,
    /// The latest `occurred_at` read so far.
    pub watermark: Option<Timestamp>,
    pub expected: CursorFence,
}

/// What the stored cursor must be for the page to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CursorFence {
    /// Whatever it is (a backfill reads again on purpose).
    Any,
    /// The cursor this worker read (`None`: none stored yet). When another worker moved it
    /// in the meantime, the page and its events are refused together.
    Is(Option<String>),
}

impl AtomicWrite for CursorUpdate {
    fn statement(&self) -> &'static str {
        match self.expected {
            CursorFence::Any => {
                "INSERT INTO core_connector_cursors (connector_id, stream, cursor, watermark_us, updated_at_us) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connector_id, stream) DO UPDATE SET cursor = excluded.cursor, \
                 watermark_us = excluded.watermark_us, updated_at_us = excluded.updated_at_us"
            }
            // A stored row is replaced only when it holds the expected cursor; with none
            // expected, any stored row means another worker got there first.
            CursorFence::Is(_) => {
                "INSERT INTO core_connector_cursors (connector_id, stream, cursor, watermark_us, updated_at_us) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connector_id, stream) DO UPDATE SET cursor = excluded.cursor, \
                 watermark_us = excluded.watermark_us, updated_at_us = excluded.updated_at_us \
                 WHERE core_connector_cursors.cursor = $6"
            }
        }
    }

    fn check(&self, rows_affected: u64) -> Result<(), Fenced> {
        if matches!(self.expected, CursorFence::Is(_)) && rows_affected == 0 {
            return Err(Fenced {
                what: format!(
                    "connector `{}` stream `{}`: another worker moved the cursor since it was read",
                    self.connector_id, self.stream
                ),
            });
        }
        Ok(())
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![
            Bind::Text(&self.connector_id),
            Bind::Text(&self.stream),
            Bind::Text(&self.cursor),
            Bind::MaybeInt(self.watermark.map(|w| w.unix_micros())),
            Bind::Now,
        ]
        .into_iter()
        .chain(match &self.expected {
            CursorFence::Any => None,
            CursorFence::Is(cursor) => Some(Bind::MaybeText(cursor.as_deref())),
        })
        .collect()
    }
}

/// Forgets where `connector_id`'s `stream` was read up to: its next sync reads from the start.
pub(crate) struct ClearCursor<'a> {
    pub connector_id: &'a str,
    pub stream: &'a str,
}

impl AtomicWrite for ClearCursor<'_> {
    fn statement(&self) -> &'static str {
        "DELETE FROM core_connector_cursors WHERE connector_id = $1 AND stream = $2"
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![Bind::Text(self.connector_id), Bind::Text(self.stream)]
    }

    fn check(&self, _: u64) -> Result<(), Fenced> {
        Ok(())
    }
}

/// The cursor and watermark of `connector_id`'s `stream`, if it was read before.
pub(crate) async fn read(
    db: &Db,
    connector_id: &str,
    stream: &str,
) -> Result<Option<(String, Option<Timestamp>)>, sqlx::Error> {
    let row: Option<(String, Option<i64>)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT cursor, watermark_us FROM core_connector_cursors WHERE connector_id = $1 AND stream = $2",
        )
        .bind(connector_id)
        .bind(stream)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|(cursor, watermark)| (cursor, watermark.and_then(Timestamp::from_unix_micros))))
}
