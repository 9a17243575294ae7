//! The dispatcher: claims pending outbox rows for a lease, records them dispatched, asks the
//! gateway about each, runs the allowed ones through their destination's executor with the
//! idempotency key, and closes the batch with receipts in one transaction that commits only
//! while the claims hold.

use crate::clock::{WallClock, micros};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ops_core::capability::{Authority, Decision, actor_label};
use ops_core::egress::{
    Approval, Check, EffectRequest, EffectState, EgressExecuted, EgressFailed, EgressRefused,
};
use ops_core::envelope::{Actor, EventEnvelope};
use ops_core::id::{CapabilityId, CommandId, ContentHash};
use ops_core::time::Timestamp;
use serde_json::Value;

use super::saga::gateway_actor;
use super::{Effect, Facts, Gateway};
use crate::acting::Acting;
use crate::atomic::AtomicWrite;
use crate::outbox::{self, Approve, ClaimedRows, CountedBy, HoldsClaim};
use crate::store::{AppendError, EventStore, ExpectedVersion};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Carries out effects at one destination. It must pass the idempotency key on, so the
/// destination does an effect once however often it is asked.
pub trait Executor: Send + Sync {
    fn execute<'a>(
        &'a self,
        idempotency_key: &'a ContentHash,
        request: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// One executor shared by the dispatchers of many ticks: its client, connections and TLS
/// setup are made once.
impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn execute<'a>(
        &'a self,
        idempotency_key: &'a ContentHash,
        request: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        (**self).execute(idempotency_key, request)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("claiming outbox rows failed: {0}")]
    Claim(sqlx::Error),
    #[error("outbox row {id} cannot be read: {reason}")]
    Corrupt { id: i64, reason: String },
    #[error("closing outbox row {id} failed: {source}")]
    Close { id: i64, source: AppendError },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub executed: usize,
    pub refused: usize,
    /// The destination failed; the row stays for another attempt.
    pub failed: usize,
    /// Another dispatcher holds the row now; its receipt is the other's to write.
    pub lost_claims: usize,
    /// Given up after the last attempt, with an `EgressFailed` receipt.
    pub gave_up: usize,
    /// No actor approved it yet and no policy covers it: left pending for an approval.
    pub awaiting_approval: usize,
    /// Claimed, then given back unposted because the worker was asked to stop.
    pub released: usize,
}

/// What became of a started effect, as the posting loop hands it to the receipt writer.
// `Posted` is nearly every answer: boxing it would cost an allocation per effect to make
// the rare ones smaller.
#[allow(clippy::large_enum_variant)]
enum Answer {
    /// The destination's answer.
    Posted {
        effect: Effect,
        approval: Approval,
        capability: Decision,
        answer: Result<(), String>,
    },
    /// Its claim had run out before the post and another dispatcher took it: not posted.
    Lost,
    /// Its claim could not be renewed before the post: not posted.
    Unrecorded(DispatchError),
    /// Not posted: the worker was asked to stop.
    Released(Vec<Effect>),
}

/// What a cancellation came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// Refused, with its receipt.
    Done,
    /// There is no pending effect of that command that no dispatcher holds.
    NotPending,
    /// The canceller's capability does not reach the effect; the denial has its receipt.
    Denied { reason: String },
}

/// How often an effect waiting for an actor's approval is looked at again (an approval
/// makes it due at once), for a policy that may cover it by then.
const APPROVAL_RECHECK: Duration = Duration::from_secs(30);

/// The most rows one dispatch claims: its renewals and closes name every row in one
/// statement, well under either backend's limit on a statement's parameters.
pub const MAX_BATCH: usize = 1_000;

pub struct Dispatcher {
    store: EventStore,
    name: String,
    lease: Duration,
    gateway: Gateway,
    authority: Arc<dyn Authority>,
    executors: BTreeMap<String, Box<dyn Executor>>,
    /// Set when the worker is asked to stop: no effect is posted after it, and the claims of
    /// those not posted yet are given back at once.
    stop: Option<Arc<AtomicBool>>,
}

impl Dispatcher {
    pub fn new(
        store: EventStore,
        name: &str,
        gateway: Gateway,
        authority: Arc<dyn Authority>,
    ) -> Self {
        Dispatcher {
            store,
            name: name.to_owned(),
            lease: Duration::from_secs(30),
            gateway,
            authority,
            executors: BTreeMap::new(),
            stop: None,
        }
    }

    /// Stops posting when `stop` is set (SIGTERM): what is in flight finishes and gets its
    /// receipt, the rest of the batch is given back for another worker at once.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
    }

    pub fn with_executor(mut self, destination: &str, executor: Box<dyn Executor>) -> Self {
        self.executors.insert(destination.to_owned(), executor);
        self
    }

    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Claims up to `limit` pending rows (at most [`MAX_BATCH`]) and carries each through
    /// the gateway.
    pub async fn dispatch(&self, limit: usize) -> Result<DispatchReport, DispatchError> {
        let mut report = DispatchReport::default();
        let mut closing = Vec::new();
        let claimed = self.claim(limit.min(MAX_BATCH)).await?;
        if claimed.is_empty() {
            return Ok(report);
        }
        // Every check first (A9): a refused effect goes from pending to refused, never
        // dispatched; an allowed one is approved (a policy's approval is a step too, by
        // the gateway, naming the policy) and then dispatched.
        let mut allowed = Vec::new();
        let mut under_way: Vec<EventEnvelope> = Vec::new();
        // A policy's approval is kept on the row too, so a later attempt is approved already.
        let mut approvals: Vec<(String, String)> = Vec::new();
        let mut in_batch = Allowed::default();
        let mut awaiting = Vec::new();
        let now = Timestamp::now();
        for effect in claimed {
            let (judged, capability) = self.gate(&effect, &in_batch).await;
            match judged {
                Err((Check::Approval, _)) if self.gateway.awaits_approval(&effect, now) => {
                    awaiting.push(effect.id);
                }
                Err((check, reason)) => closing.push((
                    effect,
                    Outcome::Refused {
                        check,
                        reason,
                        capability,
                        cancelled: false,
                    },
                )),
                Ok(approval) => {
                    if let (
                        None,
                        Approval::Policy {
                            policy_id,
                            policy_version,
                        },
                    ) = (&effect.approval, &approval)
                    {
                        under_way.push(
                            effect
                                .step(EffectState::Approved)
                                .note(format!("policy {policy_id} {policy_version}"))
                                .event(),
                        );
                        approvals.push((
                            effect.command_id.to_string(),
                            serde_json::to_string(&approval).expect("an approval is plain JSON"),
                        ));
                    }
                    in_batch.count(&effect);
                    allowed.push((effect, approval, capability));
                }
            }
        }
        if !awaiting.is_empty() {
            let recheck = now.unix_micros().saturating_add(micros(APPROVAL_RECHECK));
            outbox::release_claims(self.store.db(), &self.name, &awaiting, recheck)
                .await
                .map_err(DispatchError::Claim)?;
            report.awaiting_approval = awaiting.len();
        }
        // Refusals first, in one transaction: nothing was posted for them.
        self.close_each(&closing, &mut report).await?;
        if allowed.is_empty() {
            return Ok(report);
        }
        if self.stopping() {
            let ids: Vec<i64> = allowed.iter().map(|(effect, _, _)| effect.id).collect();
            return self.release(&ids, report).await;
        }
        let held_since = std::time::Instant::now();
        let started = self
            .start(allowed, &under_way, &approvals, &mut report)
            .await?;
        self.post_all(started, held_since, report).await
    }

    /// Records, in one transaction, what must be durable before any destination is
    /// reached: a policy's approvals and each effect's `Dispatched` step with its claim
    /// renewed. If a claim ran out meanwhile, the approvals and then each effect on its own,
    /// so the others go on; an effect whose claim another dispatcher took is not posted.
    async fn start(
        &self,
        allowed: Vec<(Effect, Approval, Decision)>,
        under_way: &[EventEnvelope],
        approvals: &[(String, String)],
        report: &mut DispatchReport,
    ) -> Result<Vec<(Effect, Approval, Decision)>, DispatchError> {
        let approves: Vec<Approve<'_>> = approvals
            .iter()
            .map(|(command_id, approval)| Approve {
                command_id,
                approval,
                expires_at_us: None,
            })
            .collect();
        let renews = ClaimedRows::renew(
            self.store.db().dialect(),
            allowed.iter().map(|(effect, _, _)| effect.id).collect(),
            &self.name,
            self.claim_end(),
        );
        let events: Vec<EventEnvelope> = under_way
            .iter()
            .cloned()
            .chain(
                allowed
                    .iter()
                    .map(|(effect, _, _)| effect.step(EffectState::Dispatched).event()),
            )
            .collect();
        let sides: Vec<&dyn AtomicWrite> = approves
            .iter()
            .map(|a| a as &dyn AtomicWrite)
            .chain([&renews as &dyn AtomicWrite])
            .collect();
        let first = allowed[0].0.id;
        match self
            .store
            .append_with(&self.stream(), ExpectedVersion::Any, &events, &sides)
            .await
        {
            Ok(_) => return Ok(allowed),
            Err(AppendError::Fenced { .. }) => {}
            Err(source) => return Err(DispatchError::Close { id: first, source }),
        }
        if !under_way.is_empty() {
            let approves: Vec<&dyn AtomicWrite> =
                approves.iter().map(|a| a as &dyn AtomicWrite).collect();
            self.record(under_way, &approves, first).await?;
        }
        let mut started = Vec::with_capacity(allowed.len());
        for (effect, approval, capability) in allowed {
            let dispatched = effect.step(EffectState::Dispatched).event();
            if self.renew(&[&effect], &[dispatched]).await? {
                started.push((effect, approval, capability));
            } else {
                report.lost_claims += 1;
            }
        }
        Ok(started)
    }

    /// Posts `started` to their destinations one after another, in the order they were
    /// claimed, and writes each receipt as soon as its answer is in (a crash later loses
    /// nothing posted): the answers in by the time a receipt is written share its
    /// transaction, so fast destinations cost one transaction a batch and slow ones one an
    /// effect. A claim covers only what the worker can finish: an effect whose claim is
    /// past half its lease is renewed on its own before its post, and one another dispatcher
    /// took meanwhile is not posted. Once the worker is asked to stop, nothing more is
    /// posted and the rest is given back at once.
    async fn post_all(
        &self,
        started: Vec<(Effect, Approval, Decision)>,
        held_since: std::time::Instant,
        mut report: DispatchReport,
    ) -> Result<DispatchReport, DispatchError> {
        let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel();
        let posting = async move {
            let mut started = started.into_iter();
            while let Some((effect, approval, capability)) = started.next() {
                if self.stopping() {
                    let rest = std::iter::once(effect).chain(started.map(|(e, _, _)| e));
                    // Given back by the receipt writer, unless it failed already.
                    let _ = answers.send(Answer::Released(rest.collect()));
                    break;
                }
                let answer = if held_since.elapsed() < self.lease / 2 {
                    Ok(true)
                } else {
                    self.renew(&[&effect], &[]).await
                };
                let answer = match answer {
                    Ok(true) => Answer::Posted {
                        answer: self.post(&effect).await,
                        effect,
                        approval,
                        capability,
                    },
                    Ok(false) => Answer::Lost,
                    Err(error) => Answer::Unrecorded(error),
                };
                if answers.send(answer).is_err() {
                    break;
                }
            }
        };
        // Both at once: a receipt waiting for the database must not hold up a post whose
        // claim renewal holds the write lock (SQLite has one writer), nor the other way.
        let writing = async move {
            while let Some(first) = answered.recv().await {
                let mut ready = vec![first];
                while let Ok(next) = answered.try_recv() {
                    ready.push(next);
                }
                // Dropping the receiver on an error stops the posts.
                report = self.receipt_answers(ready, report).await?;
            }
            Ok(report)
        };
        tokio::join!(posting, writing).1
    }

    /// The receipts of `ready` answers, in one transaction; a failed attempt that is not
    /// the last stays in the outbox with its step, and released effects are given back.
    async fn receipt_answers(
        &self,
        ready: Vec<Answer>,
        mut report: DispatchReport,
    ) -> Result<DispatchReport, DispatchError> {
        let mut closing = Vec::new();
        let mut released = Vec::new();
        for answer in ready {
            let (effect, approval, capability, answer) = match answer {
                Answer::Released(effects) => {
                    released.extend(effects.iter().map(|effect| effect.id));
                    continue;
                }
                Answer::Lost => {
                    report.lost_claims += 1;
                    continue;
                }
                Answer::Unrecorded(error) => return Err(error),
                Answer::Posted {
                    effect,
                    approval,
                    capability,
                    answer,
                } => (effect, approval, capability, answer),
            };
            let outcome = match answer {
                Ok(()) => Outcome::Executed {
                    approval,
                    capability,
                },
                Err(reason) => {
                    let last = self
                        .gateway
                        .attempts_for(&effect.destination)
                        .is_some_and(|max| effect.attempts >= i64::from(max));
                    if !last {
                        self.attempt_failed(&effect, reason, &mut report).await?;
                        continue;
                    }
                    tracing::warn!(command = %effect.command_id, destination = %effect.destination, %reason, "effect failed its last attempt");
                    Outcome::Failed {
                        approval,
                        capability,
                        reason,
                    }
                }
            };
            closing.push((effect, outcome));
        }
        self.close_each(&closing, &mut report).await?;
        if released.is_empty() {
            Ok(report)
        } else {
            self.release(&released, report).await
        }
    }

    /// Gives the claims of `ids` back at once, for another worker.
    async fn release(
        &self,
        ids: &[i64],
        mut report: DispatchReport,
    ) -> Result<DispatchReport, DispatchError> {
        outbox::release_claims(self.store.db(), &self.name, ids, 0)
            .await
            .map_err(DispatchError::Claim)?;
        report.released += ids.len();
        Ok(report)
    }

    /// Posts `effect` to its destination, personal data opened, with its idempotency key,
    /// renewing its claim every third of the lease while the post is in flight, so no other
    /// dispatcher claims it meanwhile.
    async fn post(&self, effect: &Effect) -> Result<(), String> {
        let executor = &self.executors[&effect.destination];
        let version = self
            .store
            .registry()
            .latest(&effect.command_type)
            .map_or(0, |declared| declared.version);
        let request = self
            .store
            .opened(&effect.command_type, version, &effect.request);
        let answer = executor.execute(&effect.idempotency_key, &request);
        tokio::pin!(answer);
        // The first renewal a period from now: an interval's immediate first tick would wait
        // for the timer driver, a millisecond an effect.
        let period = (self.lease / 3).max(Duration::from_millis(1));
        let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                biased;
                answer = &mut answer => return answer,
                _ = renewals.tick() => {
                    // A renewal that cannot be written leaves the claim to run out: the
                    // answer still gets its receipt if the claim holds by then.
                    match self.renew(&[effect], &[]).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(command = %effect.command_id, "another dispatcher claimed the effect while it was in flight"),
                        Err(error) => tracing::warn!(command = %effect.command_id, %error, "the claim of an effect in flight could not be renewed"),
                    }
                }
            }
        }
    }

    /// When a claim taken or renewed now runs out.
    fn claim_end(&self) -> i64 {
        Timestamp::now()
            .unix_micros()
            .saturating_add(micros(self.lease))
    }

    /// Extends this dispatcher's claims on `effects` by a lease from now, with `events`, if
    /// it still holds every one of them; `false` (nothing written) if it lost one.
    async fn renew(
        &self,
        effects: &[&Effect],
        events: &[EventEnvelope],
    ) -> Result<bool, DispatchError> {
        let renews = ClaimedRows::renew(
            self.store.db().dialect(),
            effects.iter().map(|effect| effect.id).collect(),
            &self.name,
            self.claim_end(),
        );
        match self
            .store
            .append_with(&self.stream(), ExpectedVersion::Any, events, &[&renews])
            .await
        {
            Ok(_) => Ok(true),
            Err(AppendError::Fenced { .. }) => Ok(false),
            Err(source) => Err(DispatchError::Close {
                id: effects.first().map_or(0, |effect| effect.id),
                source,
            }),
        }
    }

    /// Records a failed attempt of an effect that stays in the outbox, while its claim holds
    /// (if it ran out, the attempt is another dispatcher's story now).
    async fn attempt_failed(
        &self,
        effect: &Effect,
        reason: String,
        report: &mut DispatchReport,
    ) -> Result<(), DispatchError> {
        tracing::warn!(command = %effect.command_id, destination = %effect.destination, %reason, "effect failed; it stays in the outbox");
        report.failed += 1;
        let failed = effect.step(EffectState::AttemptFailed).note(reason).event();
        let recorded = self
            .store
            .append_with(
                &self.stream(),
                ExpectedVersion::Any,
                &[failed],
                &[&HoldsClaim {
                    id: effect.id,
                    claimed_by: &self.name,
                }],
            )
            .await;
        match recorded {
            Ok(_) => Ok(()),
            Err(AppendError::Fenced { .. }) => {
                report.lost_claims += 1;
                Ok(())
            }
            Err(source) => Err(DispatchError::Close {
                id: effect.id,
                source,
            }),
        }
    }

    /// Closes `closing` in one transaction; if a claim was lost meanwhile, one by one, so
    /// the others keep their receipts.
    async fn close_each(
        &self,
        closing: &[(Effect, Outcome)],
        report: &mut DispatchReport,
    ) -> Result<(), DispatchError> {
        match self.close(closing).await {
            Ok(()) => count(closing, report),
            Err(DispatchError::Close {
                source: AppendError::Fenced { .. },
                ..
            }) => {
                for one in closing.chunks(1) {
                    match self.close(one).await {
                        Ok(()) => count(one, report),
                        Err(DispatchError::Close {
                            source: AppendError::Fenced { what },
                            ..
                        }) => {
                            tracing::warn!(%what, "lost the claim before writing the receipt");
                            report.lost_claims += 1;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// The checks of A5, in order, on the facts they need read now; the first that fails
    /// refuses the effect.
    /// `in_batch`: the effects allowed before it in this batch, which count against the
    /// quotas as if executed already (they are, before the batch closes).
    async fn gate(
        &self,
        effect: &Effect,
        in_batch: &Allowed,
    ) -> (Result<Approval, (Check, String)>, Decision) {
        let now = Timestamp::now();
        // Enforcement asks about now; the receipt names the state it relied on.
        let decision = self.authority.check(
            effect.capability_id,
            &effect.action_of(effect.actor.clone()),
            now,
        );
        let unreadable = |error: sqlx::Error| format!("the quota cannot be read: {error}");
        let destination_used = match self.gateway.quotas.get(&effect.destination) {
            Some((_, window)) => Some(
                self.executed_since(&effect.destination, *window)
                    .await
                    .map(|used| used + in_batch.at(&effect.destination))
                    .map_err(unreadable),
            ),
            None => None,
        };
        let actor_used = match self.gateway.actor_quota {
            Some((_, window)) => Some(
                self.executed_by_since(&effect.actor, window)
                    .await
                    .map(|used| used + in_batch.by(&effect.actor))
                    .map_err(unreadable),
            ),
            None => None,
        };
        let facts = Facts {
            now,
            known_destination: self.executors.contains_key(&effect.destination),
            destination_used,
            actor_used,
        };
        (self.gateway.judge(effect, &decision, &facts), decision)
    }

    async fn executed_since(
        &self,
        destination: &str,
        window: Duration,
    ) -> Result<i64, sqlx::Error> {
        let since = Timestamp::now()
            .unix_micros()
            .saturating_sub(micros(window));
        outbox::executed_since(self.store.db(), CountedBy::Destination(destination), since).await
    }

    async fn executed_by_since(&self, actor: &Actor, window: Duration) -> Result<i64, sqlx::Error> {
        let since = Timestamp::now()
            .unix_micros()
            .saturating_sub(micros(window));
        let actor = serde_json::to_string(actor).expect("an actor is plain JSON");
        outbox::executed_since(self.store.db(), CountedBy::Actor(&actor), since).await
    }

    /// Cancels a pending effect that no dispatcher holds (an irreversible one during its
    /// hold, or one waiting for an approval): it is refused at the hold check, with a
    /// receipt naming who cancelled it and why, on the canceller's capability, which must
    /// allow the effect itself (a denial has its receipt and cancels nothing).
    pub async fn cancel(
        &self,
        command_id: &CommandId,
        by: &Acting,
        capability_id: CapabilityId,
        reason: &str,
    ) -> Result<Cancelled, DispatchError> {
        let claimed = self.claim_rows(1, Some(command_id)).await?;
        let Some(effect) = claimed.into_iter().next() else {
            return Ok(Cancelled::NotPending);
        };
        let asked = crate::capability::Asked {
            subject: effect.command_id.to_string(),
            source_ref: "core.egress.cancel",
            correlation_id: effect.correlation_id,
            by,
        };
        let checked = crate::capability::check_or_deny(
            &self.store,
            &*self.authority,
            capability_id,
            &effect.action_of(by.actor.clone()),
            asked,
        )
        .await;
        if !matches!(checked, Ok(Ok(_))) {
            // Let go of the row at once: a dispatcher may take it as it would have.
            outbox::release_claims(self.store.db(), &self.name, &[effect.id], 0)
                .await
                .map_err(DispatchError::Claim)?;
        }
        let decision = match checked {
            Ok(Ok(decision)) => decision,
            Ok(Err(reason)) => return Ok(Cancelled::Denied { reason }),
            Err(source) => {
                return Err(DispatchError::Close {
                    id: effect.id,
                    source,
                });
            }
        };
        let refusal = Outcome::Refused {
            check: Check::Hold,
            reason: format!(
                "cancelled by {} before dispatch: {reason}",
                actor_label(&by.actor)
            ),
            capability: decision,
            cancelled: true,
        };
        self.close(&[(effect, refusal)]).await?;
        Ok(Cancelled::Done)
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Effect>, DispatchError> {
        self.claim_rows(limit, None).await
    }

    /// Claims pending rows whose hold is over, or the one row of `only` whatever its hold.
    async fn claim_rows(
        &self,
        limit: usize,
        only: Option<&CommandId>,
    ) -> Result<Vec<Effect>, DispatchError> {
        let now = Timestamp::now().unix_micros();
        let until = now.saturating_add(micros(self.lease));
        let only = only.map(ToString::to_string);
        let held_until = |hold: &Duration| now.saturating_sub(micros(*hold));
        let destinations: Vec<(String, i64)> = self
            .gateway
            .holds
            .iter()
            .map(|(destination, hold)| (destination.clone(), held_until(hold)))
            .collect();
        let which = match &only {
            Some(command_id) => outbox::Claim::Only(command_id),
            None => outbox::Claim::HoldOver {
                held_until_us: held_until(&self.gateway.hold),
                destinations: &destinations,
                limit: limit as i64,
            },
        };
        outbox::claim(self.store.db(), &self.name, until, now, which)
            .await
            .map_err(DispatchError::Claim)?
            .into_iter()
            .map(Effect::try_from)
            .collect()
    }

    /// The receipts and the rows' final states, in one transaction, while the claims hold.
    async fn close(&self, closing: &[(Effect, Outcome)]) -> Result<(), DispatchError> {
        if closing.is_empty() {
            return Ok(());
        }
        let mut receipts: Vec<EventEnvelope> = Vec::new();
        for (effect, outcome) in closing {
            let step = effect.step(outcome.state());
            let step = match outcome {
                Outcome::Executed { .. } => step,
                Outcome::Refused { reason, .. } | Outcome::Failed { reason, .. } => {
                    step.note(reason.clone())
                }
            };
            receipts.push(receipt(effect, outcome.clone()));
            receipts.push(step.event());
            // The effect this one undoes is compensated now.
            if let (Outcome::Executed { .. }, Some(original)) = (outcome, effect.compensates) {
                let mut undone = effect.step(EffectState::Compensated);
                undone.command_id = original;
                receipts.push(
                    undone
                        .note(format!("undone by {}", effect.command_id))
                        .event(),
                );
            }
        }
        // One statement per final state, each closing its rows while the claims hold.
        let mut by_state: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
        for (effect, outcome) in closing {
            by_state
                .entry(outcome.row_state())
                .or_default()
                .push(effect.id);
        }
        let closes: Vec<ClaimedRows<'_>> = by_state
            .into_iter()
            .map(|(state, ids)| {
                ClaimedRows::close(self.store.db().dialect(), ids, &self.name, state)
            })
            .collect();
        let sides: Vec<&dyn AtomicWrite> = closes.iter().map(|c| c as &dyn AtomicWrite).collect();
        self.record(&receipts, &sides, closing[0].0.id).await
    }

    /// Appends `events` to this dispatcher's stream with `sides`; a failure names row `id`.
    async fn record(
        &self,
        events: &[EventEnvelope],
        sides: &[&dyn AtomicWrite],
        id: i64,
    ) -> Result<(), DispatchError> {
        self.store
            .append_with(&self.stream(), ExpectedVersion::Any, events, sides)
            .await
            .map(drop)
            .map_err(|source| DispatchError::Close { id, source })
    }

    fn stream(&self) -> String {
        format!("egress/{}", self.name)
    }
}

/// The effects one batch has allowed so far, per destination and per requester.
#[derive(Default)]
struct Allowed {
    destinations: BTreeMap<String, i64>,
    actors: std::collections::HashMap<Actor, i64>,
}

impl Allowed {
    fn count(&mut self, effect: &Effect) {
        *self
            .destinations
            .entry(effect.destination.clone())
            .or_default() += 1;
        *self.actors.entry(effect.actor.clone()).or_default() += 1;
    }

    fn at(&self, destination: &str) -> i64 {
        self.destinations.get(destination).copied().unwrap_or(0)
    }

    fn by(&self, actor: &Actor) -> i64 {
        self.actors.get(actor).copied().unwrap_or(0)
    }
}

/// How a claimed effect ends.
#[derive(Clone, Debug)]
enum Outcome {
    Executed {
        approval: Approval,
        capability: Decision,
    },
    Refused {
        check: Check,
        reason: String,
        /// The capability check of the effect's requester, or of who cancelled it.
        capability: Decision,
        /// Cancelled by an actor, not refused by a check: its own terminal state (A9).
        cancelled: bool,
    },
    Failed {
        approval: Approval,
        capability: Decision,
        reason: String,
    },
}

impl Outcome {
    fn state(&self) -> EffectState {
        match self {
            Outcome::Executed { .. } => EffectState::Executed,
            Outcome::Refused {
                cancelled: true, ..
            } => EffectState::Cancelled,
            Outcome::Refused { .. } => EffectState::Refused,
            Outcome::Failed { .. } => EffectState::Failed,
        }
    }

    /// The outbox row's final state.
    fn row_state(&self) -> &'static str {
        match self {
            Outcome::Executed { .. } => "executed",
            Outcome::Refused {
                cancelled: true, ..
            } => "cancelled",
            Outcome::Refused { .. } => "refused",
            Outcome::Failed { .. } => "failed",
        }
    }
}

fn count(closed: &[(Effect, Outcome)], report: &mut DispatchReport) {
    for (_, outcome) in closed {
        match outcome {
            Outcome::Executed { .. } => report.executed += 1,
            Outcome::Refused { .. } => report.refused += 1,
            Outcome::Failed { .. } => report.gave_up += 1,
        }
    }
}

/// The receipt of one effect; its id derives from the command, so an effect has one.
fn receipt(effect: &Effect, outcome: Outcome) -> EventEnvelope {
    let origin = effect.origin(effect.command_id.to_string(), gateway_actor());
    let request = EffectRequest {
        command_id: effect.command_id,
        destination: effect.destination.clone(),
        tenant_id: effect.tenant_id.clone(),
        idempotency_key: effect.idempotency_key,
        request_hash: effect.request_hash,
        requested_by: effect.actor.clone(),
        capability_id: effect.capability_id,
        reversibility: Some(effect.reversibility),
    };
    let receipt = match outcome {
        Outcome::Executed {
            approval,
            capability,
        } => EventEnvelope::new(
            &EgressExecuted {
                effect: request,
                capability_state_ref: capability.state_ref,
                capability_chain: capability.chain,
                approval,
            },
            origin,
        ),
        Outcome::Refused {
            check,
            reason,
            capability,
            ..
        } => EventEnvelope::new(
            &EgressRefused {
                effect: request,
                check,
                reason,
                capability_state_ref: capability.state_ref,
                capability_chain: capability.chain,
            },
            origin,
        ),
        Outcome::Failed {
            approval,
            capability,
            reason,
        } => EventEnvelope::new(
            &EgressFailed {
                effect: request,
                capability_state_ref: capability.state_ref,
                capability_chain: capability.chain,
                approval,
                attempts: effect.attempts as u32,
                reason,
            },
            origin,
        ),
    };
    receipt.expect("a receipt is plain JSON")
}

/// The destinations of effects still pending in the outbox.
pub async fn pending_destinations(store: &EventStore) -> Result<Vec<String>, sqlx::Error> {
    outbox::pending_destinations(store.db()).await
}
