//! Capabilities kept in the event log (A4): each change is a core event on the stream
//! `capability/<id>`, checked before it is written (a delegation must lie within its
//! parent), and folded into a [`CapabilityBook`] that answers checks from memory.
//!
//! The book is this process's cache of the log. Writes through this handle update it at
//! once; changes written by other hosts on a shared database arrive with
//! [`Capabilities::refresh`], which the host calls on a timer. A check therefore uses the
//! state as of its last refresh, and an audit that needs the exact past refreshes first.

use crate::clock::WallClock;
use std::sync::{Arc, RwLock};

use ops_core::capability::{
    Action, Authority, CapabilityBook, CapabilityDenied, CapabilityExpired, CapabilityGranted,
    CapabilityRevoked, CapabilityScopeChanged, Decision, Scope,
};
use ops_core::contract::{Contract, Event};
use ops_core::envelope::{Actor, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId, EventId};
use ops_core::time::Timestamp;

use crate::acting::{Acting, Cause};
use crate::service_event;
use crate::store::{AppendError, EventStore, LogPosition, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// A grant, scope change or revocation that may not be recorded, and why.
    #[error("refused for capability {capability}: {reason}")]
    Refused {
        capability: CapabilityId,
        reason: String,
    },
    #[error("capability {0} was never granted")]
    Unknown(CapabilityId),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("recording the capability change failed; nothing was written: {0}")]
    Append(#[from] AppendError),
}

#[derive(Clone)]
pub struct Capabilities {
    store: EventStore,
    book: Arc<RwLock<CapabilityBook>>,
    /// How far in the log the book has read: each refresh reads only what came since.
    read_up_to: Arc<tokio::sync::Mutex<LogPosition>>,
    /// Who may grant a root capability (one with no parent); nobody until the host says.
    operators: Arc<Vec<Actor>>,
}

/// How many capability events a refresh reads at a time.
const REFRESH_BATCH: usize = 1_000;

impl Capabilities {
    /// Every capability in the log, folded.
    pub async fn load(store: EventStore) -> Result<Self, ReadError> {
        let capabilities = Capabilities {
            store,
            book: Arc::default(),
            read_up_to: Arc::default(),
            operators: Arc::default(),
        };
        capabilities.refresh().await?;
        Ok(capabilities)
    }

    /// Reads the capability events recorded since the last refresh, picking up other
    /// hosts' changes (a change that happened earlier than what the book has takes its
    /// place by when it happened).
    pub async fn refresh(&self) -> Result<(), ReadError> {
        let mut read_up_to = self.read_up_to.lock().await;
        loop {
            let batch = self
                .store
                .follow_types(
                    &[
                        CapabilityGranted::TYPE,
                        CapabilityScopeChanged::TYPE,
                        CapabilityRevoked::TYPE,
                        CapabilityExpired::TYPE,
                    ],
                    *read_up_to,
                    REFRESH_BATCH,
                )
                .await?;
            if batch.events.is_empty() && batch.corrupt.is_empty() {
                return Ok(());
            }
            *read_up_to = batch.next;
            for stored in batch.events {
                let recorded = self
                    .book
                    .write()
                    .expect("the capability book is never poisoned")
                    .record_event(&stored.envelope);
                if let Err(reason) = recorded {
                    // Kept aside, not dropped: a capability the book cannot read allows nothing.
                    let raw =
                        serde_json::to_string(&stored.envelope).expect("an envelope is plain JSON");
                    self.store
                        .quarantine(
                            "capabilities",
                            &stored.envelope.event_id.to_string(),
                            &reason,
                            &raw,
                        )
                        .await
                        .map_err(ReadError::from)?;
                }
            }
            for corrupt in batch.corrupt {
                self.store
                    .quarantine(
                        "capabilities",
                        &corrupt.reference,
                        &corrupt.reason,
                        &corrupt.raw,
                    )
                    .await
                    .map_err(ReadError::from)?;
            }
        }
    }

    /// The actors who may grant root capabilities: the operators the host's configuration
    /// names. Without them no root capability can be granted (fail closed); delegation
    /// needs none, since a delegate is bounded by its parent.
    pub fn with_operators(mut self, operators: Vec<Actor>) -> Self {
        self.operators = Arc::new(operators);
        self
    }

    /// Grants a capability; with a `parent`, delegates part of it. A root grant's issuer
    /// must be one of the operators.
    pub async fn grant(
        &self,
        grant: CapabilityGranted,
        at: Timestamp,
    ) -> Result<EventId, CapabilityError> {
        if grant.parent.is_none() && !self.operators.contains(&grant.issuer) {
            return Err(CapabilityError::Refused {
                capability: grant.capability_id,
                reason: format!(
                    "a root capability is granted only by an operator, and {} is not one (operators are named in the host's configuration)",
                    ops_core::capability::actor_label(&grant.issuer)
                ),
            });
        }
        if let Some(reason) = self.read().refuses_grant(&grant, at) {
            return Err(CapabilityError::Refused {
                capability: grant.capability_id,
                reason,
            });
        }
        let (id, issuer) = (grant.capability_id, grant.issuer.clone());
        self.write(id, &grant, issuer, "granted", at).await
    }

    /// Changes the scope of a capability. A delegated one stays within its parent. Its
    /// holder may only narrow it; widening it is for an operator, or whoever issued it or
    /// holds a capability it was delegated from.
    pub async fn change_scope(
        &self,
        capability_id: CapabilityId,
        scope: Scope,
        by: Actor,
        at: Timestamp,
    ) -> Result<EventId, CapabilityError> {
        self.may_change(capability_id, &by, at)?;
        let (current, parent_scope, above_holder) = {
            let book = self.read();
            let state = book
                .state_at(capability_id, at)
                .ok_or(CapabilityError::Unknown(capability_id))?;
            let parent = state
                .grant
                .parent
                .and_then(|parent| book.state_at(parent, at));
            let above_holder = self.operators.contains(&by)
                || state.grant.issuer == by
                || up_the_chain(&book, state.grant.parent, &by, at);
            (
                state.scope.clone(),
                parent.map(|parent| parent.scope.clone()),
                above_holder,
            )
        };
        if parent_scope.is_some_and(|parent| !scope.within(&parent)) {
            return Err(CapabilityError::Refused {
                capability: capability_id,
                reason: "the new scope is wider than its parent's".to_owned(),
            });
        }
        if !above_holder && !scope.within(&current) {
            return Err(CapabilityError::Refused {
                capability: capability_id,
                reason: format!(
                    "{} holds it and may only narrow its scope; widening it is for an operator or whoever issued it",
                    ops_core::capability::actor_label(&by)
                ),
            });
        }
        let change = CapabilityScopeChanged {
            capability_id,
            scope,
            changed_by: by.clone(),
        };
        self.write(capability_id, &change, by, "scope", at).await
    }

    /// Revokes a capability, and with it every capability delegated from it.
    pub async fn revoke(
        &self,
        capability_id: CapabilityId,
        by: Actor,
        reason: &str,
        at: Timestamp,
    ) -> Result<EventId, CapabilityError> {
        self.may_change(capability_id, &by, at)?;
        let revoked = CapabilityRevoked {
            capability_id,
            revoked_by: by.clone(),
            reason: reason.to_owned(),
        };
        self.write(capability_id, &revoked, by, "revoked", at).await
    }

    /// Records that a capability's window ended.
    pub async fn expire(
        &self,
        capability_id: CapabilityId,
        at: Timestamp,
    ) -> Result<EventId, CapabilityError> {
        self.known(capability_id, at)?;
        let actor = Actor::Service(
            ops_core::envelope::ActorId::new("core.capabilities").expect("a valid actor id"),
        );
        self.write(
            capability_id,
            &CapabilityExpired { capability_id },
            actor,
            "expired",
            at,
        )
        .await
    }

    /// Records `CapabilityExpired` for every capability whose window ended by `now` and
    /// whose end is not recorded yet; returns them. The window alone already ends a
    /// capability; this makes the end visible in the log. Running it again records nothing.
    pub async fn expire_due(&self, now: Timestamp) -> Result<Vec<CapabilityId>, CapabilityError> {
        let due: Vec<(CapabilityId, Timestamp)> = self.read().ended_unrecorded(now);
        for (capability_id, ended_at) in &due {
            self.expire(*capability_id, *ended_at).await?;
        }
        Ok(due.into_iter().map(|(id, _)| id).collect())
    }

    pub fn check(&self, capability_id: CapabilityId, action: &Action, at: Timestamp) -> Decision {
        self.read().check(capability_id, action, at)
    }

    /// A copy of the book as of the last refresh, for audits that walk every capability.
    pub fn book(&self) -> CapabilityBook {
        self.read().clone()
    }

    /// Whether `by` may take an operator's `action` (`core.<area>.<Verb>`, or the event
    /// type it records) on `subject` now, on `capability_id`: `Ok` with the capability state
    /// the check relied on, or the reason it is denied, whose `CapabilityDenied` receipt is
    /// written first.
    pub async fn authorize_step(
        &self,
        capability_id: CapabilityId,
        by: &Acting,
        action: &str,
        subject: String,
    ) -> Result<Result<String, String>, AppendError> {
        let asked = Asked::by_user(by, subject, "core.operator");
        Ok(check_or_deny(
            &self.store,
            self,
            capability_id,
            &step_of(&by.actor, action),
            asked,
        )
        .await?
        .map(|decision| decision.state_ref))
    }

    /// Whether the log holds `grant` as it is: a grant stated again (an operator's retried
    /// action) is the one already recorded.
    pub fn records(&self, grant: &CapabilityGranted) -> bool {
        self.read()
            .state_at(grant.capability_id, grant.valid_from)
            .is_some_and(|state| state.grant == grant)
    }

    /// Whether `capability_id` was granted by `at`, and if so whether it had ended by then
    /// (revoked, expired, or past its window).
    pub fn ended_at(&self, capability_id: CapabilityId, at: Timestamp) -> Option<bool> {
        self.read()
            .state_at(capability_id, at)
            .map(|state| state.revoked.is_some() || state.expired || at >= state.grant.valid_until)
    }

    /// Whether `envelope` names a capability the log granted: every receipt names the one
    /// its writer acted on, which must exist. A denial names the one it refused, which may
    /// never have existed (its receipt says so); an operator's action, the one the operator
    /// named, which what the action goes on to do is checked on.
    pub fn names_granted(&self, envelope: &EventEnvelope) -> bool {
        envelope.event_type == CapabilityDenied::TYPE
            || envelope.event_type == ops_core::operator::OperatorActionTaken::TYPE
            || self.is_granted(envelope.capability_id)
    }

    /// Whether `capability_id` was ever granted (whatever became of it since).
    pub fn is_granted(&self, capability_id: CapabilityId) -> bool {
        self.read()
            .state_at(capability_id, Timestamp::now())
            .is_some()
    }

    /// Whether `by` may change or revoke `capability_id`: an operator, its holder (giving
    /// it up), or whoever issued it or any capability it was delegated from, or held one
    /// of those.
    fn may_change(
        &self,
        capability_id: CapabilityId,
        by: &Actor,
        at: Timestamp,
    ) -> Result<(), CapabilityError> {
        self.known(capability_id, at)?;
        if self.operators.contains(by) || up_the_chain(&self.read(), Some(capability_id), by, at) {
            return Ok(());
        }
        Err(CapabilityError::Refused {
            capability: capability_id,
            reason: format!(
                "{} is neither an operator nor its holder, nor issued or held it or a capability it was delegated from",
                ops_core::capability::actor_label(by)
            ),
        })
    }

    fn known(&self, capability_id: CapabilityId, at: Timestamp) -> Result<(), CapabilityError> {
        self.read()
            .state_at(capability_id, at)
            .map(drop)
            .ok_or(CapabilityError::Unknown(capability_id))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CapabilityBook> {
        self.book
            .read()
            .expect("the capability book is never poisoned")
    }

    async fn write<E: Event>(
        &self,
        capability_id: CapabilityId,
        event: &E,
        actor: Actor,
        what: &str,
        at: Timestamp,
    ) -> Result<EventId, CapabilityError> {
        // The step takes the time it is stated at (the operator's action's, for the
        // host's verbs), so the same step stated again is the same event.
        let native_id = format!("{capability_id}:{what}:{at}");
        let by = Acting::new(actor, Cause::act(&native_id, at));
        let origin = EventOrigin {
            correlation_id: CorrelationId::of(&capability_id.to_string())
                .expect("plain strings have a canonical form"),
            ..by.origin("core.capabilities", &native_id, capability_id)
        };
        let envelope = service_event::record_in_sequence(
            &self.store,
            &format!("capability/{capability_id}"),
            event,
            origin,
        )
        .await?;
        self.book
            .write()
            .expect("the capability book is never poisoned")
            .record_event(&envelope)
            .expect("an event this handle just wrote reads back");
        Ok(envelope.event_id)
    }
}

impl Authority for Capabilities {
    fn check(&self, capability_id: CapabilityId, action: &Action, at: Timestamp) -> Decision {
        Capabilities::check(self, capability_id, action, at)
    }

    fn reveals(&self, capability_id: CapabilityId, type_name: &str, at: Timestamp) -> bool {
        self.read().reveals(capability_id, type_name, at)
    }
}

/// A check that said no, as its receipt records it.
pub(crate) struct Denial<'a> {
    pub capability_id: CapabilityId,
    /// Who asked, in answer to what: the receipt takes the cause's time, so the same
    /// request asked again unchanged (a command a reaction proposes until it is allowed,
    /// an operator's retried action) under one capability state is one receipt, however
    /// often it is asked.
    pub by: &'a Acting,
    pub action: &'a str,
    pub subject: String,
    pub reason: &'a str,
    pub decision: Decision,
    pub correlation_id: CorrelationId,
    pub source_ref: &'static str,
}

/// Where a check is asked from, for its denial's receipt: what was asked for, by whom in
/// answer to what, and the correlation the receipt carries.
pub(crate) struct Asked<'a> {
    pub subject: String,
    pub source_ref: &'static str,
    pub correlation_id: CorrelationId,
    pub by: &'a Acting,
}

impl<'a> Asked<'a> {
    /// Asked by `by` from the operator's tooling about `subject` (`subjects/…`,
    /// `secrets/…`), correlated by it.
    pub fn by_user(by: &'a Acting, subject: String, source_ref: &'static str) -> Self {
        Asked {
            correlation_id: CorrelationId::of(&subject)
                .expect("plain strings have a canonical form"),
            subject,
            source_ref,
            by,
        }
    }
}

/// Asks `authority` whether `capability_id` allows `action` now. Allowed: the decision it
/// relied on. Not: its `CapabilityDenied` receipt is written and the reason returned.
pub(crate) async fn check_or_deny(
    store: &EventStore,
    authority: &dyn Authority,
    capability_id: CapabilityId,
    action: &Action,
    asked: Asked<'_>,
) -> Result<Result<Decision, String>, AppendError> {
    let decision = authority.check(capability_id, action, Timestamp::now());
    if decision.allowed {
        return Ok(Ok(decision));
    }
    let reason = decision.reason.clone().unwrap_or_default();
    record_denial(
        store,
        Denial {
            capability_id,
            by: asked.by,
            action: &action.command_type,
            subject: asked.subject,
            reason: &reason,
            decision,
            correlation_id: asked.correlation_id,
            source_ref: asked.source_ref,
        },
    )
    .await?;
    Ok(Err(reason))
}

/// How one of the core's services (policies, releases, retention) checks an operator's
/// steps: on the capability it was opened with, with an authority when an operator's
/// tooling takes the steps, without one when the runtime takes them itself (then nothing
/// is asked and nothing relied on). A denial is receipted in the service's name.
#[derive(Clone)]
pub(crate) struct StepCheck {
    store: EventStore,
    capability_id: CapabilityId,
    source_ref: &'static str,
    authority: Option<Arc<dyn Authority>>,
}

impl StepCheck {
    /// Steps the runtime takes itself, until [`StepCheck::checked_by`].
    pub(crate) fn new(
        store: EventStore,
        capability_id: CapabilityId,
        source_ref: &'static str,
    ) -> Self {
        StepCheck {
            store,
            capability_id,
            source_ref,
            authority: None,
        }
    }

    pub(crate) fn checked_by(&mut self, authority: Arc<dyn Authority>) {
        self.authority = Some(authority);
    }

    /// Whether `by` may record `event_type` about `subject`: `Ok` with the capability
    /// event the check relied on, which the step's receipt names (`""` when nothing was
    /// asked), or the reason it is denied, receipted.
    pub(crate) async fn allowed(
        &self,
        by: &Acting,
        event_type: &str,
        subject: String,
    ) -> Result<Result<String, String>, AppendError> {
        let Some(authority) = &self.authority else {
            return Ok(Ok(String::new()));
        };
        let asked = Asked::by_user(by, subject, self.source_ref);
        Ok(check_or_deny(
            &self.store,
            &**authority,
            self.capability_id,
            &step_of(&by.actor, event_type),
            asked,
        )
        .await?
        .map(|decision| decision.state_ref))
    }

    /// `event` as its receipt records it when `by` may take it: naming the capability
    /// event the check relied on; else the reason it is denied, receipted.
    pub(crate) async fn relying_on<E: ops_core::capability::CheckedStep>(
        &self,
        by: &Acting,
        event: &E,
        subject: String,
    ) -> Result<Result<E, String>, AppendError> {
        Ok(self
            .allowed(by, E::TYPE, subject)
            .await?
            .map(|relied_on| event.clone().relying_on(relied_on)))
    }
}

/// An operator's step on the core's records (a policy or release step, an erasure): the
/// event type it writes, as an internal write of `actor`'s.
pub(crate) fn step_of(actor: &Actor, event_type: &str) -> Action {
    Action {
        actor: actor.clone(),
        command_type: event_type.to_owned(),
        safety: ops_core::contract::SafetyClass::WriteInternal,
        tenant: None,
        destination: None,
    }
}

/// Writes the `CapabilityDenied` receipt of a refused call, on the capability's stream of
/// denials.
pub(crate) async fn record_denial(
    store: &EventStore,
    denial: Denial<'_>,
) -> Result<(), AppendError> {
    let receipt = CapabilityDenied {
        capability_id: denial.capability_id,
        actor: denial.by.actor.clone(),
        action: denial.action.to_owned(),
        subject: denial.subject.clone(),
        reason: denial.reason.to_owned(),
        capability_state_ref: denial.decision.state_ref,
        capability_chain: denial.decision.chain,
    };
    let native_id = format!("{}:denied:{}", denial.subject, receipt.capability_state_ref);
    let origin = EventOrigin {
        correlation_id: denial.correlation_id,
        ..denial
            .by
            .origin(denial.source_ref, &native_id, denial.capability_id)
    };
    let stream = format!("denials/{}", denial.capability_id);
    service_event::record(store, &stream, &receipt, origin)
        .await
        .map(drop)
}

/// Whether `by` issued or holds `from` or a capability it was delegated from.
fn up_the_chain(
    book: &CapabilityBook,
    from: Option<CapabilityId>,
    by: &Actor,
    at: Timestamp,
) -> bool {
    let mut next = from;
    let mut depth = 0;
    while let Some(id) = next.filter(|_| depth <= ops_core::capability::MAX_DELEGATION_DEPTH) {
        let Some(state) = book.state_at(id, at) else {
            break;
        };
        if state.grant.issuer == *by || state.grant.holder == *by {
            return true;
        }
        next = state.grant.parent;
        depth += 1;
    }
    false
}
