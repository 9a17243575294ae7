//! Values for one object conjunction. Property names fall in finitely many classes: each
//! name some clause declares is its own class, and every other name is classified by which
//! of the patterns in play it matches (a name that matches the same patterns meets the same
//! constraints). A class is searched with the pattern automata, so "no property can do
//! this" is proved by exhausting the classes, not guessed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::engine::{Engine, Found, Probe};
use crate::eval::same;
use crate::normal::{Clause, Lit, Names, Obj, Shape};
use crate::pattern::{PatternId, Search, StringSpec};

/// Patterns beyond this many are not split into classes (2^n of them).
const CLASS_LIMIT: usize = 6;

/// What finding a property name gave.
enum Named {
    Found(String, Vec<Lit>),
    Empty,
    Unknown(String),
}

/// The facts about one object conjunction that every name question needs.
struct Names_<'o> {
    object: &'o Obj,
    /// Typed producers of this object write only the names their clauses declare.
    closed: bool,
    producer_keys: Vec<String>,
    producer_patterns: Vec<PatternId>,
    /// Some clause admits only its declared names (`additionalProperties: false`).
    finite: Option<Vec<String>>,
    declared: Vec<String>,
    patterns: Vec<PatternId>,
}

fn outside(reason: &str) -> String {
    format!("pattern `{reason}` is outside the regular subset the engine decides")
}

impl Engine {
    pub(crate) fn object_probe(&mut self, o: &Obj, excluded: &[Value]) -> Probe {
        let producer = self.producer;
        let own = |clause: &&std::rc::Rc<Clause>| Some(clause.side) == producer;
        let closed =
            o.clauses.iter().any(|c| own(&c)) && !o.clauses.iter().filter(own).any(|c| c.explicit);
        let producer_keys: Vec<String> = o
            .clauses
            .iter()
            .filter(own)
            .flat_map(|c| {
                c.properties
                    .iter()
                    .map(|(k, _)| k.clone())
                    .chain(c.required.iter().cloned())
            })
            .collect();
        let producer_patterns: Vec<PatternId> = o
            .clauses
            .iter()
            .filter(own)
            .flat_map(|c| c.patterns.iter().map(|(p, _)| *p))
            .collect();
        let mut declared: Vec<String> = o
            .clauses
            .iter()
            .flat_map(|c| c.properties.iter().map(|(k, _)| k.clone()))
            .collect();
        declared.extend(o.required.iter().cloned());
        declared.extend(o.absent.iter().cloned());
        for (trigger, needed) in &o.dependent_required {
            declared.push(trigger.clone());
            declared.extend(needed.iter().cloned());
        }
        let mut patterns: Vec<PatternId> = o
            .clauses
            .iter()
            .flat_map(|c| c.patterns.iter().map(|(p, _)| *p))
            .collect();
        for exists in &o.exists {
            match &exists.names {
                Names::Key(key) => declared.push(key.clone()),
                Names::Pattern(p) => patterns.push(*p),
                Names::Other {
                    keys,
                    patterns: others,
                } => {
                    declared.extend(keys.iter().cloned());
                    patterns.extend(others.iter().copied());
                }
                Names::Meeting(_) => {}
            }
        }
        declared.sort();
        declared.dedup();
        patterns.sort();
        patterns.dedup();
        let mut finite = None;
        for clause in &o.clauses {
            if clause.patterns.is_empty()
                && let Some(node) = clause.additional
                && matches!(self.inhabit(vec![(node, true)]), Found::Empty)
            {
                finite = Some(clause.properties.iter().map(|(k, _)| k.clone()).collect());
                break;
            }
        }
        if closed && producer_patterns.is_empty() && finite.is_none() {
            finite = Some(producer_keys.clone());
        }
        let names = Names_ {
            object: o,
            closed,
            producer_keys,
            producer_patterns,
            finite,
            declared,
            patterns,
        };
        let mut reason: Option<String> = None;

        // Required properties (and what they depend on) must each be possible.
        let mut chosen: BTreeMap<String, Vec<Lit>> = BTreeMap::new();
        let mut required: Vec<String> = o.required.iter().cloned().collect();
        let mut index = 0;
        while index < required.len() {
            let name = required[index].clone();
            index += 1;
            for (trigger, needed) in &o.dependent_required {
                if *trigger == name {
                    for other in needed {
                        if !required.contains(other) {
                            required.push(other.clone());
                        }
                    }
                }
            }
        }
        for name in &required {
            match self.allowed(&names, name) {
                Ok(true) => {}
                Ok(false) => return Probe::empty(),
                Err(why) => return Probe::unknown(why),
            }
            let goal = match self.value_goal(o, name) {
                Ok(goal) => goal,
                Err(why) => return Probe::unknown(why),
            };
            match self.inhabit(goal.clone()) {
                Found::Empty => return Probe::empty(),
                Found::Unknown(why) => {
                    reason.get_or_insert(why);
                }
                Found::Witness(_) => {}
            }
            chosen.insert(name.clone(), goal);
        }
        if o.max.is_some_and(|max| (chosen.len() as u64) > max) {
            return Probe::empty();
        }
        // Each existential needs a property: one already chosen, a declared one, or a name
        // of some class.
        for exists in &o.exists {
            match self.find_name(&names, &chosen, Some(&exists.names), exists.value, true) {
                Named::Found(name, goal) => {
                    chosen.insert(name, goal);
                }
                Named::Empty => return Probe::empty(),
                Named::Unknown(why) => return Probe::unknown(reason.unwrap_or(why)),
            }
        }
        // Enough properties for `minProperties`.
        while (chosen.len() as u64) < o.min {
            match self.find_name(&names, &chosen, None, None, false) {
                Named::Found(name, goal) => {
                    chosen.insert(name, goal);
                }
                Named::Empty => return Probe::empty(),
                Named::Unknown(why) => return Probe::unknown(reason.unwrap_or(why)),
            }
        }
        // What the chosen properties depend on.
        let mut queue: Vec<String> = chosen.keys().cloned().collect();
        while let Some(name) = queue.pop() {
            for (trigger, needed) in &o.dependent_required {
                if *trigger != name {
                    continue;
                }
                for other in needed {
                    if chosen.contains_key(other) {
                        continue;
                    }
                    if !matches!(self.allowed(&names, other), Ok(true)) {
                        return Probe::unknown(reason.unwrap_or_else(|| {
                            format!("`{name}` needs `{other}`, which cannot be written")
                        }));
                    }
                    let Ok(goal) = self.value_goal(o, other) else {
                        return Probe::unknown("a dependent property's value cannot be decided");
                    };
                    chosen.insert(other.clone(), goal);
                    queue.push(other.clone());
                }
            }
        }
        if o.max.is_some_and(|max| (chosen.len() as u64) > max) {
            return Probe::unknown(reason.unwrap_or_else(|| {
                "`maxProperties` leaves no room for the properties needed".into()
            }));
        }
        let mut object = Map::new();
        for (name, goal) in chosen {
            match self.inhabit(goal) {
                Found::Witness(value) => {
                    object.insert(name, value);
                }
                Found::Empty => return Probe::unknown("a property's value became impossible"),
                Found::Unknown(why) => return Probe::unknown(why),
            }
        }
        let candidate = Value::Object(object);
        if excluded.iter().any(|e| same(e, &candidate)) {
            return Probe::unknown(
                reason.unwrap_or_else(|| "the only object found is excluded".into()),
            );
        }
        Probe {
            candidates: vec![candidate],
            exhaustive: false,
            reason,
        }
    }

    /// Whether a property of this name may be written at all.
    fn allowed(&self, names: &Names_, name: &str) -> Result<bool, String> {
        if names.object.absent.contains(name) {
            return Ok(false);
        }
        if let Some(finite) = &names.finite
            && !finite.iter().any(|k| k == name)
        {
            return Ok(false);
        }
        if names.closed && !names.producer_keys.iter().any(|k| k == name) {
            let mut matched = false;
            for &p in &names.producer_patterns {
                matched |= self
                    .arena
                    .patterns
                    .is_match(p, name)
                    .ok_or_else(|| outside(self.arena.patterns.source(p)))?;
            }
            if !matched {
                return Ok(false);
            }
        }
        self.verify(&Value::String(name.to_owned()), &names.object.names)
    }

    /// The literals a property of this name must meet.
    pub(crate) fn value_goal(&self, o: &Obj, name: &str) -> Result<Vec<Lit>, String> {
        let mut goal = Vec::new();
        for clause in &o.clauses {
            let mut matched = false;
            if let Some((_, node)) = clause.properties.iter().find(|(k, _)| k == name) {
                goal.push((*node, true));
                matched = true;
            }
            for (pattern, node) in &clause.patterns {
                let hit = self
                    .arena
                    .patterns
                    .is_match(*pattern, name)
                    .ok_or_else(|| outside(self.arena.patterns.source(*pattern)))?;
                if hit {
                    goal.push((*node, true));
                    matched = true;
                }
            }
            if !matched && let Some(node) = clause.additional {
                goal.push((node, true));
            }
        }
        Ok(goal)
    }

    fn in_set(&self, set: &Names, name: &str) -> Result<bool, String> {
        let patterns = &self.arena.patterns;
        Ok(match set {
            Names::Key(key) => key == name,
            Names::Pattern(p) => patterns
                .is_match(*p, name)
                .ok_or_else(|| outside(patterns.source(*p)))?,
            Names::Other {
                keys,
                patterns: others,
            } => {
                if keys.iter().any(|k| k == name) {
                    return Ok(false);
                }
                for p in others {
                    if patterns
                        .is_match(*p, name)
                        .ok_or_else(|| outside(patterns.source(*p)))?
                    {
                        return Ok(false);
                    }
                }
                true
            }
            Names::Meeting(lit) => self.verify(&Value::String(name.to_owned()), &[*lit])?,
        })
    }

    /// A name in `set` (any name when `None`) whose value can meet its constraints plus
    /// `value`; `Empty` only when every class of names was ruled out.
    fn find_name(
        &mut self,
        names: &Names_,
        chosen: &BTreeMap<String, Vec<Lit>>,
        set: Option<&Names>,
        value: Option<Lit>,
        reuse: bool,
    ) -> Named {
        let mut undecided: Option<String> = None;
        let try_name =
            |engine: &mut Engine, name: &str, undecided: &mut Option<String>| -> Option<Vec<Lit>> {
                let fresh = !chosen.contains_key(name);
                if !fresh && !reuse {
                    return None;
                }
                if let Some(set) = set {
                    match engine.in_set(set, name) {
                        Ok(true) => {}
                        Ok(false) => return None,
                        Err(why) => {
                            undecided.get_or_insert(why);
                            return None;
                        }
                    }
                }
                match engine.allowed(names, name) {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(why) => {
                        undecided.get_or_insert(why);
                        return None;
                    }
                }
                let mut goal = match chosen.get(name) {
                    Some(goal) => goal.clone(),
                    None => match engine.value_goal(names.object, name) {
                        Ok(goal) => goal,
                        Err(why) => {
                            undecided.get_or_insert(why);
                            return None;
                        }
                    },
                };
                goal.extend(value);
                match engine.inhabit(goal.clone()) {
                    Found::Witness(_) => Some(goal),
                    Found::Empty => None,
                    Found::Unknown(why) => {
                        undecided.get_or_insert(why);
                        None
                    }
                }
            };
        // Names already chosen first (an existential may reuse one), then declared ones.
        let mut known: Vec<String> = chosen.keys().cloned().collect();
        known.extend(
            names
                .declared
                .iter()
                .filter(|d| !chosen.contains_key(*d))
                .cloned(),
        );
        if let Some(finite) = &names.finite {
            for name in finite {
                if !known.contains(name) {
                    known.push(name.clone());
                }
            }
        }
        for name in &known {
            if let Some(goal) = try_name(self, name, &mut undecided) {
                return Named::Found(name.clone(), goal);
            }
        }
        if let Some(Names::Key(_)) = set {
            return match undecided {
                Some(why) => Named::Unknown(why),
                None => Named::Empty,
            };
        }
        if names.finite.is_some() {
            return match undecided {
                Some(why) => Named::Unknown(why),
                None => Named::Empty,
            };
        }
        // Every other name, class by class.
        if names.patterns.len() > CLASS_LIMIT {
            return Named::Unknown(
                undecided.unwrap_or_else(|| {
                    format!("more than {CLASS_LIMIT} name patterns are in play")
                }),
            );
        }
        let mut excluded: Vec<String> = names.declared.clone();
        excluded.extend(chosen.keys().cloned());
        for mask in 0..(1usize << names.patterns.len()) {
            let (mut matching, mut not_matching) = (Vec::new(), Vec::new());
            for (bit, &p) in names.patterns.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    matching.push(p);
                } else {
                    not_matching.push(p);
                }
            }
            if names.closed && !names.producer_patterns.iter().any(|p| matching.contains(p)) {
                continue;
            }
            let consistent = match set {
                Some(Names::Pattern(p)) => matching.contains(p),
                Some(Names::Other { patterns, .. }) => {
                    patterns.iter().all(|p| not_matching.contains(p))
                }
                _ => true,
            };
            if !consistent {
                continue;
            }
            let spec = StringSpec {
                matching,
                not_matching,
                excluded: excluded.clone(),
                ..StringSpec::default()
            };
            let mut lits = names.object.names.clone();
            if let Some(Names::Meeting(lit)) = set {
                lits.push(*lit);
            }
            match self.names_meeting(&lits, &spec, 3) {
                Search::Found(found) => {
                    for name in found {
                        if let Some(goal) = try_name(self, &name, &mut undecided) {
                            return Named::Found(name, goal);
                        }
                    }
                }
                Search::Empty => {}
                Search::Unknown(why) => {
                    undecided.get_or_insert(why);
                }
            }
        }
        match undecided {
            Some(why) => Named::Unknown(why),
            None => Named::Empty,
        }
    }

    /// Strings meeting string literals (`propertyNames`) and a spec.
    fn names_meeting(&mut self, lits: &[Lit], spec: &StringSpec, limit: usize) -> Search {
        let mut form = crate::normal::Conj::everything();
        for &lit in lits {
            match self.form(lit) {
                Ok(conjs) => match crate::engine::product(&form, &conjs) {
                    Ok(next) => form = next,
                    Err(why) => return Search::Unknown(why),
                },
                Err(why) => return Search::Unknown(why),
            }
        }
        let mut found: Vec<String> = Vec::new();
        let mut unknown = None;
        for conj in form {
            let Shape::String(s) = &conj.shape else {
                continue;
            };
            if !s.formats.is_empty() || !s.not_formats.is_empty() {
                unknown.get_or_insert("a format on property names".to_owned());
                continue;
            }
            let mut merged = spec.clone();
            merged.min_length = merged.min_length.max(s.min);
            merged.max_length = match (merged.max_length, s.max) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            merged.matching.extend(s.matching.iter().copied());
            merged.not_matching.extend(s.not_matching.iter().copied());
            merged.excluded.extend(
                conj.excluded
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned)),
            );
            let result = match &conj.only {
                Some(values) => {
                    let patterns = &self.arena.patterns;
                    let mut listed = Vec::new();
                    for text in values.iter().filter_map(Value::as_str) {
                        let length = text.chars().count() as u64;
                        let mut fits = length >= merged.min_length
                            && merged.max_length.is_none_or(|m| length <= m)
                            && !merged.excluded.iter().any(|e| e == text);
                        for (ids, wanted) in
                            [(&merged.matching, true), (&merged.not_matching, false)]
                        {
                            for &id in ids.iter() {
                                match patterns.is_match(id, text) {
                                    Some(hit) => fits &= hit == wanted,
                                    None => {
                                        unknown.get_or_insert(outside(patterns.source(id)));
                                        fits = false;
                                    }
                                }
                            }
                        }
                        if fits {
                            listed.push(text.to_owned());
                        }
                    }
                    if listed.is_empty() {
                        Search::Empty
                    } else {
                        Search::Found(listed)
                    }
                }
                None => self.arena.patterns.search(&merged, limit),
            };
            match result {
                Search::Found(names) => found.extend(names),
                Search::Empty if conj.doubt.is_some() => {
                    unknown.get_or_insert(conj.doubt.clone().unwrap_or_default());
                }
                Search::Empty => {}
                Search::Unknown(why) => {
                    unknown.get_or_insert(why);
                }
            }
        }
        match (found.is_empty(), unknown) {
            (false, _) => Search::Found(found),
            (true, None) => Search::Empty,
            (true, Some(why)) => Search::Unknown(why),
        }
    }
}
