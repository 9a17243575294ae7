//! Command handlers (A2): the one place a pack decides what a command means.
//!
//! A pack implements [`Handler`] for a command it owns and installs it with
//! [`crate::install_handler!`]; the installation does not compile when the command belongs
//! to another owner. The handler decides on a typed state of the target, its
//! [`Aggregate`]: the runtime's command bus folds the target stream's past events (those the
//! pack may see, upcast to their current versions) into it with [`Aggregate::apply`], in
//! stream order, then calls [`Handler::decide`], and records the outcome (the events it
//! decided, or its typed rejection as the reason) in one transaction.
//!
//! ```
//! use ops_core::handler::{Aggregate, PastEvent};
//! use ops_core::capability::{CapabilityGranted, CapabilityRevoked};
//!
//! /// What a handler needs to know of a capability's stream.
//! #[derive(Default)]
//! struct Grant { granted: bool, revoked: bool }
//!
//! impl Aggregate for Grant {
//!     fn apply(&mut self, event: &PastEvent) {
//!         self.granted |= event.is::<CapabilityGranted>();
//!         self.revoked |= event.is::<CapabilityRevoked>();
//!     }
//! }
//! ```
//!
//! [`crate::testing`] decides with a handler on given events, without a database.

use serde_json::Value;

use crate::contract::PieceIdentity;
pub use crate::contract::owned_by;
use crate::contract::{Command, Event, RustType, TypeRef, TypedEvent};
use crate::pack::Pack;

/// An event of the target's stream, as the handler sees it: upcast to the current version.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PastEvent {
    pub event_type: String,
    pub version: u32,
    pub payload: Value,
}

impl PastEvent {
    /// Decodes the payload as `E`; `None` when this event is not an `E`.
    pub fn decode<E: Event>(&self) -> Option<Result<E, serde_json::Error>> {
        self.is::<E>()
            .then(|| serde::Deserialize::deserialize(&self.payload))
    }

    /// Whether this event is an `E` (at the version this build reads).
    pub fn is<E: Event>(&self) -> bool {
        self.event_type == E::TYPE && self.version == E::VERSION
    }
}

/// What a handler knows of its target: a state folded from the target's past events, one
/// at a time, in stream order. `apply` must depend on nothing but the event and the state,
/// like a projection's; an event it does not know it leaves alone. `()` is the state of a
/// handler whose decisions do not depend on the past.
pub trait Aggregate: Default + Send + Sync + 'static {
    fn apply(&mut self, event: &PastEvent);

    /// The state `history` folds into.
    fn fold<'e>(history: impl IntoIterator<Item = &'e PastEvent>) -> Self
    where
        Self: Sized,
    {
        let mut state = Self::default();
        for event in history {
            state.apply(event);
        }
        state
    }
}

impl Aggregate for () {
    fn apply(&mut self, _: &PastEvent) {}
}

/// An event a handler decided on. Built only from a typed event ([`Decided::event`]), so a
/// handler states types it can name; the bus also refuses any that is not its pack's.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    event_type: &'static str,
    /// The event as JSON, or why it could not be written as JSON (the bus then refuses the
    /// command with that reason: a decision is never half-recorded).
    encoded: Result<TypedEvent, String>,
}

impl Decided {
    pub fn event<E: Event>(event: &E) -> Self {
        Decided {
            event_type: E::TYPE,
            encoded: TypedEvent::event(event),
        }
    }

    /// The event took effect at `at` (A1), as the handler knows from the command: kept in
    /// its envelope beside when it was decided, which orders it.
    pub fn effective_at(self, at: crate::time::Timestamp) -> Self {
        Decided {
            encoded: self.encoded.map(|event| event.with_effective_at(Some(at))),
            ..self
        }
    }

    pub fn event_type(&self) -> &'static str {
        self.event_type
    }

    /// The event, or why it could not be encoded.
    pub fn into_event(self) -> Result<TypedEvent, String> {
        let event_type = self.event_type;
        self.encoded.map_err(|error| {
            format!("the decided `{event_type}` cannot be written as JSON: {error}")
        })
    }

    /// The event as JSON, if it could be encoded.
    pub fn encoded(&self) -> Option<&TypedEvent> {
        self.encoded.as_ref().ok()
    }
}

/// What a command means. A pack's handler is tested with [`crate::testing`]: given past
/// events, when a command, then events or a typed rejection. A doctest cannot define a
/// pack's command (its crate is not a pack crate), so the runnable example is on
/// `pack_incidents::OpenIncidentHandler`; in short:
///
/// ```text
/// let decided = given().event(&opened).when(&OpenIncidentHandler, &open);
/// assert_eq!(decided.rejection(), Some(&IncidentRejection::AlreadyOpen("INC-1".into())));
/// ```
pub trait Handler: Send + Sync + 'static {
    type Pack: Pack;
    type Command: Command;
    /// What it knows of the target, folded from the target's past events.
    type State: Aggregate;
    /// Why it refuses a command: a type of the pack's (an enum of its reasons, or a
    /// `String`), whose text is the reason the command's record keeps.
    type Rejection: core::fmt::Display;

    /// The events that `command` causes given the target's `state`, or why it is refused.
    fn decide(
        &self,
        command: &Self::Command,
        state: &Self::State,
    ) -> Result<Vec<Decided>, Self::Rejection>;

    /// What `command` acts on, when its payload says (`incident/<id>`): the bus refuses it
    /// submitted for any other target, so one thing is never decided under two streams.
    /// `None` (the default): the caller's target stands.
    fn target(&self, command: &Self::Command) -> Option<String> {
        let _ = command;
        None
    }
}

/// A handler's state as the bus keeps it between commands, whatever its type.
pub type KeptState = Box<dyn core::any::Any + Send + Sync>;

/// A handler as the bus drives it, whatever its types: its state is made, folded and kept
/// by the bus, a rejection becomes its text.
pub trait DynHandler: Send + Sync {
    fn pack_id(&self) -> &'static str;
    fn command_type(&self) -> &'static str;
    fn command_version(&self) -> u32;
    /// The state of a target with no past.
    fn new_state(&self) -> KeptState;
    /// Folds one past event of the target into a state this handler made.
    fn apply(&self, state: &mut KeptState, event: &PastEvent);
    /// What the command in `payload` acts on, when its payload says (`Handler::target`).
    fn target_of(&self, payload: &Value) -> Result<Option<String>, String>;
    /// Decides on a state this handler made.
    fn decide(
        &self,
        payload: &Value,
        target: &str,
        state: &KeptState,
    ) -> Result<Vec<TypedEvent>, String>;
    /// What rustc compiled it as, for the registry's identity check.
    fn identity(&self) -> PieceIdentity;
}

/// The bus gives a handler only states it made itself.
const OWN_STATE: &str = "a handler is given only states it made";

/// Handler `H`'s command in `payload`, or why the payload is not one.
fn command_of<H: Handler>(payload: &Value) -> Result<H::Command, String> {
    serde_json::from_value(payload.clone()).map_err(|error| {
        format!(
            "the payload is not a `{}`: {error}",
            <H::Command as crate::contract::Contract>::TYPE
        )
    })
}

impl<H: Handler> DynHandler for H {
    fn pack_id(&self) -> &'static str {
        <H::Pack as Pack>::ID
    }
    fn command_type(&self) -> &'static str {
        <H::Command as crate::contract::Contract>::TYPE
    }
    fn command_version(&self) -> u32 {
        <H::Command as crate::contract::Contract>::VERSION
    }
    fn new_state(&self) -> KeptState {
        Box::new(H::State::default())
    }
    fn apply(&self, state: &mut KeptState, event: &PastEvent) {
        state
            .downcast_mut::<H::State>()
            .expect(OWN_STATE)
            .apply(event);
    }
    fn target_of(&self, payload: &Value) -> Result<Option<String>, String> {
        Ok(Handler::target(self, &command_of::<H>(payload)?))
    }
    fn decide(
        &self,
        payload: &Value,
        target: &str,
        state: &KeptState,
    ) -> Result<Vec<TypedEvent>, String> {
        let command = command_of::<H>(payload)?;
        if let Some(expected) = Handler::target(self, &command).filter(|t| t != target) {
            return Err(format!(
                "`{}` acts on `{expected}` (its payload says so), not on `{target}`",
                self.command_type()
            ));
        }
        let state = state.downcast_ref::<H::State>().expect(OWN_STATE);
        Handler::decide(self, &command, state)
            .map_err(|rejection| rejection.to_string())?
            .into_iter()
            .map(Decided::into_event)
            .collect()
    }
    fn identity(&self) -> PieceIdentity {
        PieceIdentity {
            piece: format!("the handler of `{}`", self.command_type()),
            claimed_pack: Some(<H::Pack as Pack>::ID),
            rust: RustType::of::<H>(),
            pack: Some(RustType::of::<H::Pack>()),
            types: vec![TypeRef::of::<H::Command>()],
        }
    }
}

/// What [`crate::install_handler!`] submits; only a [`Handler`] can be registered.
pub struct HandlerRegistration(&'static dyn DynHandler);

impl HandlerRegistration {
    pub const fn of<H: Handler>(handler: &'static H) -> Self {
        HandlerRegistration(handler)
    }
}

inventory::collect!(HandlerRegistration);

/// Installs a pack's handler: `ops_core::install_handler!(AcknowledgeHandler);`. Only the
/// pack that owns the command may handle it.
#[macro_export]
macro_rules! install_handler {
    ($handler:expr) => {
        const _: () = {
            const fn owner_check<H: $crate::handler::Handler>(_: &H) -> bool {
                $crate::handler::owned_by(
                    <H::Command as $crate::contract::Contract>::TYPE,
                    <H::Pack as $crate::pack::Pack>::ID,
                )
            }
            ::core::assert!(
                owner_check(&$handler),
                "a pack can only handle the commands it owns (`pack.<its id>.*`); send the command to its owner instead"
            );
        };
        $crate::__private::inventory::submit! {
            $crate::handler::HandlerRegistration::of(&$handler)
        }
    };
}

/// Every installed handler of this binary.
pub fn installed(_core: crate::CoreToken) -> Vec<&'static dyn DynHandler> {
    inventory::iter::<HandlerRegistration>
        .into_iter()
        .map(|registration| registration.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Decided, owned_by};

    #[test]
    fn ownership_is_the_pack_segment_of_the_name() {
        assert!(owned_by("pack.incidents.incident.Open", "incidents"));
        assert!(!owned_by("pack.incidents.incident.Open", "incident"));
        assert!(!owned_by("pack.incidentsx.incident.Open", "incidents"));
        assert!(!owned_by("shared.people.Person", "people"));
        assert!(!owned_by("pack.incidents", "incidents"));
    }

    /// A handler may say when its event took effect; it travels with the event, and a
    /// connector's fact carries its source's date the same way.
    #[test]
    fn an_effective_time_goes_with_the_decided_event() {
        let expired = crate::capability::CapabilityExpired {
            capability_id: "cap_0000000000000000000000000000000000000000000000000000000000000000"
                .parse()
                .unwrap(),
        };
        let at: crate::time::Timestamp = "2026-11-20T07:30:00Z".parse().unwrap();
        let decided = Decided::event(&expired).effective_at(at);
        assert_eq!(decided.into_event().unwrap().effective_at(), Some(at));
        assert_eq!(
            Decided::event(&expired)
                .into_event()
                .unwrap()
                .effective_at(),
            None
        );
        let fact = crate::connector::Fact::event(&expired, "record-1", at, None)
            .unwrap()
            .effective_at(at);
        let crate::connector::Fact::Event(fact) = fact else {
            panic!("an event fact");
        };
        assert_eq!(fact.event().effective_at(), Some(at));
    }
}
