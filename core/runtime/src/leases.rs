//! Owns `core_leases`: which worker runs each stream of work now. A projection, a reaction
//! and each stream of a connector is one lease, named `projection:…`, `reaction:…`,
//! `connector:…/stream`, so on a database that several hosts share each is run by one
//! worker at a time, and taken over by another within one lease of a crash.
//!
//! A lease is held by a worker (`holder`) until `expires_at_us`; acquiring it again
//! renews it, and every fenced write renews it too. Taking it over from another holder,
//! which only an ended lease allows, moves its `generation` on. The generation is the
//! fencing token: a runner's writes carry [`Lease::fence`], which joins the write's
//! transaction and refuses it unless the row still names this holder and generation. On
//! PostgreSQL that fence locks the lease row until the write commits, so a takeover waits
//! for a write in flight and then sees the renewed lease; on SQLite writes take turns.
//! Safety does not depend on clocks: a worker whose lease ended but was not taken over
//! writes nothing another worker wrote, and one taken over is refused. Clocks only decide
//! how soon an ended lease is taken (hosts are assumed to agree to well within a lease).
//!
//! Rows are never deleted (releasing ends the lease at once), so a generation never goes
//! back to one a fenced-out worker still holds.

use std::time::Duration;

use ops_core::time::Timestamp;

use crate::atomic::{AtomicWrite, Bind, Fenced};
use crate::db::{Db, on_db};

/// The workers of one store, as one of them sees them: who it is and how long its leases
/// last.
#[derive(Clone, Debug)]
pub struct Leases {
    db: Db,
    holder: String,
    ttl: Duration,
}

/// A lease this worker holds: what its writes are fenced by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub generation: i64,
    ttl_us: i64,
}

/// What acquiring found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquired {
    Held(Lease),
    /// Another worker holds it until `until`.
    Busy {
        holder: String,
        until: Timestamp,
    },
}

/// One stored lease, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeaseState {
    pub name: String,
    pub holder: String,
    pub generation: i64,
    pub expires_at: Timestamp,
    /// Whether it has not ended yet.
    pub live: bool,
}

impl Leases {
    /// `holder` names this worker and must differ from every other live worker's.
    pub fn new(db: Db, holder: impl Into<String>, ttl: Duration) -> Self {
        Leases {
            db,
            holder: holder.into(),
            ttl,
        }
    }

    /// At most a century, so an expiry stays a time.
    fn ttl_us(&self) -> i64 {
        const CENTURY_US: i64 = 100 * 366 * 86_400 * 1_000_000;
        i64::try_from(self.ttl.as_micros()).map_or(CENTURY_US, |us| us.min(CENTURY_US))
    }

    /// Takes or renews `name`: held when it is free, ended, or this worker's already.
    pub async fn acquire(&self, name: &str) -> Result<Acquired, sqlx::Error> {
        let now = self.db.now_us().await?;
        let ttl_us = self.ttl_us();
        let until = now.saturating_add(ttl_us);
        // One statement, so two workers racing for a free lease cannot both win: the
        // loser's conflict sees the winner's row, whose lease has not ended.
        let generation: Option<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "INSERT INTO core_leases (name, holder, generation, acquired_at_us, expires_at_us) \
                 VALUES ($1, $2, 1, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                 generation = CASE WHEN core_leases.holder = excluded.holder THEN core_leases.generation \
                 ELSE core_leases.generation + 1 END, \
                 acquired_at_us = CASE WHEN core_leases.holder = excluded.holder THEN core_leases.acquired_at_us \
                 ELSE excluded.acquired_at_us END, \
                 holder = excluded.holder, expires_at_us = excluded.expires_at_us \
                 WHERE core_leases.holder = excluded.holder OR core_leases.expires_at_us <= $3 \
                 RETURNING generation",
            )
            .bind(name)
            .bind(&self.holder)
            .bind(now)
            .bind(until)
            .fetch_optional(pool)
            .await
        })?;
        if let Some(generation) = generation {
            return Ok(Acquired::Held(Lease {
                name: name.to_owned(),
                holder: self.holder.clone(),
                generation,
                ttl_us,
            }));
        }
        let (holder, until): (String, i64) = on_db!(&self.db, pool => {
            sqlx::query_as("SELECT holder, expires_at_us FROM core_leases WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
        })?;
        Ok(Acquired::Busy {
            holder,
            until: timestamp(until),
        })
    }

    /// Whether `lease` is still this worker's, at its generation.
    pub async fn holds(&self, lease: &Lease) -> Result<bool, sqlx::Error> {
        let held: Option<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT generation FROM core_leases WHERE name = $1 AND holder = $2 AND generation = $3")
                .bind(&lease.name)
                .bind(&lease.holder)
                .bind(lease.generation)
                .fetch_optional(pool)
                .await
        })?;
        Ok(held.is_some())
    }

    /// Ends `name` if this worker holds it, so another takes it at once; `true` if it did.
    pub async fn release(&self, name: &str) -> Result<bool, sqlx::Error> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE core_leases SET expires_at_us = 0 WHERE name = $1 AND holder = $2 AND expires_at_us > 0")
                .bind(name)
                .bind(&self.holder)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// How many distinct workers hold a live lease whose name starts with `prefix`.
    pub async fn live_holders(&self, prefix: &str) -> Result<u64, sqlx::Error> {
        let now = self.db.now_us().await?;
        let pattern = crate::db::like_prefix(prefix);
        let count: i64 = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT count(DISTINCT holder) FROM core_leases WHERE name LIKE $1 ESCAPE '!' AND expires_at_us > $2",
            )
            .bind(pattern)
            .bind(now)
            .fetch_one(pool)
            .await
        })?;
        Ok(count.max(0) as u64)
    }

    /// Ends every lease this worker holds, so others take them over at once (a worker
    /// that stops does, a killed one leaves them to end).
    pub async fn release_all(&self) -> Result<u64, sqlx::Error> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE core_leases SET expires_at_us = 0 WHERE holder = $1 AND expires_at_us > 0")
                .bind(&self.holder)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
    }
}

/// A run of `name` by a runner with or without leases: `Ok(None)` runs without one,
/// `Ok(Some(lease))` runs under it, `Err(holder)` leaves it to the worker holding it.
pub(crate) async fn hold(
    leases: Option<&Leases>,
    name: &str,
) -> Result<Result<Option<Lease>, String>, sqlx::Error> {
    let Some(leases) = leases else {
        return Ok(Ok(None));
    };
    Ok(match leases.acquire(name).await? {
        Acquired::Held(lease) => Ok(Some(lease)),
        Acquired::Busy { holder, .. } => Err(holder),
    })
}

/// Whether a fenced write under `lease` was refused because another worker took the lease
/// over (and not because another fence of the write held).
pub(crate) async fn taken_over(
    leases: Option<&Leases>,
    lease: Option<&Lease>,
) -> Result<bool, sqlx::Error> {
    match (leases, lease) {
        (Some(leases), Some(lease)) => Ok(!leases.holds(lease).await?),
        _ => Ok(false),
    }
}

impl Lease {
    /// The fence of a write made under this lease: joins its transaction, renews the
    /// lease, and refuses the write when another worker took the lease over.
    pub(crate) fn fence(&self) -> LeaseFence<'_> {
        LeaseFence(self)
    }
}

pub(crate) struct LeaseFence<'a>(&'a Lease);

impl AtomicWrite for LeaseFence<'_> {
    fn statement(&self) -> &'static str {
        "UPDATE core_leases SET expires_at_us = $1 + $2 WHERE name = $3 AND holder = $4 AND generation = $5"
    }

    fn binds(&self) -> Vec<Bind<'_>> {
        vec![
            Bind::Now,
            Bind::Int(self.0.ttl_us),
            Bind::Text(&self.0.name),
            Bind::Text(&self.0.holder),
            Bind::Int(self.0.generation),
        ]
    }

    fn on_the_database_clock(&self) -> bool {
        true
    }

    fn check(&self, rows_affected: u64) -> Result<(), Fenced> {
        if rows_affected == 1 {
            return Ok(());
        }
        Err(Fenced {
            what: format!(
                "lease `{}`: worker `{}` lost it (generation {}) to another worker; its write was refused",
                self.0.name, self.0.holder, self.0.generation
            ),
        })
    }
}

/// Every lease stored, by name.
pub async fn all(db: &Db) -> Result<Vec<LeaseState>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = on_db!(db, pool => {
        sqlx::query_as("SELECT name, holder, generation, expires_at_us FROM core_leases ORDER BY name")
            .fetch_all(pool)
            .await
    })?;
    let now = db.now_us().await?;
    Ok(rows
        .into_iter()
        .map(|(name, holder, generation, expires)| LeaseState {
            name,
            holder,
            generation,
            expires_at: timestamp(expires),
            live: expires > now,
        })
        .collect())
}

/// A stored expiry as a time (an ended lease is the epoch).
fn timestamp(us: i64) -> Timestamp {
    Timestamp::from_unix_micros(us)
        .or_else(|| Timestamp::from_unix_micros(0))
        .expect("the epoch is a time")
}
