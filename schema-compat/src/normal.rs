//! The normal form: a schema (or its complement) as a union of conjunctions, one JSON type
//! each. `allOf` intersects, `anyOf` unites, `oneOf` is "this branch and none of the branches
//! it overlaps", `not` is pushed down to the keywords, `if`/`then`/`else` and
//! `dependentSchemas` become the unions they mean. Every keyword negates to the values of
//! its own type that violate it, so the complement of a schema is again a union of
//! conjunctions. Constraints on items and property values stay as literals (a node and
//! whether it must or must not hold), decided when a witness needs that value.

use std::collections::BTreeSet;
use std::rc::Rc;

use serde_json::Value;

use crate::eval::type_of;
use crate::format::Format;
use crate::pattern::PatternId;
use crate::schema::{Bound, Keywords, NodeId, Side, types};

/// A node that must hold (`true`) or must not.
pub type Lit = (NodeId, bool);

#[derive(Clone, Debug)]
pub struct Conj {
    pub shape: Shape,
    /// The value must be one of these (`const`/`enum`).
    pub only: Option<Vec<Value>>,
    pub excluded: Vec<Value>,
    /// Why this conjunction cannot be proved empty, when part of it is not modelled.
    pub doubt: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Shape {
    Null,
    /// Bit 1: `false` allowed, bit 2: `true` allowed.
    Boolean(u8),
    Number(Num),
    String(Str),
    Array(Arr),
    Object(Obj),
}

#[derive(Clone, Debug, Default)]
pub struct Num {
    pub low: Option<Bound>,
    pub high: Option<Bound>,
    pub integer: bool,
    pub fractional: bool,
    pub multiples: Vec<f64>,
    pub not_multiples: Vec<f64>,
}

#[derive(Clone, Debug, Default)]
pub struct Str {
    pub min: u64,
    pub max: Option<u64>,
    pub matching: Vec<PatternId>,
    pub not_matching: Vec<PatternId>,
    pub formats: Vec<Format>,
    pub not_formats: Vec<Format>,
}

/// How many items from `start` on satisfy `lit`.
#[derive(Clone, Debug)]
pub struct Count {
    pub start: usize,
    pub lit: Lit,
    pub min: u64,
    pub max: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Arr {
    pub min: u64,
    pub max: Option<u64>,
    /// Literals each item at this index must meet.
    pub positional: Vec<Vec<Lit>>,
    /// Every item from this index on meets the literal.
    pub tails: Vec<(usize, Lit)>,
    pub counts: Vec<Count>,
    pub unique: bool,
    pub duplicate: bool,
}

/// `properties`, `patternProperties` and `additionalProperties` of one schema object.
#[derive(Clone, Debug)]
pub struct Clause {
    pub side: Side,
    /// It says what undeclared properties may be (`additionalProperties` or
    /// `unevaluatedProperties`), so typed producers of it may write them.
    pub explicit: bool,
    pub properties: Vec<(String, NodeId)>,
    pub patterns: Vec<(PatternId, NodeId)>,
    pub additional: Option<NodeId>,
    /// What its schema object requires: a typed producer declares every property it must
    /// write, so under typed-producer semantics a required name is a declared one (of any
    /// value, unless `properties` says more), never one it cannot write.
    pub required: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Names {
    Key(String),
    Pattern(PatternId),
    /// Names that are none of `keys` and match none of `patterns`.
    Other {
        keys: Vec<String>,
        patterns: Vec<PatternId>,
    },
    /// Names meeting a string literal (`propertyNames` negated).
    Meeting(Lit),
}

/// Some property whose name is in `names` has a value meeting `value`.
#[derive(Clone, Debug)]
pub struct Exists {
    pub names: Names,
    pub value: Option<Lit>,
}

#[derive(Clone, Debug, Default)]
pub struct Obj {
    /// Shared: conjunctions are merged often, clauses never change.
    pub clauses: Vec<Rc<Clause>>,
    pub required: BTreeSet<String>,
    pub absent: BTreeSet<String>,
    pub min: u64,
    pub max: Option<u64>,
    pub names: Vec<Lit>,
    pub exists: Vec<Exists>,
    pub dependent_required: Vec<(String, Vec<String>)>,
}

impl Conj {
    pub fn of(shape: Shape) -> Conj {
        Conj {
            shape,
            only: None,
            excluded: Vec::new(),
            doubt: None,
        }
    }

    /// Every value of every type.
    pub fn everything() -> Vec<Conj> {
        [
            Shape::Null,
            Shape::Boolean(3),
            Shape::Number(Num::default()),
            Shape::String(Str::default()),
            Shape::Array(Arr::default()),
            Shape::Object(Obj::default()),
        ]
        .into_iter()
        .map(Conj::of)
        .collect()
    }

    pub fn type_bits(&self) -> u8 {
        match &self.shape {
            Shape::Null => types::NULL,
            Shape::Boolean(_) => types::BOOLEAN,
            Shape::Number(_) => types::NUMBER | types::INTEGER,
            Shape::String(_) => types::STRING,
            Shape::Array(_) => types::ARRAY,
            Shape::Object(_) => types::OBJECT,
        }
    }

    /// Both at once; `None` when they cannot meet (another type, or visibly empty).
    pub fn meet(&self, other: &Conj) -> Option<Conj> {
        let shape = match (&self.shape, &other.shape) {
            (Shape::Null, Shape::Null) => Shape::Null,
            (Shape::Boolean(a), Shape::Boolean(b)) => {
                if a & b == 0 {
                    return None;
                }
                Shape::Boolean(a & b)
            }
            (Shape::Number(a), Shape::Number(b)) => {
                let number = Num {
                    low: tighter(a.low, b.low, true),
                    high: tighter(a.high, b.high, false),
                    integer: a.integer || b.integer,
                    fractional: a.fractional || b.fractional,
                    multiples: union(&a.multiples, &b.multiples),
                    not_multiples: union(&a.not_multiples, &b.not_multiples),
                };
                if number.visibly_empty() {
                    return None;
                }
                Shape::Number(number)
            }
            (Shape::String(a), Shape::String(b)) => {
                let string = Str {
                    min: a.min.max(b.min),
                    max: min_option(a.max, b.max),
                    matching: union(&a.matching, &b.matching),
                    not_matching: union(&a.not_matching, &b.not_matching),
                    formats: union(&a.formats, &b.formats),
                    not_formats: union(&a.not_formats, &b.not_formats),
                };
                if string.max.is_some_and(|max| max < string.min)
                    || string
                        .matching
                        .iter()
                        .any(|p| string.not_matching.contains(p))
                    || string
                        .formats
                        .iter()
                        .any(|f| string.not_formats.contains(f))
                {
                    return None;
                }
                Shape::String(string)
            }
            (Shape::Array(a), Shape::Array(b)) => {
                let mut positional = a.positional.clone();
                for (index, lits) in b.positional.iter().enumerate() {
                    if positional.len() <= index {
                        positional.resize(index + 1, Vec::new());
                    }
                    positional[index].extend(lits.iter().copied());
                }
                let array = Arr {
                    min: a.min.max(b.min),
                    max: min_option(a.max, b.max),
                    positional,
                    tails: a.tails.iter().chain(&b.tails).copied().collect(),
                    counts: a.counts.iter().chain(&b.counts).cloned().collect(),
                    unique: a.unique || b.unique,
                    duplicate: a.duplicate || b.duplicate,
                };
                if array.max.is_some_and(|max| max < array.min)
                    || (array.duplicate && (array.unique || array.max.is_some_and(|max| max < 2)))
                {
                    return None;
                }
                Shape::Array(array)
            }
            (Shape::Object(a), Shape::Object(b)) => {
                let object = Obj {
                    clauses: a.clauses.iter().chain(&b.clauses).cloned().collect(),
                    required: a.required.union(&b.required).cloned().collect(),
                    absent: a.absent.union(&b.absent).cloned().collect(),
                    min: a.min.max(b.min),
                    max: min_option(a.max, b.max),
                    names: a.names.iter().chain(&b.names).copied().collect(),
                    exists: a.exists.iter().chain(&b.exists).cloned().collect(),
                    dependent_required: a
                        .dependent_required
                        .iter()
                        .chain(&b.dependent_required)
                        .cloned()
                        .collect(),
                };
                if object
                    .max
                    .is_some_and(|max| max < object.min || (object.required.len() as u64) > max)
                    || object.required.iter().any(|k| object.absent.contains(k))
                {
                    return None;
                }
                Shape::Object(object)
            }
            _ => return None,
        };
        let only = match (&self.only, &other.only) {
            (Some(a), Some(b)) => Some(
                a.iter()
                    .filter(|v| b.iter().any(|w| crate::eval::same(v, w)))
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        };
        let excluded: Vec<Value> = self
            .excluded
            .iter()
            .chain(&other.excluded)
            .cloned()
            .collect();
        if let Some(only) = &only
            && only
                .iter()
                .all(|v| excluded.iter().any(|e| crate::eval::same(v, e)))
        {
            return None;
        }
        Some(Conj {
            shape,
            only,
            excluded,
            doubt: self.doubt.clone().or_else(|| other.doubt.clone()),
        })
    }
}

impl Num {
    /// Lower and upper integer bounds when only integers are allowed.
    pub fn integer_range(&self) -> (f64, f64) {
        let low = self.low.map_or(f64::NEG_INFINITY, |b| {
            let c = b.value.ceil();
            if b.exclusive && c == b.value {
                c + 1.0
            } else {
                c
            }
        });
        let high = self.high.map_or(f64::INFINITY, |b| {
            let f = b.value.floor();
            if b.exclusive && f == b.value {
                f - 1.0
            } else {
                f
            }
        });
        (low, high)
    }

    pub fn visibly_empty(&self) -> bool {
        if self.integer && self.fractional {
            return true;
        }
        // Every multiple of `m` is a multiple of `n` when `m` is: nothing is left.
        let integer = self.integer.then_some(1.0);
        if self.multiples.iter().chain(integer.as_ref()).any(|m| {
            self.not_multiples
                .iter()
                .any(|n| crate::eval::is_multiple(*m, *n))
        }) {
            return true;
        }
        if let (Some(low), Some(high)) = (self.low, self.high)
            && (low.value > high.value
                || (low.value == high.value && (low.exclusive || high.exclusive)))
        {
            return true;
        }
        if self.integer {
            let (low, high) = self.integer_range();
            if low > high {
                return true;
            }
        }
        // Only non-integers, in an interval that is one integer.
        if self.fractional
            && let (Some(low), Some(high)) = (self.low, self.high)
            && low.value == high.value
            && low.value.fract() == 0.0
        {
            return true;
        }
        false
    }
}

fn tighter(a: Option<Bound>, b: Option<Bound>, lower: bool) -> Option<Bound> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.value == b.value {
            Bound {
                value: a.value,
                exclusive: a.exclusive || b.exclusive,
            }
        } else if (a.value > b.value) == lower {
            a
        } else {
            b
        }),
        (a, None) => a,
        (None, b) => b,
    }
}

fn min_option(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn union<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = a.to_vec();
    for item in b {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}

/// The conjunctions of a schema object's own assertions (not its applicators).
pub fn assertions(k: &Keywords, side: Side, unevaluated: &Unevaluated) -> Vec<Conj> {
    let set = k.types.unwrap_or(types::ALL);
    let mut out = Vec::new();
    if set & types::NULL != 0 {
        out.push(Conj::of(Shape::Null));
    }
    if set & types::BOOLEAN != 0 {
        out.push(Conj::of(Shape::Boolean(3)));
    }
    if set & (types::NUMBER | types::INTEGER) != 0 {
        let mut number = Num {
            low: k.minimum,
            high: k.maximum,
            integer: set & types::NUMBER == 0,
            multiples: k.multiple_of.into_iter().collect(),
            ..Num::default()
        };
        if let Some(Format::Numeric(format)) = &k.format {
            let (low, high, integer) = format.range();
            number.low = tighter(
                number.low,
                Some(Bound {
                    value: low,
                    exclusive: false,
                }),
                true,
            );
            number.high = tighter(
                number.high,
                Some(Bound {
                    value: high,
                    exclusive: false,
                }),
                false,
            );
            number.integer |= integer;
        }
        if !number.visibly_empty() {
            out.push(Conj::of(Shape::Number(number)));
        }
    }
    if set & types::STRING != 0 {
        let string = Str {
            min: k.min_length.unwrap_or(0),
            max: k.max_length,
            matching: k.pattern.into_iter().collect(),
            formats: k
                .format
                .iter()
                .filter(|f| !matches!(f, Format::Numeric(_)))
                .cloned()
                .collect(),
            ..Str::default()
        };
        if string.max.is_none_or(|max| max >= string.min) {
            out.push(Conj::of(Shape::String(string)));
        }
    }
    if set & types::ARRAY != 0 {
        let mut array = Arr {
            min: k.min_items.unwrap_or(0),
            max: k.max_items,
            positional: k
                .prefix_items
                .iter()
                .map(|&node| vec![(node, true)])
                .collect(),
            unique: k.unique_items,
            ..Arr::default()
        };
        if let Some(items) = k.items {
            array.tails.push((k.prefix_items.len(), (items, true)));
        }
        if let Some(contains) = k.contains {
            let min = k.min_contains.unwrap_or(1);
            if min > 0 || k.max_contains.is_some() {
                array.counts.push(Count {
                    start: 0,
                    lit: (contains, true),
                    min,
                    max: k.max_contains,
                });
            }
        }
        let mut conj = Conj::of(Shape::Array(array));
        match &unevaluated.items {
            Some(Ok((start, node))) => {
                if let Shape::Array(array) = &mut conj.shape {
                    array.tails.push((*start, (*node, true)));
                }
            }
            Some(Err(doubt)) => conj.doubt = Some(doubt.clone()),
            None => {}
        }
        if let Shape::Array(array) = &conj.shape
            && array.max.is_none_or(|max| max >= array.min)
        {
            out.push(conj);
        }
    }
    if set & types::OBJECT != 0 {
        let mut object = Obj {
            required: k.required.iter().cloned().collect(),
            min: k.min_properties.unwrap_or(0),
            max: k.max_properties,
            names: k.property_names.map(|n| (n, true)).into_iter().collect(),
            dependent_required: k.dependent_required.clone(),
            ..Obj::default()
        };
        if k.declares_properties || k.additional_properties.is_some() {
            object.clauses.push(Rc::new(Clause {
                side,
                explicit: k.additional_properties.is_some(),
                properties: k.properties.clone(),
                patterns: k.pattern_properties.clone(),
                additional: k.additional_properties,
                required: k.required.clone(),
            }));
        }
        let mut conj = Conj::of(Shape::Object(object));
        match &unevaluated.properties {
            Some(Ok(clause)) => {
                if let Shape::Object(object) = &mut conj.shape {
                    object.clauses.push(Rc::new(clause.clone()));
                }
            }
            Some(Err(doubt)) => conj.doubt = Some(doubt.clone()),
            None => {}
        }
        if let Shape::Object(object) = &conj.shape
            && object
                .max
                .is_none_or(|max| max >= object.min && max >= object.required.len() as u64)
        {
            out.push(conj);
        }
    }
    if let Some(values) = &k.values {
        out = out
            .into_iter()
            .filter_map(|mut conj| {
                let bits = conj.type_bits();
                let mine: Vec<Value> = values
                    .iter()
                    .filter(|v| type_of(v) & bits != 0)
                    .cloned()
                    .collect();
                if mine.is_empty() {
                    return None;
                }
                conj.only = Some(mine);
                Some(conj)
            })
            .collect();
    }
    out
}

/// The values that violate one of a schema object's own assertions: a union.
pub fn violations(k: &Keywords, unevaluated: &Unevaluated) -> Vec<Conj> {
    let mut out = Vec::new();
    if let Some(set) = k.types {
        let missing = |bit: u8| set & bit == 0;
        if missing(types::NULL) {
            out.push(Conj::of(Shape::Null));
        }
        if missing(types::BOOLEAN) {
            out.push(Conj::of(Shape::Boolean(3)));
        }
        if missing(types::NUMBER) {
            out.push(Conj::of(Shape::Number(Num {
                fractional: !missing(types::INTEGER),
                ..Num::default()
            })));
        }
        if missing(types::STRING) {
            out.push(Conj::of(Shape::String(Str::default())));
        }
        if missing(types::ARRAY) {
            out.push(Conj::of(Shape::Array(Arr::default())));
        }
        if missing(types::OBJECT) {
            out.push(Conj::of(Shape::Object(Obj::default())));
        }
    }
    if let Some(values) = &k.values {
        for mut conj in Conj::everything() {
            let bits = conj.type_bits();
            conj.excluded = values
                .iter()
                .filter(|v| type_of(v) & bits != 0)
                .cloned()
                .collect();
            out.push(conj);
        }
    }
    let number = |num: Num| Conj::of(Shape::Number(num));
    if let Some(bound) = k.minimum {
        out.push(number(Num {
            high: Some(Bound {
                value: bound.value,
                exclusive: !bound.exclusive,
            }),
            ..Num::default()
        }));
    }
    if let Some(bound) = k.maximum {
        out.push(number(Num {
            low: Some(Bound {
                value: bound.value,
                exclusive: !bound.exclusive,
            }),
            ..Num::default()
        }));
    }
    if let Some(of) = k.multiple_of {
        out.push(number(Num {
            not_multiples: vec![of],
            ..Num::default()
        }));
    }
    let string = |s: Str| Conj::of(Shape::String(s));
    if let Some(format) = &k.format {
        match format {
            Format::Numeric(numeric) => {
                let (low, high, integer) = numeric.range();
                out.push(number(Num {
                    high: Some(Bound {
                        value: low,
                        exclusive: true,
                    }),
                    ..Num::default()
                }));
                out.push(number(Num {
                    low: Some(Bound {
                        value: high,
                        exclusive: true,
                    }),
                    ..Num::default()
                }));
                if integer {
                    out.push(number(Num {
                        fractional: true,
                        ..Num::default()
                    }));
                }
            }
            other => out.push(string(Str {
                not_formats: vec![other.clone()],
                ..Str::default()
            })),
        }
    }
    if let Some(min) = k.min_length.filter(|m| *m > 0) {
        out.push(string(Str {
            max: Some(min - 1),
            ..Str::default()
        }));
    }
    if let Some(max) = k.max_length {
        out.push(string(Str {
            min: max + 1,
            ..Str::default()
        }));
    }
    if let Some(pattern) = k.pattern {
        out.push(string(Str {
            not_matching: vec![pattern],
            ..Str::default()
        }));
    }
    let array = |a: Arr| Conj::of(Shape::Array(a));
    if let Some(min) = k.min_items.filter(|m| *m > 0) {
        out.push(array(Arr {
            max: Some(min - 1),
            ..Arr::default()
        }));
    }
    if let Some(max) = k.max_items {
        out.push(array(Arr {
            min: max + 1,
            ..Arr::default()
        }));
    }
    if k.unique_items {
        out.push(array(Arr {
            min: 2,
            duplicate: true,
            ..Arr::default()
        }));
    }
    for (index, &node) in k.prefix_items.iter().enumerate() {
        let mut positional = vec![Vec::new(); index + 1];
        positional[index].push((node, false));
        out.push(array(Arr {
            min: index as u64 + 1,
            positional,
            ..Arr::default()
        }));
    }
    let some_item = |start: usize, lit: Lit| Arr {
        counts: vec![Count {
            start,
            lit,
            min: 1,
            max: None,
        }],
        ..Arr::default()
    };
    if let Some(items) = k.items {
        out.push(array(some_item(k.prefix_items.len(), (items, false))));
    }
    if let Some(contains) = k.contains {
        let min = k.min_contains.unwrap_or(1);
        if min > 0 {
            out.push(array(Arr {
                counts: vec![Count {
                    start: 0,
                    lit: (contains, true),
                    min: 0,
                    max: Some(min - 1),
                }],
                ..Arr::default()
            }));
        }
        if let Some(max) = k.max_contains {
            out.push(array(Arr {
                counts: vec![Count {
                    start: 0,
                    lit: (contains, true),
                    min: max + 1,
                    max: None,
                }],
                ..Arr::default()
            }));
        }
    }
    match &unevaluated.items {
        Some(Ok((start, node))) => out.push(array(some_item(*start, (*node, false)))),
        Some(Err(doubt)) => {
            let mut conj = array(Arr::default());
            conj.doubt = Some(doubt.clone());
            out.push(conj);
        }
        None => {}
    }
    let object = |o: Obj| Conj::of(Shape::Object(o));
    let exists = |names: Names, value: Option<Lit>| Obj {
        exists: vec![Exists { names, value }],
        ..Obj::default()
    };
    let clause_violations = |properties: &[(String, NodeId)],
                             patterns: &[(PatternId, NodeId)],
                             additional: Option<NodeId>,
                             out: &mut Vec<Conj>| {
        for (name, node) in properties {
            out.push(object(exists(
                Names::Key(name.clone()),
                Some((*node, false)),
            )));
        }
        for (pattern, node) in patterns {
            out.push(object(exists(
                Names::Pattern(*pattern),
                Some((*node, false)),
            )));
        }
        if let Some(node) = additional {
            let names = Names::Other {
                keys: properties.iter().map(|(name, _)| name.clone()).collect(),
                patterns: patterns.iter().map(|(pattern, _)| *pattern).collect(),
            };
            out.push(object(exists(names, Some((node, false)))));
        }
    };
    clause_violations(
        &k.properties,
        &k.pattern_properties,
        k.additional_properties,
        &mut out,
    );
    match &unevaluated.properties {
        Some(Ok(clause)) => clause_violations(
            &clause.properties,
            &clause.patterns,
            clause.additional,
            &mut out,
        ),
        Some(Err(doubt)) => {
            let mut conj = object(Obj::default());
            conj.doubt = Some(doubt.clone());
            out.push(conj);
        }
        None => {}
    }
    for name in &k.required {
        out.push(object(Obj {
            absent: [name.clone()].into(),
            ..Obj::default()
        }));
    }
    if let Some(min) = k.min_properties.filter(|m| *m > 0) {
        out.push(object(Obj {
            max: Some(min - 1),
            ..Obj::default()
        }));
    }
    if let Some(max) = k.max_properties {
        out.push(object(Obj {
            min: max + 1,
            ..Obj::default()
        }));
    }
    if let Some(names) = k.property_names {
        out.push(object(exists(Names::Meeting((names, false)), None)));
    }
    for (name, needed) in &k.dependent_required {
        for other in needed {
            if other != name {
                out.push(object(Obj {
                    required: [name.clone()].into(),
                    absent: [other.clone()].into(),
                    ..Obj::default()
                }));
            }
        }
    }
    out
}

/// What `unevaluatedProperties`/`unevaluatedItems` of a node amount to: a clause (or a tail)
/// over what the node and the `allOf`/`$ref` subschemas it always applies do not evaluate,
/// or, beside other applicators, a doubt.
#[derive(Default)]
pub struct Unevaluated {
    pub properties: Option<Result<Clause, String>>,
    pub items: Option<Result<(usize, NodeId), String>>,
}
