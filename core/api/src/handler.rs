//! Command handlers (A2): the one place a pack decides what a command means.
//!
//! A pack implements [`Handler`] for a command it owns and installs it with
//! [`crate::install_handler!`]; the installation does not compile when the command belongs
//! to another owner. The runtime's command bus routes each command to its one handler,
//! gives it the target's history, and records the outcome with the events it decided, in
//! one transaction.

use serde_json::Value;

use crate::contract::{Command, Event, TypedEvent};
use crate::pack::Pack;

/// An event of the target's stream, as the handler sees it: upcast to the current version.
#[derive(Clone, Debug, PartialEq)]
pub struct PastEvent {
    pub event_type: String,
    pub version: u32,
    pub payload: Value,
}

impl PastEvent {
    /// Decodes the payload as `E`; `None` when this event is not an `E`.
    pub fn decode<E: Event>(&self) -> Option<Result<E, serde_json::Error>> {
        (self.event_type == E::TYPE && self.version == E::VERSION)
            .then(|| serde_json::from_value(self.payload.clone()))
    }
}

/// Whether an `E` is in `history`: the usual first question of a handler.
pub fn happened<E: Event>(history: &[PastEvent]) -> bool {
    history.iter().any(|event| event.decode::<E>().is_some())
}

/// An event a handler decided on. Built only from a typed event ([`TypedEvent::event`]),
/// so a handler states types it can name; the bus also refuses any that is not its pack's.
pub type Decided = TypedEvent;

pub trait Handler: Send + Sync + 'static {
    type Pack: Pack;
    type Command: Command;

    /// The events that `command` causes given the target's `history`, or why it is refused.
    fn decide(
        &self,
        command: &Self::Command,
        history: &[PastEvent],
    ) -> Result<Vec<Decided>, String>;
}

/// A handler as the bus drives it, whatever its types.
pub trait DynHandler: Send + Sync {
    fn pack_id(&self) -> &'static str;
    fn command_type(&self) -> &'static str;
    fn command_version(&self) -> u32;
    fn decide(&self, payload: &Value, history: &[PastEvent]) -> Result<Vec<Decided>, String>;
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
    fn decide(&self, payload: &Value, history: &[PastEvent]) -> Result<Vec<Decided>, String> {
        let command: H::Command = serde_json::from_value(payload.clone())
            .map_err(|error| format!("the payload is not a `{}`: {error}", self.command_type()))?;
        Handler::decide(self, &command, history)
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

/// Whether `type_name` belongs to pack `pack_id` (`pack.<id>.…`); `const` so installing a
/// handler for another owner's command fails to compile.
pub const fn owned_by(type_name: &str, pack_id: &str) -> bool {
    let (name, id) = (type_name.as_bytes(), pack_id.as_bytes());
    let prefix = b"pack.";
    if name.len() <= prefix.len() + id.len() + 1 || !starts_with(name, prefix) {
        return false;
    }
    let (_, rest) = name.split_at(prefix.len());
    starts_with(rest, id) && rest[id.len()] == b'.'
}

/// Whether `text` begins with `prefix`, byte by byte; `const`, for the install checks.
pub(crate) const fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    if text.len() < prefix.len() {
        return false;
    }
    let mut index = 0;
    while index < prefix.len() {
        if text[index] != prefix[index] {
            return false;
        }
        index += 1;
    }
    true
}

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
pub fn installed() -> Vec<&'static dyn DynHandler> {
    inventory::iter::<HandlerRegistration>
        .into_iter()
        .map(|registration| registration.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::owned_by;

    #[test]
    fn ownership_is_the_pack_segment_of_the_name() {
        assert!(owned_by("pack.incidents.incident.Open", "incidents"));
        assert!(!owned_by("pack.incidents.incident.Open", "incident"));
        assert!(!owned_by("pack.incidentsx.incident.Open", "incidents"));
        assert!(!owned_by("shared.people.Person", "people"));
        assert!(!owned_by("pack.incidents", "incidents"));
    }
}
