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
pub trait Contract:
    Serialize
    + DeserializeOwned
    + schemars::JsonSchema
    + Sized
    + 'static
    + crate::__private::ContractSeal
{
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
pub trait Event: Contract + crate::__private::EventSeal {}

#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not declared with `#[command]`",
    note = "declare it with `#[ops_core::command(domain = \"...\", safety = ...)]`"
)]
pub trait Command: Contract + crate::__private::CommandSeal {
    const SAFETY: SafetyClass;
    const DEDUPE: DedupeKind;
}

/// A command with an external side effect names the command that undoes it (A5).
pub trait ExternalEffect: Command + crate::__private::EffectSeal {
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

/// A typed event's name, version and JSON payload: what a handler decides and a connector
/// states. Its fields are private and its one constructor takes the event itself, so no
/// string can name a type a pack could not name in Rust.
#[derive(Clone, Debug, PartialEq)]
pub struct TypedEvent {
    pub(crate) event_type: &'static str,
    pub(crate) version: u32,
    pub(crate) rust: RustType,
    pub(crate) payload: serde_json::Value,
    /// When it took effect, where its producer knows (A1): part of the envelope, not of
    /// the event's id or of the canonical order.
    pub(crate) effective_at: Option<crate::time::Timestamp>,
}

impl TypedEvent {
    pub fn event<E: Event>(event: &E) -> Result<Self, String> {
        Ok(TypedEvent {
            event_type: E::TYPE,
            version: E::VERSION,
            rust: RustType::of::<E>(),
            payload: serde_json::to_value(event).map_err(|e| e.to_string())?,
            effective_at: None,
        })
    }

    /// The same event, taking effect at `at` (or at no stated time).
    pub fn with_effective_at(self, at: Option<crate::time::Timestamp>) -> Self {
        TypedEvent {
            effective_at: at,
            ..self
        }
    }

    pub fn effective_at(&self) -> Option<crate::time::Timestamp> {
        self.effective_at
    }

    pub fn event_type(&self) -> &'static str {
        self.event_type
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The Rust type it was made from, which the runtime checks against the registered type
    /// of that name before it stores the event.
    pub fn rust_type(&self) -> RustType {
        self.rust
    }

    pub fn payload(&self) -> &serde_json::Value {
        &self.payload
    }

    pub fn into_payload(self) -> serde_json::Value {
        self.payload
    }
}

/// An event type as a pack names it: built from the type itself ([`EventType::of`]), never
/// from a string, so a pack can only name types it can name in Rust (its own, and the
/// public ones of crates it depends on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventType {
    name: &'static str,
    version: u32,
    visibility: Visibility,
    rust: RustType,
}

impl EventType {
    pub const fn of<E: Event>() -> Self {
        EventType {
            name: E::TYPE,
            version: E::VERSION,
            visibility: E::VISIBILITY,
            rust: RustType::of::<E>(),
        }
    }

    /// The Rust type it names, which the registry checks against the registered type of
    /// [`EventType::name`]: a constant can claim a name, not a type.
    pub const fn rust_type(&self) -> RustType {
        self.rust
    }

    /// The type as a [`TypeRef`], for identity checks.
    pub const fn type_ref(&self) -> TypeRef {
        TypeRef {
            name: self.name,
            version: self.version,
            rust: self.rust,
        }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }

    pub const fn version(&self) -> u32 {
        self.version
    }

    pub const fn visibility(&self) -> Visibility {
        self.visibility
    }

    /// Whether the pack `pack_id`, whose manifest lists `contracts`, may see this type.
    pub const fn visible_to(&self, pack_id: &str, contracts: &[&str]) -> bool {
        visible_to(pack_id, contracts, self.name, self.visibility)
    }
}

/// A Rust type as rustc compiled it: `core::any::type_name`, taken by ops-core's own generic
/// code, so the path (and its first segment, the crate) is the compiler's, never a constant
/// a pack wrote. Identity checks compare these, not names.
#[derive(Clone, Copy)]
pub struct RustType {
    pub(crate) path: fn() -> &'static str,
}

impl RustType {
    pub const fn of<T: ?Sized>() -> Self {
        RustType {
            path: core::any::type_name::<T>,
        }
    }

    /// The full path: `pack_incidents::board::IncidentBoard`.
    pub fn path(&self) -> &'static str {
        (self.path)()
    }

    /// The crate rustc compiled it in: the path's first segment. A type wrapped in another
    /// (`alloc::boxed::Box<pack_x::Y>`) is the wrapper's crate, so it never passes for `pack_x`.
    pub fn crate_name(&self) -> &'static str {
        crate_of(self.path())
    }
}

/// The crate segment of a Rust path (`pack_incidents::board::X` → `pack_incidents`).
pub(crate) fn crate_of(rust_path: &str) -> &str {
    rust_path.split("::").next().unwrap_or(rust_path)
}

impl PartialEq for RustType {
    fn eq(&self, other: &Self) -> bool {
        self.path() == other.path()
    }
}

impl Eq for RustType {}

impl core::fmt::Debug for RustType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "`{}`", self.path())
    }
}

/// A contract type an installed piece names (reads, handles, proposes): the name and
/// version it claims and the Rust type behind the claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeRef {
    pub name: &'static str,
    pub version: u32,
    pub rust: RustType,
}

impl TypeRef {
    pub const fn of<C: Contract>() -> Self {
        TypeRef {
            name: C::TYPE,
            version: C::VERSION,
            rust: RustType::of::<C>(),
        }
    }
}

/// What a pack may name (Section 1): its own types, private or public; public core types;
/// and the public types of the contract modules its manifest lists (`ops-contract-<id>` for
/// `pack.<id>.*`, `ops-shared-<pkg>` for `shared.<pkg>.*`). `const`, so the install macros
/// refuse an invisible type at compile time; the runtime asks the same of the registry.
pub const fn visible_to(
    pack_id: &str,
    contracts: &[&str],
    name: &str,
    visibility: Visibility,
) -> bool {
    if owned_by(name, pack_id) {
        return true;
    }
    if !matches!(visibility, Visibility::Public) {
        return false;
    }
    if starts_with(name.as_bytes(), b"core.") {
        return true;
    }
    let mut index = 0;
    while index < contracts.len() {
        if is_module_of(contracts[index].as_bytes(), name.as_bytes()) {
            return true;
        }
        index += 1;
    }
    false
}

/// Whether crate `module` (`ops-contract-incidents`) publishes type `name`
/// (`pack.incidents.…`): the owner segment of the name, `_` read as `-`.
const fn is_module_of(module: &[u8], name: &[u8]) -> bool {
    let (module_prefix, name_prefix): (&[u8], &[u8]) = if starts_with(name, b"pack.") {
        (b"ops-contract-", b"pack.")
    } else if starts_with(name, b"shared.") {
        (b"ops-shared-", b"shared.")
    } else {
        return false;
    };
    if !starts_with(module, module_prefix) {
        return false;
    }
    let mut m = module_prefix.len();
    let mut n = name_prefix.len();
    while n < name.len() && name[n] != b'.' {
        if m >= module.len() {
            return false;
        }
        let same = module[m] == name[n] || (module[m] == b'-' && name[n] == b'_');
        if !same {
            return false;
        }
        m += 1;
        n += 1;
    }
    m == module.len() && n < name.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_sees_its_own_types_public_core_types_and_what_its_contracts_publish() {
        let contracts = ["ops-contract-incidents", "ops-shared-people"];
        let sees = |name, visibility| visible_to("notify", &contracts, name, visibility);
        assert!(sees(
            "pack.notify.oncall.OnCallNotified",
            Visibility::Private
        ));
        assert!(sees(
            "pack.incidents.incident.IncidentOpened",
            Visibility::Public
        ));
        assert!(sees("shared.people.PersonRef", Visibility::Public));
        assert!(sees("core.SourceRecordDeleted", Visibility::Public));
        assert!(!sees(
            "pack.incidents.triage.TriageNoteAdded",
            Visibility::Private
        ));
        assert!(!sees("pack.crm.account.AccountOpened", Visibility::Public));
        assert!(!sees("pack.incidentsx.incident.Opened", Visibility::Public));
        assert!(!sees("core.Secret", Visibility::Private));
        assert!(visible_to(
            "filesync",
            &["ops-contract-crm-sync"],
            "pack.crm_sync.account.Opened",
            Visibility::Public
        ));
    }
}

/// What an installed piece (projection, handler, reaction, connector, reconciler) is, as
/// rustc compiled it. Every field but `piece` and `claimed_pack` comes from ops-core's
/// generic code over the piece's Rust type, so the registry can check a claim against the
/// type behind it.
#[derive(Clone, Debug)]
pub struct PieceIdentity {
    /// What it is, for messages: `projection `board``.
    pub piece: String,
    /// The pack it claims through its pack type's `Pack::ID`; `None` for a reconciler,
    /// which belongs to the contract or shared crate that compiles it.
    pub claimed_pack: Option<&'static str>,
    pub rust: RustType,
    /// Its `type Pack`.
    pub pack: Option<RustType>,
    /// Every contract type it names (reads, handles, proposes, compares).
    pub types: Vec<TypeRef>,
}

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
