//! Validation of one value against one node, exactly as JSON Schema 2020-12 defines it
//! (annotations included, for `unevaluated*`), with the format semantics of
//! [`crate::format`]. Every witness the engine reports is checked here first; an answer
//! that rests on something undecidable (an unknown format, a pattern outside the regular
//! subset) is marked uncertain and never reported as a witness.
//!
//! Hand-written: the engine must validate against nodes of its own arena (including nodes
//! it makes), and must know when an answer was a guess; validator crates do neither.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::format::Format;
use crate::schema::{Arena, Body, Keywords, NodeId, types};

const MAX_DEPTH: usize = 256;

/// JSON equality with numbers compared by value (`1` equals `1.0`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        // Integers exactly (2^53 + 1 is not 2^53), other numbers by value.
        (Value::Number(x), Value::Number(y)) => {
            let integer = |n: &serde_json::Number| {
                n.as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
            };
            match (integer(x), integer(y)) {
                (Some(a), Some(b)) => a == b,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, a)| y.get(key).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

pub fn type_of(value: &Value) -> u8 {
    match value {
        Value::Null => types::NULL,
        Value::Bool(_) => types::BOOLEAN,
        Value::Number(n) => {
            if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                types::INTEGER | types::NUMBER
            } else {
                types::NUMBER
            }
        }
        Value::String(_) => types::STRING,
        Value::Array(_) => types::ARRAY,
        Value::Object(_) => types::OBJECT,
    }
}

/// Whether `value / of` is an integer, on the numbers as JSON writes them: each is read as
/// the shortest decimal that round-trips (`3.3` is a multiple of `1.1`), and the quotient
/// is computed exactly in integers. Beyond `i128`, on the binary values with one rounding.
pub fn is_multiple(value: f64, of: f64) -> bool {
    if let (Some((a, p)), Some((b, q))) = (decimal(value), decimal(of))
        && b != 0
    {
        let scale = |n: i128, by: i32| 10i128.checked_pow(by as u32).and_then(|f| n.checked_mul(f));
        let exact = if p >= q {
            scale(a, p - q).map(|scaled| scaled % b == 0)
        } else {
            scale(b, q - p).map(|scaled| a % scaled == 0)
        };
        if let Some(exact) = exact {
            return exact;
        }
    }
    let quotient = (value / of).round();
    quotient.is_finite() && quotient.mul_add(of, -value) == 0.0
}

/// `x` as `mantissa × 10^exponent` with the shortest mantissa that round-trips.
fn decimal(x: f64) -> Option<(i128, i32)> {
    let text = format!("{x:e}");
    let (mantissa, exponent) = text.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    Some((digits, exponent - fraction.len() as i32))
}

/// What a successful validation evaluated, for `unevaluatedProperties`/`unevaluatedItems`.
#[derive(Default)]
struct Evaluated {
    properties: BTreeSet<String>,
    items: usize,
    all_items: bool,
}

impl Evaluated {
    fn absorb(&mut self, other: Evaluated) {
        self.properties.extend(other.properties);
        self.items = self.items.max(other.items);
        self.all_items |= other.all_items;
    }
}

pub struct Evaluator<'a> {
    arena: &'a Arena,
    /// Why the last answer is not certain, if it is not.
    doubt: RefCell<Option<String>>,
    /// (node, value) pairs being evaluated: meeting one again means the schema refers to
    /// itself without descending into the value.
    open: RefCell<std::collections::HashSet<(NodeId, usize)>>,
}

impl<'a> Evaluator<'a> {
    pub fn new(arena: &'a Arena) -> Self {
        Evaluator {
            arena,
            doubt: RefCell::new(None),
            open: RefCell::new(std::collections::HashSet::new()),
        }
    }

    /// Whether `value` is valid under `node`, and `Err` with the reason when that cannot be
    /// known exactly.
    pub fn check(&self, value: &Value, node: NodeId) -> Result<bool, String> {
        self.doubt.replace(None);
        let valid = self.evaluate(value, node, 0).is_some();
        match self.doubt.take() {
            Some(reason) => Err(reason),
            None => Ok(valid),
        }
    }

    fn doubt(&self, reason: String) {
        self.doubt.borrow_mut().get_or_insert(reason);
    }

    fn evaluate(&self, value: &Value, node: NodeId, depth: usize) -> Option<Evaluated> {
        let key = (node, value as *const Value as usize);
        if depth > MAX_DEPTH || self.open.borrow().contains(&key) {
            self.doubt("the schema refers to itself without descending into the value".into());
            return None;
        }
        match &self.arena.node(node).body {
            Body::True => Some(Evaluated::default()),
            Body::False => None,
            Body::Const(constant) => same(constant, value).then(Evaluated::default),
            Body::Schema(keywords) => {
                self.open.borrow_mut().insert(key);
                let evaluated = self.keywords(value, keywords, depth);
                self.open.borrow_mut().remove(&key);
                evaluated
            }
        }
    }

    fn keywords(&self, value: &Value, k: &Keywords, depth: usize) -> Option<Evaluated> {
        if let Some(set) = k.types
            && set & type_of(value) == 0
        {
            return None;
        }
        if let Some(values) = &k.values
            && !values.iter().any(|v| same(v, value))
        {
            return None;
        }
        let mut evaluated = Evaluated::default();
        match value {
            Value::Number(number) => self.number(number.as_f64()?, k)?,
            Value::String(text) => self.string(text, k)?,
            Value::Array(items) => self.array(items, k, depth, &mut evaluated)?,
            Value::Object(_) => self.object(value, k, depth, &mut evaluated)?,
            _ => {}
        }
        for &branch in &k.all_of {
            evaluated.absorb(self.evaluate(value, branch, depth + 1)?);
        }
        if !k.any_of.is_empty() {
            let mut any = false;
            for &branch in &k.any_of {
                if let Some(inner) = self.evaluate(value, branch, depth + 1) {
                    any = true;
                    evaluated.absorb(inner);
                }
            }
            if !any {
                return None;
            }
        }
        if !k.one_of.is_empty() {
            let mut passing = k
                .one_of
                .iter()
                .filter_map(|&b| self.evaluate(value, b, depth + 1));
            let first = passing.next()?;
            if passing.next().is_some() {
                return None;
            }
            evaluated.absorb(first);
        }
        if let Some(not) = k.not
            && self.evaluate(value, not, depth + 1).is_some()
        {
            return None;
        }
        if let Some(target) = k.reference {
            evaluated.absorb(self.evaluate(value, target, depth + 1)?);
        }
        if let Some((condition, then, otherwise)) = k.if_then_else {
            match self.evaluate(value, condition, depth + 1) {
                Some(inner) => {
                    evaluated.absorb(inner);
                    if let Some(then) = then {
                        evaluated.absorb(self.evaluate(value, then, depth + 1)?);
                    }
                }
                None => {
                    if let Some(otherwise) = otherwise {
                        evaluated.absorb(self.evaluate(value, otherwise, depth + 1)?);
                    }
                }
            }
        }
        if let Value::Object(map) = value {
            for (name, schema) in &k.dependent_schemas {
                if map.contains_key(name) {
                    evaluated.absorb(self.evaluate(value, *schema, depth + 1)?);
                }
            }
            if let Some(unevaluated) = k.unevaluated_properties {
                for (name, child) in map {
                    if !evaluated.properties.contains(name) {
                        self.evaluate(child, unevaluated, depth + 1)?;
                    }
                }
                evaluated.properties.extend(map.keys().cloned());
            }
        }
        if let (Value::Array(items), Some(unevaluated)) = (value, k.unevaluated_items) {
            if !evaluated.all_items {
                for item in items.iter().skip(evaluated.items) {
                    self.evaluate(item, unevaluated, depth + 1)?;
                }
            }
            evaluated.all_items = true;
        }
        Some(evaluated)
    }

    fn number(&self, number: f64, k: &Keywords) -> Option<()> {
        if let Some(bound) = k.minimum
            && (number < bound.value || (bound.exclusive && number == bound.value))
        {
            return None;
        }
        if let Some(bound) = k.maximum
            && (number > bound.value || (bound.exclusive && number == bound.value))
        {
            return None;
        }
        if let Some(of) = k.multiple_of
            && !is_multiple(number, of)
        {
            return None;
        }
        if let Some(Format::Numeric(format)) = &k.format {
            let (low, high, integer) = format.range();
            if number < low || number > high || (integer && number.fract() != 0.0) {
                return None;
            }
        }
        Some(())
    }

    fn string(&self, text: &str, k: &Keywords) -> Option<()> {
        let length = text.chars().count() as u64;
        if k.min_length.is_some_and(|min| length < min)
            || k.max_length.is_some_and(|max| length > max)
        {
            return None;
        }
        if let Some(pattern) = k.pattern {
            match self.arena.patterns.is_match(pattern, text) {
                Some(false) => return None,
                Some(true) => {}
                None => self.doubt(format!(
                    "pattern `{}` is outside the regular subset the engine decides",
                    self.arena.patterns.source(pattern)
                )),
            }
        }
        if let Some(format) = &k.format {
            match format.check(text) {
                Some(false) => return None,
                Some(true) => {}
                None => self.doubt(format!(
                    "format `{}` is not known, so its values cannot be decided",
                    format.name()
                )),
            }
        }
        Some(())
    }

    fn array(
        &self,
        items: &[Value],
        k: &Keywords,
        depth: usize,
        evaluated: &mut Evaluated,
    ) -> Option<()> {
        let count = items.len() as u64;
        if k.min_items.is_some_and(|min| count < min) || k.max_items.is_some_and(|max| count > max)
        {
            return None;
        }
        if k.unique_items {
            for (index, item) in items.iter().enumerate() {
                if items[..index].iter().any(|other| same(other, item)) {
                    return None;
                }
            }
        }
        for (item, &schema) in items.iter().zip(&k.prefix_items) {
            self.evaluate(item, schema, depth + 1)?;
        }
        evaluated.items = k.prefix_items.len().min(items.len());
        if let Some(rest) = k.items {
            for item in items.iter().skip(k.prefix_items.len()) {
                self.evaluate(item, rest, depth + 1)?;
            }
            evaluated.all_items = true;
        }
        if let Some(contains) = k.contains {
            let matching = items
                .iter()
                .filter(|item| self.evaluate(item, contains, depth + 1).is_some())
                .count() as u64;
            let min = k.min_contains.unwrap_or(1);
            if matching < min || k.max_contains.is_some_and(|max| matching > max) {
                return None;
            }
            // Items `contains` matched count as evaluated; when every item did, all are.
            if matching == count {
                evaluated.all_items = true;
            } else if k.unevaluated_items.is_some() {
                self.doubt(
                    "`unevaluatedItems` beside `contains` that matched only some items".into(),
                );
            }
        }
        Some(())
    }

    fn object(
        &self,
        value: &Value,
        k: &Keywords,
        depth: usize,
        evaluated: &mut Evaluated,
    ) -> Option<()> {
        let map = value.as_object()?;
        let count = map.len() as u64;
        if k.min_properties.is_some_and(|min| count < min)
            || k.max_properties.is_some_and(|max| count > max)
        {
            return None;
        }
        if k.required.iter().any(|name| !map.contains_key(name)) {
            return None;
        }
        for (name, needed) in &k.dependent_required {
            if map.contains_key(name) && needed.iter().any(|n| !map.contains_key(n)) {
                return None;
            }
        }
        for (name, child) in map {
            let mut matched = false;
            if let Some((_, schema)) = k.properties.iter().find(|(p, _)| p == name) {
                matched = true;
                self.evaluate(child, *schema, depth + 1)?;
            }
            for (pattern, schema) in &k.pattern_properties {
                let hit = match self.arena.patterns.is_match(*pattern, name) {
                    Some(hit) => hit,
                    None => {
                        self.doubt(format!(
                            "pattern `{}` is outside the regular subset the engine decides",
                            self.arena.patterns.source(*pattern)
                        ));
                        false
                    }
                };
                if hit {
                    matched = true;
                    self.evaluate(child, *schema, depth + 1)?;
                }
            }
            if !matched && let Some(extra) = k.additional_properties {
                self.evaluate(child, extra, depth + 1)?;
                matched = true;
            }
            if matched {
                evaluated.properties.insert(name.clone());
            }
            if let Some(names) = k.property_names {
                self.evaluate(&Value::String(name.clone()), names, depth + 1)?;
            }
        }
        Some(())
    }
}
