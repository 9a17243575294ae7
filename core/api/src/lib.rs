//! `ops-core`: everything a pack sees, and nothing that performs I/O.
//!
//! Identity and envelopes:
//! - [`envelope`]: the event and command envelopes of constitution A1/A2, with typed
//!   causation, actors and dedupe scopes.
//! - [`id`] and [`canonical`]: deterministic identity. Ids are content-addressed (blake3 over
//!   RFC 8785 canonical JSON or a length-prefixed field encoding); none is random.
//! - [`time`]: UTC timestamps with one text per instant; no clock (the runtime has it).
//!
//! Contracts and what a pack writes:
//! - [`contract`]: the traits `#[event]` and `#[command]` implement, [`contract::EventType`],
//!   [`contract::TypedEvent`] and what a pack may see ([`contract::visible_to`]).
//! - [`registry`]: every contract type linked into the binary, gathered with `inventory`,
//!   with its identity checked against the crate that compiled it.
//! - [`pack`]: pack manifests with their [`id::ContentId`].
//! - [`projection`], [`handler`], [`connector`], [`reaction`]: the read models, command
//!   decisions, ingress connectors and standing answers a pack installs.
//!
//! Gateways' contracts (the events and checks, no I/O):
//! - [`capability`]: scopes, the capability events and the book that answers checks.
//! - [`egress`]: receipts of external effects and the saga steps.
//! - [`secrets`]: the handles a pack may hold and the custody receipts.
//! - [`operator`]: an operator's action under a key, recorded once (`OperatorActionTaken`).
//! - [`redaction`]: sensitive fields in payloads, and `RedactionApplied`.
//! - [`governance`]: policies, their lifecycle and eval artifacts.
//! - [`supply_chain`]: releases of packs, contract modules and tools.
//! - [`lineage`]: query and derived artifacts and feedback.
//! - [`budget`]: usage, limits and budget receipts.
//! - [`retention`]: the explicit retention policy and its receipt.
//! - [`fault`]: receipts of pack code that faulted in its jailed runner, and resumptions.
//! - [`health`]: a worker's jobs that keep failing, and their recovery.
//!
//! [`prelude`] is what a `#![no_std]` pack imports, and [`testing`] the harness its tests
//! use: a handler's decisions and a projection's rows, pure.

// Lets the macros' `::ops_core::...` paths resolve inside this crate too.
extern crate self as ops_core;

pub mod budget;
pub mod canonical;
pub mod capability;
pub mod connector;
pub mod contract;
pub mod egress;
pub mod envelope;
pub mod fault;
pub mod governance;
pub mod handler;
pub mod health;
pub mod id;
pub mod lineage;
pub mod operator;
pub mod pack;
pub mod projection;
pub mod reaction;
pub mod redaction;
pub mod registry;
pub mod retention;
pub mod secrets;
pub mod supply_chain;
pub mod testing;
pub mod time;

pub use ops_macros::{command, data, event, pack};

/// Proof that the caller is the core (its runtime, a host, a test crate), never pack code. A
/// holder may read every installed piece of every pack (`projection::installed`, …) and
/// build envelopes from type names (`EventEnvelope::from_parts`,
/// `CommandEnvelope::of_descriptor`, `CommandEnvelope::compensation`): the doors where a
/// string would stand for a type. A pack cannot make one, because its constructor is
/// `unsafe` and pack code forbids `unsafe` on rustc's command line (its manifest's
/// `[lints.rust] unsafe_code = "forbid"`, which deps-check requires) and at its root.
#[derive(Clone, Copy, Debug)]
pub struct CoreToken(());

impl CoreToken {
    /// # Safety
    ///
    /// Call it only in the core runtime, a host or a test crate, never in code a pack
    /// supplies: it opens every installed piece and the string-typed envelope constructors.
    pub const unsafe fn new() -> Self {
        CoreToken(())
    }

    /// ops-core's own uses.
    pub(crate) const INTERNAL: CoreToken = CoreToken(());
}

/// The version of the core this binary runs, which promotions pin.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a pack author imports: `use ops_core::prelude::*;`.
pub mod prelude {
    pub use crate::contract::{Command, Contract, Event, EventType, SafetyClass, Upcast};
    pub use crate::envelope::{Actor, Causation, CommandEnvelope, DedupeScope, EventEnvelope};
    pub use crate::id::{CapabilityId, CommandId, CorrelationId, EventId};
    pub use crate::time::Timestamp;
    pub use ops_macros::{command, data, event, pack};

    // Pack, contract and shared crates are `#![no_std]`: what `alloc` would give them, so
    // one import is enough. Maps are ordered ones; a hash map seeded by the OS would make a
    // fold's result depend on the run.
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{Value, json};
    pub use std::borrow::ToOwned;
    pub use std::boxed::Box;
    pub use std::collections::{BTreeMap, BTreeSet};
    pub use std::string::{String, ToString};
    pub use std::vec::Vec;
    pub use std::{format, vec};
}

/// Support for generated code; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use schemars;
    pub use serde;

    use crate::contract::{
        Command, Contract, DedupeKind, Event, ExternalEffect, SafetyClass, Upcast, UpcastError,
    };
    use crate::registry::TypeDescriptor;

    // The seals of the traits only the ops macros write. Each is named only here, under
    // `__private`, which the sandbox refuses in pack source under any spelling, and each
    // trait has its own, so the output of one macro (a `#[data]` or `#[event]` type) unlocks
    // no other trait: a hand-written `impl Pack`, `impl Contract`, `impl Event`,
    // `impl Command` or `impl ExternalEffect` does not compile, whatever alias or macro
    // fragment names the trait. What a build with the sandbox off could still forge, the
    // registry refuses at host start by the Rust type (`Registry::forged_identities`).
    macro_rules! seals {
        ($($seal:ident: $what:literal, $fix:literal;)*) => {$(
            #[diagnostic::on_unimplemented(
                message = $what,
                label = "implemented by hand",
                note = $fix
            )]
            pub trait $seal {}
        )*};
    }
    seals! {
        ContractSeal: "`{Self}` is not a contract type: only `#[event]` and `#[command]` implement `Contract`", "declare it with `#[ops_core::event(...)]` or `#[ops_core::command(...)]`";
        EventSeal: "`{Self}` is not an event: only `#[event]` implements `Event`", "declare it with `#[ops_core::event(domain = \"...\")]`";
        CommandSeal: "`{Self}` is not a command: only `#[command]` implements `Command`", "declare it with `#[ops_core::command(domain = \"...\", safety = ...)]`";
        EffectSeal: "`{Self}` is not an external effect: only `#[command(safety = WRITE_EXTERNAL_SIDE_EFFECT, ...)]` implements `ExternalEffect`", "declare the command with its `compensation` (or `irreversible`)";
        PackSeal: "`{Self}` is not a pack: only `#[pack]` implements `Pack`", "declare the pack with `#[ops_core::pack]` on a unit struct in the pack crate's root";
    }

    /// What `#[event]` and `#[command]` know of a declaration that the type's own impls do
    /// not say. The descriptor is built here, in one generic `const fn` per kind, so each
    /// declared type expands to a call rather than the whole descriptor (compile time: the
    /// expansion passes through `inventory::submit!`, which copies its tokens three times).
    #[derive(Clone, Copy)]
    pub struct Declared {
        rust_type: &'static str,
        crate_name: &'static str,
        crate_version: &'static str,
        file: &'static str,
        line: u32,
        renamed_from: Option<&'static str>,
        upcast_from_previous:
            Option<fn(serde_json::Value) -> Result<serde_json::Value, UpcastError>>,
    }

    impl Declared {
        pub const fn at(
            rust_type: &'static str,
            crate_name: &'static str,
            crate_version: &'static str,
            file: &'static str,
            line: u32,
        ) -> Self {
            Declared {
                rust_type,
                crate_name,
                crate_version,
                file,
                line,
                renamed_from: None,
                upcast_from_previous: None,
            }
        }

        /// Stops the build, saying `message`, unless the type lies in crate `crate_ident`:
        /// checked here, in the descriptor's own evaluation, rather than in a constant of its
        /// own beside it (compile time: one item fewer for every declared type).
        pub const fn compiled_in(self, crate_ident: &str, message: &str) -> Self {
            assert_compiled_in(self.rust_type, crate_ident, message);
            self
        }

        pub const fn renamed_from(mut self, old: &'static str) -> Self {
            self.renamed_from = Some(old);
            self
        }

        pub const fn upcast_from<Old: Contract, New: Contract + Upcast<Old>>(mut self) -> Self {
            self.upcast_from_previous = Some(upcast_json::<Old, New>);
            self
        }
    }

    pub const fn describe_event<T: Event>(declared: Declared) -> TypeDescriptor {
        describe::<T>(declared, None, None, None)
    }

    pub const fn describe_command<T: Command>(declared: Declared) -> TypeDescriptor {
        describe::<T>(declared, Some(T::SAFETY), Some(T::DEDUPE), None)
    }

    pub const fn describe_effect<T: ExternalEffect>(declared: Declared) -> TypeDescriptor {
        let compensation = Some(<T::Compensation as Contract>::TYPE);
        describe::<T>(declared, Some(T::SAFETY), Some(T::DEDUPE), compensation)
    }

    /// The constants read here are the ones the type's own macro wrote beside this call:
    /// `Contract` and `Command` are sealed, so a type has no other impl of them, and the
    /// registry still checks the owner against the crate the type was compiled in
    /// (`Registry::forged_identities`).
    const fn describe<T: Contract>(
        declared: Declared,
        safety: Option<SafetyClass>,
        dedupe: Option<DedupeKind>,
        compensation: Option<&'static str>,
    ) -> TypeDescriptor {
        TypeDescriptor {
            name: T::TYPE,
            version: T::VERSION,
            kind: T::KIND,
            visibility: T::VISIBILITY,
            safety,
            dedupe,
            compensation,
            renamed_from: declared.renamed_from,
            rust_type: declared.rust_type,
            type_path: core::any::type_name::<T>,
            crate_name: declared.crate_name,
            crate_version: declared.crate_version,
            file: declared.file,
            line: declared.line,
            schema: schema_of::<T>,
            check_payload: check_payload::<T>,
            upcast_from_previous: declared.upcast_from_previous,
        }
    }

    /// Stops the build when `module_path` (of `module_path!()`, or a path in it) does not lie
    /// in crate `crate_ident`, saying `message`.
    pub const fn assert_compiled_in(module_path: &str, crate_ident: &str, message: &str) {
        if !compiled_in(module_path, crate_ident) {
            panic!("{}", message);
        }
    }

    pub fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
        schemars::schema_for!(T).to_value()
    }

    pub fn check_payload<T: Contract>(payload: &serde_json::Value) -> Result<(), String> {
        decode_located::<T>(payload)
            .map(drop)
            .map_err(located_message)
    }

    /// Decodes `payload`; on failure, the JSON pointer of the first problem and what it is.
    pub fn decode_located<T: serde::de::DeserializeOwned>(
        payload: &serde_json::Value,
    ) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(payload).map_err(located)
    }

    /// Where a decode failed and why. Not generic, so it is compiled once here rather than
    /// once for every contract type in the crate that declares it.
    fn located(error: serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
        let pointer: String = error
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                serde_path_to_error::Segment::Map { key } => {
                    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
                }
                serde_path_to_error::Segment::Enum { variant } => format!("/{variant}"),
                serde_path_to_error::Segment::Unknown => "/?".to_owned(),
            })
            .collect();
        (pointer, error.into_inner().to_string())
    }

    fn located_message((pointer, reason): (String, String)) -> String {
        format!("at `{pointer}`: {reason}")
    }

    /// Reads a stored payload of `Old`'s version and writes it as `New`'s.
    pub fn upcast_json<Old: Contract, New: Contract + Upcast<Old>>(
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, UpcastError> {
        // Replays upcast every older payload: read it straight, and only a payload that
        // does not decode is read again, tracking where, for the error.
        let old: Old = match <Old as serde::Deserialize>::deserialize(&payload) {
            Ok(old) => old,
            Err(_) => decode_located(&payload).map_err(|located| UpcastError::Decode {
                type_name: Old::TYPE,
                version: Old::VERSION,
                message: located_message(located),
            })?,
        };
        serde_json::to_value(New::upcast(old)).map_err(|source| UpcastError::Encode {
            type_name: New::TYPE,
            version: New::VERSION,
            message: source.to_string(),
        })
    }

    /// Whether `module_path` (of `module_path!()`) lies in crate `crate_ident`.
    pub const fn compiled_in(module_path: &str, crate_ident: &str) -> bool {
        let (path, name) = (module_path.as_bytes(), crate_ident.as_bytes());
        crate::contract::starts_with(path, name)
            && (path.len() == name.len() || path[name.len()] == b':')
    }

    pub const fn same_str(left: &str, right: &str) -> bool {
        left.len() == right.len() && crate::contract::starts_with(left.as_bytes(), right.as_bytes())
    }
}
