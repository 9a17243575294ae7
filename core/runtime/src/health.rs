//! Jobs that keep failing, as the log records them (`core.JobFailing`, `core.JobRecovered`):
//! a worker counts each job's failures in a row ([`JobHealth`]) and records a change once,
//! when the count reaches [`FAILING_AFTER`] (or at the first failure after that whose record
//! could be written: a full disk refuses it too) and when a job recorded failing works
//! again; `status` reads which jobs are failing now.

use crate::service_capability;
use std::collections::BTreeMap;

use ops_core::contract::Contract;
use ops_core::envelope::{Causation, EventEnvelope, EventOrigin};
use ops_core::health::{JobFailing, JobRecovered};
use ops_core::id::{CorrelationId, UserActionId};
use ops_core::time::Timestamp;

use crate::clock::WallClock;
use crate::store::{AppendError, EventStore, ReadError};

/// Failures in a row after which a job is recorded as failing.
pub const FAILING_AFTER: u32 = 3;

/// One worker's count of each job's failures in a row.
#[derive(Debug, Default)]
pub struct JobHealth {
    in_a_row: BTreeMap<String, Streak>,
}

#[derive(Debug, Default)]
struct Streak {
    failures: u32,
    /// Whether the log says the job is failing.
    recorded: bool,
}

impl JobHealth {
    /// The counts as the log leaves them: a job recorded as failing (by any worker) counts
    /// as failing here too, so this worker records when it works again.
    pub async fn from_log(store: &EventStore) -> Result<Self, ReadError> {
        Ok(JobHealth {
            in_a_row: failing(store)
                .await?
                .into_keys()
                .map(|job| {
                    let streak = Streak {
                        failures: FAILING_AFTER,
                        recorded: true,
                    };
                    (job, streak)
                })
                .collect(),
        })
    }

    /// Counts how `job` ended; records the change (and returns it) when the job starts
    /// failing or works again after it was recorded failing.
    pub async fn ended(
        &mut self,
        store: &EventStore,
        worker: &str,
        job: &str,
        outcome: Result<(), &str>,
    ) -> Result<Option<EventEnvelope>, AppendError> {
        match outcome {
            Ok(()) => match self.in_a_row.remove(job) {
                Some(streak) if streak.recorded => {
                    let recovered = JobRecovered {
                        worker: worker.to_owned(),
                        job: job.to_owned(),
                    };
                    record(store, worker, job, &recovered).await.map(Some)
                }
                _ => Ok(None),
            },
            Err(error) => {
                let streak = self.in_a_row.entry(job.to_owned()).or_default();
                streak.failures += 1;
                if streak.recorded || streak.failures < FAILING_AFTER {
                    return Ok(None);
                }
                let failing = JobFailing {
                    worker: worker.to_owned(),
                    job: job.to_owned(),
                    failures: streak.failures,
                    error: error.to_owned(),
                };
                let recorded = record(store, worker, job, &failing).await?;
                streak.recorded = true;
                Ok(Some(recorded))
            }
        }
    }
}

async fn record<E: ops_core::contract::Event>(
    store: &EventStore,
    worker: &str,
    job: &str,
    event: &E,
) -> Result<EventEnvelope, AppendError> {
    let canonical = "plain strings have a canonical form";
    let now = Timestamp::now();
    let native_id = format!("{worker}:{job}:{}:{}", E::TYPE, now.unix_micros());
    let origin = EventOrigin {
        source_ref: "worker".to_owned(),
        source_native_id: native_id.clone(),
        source_sequence: None,
        occurred_at: now,
        ingested_at: now,
        effective_at: None,
        correlation_id: CorrelationId::of(job).expect(canonical),
        causation: Causation::UserAction(UserActionId::of(&native_id).expect(canonical)),
        actor: service_capability::actor(service_capability::WORKER),
        capability_id: service_capability::of(service_capability::WORKER),
    };
    store.grant_service(service_capability::WORKER).await?;
    crate::service_event::record(store, &format!("jobs/{job}"), event, origin).await
}

/// A job recorded as failing: by which worker, since when, after how many failures, and
/// the last error.
#[derive(Clone, Debug, PartialEq)]
pub struct Failing {
    pub worker: String,
    pub since: Timestamp,
    pub failures: u32,
    pub error: String,
}

/// The jobs failing now, by job: recorded failing, and not recorded working again by any
/// worker since.
pub async fn failing(store: &EventStore) -> Result<BTreeMap<String, Failing>, ReadError> {
    let mut failing = BTreeMap::new();
    for event in store
        .read_by_types(&[JobFailing::TYPE, JobRecovered::TYPE])
        .await?
    {
        let payload = &event.envelope.payload;
        let text = |field: &str| payload[field].as_str().unwrap_or_default().to_owned();
        if event.envelope.event_type == JobRecovered::TYPE {
            failing.remove(&text("job"));
        } else {
            let recorded = Failing {
                worker: text("worker"),
                since: event.envelope.occurred_at,
                failures: payload["failures"].as_u64().unwrap_or_default() as u32,
                error: text("error"),
            };
            failing.insert(text("job"), recorded);
        }
    }
    Ok(failing)
}
