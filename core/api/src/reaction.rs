//! Reactions: a pack's standing answer to an event ("page the on-call when a SEV1 incident
//! opens"). A reaction reads an event it may see (a public event of any owner, or a private
//! one of its own pack) and proposes commands of its own pack; the runtime follows the log
//! and submits them through the command bus, so they are decided, recorded and, when they
//! reach outside, fenced by the egress gateway like any other command.
//!
//! A proposed command happens when its event did, is caused by it and shares its
//! correlation; its id derives from its content, so following the log again proposes the
//! same commands and the bus replays their outcomes instead of deciding twice.

use crate::contract::PieceIdentity;
use crate::contract::{Command, Contract, Event, RustType, TypeRef};
use crate::envelope::{
    Actor, ActorId, Causation, CommandEnvelope, CommandRequest, DedupeScope, EnvelopeError,
    EventEnvelope,
};
use crate::pack::Pack;

/// A command a reaction asks for, with its target and scope.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal<C> {
    pub command: C,
    pub target_ref: String,
    pub dedupe_scope: DedupeScope,
}

pub trait Reaction: Send + Sync + 'static {
    type Pack: Pack;
    type Event: Event;
    type Command: Command;

    /// The commands `event` calls for; none when it calls for nothing.
    fn react(&self, event: &Self::Event) -> Vec<Proposal<Self::Command>>;
}

/// A reaction as the runtime drives it, whatever its types.
pub trait DynReaction: Send + Sync {
    fn pack_id(&self) -> &'static str;
    fn event_type(&self) -> &'static str;
    fn event_version(&self) -> u32;
    fn command_type(&self) -> &'static str;
    /// The command envelopes `event` calls for. `payload` is the event's payload at
    /// [`DynReaction::event_version`], upcast by the caller when it was stored older.
    fn react(
        &self,
        event: &EventEnvelope,
        payload: &serde_json::Value,
    ) -> Result<Vec<CommandEnvelope>, EnvelopeError>;
    /// What rustc compiled it as, for the registry's identity check.
    fn identity(&self) -> PieceIdentity;
}

impl<R: Reaction> DynReaction for R {
    fn pack_id(&self) -> &'static str {
        <R::Pack as Pack>::ID
    }
    fn event_type(&self) -> &'static str {
        <R::Event as Contract>::TYPE
    }
    fn event_version(&self) -> u32 {
        <R::Event as Contract>::VERSION
    }
    fn command_type(&self) -> &'static str {
        <R::Command as Contract>::TYPE
    }
    fn react(
        &self,
        event: &EventEnvelope,
        payload: &serde_json::Value,
    ) -> Result<Vec<CommandEnvelope>, EnvelopeError> {
        let decoded: R::Event =
            serde_json::from_value(payload.clone()).map_err(|error| EnvelopeError::Encode {
                type_name: self.event_type().to_owned(),
                message: error.to_string(),
            })?;
        Reaction::react(self, &decoded)
            .into_iter()
            .map(|proposal| {
                CommandEnvelope::new(
                    &proposal.command,
                    CommandRequest {
                        target_ref: proposal.target_ref,
                        dedupe_scope: proposal.dedupe_scope,
                        correlation_id: event.correlation_id,
                        causation: Causation::Event(event.event_id),
                        actor: reactor(self.pack_id()),
                        requested_at: event.occurred_at,
                    },
                )
            })
            .collect()
    }
    fn identity(&self) -> PieceIdentity {
        PieceIdentity {
            piece: format!(
                "the reaction to `{}` proposing `{}`",
                self.event_type(),
                self.command_type()
            ),
            claimed_pack: Some(<R::Pack as Pack>::ID),
            rust: RustType::of::<R>(),
            pack: Some(RustType::of::<R::Pack>()),
            types: vec![TypeRef::of::<R::Event>(), TypeRef::of::<R::Command>()],
        }
    }
}

/// The service actor a pack's reactions act as: `pack.<id>`.
pub fn reactor(pack_id: &str) -> Actor {
    Actor::Service(ActorId::new(format!("pack.{pack_id}")).expect("pack ids are valid actor ids"))
}

/// What [`crate::install_reaction!`] submits; only a [`Reaction`] can be registered.
pub struct ReactionRegistration(&'static dyn DynReaction);

impl ReactionRegistration {
    pub const fn of<R: Reaction>(reaction: &'static R) -> Self {
        ReactionRegistration(reaction)
    }
}

inventory::collect!(ReactionRegistration);

/// Installs a pack's reaction: `ops_core::install_reaction!(PageOnSev1);`. A reaction may
/// only propose its own pack's commands, and only react to events it may see: its own
/// pack's, public core events, and public events of the contract modules its pack lists.
#[macro_export]
macro_rules! install_reaction {
    ($reaction:expr) => {
        const _: () = {
            const fn proposes_own<R: $crate::reaction::Reaction>(_: &R) -> bool {
                $crate::handler::owned_by(
                    <R::Command as $crate::contract::Contract>::TYPE,
                    <R::Pack as $crate::pack::Pack>::ID,
                )
            }
            const fn sees<R: $crate::reaction::Reaction>(_: &R) -> bool {
                $crate::contract::EventType::of::<R::Event>().visible_to(
                    <R::Pack as $crate::pack::Pack>::ID,
                    <R::Pack as $crate::pack::Pack>::CONTRACTS,
                )
            }
            ::core::assert!(
                proposes_own(&$reaction),
                "a reaction can only propose its own pack's commands (`pack.<its id>.*`); another pack's commands are sent by that pack or by a person"
            );
            ::core::assert!(
                sees(&$reaction),
                "a reaction can only react to its own pack's events, public core events and public events of the contract modules its pack lists in `#[pack(contracts = [...])]`; ask the owner to publish the event in its contract crate, and list that crate"
            );
        };
        $crate::__private::inventory::submit! {
            $crate::reaction::ReactionRegistration::of(&$reaction)
        }
    };
}

/// Every installed reaction of this binary.
pub fn installed(_core: crate::CoreToken) -> Vec<&'static dyn DynReaction> {
    inventory::iter::<ReactionRegistration>
        .into_iter()
        .map(|registration| registration.0)
        .collect()
}
