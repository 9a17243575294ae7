//! Capabilities (A4): who may do what, as events, evaluated as of a time.
//!
//! A capability is granted to one holder by an issuer, with a [`Scope`] (which command
//! types, up to which safety class, for which tenants and destinations) and a validity
//! window. Its later life is events too: its scope changes, it is revoked, it expires.
//! [`CapabilityBook`] folds those events; [`CapabilityBook::check`] answers whether an
//! [`Action`] was allowed at a time from the events that had happened by then, so
//! enforcement asks about now and an audit about any past moment and gets the answer that
//! was true then. A revocation that arrives late counts from when it happened.
//!
//! Delegation is a grant with a parent: its scope must lie within the parent's and its
//! window within the parent's, and it holds only while every ancestor holds, so revoking
//! or expiring a parent ends all its descendants at once. A decision names the capability
//! event it relied on (`state_ref`) and the chain of delegations, never a copy of a scope.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use crate::contract::SafetyClass;
use crate::envelope::{Actor, EventEnvelope};
use crate::event;
use crate::id::{CapabilityId, EventId};
use crate::time::Timestamp;

/// A set of names: everything, or only these. A name ending in `.*` covers every name
/// under that prefix (`pack.incidents.*`).
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", content = "names", rename_all = "snake_case")]
pub enum Selector {
    All,
    Only(BTreeSet<String>),
}

impl Selector {
    pub fn none() -> Self {
        Selector::Only(BTreeSet::new())
    }

    pub fn only<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Selector::Only(names.into_iter().map(str::to_owned).collect())
    }

    pub fn covers(&self, name: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Only(names) => names.iter().any(|pattern| matches(pattern, name)),
        }
    }

    /// Whether everything `self` covers, `parent` covers too.
    pub fn within(&self, parent: &Selector) -> bool {
        match (self, parent) {
            (_, Selector::All) => true,
            (Selector::All, Selector::Only(_)) => false,
            (Selector::Only(names), Selector::Only(_)) => {
                names.iter().all(|name| match name.strip_suffix(".*") {
                    // A prefix is within the parent only if a parent prefix covers it whole.
                    Some(prefix) => parent_covers_prefix(parent, prefix),
                    None => parent.covers(name),
                })
            }
        }
    }
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(prefix) => {
            name.len() > prefix.len() + 1
                && name.starts_with(prefix)
                && name.as_bytes()[prefix.len()] == b'.'
        }
        None => pattern == name,
    }
}

fn parent_covers_prefix(parent: &Selector, prefix: &str) -> bool {
    match parent {
        Selector::All => true,
        Selector::Only(names) => names.iter().any(|pattern| {
            pattern
                .strip_suffix(".*")
                .is_some_and(|outer| outer == prefix || matches(pattern, prefix))
        }),
    }
}

/// What a capability allows.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Command types it may send, and event types it may query.
    pub types: Selector,
    /// The most dangerous safety class it may use.
    pub max_safety: SafetyClass,
    pub tenants: Selector,
    /// Destinations its external effects may reach.
    pub destinations: Selector,
    /// Types whose sensitive fields its queries see; redacted otherwise.
    #[serde(default = "Selector::none")]
    pub sensitive: Selector,
}

impl Scope {
    /// Everything: what an operator grants itself at install time.
    pub fn everything() -> Self {
        Scope {
            types: Selector::All,
            max_safety: SafetyClass::WriteExternalSideEffect,
            tenants: Selector::All,
            destinations: Selector::All,
            sensitive: Selector::All,
        }
    }

    pub fn within(&self, parent: &Scope) -> bool {
        self.types.within(&parent.types)
            && self.max_safety <= parent.max_safety
            && self.tenants.within(&parent.tenants)
            && self.destinations.within(&parent.destinations)
            && self.sensitive.within(&parent.sensitive)
    }

    /// Why `action` is outside this scope, if it is.
    fn refuses(&self, action: &Action) -> Option<String> {
        if !self.types.covers(&action.command_type) {
            return Some(format!(
                "its scope does not cover `{}`",
                action.command_type
            ));
        }
        if action.safety > self.max_safety {
            return Some(format!(
                "its scope stops at {:?}, and `{}` is {:?}",
                self.max_safety, action.command_type, action.safety
            ));
        }
        if let Some(tenant) = action.tenant.as_deref().filter(|t| !self.tenants.covers(t)) {
            return Some(format!("its scope does not cover tenant `{tenant}`"));
        }
        if let Some(destination) = action
            .destination
            .as_deref()
            .filter(|d| !self.destinations.covers(d))
        {
            return Some(format!("its scope does not reach `{destination}`"));
        }
        None
    }
}

/// Something an actor wants to do on a capability's authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub actor: Actor,
    pub command_type: String,
    pub safety: SafetyClass,
    pub tenant: Option<String>,
    pub destination: Option<String>,
}

const EXAMPLE_ID: &str = "cap_0000000000000000000000000000000000000000000000000000000000000000";

fn example_id() -> CapabilityId {
    EXAMPLE_ID.parse().expect("an id")
}

fn example_actor(id: &str) -> Actor {
    Actor::Human(crate::envelope::ActorId::new(id).expect("an actor id"))
}

fn example_scope() -> Scope {
    Scope {
        types: Selector::only(["pack.incidents.*"]),
        max_safety: SafetyClass::WriteExternalSideEffect,
        tenants: Selector::only(["acme"]),
        destinations: Selector::only(["pager"]),
        sensitive: Selector::none(),
    }
}

fn example_time(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

/// A capability comes to be: granted by an issuer, or delegated by the holder of `parent`.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = CapabilityGranted {
    capability_id: example_id(),
    holder: example_actor("ada@example.com"),
    issuer: example_actor("operator@example.com"),
    scope: example_scope(),
    valid_from: example_time("2026-11-01T00:00:00Z"),
    valid_until: example_time("2027-11-01T00:00:00Z"),
    parent: None,
})]
pub struct CapabilityGranted {
    pub capability_id: CapabilityId,
    pub holder: Actor,
    pub issuer: Actor,
    pub scope: Scope,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    /// The capability this one was delegated from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<CapabilityId>,
}

#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = CapabilityScopeChanged {
    capability_id: example_id(),
    scope: example_scope(),
    changed_by: example_actor("operator@example.com"),
})]
pub struct CapabilityScopeChanged {
    pub capability_id: CapabilityId,
    pub scope: Scope,
    pub changed_by: Actor,
}

#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = CapabilityRevoked {
    capability_id: example_id(),
    revoked_by: example_actor("operator@example.com"),
    reason: "left the on-call rota".to_owned(),
})]
pub struct CapabilityRevoked {
    pub capability_id: CapabilityId,
    pub revoked_by: Actor,
    pub reason: String,
}

/// Recorded when a capability's window ended; the window alone already ends it, so this
/// event makes the end visible in the log rather than changing any answer.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = CapabilityExpired { capability_id: example_id() })]
pub struct CapabilityExpired {
    pub capability_id: CapabilityId,
}

/// The receipt of a check that said no: who asked, for what, and why not.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = CapabilityDenied {
    capability_id: example_id(),
    actor: example_actor("ada@example.com"),
    action: "pack.incidents.paging.PageResponder".to_owned(),
    subject: "cmd_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    reason: "its scope does not reach `sms`".to_owned(),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    capability_chain: vec![example_id()],
})]
pub struct CapabilityDenied {
    pub capability_id: CapabilityId,
    pub actor: Actor,
    /// The command type the action was.
    pub action: String,
    /// What was asked: the command, by its id (`cmd_…`).
    pub subject: String,
    pub reason: String,
    /// The capability event the decision relied on; empty when it was unknown.
    pub capability_state_ref: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_chain: Vec<CapabilityId>,
}

/// One event of a capability's life, as the book keeps it.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Granted(CapabilityGranted),
    ScopeChanged(Scope),
    Revoked { reason: String },
    Expired,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub event_id: EventId,
    pub occurred_at: Timestamp,
    /// Its place in the capability's stream (the envelope's `source_sequence`): what orders
    /// changes recorded at the same instant.
    pub sequence: Option<u64>,
    pub change: Change,
}

/// The answer to a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The id of the last event of the capability the decision relied on (`evt_…`), or
    /// empty when the capability was unknown at that time.
    pub state_ref: String,
    /// The capability and its ancestors, nearest first.
    pub chain: Vec<CapabilityId>,
    /// Why not, when it is not allowed.
    pub reason: Option<String>,
}

/// The receipt of an operator's step on the core's records (a policy or release step),
/// which is checked on a capability: it names the capability event the check relied on.
pub trait CheckedStep: crate::contract::Event + Clone {
    fn relying_on(self, capability_state_ref: String) -> Self;
}

/// Implements [`CheckedStep`] for receipts with a `capability_state_ref` field.
macro_rules! checked_step {
    ($($receipt:ty),+ $(,)?) => {
        $(impl $crate::capability::CheckedStep for $receipt {
            fn relying_on(self, capability_state_ref: String) -> Self {
                Self { capability_state_ref, ..self }
            }
        })+
    };
}
pub(crate) use checked_step;

/// Authority over actions: what the command bus, the egress gateway, the query gateway
/// and the secrets provider ask.
pub trait Authority: Send + Sync {
    fn check(&self, capability_id: CapabilityId, action: &Action, at: Timestamp) -> Decision;
    /// Whether queries on `capability_id` see the sensitive fields of `type_name` at `at`:
    /// only when the capability and every ancestor reveal them.
    fn reveals(&self, capability_id: CapabilityId, type_name: &str, at: Timestamp) -> bool;
}

/// How deep delegations may nest; deeper chains are refused at grant time.
pub const MAX_DELEGATION_DEPTH: usize = 8;

/// Every capability's events, in the order they happened, with the state each left it in:
/// a check finds a capability by its id and its state at a time by a binary search, not
/// by folding its events again.
///
/// A check's answer holds for a window of time: until a state along the chain changes or
/// a validity bound is crossed. Each answer is kept with its window, by capability and
/// action, so a check asked again in that window (a dispatcher checks one capability for
/// each effect of a batch) is a lookup; recording any event forgets every kept answer.
#[derive(Debug, Default)]
pub struct CapabilityBook {
    histories: HashMap<CapabilityId, History, BuildHasherDefault<DigestHasher>>,
    answers: std::sync::Mutex<Answers>,
}

impl Clone for CapabilityBook {
    fn clone(&self) -> Self {
        CapabilityBook {
            histories: self.histories.clone(),
            answers: Default::default(),
        }
    }
}

/// Kept answers, by capability: a few actions each, found by comparing them (no hashing
/// of their strings), the oldest given up first.
type Answers = HashMap<CapabilityId, Vec<Kept>, BuildHasherDefault<DigestHasher>>;

/// Actions whose answers are kept per capability.
const ANSWERS_PER_CAPABILITY: usize = 8;

#[derive(Debug)]
struct Kept {
    action: Action,
    window: Window,
    decision: Decision,
}

/// When an answer holds: from `from` (inclusive) until `until` (exclusive); `None` is
/// unbounded.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    from: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl Window {
    fn holds(&self, at: Timestamp) -> bool {
        self.from.is_none_or(|from| from <= at) && self.until.is_none_or(|until| at < until)
    }

    /// Narrowed to where `at` stands against `bound`: on or after it, or before it.
    fn split_at(&mut self, at: Timestamp, bound: Timestamp) {
        if at < bound {
            self.until = Some(self.until.map_or(bound, |until| until.min(bound)));
        } else {
            self.from = Some(self.from.map_or(bound, |from| from.max(bound)));
        }
    }
}

/// Ids are blake3 digests, uniform already: their first eight bytes are the hash. (A
/// general-purpose hasher would hash 32 random bytes again on every step of a chain.)
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_usize(&mut self, _length: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One capability's events in order, and after each of them the state it stood in.
#[derive(Clone, Debug, Default)]
struct History {
    records: Vec<Recorded>,
    /// `states[n]` holds from `records[n].occurred_at` until the next record's.
    states: Vec<Folded>,
    /// The parent its grant names (the first grant in order, which every state keeps):
    /// the next link of a chain, kept beside the id so that finding a chain reads no
    /// records (see [`CapabilityBook::links`]).
    parent: Option<CapabilityId>,
}

/// A capability's state after some of its records, by the records that made it.
#[derive(Clone, Debug)]
struct Folded {
    /// `None` while no grant was recorded yet.
    grant: Option<usize>,
    /// The grant, or the last scope change.
    scope: usize,
    revoked: Option<usize>,
    expired: bool,
    last_event: usize,
    /// `records[last_event]`'s id as text: what a check names as the state it relied on.
    last_event_text: String,
}

impl History {
    /// Folds the records again into `states`, after one was placed among them.
    fn refold(&mut self) {
        self.parent = self
            .records
            .iter()
            .find_map(|recorded| match &recorded.change {
                Change::Granted(grant) => grant.parent,
                _ => None,
            });
        self.states.clear();
        let mut folded: Option<Folded> = None;
        for (n, recorded) in self.records.iter().enumerate() {
            let next = match (&recorded.change, folded.take()) {
                (Change::Granted(_), None) => Some(Folded {
                    grant: Some(n),
                    scope: n,
                    revoked: None,
                    expired: false,
                    last_event: n,
                    last_event_text: String::new(),
                }),
                (Change::ScopeChanged(_), Some(state)) => Some(Folded {
                    scope: n,
                    last_event: n,
                    ..state
                }),
                (Change::Revoked { .. }, Some(state)) => Some(Folded {
                    revoked: state.revoked.or(Some(n)),
                    last_event: n,
                    ..state
                }),
                (Change::Expired, Some(state)) => Some(Folded {
                    expired: true,
                    last_event: n,
                    ..state
                }),
                // A second grant of one id, or a change before any grant, changes nothing.
                (_, state) => state,
            };
            folded = next.map(|mut state| {
                if state.last_event == n {
                    state.last_event_text = recorded.event_id.to_string();
                }
                state
            });
            self.states.push(folded.clone().unwrap_or(Folded {
                grant: None,
                scope: 0,
                revoked: None,
                expired: false,
                last_event: 0,
                last_event_text: String::new(),
            }));
        }
    }

    /// Reads what a check of this link reads first (its first record and state, its
    /// grant's holder and destinations) and drops it: a cold check's time is its waits on
    /// memory, and loads started while the chain is still being found run side by side
    /// where the check's own reads, one link after another, would wait in turn.
    fn fetch_ahead(&self) {
        let first = self.records.first();
        let grant = first.and_then(|first| match &first.change {
            Change::Granted(grant) => Some(grant),
            _ => None,
        });
        let first_destination = grant.and_then(|grant| match &grant.scope.destinations {
            Selector::Only(names) => names.first().and_then(|name| name.bytes().next()),
            Selector::All => None,
        });
        std::hint::black_box((
            first.map(|first| first.occurred_at),
            self.states.first().map(|state| state.grant),
            grant.and_then(|grant| actor_label_byte(&grant.holder)),
            first_destination,
        ));
    }

    /// The state as of `at`, with the text of the event it rests on.
    fn state_at(&self, at: Timestamp) -> Option<(State<'_>, &str)> {
        self.state_within(at, &mut Window::default())
    }

    /// [`Self::state_at`], narrowing `window` to the span around `at` with no record of
    /// this history in it.
    fn state_within(&self, at: Timestamp, window: &mut Window) -> Option<(State<'_>, &str)> {
        let known = self
            .records
            .partition_point(|recorded| recorded.occurred_at <= at);
        if let Some(last) = known.checked_sub(1) {
            window.split_at(at, self.records[last].occurred_at);
        }
        if let Some(next) = self.records.get(known) {
            window.split_at(at, next.occurred_at);
        }
        let folded = self.states.get(known.checked_sub(1)?)?;
        let Change::Granted(grant) = &self.records[folded.grant?].change else {
            unreachable!("a state's grant is a grant");
        };
        let scope = match &self.records[folded.scope].change {
            Change::ScopeChanged(scope) => scope,
            _ => &grant.scope,
        };
        let revoked = folded.revoked.map(|n| match &self.records[n].change {
            Change::Revoked { reason } => reason.as_str(),
            _ => unreachable!("a state's revocation is a revocation"),
        });
        let state = State {
            grant,
            scope,
            revoked,
            expired: folded.expired,
            last_event: self.records[folded.last_event].event_id,
        };
        Some((state, &folded.last_event_text))
    }
}

/// A capability as it stood at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct State<'a> {
    pub grant: &'a CapabilityGranted,
    pub scope: &'a Scope,
    pub revoked: Option<&'a str>,
    pub expired: bool,
    pub last_event: EventId,
}

impl CapabilityBook {
    pub fn record(&mut self, capability_id: CapabilityId, recorded: Recorded) {
        self.answers
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        let history = self.histories.entry(capability_id).or_default();
        if history
            .records
            .iter()
            .any(|known| known.event_id == recorded.event_id)
        {
            return;
        }
        // Late arrivals take their place by when they happened, not when they came; at the
        // same instant a grant comes before what happens to it, then changes in the order
        // they were recorded in their stream.
        let order = |r: &Recorded| {
            (
                r.occurred_at,
                !matches!(r.change, Change::Granted(_)),
                r.sequence,
                r.event_id,
            )
        };
        let at = history
            .records
            .partition_point(|known| order(known) <= order(&recorded));
        history.records.insert(at, recorded);
        history.refold();
    }

    /// Records a capability event from the log. Other events are not the book's: `Ok(false)`.
    pub fn record_event(&mut self, envelope: &EventEnvelope) -> Result<bool, String> {
        use crate::contract::Contract;
        fn decode<T: serde::de::DeserializeOwned>(envelope: &EventEnvelope) -> Result<T, String> {
            serde_json::from_value(envelope.payload.clone())
                .map_err(|error| format!("`{}` does not read as one: {error}", envelope.event_type))
        }
        let (id, change) = match envelope.event_type.as_str() {
            CapabilityGranted::TYPE => {
                let grant: CapabilityGranted = decode(envelope)?;
                (grant.capability_id, Change::Granted(grant))
            }
            CapabilityScopeChanged::TYPE => {
                let change: CapabilityScopeChanged = decode(envelope)?;
                (change.capability_id, Change::ScopeChanged(change.scope))
            }
            CapabilityRevoked::TYPE => {
                let revoked: CapabilityRevoked = decode(envelope)?;
                let reason = revoked.reason;
                (revoked.capability_id, Change::Revoked { reason })
            }
            CapabilityExpired::TYPE => {
                let expired: CapabilityExpired = decode(envelope)?;
                (expired.capability_id, Change::Expired)
            }
            _ => return Ok(false),
        };
        self.record(
            id,
            Recorded {
                event_id: envelope.event_id,
                occurred_at: envelope.occurred_at,
                sequence: envelope.source_sequence,
                change,
            },
        );
        Ok(true)
    }

    /// Capabilities whose window ended by `now` with no `CapabilityExpired` recorded, and
    /// when each ended.
    pub fn ended_unrecorded(&self, now: Timestamp) -> Vec<(CapabilityId, Timestamp)> {
        let mut ended: Vec<(CapabilityId, Timestamp)> = self
            .histories
            .iter()
            .filter_map(|(id, history)| {
                let grant = history
                    .records
                    .iter()
                    .find_map(|recorded| match &recorded.change {
                        Change::Granted(grant) => Some(grant),
                        _ => None,
                    })?;
                let recorded = history.records.iter().any(|r| r.change == Change::Expired);
                (!recorded && grant.valid_until <= now).then_some((*id, grant.valid_until))
            })
            .collect();
        ended.sort();
        ended
    }

    /// Every capability the book knows, in the order of their ids.
    pub fn ids(&self) -> impl Iterator<Item = CapabilityId> + '_ {
        let mut ids: Vec<CapabilityId> = self.histories.keys().copied().collect();
        ids.sort();
        ids.into_iter()
    }

    pub fn len(&self) -> usize {
        self.histories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.histories.is_empty()
    }

    /// The capability as of `at`: its events up to then, folded.
    pub fn state_at(&self, capability_id: CapabilityId, at: Timestamp) -> Option<State<'_>> {
        self.histories
            .get(&capability_id)?
            .state_at(at)
            .map(|(state, _)| state)
    }

    /// Whether `action` was allowed on `capability_id` at `at`.
    pub fn check(&self, capability_id: CapabilityId, action: &Action, at: Timestamp) -> Decision {
        let answers = || self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = answers().get(&capability_id).and_then(|kept| {
            kept.iter()
                .find(|kept| kept.window.holds(at) && kept.action == *action)
                .map(|kept| kept.decision.clone())
        }) {
            return kept;
        }
        let mut window = Window::default();
        let decision = self.decide(capability_id, action, at, &mut window);
        let mut answers = answers();
        let kept = answers.entry(capability_id).or_default();
        // An action's answer of another window is replaced, not kept beside this one.
        if let Some(stale) = kept.iter().position(|kept| kept.action == *action) {
            kept.remove(stale);
        } else if kept.len() == ANSWERS_PER_CAPABILITY {
            kept.remove(0);
        }
        kept.push(Kept {
            action: action.clone(),
            window,
            decision: decision.clone(),
        });
        decision
    }

    /// The histories of `capability_id`'s chain, nearest first, found through each one's
    /// `parent` alone. A cold check waits on memory, link after link: with every link's
    /// history found before any is read, the reads of their records and scopes do not
    /// wait on one another.
    fn links(
        &self,
        capability_id: CapabilityId,
    ) -> [Option<(CapabilityId, &History)>; MAX_DELEGATION_DEPTH + 1] {
        let mut links = [None; MAX_DELEGATION_DEPTH + 1];
        let mut next = Some(capability_id);
        for link in &mut links {
            let Some((id, history)) = next.and_then(|id| Some((id, self.histories.get(&id)?)))
            else {
                break;
            };
            *link = Some((id, history));
            history.fetch_ahead();
            next = history.parent;
        }
        links
    }

    /// [`Self::check`] worked out from the histories, narrowing `window` to the time
    /// around `at` in which the answer stays the same.
    fn decide(
        &self,
        capability_id: CapabilityId,
        action: &Action,
        at: Timestamp,
        window: &mut Window,
    ) -> Decision {
        let links = self.links(capability_id);
        let mut chain = Vec::with_capacity(MAX_DELEGATION_DEPTH + 1);
        let mut state_ref = String::new();
        let mut next = Some(capability_id);
        let deny = |chain: Vec<CapabilityId>, state_ref: String, reason: String| Decision {
            allowed: false,
            state_ref,
            chain,
            reason: Some(reason),
        };
        while let Some(id) = next {
            if chain.len() > MAX_DELEGATION_DEPTH {
                return deny(
                    chain,
                    state_ref,
                    format!(
                        "capability {capability_id} is delegated deeper than {MAX_DELEGATION_DEPTH}"
                    ),
                );
            }
            chain.push(id);
            // The link found ahead, which is this one: a state's grant is its history's
            // first, whose parent `links` followed.
            let history = match links.get(chain.len() - 1).copied().flatten() {
                Some((linked, history)) if linked == id => Some(history),
                _ => self.histories.get(&id),
            };
            let Some((state, state_text)) =
                history.and_then(|history| history.state_within(at, window))
            else {
                return deny(
                    chain,
                    state_ref,
                    // Not the time of the check: asked again unchanged, a denial reads the
                    // same (the receipt says when it was written).
                    format!("capability {id} was not granted"),
                );
            };
            let nearest = chain.len() == 1;
            if nearest {
                state_ref = state_text.to_owned();
                if state.grant.holder != action.actor {
                    return deny(
                        chain,
                        state_ref,
                        format!(
                            "capability {id} is not held by {}",
                            actor_label(&action.actor)
                        ),
                    );
                }
            }
            // Written only for a denial: an allowed check formats nothing.
            let whose = || {
                if nearest {
                    format!("capability {id}")
                } else {
                    format!("capability {capability_id} is delegated from {id}, which")
                }
            };
            if let Some(reason) = state.revoked {
                return deny(
                    chain,
                    state_ref,
                    format!("{} was revoked: {reason}", whose()),
                );
            }
            window.split_at(at, state.grant.valid_from);
            window.split_at(at, state.grant.valid_until);
            if at < state.grant.valid_from {
                return deny(
                    chain,
                    state_ref,
                    format!("{} is valid from {}", whose(), state.grant.valid_from),
                );
            }
            if state.expired || at >= state.grant.valid_until {
                return deny(
                    chain,
                    state_ref,
                    format!("{} expired at {}", whose(), state.grant.valid_until),
                );
            }
            if let Some(reason) = state.scope.refuses(action) {
                return deny(chain, state_ref, format!("{}: {reason}", whose()));
            }
            next = state.grant.parent;
        }
        Decision {
            allowed: true,
            state_ref,
            chain,
            reason: None,
        }
    }

    /// Why `grant` may not be recorded now (`at`), if it may not: its id is taken, or as
    /// a delegation it is wider than its parent, outlives it, is not asked for by the
    /// parent's holder, or nests too deep.
    pub fn refuses_grant(&self, grant: &CapabilityGranted, at: Timestamp) -> Option<String> {
        if self.histories.contains_key(&grant.capability_id) {
            return Some(format!("capability {} exists already", grant.capability_id));
        }
        if grant.valid_until <= grant.valid_from {
            return Some("its window ends before it starts".to_owned());
        }
        let parent_id = grant.parent?;
        let Some(parent) = self.state_at(parent_id, at) else {
            return Some(format!("its parent {parent_id} was never granted"));
        };
        if parent.grant.holder != grant.issuer {
            return Some(format!(
                "only the holder of {parent_id} may delegate it, not {}",
                actor_label(&grant.issuer)
            ));
        }
        if parent.revoked.is_some() || parent.expired || at >= parent.grant.valid_until {
            return Some(format!("its parent {parent_id} no longer holds"));
        }
        if !grant.scope.within(parent.scope) {
            return Some(format!("its scope is wider than its parent {parent_id}'s"));
        }
        if grant.valid_from < parent.grant.valid_from
            || grant.valid_until > parent.grant.valid_until
        {
            return Some(format!("its window lies outside its parent {parent_id}'s"));
        }
        let mut depth = 1;
        let mut ancestor = parent.grant.parent;
        while let Some(id) = ancestor {
            depth += 1;
            ancestor = self.state_at(id, at).and_then(|state| state.grant.parent);
        }
        (depth >= MAX_DELEGATION_DEPTH)
            .then(|| format!("delegations nest at most {MAX_DELEGATION_DEPTH} deep"))
    }
}

impl Authority for CapabilityBook {
    fn check(&self, capability_id: CapabilityId, action: &Action, at: Timestamp) -> Decision {
        CapabilityBook::check(self, capability_id, action, at)
    }

    fn reveals(&self, capability_id: CapabilityId, type_name: &str, at: Timestamp) -> bool {
        let mut next = Some(capability_id);
        let mut depth = 0;
        while let Some(id) = next {
            depth += 1;
            match self.state_at(id, at) {
                Some(state)
                    if depth <= MAX_DELEGATION_DEPTH + 1
                        && state.scope.sensitive.covers(type_name) =>
                {
                    next = state.grant.parent;
                }
                _ => return false,
            }
        }
        true
    }
}

/// The first byte of an actor's id, for [`History::fetch_ahead`].
fn actor_label_byte(actor: &Actor) -> Option<u8> {
    let (Actor::Human(id) | Actor::Service(id) | Actor::Agent(id)) = actor;
    id.as_str().bytes().next()
}

pub fn actor_label(actor: &Actor) -> String {
    match actor {
        Actor::Human(id) => format!("human `{}`", id.as_str()),
        Actor::Service(id) => format!("service `{}`", id.as_str()),
        Actor::Agent(id) => format!("agent `{}`", id.as_str()),
    }
}
