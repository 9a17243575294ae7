//! Canonical JSON per RFC 8785 (JCS): sorted keys by UTF-16 code units, ECMAScript number
//! forms, minimal string escapes. Written by hand, straight from a `serde_json::Value` or a
//! typed value ([`write_canonical_typed`]) into any [`Sink`] (a buffer, or a blake3 hasher for ids and payload hashes), because the
//! crate that implements it, `serde_json_canonicalizer`, parses every object key a second
//! time and buffers every object in sorted sets: it made an event id cost seven times the
//! plain serialisation and hash of the payload. Numbers are formatted by `ryu-js`
//! (ECMAScript's `Number.prototype.toString`), every number as the double JSON means, as
//! the crate does. The tests below hold this to the RFC's own examples and to the crate,
//! byte for byte, on random values.

mod serializer;

use serde::Serialize;
use serde_json::Value;

pub use serializer::{Refused, write_canonical_typed};

#[derive(Debug, thiserror::Error)]
#[error("cannot write canonical JSON: {0}")]
pub struct CanonicalError(#[from] serde_json::Error);

/// Where canonical bytes go.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

// Inlined: most writes are one constant byte (`{`, `,`, `"`), which then costs a store
// where a call cost as much as the rest of the writing.
impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A blake3 hash fed through a buffer: canonical JSON and length-prefixed fields arrive
/// in many small writes, and each `update` of a hasher has a fixed cost. Most inputs (an
/// event's payload, an id's fields) fit the buffer whole: they are hashed in one call at
/// the end, and a `blake3::Hasher` (two kilobytes to set up and move) is made only for an
/// input that overflows it.
pub struct BufferedHasher<'k> {
    /// blake3's derive-key mode under this context key, or its plain mode.
    context_key: Option<&'k blake3::hazmat::ContextKey>,
    /// Made when the buffer first overflows; boxed, so the rest moves as a few hundred bytes.
    hasher: Option<Box<blake3::Hasher>>,
    buffer: [u8; 512],
    len: usize,
}

impl<'k> BufferedHasher<'k> {
    /// blake3's plain hash of what is written.
    pub fn plain() -> Self {
        BufferedHasher {
            context_key: None,
            hasher: None,
            buffer: [0; 512],
            len: 0,
        }
    }

    /// blake3 in derive-key mode, under a context's key (`blake3::hazmat`).
    pub fn derive_key(context_key: &'k blake3::hazmat::ContextKey) -> Self {
        BufferedHasher {
            context_key: Some(context_key),
            ..BufferedHasher::plain()
        }
    }

    fn start(context_key: Option<&blake3::hazmat::ContextKey>) -> blake3::Hasher {
        use blake3::hazmat::HasherExt;
        match context_key {
            Some(key) => blake3::Hasher::new_from_context_key(key),
            None => blake3::Hasher::new(),
        }
    }

    pub fn finalize(self) -> [u8; 32] {
        let rest = &self.buffer[..self.len];
        match (self.hasher, self.context_key) {
            (None, None) => *blake3::hash(rest).as_bytes(),
            (Some(mut hasher), _) => *hasher.update(rest).finalize().as_bytes(),
            (None, context_key) => *Self::start(context_key).update(rest).finalize().as_bytes(),
        }
    }
}

impl Sink for BufferedHasher<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buffer.len() {
            let context_key = self.context_key;
            let hasher = self
                .hasher
                .get_or_insert_with(|| Box::new(Self::start(context_key)));
            hasher.update(&self.buffer[..self.len]);
            self.len = 0;
            if bytes.len() > self.buffer.len() {
                hasher.update(bytes);
                return;
            }
        }
        self.buffer[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// The RFC 8785 bytes of `value`: written straight from the typed value, or through a
/// `serde_json::Value` for what only serde_json decides (see [`write_canonical_typed`]).
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    write_canonical_into(value, Vec::new)
}

/// The RFC 8785 form of `value` written into a sink from `fresh`: straight from the typed
/// value, or, where the typed serializer refuses (its sink half-written and dropped), through
/// a `serde_json::Value` into another fresh sink.
pub fn write_canonical_into<T: Serialize + ?Sized, S: Sink>(
    value: &T,
    fresh: impl Fn() -> S,
) -> Result<S, CanonicalError> {
    let mut out = fresh();
    if write_canonical_typed(value, &mut out).is_ok() {
        return Ok(out);
    }
    let mut out = fresh();
    write_canonical(&serde_json::to_value(value)?, &mut out);
    Ok(out)
}

/// The RFC 8785 text of `value`.
pub fn to_canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    let bytes = to_canonical_vec(value)?;
    Ok(String::from_utf8(bytes).expect("canonical JSON is UTF-8"))
}

/// Writes the RFC 8785 form of `value` into `out`.
pub fn write_canonical(value: &Value, out: &mut impl Sink) {
    match value {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Number(number) => {
            // JSON's numbers are doubles: an integer beyond 2^53 reads as the nearest one.
            let double = number.as_f64().expect("a JSON number is a finite double");
            out.put(ryu_js::Buffer::new().format_finite(double).as_bytes());
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.put(b"[");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.put(b",");
                }
                write_canonical(item, out);
            }
            out.put(b"]");
        }
        Value::Object(map) => {
            // A map's own order (by UTF-8 bytes, or insertion with `preserve_order`) is
            // used as it is when it already is the canonical one, as it almost always is.
            let canonical = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(a, b)| utf16_order(a.as_bytes(), b.as_bytes()).is_lt());
            if canonical {
                write_object(map.iter(), out);
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|(a, _), (b, _)| utf16_order(a.as_bytes(), b.as_bytes()));
                write_object(entries.into_iter(), out);
            }
        }
    }
}

fn write_object<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut impl Sink) {
    out.put(b"{");
    for (n, (key, item)) in entries.enumerate() {
        if n > 0 {
            out.put(b",");
        }
        write_string(key, out);
        out.put(b":");
        write_canonical(item, out);
    }
    out.put(b"}");
}

/// How RFC 8785 orders two keys: by their UTF-16 code units. That is the order of their
/// UTF-8 bytes except where a character at or above U+10000 (four bytes, lead byte `F0`
/// or more) meets one in U+E000..U+FFFF (lead byte `EE` or `EF`): in UTF-16 the first is a
/// surrogate pair, and surrogates come before U+E000. Equal prefixes keep both strings at
/// the same place in a character, so the first differing byte decides. Keys are taken as
/// the UTF-8 bytes of `str`s: the typed serializer compares keys it copied, unvalidated.
fn utf16_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) else {
        return a.len().cmp(&b.len());
    };
    let (x, y) = (a[at], b[at]);
    let high_bmp = |byte: u8| (0xee..0xf0).contains(&byte);
    if x >= 0xf0 && high_bmp(y) {
        std::cmp::Ordering::Less
    } else if y >= 0xf0 && high_bmp(x) {
        std::cmp::Ordering::Greater
    } else {
        x.cmp(&y)
    }
}

/// The bytes a JSON string escapes: the controls, `"` and `\\`.
static ESCAPED: [bool; 256] = {
    let mut escaped = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        escaped[byte] = true;
        byte += 1;
    }
    escaped[b'"' as usize] = true;
    escaped[b'\\' as usize] = true;
    escaped
};

/// Whether JSON escapes any of `bytes`.
fn escapes_any(bytes: &[u8]) -> bool {
    bytes.iter().any(|&byte| ESCAPED[usize::from(byte)])
}

/// A string as RFC 8785 section 3.2.2.2 writes it: `"` and `\` escaped, the five named
/// controls in their short forms, other controls as `\u00xx`, everything else literal.
fn write_string(text: &str, out: &mut impl Sink) {
    let bytes = text.as_bytes();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put(b"\"");
    // Most strings have nothing to escape: one look-up a byte, then one write.
    if !escapes_any(bytes) {
        out.put(bytes);
        out.put(b"\"");
        return;
    }
    let mut start = 0;
    let mut unicode = *b"\\u0000";
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => {
                unicode[4] = HEX[(byte >> 4) as usize];
                unicode[5] = HEX[(byte & 0xf) as usize];
                &unicode
            }
            _ => continue,
        };
        out.put(&bytes[start..at]);
        out.put(escape);
        start = at + 1;
    }
    out.put(&bytes[start..]);
    out.put(b"\"");
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

    pub(super) fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
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
        fn the_same_bytes_as_serde_json_canonicalizer(value in arbitrary_json()) {
            prop_assert_eq!(
                to_canonical_vec(&value).unwrap(),
                serde_json_canonicalizer::to_vec(&value).unwrap()
            );
        }

        #[test]
        fn keys_order_by_utf16_code_units(
            prefix in any::<String>(),
            a in any::<char>(),
            b in any::<char>(),
            rest in any::<String>(),
        ) {
            let (a, b) = (format!("{prefix}{a}{rest}"), format!("{prefix}{b}"));
            prop_assert_eq!(utf16_order(a.as_bytes(), b.as_bytes()), a.encode_utf16().cmp(b.encode_utf16()));
            prop_assert_eq!(utf16_order(b.as_bytes(), a.as_bytes()), b.encode_utf16().cmp(a.encode_utf16()));
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
