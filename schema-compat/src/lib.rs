//! `schema-compat`: whether every instance of one JSON Schema is an instance of another,
//! decided on a normal form, with a concrete instance as the witness of every "no".
//!
//! # Semantics
//!
//! - **Typed producers.** Data produced under a schema contains only the properties the
//!   schema declares (in `properties` or matched by `patternProperties`), plus whatever an
//!   explicit `additionalProperties` or `unevaluatedProperties` allows (map-like objects).
//!   Readers validate as written. `backward` (old → new): every value old producers write
//!   is valid under NEW, so new code reads old events. `forward`: every value new producers
//!   write is valid under OLD, so old code reads new events.
//! - **Known formats assert their value sets**, because a Rust reader parses them:
//!   `date-time`, `date`, `time`, `duration`, `uuid`, `email`, `uri`, `ipv4`, `ipv6`,
//!   `hostname`, and the numeric formats schemars writes (`int8`…`int128`,
//!   `uint8`…`uint128`, `int`, `uint`, `float`, `double`) with their ranges. So
//!   `String` → `DateTime<Utc>` breaks old events and `i32` → `i64` breaks old readers.
//!   An unknown format cannot be decided: an answer that depends on it is "undecidable"
//!   and says which format. `contentEncoding`/`contentMediaType` are annotations.
//! - **`oneOf` means exactly one**, as every validator reads it: a value matching two
//!   branches is invalid.
//! - Annotations never matter; `$ref`s resolve within the document (JSON pointers, `$id`
//!   bases, `$anchor`s, bundled resources, recursion included); draft 4–2019-09 spellings
//!   (`items` arrays, `additionalItems`, `dependencies`, boolean `exclusiveMinimum`, `$ref`
//!   replacing its siblings before 2019-09) read as their 2020-12 equivalents.
//!
//! # How it decides
//!
//! A ⊆ B exactly when A ∩ ¬B is empty ([`engine`]): both are brought to a union of
//! conjunctions per JSON type ([`normal`]) with `not` pushed down, `allOf` intersected,
//! `oneOf` expanded to "this branch and none it overlaps", integer bounds discretised and
//! `const`/`enum` folded in; each conjunction is searched for a value, recursively for items
//! and property values. Strings are decided with automata ([`pattern`]): lengths, patterns
//! and negated patterns together, so pattern inclusion is exact within a size bound. Every
//! value found is validated by the evaluator ([`eval`]) before it is reported, and an answer
//! is "undecidable" only where a rule could neither find a value nor prove there is none.
//!
//! [`compare`] adds the explanation ([`explain`]): each change with its [`Rule`] (`rule`),
//! the JSON pointer in OLD and NEW, the directions it breaks and a witness.
//!
//! The modules: `schema` reads a document into typed keyword nodes with references
//! resolved; `format` holds the value sets of known formats; `normal` is the normal form;
//! `engine` searches it for values, and `objects` does so for objects by classes of
//! property names; `pattern` decides strings with automata; `eval` validates a value
//! exactly; `explain` names the changes; [`instances`] makes sample payloads of a schema
//! (examples, then minimal and full instances per union branch) for upcaster checks.

mod engine;
mod eval;
mod explain;
mod format;
pub mod instances;
mod normal;
mod objects;
mod pattern;
mod rule;
mod schema;

use serde::Serialize;
use serde_json::Value;

pub use pattern::Patterns;
pub use rule::Rule;

use engine::{Engine, Found};
use schema::{Arena, Side};

/// One direction's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Compatible,
    /// `witness` is valid under the producing schema and invalid under the reading one.
    Incompatible {
        witness: Value,
    },
    Undecidable {
        reason: String,
    },
}

impl Verdict {
    pub fn is_compatible(&self) -> bool {
        matches!(self, Verdict::Compatible)
    }

    pub fn witness(&self) -> Option<&Value> {
        match self {
            Verdict::Incompatible { witness } => Some(witness),
            _ => None,
        }
    }

    fn of(found: Found) -> Verdict {
        match found {
            Found::Empty => Verdict::Compatible,
            Found::Witness(witness) => Verdict::Incompatible { witness },
            Found::Unknown(reason) => Verdict::Undecidable { reason },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub rule: Rule,
    pub old_pointer: Option<String>,
    pub new_pointer: Option<String>,
    /// This change breaks backward compatibility (old data no longer valid).
    pub backward: bool,
    /// This change breaks forward compatibility (new data not valid for old readers).
    pub forward: bool,
    pub message: String,
    /// A value of the subschema that shows the break, where the change breaks something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub backward_compatible: bool,
    pub forward_compatible: bool,
    pub backward: Verdict,
    pub forward: Verdict,
    pub changes: Vec<Change>,
}

/// A schema that cannot be read, with the JSON pointer of the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{which} schema, at `{pointer}`: {message}")]
pub struct SchemaError {
    pub which: &'static str,
    pub pointer: String,
    pub message: String,
}

/// Compares two schemas under typed-producer semantics; each is a whole document.
pub fn compare(old: &Value, new: &Value) -> Result<Report, SchemaError> {
    let mut arena = Arena::new();
    let old_root = arena.read(Side::Old, old)?;
    let new_root = arena.read(Side::New, new)?;
    // The same document is the same schema, whatever the engine could decide about it.
    if old == new {
        return Ok(Report {
            backward_compatible: true,
            forward_compatible: true,
            backward: Verdict::Compatible,
            forward: Verdict::Compatible,
            changes: Vec::new(),
        });
    }
    let mut engine = Engine::new(arena);
    let backward = Verdict::of(engine.difference(old_root, new_root, Some(Side::Old)));
    let forward = Verdict::of(engine.difference(new_root, old_root, Some(Side::New)));
    let changes = explain::changes(&mut engine, (old_root, old), (new_root, new));
    Ok(Report {
        backward_compatible: backward.is_compatible(),
        forward_compatible: forward.is_compatible(),
        backward,
        forward,
        changes,
    })
}

/// Whether every instance of `sub` is valid under `sup`, as plain validation reads them (no
/// typed-producer closing).
pub fn includes(sup: &Value, sub: &Value) -> Result<Verdict, SchemaError> {
    let mut arena = Arena::new();
    let sub_root = arena.read(Side::Old, sub)?;
    let sup_root = arena.read(Side::New, sup)?;
    let mut engine = Engine::new(arena);
    Ok(Verdict::of(engine.difference(sub_root, sup_root, None)))
}

/// Whether `value` is valid under `schema` with this crate's format semantics; `None` when
/// that depends on something undecidable (an unknown format, a non-regular pattern).
pub fn is_valid(schema: &Value, value: &Value) -> Result<Option<bool>, SchemaError> {
    let mut arena = Arena::new();
    let root = arena.read(Side::Old, schema)?;
    Ok(eval::Evaluator::new(&arena).check(value, root).ok())
}
