//! JSON Schema compatibility, under *typed producers* semantics.
//!
//! - Data produced under a schema contains only the properties that schema declares, plus
//!   whatever an `additionalProperties` **schema** allows (map-like objects).
//! - `backward` (old → new): every valid instance of OLD is valid under NEW; new code reads
//!   old events.
//! - `forward` (old → new): every valid instance of NEW is valid under OLD; old code reads
//!   new events.
//! - Annotations (`title`, `description`, `examples`, `default`, `$comment`, `deprecated`)
//!   never matter. `$defs` names are not identity: `$ref` is resolved (recursive schemas
//!   included, by assuming a pair of locations compatible while it is being compared).
//!   `{"type": ["string", "null"]}` and `anyOf`/`oneOf` with `{"type": "null"}` are the same.
//! - `oneOf` is read as `anyOf` (a union); union branches are paired by kind and content
//!   (object branches by their constant tag property, as schemars writes tagged enums), not
//!   by position.
//! - What cannot be decided exactly (two different `pattern`s or `format`s, `allOf` of
//!   several schemas that differ, `not`) is answered conservatively: incompatible, and the
//!   change's message says so.
//!
//! Each [`Change`] has a stable rule id, the JSON pointer in OLD and in NEW, and whether it
//! breaks backward and/or forward compatibility.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub rule: &'static str,
    pub old_pointer: Option<String>,
    pub new_pointer: Option<String>,
    /// This change breaks backward compatibility (old data no longer valid).
    pub backward: bool,
    /// This change breaks forward compatibility (new data not valid for old readers).
    pub forward: bool,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub backward_compatible: bool,
    pub forward_compatible: bool,
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

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "$comment",
    "deprecated",
    "$schema",
    "$id",
    "readOnly",
    "writeOnly",
];

/// Compares two schemas; each is a whole document (its `$ref`s resolve inside it).
pub fn compare(old: &Value, new: &Value) -> Result<Report, SchemaError> {
    let old_doc = Doc {
        root: old,
        which: "old",
    };
    let new_doc = Doc {
        root: new,
        which: "new",
    };
    old_doc.validate("", old)?;
    new_doc.validate("", new)?;
    let mut cx = Cx {
        old: old_doc,
        new: new_doc,
        changes: Vec::new(),
        in_progress: BTreeSet::new(),
    };
    cx.schemas(Loc::root(old), Loc::root(new), Mask::BOTH)?;
    let changes = cx.changes;
    Ok(Report {
        backward_compatible: !changes.iter().any(|c| c.backward),
        forward_compatible: !changes.iter().any(|c| c.forward),
        changes,
    })
}

#[derive(Clone, Copy)]
struct Doc<'a> {
    root: &'a Value,
    which: &'static str,
}

/// A schema node and where it is.
#[derive(Clone)]
struct Loc<'a> {
    node: &'a Value,
    pointer: String,
}

impl<'a> Loc<'a> {
    fn root(node: &'a Value) -> Self {
        Loc {
            node,
            pointer: String::new(),
        }
    }

    fn child(&self, key: &str) -> Option<Loc<'a>> {
        self.node.get(key).map(|node| Loc {
            node,
            pointer: format!("{}/{}", self.pointer, escape(key)),
        })
    }

    fn child_index(&self, key: &str, index: usize) -> Option<Loc<'a>> {
        self.node.get(key)?.get(index).map(|node| Loc {
            node,
            pointer: format!("{}/{}/{index}", self.pointer, escape(key)),
        })
    }

    fn display(&self) -> String {
        if self.pointer.is_empty() {
            "/".to_owned()
        } else {
            self.pointer.clone()
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Which directions a comparison may report; a sub-comparison made for one direction only
/// (e.g. an added property against the old `additionalProperties`) clears the other.
#[derive(Clone, Copy)]
struct Mask {
    backward: bool,
    forward: bool,
}

impl Mask {
    const BOTH: Mask = Mask {
        backward: true,
        forward: true,
    };
    const BACKWARD: Mask = Mask {
        backward: true,
        forward: false,
    };
    const FORWARD: Mask = Mask {
        backward: false,
        forward: true,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Null,
        Kind::Boolean,
        Kind::Integer,
        Kind::Number,
        Kind::String,
        Kind::Array,
        Kind::Object,
    ];

    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "null" => Kind::Null,
            "boolean" => Kind::Boolean,
            "integer" => Kind::Integer,
            "number" => Kind::Number,
            "string" => Kind::String,
            "array" => Kind::Array,
            "object" => Kind::Object,
            _ => return None,
        })
    }

    fn of_value(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Boolean,
            Value::Number(n)
                if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) =>
            {
                Kind::Integer
            }
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

/// One branch of a union, of one kind. `values` is set when the branch is an enumeration.
#[derive(Clone)]
struct Branch<'a> {
    kind: Kind,
    loc: Loc<'a>,
    values: Option<Vec<Value>>,
}

impl<'a> Doc<'a> {
    /// Input checks, so comparison never meets a malformed schema.
    fn validate(&self, pointer: &str, node: &Value) -> Result<(), SchemaError> {
        let fail = |at: String, message: String| SchemaError {
            which: self.which,
            pointer: at,
            message,
        };
        match node {
            Value::Bool(_) => return Ok(()),
            Value::Object(_) => {}
            _ => {
                return Err(fail(
                    pointer.to_owned(),
                    "a schema is an object or a boolean".into(),
                ));
            }
        }
        if let Some(reference) = node.get("$ref") {
            let text = reference
                .as_str()
                .ok_or_else(|| fail(format!("{pointer}/$ref"), "`$ref` must be a string".into()))?;
            self.lookup(text).ok_or_else(|| {
                fail(
                    format!("{pointer}/$ref"),
                    format!("`{text}` does not resolve inside this document"),
                )
            })?;
        }
        if let Some(types) = node.get("type") {
            let names: Vec<&Value> = match types {
                Value::Array(list) => list.iter().collect(),
                single => vec![single],
            };
            for name in names {
                if name.as_str().and_then(Kind::parse).is_none() {
                    return Err(fail(
                        format!("{pointer}/type"),
                        format!("{name} is not a JSON Schema type"),
                    ));
                }
            }
        }
        // Maps of named subschemas and lists of subschemas, each checked by the same rule.
        let containers = [
            ("properties", "an object"),
            ("$defs", "an object"),
            ("definitions", "an object"),
            ("patternProperties", "an object"),
            ("anyOf", "an array"),
            ("oneOf", "an array"),
            ("allOf", "an array"),
            ("prefixItems", "an array"),
        ];
        for (key, shape) in containers {
            let Some(container) = node.get(key) else {
                continue;
            };
            let children: Vec<(String, &Value)> = match container {
                Value::Object(map) if shape == "an object" => map
                    .iter()
                    .map(|(name, child)| (escape(name), child))
                    .collect(),
                Value::Array(list) if shape == "an array" => list
                    .iter()
                    .enumerate()
                    .map(|(index, child)| (index.to_string(), child))
                    .collect(),
                _ => {
                    return Err(fail(
                        format!("{pointer}/{key}"),
                        format!("`{key}` must be {shape}"),
                    ));
                }
            };
            for (segment, child) in children {
                self.validate(&format!("{pointer}/{key}/{segment}"), child)?;
            }
        }
        for key in ["items", "additionalProperties", "not", "contains"] {
            if let Some(child) = node.get(key) {
                self.validate(&format!("{pointer}/{key}"), child)?;
            }
        }
        if let Some(required) = node.get("required")
            && !required
                .as_array()
                .is_some_and(|list| list.iter().all(Value::is_string))
        {
            return Err(fail(
                format!("{pointer}/required"),
                "`required` must be an array of strings".into(),
            ));
        }
        for key in [
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
        ] {
            if let Some(value) = node.get(key)
                && !value.is_number()
            {
                return Err(fail(
                    format!("{pointer}/{key}"),
                    format!("`{key}` must be a number"),
                ));
            }
        }
        Ok(())
    }

    fn lookup(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        let pointer = percent_decode(pointer);
        self.root.pointer(&pointer)
    }

    /// Follows `$ref`s (and single-schema `allOf` wrappers) to the node that has the content.
    fn resolve(&self, mut loc: Loc<'a>) -> Loc<'a> {
        for _ in 0..64 {
            if let Some(reference) = loc.node.get("$ref").and_then(Value::as_str)
                && let Some(target) = self.lookup(reference)
            {
                loc = Loc {
                    node: target,
                    pointer: percent_decode(reference.trim_start_matches('#')),
                };
                continue;
            }
            if let Some([single]) = loc
                .node
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                && only_annotations_besides(loc.node, &["allOf", "$defs", "definitions"])
            {
                loc = Loc {
                    node: single,
                    pointer: format!("{}/allOf/0", loc.pointer),
                };
                continue;
            }
            break;
        }
        loc
    }

    /// The union branches of a schema, one kind each.
    fn branches(&self, loc: Loc<'a>) -> Vec<Branch<'a>> {
        self.union_branches(loc, &mut Vec::new())
    }

    /// `unions` holds the unions being flattened: a union that reaches itself through
    /// `$ref` adds nothing it does not already have (X = X | Y is Y).
    fn union_branches(&self, loc: Loc<'a>, unions: &mut Vec<String>) -> Vec<Branch<'a>> {
        let loc = self.resolve(loc);
        let node = loc.node;
        if node == &Value::Bool(false) {
            return Vec::new();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = node.get(key).and_then(Value::as_array) {
                if unions.contains(&loc.pointer) {
                    return Vec::new();
                }
                unions.push(loc.pointer.clone());
                let branches = (0..list.len())
                    .filter_map(|index| loc.child_index(key, index))
                    .flat_map(|child| self.union_branches(child, unions))
                    .collect();
                unions.pop();
                return branches;
            }
        }
        let values: Option<Vec<Value>> = node
            .get("const")
            .map(|value| vec![value.clone()])
            .or_else(|| node.get("enum").and_then(Value::as_array).cloned());
        let declared: Option<Vec<Kind>> = node.get("type").map(|types| match types {
            Value::Array(list) => list
                .iter()
                .filter_map(|t| t.as_str().and_then(Kind::parse))
                .collect(),
            single => single.as_str().and_then(Kind::parse).into_iter().collect(),
        });
        let kinds: Vec<Kind> = match (&declared, &values) {
            (Some(kinds), _) => kinds.clone(),
            (None, Some(values)) => {
                let kinds: BTreeSet<Kind> = values.iter().map(Kind::of_value).collect();
                kinds.into_iter().collect()
            }
            (None, None) => Kind::ALL.to_vec(),
        };
        kinds
            .into_iter()
            .map(|kind| Branch {
                kind,
                loc: loc.clone(),
                values: values.as_ref().map(|values| {
                    values
                        .iter()
                        .filter(|v| value_has_kind(v, kind))
                        .cloned()
                        .collect()
                }),
            })
            .collect()
    }
}

fn value_has_kind(value: &Value, kind: Kind) -> bool {
    let own = Kind::of_value(value);
    own == kind || (own == Kind::Integer && kind == Kind::Number)
}

fn only_annotations_besides(node: &Value, allowed: &[&str]) -> bool {
    node.as_object().is_some_and(|map| {
        map.keys()
            .all(|k| allowed.contains(&k.as_str()) || ANNOTATIONS.contains(&k.as_str()))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(byte) = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether two schemas are the same once annotations are ignored. Walks both in step and
/// allocates nothing. Annotations are skipped only where a schema keyword can stand, so a
/// property *named* `title` still counts; data keywords (`enum`, `const`, `required`, bounds)
/// compare literally.
fn same_schema(old: &Value, new: &Value) -> bool {
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return old == new;
    };
    let keywords = |map: &'_ Map<String, Value>| {
        map.iter()
            .filter(|(key, _)| !ANNOTATIONS.contains(&key.as_str()))
            .count()
    };
    keywords(old) == keywords(new)
        && old
            .iter()
            .filter(|(key, _)| !ANNOTATIONS.contains(&key.as_str()))
            .all(|(key, value)| {
                new.get(key)
                    .is_some_and(|other| same_keyword(key, value, other))
            })
}

fn same_keyword(key: &str, old: &Value, new: &Value) -> bool {
    match (key, old, new) {
        (
            "properties" | "$defs" | "definitions" | "patternProperties" | "dependentSchemas",
            Value::Object(old),
            Value::Object(new),
        ) => {
            old.len() == new.len()
                && old.iter().all(|(name, schema)| {
                    new.get(name)
                        .is_some_and(|other| same_schema(schema, other))
                })
        }
        ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(old), Value::Array(new)) => {
            old.len() == new.len() && old.iter().zip(new).all(|(a, b)| same_schema(a, b))
        }
        (
            "items" | "additionalProperties" | "not" | "contains" | "if" | "then" | "else",
            old,
            new,
        ) => same_schema(old, new),
        (_, old, new) => old == new,
    }
}

/// A numeric keyword whose change narrows or widens what is valid.
struct Bound {
    key: &'static str,
    /// Rule id when the new value admits less.
    stricter: &'static str,
    /// Rule id when the new value admits more.
    looser: &'static str,
    /// `minimum` is stricter when larger, `maximum` when smaller.
    larger_is_stricter: bool,
}

const NUMBER_BOUNDS: &[Bound] = &[
    Bound {
        key: "minimum",
        stricter: "minimum-raised",
        looser: "minimum-lowered",
        larger_is_stricter: true,
    },
    Bound {
        key: "exclusiveMinimum",
        stricter: "minimum-raised",
        looser: "minimum-lowered",
        larger_is_stricter: true,
    },
    Bound {
        key: "maximum",
        stricter: "maximum-lowered",
        looser: "maximum-raised",
        larger_is_stricter: false,
    },
    Bound {
        key: "exclusiveMaximum",
        stricter: "maximum-lowered",
        looser: "maximum-raised",
        larger_is_stricter: false,
    },
];

const STRING_BOUNDS: &[Bound] = &[
    Bound {
        key: "minLength",
        stricter: "min-length-raised",
        looser: "min-length-lowered",
        larger_is_stricter: true,
    },
    Bound {
        key: "maxLength",
        stricter: "max-length-lowered",
        looser: "max-length-raised",
        larger_is_stricter: false,
    },
];

const ARRAY_BOUNDS: &[Bound] = &[
    Bound {
        key: "minItems",
        stricter: "min-items-raised",
        looser: "min-items-lowered",
        larger_is_stricter: true,
    },
    Bound {
        key: "maxItems",
        stricter: "max-items-lowered",
        looser: "max-items-raised",
        larger_is_stricter: false,
    },
];

struct Cx<'a> {
    old: Doc<'a>,
    new: Doc<'a>,
    changes: Vec<Change>,
    /// Pairs of schema nodes being compared, assumed compatible meanwhile (recursion).
    in_progress: BTreeSet<(usize, usize)>,
}

impl<'a> Cx<'a> {
    fn report(
        &mut self,
        rule: &'static str,
        old: Option<&Loc>,
        new: Option<&Loc>,
        breaks: Mask,
        mask: Mask,
        message: String,
    ) {
        let change = Change {
            rule,
            old_pointer: old.map(Loc::display),
            new_pointer: new.map(Loc::display),
            backward: breaks.backward && mask.backward,
            forward: breaks.forward && mask.forward,
            message,
        };
        if !self.changes.contains(&change) {
            self.changes.push(change);
        }
    }

    fn schemas(&mut self, old: Loc<'a>, new: Loc<'a>, mask: Mask) -> Result<(), SchemaError> {
        let (old, new) = (self.old.resolve(old), self.new.resolve(new));
        // Keyed by node identity, not pointer: a synthesised "anything" for absent `items`
        // gets a longer pointer at every level, but it is the same schema.
        let key = (
            std::ptr::from_ref(old.node) as usize,
            std::ptr::from_ref(new.node) as usize,
        );
        if !self.in_progress.insert(key) {
            return Ok(());
        }
        let result = self.schemas_resolved(old, new, mask);
        self.in_progress.remove(&key);
        result
    }

    fn schemas_resolved(
        &mut self,
        old: Loc<'a>,
        new: Loc<'a>,
        mask: Mask,
    ) -> Result<(), SchemaError> {
        // Identical text is only the same schema when no `$ref` can point elsewhere, or
        // when it sits at the same place of identical documents.
        if same_schema(old.node, new.node)
            && (!has_ref(old.node)
                || (old.pointer == new.pointer && self.old.root == self.new.root))
        {
            return Ok(());
        }
        for (loc, side) in [(&old, "old"), (&new, "new")] {
            let undecidable = [
                "not",
                "if",
                "patternProperties",
                "dependentSchemas",
                "contains",
            ]
            .into_iter()
            .find(|key| loc.node.get(*key).is_some())
            .map(str::to_owned)
            .or_else(|| {
                (loc.node
                    .get("allOf")
                    .and_then(Value::as_array)
                    .is_some_and(|l| l.len() > 1))
                .then(|| "allOf".to_owned())
            });
            if let Some(keyword) = undecidable {
                self.report(
                    "undecidable-change",
                    Some(&old),
                    Some(&new),
                    Mask::BOTH,
                    mask,
                    format!("the {side} schema uses `{keyword}` and the two differ; this cannot be decided exactly, so it is treated as incompatible"),
                );
                return Ok(());
            }
        }
        let old_branches = merge_enums(self.old.branches(old.clone()));
        let new_branches = merge_enums(self.new.branches(new.clone()));
        let mut new_used = vec![false; new_branches.len()];
        for old_branch in &old_branches {
            let partner = pick_partner(old_branch, &new_branches, &new_used);
            match partner {
                Some(index) => {
                    new_used[index] = true;
                    self.branch_pair(old_branch, &new_branches[index], mask)?;
                }
                None => {
                    let (rule, what) = unmatched_branch(old_branch.kind, Side::Old);
                    self.report(
                        rule,
                        Some(&old_branch.loc),
                        Some(&new),
                        Mask::BACKWARD,
                        mask,
                        what,
                    );
                }
            }
        }
        for (_, new_branch) in new_branches
            .iter()
            .enumerate()
            .filter(|(i, _)| !new_used[*i])
        {
            let (rule, what) = unmatched_branch(new_branch.kind, Side::New);
            self.report(
                rule,
                Some(&old),
                Some(&new_branch.loc),
                Mask::FORWARD,
                mask,
                what,
            );
        }
        Ok(())
    }

    fn branch_pair(
        &mut self,
        old: &Branch<'a>,
        new: &Branch<'a>,
        mask: Mask,
    ) -> Result<(), SchemaError> {
        match (old.kind, new.kind) {
            (Kind::Integer, Kind::Number) => self.report(
                "type-widened",
                Some(&old.loc),
                Some(&new.loc),
                Mask::FORWARD,
                mask,
                "integer became number: new data may have fractions".into(),
            ),
            (Kind::Number, Kind::Integer) => self.report(
                "type-narrowed",
                Some(&old.loc),
                Some(&new.loc),
                Mask::BACKWARD,
                mask,
                "number became integer: old data may have fractions".into(),
            ),
            _ => {}
        }
        self.enums(old, new, mask);
        match new.kind {
            Kind::Integer | Kind::Number => self.numbers(&old.loc, &new.loc, mask),
            Kind::String => self.strings(&old.loc, &new.loc, mask),
            Kind::Array => self.arrays(&old.loc, &new.loc, mask)?,
            Kind::Object => self.objects(&old.loc, &new.loc, mask)?,
            Kind::Null | Kind::Boolean => {}
        }
        Ok(())
    }

    fn enums(&mut self, old: &Branch<'a>, new: &Branch<'a>, mask: Mask) {
        match (&old.values, &new.values) {
            (None, None) => {}
            (None, Some(_)) => self.report(
                "enum-added",
                Some(&old.loc),
                Some(&new.loc),
                Mask::BACKWARD,
                mask,
                "values are now restricted to an enumeration".into(),
            ),
            (Some(_), None) => self.report(
                "enum-removed",
                Some(&old.loc),
                Some(&new.loc),
                Mask::FORWARD,
                mask,
                "values are no longer restricted to an enumeration".into(),
            ),
            (Some(old_values), Some(new_values)) => {
                let directions = [
                    (
                        old_values,
                        new_values,
                        "enum-value-removed",
                        Mask::BACKWARD,
                        "no longer",
                    ),
                    (
                        new_values,
                        old_values,
                        "enum-value-added",
                        Mask::FORWARD,
                        "now",
                    ),
                ];
                for (from, to, rule, breaks, when) in directions {
                    for value in from.iter().filter(|v| !to.contains(v)) {
                        let message = format!("value {value} is {when} allowed");
                        self.report(rule, Some(&old.loc), Some(&new.loc), breaks, mask, message);
                    }
                }
            }
        }
    }

    fn bound(&mut self, old: &Loc<'a>, new: &Loc<'a>, bound: &Bound, mask: Mask) {
        let key = bound.key;
        let (old_value, new_value) = (
            old.node.get(key).and_then(Value::as_f64),
            new.node.get(key).and_then(Value::as_f64),
        );
        let stricter = match (old_value, new_value) {
            (None, None) => return,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) if a == b => return,
            (Some(a), Some(b)) => (b > a) == bound.larger_is_stricter,
        };
        let describe = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        let message = format!(
            "`{key}` changed from {} to {}",
            describe(old_value),
            describe(new_value)
        );
        if stricter {
            self.report(
                bound.stricter,
                Some(old),
                Some(new),
                Mask::BACKWARD,
                mask,
                message,
            );
        } else {
            self.report(
                bound.looser,
                Some(old),
                Some(new),
                Mask::FORWARD,
                mask,
                message,
            );
        }
    }

    fn numbers(&mut self, old: &Loc<'a>, new: &Loc<'a>, mask: Mask) {
        for bound in NUMBER_BOUNDS {
            self.bound(old, new, bound, mask);
        }
        let (a, b) = (
            old.node.get("multipleOf").and_then(Value::as_f64),
            new.node.get("multipleOf").and_then(Value::as_f64),
        );
        let divides = |of: f64, by: f64| (of / by - (of / by).round()).abs() < 1e-9;
        let (backward_ok, forward_ok) = match (a, b) {
            (None, None) => (true, true),
            (None, Some(_)) => (false, true),
            (Some(_), None) => (true, false),
            (Some(a), Some(b)) => (divides(a, b), divides(b, a)),
        };
        if !(backward_ok && forward_ok) {
            self.report(
                "multiple-of-changed",
                Some(old),
                Some(new),
                Mask {
                    backward: !backward_ok,
                    forward: !forward_ok,
                },
                mask,
                format!("`multipleOf` changed from {a:?} to {b:?}"),
            );
        }
    }

    fn strings(&mut self, old: &Loc<'a>, new: &Loc<'a>, mask: Mask) {
        for bound in STRING_BOUNDS {
            self.bound(old, new, bound, mask);
        }
        for (key, rule) in [("pattern", "pattern-changed"), ("format", "format-changed")] {
            let (a, b) = (old.node.get(key), new.node.get(key));
            let breaks = match (a, b) {
                (a, b) if a == b => continue,
                (None, Some(_)) => Mask::BACKWARD,
                (Some(_), None) => Mask::FORWARD,
                _ => Mask::BOTH,
            };
            let message = if breaks.backward && breaks.forward {
                format!(
                    "`{key}` changed from {} to {}; two different {key}s cannot be compared exactly, so this is treated as incompatible",
                    a.unwrap_or(&Value::Null),
                    b.unwrap_or(&Value::Null)
                )
            } else {
                format!(
                    "`{key}` changed from {} to {}",
                    a.unwrap_or(&Value::Null),
                    b.unwrap_or(&Value::Null)
                )
            };
            self.report(rule, Some(old), Some(new), breaks, mask, message);
        }
    }

    fn arrays(&mut self, old: &Loc<'a>, new: &Loc<'a>, mask: Mask) -> Result<(), SchemaError> {
        for bound in ARRAY_BOUNDS {
            self.bound(old, new, bound, mask);
        }
        let unique = |loc: &Loc| loc.node.get("uniqueItems") == Some(&Value::Bool(true));
        match (unique(old), unique(new)) {
            (false, true) => self.report(
                "unique-items-added",
                Some(old),
                Some(new),
                Mask::BACKWARD,
                mask,
                "items must now be unique".into(),
            ),
            (true, false) => self.report(
                "unique-items-removed",
                Some(old),
                Some(new),
                Mask::FORWARD,
                mask,
                "items no longer need to be unique".into(),
            ),
            _ => {}
        }
        let prefix_len = |loc: &Loc| {
            loc.node
                .get("prefixItems")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        };
        let rest = |loc: &Loc<'a>| {
            loc.child("items").unwrap_or(Loc {
                node: &ANY,
                pointer: format!("{}/items", loc.pointer),
            })
        };
        for index in 0..prefix_len(old).max(prefix_len(new)) {
            let old_item = old
                .child_index("prefixItems", index)
                .unwrap_or_else(|| rest(old));
            let new_item = new
                .child_index("prefixItems", index)
                .unwrap_or_else(|| rest(new));
            self.schemas(old_item, new_item, mask)?;
        }
        self.schemas(rest(old), rest(new), mask)
    }

    fn objects(&mut self, old: &Loc<'a>, new: &Loc<'a>, mask: Mask) -> Result<(), SchemaError> {
        let properties = |loc: &Loc<'a>| -> BTreeMap<String, Loc<'a>> {
            loc.node
                .get("properties")
                .and_then(Value::as_object)
                .map(|map| {
                    map.keys()
                        .filter_map(|k| {
                            loc.child("properties")
                                .and_then(|p| p.child(k))
                                .map(|l| (k.clone(), l))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let required = |loc: &Loc| -> BTreeSet<String> {
            loc.node
                .get("required")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (old_props, new_props) = (properties(old), properties(new));
        let (old_required, new_required) = (required(old), required(new));
        let (old_extra, new_extra) = (Extra::of(old), Extra::of(new));
        let names: BTreeSet<&String> = old_props
            .keys()
            .chain(new_props.keys())
            .chain(old_required.iter())
            .chain(new_required.iter())
            .collect();
        for name in names {
            let (old_prop, new_prop) = (old_props.get(name), new_props.get(name));
            let (was_required, is_required) =
                (old_required.contains(name), new_required.contains(name));
            match (old_prop, new_prop) {
                (Some(old_prop), Some(new_prop)) => {
                    if is_required && !was_required {
                        self.report(
                            "property-became-required",
                            Some(old_prop),
                            Some(new_prop),
                            Mask::BACKWARD,
                            mask,
                            format!("`{name}` is now required"),
                        );
                    }
                    if was_required && !is_required {
                        self.report(
                            "property-became-optional",
                            Some(old_prop),
                            Some(new_prop),
                            Mask::FORWARD,
                            mask,
                            format!("`{name}` is now optional"),
                        );
                    }
                    self.schemas(old_prop.clone(), new_prop.clone(), mask)?;
                }
                (Some(old_prop), None) => {
                    let forward_breaks = was_required;
                    let message = format!("`{name}` was removed");
                    match &new_extra {
                        Extra::Closed(_) => self.report(
                            "property-removed",
                            Some(old_prop),
                            Some(new),
                            Mask {
                                backward: true,
                                forward: forward_breaks,
                            },
                            mask,
                            format!("{message}, and the new object admits no other properties"),
                        ),
                        Extra::Schema(extra) => {
                            if forward_breaks {
                                self.report(
                                    "property-removed",
                                    Some(old_prop),
                                    Some(new),
                                    Mask::FORWARD,
                                    mask,
                                    format!("{message}; new data lacks it"),
                                );
                            }
                            self.schemas(
                                old_prop.clone(),
                                extra.clone(),
                                Mask {
                                    backward: mask.backward,
                                    forward: false,
                                },
                            )?;
                        }
                        Extra::Open => self.report(
                            "property-removed",
                            Some(old_prop),
                            Some(new),
                            Mask {
                                backward: false,
                                forward: forward_breaks,
                            },
                            mask,
                            if forward_breaks {
                                format!("{message}; old readers require it")
                            } else {
                                message
                            },
                        ),
                    }
                }
                (None, Some(new_prop)) => {
                    if is_required {
                        self.report(
                            "required-property-added",
                            Some(old),
                            Some(new_prop),
                            Mask::BACKWARD,
                            mask,
                            format!("`{name}` was added as required; old data lacks it"),
                        );
                    }
                    match &old_extra {
                        Extra::Closed(_) => self.report(
                            "property-added",
                            Some(old),
                            Some(new_prop),
                            Mask::FORWARD,
                            mask,
                            format!(
                                "`{name}` was added, and the old object admits no other properties"
                            ),
                        ),
                        Extra::Schema(extra) => {
                            self.schemas(
                                extra.clone(),
                                new_prop.clone(),
                                Mask {
                                    backward: false,
                                    forward: mask.forward,
                                },
                            )?;
                            // Old map-like data may already hold the key with old values.
                            self.schemas(
                                extra.clone(),
                                new_prop.clone(),
                                Mask {
                                    backward: mask.backward,
                                    forward: false,
                                },
                            )?;
                        }
                        Extra::Open => {
                            if !is_required {
                                self.report(
                                    "property-added",
                                    Some(old),
                                    Some(new_prop),
                                    Mask {
                                        backward: false,
                                        forward: false,
                                    },
                                    mask,
                                    format!("`{name}` was added as optional"),
                                );
                            }
                        }
                    }
                }
                (None, None) => {
                    if is_required && !was_required {
                        self.report(
                            "required-property-added",
                            Some(old),
                            Some(new),
                            Mask::BACKWARD,
                            mask,
                            format!("`{name}` is now required"),
                        );
                    }
                }
            }
        }
        match (&old_extra, &new_extra) {
            (Extra::Schema(old_extra), Extra::Closed(new_loc)) => {
                self.report(
                    "additional-properties-closed",
                    Some(old_extra),
                    Some(new_loc),
                    Mask::BACKWARD,
                    mask,
                    "the object no longer admits extra properties".into(),
                );
            }
            (Extra::Closed(old_loc), Extra::Schema(new_extra)) => {
                self.report(
                    "additional-properties-opened",
                    Some(old_loc),
                    Some(new_extra),
                    Mask::FORWARD,
                    mask,
                    "the object now admits extra properties".into(),
                );
            }
            (Extra::Schema(old_extra), Extra::Schema(new_extra)) => {
                self.schemas(old_extra.clone(), new_extra.clone(), mask)?
            }
            (Extra::Schema(old_extra), Extra::Open) => {
                self.report(
                    "additional-properties-opened",
                    Some(old_extra),
                    Some(new),
                    Mask {
                        backward: false,
                        forward: false,
                    },
                    mask,
                    "extra properties are no longer constrained".into(),
                );
            }
            (Extra::Open, Extra::Schema(new_extra)) => {
                self.report(
                    "additional-properties-added",
                    Some(old),
                    Some(new_extra),
                    Mask::FORWARD,
                    mask,
                    "new data may carry extra properties that old readers never declared".into(),
                );
            }
            _ => {}
        }
        Ok(())
    }
}

enum Side {
    Old,
    New,
}

/// A branch with no partner on the other side: a kind of value that came or went.
fn unmatched_branch(kind: Kind, side: Side) -> (&'static str, String) {
    match (kind, side) {
        (Kind::Null, Side::Old) => ("nullable-removed", "null is no longer allowed".to_owned()),
        (Kind::Null, Side::New) => ("nullable-added", "null is now allowed".to_owned()),
        (kind, Side::Old) => (
            "type-narrowed",
            format!("`{}` values are no longer allowed", kind.name()),
        ),
        (kind, Side::New) => (
            "type-widened",
            format!("`{}` values are now allowed", kind.name()),
        ),
    }
}

/// The schema that accepts anything: what a missing `items` means.
static ANY: Value = Value::Bool(true);

/// Whether the schema itself (not the definitions it carries) refers elsewhere.
fn has_ref(node: &Value) -> bool {
    match node {
        Value::Object(map) => {
            map.contains_key("$ref")
                || map
                    .iter()
                    .any(|(key, value)| key != "$defs" && key != "definitions" && has_ref(value))
        }
        Value::Array(list) => list.iter().any(has_ref),
        _ => false,
    }
}

/// `additionalProperties` as typed producers read it.
enum Extra<'a> {
    /// Not declared: data has only declared properties, readers accept anything else.
    Open,
    /// `false`.
    Closed(Loc<'a>),
    /// A schema (a map-like object).
    Schema(Loc<'a>),
}

impl<'a> Extra<'a> {
    fn of(loc: &Loc<'a>) -> Self {
        match loc.child("additionalProperties") {
            None => Extra::Open,
            Some(child) if child.node == &Value::Bool(false) => Extra::Closed(child),
            Some(child) if child.node == &Value::Bool(true) => Extra::Open,
            Some(child) => Extra::Schema(child),
        }
    }
}

/// Folds pure-enumeration branches of one kind (schemars writes documented unit variants as
/// `oneOf` of `const`s) into one branch, so values pair by value.
fn merge_enums(branches: Vec<Branch<'_>>) -> Vec<Branch<'_>> {
    let mut merged: Vec<Branch> = Vec::new();
    for branch in branches {
        let pure = branch.values.is_some()
            && only_annotations_besides(branch.loc.node, &["type", "enum", "const"]);
        if pure
            && let Some(existing) = merged.iter_mut().find(|b| {
                b.kind == branch.kind
                    && b.values.is_some()
                    && only_annotations_besides(b.loc.node, &["type", "enum", "const"])
            })
        {
            let values = existing.values.get_or_insert_with(Vec::new);
            for value in branch.values.unwrap_or_default() {
                if !values.contains(&value) {
                    values.push(value);
                }
            }
            continue;
        }
        merged.push(branch);
    }
    merged
}

/// The new branch that corresponds to `old`: same kind (or integer/number), then the same
/// constant tag property, then identical content, then the first free one.
fn pick_partner(old: &Branch, candidates: &[Branch], used: &[bool]) -> Option<usize> {
    let compatible = |candidate: &Branch| {
        candidate.kind == old.kind
            || matches!(
                (old.kind, candidate.kind),
                (Kind::Integer, Kind::Number) | (Kind::Number, Kind::Integer)
            )
    };
    let free: Vec<usize> = (0..candidates.len())
        .filter(|&i| !used[i] && compatible(&candidates[i]))
        .collect();
    let same_kind: Vec<usize> = free
        .iter()
        .copied()
        .filter(|&i| candidates[i].kind == old.kind)
        .collect();
    let pool = if same_kind.is_empty() {
        free
    } else {
        same_kind
    };
    if old.kind == Kind::Object {
        let old_tags = tags(old.loc.node);
        if !old_tags.is_empty() {
            let tagged = pool.iter().copied().find(|&i| {
                tags(candidates[i].loc.node)
                    .iter()
                    .any(|t| old_tags.contains(t))
            });
            if tagged.is_some() {
                return tagged;
            }
            let untagged_or_other = pool
                .iter()
                .copied()
                .find(|&i| tags(candidates[i].loc.node).is_empty());
            return untagged_or_other.filter(|_| pool.len() == 1);
        }
    }
    let same = pool
        .iter()
        .copied()
        .find(|&i| same_schema(old.loc.node, candidates[i].loc.node));
    same.or_else(|| pool.first().copied())
}

/// Constant-valued properties of an object schema: the discriminators of tagged enums.
fn tags(node: &Value) -> Vec<(String, Value)> {
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut tags = Vec::new();
    for (name, schema) in properties {
        if let Some(value) = schema.get("const") {
            tags.push((name.clone(), value.clone()));
        } else if let Some([value]) = schema
            .get("enum")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            tags.push((name.clone(), value.clone()));
        }
    }
    // Externally tagged enums: the single required property's name is the tag.
    if tags.is_empty()
        && let Some([only]) = node
            .get("required")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        && properties.len() == 1
    {
        tags.push(("$key".to_owned(), only.clone()));
    }
    tags
}
