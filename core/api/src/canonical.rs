//! Canonical JSON per RFC 8785 (JCS): sorted keys by UTF-16 code units, ECMAScript number
//! forms, minimal string escapes. `serde_json_canonicalizer` implements it (numbers via
//! `ryu-js`); the tests below hold it to the RFC's own examples.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("cannot write canonical JSON: {0}")]
pub struct CanonicalError(#[from] serde_json::Error);

/// The RFC 8785 bytes of `value`.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    Ok(serde_json_canonicalizer::to_vec(&value)?)
}

/// The RFC 8785 text of `value`.
pub fn to_canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    Ok(serde_json_canonicalizer::to_string(&value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::payload_hash;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn canonical_of_text(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        to_canonical_string(&value).unwrap()
    }

    /// RFC 8785 section 3.2.2 (sorting and whitespace) and 3.2.3 (unicode escapes).
    #[test]
    fn rfc8785_main_example() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        assert_eq!(
            canonical_of_text(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 section 3.2.3: properties sort by UTF-16 code units, not by UTF-8 bytes.
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected_order = [
            "\r",
            "1",
            "\u{80}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ];
        let canonical: serde_json::Map<String, Value> =
            serde_json::from_str(&canonical_of_text(input)).unwrap();
        let text = canonical_of_text(input);
        let positions: Vec<usize> = expected_order
            .iter()
            .map(|key| text.find(&to_canonical_string(key).unwrap()).unwrap())
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
        assert_eq!(canonical.len(), 7);
    }

    /// RFC 8785 appendix B: IEEE-754 values and their ECMAScript serialisation.
    #[test]
    fn rfc8785_number_examples() {
        let cases = [
            (0.0_f64, "0"),
            (-0.0, "0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992"),
            (295147905179352830000.0, "295147905179352830000"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (9.999999999999997e22, "9.999999999999997e+22"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (333333333.3333333, "333333333.3333333"),
        ];
        for (number, expected) in cases {
            assert_eq!(
                to_canonical_string(&json!(number)).unwrap(),
                expected,
                "{number:e}"
            );
        }
    }

    /// RFC 8785 section 3.2.2.2, written out: escape `"` and `\\`, use the short forms for
    /// the five named controls, `\\u00xx` (lower-case hex) for other controls, and leave
    /// every other character as literal UTF-8.
    fn reference_string_form(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\u{c}' => out.push_str("\\f"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn key_insertion_order_does_not_change_the_canonical_form(
            entries in prop::collection::vec((any::<String>(), any::<i32>()), 0..12)
        ) {
            let forward: serde_json::Map<String, Value> =
                entries.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let backward: serde_json::Map<String, Value> =
                entries.iter().rev().map(|(k, v)| (k.clone(), json!(v))).collect();
            // Duplicate keys keep the last insertion; compare like with like.
            prop_assume!(forward == backward);
            prop_assert_eq!(to_canonical_vec(&forward).unwrap(), to_canonical_vec(&backward).unwrap());
        }

        #[test]
        fn canonical_form_is_a_fixed_point(value in arbitrary_json()) {
            let once = to_canonical_string(&value).unwrap();
            let reparsed: Value = serde_json::from_str(&once).unwrap();
            prop_assert_eq!(to_canonical_string(&reparsed).unwrap(), once);
        }

        #[test]
        fn integer_and_float_spellings_of_one_number_agree(n in -(1i64 << 53)..(1i64 << 53)) {
            let as_integer = to_canonical_string(&json!(n)).unwrap();
            let as_float = to_canonical_string(&json!(n as f64)).unwrap();
            prop_assert_eq!(&as_integer, &as_float);
            prop_assert_eq!(as_integer, n.to_string());
        }

        #[test]
        fn strings_are_escaped_exactly_as_rfc8785_says(text in any::<String>()) {
            let canonical = to_canonical_string(&text).unwrap();
            prop_assert_eq!(&canonical, &reference_string_form(&text));
            let back: String = serde_json::from_str(&canonical).unwrap();
            prop_assert_eq!(back, text);
        }

        #[test]
        fn payload_hash_ignores_whitespace_and_key_order(a in any::<i32>(), b in any::<String>()) {
            let spaced: Value = serde_json::from_str(&format!(
                "{{ \"b\" : {} ,\n \"a\" : {a} }}", serde_json::to_string(&b).unwrap()
            )).unwrap();
            let tight = json!({"a": a, "b": b});
            prop_assert_eq!(payload_hash(&spaced), payload_hash(&tight));
        }
    }
}
