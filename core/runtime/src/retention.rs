//! The retention job (Section 11): applies a [`RetentionPolicy`] class by class. For each
//! class it finds what is due, appends a `RetentionApplied` receipt naming it, and only
//! then removes it, so a crash in between leaves a receipt and rows that the next run
//! removes (and names) again; nothing is ever removed without a receipt. What each class
//! covers, and why the log itself is not one, is said in [`ops_core::retention`].

use ops_core::envelope::EventEnvelope;
use ops_core::id::CapabilityId;
use ops_core::retention::{RetentionApplied, RetentionPolicy};
use ops_core::time::{DAY, Timestamp};

use crate::acting::Acting;
use crate::atomic::AtomicWrite;
use crate::store::{AppendError, EventStore, ExpectedVersion};

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "receipts are kept at least one day, since quotas count the last day's effects; `receipts_days` is 0"
    )]
    ReceiptsTooShort,
    #[error(
        "the state table `{table}` of projection {projection} is not a table name this runtime writes; nothing was dropped"
    )]
    DamagedProjection { projection: String, table: String },
    #[error("applying retention failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("recording the retention receipt failed; nothing was removed: {0}")]
    Append(#[from] AppendError),
    #[error(
        "capability {capability} does not allow applying retention: {reason} (receipted); nothing was removed"
    )]
    Denied {
        capability: CapabilityId,
        reason: String,
    },
}

pub struct Retention {
    store: EventStore,
    capability_id: CapabilityId,
    /// How an application is checked; without an authority it is the runtime's own job.
    steps: crate::capability::StepCheck,
}

impl Retention {
    pub fn new(store: EventStore, capability_id: CapabilityId) -> Self {
        Retention {
            steps: crate::capability::StepCheck::new(
                store.clone(),
                capability_id,
                "core.retention",
            ),
            store,
            capability_id,
        }
    }

    /// Checks every application on `authority` first: the capability must allow recording
    /// `core.RetentionApplied` for whoever applies it; a denial is receipted and removes
    /// nothing.
    pub fn checked_by(
        mut self,
        authority: std::sync::Arc<dyn ops_core::capability::Authority>,
    ) -> Self {
        self.steps.checked_by(authority);
        self
    }

    /// Every class of `policy` as of `now`, in the order artifacts, projections, receipts;
    /// `installed` names the installed packs.
    pub async fn apply(
        &self,
        policy: &RetentionPolicy,
        installed: &[&str],
        now: Timestamp,
        by: &Acting,
    ) -> Result<Vec<RetentionApplied>, RetentionError> {
        self.apply_reporting(policy, installed, now, by, None).await
    }

    /// As [`Retention::apply`], telling `progress` as each of its three classes is done.
    pub async fn apply_reporting(
        &self,
        policy: &RetentionPolicy,
        installed: &[&str],
        now: Timestamp,
        by: &Acting,
        progress: Option<crate::projection::Progress>,
    ) -> Result<Vec<RetentionApplied>, RetentionError> {
        if policy.receipts_days == 0 {
            return Err(RetentionError::ReceiptsTooShort);
        }
        // Checked once, first, so a denial removes nothing of any class.
        let checked = Checked(self.allowed(by).await?);
        let done = |classes: u64| {
            if let Some(progress) = &progress {
                progress(classes, 3);
            }
        };
        done(0);
        let artifacts = self
            .artifacts_checked(policy.artifacts_days, now, by, Some(checked.clone()))
            .await?;
        done(1);
        let projections = self
            .projections_checked(
                policy.projections_days,
                installed,
                now,
                by,
                Some(checked.clone()),
            )
            .await?;
        done(2);
        let receipts = self
            .receipts_checked(policy.receipts_days, now, by, Some(checked))
            .await?;
        done(3);
        Ok(vec![artifacts, projections, receipts])
    }

    /// Whether `by` may apply retention now: the capability event the check relied on,
    /// which each receipt names (empty for the runtime's own job, with no authority), or
    /// the denial, receipted.
    async fn allowed(&self, by: &Acting) -> Result<String, RetentionError> {
        self.steps
            .allowed(
                by,
                <RetentionApplied as ops_core::contract::Contract>::TYPE,
                "retention".to_owned(),
            )
            .await?
            .map_err(|reason| RetentionError::Denied {
                capability: self.capability_id,
                reason,
            })
    }

    /// The capability event `by`'s check relied on: the one `checked` already made, else
    /// a check now.
    async fn relied_on(
        &self,
        by: &Acting,
        checked: Option<Checked>,
    ) -> Result<String, RetentionError> {
        match checked {
            Some(Checked(relied_on)) => Ok(relied_on),
            None => self.allowed(by).await,
        }
    }

    /// Artifact bodies recorded before the period.
    pub async fn artifacts(
        &self,
        days: u32,
        now: Timestamp,
        by: &Acting,
    ) -> Result<RetentionApplied, RetentionError> {
        self.artifacts_checked(days, now, by, None).await
    }

    async fn artifacts_checked(
        &self,
        days: u32,
        now: Timestamp,
        by: &Acting,
        checked: Option<Checked>,
    ) -> Result<RetentionApplied, RetentionError> {
        let due = crate::artifacts::recorded_before(self.store.db(), cutoff(now, days)).await?;
        let period = Period {
            class: "artifacts",
            days,
            now,
            relied_on: self.relied_on(by, checked).await?,
        };
        self.remove_keys(period, &due, by, crate::artifacts::remove)
            .await
    }

    /// The state of projections of uninstalled packs that nothing updated in the period.
    /// "Uninstalled" is this host's view: a projection another worker runs now (its lease
    /// is live) is installed there, and kept, however idle.
    pub async fn projections(
        &self,
        days: u32,
        installed: &[&str],
        now: Timestamp,
        by: &Acting,
    ) -> Result<RetentionApplied, RetentionError> {
        self.projections_checked(days, installed, now, by, None)
            .await
    }

    async fn projections_checked(
        &self,
        days: u32,
        installed: &[&str],
        now: Timestamp,
        by: &Acting,
        checked: Option<Checked>,
    ) -> Result<RetentionApplied, RetentionError> {
        let rows = crate::projection::idle_since(self.store.db(), cutoff(now, days)).await?;
        let run_elsewhere: std::collections::BTreeSet<String> = crate::leases::all(self.store.db())
            .await?
            .into_iter()
            .filter(|lease| lease.live)
            .map(|lease| lease.name)
            .collect();
        let due: Vec<(String, String, String)> = rows
            .into_iter()
            .filter(|(owner, name, _)| {
                owner
                    .strip_prefix("pack:")
                    .is_some_and(|pack| !installed.contains(&pack))
                    && !run_elsewhere.contains(&format!("projection:{owner}/{name}"))
            })
            .collect();
        for (owner, name, table) in &due {
            if !crate::projection::is_state_table_name(table) {
                return Err(RetentionError::DamagedProjection {
                    projection: format!("{owner}/{name}"),
                    table: table.clone(),
                });
            }
        }
        let period = Period {
            class: "projections",
            days,
            now,
            relied_on: self.relied_on(by, checked).await?,
        };
        let label = |(owner, name, _): &(String, String, String)| format!("{owner}/{name}");
        let db = self.store.db();
        self.receipted(
            period,
            &due,
            label,
            by,
            // Tables are dropped after their receipt, each by its owner.
            |_| None::<crate::db::DeleteWhereIn<'_>>,
            async |chunk: &[(String, String, String)]| {
                for (owner, name, table) in chunk {
                    crate::projection::forget(db, owner, name, table).await?;
                }
                Ok(())
            },
        )
        .await
    }

    /// The outbox rows of sagas that finished before the period: every effect closed, and
    /// none left to compensate. Their receipts stay in the log.
    pub async fn receipts(
        &self,
        days: u32,
        now: Timestamp,
        by: &Acting,
    ) -> Result<RetentionApplied, RetentionError> {
        self.receipts_checked(days, now, by, None).await
    }

    async fn receipts_checked(
        &self,
        days: u32,
        now: Timestamp,
        by: &Acting,
        checked: Option<Checked>,
    ) -> Result<RetentionApplied, RetentionError> {
        if days == 0 {
            return Err(RetentionError::ReceiptsTooShort);
        }
        let due = crate::outbox::finished_sagas_before(self.store.db(), cutoff(now, days)).await?;
        let period = Period {
            class: "receipts",
            days,
            now,
            relied_on: self.relied_on(by, checked).await?,
        };
        self.remove_keys(period, &due, by, crate::outbox::remove)
            .await
    }

    /// Removes the rows named by `due` through their table's owner, each chunk in the
    /// transaction of the receipt that names it.
    async fn remove_keys<'k>(
        &self,
        period: Period<'_>,
        due: &'k [String],
        by: &Acting,
        removes: impl Fn(crate::db::Dialect, &'k [String]) -> crate::db::DeleteWhereIn<'k>,
    ) -> Result<RetentionApplied, RetentionError> {
        let dialect = self.store.db().dialect();
        self.receipted(
            period,
            due,
            String::clone,
            by,
            |chunk| Some(removes(dialect, chunk)),
            async |_: &[String]| Ok(()),
        )
        .await
    }

    /// Removes `due` in chunks of [`RECEIPT_CHUNK`], each with the receipt that names it:
    /// what `with_receipt` writes goes in the receipt's transaction; what `after` removes
    /// (a projection's table), right after it. With nothing due, one empty receipt. Returns
    /// what was removed in all.
    async fn receipted<'k, T, W: AtomicWrite + 'k>(
        &self,
        period: Period<'_>,
        due: &'k [T],
        label: impl Fn(&T) -> String,
        by: &Acting,
        with_receipt: impl Fn(&'k [T]) -> Option<W>,
        after: impl AsyncFn(&[T]) -> Result<(), sqlx::Error>,
    ) -> Result<RetentionApplied, RetentionError> {
        let chunks: Vec<&[T]> = if due.is_empty() {
            vec![&[]]
        } else {
            due.chunks(RECEIPT_CHUNK).collect()
        };
        let mut removed = Vec::with_capacity(due.len());
        for (part, chunk) in chunks.into_iter().enumerate() {
            let labels: Vec<String> = chunk.iter().map(&label).collect();
            let applied = RetentionApplied {
                class: period.class.to_owned(),
                retention_days: period.days,
                removed: labels,
                capability_state_ref: period.relied_on.clone(),
            };
            let origin = by.origin(
                "core.retention",
                &format!("retention:{}:{}:{part}", period.class, period.now),
                self.capability_id,
            );
            let envelope = EventEnvelope::new(&applied, origin).expect("a receipt is plain JSON");
            let side = with_receipt(chunk);
            let sides: Vec<&dyn AtomicWrite> =
                side.iter().map(|side| side as &dyn AtomicWrite).collect();
            self.store
                .append_with("retention", ExpectedVersion::Any, &[envelope], &sides)
                .await?;
            after(chunk).await?;
            removed.extend(applied.removed);
        }
        Ok(RetentionApplied {
            class: period.class.to_owned(),
            retention_days: period.days,
            removed,
            capability_state_ref: period.relied_on,
        })
    }
}

/// A receipt names at most this many removals, so a large backlog goes in bounded steps,
/// each receipted before it is removed.
const RECEIPT_CHUNK: usize = 1_000;

/// A check already made for this application: the capability event it relied on.
#[derive(Clone)]
struct Checked(String);

/// One class's run: what, kept how long, as of when, and the capability event its check
/// relied on.
struct Period<'a> {
    class: &'a str,
    days: u32,
    now: Timestamp,
    relied_on: String,
}

fn cutoff(now: Timestamp, days: u32) -> i64 {
    now.unix_micros()
        .saturating_sub(i64::from(days).saturating_mul(crate::clock::micros(DAY)))
}
