//! Inclusion as emptiness: A ⊆ B exactly when no value is in A and not in B. The engine
//! turns a goal (literals that must all hold) into its normal form and looks for a value in
//! each conjunction. A value it finds is checked against every literal by the evaluator
//! before it counts, so "incompatible" always comes with a real witness; "empty" is only
//! answered where a rule proves it (a contradiction, an exhausted automaton, an exhausted
//! finite set, or a recursion that would need an infinitely deep value), and anything else
//! is "cannot be decided", with the reason.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::{Number, Value};

use crate::eval::{Evaluator, is_multiple, same};
use crate::format::Format;
use crate::normal::{self, Arr, Clause, Conj, Count, Lit, Num, Obj, Shape, Str, Unevaluated};
use crate::pattern::{Search, StringSpec};
use crate::schema::{Arena, Body, Keywords, NodeId, Side};

/// Conjunctions a normal form may have before the question is given up.
const FORM_LIMIT: usize = 4096;
/// Nested goals (values inside values) searched before giving up.
const DEPTH_LIMIT: usize = 40;
/// Goals searched in one comparison before giving up.
const STEP_LIMIT: usize = 20_000;

#[derive(Clone, Debug)]
pub enum Found {
    Witness(Value),
    Empty,
    Unknown(String),
}

pub(crate) struct Probe {
    pub candidates: Vec<Value>,
    /// The candidates are every value of the conjunction.
    pub exhaustive: bool,
    pub reason: Option<String>,
}

impl Probe {
    pub fn empty() -> Probe {
        Probe {
            candidates: Vec::new(),
            exhaustive: true,
            reason: None,
        }
    }

    pub fn unknown(reason: impl Into<String>) -> Probe {
        Probe {
            candidates: Vec::new(),
            exhaustive: false,
            reason: Some(reason.into()),
        }
    }

    pub fn some(candidates: Vec<Value>) -> Probe {
        Probe {
            candidates,
            exhaustive: false,
            reason: None,
        }
    }
}

/// The applicators of a schema object, copied out so the engine can recurse while it
/// folds them.
struct Applicators {
    all_of: Vec<NodeId>,
    any_of: Vec<NodeId>,
    one_of: Vec<NodeId>,
    not: Option<NodeId>,
    reference: Option<NodeId>,
    conditional: Option<(NodeId, Option<NodeId>, Option<NodeId>)>,
    dependent: Vec<(String, NodeId)>,
}

impl Applicators {
    fn of(k: &Keywords) -> Applicators {
        Applicators {
            all_of: k.all_of.clone(),
            any_of: k.any_of.clone(),
            one_of: k.one_of.clone(),
            not: k.not,
            reference: k.reference,
            conditional: k.if_then_else,
            dependent: k.dependent_schemas.clone(),
        }
    }
}

pub struct Engine {
    pub arena: Arena,
    /// Whose objects are closed: typed producers write only the properties they declare.
    pub(crate) producer: Option<Side>,
    forms: HashMap<Lit, Rc<Vec<Conj>>>,
    forming: HashSet<Lit>,
    found: HashMap<(Option<Side>, Vec<Lit>), Found>,
    searching: HashSet<(Option<Side>, Vec<Lit>)>,
    assumptions: usize,
    depth: usize,
    steps: usize,
    truth: NodeId,
}

pub(crate) fn product(a: &[Conj], b: &[Conj]) -> Result<Vec<Conj>, String> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if let Some(both) = x.meet(y) {
                out.push(both);
                if out.len() > FORM_LIMIT {
                    return Err(format!(
                        "the normal form has more than {FORM_LIMIT} branches"
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn number_value(x: f64) -> Option<Value> {
    // Integral values within `i64`/`u64` are written as integers, exactly.
    const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
    if x.fract() == 0.0 && (-TWO_TO_63..TWO_TO_63).contains(&x) {
        Some(Value::from(x as i64))
    } else if x.fract() == 0.0 && (0.0..2.0 * TWO_TO_63).contains(&x) {
        Some(Value::from(x as u64))
    } else {
        Number::from_f64(x).map(Value::Number)
    }
}

impl Engine {
    pub fn new(mut arena: Arena) -> Engine {
        arena.nodes.push(crate::schema::Node {
            side: Side::New,
            pointer: String::new(),
            body: Body::True,
        });
        let truth = arena.nodes.len() - 1;
        Engine {
            arena,
            producer: None,
            forms: HashMap::new(),
            forming: HashSet::new(),
            found: HashMap::new(),
            searching: HashSet::new(),
            assumptions: 0,
            depth: 0,
            steps: 0,
            truth,
        }
    }

    /// Whether some value produced under `producer`'s closed objects is in `sub` and not in
    /// `sup`: the witness of a break, or `Empty` when `sub ⊆ sup`.
    pub fn difference(&mut self, sub: NodeId, sup: NodeId, producer: Option<Side>) -> Found {
        self.producer = producer;
        self.steps = 0;
        self.arena.patterns.reset_work();
        self.inhabit(vec![(sub, true), (sup, false)])
    }

    pub fn inhabit(&mut self, mut goal: Vec<Lit>) -> Found {
        goal.sort();
        goal.dedup();
        if goal.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Found::Empty;
        }
        let key = (self.producer, goal.clone());
        if let Some(found) = self.found.get(&key) {
            return found.clone();
        }
        // A value in this set would need a smaller value in the same set: none is finite.
        if self.searching.contains(&key) {
            self.assumptions += 1;
            return Found::Empty;
        }
        if self.depth >= DEPTH_LIMIT {
            return Found::Unknown(format!("values nest deeper than {DEPTH_LIMIT} levels"));
        }
        self.steps += 1;
        if self.steps > STEP_LIMIT {
            return Found::Unknown(format!("the comparison needs more than {STEP_LIMIT} steps"));
        }
        self.searching.insert(key.clone());
        self.depth += 1;
        let assumed = self.assumptions;
        let result = self.search(&goal);
        self.depth -= 1;
        self.searching.remove(&key);
        if !matches!(result, Found::Empty) || self.assumptions == assumed {
            self.found.insert(key, result.clone());
        }
        result
    }

    fn search(&mut self, goal: &[Lit]) -> Found {
        let mut form = Conj::everything();
        for &lit in goal {
            let conjs = match self.form(lit) {
                Ok(conjs) => conjs,
                Err(reason) => return Found::Unknown(reason),
            };
            form = match product(&form, &conjs) {
                Ok(form) => form,
                Err(reason) => return Found::Unknown(reason),
            };
        }
        // Each conjunction searched counts as a step too: big forms spend the budget.
        self.steps += form.len();
        if self.steps > STEP_LIMIT {
            return Found::Unknown(format!("the comparison needs more than {STEP_LIMIT} steps"));
        }
        let mut doubt: Option<String> = None;
        for conj in &form {
            let probe = self.probe(conj);
            for candidate in probe.candidates {
                match self.verify(&candidate, goal) {
                    Ok(true) => return Found::Witness(candidate),
                    Ok(false) => {}
                    Err(reason) => {
                        doubt.get_or_insert(reason);
                    }
                }
            }
            if !probe.exhaustive {
                doubt.get_or_insert(
                    probe
                        .reason
                        .unwrap_or_else(|| "no value could be built for one branch".into()),
                );
            } else if let Some(reason) = &conj.doubt {
                doubt.get_or_insert(reason.clone());
            }
        }
        match doubt {
            Some(reason) => Found::Unknown(reason),
            None => Found::Empty,
        }
    }

    pub(crate) fn verify(&self, value: &Value, goal: &[Lit]) -> Result<bool, String> {
        let evaluator = Evaluator::new(&self.arena);
        for &(node, wanted) in goal {
            if evaluator.check(value, node)? != wanted {
                return Ok(false);
            }
        }
        Ok(true)
    }

    // ----- normal forms -----

    pub(crate) fn form(&mut self, lit: Lit) -> Result<Rc<Vec<Conj>>, String> {
        if let Some(form) = self.forms.get(&lit) {
            return Ok(form.clone());
        }
        // A schema that refers to itself before reaching a value: the least solution of
        // `X = X ∪ S` is `S`, and of its complement everything.
        if self.forming.contains(&lit) {
            return Ok(Rc::new(if lit.1 {
                Vec::new()
            } else {
                Conj::everything()
            }));
        }
        self.forming.insert(lit);
        let result = self.build_form(lit);
        self.forming.remove(&lit);
        let form = Rc::new(result?);
        self.forms.insert(lit, form.clone());
        Ok(form)
    }

    fn build_form(&mut self, (node, positive): Lit) -> Result<Vec<Conj>, String> {
        let everything = || Conj::everything();
        match &self.arena.node(node).body {
            Body::True => Ok(if positive { everything() } else { Vec::new() }),
            Body::False => Ok(if positive { Vec::new() } else { everything() }),
            Body::Const(value) => Ok(everything()
                .into_iter()
                .filter(|conj| crate::eval::type_of(value) & conj.type_bits() != 0)
                .map(|mut conj| {
                    if positive {
                        conj.only = Some(vec![value.clone()]);
                    } else {
                        conj.excluded = vec![value.clone()];
                    }
                    conj
                })
                .chain(if positive {
                    Vec::new()
                } else {
                    everything()
                        .into_iter()
                        .filter(|c| crate::eval::type_of(value) & c.type_bits() == 0)
                        .collect()
                })
                .collect()),
            Body::Schema(_) => {
                if positive {
                    self.positive(node)
                } else {
                    self.negative(node)
                }
            }
        }
    }

    fn keywords(&self, node: NodeId) -> &Keywords {
        self.arena.keywords(node).expect("a schema node")
    }

    fn positive(&mut self, node: NodeId) -> Result<Vec<Conj>, String> {
        let side = self.arena.node(node).side;
        let unevaluated = self.unevaluated(node);
        let k = self.keywords(node);
        let mut form = normal::assertions(k, side, &unevaluated);
        let applied = Applicators::of(k);
        for branch in applied.all_of.into_iter().chain(applied.reference) {
            form = product(&form, &self.form((branch, true))?)?;
        }
        if !applied.any_of.is_empty() {
            let mut union = Vec::new();
            for branch in applied.any_of {
                union.extend(self.form((branch, true))?.iter().cloned());
            }
            form = product(&form, &union)?;
        }
        if !applied.one_of.is_empty() {
            let exactly_one = self.exactly_one(&applied.one_of)?;
            form = product(&form, &exactly_one)?;
        }
        if let Some(not) = applied.not {
            form = product(&form, &self.form((not, false))?)?;
        }
        if let Some((condition, then, otherwise)) = applied.conditional {
            let mut union = product(&self.form((condition, true))?, &self.maybe((then, true))?)?;
            union.extend(product(
                &self.form((condition, false))?,
                &self.maybe((otherwise, true))?,
            )?);
            form = product(&form, &union)?;
        }
        for (name, schema) in applied.dependent {
            let mut union: Vec<Conj> = Conj::everything()
                .into_iter()
                .filter(|conj| !matches!(conj.shape, Shape::Object(_)))
                .collect();
            union.push(Conj::of(Shape::Object(Obj {
                absent: [name.clone()].into(),
                ..Obj::default()
            })));
            let present = vec![Conj::of(Shape::Object(Obj {
                required: [name].into(),
                ..Obj::default()
            }))];
            union.extend(product(&present, &self.form((schema, true))?)?);
            form = product(&form, &union)?;
        }
        Ok(form)
    }

    fn negative(&mut self, node: NodeId) -> Result<Vec<Conj>, String> {
        let unevaluated = self.unevaluated(node);
        let k = self.keywords(node);
        let mut union = normal::violations(k, &unevaluated);
        let applied = Applicators::of(k);
        for branch in applied.all_of.into_iter().chain(applied.reference) {
            union.extend(self.form((branch, false))?.iter().cloned());
        }
        if !applied.any_of.is_empty() {
            let mut none = Conj::everything();
            for branch in applied.any_of {
                none = product(&none, &self.form((branch, false))?)?;
            }
            union.extend(none);
        }
        if !applied.one_of.is_empty() {
            let mut none = Conj::everything();
            for &branch in &applied.one_of {
                none = product(&none, &self.form((branch, false))?)?;
            }
            union.extend(none);
            for (first, second) in self.overlapping(&applied.one_of) {
                union.extend(product(
                    &self.form((first, true))?,
                    &self.form((second, true))?,
                )?);
            }
        }
        if let Some(not) = applied.not {
            union.extend(self.form((not, true))?.iter().cloned());
        }
        if let Some((condition, then, otherwise)) = applied.conditional {
            if let Some(then) = then {
                union.extend(product(
                    &self.form((condition, true))?,
                    &self.form((then, false))?,
                )?);
            }
            if let Some(otherwise) = otherwise {
                union.extend(product(
                    &self.form((condition, false))?,
                    &self.form((otherwise, false))?,
                )?);
            }
        }
        for (name, schema) in applied.dependent {
            let present = vec![Conj::of(Shape::Object(Obj {
                required: [name].into(),
                ..Obj::default()
            }))];
            union.extend(product(&present, &self.form((schema, false))?)?);
        }
        if union.len() > FORM_LIMIT {
            return Err(format!(
                "the normal form has more than {FORM_LIMIT} branches"
            ));
        }
        Ok(union)
    }

    fn maybe(&mut self, (node, positive): (Option<NodeId>, bool)) -> Result<Rc<Vec<Conj>>, String> {
        match node {
            Some(node) => self.form((node, positive)),
            None => Ok(Rc::new(Conj::everything())),
        }
    }

    /// Pairs of `oneOf` branches some value meets both of (plain validation: closing does
    /// not decide what `oneOf` accepts). An undecided pair counts as overlapping, which is
    /// exact too, only larger.
    fn overlapping(&mut self, branches: &[NodeId]) -> Vec<(NodeId, NodeId)> {
        let producer = self.producer.take();
        let mut pairs = Vec::new();
        for (index, &first) in branches.iter().enumerate() {
            for &second in &branches[index + 1..] {
                if !matches!(
                    self.inhabit(vec![(first, true), (second, true)]),
                    Found::Empty
                ) {
                    pairs.push((first, second));
                }
            }
        }
        self.producer = producer;
        pairs
    }

    /// Each branch, without the branches it overlaps.
    fn exactly_one(&mut self, branches: &[NodeId]) -> Result<Vec<Conj>, String> {
        let pairs = self.overlapping(branches);
        let mut union = Vec::new();
        for &branch in branches {
            let mut only = (*self.form((branch, true))?).clone();
            for &(a, b) in &pairs {
                let other = if a == branch {
                    b
                } else if b == branch {
                    a
                } else {
                    continue;
                };
                only = product(&only, &self.form((other, false))?)?;
            }
            union.extend(only);
        }
        Ok(union)
    }

    /// `unevaluatedProperties`/`unevaluatedItems` of `node` as plain constraints, where the
    /// node's other applicators are all `allOf` and `$ref` (always applied).
    fn unevaluated(&self, node: NodeId) -> Unevaluated {
        let k = self.keywords(node);
        let mut out = Unevaluated::default();
        let mut chain = vec![node];
        let mut index = 0;
        while index < chain.len() {
            if let Some(member) = self.arena.keywords(chain[index]) {
                for next in member.all_of.iter().copied().chain(member.reference) {
                    if !chain.contains(&next) {
                        chain.push(next);
                    }
                }
            }
            index += 1;
        }
        let members: Vec<&Keywords> = chain
            .iter()
            .filter_map(|&n| self.arena.keywords(n))
            .collect();
        let conditional = members.iter().any(|m| {
            !m.any_of.is_empty()
                || !m.one_of.is_empty()
                || m.if_then_else.is_some()
                || !m.dependent_schemas.is_empty()
        });
        if let Some(rest) = k.unevaluated_properties
            && k.additional_properties.is_none()
        {
            let all = members[1..]
                .iter()
                .any(|m| m.additional_properties.is_some() || m.unevaluated_properties.is_some());
            if !all {
                out.properties = Some(if conditional {
                    Err("`unevaluatedProperties` beside `anyOf`, `oneOf`, `if` or `dependentSchemas` is only checked, not proved".into())
                } else {
                    Ok(Clause {
                        side: self.arena.node(node).side,
                        explicit: true,
                        properties: members
                            .iter()
                            .flat_map(|m| {
                                m.properties
                                    .iter()
                                    .map(|(name, _)| (name.clone(), self.truth))
                            })
                            .collect(),
                        patterns: members
                            .iter()
                            .flat_map(|m| {
                                m.pattern_properties.iter().map(|(p, _)| (*p, self.truth))
                            })
                            .collect(),
                        additional: Some(rest),
                        required: Vec::new(),
                    })
                });
            }
        }
        if let Some(rest) = k.unevaluated_items
            && k.items.is_none()
        {
            let all = members[1..]
                .iter()
                .any(|m| m.items.is_some() || m.unevaluated_items.is_some());
            if !all {
                out.items = Some(
                    if conditional || members.iter().any(|m| m.contains.is_some()) {
                        Err("`unevaluatedItems` beside `contains`, `anyOf`, `oneOf` or `if` is only checked, not proved".into())
                    } else {
                        Ok((
                            members
                                .iter()
                                .map(|m| m.prefix_items.len())
                                .max()
                                .unwrap_or(0),
                            rest,
                        ))
                    },
                );
            }
        }
        out
    }

    /// Whether two nodes accept the same values (plain validation).
    fn equivalent(&mut self, a: NodeId, b: NodeId) -> bool {
        let producer = self.producer.take();
        let same = matches!(self.inhabit(vec![(a, true), (b, false)]), Found::Empty)
            && matches!(self.inhabit(vec![(b, true), (a, false)]), Found::Empty);
        self.producer = producer;
        same
    }

    // ----- values for one conjunction -----

    fn probe(&mut self, conj: &Conj) -> Probe {
        if let Some(only) = &conj.only {
            return Probe {
                candidates: only
                    .iter()
                    .filter(|v| !conj.excluded.iter().any(|e| same(e, v)))
                    .cloned()
                    .collect(),
                exhaustive: true,
                reason: None,
            };
        }
        let excluded = &conj.excluded;
        match &conj.shape {
            Shape::Null => {
                if excluded.contains(&Value::Null) {
                    Probe::empty()
                } else {
                    Probe {
                        candidates: vec![Value::Null],
                        exhaustive: true,
                        reason: None,
                    }
                }
            }
            Shape::Boolean(mask) => Probe {
                candidates: [(1, false), (2, true)]
                    .into_iter()
                    .filter(|(bit, value)| {
                        mask & bit != 0 && !excluded.contains(&Value::Bool(*value))
                    })
                    .map(|(_, value)| Value::Bool(value))
                    .collect(),
                exhaustive: true,
                reason: None,
            },
            Shape::Number(number) => number_probe(number, excluded),
            Shape::String(string) => self.string_probe(string, excluded),
            Shape::Array(array) => self.array_probe(array, excluded),
            Shape::Object(object) => self.object_probe(object, excluded),
        }
    }

    fn string_probe(&self, s: &Str, excluded: &[Value]) -> Probe {
        let excluded: Vec<String> = excluded
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let patterns = &self.arena.patterns;
        let meets = |text: &str| -> Result<bool, String> {
            let length = text.chars().count() as u64;
            if length < s.min
                || s.max.is_some_and(|max| length > max)
                || excluded.iter().any(|e| e == text)
            {
                return Ok(false);
            }
            for (ids, wanted) in [(&s.matching, true), (&s.not_matching, false)] {
                for &id in ids {
                    match patterns.is_match(id, text) {
                        Some(hit) if hit != wanted => return Ok(false),
                        Some(_) => {}
                        None => {
                            return Err(format!(
                                "pattern `{}` is outside the regular subset the engine decides",
                                patterns.source(id)
                            ));
                        }
                    }
                }
            }
            for (formats, wanted) in [(&s.formats, true), (&s.not_formats, false)] {
                for format in formats {
                    match format.check(text) {
                        Some(hit) if hit != wanted => return Ok(false),
                        Some(_) => {}
                        None => {
                            return Err(format!(
                                "format `{}` is not known, so its values cannot be decided",
                                format.name()
                            ));
                        }
                    }
                }
            }
            Ok(true)
        };
        if !s.formats.is_empty() {
            for (index, first) in s.formats.iter().enumerate() {
                if s.formats[index + 1..]
                    .iter()
                    .any(|other| first.disjoint(other))
                {
                    return Probe::empty();
                }
                let (shortest, longest) = first.lengths();
                if s.max.is_some_and(|max| max < shortest)
                    || longest.is_some_and(|longest| longest < s.min)
                {
                    return Probe::empty();
                }
            }
            let mut candidates = Vec::new();
            let mut reason = None;
            for sample in s.formats.iter().flat_map(Format::samples) {
                match meets(sample) {
                    Ok(true) => candidates.push(Value::String((*sample).to_owned())),
                    Ok(false) => {}
                    Err(why) => reason = Some(why),
                }
            }
            let names: Vec<String> = s.formats.iter().map(Format::name).collect();
            if let Some(unknown) = s.formats.iter().find(|f| matches!(f, Format::Unknown(_))) {
                reason = Some(format!(
                    "format `{}` is not known, so its values cannot be decided",
                    unknown.name()
                ));
            }
            return Probe {
                exhaustive: false,
                reason: reason.or_else(|| {
                    Some(format!(
                        "no `{}` string meeting the other constraints was found",
                        names.join("` and `")
                    ))
                }),
                candidates,
            };
        }
        // Without patterns only lengths and exclusions constrain: strings of `a`s and `b`s
        // of every allowed length are enough, and no automaton is needed.
        if s.matching.is_empty() && s.not_matching.is_empty() {
            let longest = s
                .max
                .unwrap_or(s.min + excluded.len() as u64 + 1)
                .min(s.min + excluded.len() as u64 + 1);
            let mut candidates = Vec::new();
            let mut reason = None;
            'lengths: for length in s.min..=longest.max(s.min) {
                for fill in ['a', 'b', '0'] {
                    let text: String = std::iter::repeat_n(fill, length as usize).collect();
                    match meets(&text) {
                        Ok(true) => {
                            candidates.push(Value::String(text));
                            if candidates.len() >= 3 {
                                break 'lengths;
                            }
                        }
                        Ok(false) => {}
                        Err(why) => reason = Some(why),
                    }
                }
            }
            if candidates.is_empty()
                && s.not_formats.is_empty()
                && reason.is_none()
                && s.max.is_some_and(|max| max < s.min)
            {
                return Probe::empty();
            }
            if !candidates.is_empty() || s.max.is_none() || !s.not_formats.is_empty() {
                return Probe {
                    candidates,
                    exhaustive: false,
                    reason: reason.or_else(|| {
                        Some("no string outside the excluded values and formats was found".into())
                    }),
                };
            }
        }
        let spec = StringSpec {
            min_length: s.min,
            max_length: s.max,
            matching: s.matching.clone(),
            not_matching: s.not_matching.clone(),
            excluded: excluded.clone(),
        };
        match patterns.search(&spec, 12) {
            Search::Empty => Probe::empty(),
            Search::Found(found) => {
                let mut reason = None;
                let candidates: Vec<Value> = found
                    .into_iter()
                    .filter(|text| match meets(text) {
                        Ok(ok) => ok,
                        Err(why) => {
                            reason = Some(why);
                            false
                        }
                    })
                    .take(4)
                    .map(Value::String)
                    .collect();
                Probe {
                    candidates,
                    exhaustive: false,
                    reason: reason.or_else(|| {
                        Some("no string outside the excluded formats was found".into())
                    }),
                }
            }
            Search::Unknown(reason) => {
                let fallback = ["", "a", "0", "ab", "A", " ", "-", "a0", "aaaaaaaaaa"];
                let candidates = fallback
                    .iter()
                    .filter(|text| meets(text).unwrap_or(false))
                    .map(|text| Value::String((*text).to_owned()))
                    .collect();
                Probe {
                    candidates,
                    exhaustive: false,
                    reason: Some(reason),
                }
            }
        }
    }

    fn constant(&mut self, value: Value) -> NodeId {
        self.arena.constant(value)
    }

    fn array_probe(&mut self, a: &Arr, excluded: &[Value]) -> Probe {
        // Counts of one literal from one index merge; a count that allows none is a tail.
        let mut a = a.clone();
        let mut merged: Vec<Count> = Vec::new();
        for count in std::mem::take(&mut a.counts) {
            let same_set = |engine: &mut Engine, x: Lit, y: Lit| {
                x == y || (x.1 == y.1 && engine.equivalent(x.0, y.0))
            };
            let index = (0..merged.len()).find(|&i| {
                merged[i].start == count.start && same_set(self, merged[i].lit, count.lit)
            });
            match index.map(|i| &mut merged[i]) {
                Some(existing) => {
                    existing.min = existing.min.max(count.min);
                    existing.max = match (existing.max, count.max) {
                        (Some(x), Some(y)) => Some(x.min(y)),
                        (x, y) => x.or(y),
                    };
                }
                None => merged.push(count),
            }
        }
        for count in merged {
            if count.max.is_some_and(|max| max < count.min) {
                return Probe::empty();
            }
            if count.max == Some(0) {
                a.tails.push((count.start, (count.lit.0, !count.lit.1)));
            } else {
                a.counts.push(count);
            }
        }
        let a = &a;
        let base = |index: usize| -> Vec<Lit> {
            let mut lits: Vec<Lit> = a.positional.get(index).cloned().unwrap_or_default();
            lits.extend(
                a.tails
                    .iter()
                    .filter(|(start, _)| *start <= index)
                    .map(|(_, lit)| *lit),
            );
            lits
        };
        let settled = a
            .positional
            .len()
            .max(a.tails.iter().map(|(start, _)| *start).max().unwrap_or(0))
            .max(a.counts.iter().map(|c| c.start).max().unwrap_or(0));
        let mut reason: Option<String> = None;
        let note = |found: &Found, reason: &mut Option<String>| {
            if let Found::Unknown(why) = found {
                reason.get_or_insert(why.clone());
            }
        };
        // Proofs: a mandatory position with no possible item, or a count no position meets.
        let mandatory = (a.min as usize).min(settled + 1);
        for index in 0..mandatory {
            let found = self.inhabit(base(index));
            if matches!(found, Found::Empty) {
                return Probe::empty();
            }
            note(&found, &mut reason);
        }
        for count in a.counts.iter().filter(|c| c.min > 0) {
            if a.max
                .is_some_and(|max| max < count.start as u64 + count.min)
            {
                return Probe::empty();
            }
            let last = settled.max(count.start);
            let reachable = a
                .max
                .map_or(last, |max| last.min(max.saturating_sub(1) as usize));
            let mut any = false;
            for index in count.start..=reachable {
                let mut goal = base(index);
                goal.push(count.lit);
                let found = self.inhabit(goal);
                note(&found, &mut reason);
                if !matches!(found, Found::Empty) {
                    any = true;
                    break;
                }
            }
            if !any && reachable >= count.start {
                return Probe::empty();
            }
        }
        // Construction: the shortest lengths that can satisfy every count.
        let mut shortest = a.min.max(
            a.counts
                .iter()
                .map(|c| c.start as u64 + c.min)
                .max()
                .unwrap_or(0),
        );
        if a.duplicate {
            shortest = shortest.max(2);
        }
        for (length, last) in
            (shortest..shortest + 3).flat_map(|length| [(length, false), (length, true)])
        {
            if a.max.is_some_and(|max| length > max) {
                break;
            }
            let mut items: Vec<Value> = Vec::new();
            let mut complete = true;
            for index in 0..length as usize {
                if a.duplicate && index == 1 {
                    items.push(items[0].clone());
                    continue;
                }
                let mut goal = base(index);
                if a.duplicate && index == 0 {
                    goal.extend(base(1));
                }
                for count in &a.counts {
                    if index < count.start {
                        continue;
                    }
                    // The items that must meet the count go first, or last.
                    let counted = if last {
                        index + count.min as usize >= length as usize
                    } else {
                        index < count.start + count.min as usize
                    };
                    if counted {
                        goal.push(count.lit);
                    } else if count.max.is_some() {
                        goal.push((count.lit.0, !count.lit.1));
                    }
                }
                if a.unique {
                    for previous in items.clone() {
                        let node = self.constant(previous);
                        goal.push((node, false));
                    }
                }
                match self.inhabit(goal) {
                    Found::Witness(item) => items.push(item),
                    other => {
                        note(&other, &mut reason);
                        complete = false;
                        break;
                    }
                }
            }
            let candidate = Value::Array(items);
            if complete && !excluded.iter().any(|e| same(e, &candidate)) {
                return Probe::some(vec![candidate]);
            }
        }
        Probe::unknown(
            reason.unwrap_or_else(|| "no array meeting every item constraint was found".into()),
        )
    }
}

fn number_probe(n: &Num, excluded: &[Value]) -> Probe {
    if n.visibly_empty() {
        return Probe::empty();
    }
    let passes = |x: f64| -> bool {
        if !x.is_finite() {
            return false;
        }
        if let Some(low) = n.low
            && (x < low.value || (low.exclusive && x == low.value))
        {
            return false;
        }
        if let Some(high) = n.high
            && (x > high.value || (high.exclusive && x == high.value))
        {
            return false;
        }
        (!n.integer || x.fract() == 0.0)
            && (!n.fractional || x.fract() != 0.0)
            && n.multiples.iter().all(|m| is_multiple(x, *m))
            && !n.not_multiples.iter().any(|m| is_multiple(x, *m))
            && !excluded.iter().any(|e| e.as_f64() == Some(x))
    };
    let low = n.low.map(|b| b.value);
    let high = n.high.map(|b| b.value);
    let mut points: Vec<f64> = vec![0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 10.0, -10.0, 1e6, -1e6, 0.25];
    for bound in low.iter().chain(high.iter()) {
        for offset in [0.0, 1.0, -1.0, 0.5, -0.5, 0.001, -0.001, 2.0, -2.0] {
            points.push(bound + offset);
        }
        points.push(bound.floor());
        points.push(bound.ceil());
    }
    if let (Some(low), Some(high)) = (low, high) {
        let middle = (low + high) / 2.0;
        points.extend([
            middle,
            middle.floor(),
            middle.ceil(),
            low + (high - low) / 3.0,
        ]);
    }
    let mut preferred = Vec::new();
    for &m in &n.multiples {
        // Positive multiples first: validators disagree about negative ones.
        let start = low.map_or(m, |low| (low / m).ceil() * m);
        preferred.extend([start, start + m, start + 2.0 * m]);
        for step in -2..6 {
            points.push(start + step as f64 * m);
        }
        if let Some(high) = high {
            let end = (high / m).floor() * m;
            points.extend([end, end - m]);
        }
        if n.fractional {
            points.extend([m * 0.5, m * 1.5, start + m * 0.5]);
        }
    }
    let bases = points.clone();
    for &m in &n.not_multiples {
        for base in &bases {
            points.push(base + m / 2.0);
            points.push(base + 1.0);
        }
    }
    let (integer_low, integer_high) = n.integer_range();
    if integer_low.is_finite() {
        points.extend((0..64).map(|i| integer_low + i as f64));
    }
    if integer_high.is_finite() {
        points.extend((0..64).map(|i| integer_high - i as f64));
    }
    let mut candidates: Vec<f64> = Vec::new();
    // The simplest witness first: non-negative, integral, small.
    points.sort_by(|a, b| {
        let key = |x: &f64| (*x < 0.0, x.fract() != 0.0);
        key(a).cmp(&key(b)).then(a.abs().total_cmp(&b.abs()))
    });
    preferred.extend(points);
    for x in preferred {
        if passes(x) && !candidates.contains(&x) {
            candidates.push(x);
        }
        if candidates.len() >= 3 {
            break;
        }
    }
    if !candidates.is_empty() {
        return Probe::some(candidates.into_iter().filter_map(number_value).collect());
    }
    if n.integer
        && integer_low.is_finite()
        && integer_high.is_finite()
        && integer_high - integer_low <= 4096.0
    {
        let mut x = integer_low;
        let mut all = Vec::new();
        while x <= integer_high {
            if passes(x) {
                all.extend(number_value(x));
            }
            x += 1.0;
        }
        return Probe {
            candidates: all,
            exhaustive: true,
            reason: None,
        };
    }
    for &m in &n.multiples {
        if let (Some(low), Some(high)) = (n.low, n.high) {
            let mut first = (low.value / m).ceil() * m;
            if low.exclusive && first == low.value {
                first += m;
            }
            if first > high.value || (high.exclusive && first == high.value) {
                return Probe::empty();
            }
        }
    }
    Probe::unknown("no number meeting every numeric constraint was found")
}
