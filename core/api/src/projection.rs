//! Projections (A6): read models folded from the event log, rebuildable and versioned.
//!
//! A pack writes a [`Projection`]: a pure function from events to [`State`] rows. The runtime
//! feeds it, stores its rows in tables of its pack (`pack_<id>_<name>_v<version>`) together
//! with its checkpoint in one transaction, rebuilds it when its version changes, and reports
//! its freshness. A projection never sees a database handle.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::contract::PieceIdentity;
use crate::contract::{EventType, RustType};
use crate::envelope::EventEnvelope;
use crate::pack::Pack;

/// The order a projection needs its events in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// `(occurred_at, source_ref, source_sequence?, event_id)` across the whole log (A6).
    Canonical,
    /// Each stream in its own order; streams interleave in commit order.
    PerStream,
}

/// What happens to an event that arrives after events that precede it canonically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateEvents {
    /// Rebuild the state by replaying the log in canonical order (the default: the result is
    /// exactly what a replay gives).
    Rebuild,
    /// Apply it as it comes: for projections whose result does not depend on order.
    ApplyInArrivalOrder,
}

/// Whether a projection's work may be split across workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// One worker folds every event (the default): the fold may relate events of different
    /// streams.
    Whole,
    /// Into `partitions` by stream: each stream's events go to one partition (by a hash of
    /// its id) and are folded in the declared order within it, each partition with its own
    /// lease and checkpoint, so several workers fold at once. Each row must come from one
    /// partition's streams: the runtime refuses a row two partitions write. Changing the
    /// number of partitions rebuilds the projection, as a new version does.
    ByStream { partitions: u32 },
}

impl Split {
    /// How many partitions it runs as (1 for `Whole`, never 0).
    pub fn partitions(self) -> u32 {
        match self {
            Split::Whole => 1,
            Split::ByStream { partitions } => partitions.max(1),
        }
    }
}

/// An event as a projection sees it: the stored envelope, with the payload read as the
/// current version of its type.
#[derive(Clone, Debug)]
pub struct ProjectedEvent<'a> {
    pub envelope: &'a EventEnvelope,
    pub stream_id: &'a str,
    pub stream_version: i64,
    /// The payload upcast to `version`, the current version of the type in this build.
    pub payload: &'a Value,
    pub version: u32,
}

impl ProjectedEvent<'_> {
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }

    /// Decodes the payload as `E`; `None` when this event is not an `E`.
    pub fn decode<E: crate::contract::Event>(&self) -> Option<Result<E, serde_json::Error>> {
        (self.envelope.event_type == E::TYPE && self.version == E::VERSION)
            .then(|| serde::Deserialize::deserialize(self.payload))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("projection `{projection}` cannot apply event {event_id}: {reason}")]
pub struct ProjectionError {
    pub projection: String,
    pub event_id: String,
    pub reason: String,
}

/// A read model of one pack. Its `Pack` names the owner, and its rows live in that pack's
/// tables; a pack cannot name another pack's type without depending on it, which
/// deps-check refuses. `apply` is a pure fold, tested with [`crate::testing::fold`]:
///
/// ```
/// use ops_core::connector::SourceRecordDeleted;
/// use ops_core::contract::EventType;
/// use ops_core::pack::Pack;
/// use ops_core::projection::{ProjectedEvent, Projection, State, Table};
/// use ops_core::testing::fold;
///
/// # struct ExamplePack;
/// # impl ops_core::__private::PackSeal for ExamplePack {}
/// # impl Pack for ExamplePack {
/// #     const ID: &'static str = "example";
/// #     const VERSION: &'static str = "0.1.0";
/// #     const CONTRACTS: &'static [&'static str] = &[];
/// # }
/// /// How many records each connector's sources deleted.
/// struct Deletions;
///
/// const BY_CONNECTOR: Table<u64> = Table::new("by_connector");
///
/// impl Projection for Deletions {
///     type Pack = ExamplePack;
///     const NAME: &'static str = "deletions";
///     const VERSION: u32 = 1;
///     const EVENTS: &'static [EventType] = &[EventType::of::<SourceRecordDeleted>()];
///
///     fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
///         if let Some(deleted) = event.decode::<SourceRecordDeleted>() {
///             let deleted = deleted.map_err(|error| error.to_string())?;
///             let seen = BY_CONNECTOR.get(state, &deleted.connector_id)?.unwrap_or(0);
///             BY_CONNECTOR.put(state, &deleted.connector_id, &(seen + 1))?;
///         }
///         Ok(())
///     }
/// }
///
/// let deleted = |id: &str| SourceRecordDeleted {
///     connector_id: "tickets".to_owned(),
///     stream: "tickets".to_owned(),
///     native_id: id.to_owned(),
/// };
/// let folded = fold(&Deletions)
///     .event("connector/tickets", &deleted("T-1"))
///     .event("connector/tickets", &deleted("T-2"));
/// assert_eq!(BY_CONNECTOR.get(folded.state(), "tickets"), Ok(Some(2)));
/// ```
pub trait Projection: Send + Sync + 'static {
    type Pack: Pack;
    /// `[a-z][a-z0-9_]*`, unique within the pack.
    const NAME: &'static str;
    /// Bumping it rebuilds the projection into new tables, then switches over atomically.
    const VERSION: u32;
    const ORDERING: Ordering = Ordering::Canonical;
    const LATE_EVENTS: LateEvents = LateEvents::Rebuild;
    /// The freshness objective: how far behind the log head the state may be.
    const MAX_LAG_MS: u64 = 5_000;
    /// Whether workers may share its work, and how.
    const SPLIT: Split = Split::Whole;

    /// The event types it reads, as types (`EventType::of::<IncidentOpened>()`); others are
    /// never given to it. Each must be visible to its pack: its own, a public core type, or
    /// a public type of a contract module its manifest lists (`install_projection!` checks).
    const EVENTS: &'static [EventType];

    /// Folds one event into the state. Must depend on nothing but the event and the state.
    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String>;
}

/// A projection as the runtime drives it, whatever its type: what [`Projection`] declares,
/// as methods, so the host can run every registered projection without naming a pack.
pub trait DynProjection: Send + Sync {
    fn pack_id(&self) -> &'static str;
    fn name(&self) -> &'static str;
    fn version(&self) -> u32;
    fn ordering(&self) -> Ordering;
    fn late_events(&self) -> LateEvents;
    fn max_lag_ms(&self) -> u64;
    fn split(&self) -> Split;
    fn event_types(&self) -> &'static [EventType];
    /// Whether it reads events of `name`.
    fn reads(&self, name: &str) -> bool {
        self.event_types().iter().any(|t| t.name() == name)
    }
    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String>;
    /// What rustc compiled it as, for the registry's identity check.
    fn identity(&self) -> PieceIdentity;
}

impl<P: Projection> DynProjection for P {
    fn pack_id(&self) -> &'static str {
        P::Pack::ID
    }
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn version(&self) -> u32 {
        P::VERSION
    }
    fn ordering(&self) -> Ordering {
        P::ORDERING
    }
    fn late_events(&self) -> LateEvents {
        P::LATE_EVENTS
    }
    fn max_lag_ms(&self) -> u64 {
        P::MAX_LAG_MS
    }
    fn split(&self) -> Split {
        P::SPLIT
    }
    fn event_types(&self) -> &'static [EventType] {
        P::EVENTS
    }
    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        Projection::apply(self, event, state)
    }
    fn identity(&self) -> PieceIdentity {
        PieceIdentity {
            piece: format!("projection `{}`", P::NAME),
            claimed_pack: Some(P::Pack::ID),
            rust: RustType::of::<P>(),
            pack: Some(RustType::of::<P::Pack>()),
            types: P::EVENTS.iter().map(EventType::type_ref).collect(),
        }
    }
}

/// What [`crate::install_projection!`] submits: the host runs every one of them. Only a
/// [`Projection`] can be registered, so its event types are typed and checked.
pub struct ProjectionRegistration(&'static dyn DynProjection);

impl ProjectionRegistration {
    pub const fn of<P: Projection>(projection: &'static P) -> Self {
        ProjectionRegistration(projection)
    }
}

inventory::collect!(ProjectionRegistration);

/// Whether every type `P` reads is visible to its pack; `const`, for `install_projection!`.
pub const fn reads_only_visible<P: Projection>(_: &P) -> bool {
    let mut index = 0;
    while index < P::EVENTS.len() {
        if !P::EVENTS[index].visible_to(<P::Pack as Pack>::ID, <P::Pack as Pack>::CONTRACTS) {
            return false;
        }
        index += 1;
    }
    true
}

/// Installs a projection with its pack: `ops_core::install_projection!(IncidentBoard);`.
/// It does not compile when the projection reads a type its pack may not see.
#[macro_export]
macro_rules! install_projection {
    ($projection:expr) => {
        const _: () = ::core::assert!(
            $crate::projection::reads_only_visible(&$projection),
            "a projection reads only its own pack's events, public core events and public events of the contract modules its pack lists in `#[pack(contracts = [...])]`; ask the owner to publish the event in its contract crate, and list that crate"
        );
        $crate::__private::inventory::submit! {
            $crate::projection::ProjectionRegistration::of(&$projection)
        }
    };
}

/// Every installed projection of this binary, by pack and name.
pub fn installed(_core: crate::CoreToken) -> Vec<&'static dyn DynProjection> {
    let mut all: Vec<&'static dyn DynProjection> = inventory::iter::<ProjectionRegistration>
        .into_iter()
        .map(|registration| registration.0)
        .collect();
    all.sort_by_key(|p| (p.pack_id(), p.name()));
    all
}

/// A typed handle on one table of a projection's [`State`]: rows of `V` by key, stored as
/// the JSON documents `State` keeps, so a typed projection's rows read and rebuild like any
/// other. Declare one per table as a constant and fold with it:
///
/// ```
/// use ops_core::projection::{State, Table};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Incident { title: String, open: bool }
///
/// const INCIDENTS: Table<Incident> = Table::new("incidents");
///
/// let mut state = State::default();
/// INCIDENTS.put(&mut state, "INC-1", &Incident { title: "Payouts stall".into(), open: true }).unwrap();
/// let mut incident = INCIDENTS.get(&state, "INC-1").unwrap().expect("the row was put");
/// incident.open = false;
/// INCIDENTS.put(&mut state, "INC-1", &incident).unwrap();
/// assert_eq!(INCIDENTS.rows(&state).unwrap(), [("INC-1".to_owned(), incident)]);
/// ```
pub struct Table<V> {
    name: &'static str,
    rows: core::marker::PhantomData<fn() -> V>,
}

impl<V> Table<V> {
    /// `name` is the table's name within the projection (`[a-z][a-z0-9_]*`).
    pub const fn new(name: &'static str) -> Self {
        Table {
            name,
            rows: core::marker::PhantomData,
        }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<V: serde::Serialize + serde::de::DeserializeOwned> Table<V> {
    /// The row at `key`, `None` when there is none; `Err` when the stored document is not a
    /// `V` (the projection's version should have changed with its row type).
    pub fn get(&self, state: &State, key: &str) -> Result<Option<V>, String> {
        state
            .get(self.name, key)
            .map(|document| self.decode(key, document))
            .transpose()
    }

    pub fn put(&self, state: &mut State, key: &str, row: &V) -> Result<(), String> {
        let document = serde_json::to_value(row)
            .map_err(|error| format!("table `{}`, key `{key}`: {error}", self.name))?;
        state.put(self.name, key, document);
        Ok(())
    }

    pub fn delete(&self, state: &mut State, key: &str) {
        state.delete(self.name, key);
    }

    /// Every row, by key in order.
    pub fn rows(&self, state: &State) -> Result<Vec<(String, V)>, String> {
        state
            .table(self.name)
            .map(|(key, document)| Ok((key.to_owned(), self.decode(key, document)?)))
            .collect()
    }

    fn decode(&self, key: &str, document: &Value) -> Result<V, String> {
        <V as serde::Deserialize>::deserialize(document).map_err(|error| {
            format!(
                "table `{}`, key `{key}`: the stored row is not a row of this table: {error}",
                self.name
            )
        })
    }
}

/// The rows of a projection: named tables of JSON documents by key. Whatever lists them
/// ([`State::rows`], [`State::table`], [`State::take_changes`]) lists them sorted, so the
/// same rows always come out in the same order.
#[derive(Clone, Debug, Default)]
pub struct State {
    rows: Tables,
    /// The rows changed since the last [`State::take_changes`], each where its change mark
    /// was first set (a rollback may have cleared one since, and a row may come twice).
    changed: Vec<Key>,
    /// While an event is applied: how to undo what it did, newest last.
    undo: Option<Vec<Undo>>,
    /// Which rows these are: a number no other rows of this process had, taken anew with
    /// every change (see [`State::revision`]).
    revision: u64,
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        // `changed` only says where to look: the marks it points at are in the rows.
        self.rows == other.rows && self.undo == other.undo
    }
}

/// Revisions are unique in the process, so two states with one revision hold one set of rows.
static REVISIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_revision() -> u64 {
    REVISIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

type Key = (String, String);

/// A row, `(table, key)`, as it was before a change: `None` when the state had no entry.
type Undo = (Key, Option<Row>);

/// A row, `(table, key)`, and its document before a change (`None`: it did not exist).
pub type RowBefore = ((String, String), Option<Value>);

/// One row's entry: its document, and what it was as stored when it changed since the last
/// take. An entry with neither is removed, so equal rows compare equal.
#[derive(Clone, Debug, Default, PartialEq)]
struct Row {
    /// `None` once deleted: the entry stays until its deletion is taken.
    document: Option<Value>,
    /// Set at the row's first change since the last take: the document then.
    stored: Option<Option<Value>>,
}

impl Row {
    fn is_empty(&self) -> bool {
        self.document.is_none() && self.stored.is_none()
    }
}

/// Rows by table, then by key. A fold looks rows up by key several times per event and
/// lists them rarely, so each table is hashed (a B-tree of `(table, key)` strings compared
/// both strings dozens of times per lookup, and a lookup by `&str` made two `String`s),
/// one entry holds a row with its change mark (one lookup per change), and listing sorts.
/// The hash is std's, keyed per process: keys come from events, which an outsider may
/// choose.
#[derive(Clone, Debug, Default, PartialEq)]
struct Tables(BTreeMap<String, HashMap<String, Row>>);

impl Tables {
    fn get(&self, table: &str, key: &str) -> Option<&Row> {
        self.0.get(table)?.get(key)
    }

    fn get_mut(&mut self, table: &str, key: &str) -> Option<&mut Row> {
        self.0.get_mut(table)?.get_mut(key)
    }

    /// The entry of `(table, key)`, made empty when there was none. The key is hashed once:
    /// a copy of it is made even when the entry exists, which costs less than hashing it
    /// again (std's map cannot look up by `&str` and insert on a miss in one step).
    fn entry(&mut self, table: &str, key: &str) -> &mut Row {
        if !self.0.contains_key(table) {
            self.0.insert(table.to_owned(), HashMap::new());
        }
        let rows = self.0.get_mut(table).expect("the table was just made");
        rows.entry(key.to_owned()).or_default()
    }

    /// Puts `row` at `(table, key)`; an empty row is no entry.
    fn set(&mut self, table: &str, key: &str, row: Row) {
        *self.entry(table, key) = row;
        self.remove_if_empty(table, key);
    }

    /// Removes the entry of `(table, key)` if it is empty, and its table with its last entry.
    fn remove_if_empty(&mut self, table: &str, key: &str) {
        let Some(rows) = self.0.get_mut(table) else {
            return;
        };
        if rows.get(key).is_some_and(Row::is_empty) {
            rows.remove(key);
        }
        if rows.is_empty() {
            self.0.remove(table);
        }
    }

    /// One table's documents, by key in order.
    fn table<'a>(&'a self, table: &str) -> std::vec::IntoIter<(&'a str, &'a Value)> {
        let mut rows: Vec<(&str, &Value)> = self
            .0
            .get(table)
            .into_iter()
            .flatten()
            .filter_map(|(key, row)| Some((key.as_str(), row.document.as_ref()?)))
            .collect();
        rows.sort_unstable_by_key(|(key, _)| *key);
        rows.into_iter()
    }
}

impl State {
    /// Rows as stored: `(table, key) -> document`.
    pub fn from_rows(rows: impl IntoIterator<Item = ((String, String), Value)>) -> Self {
        let mut tables = Tables::default();
        for ((table, key), document) in rows {
            let row = Row {
                document: Some(document),
                stored: None,
            };
            tables.0.entry(table).or_default().insert(key, row);
        }
        State {
            rows: tables,
            revision: next_revision(),
            ..State::default()
        }
    }

    /// Changes with every change of the rows, and is never the same for other rows (an
    /// empty state that was never changed is 0): the runtime knows by it whether a jailed
    /// runner's copy of the rows is still this state.
    #[doc(hidden)]
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn get(&self, table: &str, key: &str) -> Option<&Value> {
        self.rows.get(table, key)?.document.as_ref()
    }

    pub fn put(&mut self, table: &str, key: &str, document: Value) {
        self.change(table, key, Some(document));
    }

    pub fn delete(&mut self, table: &str, key: &str) {
        if self.get(table, key).is_some() {
            self.change(table, key, None);
        }
    }

    /// Sets the row's document, keeping how to undo it (after a savepoint) and, at its
    /// first change since the last take, what it was as stored.
    fn change(&mut self, table: &str, key: &str, document: Option<Value>) {
        self.revision = next_revision();
        let row = self.rows.entry(table, key);
        if let Some(undo) = &mut self.undo {
            let before = (!row.is_empty()).then(|| row.clone());
            undo.push(((table.to_owned(), key.to_owned()), before));
        }
        let before = std::mem::replace(&mut row.document, document);
        if row.stored.is_none() {
            row.stored = Some(before);
            self.changed.push((table.to_owned(), key.to_owned()));
        }
    }

    /// From here on, changes can be undone by [`State::rollback`]: the runtime applies each
    /// event this way, so a failed event leaves no half of itself behind without copying
    /// the whole state.
    pub fn savepoint(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Keeps the changes since the savepoint.
    pub fn release(&mut self) {
        self.undo = None;
    }

    /// Keeps the changes since the savepoint, and says how to undo them: each changed row's
    /// document before the change, oldest first. The runtime journals this per event, so a
    /// late event rewinds the state to where it belongs instead of replaying the whole log.
    pub fn release_with_undo(&mut self) -> Vec<RowBefore> {
        self.undo
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|(id, before)| (id, before.and_then(|row| row.document)))
            .collect()
    }

    /// Puts rows back as `before` (from [`State::release_with_undo`]) had them, newest
    /// first; each is a change the next [`State::take_changes`] reports.
    pub fn undo(&mut self, before: Vec<RowBefore>) {
        for ((table, key), row) in before.into_iter().rev() {
            match row {
                Some(row) => self.put(&table, &key, row),
                None => self.delete(&table, &key),
            }
        }
    }

    /// Undoes every change since the savepoint.
    pub fn rollback(&mut self) {
        self.revision = next_revision();
        for ((table, key), before) in self.undo.take().unwrap_or_default().into_iter().rev() {
            self.rows.set(&table, &key, before.unwrap_or_default());
        }
    }

    /// The rows of one table, by key in order.
    pub fn table<'a>(&'a self, table: &str) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.rows.table(table)
    }

    /// Removes every row (reported as deleted by the next `take_changes`).
    pub fn clear(&mut self) {
        let ids: Vec<(String, String)> = self
            .rows()
            .map(|((table, key), _)| (table.to_owned(), key.to_owned()))
            .collect();
        for (table, key) in ids {
            self.delete(&table, &key);
        }
    }

    /// Every row, `((table, key), document)`, by table and then key in order.
    pub fn rows(&self) -> impl Iterator<Item = ((&str, &str), &Value)> {
        self.rows.0.keys().flat_map(move |table| {
            self.rows
                .table(table)
                .map(move |(key, document)| ((table.as_str(), key), document))
        })
    }

    /// How many rows there are (counted: for reports, not folds).
    pub fn row_count(&self) -> usize {
        let documents = self.rows.0.values().flat_map(HashMap::values);
        documents.filter(|row| row.document.is_some()).count()
    }

    /// Forgets which rows changed, as [`State::take_changes`] does, without copying them:
    /// when the changes go elsewhere (a jailed runner's copy of the rows, whose host stores
    /// them) or every row is written anyway (a rebuild's switch to its new table).
    pub fn forget_changes(&mut self) {
        for (table, key) in std::mem::take(&mut self.changed) {
            if let Some(row) = self.rows.get_mut(&table, &key) {
                row.stored = None;
            }
            self.rows.remove_if_empty(&table, &key);
        }
    }

    /// Rows written (`Some`) or deleted (`None`) since the last call, by table and then key
    /// in order, for the runtime to store with the checkpoint: only those that differ from
    /// what they were then (a late event's rewind puts most rows back as they were).
    pub fn take_changes(&mut self) -> Vec<((String, String), Option<Value>)> {
        let mut changed = std::mem::take(&mut self.changed);
        changed.sort_unstable();
        changed.dedup();
        let mut changes = Vec::new();
        for (table, key) in changed {
            let Some(row) = self.rows.get_mut(&table, &key) else {
                continue;
            };
            let changed_from_stored = row
                .stored
                .take()
                .is_some_and(|stored| stored != row.document);
            let document = changed_from_stored.then(|| row.document.clone());
            self.rows.remove_if_empty(&table, &key);
            if let Some(document) = document {
                changes.push(((table, key), document));
            }
        }
        changes
    }
}

/// `[a-z][a-z0-9_]*`: projection and table names become parts of SQL identifiers.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 40
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_reported_once_with_their_last_value() {
        let mut state = State::default();
        state.put("open", "a", json!(1));
        state.put("open", "b", json!(2));
        state.put("open", "a", json!(3));
        state.delete("open", "b");
        state.delete("open", "missing");
        // `b` came and went between two takes: nothing of it to store.
        assert_eq!(
            state.take_changes(),
            vec![(("open".into(), "a".into()), Some(json!(3)))]
        );
        assert!(state.take_changes().is_empty());
        assert_eq!(
            state.table("open").collect::<Vec<_>>(),
            vec![("a", &json!(3))]
        );
        assert_eq!(state.table("other").count(), 0);
        state.delete("open", "a");
        assert_eq!(
            state.take_changes(),
            vec![(("open".into(), "a".into()), None)]
        );
    }

    /// A late event's rewind undoes rows and applies events again: rows that end as they
    /// were stored are no change, the others are.
    #[test]
    fn rows_changed_back_to_what_was_stored_are_no_change() {
        let mut state = State::from_rows(BTreeMap::from([
            (("open".into(), "a".into()), json!(1)),
            (("open".into(), "b".into()), json!(2)),
        ]));
        state.savepoint();
        state.put("open", "a", json!(10));
        state.delete("open", "b");
        state.put("open", "c", json!(3));
        let before = state.release_with_undo();
        state.undo(before);
        assert!(state.take_changes().is_empty());
        state.put("open", "a", json!(10));
        state.put("open", "a", json!(1));
        state.put("open", "b", json!(20));
        assert_eq!(
            state.take_changes(),
            vec![(("open".into(), "b".into()), Some(json!(20)))]
        );
    }

    #[test]
    fn a_rollback_undoes_exactly_the_changes_since_the_savepoint() {
        let mut state = State::default();
        state.put("open", "a", json!(1));
        state.put("open", "b", json!(2));
        let before = state.clone();
        state.savepoint();
        state.put("open", "a", json!(3));
        state.put("open", "c", json!(4));
        state.delete("open", "b");
        state.rollback();
        assert_eq!(state, before);
        state.savepoint();
        state.put("open", "c", json!(5));
        state.release();
        assert_eq!(state.get("open", "c"), Some(&json!(5)));
        state.rollback();
        assert_eq!(state.get("open", "c"), Some(&json!(5)));
    }

    /// Rows are hashed by key but listed sorted: against a sorted map kept beside it, the
    /// same puts and deletes (and rolled-back ones between them) list the same rows in the
    /// same order, and report the same changes, whatever order they came in.
    #[test]
    fn rows_list_sorted_whatever_order_they_came_in() {
        use proptest::prelude::*;
        let step = (
            0..3u8,
            "[a-c]{0,2}",
            proptest::option::of(0..4i64),
            any::<bool>(),
        );
        proptest!(|(steps in proptest::collection::vec(step, 0..40))| {
            let mut state = State::default();
            let mut model = BTreeMap::<(String, String), Value>::new();
            let mut stored = model.clone();
            for (n, (table, key, document, rolled_back)) in steps.into_iter().enumerate() {
                let table = ["t", "open", "o"][usize::from(table)];
                let id = (table.to_owned(), key.clone());
                // A change undone by a rollback is no change at all.
                if rolled_back {
                    state.savepoint();
                    state.put(table, &key, json!("undone"));
                    state.delete(table, "c");
                    state.rollback();
                }
                match document {
                    Some(document) => {
                        state.put(table, &key, json!(document));
                        model.insert(id, json!(document));
                    }
                    None => {
                        state.delete(table, &key);
                        model.remove(&id);
                    }
                }
                let listed: Vec<_> = state
                    .rows()
                    .map(|((table, key), row)| ((table.to_owned(), key.to_owned()), row.clone()))
                    .collect();
                prop_assert_eq!(&listed, &model.clone().into_iter().collect::<Vec<_>>());
                let open: Vec<_> = state.table("open").map(|(key, row)| (key.to_owned(), row.clone())).collect();
                let in_model: Vec<_> = model
                    .iter()
                    .filter(|((t, _), _)| t == "open")
                    .map(|((_, key), row)| (key.clone(), row.clone()))
                    .collect();
                prop_assert_eq!(open, in_model);
                prop_assert_eq!(state.row_count(), model.len());
                if n % 5 == 4 {
                    let expected: Vec<_> = stored
                        .keys()
                        .chain(model.keys())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .filter(|id| stored.get(*id) != model.get(*id))
                        .map(|id| (id.clone(), model.get(id).cloned()))
                        .collect();
                    prop_assert_eq!(state.take_changes(), expected);
                    stored = model.clone();
                }
            }
            // Rows put and deleted again leave a state equal to one that never had them.
            let rebuilt = State::from_rows(model);
            state.forget_changes();
            prop_assert_eq!(state.rows, rebuilt.rows);
        });
    }

    #[test]
    fn names_are_sql_safe() {
        assert!(is_valid_name("open_incidents"));
        assert!(!is_valid_name("Open"));
        assert!(!is_valid_name("a;drop"));
        assert!(!is_valid_name(""));
    }
}
