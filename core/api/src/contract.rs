//! The traits that `#[event]` and `#[command]` implement. Write the attributes, not these
//! impls: the macros derive the name from the owning crate and register the type.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Event,
    Command,
}

/// Events are private to their pack unless published through its contract crate.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Private,
    Public,
}

/// Action safety classes (A5), ordered from least to most dangerous.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SafetyClass {
    Read,
    WriteInternal,
    WriteExternalSideEffect,
}

/// Which [`crate::envelope::DedupeScope`] variant a command deduplicates by.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DedupeKind {
    Connector,
    Egress,
    Command,
}

#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a contract type",
    label = "not declared with `#[event]` or `#[command]`",
    note = "declare it with `#[ops_core::event(...)]` or `#[ops_core::command(...)]`"
)]
pub trait Contract: Serialize + DeserializeOwned + schemars::JsonSchema + Sized + 'static {
    /// The namespaced type name: `pack.<id>.<domain>.<Name>`, `shared.<pkg>.<Name>` or `core.<Name>`.
    const TYPE: &'static str;
    /// `payload_schema_version`.
    const VERSION: u32;
    const KIND: Kind;
    const VISIBILITY: Visibility;
}

#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not declared with `#[event]`",
    note = "declare it with `#[ops_core::event(domain = \"...\")]`"
)]
pub trait Event: Contract {}

#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not declared with `#[command]`",
    note = "declare it with `#[ops_core::command(domain = \"...\", safety = ...)]`"
)]
pub trait Command: Contract {
    const SAFETY: SafetyClass;
    const DEDUPE: DedupeKind;
}

/// A command with an external side effect names the command that undoes it (A5).
pub trait ExternalEffect: Command {
    type Compensation: Command;
}

/// How version N+1 of a payload reads version N. Stored payloads are read through the
/// whole chain, v1 → v2 → ... → current.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from `{Old}`",
    label = "`upcast_from` names `{Old}`, but there is no upcaster from it",
    note = "add `impl ops_core::contract::Upcast<{Old}> for {Self} {{ fn upcast(old: {Old}) -> Self {{ ... }} }}`"
)]
pub trait Upcast<Old>: Sized {
    fn upcast(old: Old) -> Self;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("stored payload is not a valid `{type_name}` version {version}: {message}")]
    Decode {
        type_name: &'static str,
        version: u32,
        message: String,
    },
    #[error("cannot encode `{type_name}` version {version}: {message}")]
    Encode {
        type_name: &'static str,
        version: u32,
        message: String,
    },
    #[error("`{type_name}` has no version {version} in this build")]
    UnknownVersion { type_name: String, version: u32 },
    #[error("`{type_name}` is not a registered type in this build")]
    UnknownType { type_name: String },
}
