//! Where a break is: the engine decides each direction for the whole schema; this walks the
//! two schemas side by side (properties by name, items, union branches by inclusion) and
//! names each keyword that changed, with the pointer in both documents. A change carries a
//! direction only where the engine found that direction broken at that pair, and every
//! broken direction gets at least one change, with the witness the engine found.

use std::collections::HashSet;

use serde_json::Value;

use crate::Change;
use crate::engine::{Engine, Found};
use crate::rule::Rule;
use crate::schema::{Bound, Keywords, NodeId, Side, types};

/// The changes between two documents, read into `engine` with roots `old` and `new`.
pub fn changes(
    engine: &mut Engine,
    (old, old_document): (NodeId, &Value),
    (new, new_document): (NodeId, &Value),
) -> Vec<Change> {
    let mut explainer = Explainer {
        engine,
        documents: (old_document, new_document),
        out: Vec::new(),
        seen: HashSet::new(),
        unpaired: Vec::new(),
    };
    explainer.pair(old, new, (true, true));
    explainer.out
}

/// Subschemas that correspond, and the rules (narrowed, widened) a break found only there
/// is named by.
type ChildPair = (NodeId, NodeId, Option<(Rule, Rule)>);

struct Explainer<'e> {
    engine: &'e mut Engine,
    documents: (&'e Value, &'e Value),
    out: Vec<Change>,
    seen: HashSet<(NodeId, NodeId)>,
    /// Union branches of the pair being explained that have no partner (`true`: old).
    unpaired: Vec<(NodeId, bool)>,
}

#[derive(Clone, Copy)]
enum Relation {
    Included,
    Overlapping,
}

/// A keyword-level difference and the directions it breaks when it breaks at all.
struct Difference {
    rule: Rule,
    message: String,
    backward: bool,
    forward: bool,
}

fn difference(rule: Rule, backward: bool, forward: bool, message: String) -> Difference {
    Difference {
        rule,
        message,
        backward,
        forward,
    }
}

impl Explainer<'_> {
    fn through_refs(&self, mut node: NodeId) -> NodeId {
        for _ in 0..32 {
            match self.engine.arena.keywords(node) {
                Some(k) if k.reference.is_some() && only_reference(k) => {
                    node = k.reference.unwrap_or(node)
                }
                _ => break,
            }
        }
        node
    }

    fn pointer(&self, node: NodeId) -> String {
        let pointer = &self.engine.arena.node(node).pointer;
        if pointer.is_empty() {
            "/".to_owned()
        } else {
            pointer.clone()
        }
    }

    /// The same JSON with no reference inside: the same schema, nothing to explain.
    fn identical(&self, old: NodeId, new: NodeId) -> bool {
        let at = |document: &Value, node: NodeId| {
            document
                .pointer(&self.engine.arena.node(node).pointer)
                .cloned()
        };
        let (Some(a), Some(b)) = (at(self.documents.0, old), at(self.documents.1, new)) else {
            return false;
        };
        fn refers(value: &Value) -> bool {
            match value {
                Value::Object(map) => {
                    map.contains_key("$ref")
                        || map.contains_key("$dynamicRef")
                        || map.values().any(refers)
                }
                Value::Array(list) => list.iter().any(refers),
                _ => false,
            }
        }
        a == b && !refers(&a)
    }

    fn related(&mut self, old: NodeId, new: NodeId, relation: Relation) -> bool {
        match relation {
            Relation::Included => {
                matches!(self.engine.difference(old, new, None), Found::Empty)
                    || matches!(self.engine.difference(new, old, None), Found::Empty)
            }
            Relation::Overlapping => !matches!(
                self.engine.inhabit(vec![(old, true), (new, true)]),
                Found::Empty
            ),
        }
    }

    /// A union branch with no partner: a kind of value that came or went.
    fn unpaired_branch(
        &mut self,
        branch: NodeId,
        old_side: bool,
        other: NodeId,
        breaks: (bool, bool),
    ) -> bool {
        let constant = self
            .engine
            .arena
            .keywords(branch)
            .and_then(|k| k.values.clone());
        let (rule, message) = match (constant, old_side) {
            (Some(values), true) => (
                Rule::EnumValueRemoved,
                format!("{} no longer allowed", Value::Array(values)),
            ),
            (Some(values), false) => (
                Rule::EnumValueAdded,
                format!("{} now allowed", Value::Array(values)),
            ),
            (None, true) => (
                Rule::TypeNarrowed,
                "a branch of the union has no counterpart".to_owned(),
            ),
            (None, false) => (Rule::TypeWidened, "the union has a new branch".to_owned()),
        };
        let breaking = if old_side { breaks.0 } else { breaks.1 };
        let (old, new) = if old_side {
            (branch, other)
        } else {
            (other, branch)
        };
        let witness = if breaking {
            let (sub, sup, producer) = if old_side {
                (branch, other, Side::Old)
            } else {
                (branch, other, Side::New)
            };
            witness_of(&self.engine.difference(sub, sup, Some(producer)))
        } else {
            None
        };
        self.out.push(Change {
            rule,
            old_pointer: Some(self.pointer(old)),
            new_pointer: Some(self.pointer(new)),
            backward: breaking && old_side,
            forward: breaking && !old_side,
            message,
            witness,
        });
        breaking
    }

    /// Returns which directions broke at this pair. `mask`: the directions that broke at
    /// every pair above, the only ones a change here may claim (a subschema can break
    /// where its context does not).
    fn pair(&mut self, old: NodeId, new: NodeId, mask: (bool, bool)) -> (bool, bool) {
        let (old, new) = (self.through_refs(old), self.through_refs(new));
        if !self.seen.insert((old, new)) || self.identical(old, new) {
            return (false, false);
        }
        let backward = self.engine.difference(old, new, Some(Side::Old));
        let forward = self.engine.difference(new, old, Some(Side::New));
        let breaks = |found: &Found| !matches!(found, Found::Empty);
        let (breaks_backward, breaks_forward) =
            (mask.0 && breaks(&backward), mask.1 && breaks(&forward));
        let mut claimed = (false, false);
        self.unpaired.clear();
        let children = self.children(old, new);
        let unpaired = std::mem::take(&mut self.unpaired);
        for (branch, old_side) in unpaired {
            let other = if old_side { new } else { old };
            let breaking =
                self.unpaired_branch(branch, old_side, other, (breaks_backward, breaks_forward));
            if old_side {
                claimed.0 |= breaking;
            } else {
                claimed.1 |= breaking;
            }
        }
        for (old_child, new_child, rename) in children {
            let before = self.out.len();
            let (b, f) = self.pair(old_child, new_child, (breaks_backward, breaks_forward));
            if let Some((narrowed, widened)) = rename {
                let here = Some(self.pointer(self.through_refs(old_child)));
                let boolean = [old_child, new_child]
                    .iter()
                    .any(|n| self.engine.arena.keywords(*n).is_none());
                for change in &mut self.out[before..] {
                    let generic = matches!(change.rule, Rule::ValuesNarrowed | Rule::ValuesWidened)
                        || (boolean
                            && matches!(change.rule, Rule::TypeNarrowed | Rule::TypeWidened));
                    if generic && change.old_pointer == here {
                        change.rule = if change.backward { narrowed } else { widened };
                    }
                }
            }
            claimed.0 |= b;
            claimed.1 |= f;
        }
        let (Some(old_k), Some(new_k)) = (
            self.engine.arena.keywords(old),
            self.engine.arena.keywords(new),
        ) else {
            return self.leftover(
                old,
                new,
                (&backward, &forward),
                (breaks_backward, breaks_forward),
                claimed,
            );
        };
        let differences = keyword_differences(old_k, new_k);
        for d in differences {
            let backward_breaks = d.backward && breaks_backward;
            let forward_breaks = d.forward && breaks_forward;
            claimed.0 |= backward_breaks;
            claimed.1 |= forward_breaks;
            let witness = if backward_breaks {
                witness_of(&backward)
            } else if forward_breaks {
                witness_of(&forward)
            } else {
                None
            };
            self.out.push(Change {
                rule: d.rule,
                old_pointer: Some(self.pointer(old)),
                new_pointer: Some(self.pointer(new)),
                backward: backward_breaks,
                forward: forward_breaks,
                message: d.message,
                witness,
            });
        }
        self.leftover(
            old,
            new,
            (&backward, &forward),
            (breaks_backward, breaks_forward),
            claimed,
        )
    }

    /// A change for each direction that broke here with no keyword or child to blame.
    fn leftover(
        &mut self,
        old: NodeId,
        new: NodeId,
        (backward, forward): (&Found, &Found),
        breaks: (bool, bool),
        claimed: (bool, bool),
    ) -> (bool, bool) {
        for (found, is_backward, was_claimed, broken) in [
            (backward, true, claimed.0, breaks.0),
            (forward, false, claimed.1, breaks.1),
        ] {
            if was_claimed || !broken {
                continue;
            }
            let boolean = [old, new]
                .iter()
                .any(|n| self.engine.arena.keywords(*n).is_none());
            let (rule, message) = match found {
                Found::Unknown(reason) => {
                    (Rule::Undecidable, format!("cannot be decided: {reason}"))
                }
                _ if boolean && is_backward => (
                    Rule::TypeNarrowed,
                    "values the old schema accepted are refused".to_owned(),
                ),
                _ if boolean => (
                    Rule::TypeWidened,
                    "values the old schema refused are accepted".to_owned(),
                ),
                _ if is_backward => (
                    Rule::ValuesNarrowed,
                    "some values the old schema accepted are refused".to_owned(),
                ),
                _ => (
                    Rule::ValuesWidened,
                    "some values the new schema accepts were refused before".to_owned(),
                ),
            };
            self.out.push(Change {
                rule,
                old_pointer: Some(self.pointer(old)),
                new_pointer: Some(self.pointer(new)),
                backward: is_backward,
                forward: !is_backward,
                message,
                witness: witness_of(found),
            });
        }
        breaks
    }

    /// Subschemas that correspond: same property, items, extra properties, union branches
    /// related by inclusion; with the rules a break found only there is named by.
    fn children(&mut self, old: NodeId, new: NodeId) -> Vec<ChildPair> {
        let (Some(o), Some(n)) = (
            self.engine.arena.keywords(old),
            self.engine.arena.keywords(new),
        ) else {
            return Vec::new();
        };
        let mut pairs = Vec::new();
        for (name, old_child) in &o.properties {
            if let Some((_, new_child)) = n.properties.iter().find(|(other, _)| other == name) {
                pairs.push((*old_child, *new_child, None));
            }
        }
        for (a, b) in o.prefix_items.iter().zip(&n.prefix_items) {
            pairs.push((*a, *b, None));
        }
        if o.all_of.len() == n.all_of.len() {
            for (a, b) in o.all_of.iter().zip(&n.all_of) {
                pairs.push((*a, *b, None));
            }
        }
        for (name, old_child) in &o.dependent_schemas {
            if let Some((_, new_child)) =
                n.dependent_schemas.iter().find(|(other, _)| other == name)
            {
                pairs.push((*old_child, *new_child, None));
            }
        }
        if let (Some((oi, ot, oe)), Some((ni, nt, ne))) = (o.if_then_else, n.if_then_else) {
            pairs.push((oi, ni, None));
            for (a, b) in [(ot, nt), (oe, ne)] {
                if let (Some(a), Some(b)) = (a, b) {
                    pairs.push((a, b, None));
                }
            }
        }
        let extra = Some((
            Rule::AdditionalPropertiesClosed,
            Rule::AdditionalPropertiesOpened,
        ));
        let names = Some((Rule::PropertyNamesChanged, Rule::PropertyNamesChanged));
        for (a, b, rename) in [
            (o.items, n.items, None),
            (o.additional_properties, n.additional_properties, extra),
            (o.contains, n.contains, None),
            (o.property_names, n.property_names, names),
            (o.not, n.not, None),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                pairs.push((a, b, rename));
            }
        }
        for (name, new_child) in &n.properties {
            if !o.properties.iter().any(|(other, _)| other == name)
                && let Some(extra) = o.additional_properties
            {
                pairs.push((extra, *new_child, None));
            }
        }
        for (name, old_child) in &o.properties {
            if !n.properties.iter().any(|(other, _)| other == name)
                && let Some(extra) = n.additional_properties
            {
                pairs.push((*old_child, extra, None));
            }
        }
        let (old_branches, new_branches) = (branches(o), branches(n));
        if old_branches.len() == 1 && new_branches.is_empty() {
            pairs.push((old_branches[0], new, None));
        } else if new_branches.len() == 1 && old_branches.is_empty() {
            pairs.push((old, new_branches[0], None));
        } else if !old_branches.is_empty() && !new_branches.is_empty() {
            // Branches pair by inclusion first, then by overlap (a tagged variant whose
            // fields changed still meets its old self on the tag).
            let mut used = vec![false; new_branches.len()];
            let mut paired = vec![false; old_branches.len()];
            for related in [Relation::Included, Relation::Overlapping] {
                for (index, &old_branch) in old_branches.iter().enumerate() {
                    if paired[index] {
                        continue;
                    }
                    let partner = (0..new_branches.len())
                        .filter(|&i| !used[i])
                        .find(|&i| self.related(old_branch, new_branches[i], related));
                    if let Some(i) = partner {
                        used[i] = true;
                        paired[index] = true;
                        pairs.push((old_branch, new_branches[i], None));
                    }
                }
            }
            self.unpaired = old_branches
                .iter()
                .zip(&paired)
                .filter(|(_, paired)| !**paired)
                .map(|(branch, _)| (*branch, true))
                .chain(
                    new_branches
                        .iter()
                        .zip(&used)
                        .filter(|(_, used)| !**used)
                        .map(|(branch, _)| (*branch, false)),
                )
                .collect();
        }
        pairs
    }
}

fn witness_of(found: &Found) -> Option<Value> {
    match found {
        Found::Witness(value) => Some(value.clone()),
        _ => None,
    }
}

fn only_reference(k: &Keywords) -> bool {
    k.reference.is_some() && k.is_only_reference()
}

fn branches(k: &Keywords) -> Vec<NodeId> {
    if !k.one_of.is_empty() {
        k.one_of.clone()
    } else {
        k.any_of.clone()
    }
}

/// The integers or numbers a bound admits, comparable: for integers an exclusive bound is
/// the next inclusive one.
fn effective(bound: Option<Bound>, integer: bool, lower: bool) -> Option<(f64, bool)> {
    let bound = bound?;
    if integer {
        let value = if lower {
            let c = bound.value.ceil();
            if bound.exclusive && c == bound.value {
                c + 1.0
            } else {
                c
            }
        } else {
            let f = bound.value.floor();
            if bound.exclusive && f == bound.value {
                f - 1.0
            } else {
                f
            }
        };
        Some((value, false))
    } else {
        Some((bound.value, bound.exclusive))
    }
}

/// Orders lower bounds by how much they exclude: a higher value, or the same value
/// exclusive, is tighter.
fn tighter_lower(a: (f64, bool), b: (f64, bool)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 && !b.1)
}

fn tighter_upper(a: (f64, bool), b: (f64, bool)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 && !b.1)
}

fn show(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

fn keyword_differences(o: &Keywords, n: &Keywords) -> Vec<Difference> {
    let mut out = Vec::new();
    // With `const`/`enum` the types that count are those of the values (an integral number
    // counts as `integer` only).
    let effective_types = |k: &Keywords| {
        let declared = k.types.unwrap_or(types::ALL);
        match &k.values {
            Some(values) => {
                let of_values = values.iter().fold(0, |set, v| {
                    let bits = crate::eval::type_of(v);
                    set | if bits & types::INTEGER != 0 {
                        types::INTEGER
                    } else {
                        bits
                    }
                });
                let declared = if declared & types::NUMBER != 0 {
                    declared | types::INTEGER
                } else {
                    declared
                };
                declared & of_values
            }
            None => declared,
        }
    };
    let (old_types, new_types) = (effective_types(o), effective_types(n));
    let norm = |set: u8| {
        if set & types::NUMBER != 0 {
            set | types::INTEGER
        } else {
            set
        }
    };
    let (old_types, new_types) = (norm(old_types), norm(new_types));
    let lost = old_types & !new_types;
    let gained = new_types & !old_types;
    if lost & types::NULL != 0 {
        out.push(difference(
            Rule::NullableRemoved,
            true,
            false,
            "null is no longer allowed".into(),
        ));
    }
    if gained & types::NULL != 0 {
        out.push(difference(
            Rule::NullableAdded,
            false,
            true,
            "null is now allowed".into(),
        ));
    }
    let names = |set: u8| types::names(set & !types::NULL).join("`, `");
    if lost & !types::NULL != 0 {
        out.push(difference(
            Rule::TypeNarrowed,
            true,
            false,
            format!("`{}` values are no longer allowed", names(lost)),
        ));
    }
    if gained & !types::NULL != 0 {
        out.push(difference(
            Rule::TypeWidened,
            false,
            true,
            format!("`{}` values are now allowed", names(gained)),
        ));
    }
    match (&o.values, &n.values) {
        (None, Some(values)) => out.push(difference(
            Rule::EnumAdded,
            true,
            false,
            format!("values are now limited to {}", Value::Array(values.clone())),
        )),
        (Some(values), None) => out.push(difference(
            Rule::EnumRemoved,
            false,
            true,
            format!(
                "values are no longer limited to {}",
                Value::Array(values.clone())
            ),
        )),
        (Some(old), Some(new)) => {
            let removed: Vec<Value> = old
                .iter()
                .filter(|v| !new.iter().any(|w| crate::eval::same(v, w)))
                .cloned()
                .collect();
            let added: Vec<Value> = new
                .iter()
                .filter(|v| !old.iter().any(|w| crate::eval::same(v, w)))
                .cloned()
                .collect();
            if !removed.is_empty() {
                out.push(difference(
                    Rule::EnumValueRemoved,
                    true,
                    false,
                    format!("{} no longer allowed", Value::Array(removed)),
                ));
            }
            if !added.is_empty() {
                out.push(difference(
                    Rule::EnumValueAdded,
                    false,
                    true,
                    format!("{} now allowed", Value::Array(added)),
                ));
            }
        }
        (None, None) => {}
    }
    let integer = |k: &Keywords| {
        k.types
            .is_some_and(|t| t & types::NUMBER == 0 && t & types::INTEGER != 0)
    };
    let (old_low, new_low) = (
        effective(o.minimum, integer(o), true),
        effective(n.minimum, integer(n), true),
    );
    match (old_low, new_low) {
        (None, Some(b)) => out.push(difference(
            Rule::MinimumRaised,
            true,
            false,
            format!("a lower bound of {} was added", show(b.0)),
        )),
        (Some(a), None) => out.push(difference(
            Rule::MinimumLowered,
            false,
            true,
            format!("the lower bound {} was removed", show(a.0)),
        )),
        (Some(a), Some(b)) if tighter_lower(b, a) => out.push(difference(
            Rule::MinimumRaised,
            true,
            false,
            format!("the lower bound rose from {} to {}", show(a.0), show(b.0)),
        )),
        (Some(a), Some(b)) if tighter_lower(a, b) => out.push(difference(
            Rule::MinimumLowered,
            false,
            true,
            format!("the lower bound fell from {} to {}", show(a.0), show(b.0)),
        )),
        _ => {}
    }
    let (old_high, new_high) = (
        effective(o.maximum, integer(o), false),
        effective(n.maximum, integer(n), false),
    );
    match (old_high, new_high) {
        (None, Some(b)) => out.push(difference(
            Rule::MaximumLowered,
            true,
            false,
            format!("an upper bound of {} was added", show(b.0)),
        )),
        (Some(a), None) => out.push(difference(
            Rule::MaximumRaised,
            false,
            true,
            format!("the upper bound {} was removed", show(a.0)),
        )),
        (Some(a), Some(b)) if tighter_upper(b, a) => out.push(difference(
            Rule::MaximumLowered,
            true,
            false,
            format!("the upper bound fell from {} to {}", show(a.0), show(b.0)),
        )),
        (Some(a), Some(b)) if tighter_upper(a, b) => out.push(difference(
            Rule::MaximumRaised,
            false,
            true,
            format!("the upper bound rose from {} to {}", show(a.0), show(b.0)),
        )),
        _ => {}
    }
    if o.multiple_of != n.multiple_of {
        out.push(difference(
            Rule::MultipleOfChanged,
            true,
            true,
            format!(
                "`multipleOf` changed from {:?} to {:?}",
                o.multiple_of, n.multiple_of
            ),
        ));
    }
    let mut counts =
        |old: Option<u64>, new: Option<u64>, min: bool, rules: (Rule, Rule), what: &str| {
            let (old, new) = (
                old.unwrap_or(if min { 0 } else { u64::MAX }),
                new.unwrap_or(if min { 0 } else { u64::MAX }),
            );
            let shown = |v: u64| {
                if v == u64::MAX {
                    "none".to_owned()
                } else {
                    v.to_string()
                }
            };
            if old == new {
                return;
            }
            let narrower = if min { new > old } else { new < old };
            let rule = if new > old { rules.0 } else { rules.1 };
            out.push(difference(
                rule,
                narrower,
                !narrower,
                format!("{what} went from {} to {}", shown(old), shown(new)),
            ));
        };
    counts(
        o.min_length,
        n.min_length,
        true,
        (Rule::MinLengthRaised, Rule::MinLengthLowered),
        "the shortest length",
    );
    counts(
        o.max_length,
        n.max_length,
        false,
        (Rule::MaxLengthRaised, Rule::MaxLengthLowered),
        "the longest length",
    );
    counts(
        o.min_items,
        n.min_items,
        true,
        (Rule::MinItemsRaised, Rule::MinItemsLowered),
        "the fewest items",
    );
    counts(
        o.max_items,
        n.max_items,
        false,
        (Rule::MaxItemsRaised, Rule::MaxItemsLowered),
        "the most items",
    );
    counts(
        o.min_properties,
        n.min_properties,
        true,
        (Rule::MinPropertiesRaised, Rule::MinPropertiesLowered),
        "the fewest properties",
    );
    counts(
        o.max_properties,
        n.max_properties,
        false,
        (Rule::MaxPropertiesRaised, Rule::MaxPropertiesLowered),
        "the most properties",
    );
    if o.pattern.is_some() || n.pattern.is_some() {
        let same_pattern = o.pattern == n.pattern;
        if !same_pattern {
            out.push(difference(
                Rule::PatternChanged,
                true,
                true,
                "the pattern changed".into(),
            ));
        }
    }
    if o.format != n.format {
        let name = |f: &Option<crate::format::Format>| {
            f.as_ref()
                .map_or("none".to_owned(), |f| format!("`{}`", f.name()))
        };
        out.push(difference(
            Rule::FormatChanged,
            true,
            true,
            format!(
                "the format went from {} to {}",
                name(&o.format),
                name(&n.format)
            ),
        ));
    }
    if o.unique_items != n.unique_items {
        let rule = if n.unique_items {
            Rule::UniqueItemsAdded
        } else {
            Rule::UniqueItemsRemoved
        };
        out.push(difference(
            rule,
            n.unique_items,
            !n.unique_items,
            "`uniqueItems` changed".into(),
        ));
    }
    if o.prefix_items.len() != n.prefix_items.len()
        || o.contains.is_some() != n.contains.is_some()
        || o.min_contains != n.min_contains
        || o.max_contains != n.max_contains
    {
        out.push(difference(
            Rule::ItemsChanged,
            true,
            true,
            "the tuple or `contains` constraints changed".into(),
        ));
    }
    for (name, _) in &o.properties {
        if !n.properties.iter().any(|(other, _)| other == name) {
            out.push(difference(
                Rule::PropertyRemoved,
                true,
                false,
                format!("`{name}` is no longer declared"),
            ));
        }
    }
    for (name, _) in &n.properties {
        if !o.properties.iter().any(|(other, _)| other == name) {
            out.push(difference(
                Rule::PropertyAdded,
                false,
                true,
                format!("`{name}` was added"),
            ));
        }
    }
    for name in &n.required {
        if !o.required.contains(name) {
            let declared_before = o.properties.iter().any(|(other, _)| other == name);
            let rule = if declared_before {
                Rule::PropertyBecameRequired
            } else {
                Rule::RequiredPropertyAdded
            };
            out.push(difference(
                rule,
                true,
                false,
                format!("`{name}` is now required"),
            ));
        }
    }
    for name in &o.required {
        if !n.required.contains(name) {
            out.push(difference(
                Rule::PropertyBecameOptional,
                false,
                true,
                format!("`{name}` is no longer required"),
            ));
        }
    }
    match (o.additional_properties, n.additional_properties) {
        (None, Some(_)) => out.push(difference(
            Rule::AdditionalPropertiesClosed,
            true,
            false,
            "undeclared properties are now constrained".into(),
        )),
        (Some(_), None) => out.push(difference(
            Rule::AdditionalPropertiesOpened,
            false,
            true,
            "undeclared properties are no longer constrained".into(),
        )),
        _ => {}
    }
    if o.unevaluated_properties.is_some() != n.unevaluated_properties.is_some()
        || o.unevaluated_items.is_some() != n.unevaluated_items.is_some()
    {
        out.push(difference(
            Rule::AdditionalPropertiesClosed,
            true,
            true,
            "`unevaluatedProperties` or `unevaluatedItems` changed".into(),
        ));
    }
    let pattern_sources = |k: &Keywords| {
        k.pattern_properties
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
    };
    if pattern_sources(o) != pattern_sources(n)
        || o.property_names.is_some() != n.property_names.is_some()
    {
        out.push(difference(
            Rule::PropertyNamesChanged,
            true,
            true,
            "the allowed property names changed".into(),
        ));
    }
    let dependency_names = |k: &Keywords| {
        let mut names: Vec<String> = k
            .dependent_required
            .iter()
            .map(|(n, d)| format!("{n}:{}", d.join(",")))
            .collect();
        names.extend(k.dependent_schemas.iter().map(|(n, _)| n.clone()));
        names
    };
    if dependency_names(o) != dependency_names(n) {
        out.push(difference(
            Rule::DependenciesChanged,
            true,
            true,
            "property dependencies changed".into(),
        ));
    }
    let shape = |k: &Keywords| {
        (
            k.all_of.len(),
            k.not.is_some(),
            k.if_then_else.is_some(),
            k.reference.is_some(),
        )
    };
    if shape(o) != shape(n) {
        out.push(difference(
            Rule::CompositionChanged,
            true,
            true,
            "the composition (`allOf`, `anyOf`, `oneOf`, `not`, `if`) changed".into(),
        ));
    }
    out
}
