//! Fuzzing the compatibility engine with arbitrary schema-shaped JSON: whatever it is
//! given, it answers a report or a located error, and never panics or loops. Keys are
//! drawn from the JSON Schema vocabulary (with wrong-typed values too), `$ref`s point at
//! real, missing and self-referencing places, so the deep paths are reached.

use proptest::prelude::*;
use schema_compat::compare;
use serde_json::{Map, Value, json};

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "enum",
    "const",
    "$ref",
    "$defs",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "title",
    "x-unknown",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(|n| json!(n)),
        (-2.5f64..2.5).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "object",
            "string",
            "integer",
            "number",
            "null",
            "array",
            "boolean",
            "#",
            "#/$defs/A",
            "#/$defs/B",
            "#/properties/a",
            "#/nope",
            "a",
            "b",
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn schema_like() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYWORDS), inner.clone()), 0..6).prop_map(
                |entries| {
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(key, value)| (key.to_owned(), value))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
            prop::collection::vec(
                (prop::sample::select(vec!["a", "b", "A", "B"]), inner),
                0..3
            )
            .prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect(),
                )
            }),
        ]
    })
}

/// Places the fuzzed parts where a schema has them, so `$defs` and `properties` are maps.
fn document(
    root: Value,
    definitions: Vec<(String, Value)>,
    properties: Vec<(String, Value)>,
) -> Value {
    let mut document = match root {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("items".to_owned(), other);
            map
        }
    };
    document.insert(
        "$defs".to_owned(),
        Value::Object(definitions.into_iter().collect()),
    );
    document.insert(
        "properties".to_owned(),
        Value::Object(properties.into_iter().collect()),
    );
    Value::Object(document)
}

fn named() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["A", "B", "a", "b"]).prop_map(str::to_owned),
            schema_like(),
        ),
        0..3,
    )
}

fn fuzzed_document() -> impl Strategy<Value = Value> {
    (schema_like(), named(), named()).prop_map(|(root, defs, props)| document(root, defs, props))
}

/// One keyword with a value of the right type, so most documents are readable and the
/// comparison itself (not only input checking) is fuzzed.
fn typed_keyword(inner: BoxedStrategy<Value>) -> impl Strategy<Value = (String, Value)> {
    let types = prop::sample::select(vec![
        "object", "string", "integer", "number", "null", "array", "boolean",
    ]);
    let names = || prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3);
    let bound = || (0u8..6).prop_map(|n| json!(n));
    prop_oneof![
        types.clone().prop_map(|t| ("type".to_owned(), json!(t))),
        prop::collection::vec(types, 1..3).prop_map(|t| ("type".to_owned(), json!(t))),
        prop::collection::vec(
            (prop::sample::select(vec!["a", "b", "c"]), inner.clone()),
            0..3
        )
        .prop_map(|props| (
            "properties".to_owned(),
            Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        )),
        names().prop_map(|n| ("required".to_owned(), json!(n))),
        prop_oneof![any::<bool>().prop_map(Value::Bool), inner.clone()]
            .prop_map(|v| ("additionalProperties".to_owned(), v)),
        inner.clone().prop_map(|v| ("items".to_owned(), v)),
        prop::collection::vec(inner.clone(), 0..3)
            .prop_map(|v| ("prefixItems".to_owned(), json!(v))),
        (
            prop::sample::select(vec!["anyOf", "oneOf", "allOf"]),
            prop::collection::vec(inner.clone(), 1..4)
        )
            .prop_map(|(k, v)| (k.to_owned(), json!(v))),
        inner.prop_map(|v| ("not".to_owned(), v)),
        prop::collection::vec(leaf(), 1..4).prop_map(|v| ("enum".to_owned(), json!(v))),
        leaf().prop_map(|v| ("const".to_owned(), v)),
        prop::sample::select(vec!["#/$defs/A", "#/$defs/B", "#"])
            .prop_map(|r| ("$ref".to_owned(), json!(r))),
        (
            prop::sample::select(vec![
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "multipleOf",
                "minLength",
                "maxLength",
                "minItems",
                "maxItems",
            ]),
            bound()
        )
            .prop_map(|(k, v)| (k.to_owned(), v)),
        any::<bool>().prop_map(|b| ("uniqueItems".to_owned(), json!(b))),
        prop::sample::select(vec!["^a", "^b$"]).prop_map(|p| ("pattern".to_owned(), json!(p))),
        prop::sample::select(vec!["date-time", "uuid"])
            .prop_map(|f| ("format".to_owned(), json!(f))),
    ]
}

fn typed_schema() -> impl Strategy<Value = Value> {
    let leaf = prop::sample::select(vec!["object", "string", "integer", "null"])
        .prop_map(|t| json!({"type": t}));
    leaf.prop_recursive(4, 48, 4, |inner| {
        prop::collection::vec(typed_keyword(inner.boxed()), 0..4)
            .prop_map(|keywords| Value::Object(keywords.into_iter().collect()))
    })
}

fn typed_document() -> impl Strategy<Value = Value> {
    (typed_schema(), typed_schema(), typed_schema()).prop_map(|(root, a, b)| {
        let mut root = match root {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        root.insert("$defs".to_owned(), json!({"A": a, "B": b}));
        Value::Object(root)
    })
}

fn any_document() -> impl Strategy<Value = Value> {
    prop_oneof![fuzzed_document(), typed_document()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_never_panics_on_arbitrary_schemas(old in schema_like(), new in schema_like()) {
        let _ = compare(&old, &new);
    }

    #[test]
    fn the_engine_never_panics_on_documents_with_definitions(old in any_document(), new in any_document()) {
        // On a thread of its own, so a comparison that never ends fails the test with its
        // input instead of stalling CI.
        let (sender, receiver) = std::sync::mpsc::channel();
        let (o, n) = (old.clone(), new.clone());
        std::thread::spawn(move || sender.send(compare(&o, &n)));
        let answer = receiver
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the comparison does not end:\nold {old}\nnew {new}"));
        match answer {
            Ok(report) => {
                // A verdict must agree with its own list of changes.
                prop_assert_eq!(report.backward_compatible, !report.changes.iter().any(|c| c.backward));
                prop_assert_eq!(report.forward_compatible, !report.changes.iter().any(|c| c.forward));
            }
            Err(error) => prop_assert!(error.pointer.is_empty() || error.pointer.starts_with('/'), "{error}"),
        }
    }

    #[test]
    fn a_readable_schema_is_compatible_with_itself(schema in any_document()) {
        if let Ok(report) = compare(&schema, &schema) {
            prop_assert!(report.backward_compatible && report.forward_compatible, "{schema}\n{report:?}");
        }
    }
}
