//! The algebra of inclusion on generated schemas: reflexive, transitive, and in agreement
//! with sampling (values drawn for A and checked against B by the independent `jsonschema`
//! crate): a sampled value of A that B refuses means A ⊄ B, and every witness of A ⊄ B is
//! such a value.

mod common;

use common::{check_witness, validates};
use proptest::prelude::*;
use schema_compat::{Verdict, includes, instances};
use serde_json::{Value, json};

/// Schemas without references (so an independent validator can run any of them), over a
/// small vocabulary so that pairs often relate.
fn schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "string", "integer", "number", "boolean", "null", "object", "array"
        ])
        .prop_map(|t| json!({"type": t})),
        Just(json!(true)),
        Just(json!({})),
        (0i64..4).prop_map(|n| json!({"const": n})),
        prop::sample::select(vec!["^a", "^a+$", "b", "^[ab]*$"])
            .prop_map(|p| json!({"type": "string", "pattern": p})),
        (0u64..3).prop_map(|n| json!({"type": "string", "maxLength": n})),
        (
            -2i64..3,
            prop::sample::select(vec![
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum"
            ])
        )
            .prop_map(|(n, k)| json!({"type": "integer", k: n})),
        (1u64..4).prop_map(|m| json!({"type": "integer", "multipleOf": m})),
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", ""]), 1..3)
            .prop_map(|v| json!({"enum": v})),
        (0u64..3).prop_map(|n| json!({"type": "object", "minProperties": n})),
        (0u64..2).prop_map(|n| json!({"type": "object", "maxProperties": n})),
        prop::sample::select(vec!["^a", "^[ab]$", "b"])
            .prop_map(|p| json!({"type": "object", "propertyNames": {"pattern": p}})),
        Just(json!({"type": "object", "dependentRequired": {"a": ["b"]}})),
        Just(json!({"type": "array", "uniqueItems": true})),
        (0u64..3).prop_map(|n| json!({"type": "array", "minItems": n})),
        prop::sample::select(vec!["date", "uuid", "int8", "uint8"]).prop_map(|f| {
            let kind = if f.starts_with('u') || f.starts_with('i') {
                "integer"
            } else {
                "string"
            };
            json!({"type": kind, "format": f})
        }),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"anyOf": v})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"oneOf": v})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"allOf": v})),
            inner.clone().prop_map(|v| json!({"not": v})),
            inner.clone().prop_map(|v| json!({"type": "array", "items": v})),
            (inner.clone(), 0u64..3).prop_map(|(v, n)| json!({"type": "array", "contains": v, "maxItems": n + 1})),
            (inner.clone(), inner.clone(), prop::collection::vec(prop::sample::select(vec!["a", "b"]), 0..2))
                .prop_map(|(a, b, required)| json!({"type": "object", "properties": {"a": a, "b": b}, "required": required})),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| json!({"type": "array", "prefixItems": [a], "items": b})),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, t, e)| json!({"if": c, "then": t, "else": e})),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| json!({"type": "object", "patternProperties": {"^a": a, "b$": b}})),
            (inner.clone(), 1u64..3).prop_map(|(v, n)| json!({"type": "array", "contains": v, "minContains": n})),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| json!({"type": "object", "properties": {"a": a}, "dependentSchemas": {"a": {"properties": {"b": b}}}})),
            (inner.clone(), any::<bool>()).prop_map(|(v, closed)| {
                if closed {
                    json!({"type": "object", "properties": {"a": v}, "additionalProperties": false})
                } else {
                    json!({"type": "object", "additionalProperties": v})
                }
            }),
        ]
    })
}

/// Values to sample with: small values of every type, and the schema's own samples.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..5).prop_map(|n| json!(n)),
        Just(json!(0.5)),
        Just(json!(300)),
        prop::sample::select(vec![
            "",
            "a",
            "aa",
            "ab",
            "b",
            "ba",
            "2024-01-01",
            "00000000-0000-0000-0000-000000000000"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn verdict(sup: &Value, sub: &Value) -> Verdict {
    includes(sup, sub).expect("generated schemas are readable")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_is_reflexive(a in schema()) {
        let answer = verdict(&a, &a);
        prop_assert!(!matches!(answer, Verdict::Incompatible { .. }), "{a}: {answer:?}");
    }

    #[test]
    fn inclusion_is_transitive(a in schema(), b in schema(), c in schema()) {
        if verdict(&b, &a).is_compatible() && verdict(&c, &b).is_compatible() {
            let answer = verdict(&c, &a);
            prop_assert!(!matches!(answer, Verdict::Incompatible { .. }), "{a} ⊆ {b} ⊆ {c}, yet {answer:?}");
        }
    }

    #[test]
    fn inclusion_agrees_with_sampling(a in schema(), b in schema(), drawn in prop::collection::vec(value(), 8)) {
        let answer = verdict(&b, &a);
        if let Verdict::Incompatible { witness } = &answer {
            prop_assert!(validates(&a, witness).unwrap() && !validates(&b, witness).unwrap(), "{a} ⊄ {b}: witness {witness} does not hold");
        }
        let mut samples = instances::samples(&a);
        samples.extend(drawn);
        for sample in samples {
            if validates(&a, &sample).unwrap() && !validates(&b, &sample).unwrap() {
                prop_assert!(!answer.is_compatible(), "{a} ⊆ {b} was answered, but {sample} is in one and not the other");
            }
        }
    }
}

/// Soundness is the property above; this is completeness: nearly every generated schema is
/// decided equal to itself (the rest are answered "cannot be decided", never "no").
#[test]
fn almost_every_schema_is_decided_equal_to_itself() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let (mut decided, total) = (0, 2000);
    for _ in 0..total {
        let a = schema().new_tree(&mut runner).expect("a schema").current();
        if verdict(&a, &a).is_compatible() {
            decided += 1;
        }
    }
    assert!(decided * 100 >= total * 99, "{decided} of {total} decided");
}

#[test]
fn typed_producers_witnesses_hold_on_the_own_corpus_shapes() {
    let old = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
    let new = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]});
    let report = schema_compat::compare(&old, &new).unwrap();
    let witness = report
        .backward
        .witness()
        .expect("a new required property breaks old events");
    check_witness(&old, &new, witness).unwrap();
    assert!(report.forward.is_compatible(), "{report:?}");
}
