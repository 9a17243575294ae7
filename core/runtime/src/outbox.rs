//! Owns `core_outbox`: the external effects accepted commands asked for, with their claim,
//! approval, attempts and final state. Nothing else writes the table. Rows join it, are
//! approved and are closed in the transaction of the events that record why
//! ([`AtomicWrite`]); a close or a heartbeat only holds while its dispatcher still holds
//! the claim (fencing).

use sqlx::Row;

use crate::atomic::{AtomicWrite, Bind, Fenced};
use crate::db::{Db, Dialect, on_db};

/// An external effect as the outbox keeps it, joining it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OutboxRow {
    pub command_id: String,
    pub command_type: String,
    pub destination: String,
    pub tenant_id: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub request: String,
    pub actor: String,
    pub capability_id: String,
    pub correlation_id: String,
    pub compensates: Option<String>,
    pub reversible: bool,
}

impl AtomicWrite for OutboxRow {
    fn statement(&self) -> &'static str {
        "INSERT INTO core_outbox (command_id, command_type, destination, tenant_id, \
         idempotency_key, request_hash, request, actor, capability_id, approval, state, attempts, \
         claimed_by, claimed_until_us, created_at_us, updated_at_us, correlation_id, compensates, reversible) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, 'pending', 0, NULL, 0, $10, $11, $12, $13, $14)"
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![
            Bind::Text(&self.command_id),
            Bind::Text(&self.command_type),
            Bind::Text(&self.destination),
            Bind::Text(&self.tenant_id),
            Bind::Text(&self.idempotency_key),
            Bind::Text(&self.request_hash),
            Bind::Text(&self.request),
            Bind::Text(&self.actor),
            Bind::Text(&self.capability_id),
            Bind::Now,
            Bind::Now,
            Bind::Text(&self.correlation_id),
            Bind::MaybeText(self.compensates.as_deref()),
            Bind::Int(i64::from(self.reversible)),
        ]
    }
}

/// An actor's approval of a pending row.
pub(crate) struct Approve<'a> {
    pub command_id: &'a str,
    pub approval: &'a str,
    pub expires_at_us: Option<i64>,
}

impl AtomicWrite for Approve<'_> {
    fn statement(&self) -> &'static str {
        // A row set aside to wait for its approval is claimable again at once.
        "UPDATE core_outbox SET approval = $1, approval_expires_us = $2, updated_at_us = $3, \
         claimed_until_us = CASE WHEN claimed_by IS NULL THEN 0 ELSE claimed_until_us END \
         WHERE command_id = $4 AND state = 'pending'"
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![
            Bind::Text(self.approval),
            Bind::MaybeInt(self.expires_at_us),
            Bind::Now,
            Bind::Text(self.command_id),
        ]
    }
}

/// Touches row `id` only while `claimed_by` still holds its claim: events written with it
/// are written by the dispatcher that owns the effect.
pub(crate) struct HoldsClaim<'a> {
    pub id: i64,
    pub claimed_by: &'a str,
}

impl AtomicWrite for HoldsClaim<'_> {
    fn statement(&self) -> &'static str {
        "UPDATE core_outbox SET updated_at_us = $1 WHERE id = $2 AND claimed_by = $3 AND state = 'pending'"
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![Bind::Now, Bind::Int(self.id), Bind::Text(self.claimed_by)]
    }

    /// A claim that ran out and was taken over refuses the events written with it.
    fn check(&self, rows_affected: u64) -> Result<(), Fenced> {
        still_claimed(self.id, self.claimed_by, rows_affected)
    }
}

/// A write on rows `ids` that holds only while `claimed_by` still claims every one of them:
/// renewing the claims ([`ClaimedRows::renew`]) or closing the rows ([`ClaimedRows::close`]).
/// It names every row in one statement and refuses the append it belongs to if it touched
/// fewer rows than it names.
pub(crate) struct ClaimedRows<'a> {
    ids: Vec<i64>,
    claimed_by: &'a str,
    value: Bind<'a>,
    /// A close, which also lets go of the claims and says when the row changed.
    closes: bool,
    statement: String,
}

impl<'a> ClaimedRows<'a> {
    /// Extends the claims to `until_us`, with the events written with it (the steps that
    /// say the effects are under way). A dispatcher posts an effect only after this, and
    /// writes it again while the post is in flight, so no other dispatcher can claim the
    /// row meanwhile. A claim that ran out but that nobody took over is still its own
    /// (claiming moves `claimed_by`), so it may go on.
    pub fn renew(dialect: Dialect, ids: Vec<i64>, claimed_by: &'a str, until_us: i64) -> Self {
        Self::new(
            dialect,
            "claimed_until_us",
            Bind::Int(until_us),
            ids,
            claimed_by,
        )
    }

    /// Closes the rows in `state`, with their receipts.
    pub fn close(
        dialect: Dialect,
        ids: Vec<i64>,
        claimed_by: &'a str,
        state: &'static str,
    ) -> Self {
        Self::new(dialect, "state", Bind::Text(state), ids, claimed_by)
    }

    /// Sets `column` to `value`; a close also lets go of the claims and sets when the row
    /// changed (`updated_at_us`, which quotas count closed rows by). A renewal sets no
    /// indexed column, so on PostgreSQL the row's new version stays on its page (a
    /// heap-only update, see migration 0011) and no index grows by it.
    fn new(
        dialect: Dialect,
        column: &str,
        value: Bind<'a>,
        ids: Vec<i64>,
        claimed_by: &'a str,
    ) -> Self {
        let closes = column == "state";
        let at = |n: usize| dialect.placeholders(n, 1);
        let (closing, holder_at) = if closes {
            (format!(", claimed_by = NULL, updated_at_us = {}", at(2)), 3)
        } else {
            (String::new(), 2)
        };
        let statement = format!(
            "UPDATE core_outbox SET {column} = {}{closing} \
             WHERE claimed_by = {} AND state = 'pending' AND id IN ({})",
            at(1),
            at(holder_at),
            dialect.placeholders(holder_at + 1, ids.len())
        );
        ClaimedRows {
            ids,
            claimed_by,
            value,
            closes,
            statement,
        }
    }
}

impl AtomicWrite for ClaimedRows<'_> {
    fn statement(&self) -> &str {
        &self.statement
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        std::iter::once(self.value)
            .chain(self.closes.then_some(Bind::Now))
            .chain([Bind::Text(self.claimed_by)])
            .chain(self.ids.iter().map(|id| Bind::Int(*id)))
            .collect()
    }

    fn check(&self, rows_affected: u64) -> Result<(), Fenced> {
        all_still_claimed(&self.ids, self.claimed_by, rows_affected)
    }
}

/// Whether a write conditioned on `claimed_by`'s claim of row `id` touched the row.
fn still_claimed(id: i64, claimed_by: &str, rows_affected: u64) -> Result<(), Fenced> {
    all_still_claimed(&[id], claimed_by, rows_affected)
}

/// Whether a write conditioned on `claimed_by`'s claims of rows `ids` touched every one.
fn all_still_claimed(ids: &[i64], claimed_by: &str, rows_affected: u64) -> Result<(), Fenced> {
    if rows_affected == ids.len() as u64 {
        Ok(())
    } else {
        Err(Fenced {
            what: format!(
                "{} of outbox rows {ids:?} are no longer claimed by `{claimed_by}`",
                ids.len() as u64 - rows_affected.min(ids.len() as u64)
            ),
        })
    }
}

/// Which rows a claim takes.
pub(crate) enum Claim<'a> {
    /// Pending rows whose hold is over (reversible ones, or irreversible ones created at or
    /// before `held_until_us`, or before the time `destinations` gives theirs), oldest first.
    HoldOver {
        held_until_us: i64,
        destinations: &'a [(String, i64)],
        limit: i64,
    },
    /// The one pending row of this command, whatever its hold.
    Only(&'a str),
}

/// A claimed row, its columns decoded; what they hold is parsed by the dispatcher.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ClaimedRow {
    pub id: i64,
    /// What the row was enqueued with.
    pub row: OutboxRow,
    pub approval: Option<String>,
    pub attempts: i64,
    pub approval_expires_us: Option<i64>,
    /// When the command that asked for it was accepted.
    pub created_at_us: i64,
}

impl ClaimedRow {
    /// Every column by name; a column that does not decode is an error, never a default.
    fn decode<R>(row: &R) -> Result<Self, sqlx::Error>
    where
        R: Row,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'c> &'c str: sqlx::ColumnIndex<R>,
    {
        Ok(ClaimedRow {
            id: row.try_get("id")?,
            row: OutboxRow {
                command_id: row.try_get("command_id")?,
                command_type: row.try_get("command_type")?,
                destination: row.try_get("destination")?,
                tenant_id: row.try_get("tenant_id")?,
                idempotency_key: row.try_get("idempotency_key")?,
                request_hash: row.try_get("request_hash")?,
                request: row.try_get("request")?,
                actor: row.try_get("actor")?,
                capability_id: row.try_get("capability_id")?,
                correlation_id: row.try_get("correlation_id")?,
                compensates: row.try_get("compensates")?,
                reversible: row.try_get::<i64, _>("reversible")? != 0,
            },
            approval: row.try_get("approval")?,
            attempts: row.try_get("attempts")?,
            approval_expires_us: row.try_get("approval_expires_us")?,
            created_at_us: row.try_get("created_at_us")?,
        })
    }
}

/// Claims rows for `claimer` until `lease_until_us`: pending rows whose last claim ran out
/// before `now_us`; on PostgreSQL rows another dispatcher is claiming are skipped, not
/// waited for. Each claim counts an attempt.
pub(crate) async fn claim(
    db: &Db,
    claimer: &str,
    lease_until_us: i64,
    now_us: i64,
    which: Claim<'_>,
) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    // On PostgreSQL the claim's commit does not wait for the log to reach the disk: nothing
    // is posted on a claim alone. The `Dispatched` steps are written before any post, in a
    // transaction that does wait, and the log is flushed in order, so that wait makes the
    // claim durable too; a claim lost with the server before then was never acted on, and
    // its rows are claimed again. One flush a batch fewer, where dispatchers queue on the
    // log's flushes.
    let (lock, relaxed) = match db.dialect() {
        Dialect::Postgres => (
            "FOR UPDATE SKIP LOCKED",
            " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed",
        ),
        Dialect::Sqlite => ("", ""),
    };
    // One row by its command is claimable when nobody holds it, even while it waits for
    // an approval; rows in general once their claim or wait ran out and their hold is over.
    let filter = match which {
        Claim::Only(_) => "(claimed_until_us < $3 OR claimed_by IS NULL) AND command_id = $5",
        Claim::HoldOver { destinations, .. } => &format!(
            "claimed_until_us < $3 AND (reversible = 1 OR created_at_us <= {})",
            if destinations.is_empty() {
                "$5".to_owned()
            } else {
                let holds: Vec<String> = (0..destinations.len())
                    .map(|n| format!("WHEN ${} THEN ${}", 6 + 2 * n, 7 + 2 * n))
                    .collect();
                format!("CASE destination {} ELSE $5 END", holds.join(" "))
            }
        ),
    };
    let sql = format!(
        "UPDATE core_outbox SET claimed_by = $1, claimed_until_us = $2, attempts = attempts + 1{relaxed} \
         WHERE id IN (SELECT id FROM core_outbox WHERE state = 'pending' \
         AND {filter} ORDER BY id LIMIT $4 {lock}) \
         RETURNING id, command_id, command_type, destination, tenant_id, idempotency_key, request_hash, \
         request, actor, capability_id, approval, attempts, correlation_id, compensates, reversible, \
         approval_expires_us, created_at_us"
    );
    on_db!(db, pool => {
        let query = sqlx::query(&sql).bind(claimer).bind(lease_until_us).bind(now_us);
        let query = match which {
            Claim::Only(command_id) => query.bind(1_i64).bind(command_id),
            Claim::HoldOver { held_until_us, destinations, limit } => {
                let mut query = query.bind(limit).bind(held_until_us);
                for (destination, held_until_us) in destinations {
                    query = query.bind(destination).bind(held_until_us);
                }
                query
            }
        };
        let rows = query.fetch_all(pool).await?;
        let mut claimed = rows.iter().map(ClaimedRow::decode).collect::<Result<Vec<_>, _>>()?;
        // `RETURNING` gives no order; dispatch goes oldest first.
        claimed.sort_by_key(|row| row.id);
        Ok(claimed)
    })
}

/// Gives claimed rows back untouched: unclaimed, not claimable again before
/// `claimable_from_us` (an approval makes them claimable at once), and the claim's attempt
/// not counted, since nothing was attempted. A row waiting for its approval is given back
/// until its next look; one a refused cancellation claimed, at once.
pub(crate) async fn release_claims(
    db: &Db,
    claimer: &str,
    ids: &[i64],
    claimable_from_us: i64,
) -> Result<(), sqlx::Error> {
    on_db!(db, pool => {
        for id in ids {
            sqlx::query(
                // An approval given while the row was claimed (its claimer saw none) makes
                // it claimable at once too, not only one given after it was let go.
                "UPDATE core_outbox SET claimed_by = NULL, \
                 claimed_until_us = CASE WHEN approval IS NULL THEN $1 ELSE 0 END, attempts = attempts - 1 \
                 WHERE id = $2 AND claimed_by = $3 AND state = 'pending'",
            )
            .bind(claimable_from_us)
            .bind(id)
            .bind(claimer)
            .execute(pool)
            .await?;
        }
        Ok(())
    })
}

/// What a quota counts executed effects by.
pub(crate) enum CountedBy<'a> {
    Destination(&'a str),
    /// The actor, as its JSON.
    Actor(&'a str),
}

/// How many effects were executed since `since_us`, to one destination or by one actor.
pub(crate) async fn executed_since(
    db: &Db,
    by: CountedBy<'_>,
    since_us: i64,
) -> Result<i64, sqlx::Error> {
    let (sql, value) = match by {
        CountedBy::Destination(destination) => (
            "SELECT COUNT(*) FROM core_outbox WHERE destination = $1 AND state = 'executed' AND updated_at_us >= $2",
            destination,
        ),
        CountedBy::Actor(actor) => (
            "SELECT COUNT(*) FROM core_outbox WHERE actor = $1 AND state = 'executed' AND updated_at_us >= $2",
            actor,
        ),
    };
    on_db!(db, pool => {
        sqlx::query_scalar(sql).bind(value).bind(since_us).fetch_one(pool).await
    })
}

/// The destinations of effects still pending.
pub(crate) async fn pending_destinations(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT DISTINCT destination FROM core_outbox WHERE state = 'pending' ORDER BY destination",
        )
        .fetch_all(pool)
        .await
    })
}

/// Who asked for `command_id`'s effect and where it goes, while it is pending.
pub(crate) async fn pending_effect(
    db: &Db,
    command_id: &str,
) -> Result<Option<PendingRow>, sqlx::Error> {
    let row: Option<(String, String, String, String, String)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT correlation_id, actor, command_type, destination, tenant_id FROM core_outbox \
             WHERE command_id = $1 AND state = 'pending'",
        )
        .bind(command_id)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(
        |(correlation_id, actor, command_type, destination, tenant_id)| PendingRow {
            correlation_id,
            actor,
            command_type,
            destination,
            tenant_id,
        },
    ))
}

/// What a pending row says of who asked for it and where it goes.
pub(crate) struct PendingRow {
    pub correlation_id: String,
    pub actor: String,
    pub command_type: String,
    pub destination: String,
    pub tenant_id: String,
}

/// The state of `command_id`'s effect (`pending`, `executed`, …), if it has one.
pub(crate) async fn state_of(db: &Db, command_id: &str) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar("SELECT state FROM core_outbox WHERE command_id = $1")
            .bind(command_id)
            .fetch_optional(pool)
            .await
    })
}

/// The executed, reversible effects (not themselves compensations) of sagas in which an
/// effect was refused, cancelled or failed, that no compensation undoes yet, oldest first.
pub(crate) async fn awaiting_compensation(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT command_id FROM core_outbox AS done WHERE state = 'executed' AND reversible = 1 \
             AND compensates IS NULL AND correlation_id <> '' \
             AND correlation_id IN (SELECT correlation_id FROM core_outbox WHERE state IN ('refused', 'cancelled', 'failed') AND compensates IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM core_outbox AS undo WHERE undo.compensates = done.command_id) \
             ORDER BY id",
        )
        .fetch_all(pool)
        .await
    })
}

/// Every closed effect in the order it was asked for: `(command_id, command_type,
/// destination, created_at_us)`, what a policy simulation replays.
pub(crate) async fn closed(db: &Db) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as(
            "SELECT command_id, command_type, destination, created_at_us FROM core_outbox \
             WHERE state <> 'pending' ORDER BY created_at_us, id",
        )
        .fetch_all(pool)
        .await
    })
}

/// The command ids of the rows of sagas whose every effect is closed and last changed
/// before `cutoff`, and that have no executed, reversible effect still waiting for its
/// compensation (an undo in the same saga), in row order. A row without a correlation is
/// a saga of its own. Decided in SQL so that only the rows due are read back: each row
/// read costs more than the query's own work (sqlx's SQLite rows come one by one from
/// its connection thread). No subquery is correlated, and the one that can be large
/// (the unfinished sagas) is joined, not tested with `NOT IN` (PostgreSQL checks a `NOT
/// IN` row by row once it outgrows `work_mem`): a correlated subquery, or an `effect`
/// materialised where the planner cannot see its size, made this quadratic (seconds
/// for 20,000 rows). The one `NOT IN` reads the compensated effects, a few.
pub(crate) async fn finished_sagas_before(
    db: &Db,
    cutoff: i64,
) -> Result<Vec<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar(
            "WITH effect AS NOT MATERIALIZED (SELECT id, command_id, state, reversible, compensates, \
                 updated_at_us, CASE WHEN correlation_id = '' THEN command_id ELSE correlation_id END AS saga \
                 FROM core_outbox), \
             unfinished AS ( \
                 SELECT saga FROM effect WHERE state = 'pending' OR updated_at_us >= $1 \
                 UNION \
                 SELECT saga FROM effect WHERE state = 'executed' AND reversible = 1 AND compensates IS NULL \
                 AND saga IN (SELECT saga FROM effect \
                     WHERE state IN ('refused', 'cancelled', 'failed') AND compensates IS NULL) \
                 AND command_id NOT IN (SELECT done.command_id FROM effect AS undo JOIN effect AS done \
                     ON done.command_id = undo.compensates AND done.saga = undo.saga)) \
             SELECT command_id FROM effect LEFT JOIN unfinished ON unfinished.saga = effect.saga \
             WHERE unfinished.saga IS NULL ORDER BY id",
        )
        .bind(cutoff)
        .fetch_all(pool)
        .await
    })
}

/// Removes the rows of these commands (retention, with its receipt).
pub(crate) fn remove(dialect: Dialect, command_ids: &[String]) -> crate::db::DeleteWhereIn<'_> {
    crate::db::DeleteWhereIn::new(dialect, "core_outbox", "command_id", command_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `write` on its own, `Bind::Now` as `now_us`.
    async fn run(db: &Db, write: &dyn AtomicWrite, now_us: i64) {
        on_db!(db, pool => crate::atomic::bound(write.statement(), &write.binds(), now_us)
            .execute(pool)
            .await
            .map(drop))
        .expect("the write");
    }

    /// An approval that lands while a dispatcher holds the row it judged as waiting for one
    /// must not wait for that dispatcher's next look (30 s): the row is claimable at once.
    #[tokio::test]
    async fn an_approval_given_while_the_row_is_claimed_makes_it_claimable_at_once() {
        let dir = std::env::temp_dir().join(format!("ops-outbox-approval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let path = dir.join("store.db");
        let _ = std::fs::remove_file(&path);
        let db = Db::open_sqlite(&path).await.expect("a store");
        crate::migrate::run_core(&db).await.expect("core tables");
        let row = OutboxRow {
            command_id: "cmd_1".to_owned(),
            command_type: "pack.notify.Page".to_owned(),
            destination: "pager".to_owned(),
            tenant_id: "t".to_owned(),
            idempotency_key: "key".to_owned(),
            request_hash: "hash".to_owned(),
            request: "{}".to_owned(),
            actor: "{}".to_owned(),
            capability_id: "cap".to_owned(),
            correlation_id: String::new(),
            compensates: None,
            reversible: true,
        };
        let now = 1_000_000;
        run(&db, &row, now).await;
        let claimable = |claimer: &'static str| {
            let db = db.clone();
            async move {
                let which = Claim::HoldOver {
                    held_until_us: now,
                    destinations: &[],
                    limit: 10,
                };
                claim(&db, claimer, now + 60_000_000, now, which)
                    .await
                    .expect("a claim")
            }
        };
        let claimed = claimable("a").await;
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].approval, None, "claimed before its approval");
        let approve = Approve {
            command_id: "cmd_1",
            approval: r#"{"by":"lead"}"#,
            expires_at_us: None,
        };
        run(&db, &approve, now).await;
        release_claims(&db, "a", &[claimed[0].id], now + 30_000_000)
            .await
            .expect("let go");
        let again = claimable("b").await;
        assert_eq!(again.len(), 1, "the approved row waits for the recheck");
        assert!(again[0].approval.is_some());
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
