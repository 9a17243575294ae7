//! Owns `core_commands`: each command once, with its outcome, the reason of a rejection and
//! the ids of the events it caused; the bus's idempotency record. Nothing else reads or
//! writes the table. A record is written in the transaction of its events
//! ([`AtomicWrite`]).

use crate::atomic::{AtomicWrite, Bind};
use crate::db::{Db, on_db};

/// A command's outcome as `core_commands` keeps it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CommandRecord {
    pub command_id: String,
    pub command_type: String,
    pub target_ref: String,
    pub dedupe_scope: String,
    pub envelope: String,
    pub capability_id: String,
    /// The capability state the check relied on (its last event).
    pub capability_state_ref: String,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub event_ids: String,
}

impl AtomicWrite for CommandRecord {
    fn statement(&self) -> &'static str {
        "INSERT INTO core_commands (command_id, command_type, target_ref, dedupe_scope, \
         envelope, capability_id, outcome, reason, event_ids, recorded_at_us, capability_state_ref) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![
            Bind::Text(&self.command_id),
            Bind::Text(&self.command_type),
            Bind::Text(&self.target_ref),
            Bind::Text(&self.dedupe_scope),
            Bind::Text(&self.envelope),
            Bind::Text(&self.capability_id),
            Bind::Text(self.outcome),
            Bind::MaybeText(self.reason.as_deref()),
            Bind::Text(&self.event_ids),
            Bind::Now,
            Bind::Text(&self.capability_state_ref),
        ]
    }
}

/// The recorded outcome of `command_id`: `(outcome, reason, event ids as JSON, capability
/// state ref)`.
pub(crate) async fn outcome_of(
    db: &Db,
    command_id: &str,
) -> Result<Option<(String, Option<String>, String, String)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as("SELECT outcome, reason, event_ids, capability_state_ref FROM core_commands WHERE command_id = $1")
            .bind(command_id)
            .fetch_optional(pool)
            .await
    })
}

/// The envelope `command_id` was submitted with, as stored.
pub(crate) async fn envelope_of(db: &Db, command_id: &str) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar("SELECT envelope FROM core_commands WHERE command_id = $1")
            .bind(command_id)
            .fetch_optional(pool)
            .await
    })
}
