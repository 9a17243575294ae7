//! Ingress connectors (A8): read a source, emit events, nothing else.
//!
//! A pack implements [`Connector`]: it names its streams and turns one raw source record
//! into facts. It never holds a reader, a database or a network handle: the runtime reads
//! the source through the reader the host configured, builds the envelopes (ids are derived
//! from the source, so re-reading from the same cursor gives the same events), stores them
//! with the cursor in one transaction, and turns what the connector cannot read into a
//! quarantine entry plus a [`SourceSchemaDrifted`] event.

use serde_json::Value;

use crate::contract::PieceIdentity;
use crate::contract::{Event, EventType, RustType, TypedEvent};
use crate::event;
use crate::pack::Pack;
use crate::time::Timestamp;

/// A fact read from a source record.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    /// A typed event, built by [`Fact::event`] only: a connector states types it can name,
    /// and the runtime refuses any its pack may not see.
    Event(EventFact),
    /// The record was deleted at the source: recorded as [`SourceRecordDeleted`], never
    /// dropped silently.
    Deleted {
        native_id: String,
        occurred_at: Timestamp,
    },
}

impl Fact {
    pub fn event<E: Event>(
        event: &E,
        native_id: impl Into<String>,
        occurred_at: Timestamp,
        source_sequence: Option<u64>,
    ) -> Result<Self, String> {
        Ok(Fact::Event(EventFact {
            event: TypedEvent::event(event)?,
            native_id: native_id.into(),
            occurred_at,
            source_sequence,
        }))
    }

    /// The fact's event took effect at `at`, as its source says (a ticket filed after the
    /// outage began says when it began; A1): kept in its envelope beside `occurred_at`,
    /// which alone orders it. A deletion has no effective time of its own.
    pub fn effective_at(self, at: Timestamp) -> Self {
        match self {
            Fact::Event(fact) => Fact::Event(EventFact {
                event: fact.event.with_effective_at(Some(at)),
                ..fact
            }),
            deleted => deleted,
        }
    }
}

/// The event of a [`Fact::Event`]. `native_id` identifies the record at its source; with the
/// payload and `occurred_at` it derives the event id.
#[derive(Clone, Debug, PartialEq)]
pub struct EventFact {
    event: TypedEvent,
    native_id: String,
    occurred_at: Timestamp,
    source_sequence: Option<u64>,
}

impl EventFact {
    /// A fact a jailed connector stated, rebuilt by the host from what crossed the boundary
    /// (its event through [`TypedEvent::registered`]).
    pub fn from_parts(
        _core: crate::CoreToken,
        event: TypedEvent,
        native_id: String,
        occurred_at: Timestamp,
        source_sequence: Option<u64>,
    ) -> Fact {
        Fact::Event(EventFact {
            event,
            native_id,
            occurred_at,
            source_sequence,
        })
    }

    pub fn event(&self) -> &TypedEvent {
        &self.event
    }

    pub fn native_id(&self) -> &str {
        &self.native_id
    }

    pub fn occurred_at(&self) -> Timestamp {
        self.occurred_at
    }

    pub fn source_sequence(&self) -> Option<u64> {
        self.source_sequence
    }

    /// The event, taken out when the envelope is built.
    pub fn into_event(self) -> TypedEvent {
        self.event
    }
}

/// Why a record could not be read as the connector expects: the source's schema drifted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("at `{pointer}`: {reason}")]
pub struct Drift {
    /// JSON pointer into the raw record.
    pub pointer: String,
    pub reason: String,
}

impl Drift {
    pub fn at(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Drift {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// A source of facts: it reads raw records the host fetches and says what they state,
/// never reaching the source itself. `interpret` is a pure function, so a test calls it:
///
/// ```
/// use ops_core::connector::{Connector, Drift, Fact, decode_record};
/// use ops_core::pack::Pack;
/// use serde_json::{Value, json};
///
/// # struct ExamplePack;
/// # impl ops_core::__private::PackSeal for ExamplePack {}
/// # impl Pack for ExamplePack {
/// #     const ID: &'static str = "example";
/// #     const VERSION: &'static str = "0.1.0";
/// #     const CONTRACTS: &'static [&'static str] = &[];
/// # }
/// /// Deletion notices of a ticket system: `{"id": "T-1", "at": "…"}`.
/// struct Deletions;
///
/// #[derive(serde::Deserialize)]
/// struct Notice { id: String, at: String }
///
/// impl Connector for Deletions {
///     type Pack = ExamplePack;
///     const ID: &'static str = "deletions";
///
///     fn streams(&self) -> Vec<String> {
///         vec!["tickets".to_owned()]
///     }
///
///     fn interpret(&self, _stream: &str, record: &Value) -> Result<Vec<Fact>, Drift> {
///         let notice: Notice = decode_record(record)?;
///         let occurred_at = notice.at.parse().map_err(|_| Drift::at("/at", "not a time"))?;
///         Ok(vec![Fact::Deleted { native_id: notice.id, occurred_at }])
///     }
/// }
///
/// let facts = Deletions.interpret("tickets", &json!({"id": "T-1", "at": "2026-12-01T09:00:00Z"}));
/// assert!(matches!(facts.as_deref(), Ok([Fact::Deleted { native_id, .. }]) if native_id == "T-1"));
/// // A record that no longer has the expected shape is drift, quarantined with its pointer.
/// let drift = Deletions.interpret("tickets", &json!({"id": 7})).unwrap_err();
/// assert_eq!(drift.pointer, "/id");
/// ```
pub trait Connector: Send + Sync + 'static {
    /// The pack the connector belongs to; its events are that pack's or its contracts'.
    type Pack: Pack;
    /// `[a-z][a-z0-9_-]*`: names the connector in cursors and `source_ref`s.
    const ID: &'static str;
    /// A committed sample of its source, for demos and tests (a directory of JSON lines).
    const SAMPLE: Option<&'static str> = None;

    /// The streams it reads, each with its own cursor.
    fn streams(&self) -> Vec<String>;

    /// Turns one raw record of `stream` into facts.
    fn interpret(&self, stream: &str, record: &Value) -> Result<Vec<Fact>, Drift>;
}

/// A record that no longer matched its connector's expectations; the raw record is in the
/// quarantine under the same `location`.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SourceSchemaDrifted {
    connector_id: "tickets".to_owned(),
    stream: "tickets".to_owned(),
    location: "tickets/0002.jsonl:2".to_owned(),
    pointer: "/severity".to_owned(),
    reason: "unknown variant `urgent`".to_owned(),
})]
pub struct SourceSchemaDrifted {
    pub connector_id: String,
    pub stream: String,
    /// Where the record is at the source (e.g. `tickets/0002.jsonl:4`).
    pub location: String,
    pub pointer: String,
    pub reason: String,
}

/// A tombstone: the record was deleted at its source.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SourceRecordDeleted {
    connector_id: "tickets".to_owned(),
    stream: "tickets".to_owned(),
    native_id: "T-104".to_owned(),
})]
pub struct SourceRecordDeleted {
    pub connector_id: String,
    pub stream: String,
    pub native_id: String,
}

/// An operator moved a connector stream's cursor (`ops-host connectors reset`): after the
/// source changed under it, or to read again. The receipt of the move: from where, to where
/// (`None`: the start), by whom and why.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SourceCursorReset {
    connector_id: "tickets".to_owned(),
    stream: "tickets".to_owned(),
    from: Some("0002.jsonl:4".to_owned()),
    to: None,
    reason: "the export was rewritten from scratch".to_owned(),
})]
pub struct SourceCursorReset {
    pub connector_id: String,
    pub stream: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: String,
}

/// Two sources state different facts about the same thing (see `reconcile`).
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SourceFactsConflicted {
    subject: "incident T-100".to_owned(),
    event_ids: vec!["evt_1111111111111111111111111111111111111111111111111111111111111111".to_owned(), "evt_2222222222222222222222222222222222222222222222222222222222222222".to_owned()],
    reason: "`severity` is sev1 in one source and sev2 in the other".to_owned(),
})]
pub struct SourceFactsConflicted {
    /// What both facts are about.
    pub subject: String,
    /// `event_id`s of the conflicting events, sorted.
    pub event_ids: Vec<String>,
    pub reason: String,
}

/// Reconciliation (A8): how to tell that events from different sources are about the
/// same thing, and whether they disagree. It lives with the types it compares (a contract
/// module, shared by the packs whose sources state them) and is installed with
/// [`crate::install_reconciler!`]; the host runs every installed one.
///
/// Its name and event types are constants, so the host reads them without running the
/// crate's code; `subject` and `conflict` run where the crate's code runs (the jail).
pub trait Reconciler: Send + Sync + 'static {
    /// What it is called, in the host's output.
    const NAME: &'static str;

    /// The event types it compares, as types (`EventType::of::<IncidentOpened>()`), never
    /// names: public ones only, since it lives in a contract or shared crate and its
    /// conflicts are public events. The host refuses to start otherwise.
    const EVENTS: &'static [EventType];

    /// What the event is about, when it takes part in reconciliation.
    fn subject(&self, event_type: &str, payload: &Value) -> Option<String>;

    /// Why two facts about the same subject conflict, or `None` when they agree.
    fn conflict(&self, first: &Value, second: &Value) -> Option<String>;
}

/// A reconciler as the runtime drives it, whatever its type: its constants as methods.
pub trait DynReconciler: Send + Sync {
    fn name(&self) -> &'static str;
    fn event_types(&self) -> &'static [EventType];
    fn subject(&self, event_type: &str, payload: &Value) -> Option<String>;
    fn conflict(&self, first: &Value, second: &Value) -> Option<String>;
}

impl<R: Reconciler> DynReconciler for R {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn event_types(&self) -> &'static [EventType] {
        R::EVENTS
    }
    fn subject(&self, event_type: &str, payload: &Value) -> Option<String> {
        Reconciler::subject(self, event_type, payload)
    }
    fn conflict(&self, first: &Value, second: &Value) -> Option<String> {
        Reconciler::conflict(self, first, second)
    }
}

/// What [`crate::install_reconciler!`] submits; only a [`Reconciler`] can be registered, with
/// the Rust type rustc compiled it as.
pub struct ReconcilerRegistration(&'static dyn DynReconciler, RustType);

impl ReconcilerRegistration {
    pub const fn of<R: Reconciler>(reconciler: &'static R) -> Self {
        ReconcilerRegistration(reconciler, RustType::of::<R>())
    }

    /// What rustc compiled it as, for the registry's identity check.
    pub(crate) fn identity(&self) -> PieceIdentity {
        PieceIdentity {
            piece: format!("reconciler `{}`", self.0.name()),
            claimed_pack: None,
            rust: self.1,
            pack: None,
            types: self
                .0
                .event_types()
                .iter()
                .map(EventType::type_ref)
                .collect(),
        }
    }
}

inventory::collect!(ReconcilerRegistration);

/// Every installed reconciler's identity.
pub(crate) fn reconciler_identities() -> Vec<PieceIdentity> {
    inventory::iter::<ReconcilerRegistration>
        .into_iter()
        .map(ReconcilerRegistration::identity)
        .collect()
}

/// Installs a reconciler where its types are declared:
/// `ops_core::install_reconciler!(IncidentOpenings);`.
#[macro_export]
macro_rules! install_reconciler {
    ($reconciler:expr) => {
        $crate::__private::inventory::submit! {
            $crate::connector::ReconcilerRegistration::of(&$reconciler)
        }
    };
}

/// Every installed reconciler of this binary, by name.
pub fn reconcilers(_core: crate::CoreToken) -> Vec<&'static dyn DynReconciler> {
    let mut all: Vec<&'static dyn DynReconciler> = inventory::iter::<ReconcilerRegistration>
        .into_iter()
        .map(|registration| registration.0)
        .collect();
    all.sort_by_key(|reconciler| reconciler.name());
    all
}

/// A connector as the runtime drives it, whatever its type.
pub trait DynConnector: Send + Sync {
    fn pack_id(&self) -> &'static str;
    fn id(&self) -> &'static str;
    fn sample(&self) -> Option<&'static str>;
    fn streams(&self) -> Vec<String>;
    fn interpret(&self, stream: &str, record: &Value) -> Result<Vec<Fact>, Drift>;
    /// What rustc compiled it as, for the registry's identity check.
    fn identity(&self) -> PieceIdentity;
}

impl<C: Connector> DynConnector for C {
    fn pack_id(&self) -> &'static str {
        C::Pack::ID
    }
    fn id(&self) -> &'static str {
        C::ID
    }
    fn sample(&self) -> Option<&'static str> {
        C::SAMPLE
    }
    fn streams(&self) -> Vec<String> {
        Connector::streams(self)
    }
    fn interpret(&self, stream: &str, record: &Value) -> Result<Vec<Fact>, Drift> {
        Connector::interpret(self, stream, record)
    }
    fn identity(&self) -> PieceIdentity {
        PieceIdentity {
            piece: format!("connector `{}`", C::ID),
            claimed_pack: Some(C::Pack::ID),
            rust: RustType::of::<C>(),
            pack: Some(RustType::of::<C::Pack>()),
            types: Vec::new(),
        }
    }
}

/// The absolute path of a file or folder committed in the calling pack crate, for a
/// connector's `SAMPLE`: `ops_core::pack_path!("sample")`. The host reads it; the pack only
/// names it, since a pack reads no files and its source may not say `env!`.
#[macro_export]
macro_rules! pack_path {
    ($relative:literal) => {{
        const _: () = ::core::assert!(
            $crate::connector::is_inside_path($relative),
            "`pack_path!` names a file or folder of the pack crate: a relative path with no `..`, e.g. `pack_path!(\"sample\")`"
        );
        ::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", $relative)
    }};
}

/// Whether `path` stays inside the folder it is joined to: not empty, relative, and no
/// `..` segment (nor a `\\` that another platform would read as a separator). `const`, for
/// `pack_path!`.
pub const fn is_inside_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.is_empty() || bytes[0] == b'/' {
        return false;
    }
    let mut index = 0;
    let mut segment_start = 0;
    while index <= bytes.len() {
        if index == bytes.len() || bytes[index] == b'/' {
            let length = index - segment_start;
            if length == 2 && bytes[segment_start] == b'.' && bytes[segment_start + 1] == b'.' {
                return false;
            }
            segment_start = index + 1;
        } else if bytes[index] == b'\\' || bytes[index] == b':' {
            return false;
        }
        index += 1;
    }
    true
}

/// What [`crate::install_connector!`] submits; only a [`Connector`] can be registered.
pub struct ConnectorRegistration(&'static dyn DynConnector);

impl ConnectorRegistration {
    pub const fn of<C: Connector>(connector: &'static C) -> Self {
        ConnectorRegistration(connector)
    }
}

inventory::collect!(ConnectorRegistration);

/// Installs a connector with its pack: `ops_core::install_connector!(TicketExport);`.
#[macro_export]
macro_rules! install_connector {
    ($connector:expr) => {
        $crate::__private::inventory::submit! {
            $crate::connector::ConnectorRegistration::of(&$connector)
        }
    };
}

/// Every installed connector of this binary, by pack and id.
pub fn installed(_core: crate::CoreToken) -> Vec<&'static dyn DynConnector> {
    let mut all: Vec<&'static dyn DynConnector> = inventory::iter::<ConnectorRegistration>
        .into_iter()
        .map(|registration| registration.0)
        .collect();
    all.sort_by_key(|c| (c.pack_id(), c.id()));
    all
}

/// Decodes a raw record as `T`; a mismatch is a [`Drift`] at the JSON pointer of the
/// first problem.
pub fn decode_record<T: serde::de::DeserializeOwned>(record: &Value) -> Result<T, Drift> {
    crate::__private::decode_located(record).map_err(|(pointer, reason)| Drift { pointer, reason })
}
