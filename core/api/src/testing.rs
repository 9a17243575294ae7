//! A test harness for pack authors: a pack's decisions, folds and reactions, tested as the
//! pure functions they are, with no database, no runtime and no async.
//!
//! - A handler: given past events of the target, when a command, then the events it
//!   decides or why it refuses ([`given`] … [`Given::when`]).
//! - A projection: given events, the rows it folds them into ([`fold`]).
//!
//! A reaction needs no harness: `Reaction::react` is already a pure function of one event.
//!
//! ```text
//! let decided = given()
//!     .event(&IncidentOpened { incident_id: "INC-1".into(), … })
//!     .when(&AcknowledgeIncidentHandler, &AcknowledgeIncident { … });
//! assert_eq!(decided.then::<IncidentAcknowledged>().len(), 1);
//! ```
//!
//! `packs/incidents/tests/decisions.rs` runs this for real, on the example pack's types.

use serde_json::Value;

use crate::contract::Event;
use crate::envelope::{Actor, ActorId, Causation, EventEnvelope, EventOrigin};
use crate::handler::{Aggregate, Decided, Handler, PastEvent};
use crate::id::{CapabilityId, CorrelationId, UserActionId};
use crate::projection::{ProjectedEvent, Projection, State};
use crate::time::Timestamp;

/// The target's history so far, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Given {
    history: Vec<PastEvent>,
}

/// An empty history.
pub fn given() -> Given {
    Given::default()
}

impl Given {
    /// `event` happened next, as the handler would see it (at its current version).
    pub fn event<E: Event>(mut self, event: &E) -> Self {
        self.history.push(PastEvent {
            event_type: E::TYPE.to_owned(),
            version: E::VERSION,
            payload: serde_json::to_value(event).expect("an event is plain JSON"),
        });
        self
    }

    /// What `handler` decides on `command` given this history.
    pub fn when<H: Handler>(&self, handler: &H, command: &H::Command) -> Outcome<H> {
        Outcome(handler.decide(command, &self.state::<H::State>()))
    }

    /// The state this history folds into: what a handler with that state decides on.
    pub fn state<S: Aggregate>(&self) -> S {
        S::fold(&self.history)
    }
}

/// A handler's decision: the events it decided, or why it refused.
pub struct Outcome<H: Handler>(Result<Vec<Decided>, H::Rejection>);

impl<H: Handler> Outcome<H> {
    /// The decided events of type `E`, decoded; panics, naming the reason, when the
    /// command was refused.
    pub fn then<E: Event>(&self) -> Vec<E> {
        self.decided()
            .iter()
            .filter_map(Decided::encoded)
            .filter(|decided| decided.event_type() == E::TYPE && decided.version() == E::VERSION)
            .map(|decided| {
                serde_json::from_value(decided.payload().clone())
                    .expect("a decided event decodes as its type")
            })
            .collect()
    }

    /// Every decided event's type, in order; panics when the command was refused.
    pub fn types(&self) -> Vec<&'static str> {
        self.decided().iter().map(Decided::event_type).collect()
    }

    /// Why the command was refused, as the handler said it; `None` when it was accepted.
    pub fn rejection(&self) -> Option<&H::Rejection> {
        self.0.as_ref().err()
    }

    /// The reason the command's record would keep; `None` when it was accepted.
    pub fn rejected(&self) -> Option<String> {
        self.rejection().map(ToString::to_string)
    }

    fn decided(&self) -> &[Decided] {
        match &self.0 {
            Ok(decided) => decided,
            Err(reason) => panic!("the command was refused: {reason}"),
        }
    }
}

/// A projection's rows after folding events, in the order given.
pub struct Fold<'p, P: Projection> {
    projection: &'p P,
    state: State,
    folded: u64,
}

/// An empty state of `projection`.
pub fn fold<P: Projection>(projection: &P) -> Fold<'_, P> {
    Fold {
        projection,
        state: State::default(),
        folded: 0,
    }
}

impl<P: Projection> Fold<'_, P> {
    /// Folds `event` next, on stream `stream`; panics, naming the reason, when the
    /// projection refuses it (the runtime would quarantine it).
    pub fn event<E: Event>(mut self, stream: &str, event: &E) -> Self {
        self.folded += 1;
        let envelope =
            EventEnvelope::new(event, origin(self.folded)).expect("an event makes an envelope");
        let projected = ProjectedEvent {
            envelope: &envelope,
            stream_id: stream,
            stream_version: self.folded as i64,
            payload: &envelope.payload,
            version: E::VERSION,
        };
        if let Err(reason) = self.projection.apply(&projected, &mut self.state) {
            panic!("`{}` refused {}: {reason}", P::NAME, E::TYPE);
        }
        self
    }

    /// The row `key` of `table`, if there is one.
    pub fn row(&self, table: &str, key: &str) -> Option<&Value> {
        self.state.get(table, key)
    }

    /// The state, every table.
    pub fn state(&self) -> &State {
        &self.state
    }
}

/// The origin of the `n`th folded event: from a test source, one second apart, so the
/// order given is the order folded.
fn origin(n: u64) -> EventOrigin {
    let canonical = "plain strings have a canonical form";
    let at = Timestamp::from_unix_micros(1_800_000_000_000_000 + n as i64 * 1_000_000)
        .expect("a time in range");
    EventOrigin {
        source_ref: "ops_core::testing".to_owned(),
        source_native_id: n.to_string(),
        source_sequence: Some(n),
        occurred_at: at,
        ingested_at: at,
        effective_at: None,
        correlation_id: CorrelationId::of("ops_core::testing").expect(canonical),
        causation: Causation::UserAction(UserActionId::of(&n).expect(canonical)),
        actor: Actor::Service(ActorId::new("testing").expect("a valid actor id")),
        capability_id: CapabilityId::of("ops_core::testing").expect(canonical),
    }
}
