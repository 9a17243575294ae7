//! Old/new schema pairs with the verdict the semantics in `ops_registry::compat` demand.
//! Each row: name, OLD, NEW, backward compatible?, forward compatible?, a rule that must be
//! reported (or "" for none).

use proptest::prelude::*;
mod common;

use common::check_witness;
use schema_compat::{Verdict, compare};
use serde_json::{Value, json};

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

fn corpus() -> Vec<(&'static str, Value, Value, bool, bool, &'static str)> {
    let s = json!({"type": "string"});
    let i = json!({"type": "integer"});
    let tagged = |variants: Vec<Value>| json!({"oneOf": variants});
    let variant = |tag: &str, extra: Value| {
        let mut props = json!({"kind": {"type": "string", "const": tag}});
        props
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"type": "object", "properties": props, "required": ["kind"]})
    };
    let tree = |value_type: &str| {
        json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {
                "value": {"type": value_type},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }, "required": ["value", "children"]}}
        })
    };
    vec![
        ("identical", s.clone(), s.clone(), true, true, ""),
        // Found by fuzzing: both used to recurse without end.
        (
            "a union that refers to itself adds nothing",
            json!({"anyOf": [{"$ref": "#"}, {"type": "string"}]}),
            s.clone(),
            true,
            true,
            "",
        ),
        (
            "recursive prefix item against an open one",
            json!({"prefixItems": [{}, {"$ref": "#"}]}),
            json!({"prefixItems": [{}, {}]}),
            true,
            true,
            "",
        ),
        (
            "integer widened to number",
            i.clone(),
            json!({"type": "number"}),
            true,
            false,
            "type-widened",
        ),
        (
            "number narrowed to integer",
            json!({"type": "number"}),
            i.clone(),
            false,
            true,
            "type-narrowed",
        ),
        (
            "string to integer",
            s.clone(),
            i.clone(),
            false,
            false,
            "type-narrowed",
        ),
        (
            "type list gains null",
            s.clone(),
            json!({"type": ["string", "null"]}),
            true,
            false,
            "nullable-added",
        ),
        (
            "type list loses null",
            json!({"type": ["string", "null"]}),
            s.clone(),
            false,
            true,
            "nullable-removed",
        ),
        (
            "nullable as anyOf equals type list",
            json!({"type": ["string", "null"]}),
            json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
            true,
            true,
            "",
        ),
        (
            "nullable as oneOf equals type list",
            json!({"oneOf": [{"type": "null"}, {"type": "string"}]}),
            json!({"type": ["string", "null"]}),
            true,
            true,
            "",
        ),
        (
            "nullable ref as schemars writes Option",
            json!({"$defs": {"A": s.clone()}, "anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}),
            json!({"type": ["string", "null"]}),
            true,
            true,
            "",
        ),
        (
            "optional property added",
            obj(json!({"a": s}), &["a"]),
            obj(json!({"a": s, "b": s}), &["a"]),
            true,
            true,
            "property-added",
        ),
        (
            "required property added",
            obj(json!({"a": s}), &["a"]),
            obj(json!({"a": s, "b": s}), &["a", "b"]),
            false,
            true,
            "required-property-added",
        ),
        (
            "optional property removed",
            obj(json!({"a": s, "b": s}), &["a"]),
            obj(json!({"a": s}), &["a"]),
            true,
            true,
            "property-removed",
        ),
        (
            "required property removed",
            obj(json!({"a": s, "b": s}), &["a", "b"]),
            obj(json!({"a": s}), &["a"]),
            true,
            false,
            "property-removed",
        ),
        (
            "property became required",
            obj(json!({"a": s}), &[]),
            obj(json!({"a": s}), &["a"]),
            false,
            true,
            "property-became-required",
        ),
        (
            "property became optional",
            obj(json!({"a": s}), &["a"]),
            obj(json!({"a": s}), &[]),
            true,
            false,
            "property-became-optional",
        ),
        (
            "property removed from closed object",
            json!({"type": "object", "properties": {"a": s, "b": s}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"a": s}, "additionalProperties": false}),
            false,
            true,
            "property-removed",
        ),
        (
            "property added to closed old object",
            json!({"type": "object", "properties": {"a": s}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"a": s, "b": s}, "additionalProperties": false}),
            true,
            false,
            "property-added",
        ),
        (
            "property type changed",
            obj(json!({"a": s}), &["a"]),
            obj(json!({"a": i}), &["a"]),
            false,
            false,
            "type-narrowed",
        ),
        (
            "nested property type widened",
            obj(json!({"x": obj(json!({"n": i}), &["n"])}), &["x"]),
            obj(
                json!({"x": obj(json!({"n": {"type": "number"}}), &["n"])}),
                &["x"],
            ),
            true,
            false,
            "type-widened",
        ),
        (
            "deeply nested required added",
            obj(
                json!({"x": obj(json!({"y": obj(json!({}), &[])}), &[])}),
                &[],
            ),
            obj(
                json!({"x": obj(json!({"y": obj(json!({"z": s}), &["z"])}), &[])}),
                &[],
            ),
            false,
            true,
            "required-property-added",
        ),
        (
            "map values widened",
            json!({"type": "object", "additionalProperties": i}),
            json!({"type": "object", "additionalProperties": {"type": "number"}}),
            true,
            false,
            "type-widened",
        ),
        (
            "map closed",
            json!({"type": "object", "additionalProperties": s}),
            json!({"type": "object", "additionalProperties": false}),
            false,
            true,
            "additional-properties-closed",
        ),
        (
            "map opened",
            json!({"type": "object", "additionalProperties": false}),
            json!({"type": "object", "additionalProperties": s}),
            true,
            false,
            "additional-properties-opened",
        ),
        (
            "map values must accept the new declared property",
            json!({"type": "object", "additionalProperties": i}),
            json!({"type": "object", "properties": {"a": s}, "additionalProperties": i}),
            false,
            false,
            "type-narrowed",
        ),
        (
            "enum value added",
            json!({"type": "string", "enum": ["a", "b"]}),
            json!({"type": "string", "enum": ["a", "b", "c"]}),
            true,
            false,
            "enum-value-added",
        ),
        (
            "enum value removed",
            json!({"type": "string", "enum": ["a", "b"]}),
            json!({"type": "string", "enum": ["a"]}),
            false,
            true,
            "enum-value-removed",
        ),
        (
            "enum reordered",
            json!({"enum": ["a", "b"]}),
            json!({"enum": ["b", "a"]}),
            true,
            true,
            "",
        ),
        (
            "const changed",
            json!({"const": "v1"}),
            json!({"const": "v2"}),
            false,
            false,
            "enum-value-removed",
        ),
        (
            "enum restriction added",
            s.clone(),
            json!({"type": "string", "enum": ["a"]}),
            false,
            true,
            "enum-added",
        ),
        (
            "enum restriction removed",
            json!({"type": "string", "enum": ["a"]}),
            s.clone(),
            true,
            false,
            "enum-removed",
        ),
        (
            "oneOf of consts is an enum",
            json!({"oneOf": [{"const": "a", "description": "A"}, {"const": "b"}]}),
            json!({"type": "string", "enum": ["a", "b"]}),
            true,
            true,
            "",
        ),
        (
            "oneOf of consts gains a value",
            json!({"oneOf": [{"const": "a"}, {"const": "b"}]}),
            json!({"oneOf": [{"const": "a"}, {"const": "b"}, {"const": "c"}]}),
            true,
            false,
            "enum-value-added",
        ),
        (
            "tagged variant added",
            tagged(vec![variant("a", json!({}))]),
            tagged(vec![variant("a", json!({})), variant("b", json!({}))]),
            true,
            false,
            "type-widened",
        ),
        (
            "tagged variant removed",
            tagged(vec![variant("a", json!({})), variant("b", json!({}))]),
            tagged(vec![variant("a", json!({}))]),
            false,
            true,
            "type-narrowed",
        ),
        (
            "tagged variants reordered",
            tagged(vec![
                variant("a", json!({"x": s})),
                variant("b", json!({"y": i})),
            ]),
            tagged(vec![
                variant("b", json!({"y": i})),
                variant("a", json!({"x": s})),
            ]),
            true,
            true,
            "",
        ),
        (
            "tagged variant field changed pairs by tag",
            tagged(vec![
                variant("a", json!({"x": s})),
                variant("b", json!({"x": s})),
            ]),
            tagged(vec![
                variant("b", json!({"x": s})),
                variant("a", json!({"x": i})),
            ]),
            false,
            false,
            "type-narrowed",
        ),
        (
            "anyOf branch added",
            json!({"anyOf": [s, i]}),
            json!({"anyOf": [s, i, {"type": "boolean"}]}),
            true,
            false,
            "type-widened",
        ),
        (
            "anyOf branch removed",
            json!({"anyOf": [s, i]}),
            json!({"anyOf": [s]}),
            false,
            true,
            "type-narrowed",
        ),
        (
            "items type changed",
            json!({"type": "array", "items": s}),
            json!({"type": "array", "items": i}),
            false,
            false,
            "type-narrowed",
        ),
        (
            "items widened",
            json!({"type": "array", "items": i}),
            json!({"type": "array", "items": {"type": "number"}}),
            true,
            false,
            "type-widened",
        ),
        (
            "minItems raised",
            json!({"type": "array", "minItems": 1}),
            json!({"type": "array", "minItems": 2}),
            false,
            true,
            "min-items-raised",
        ),
        (
            "maxItems raised",
            json!({"type": "array", "maxItems": 2}),
            json!({"type": "array", "maxItems": 3}),
            true,
            false,
            "max-items-raised",
        ),
        (
            "uniqueItems added",
            json!({"type": "array"}),
            json!({"type": "array", "uniqueItems": true}),
            false,
            true,
            "unique-items-added",
        ),
        (
            "uniqueItems removed",
            json!({"type": "array", "uniqueItems": true}),
            json!({"type": "array"}),
            true,
            false,
            "unique-items-removed",
        ),
        (
            "prefixItems element changed",
            json!({"type": "array", "prefixItems": [s, i]}),
            json!({"type": "array", "prefixItems": [s, s]}),
            false,
            false,
            "type-narrowed",
        ),
        (
            "prefixItems element added constrains",
            json!({"type": "array", "prefixItems": [s]}),
            json!({"type": "array", "prefixItems": [s, i]}),
            false,
            true,
            "items-changed",
        ),
        (
            "minimum raised",
            json!({"type": "integer", "minimum": 0}),
            json!({"type": "integer", "minimum": 1}),
            false,
            true,
            "minimum-raised",
        ),
        (
            "minimum lowered",
            json!({"type": "integer", "minimum": 1}),
            json!({"type": "integer", "minimum": 0}),
            true,
            false,
            "minimum-lowered",
        ),
        (
            "maximum added",
            i.clone(),
            json!({"type": "integer", "maximum": 10}),
            false,
            true,
            "maximum-lowered",
        ),
        (
            "exclusiveMaximum removed",
            json!({"type": "number", "exclusiveMaximum": 10}),
            json!({"type": "number"}),
            true,
            false,
            "maximum-raised",
        ),
        (
            "multipleOf refined",
            json!({"type": "integer", "multipleOf": 4}),
            json!({"type": "integer", "multipleOf": 2}),
            true,
            false,
            "multiple-of-changed",
        ),
        (
            "multipleOf coarsened",
            json!({"type": "integer", "multipleOf": 2}),
            json!({"type": "integer", "multipleOf": 4}),
            false,
            true,
            "multiple-of-changed",
        ),
        (
            "multipleOf incomparable",
            json!({"type": "integer", "multipleOf": 2}),
            json!({"type": "integer", "multipleOf": 3}),
            false,
            false,
            "multiple-of-changed",
        ),
        (
            "minLength raised",
            json!({"type": "string", "minLength": 1}),
            json!({"type": "string", "minLength": 3}),
            false,
            true,
            "min-length-raised",
        ),
        (
            "maxLength raised",
            json!({"type": "string", "maxLength": 3}),
            json!({"type": "string", "maxLength": 5}),
            true,
            false,
            "max-length-raised",
        ),
        (
            "pattern added",
            s.clone(),
            json!({"type": "string", "pattern": "^a"}),
            false,
            true,
            "pattern-changed",
        ),
        (
            "an equivalent pattern is decided equal by automata",
            json!({"type": "string", "pattern": "^a"}),
            json!({"type": "string", "pattern": "^a.*"}),
            true,
            true,
            "pattern-changed",
        ),
        (
            "format removed",
            json!({"type": "string", "format": "date-time"}),
            s.clone(),
            true,
            false,
            "format-changed",
        ),
        (
            "format changed",
            json!({"type": "string", "format": "date"}),
            json!({"type": "string", "format": "date-time"}),
            false,
            false,
            "format-changed",
        ),
        (
            "annotations only",
            json!({"type": "string", "title": "A", "description": "x", "examples": ["q"]}),
            json!({"type": "string", "title": "B", "default": "d", "$comment": "c", "deprecated": true}),
            true,
            true,
            "",
        ),
        (
            "renamed $defs are the same schema",
            json!({"$ref": "#/$defs/Old", "$defs": {"Old": obj(json!({"a": s}), &["a"])}}),
            json!({"$ref": "#/$defs/New", "$defs": {"New": obj(json!({"a": s}), &["a"])}}),
            true,
            true,
            "",
        ),
        (
            "inline vs ref is the same schema",
            obj(json!({"p": {"$ref": "#/$defs/P"}}), &["p"])
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain([("$defs".to_owned(), json!({"P": s}))])
                .collect::<serde_json::Map<_, _>>()
                .into(),
            obj(json!({"p": s}), &["p"]),
            true,
            true,
            "",
        ),
        (
            "change behind a ref is found",
            json!({"$ref": "#/$defs/A", "$defs": {"A": obj(json!({"a": s}), &["a"])}}),
            json!({"$ref": "#/$defs/A", "$defs": {"A": obj(json!({"a": i}), &["a"])}}),
            false,
            false,
            "type-narrowed",
        ),
        (
            "recursive schema unchanged",
            tree("string"),
            tree("string"),
            true,
            true,
            "",
        ),
        (
            "recursive schema changed",
            tree("integer"),
            tree("number"),
            true,
            false,
            "type-widened",
        ),
        (
            "allOf wrapper around ref is transparent",
            json!({"allOf": [{"$ref": "#/$defs/A"}], "description": "d", "$defs": {"A": s}}),
            s.clone(),
            true,
            true,
            "",
        ),
        (
            "allOf of several that differ is decided",
            json!({"allOf": [obj(json!({"a": s}), &[]), obj(json!({"b": s}), &[])]}),
            json!({"allOf": [obj(json!({"a": s}), &[]), obj(json!({"b": i}), &[])]}),
            false,
            false,
            "type-narrowed",
        ),
        (
            "true to false",
            json!(true),
            json!(false),
            false,
            true,
            "type-narrowed",
        ),
        (
            "anything to string",
            json!({}),
            s.clone(),
            false,
            true,
            "type-narrowed",
        ),
        (
            "boolean unchanged",
            json!({"type": "boolean"}),
            json!({"type": "boolean"}),
            true,
            true,
            "",
        ),
        // What the keyword diff this engine replaced got wrong, one row each.
        (
            "minProperties raised",
            json!({"type": "object", "properties": {"a": s}}),
            json!({"type": "object", "properties": {"a": s}, "minProperties": 1}),
            false,
            true,
            "min-properties-raised",
        ),
        (
            "a required name absent from properties",
            obj(json!({"a": s}), &["a"]),
            obj(json!({"a": s}), &["a", "b"]),
            false,
            true,
            "required-property-added",
        ),
        (
            "dependentRequired added",
            json!({"type": "object", "properties": {"a": s, "b": s}}),
            json!({"type": "object", "properties": {"a": s, "b": s}, "dependentRequired": {"a": ["b"]}}),
            false,
            true,
            "dependencies-changed",
        ),
        (
            "propertyNames narrowed",
            json!({"type": "object", "additionalProperties": s}),
            json!({"type": "object", "additionalProperties": s, "propertyNames": {"maxLength": 3}}),
            false,
            true,
            "property-names-changed",
        ),
        (
            "unevaluatedProperties closes a map",
            json!({"type": "object", "additionalProperties": true}),
            json!({"type": "object", "unevaluatedProperties": false}),
            false,
            true,
            "",
        ),
        (
            "oneOf gains a branch overlapping another",
            json!({"oneOf": [{"type": "number"}, s]}),
            json!({"oneOf": [{"type": "number"}, s, i]}),
            false,
            true,
            "",
        ),
        (
            "int32 to int64 widens",
            json!({"type": "integer", "format": "int32"}),
            json!({"type": "integer", "format": "int64"}),
            true,
            false,
            "format-changed",
        ),
        (
            "String to DateTime asserts the format",
            s.clone(),
            json!({"type": "string", "format": "date-time"}),
            false,
            true,
            "format-changed",
        ),
        (
            "an enum next to its type narrows only values",
            json!({"type": "string", "enum": ["a", "b"]}),
            json!({"type": "string", "enum": ["a"]}),
            false,
            true,
            "enum-value-removed",
        ),
        (
            "items false is an empty array",
            json!({"type": "array", "items": false}),
            json!({"type": "array", "maxItems": 0}),
            true,
            true,
            "",
        ),
        (
            "minimum 0 to exclusiveMinimum 0 raises the minimum",
            json!({"type": "integer", "minimum": 0}),
            json!({"type": "integer", "exclusiveMinimum": 0}),
            false,
            true,
            "minimum-raised",
        ),
        (
            "exclusiveMinimum 0 is minimum 1 on integers",
            json!({"type": "integer", "exclusiveMinimum": 0}),
            json!({"type": "integer", "minimum": 1}),
            true,
            true,
            "",
        ),
        (
            "bounded integers equal an enum",
            json!({"type": "integer", "minimum": 0, "maximum": 2}),
            json!({"enum": [0, 1, 2]}),
            true,
            true,
            "",
        ),
        (
            "branches covered by several others",
            json!({"anyOf": [{"type": "integer", "maximum": 5}, {"type": "integer", "minimum": 3}]}),
            i.clone(),
            true,
            true,
            "",
        ),
        (
            "the empty schema reads as nothing",
            json!({"not": {}}),
            s.clone(),
            true,
            false,
            "",
        ),
        (
            "$id-relative references",
            json!({"$id": "https://x.example/root.json", "type": "object", "properties": {"a": {"$ref": "item.json"}}, "$defs": {"i": {"$id": "item.json", "type": "string"}}}),
            json!({"$id": "https://x.example/root.json", "type": "object", "properties": {"a": {"$ref": "item.json"}}, "$defs": {"i": {"$id": "item.json", "type": "integer"}}}),
            false,
            false,
            "type-narrowed",
        ),
        (
            "a contains item narrowed",
            json!({"type": "array", "contains": s}),
            json!({"type": "array", "contains": {"type": "string", "minLength": 1}}),
            false,
            true,
            "min-length-raised",
        ),
        (
            "pattern inclusion by automata",
            json!({"type": "string", "pattern": "^[a-z]+$"}),
            json!({"type": "string", "pattern": "^[a-z0-9]+$"}),
            true,
            false,
            "pattern-changed",
        ),
        (
            "unknown formats are undecidable",
            json!({"type": "string", "format": "x-custom"}),
            json!({"type": "string", "format": "x-other"}),
            false,
            false,
            "format-changed",
        ),
        // A typed producer writes every property it requires: a required name its
        // `properties` do not list is one it writes (of any value), not one it cannot.
        (
            "a property required without being listed",
            obj(json!({"a": s}), &["a"]),
            obj(json!({"a": s}), &["a", "b"]),
            false,
            true,
            "",
        ),
        (
            "a property required without being listed, then closed out",
            obj(json!({"a": s}), &["a", "b"]),
            json!({"type": "object", "properties": {"a": s}, "required": ["a"], "additionalProperties": false}),
            false,
            false,
            "",
        ),
        (
            "a conditional requirement removed",
            json!({"type": "object", "properties": {"a": s}, "if": {"properties": {"a": {"const": "x"}}}, "then": {"required": ["a"]}}),
            obj(json!({"a": s}), &[]),
            true,
            false,
            "",
        ),
    ]
}

#[test]
fn corpus_verdicts_hold() {
    let corpus = corpus();
    assert!(corpus.len() >= 80, "the corpus has {} pairs", corpus.len());
    let mut failures = Vec::new();
    for (name, old, new, backward, forward, rule) in corpus {
        let report = compare(&old, &new).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (verdict, producer, reader) in [
            (&report.backward, &old, &new),
            (&report.forward, &new, &old),
        ] {
            if let Verdict::Incompatible { witness } = verdict
                && let Err(why) = check_witness(producer, reader, witness)
            {
                failures.push(format!("{name}: {why}"));
            }
        }
        let rules: Vec<&str> = report.changes.iter().map(|c| c.rule.id()).collect();
        if report.backward_compatible != backward
            || report.forward_compatible != forward
            || (!rule.is_empty() && !rules.contains(&rule))
            || (rule.is_empty()
                && backward
                && forward
                && !report.changes.iter().all(|c| !c.backward && !c.forward))
        {
            failures.push(format!("{name}: expected backward={backward} forward={forward} rule={rule:?}, got {report:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn changes_carry_pointers_into_both_documents() {
    let old = json!({"type": "object", "properties": {"service": {"$ref": "#/$defs/Svc"}}, "required": ["service"], "$defs": {"Svc": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}});
    let new = json!({"type": "object", "properties": {"service": {"$ref": "#/$defs/Service"}}, "required": ["service"], "$defs": {"Service": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}});
    let report = compare(&old, &new).unwrap();
    let change = report
        .changes
        .iter()
        .find(|c| c.rule.id() == "type-narrowed")
        .unwrap();
    assert_eq!(
        change.old_pointer.as_deref(),
        Some("/$defs/Svc/properties/id")
    );
    assert_eq!(
        change.new_pointer.as_deref(),
        Some("/$defs/Service/properties/id")
    );
}

#[test]
fn unreadable_schemas_are_rejected_with_a_pointer() {
    let error = compare(
        &json!({"properties": {"a": {"$ref": "#/$defs/Nope"}}}),
        &json!({}),
    )
    .unwrap_err();
    assert_eq!(
        (error.which, error.pointer.as_str()),
        ("old", "/properties/a/$ref")
    );
    let error = compare(&json!({}), &json!({"type": "strin"})).unwrap_err();
    assert_eq!((error.which, error.pointer.as_str()), ("new", "/type"));
    let error = compare(&json!({}), &json!({"required": "a"})).unwrap_err();
    assert_eq!(error.pointer, "/required");
    assert!(compare(&json!(3), &json!({})).is_err());
}

/// Adds annotations to every schema node (not to the maps that hold schemas).
fn annotate(schema: &Value, seed: u32) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let annotated = match (key.as_str(), value) {
            ("properties" | "$defs" | "definitions", Value::Object(children)) => Value::Object(
                children
                    .iter()
                    .map(|(name, child)| (name.clone(), annotate(child, seed ^ 1)))
                    .collect(),
            ),
            ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(children)) => Value::Array(
                children
                    .iter()
                    .map(|child| annotate(child, seed ^ 2))
                    .collect(),
            ),
            ("items" | "additionalProperties", child) => annotate(child, seed ^ 3),
            _ => value.clone(),
        };
        out.insert(key.clone(), annotated);
    }
    out.insert("description".to_owned(), json!(format!("note {seed}")));
    out.insert("title".to_owned(), json!(format!("T{seed}")));
    out.insert("examples".to_owned(), json!([seed]));
    Value::Object(out)
}

proptest! {
    #[test]
    fn every_schema_is_compatible_with_itself_and_with_annotation_only_changes(index in 0usize..91, seed in any::<u32>()) {
        let corpus = corpus();
        let (name, old, new, ..) = &corpus[index % corpus.len()];
        for schema in [old, new] {
            let itself = compare(schema, schema).unwrap();
            prop_assert!(itself.backward_compatible && itself.forward_compatible, "{name}: {itself:?}");
            let annotated = annotate(schema, seed);
            let report = compare(schema, &annotated).unwrap();
            prop_assert!(report.backward_compatible && report.forward_compatible, "{name}: {report:?}");
        }
    }
}
