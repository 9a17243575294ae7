//! Budgets kept in the log: each request to spend is allowed or denied against the run's
//! and the day's limits and the rate limit, and the decision is a `core.BudgetDecided`
//! receipt. Usage is folded from today's allowed receipts when the ledger opens, so a
//! restart does not reset a day.

use crate::clock::WallClock;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use ops_core::budget::{BudgetDecided, BudgetLimits, Usage};
use ops_core::contract::Contract;
use ops_core::envelope::{Actor, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId};
use ops_core::time::{Timestamp, day_of_micros};

use crate::acting::{Acting, Cause};
use crate::service_event;
use crate::store::{AppendError, EventStore, ReadError};

const MINUTE_US: i64 = 60_000_000;

#[derive(Default)]
struct Ledger {
    day: i64,
    day_used: Usage,
    runs: BTreeMap<String, Usage>,
    /// When each allowed call of the last minute happened.
    recent_calls: VecDeque<i64>,
    /// The last refusal recorded, until something is allowed: the same one again is not
    /// recorded again.
    last_refusal: Option<String>,
    /// The steps already allowed (`<run>:<step>`): asked again (a retry after a crash), a
    /// step is answered by its receipt and spends nothing twice.
    allowed_steps: std::collections::BTreeSet<String>,
}

pub struct Budgets {
    store: EventStore,
    limits: BudgetLimits,
    capability_id: CapabilityId,
    ledger: Mutex<Ledger>,
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("recording the decision failed: {0}")]
    Append(#[from] AppendError),
}

impl Budgets {
    pub async fn open(
        store: EventStore,
        limits: BudgetLimits,
        capability_id: CapabilityId,
    ) -> Result<Self, BudgetError> {
        let now = Timestamp::now().unix_micros();
        let mut ledger = Ledger {
            day: day_of_micros(now),
            ..Ledger::default()
        };
        for stored in store.read_by_type(BudgetDecided::TYPE).await? {
            let at = stored.envelope.occurred_at.unix_micros();
            match serde_json::from_value::<BudgetDecided>(stored.envelope.payload) {
                Ok(decided) if decided.allowed => {
                    record(&mut ledger, &decided.run_id, decided.asked, at, now);
                    ledger
                        .allowed_steps
                        .insert(stored.envelope.source_native_id);
                }
                _ => {}
            }
        }
        Ok(Budgets {
            store,
            limits,
            capability_id,
            ledger: Mutex::new(ledger),
        })
    }

    /// Asks to spend `asked` for `step` of `run_id` (a command the run proposes, say); the
    /// answer is also a receipt in the log. The decision is taken now, against the limits
    /// as they stand; a step already allowed is allowed again without spending twice, so a
    /// run retried after a crash is charged once.
    pub async fn spend(
        &self,
        run_id: &str,
        step: &str,
        actor: &Actor,
        asked: Usage,
    ) -> Result<bool, BudgetError> {
        let now = Timestamp::now();
        let native_id = format!("{run_id}:{step}");
        let decided = {
            let mut ledger = self.ledger.lock().expect("never poisoned");
            if ledger.allowed_steps.contains(&native_id) {
                return Ok(true);
            }
            let at = now.unix_micros();
            if ledger.day != day_of_micros(at) {
                *ledger = Ledger {
                    day: day_of_micros(at),
                    ..Ledger::default()
                };
            }
            while ledger
                .recent_calls
                .front()
                .is_some_and(|call| *call <= at - MINUTE_US)
            {
                ledger.recent_calls.pop_front();
            }
            let run_used = ledger.runs.get(run_id).copied().unwrap_or_default();
            let day_used = ledger.day_used;
            // Why it is refused, and what the refusal is about: a run's limit belongs to the
            // run, the day's and the minute's to every run alike.
            let refusal = if !run_used.plus(asked).within(self.limits.per_run) {
                Some((
                    over(
                        &format!("run `{run_id}`"),
                        run_used.plus(asked),
                        self.limits.per_run,
                    ),
                    format!("run {run_id} {run_used:?}"),
                ))
            } else if !day_used.plus(asked).within(self.limits.per_day) {
                Some((
                    over("the day", day_used.plus(asked), self.limits.per_day),
                    "day".to_owned(),
                ))
            } else if ledger.recent_calls.len() as u64 + asked.calls > self.limits.calls_per_minute
            {
                Some((
                    format!(
                        "{} calls in the last minute; the limit is {}",
                        ledger.recent_calls.len(),
                        self.limits.calls_per_minute
                    ),
                    "minute".to_owned(),
                ))
            } else {
                None
            };
            let reason = match refusal {
                None => {
                    record(&mut ledger, run_id, asked, at, at);
                    ledger.last_refusal = None;
                    ledger.allowed_steps.insert(native_id.clone());
                    None
                }
                Some((reason, about)) => {
                    // The same refusal again, with nothing spent since, changes nothing: it
                    // is recorded once, not once per tick.
                    let key = format!("{about}|{reason}|{day_used:?}|{asked:?}");
                    if ledger.last_refusal.as_deref() == Some(key.as_str()) {
                        return Ok(false);
                    }
                    ledger.last_refusal = Some(key);
                    Some(reason)
                }
            };
            BudgetDecided {
                run_id: run_id.to_owned(),
                actor: actor.clone(),
                asked,
                allowed: reason.is_none(),
                reason,
                run_used,
                day_used,
            }
        };
        // The decision is the act: it happens now, against the limits as they stand.
        let by = Acting::new(actor.clone(), Cause::act(&native_id, now));
        let origin = EventOrigin {
            correlation_id: CorrelationId::of(run_id).expect("plain strings have a canonical form"),
            ..by.origin("core.budgets", &native_id, self.capability_id)
        };
        service_event::record(&self.store, &format!("budget/{run_id}"), &decided, origin).await?;
        Ok(decided.allowed)
    }
}

fn over(what: &str, would: Usage, limit: Usage) -> String {
    format!(
        "{what} would use {} tokens and {} calls of its {} and {}",
        would.tokens, would.calls, limit.tokens, limit.calls
    )
}

/// Counts an allowed spend at `at`, if it falls on the ledger's day.
fn record(ledger: &mut Ledger, run_id: &str, asked: Usage, at: i64, now: i64) {
    if day_of_micros(at) != ledger.day {
        return;
    }
    ledger.day_used = ledger.day_used.plus(asked);
    let run = ledger.runs.entry(run_id.to_owned()).or_default();
    *run = run.plus(asked);
    if at > now - MINUTE_US {
        ledger
            .recent_calls
            .extend(std::iter::repeat_n(at, asked.calls as usize));
    }
}
