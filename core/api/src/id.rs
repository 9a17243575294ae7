//! Typed, content-addressed identifiers. Each renders as `<prefix>_<64 hex digits>` (a
//! blake3 digest) and parses back only with its own prefix. There is no random constructor
//! anywhere: every id is a function of content, so the same inputs give the same id on
//! every machine (constitution A3, A6, A7).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::canonical::{BufferedHasher, CanonicalError, Sink, to_canonical_vec};
use crate::time::Timestamp;

const DIGEST_HEX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{input}` is not a {kind}: expected the prefix `{prefix}_`")]
    WrongPrefix {
        kind: &'static str,
        prefix: &'static str,
        input: String,
    },
    #[error(
        "`{input}` is not a {kind}: expected {DIGEST_HEX_LEN} lower-case hex digits after `{prefix}_`, found {found} characters"
    )]
    WrongLength {
        kind: &'static str,
        prefix: &'static str,
        input: String,
        found: usize,
    },
    #[error(
        "`{input}` is not a {kind}: character {position} after the prefix is not a lower-case hex digit"
    )]
    NotHex {
        kind: &'static str,
        input: String,
        position: usize,
    },
}

/// What [`NIBBLE`] holds for a byte that is not a lower-case hex digit.
const NOT_A_DIGIT: u8 = 0xF0;

/// Each byte's value as a lower-case hex digit, or [`NOT_A_DIGIT`].
static NIBBLE: [u8; 256] = {
    let mut nibbles = [NOT_A_DIGIT; 256];
    let mut digit = 0;
    while digit < 16 {
        let text = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        nibbles[text as usize] = digit;
        digit += 1;
    }
    nibbles
};

/// Reads an id from the text the deserializer has, borrowed or not: no `String` is made
/// for it (`Cow<str>` makes one whenever the text is not borrowed from the input).
struct IdVisitor<Id>(std::marker::PhantomData<Id>);

impl<Id: FromStr<Err = IdError>> serde::de::Visitor<'_> for IdVisitor<Id> {
    type Value = Id;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an id as text")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Id, E> {
        text.parse().map_err(E::custom)
    }
}

/// A blake3 digest, the body of every id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// An id read back from its digest's bytes, as the jail's frames carry it
/// (`envelope::packed`): the same id as its text, without the hex.
pub(crate) trait DigestBytes: Sized {
    fn digest_bytes(&self) -> &[u8; 32];
    fn from_digest_bytes(bytes: [u8; 32]) -> Self;
}

/// A blake3 derive-key context, its key computed once (`blake3::hazmat`): every id of a
/// kind is hashed under the same context, and hashing the context costs as much as a
/// small id's fields.
pub(crate) struct HashContext {
    text: &'static str,
    key: std::sync::OnceLock<blake3::hazmat::ContextKey>,
}

impl HashContext {
    pub(crate) const fn new(text: &'static str) -> Self {
        HashContext {
            text,
            key: std::sync::OnceLock::new(),
        }
    }

    fn key(&self) -> &blake3::hazmat::ContextKey {
        self.key
            .get_or_init(|| blake3::hazmat::hash_derive_key_context(self.text))
    }
}

impl Digest {
    /// Hashes fields with an unambiguous encoding: each field is preceded by its length
    /// as a little-endian u64, and `context` separates the uses of the hash.
    fn of_fields(context: &HashContext, fields: &[&[u8]]) -> Self {
        let mut hasher = BufferedHasher::derive_key(context.key());
        for field in fields {
            hasher.put(&(field.len() as u64).to_le_bytes());
            hasher.put(field);
        }
        Digest(hasher.finalize())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn parse(kind: &'static str, prefix: &'static str, input: &str) -> Result<Self, IdError> {
        let hex = input
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .ok_or_else(|| IdError::WrongPrefix {
                kind,
                prefix,
                input: input.to_owned(),
            })?;
        if hex.len() != DIGEST_HEX_LEN {
            return Err(IdError::WrongLength {
                kind,
                prefix,
                input: input.to_owned(),
                found: hex.chars().count(),
            });
        }
        // Every stored envelope has five ids to parse: a table lookup per digit and one
        // test at the end (five times faster than a match per digit), errors located after.
        let digits: &[u8; 2 * 32] = hex.as_bytes().try_into().expect("the length was checked");
        let mut bytes = [0u8; 32];
        let mut not_hex = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let (high, low) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            not_hex |= high | low;
            *byte = high << 4 | low;
        }
        if not_hex & NOT_A_DIGIT != 0 {
            let position = digits
                .iter()
                .position(|digit| NIBBLE[usize::from(*digit)] == NOT_A_DIGIT)
                .unwrap_or_default();
            return Err(IdError::NotHex {
                kind,
                input: input.to_owned(),
                position,
            });
        }
        Ok(Digest(bytes))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids are formatted on every append and read; blake3's encoder is much faster
        // than formatting byte by byte.
        f.write_str(blake3::Hash::from_bytes(self.0).to_hex().as_str())
    }
}

/// The longest prefix an id has.
const MAX_PREFIX_LEN: usize = 3;

/// An id's text, `{prefix}_{hex}`, on the stack: every envelope written names five ids,
/// and writing them through `fmt` (`write!`, then serde_json escaping each piece) cost
/// more than the rest of the envelope's JSON.
struct IdText {
    bytes: [u8; MAX_PREFIX_LEN + 1 + DIGEST_HEX_LEN],
    len: usize,
}

impl IdText {
    fn new(prefix: &str, digest: &Digest) -> Self {
        let hex = blake3::Hash::from_bytes(digest.0).to_hex();
        let mut bytes = [0; MAX_PREFIX_LEN + 1 + DIGEST_HEX_LEN];
        let len = prefix.len() + 1 + DIGEST_HEX_LEN;
        bytes[..prefix.len()].copy_from_slice(prefix.as_bytes());
        bytes[prefix.len()] = b'_';
        bytes[prefix.len() + 1..len].copy_from_slice(hex.as_bytes());
        IdText { bytes, len }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("a prefix and hex digits are ASCII")
    }
}

macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Digest);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn digest(&self) -> &Digest {
                &self.0
            }
        }

        impl DigestBytes for $name {
            fn digest_bytes(&self) -> &[u8; 32] {
                &self.0.0
            }

            fn from_digest_bytes(bytes: [u8; 32]) -> Self {
                $name(Digest(bytes))
            }
        }

        const _: () = assert!($prefix.len() <= MAX_PREFIX_LEN, "an id's prefix fits `IdText`");

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(IdText::new($prefix, &self.0).as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(input: &str) -> Result<Self, IdError> {
                Digest::parse(stringify!($name), $prefix, input).map($name)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(IdText::new($prefix, &self.0).as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(IdVisitor(std::marker::PhantomData::<$name>))
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": concat!("^", $prefix, "_[0-9a-f]{64}$")
                })
            }
        }
    };
}

/// Ids of things that are identified by their content alone.
macro_rules! content_addressed {
    ($($name:ident),+) => {$(
        impl $name {
            /// The id of `content`: blake3 of its canonical JSON, separated by id kind.
            pub fn of<T: Serialize + ?Sized>(content: &T) -> Result<Self, CanonicalError> {
                static CONTEXT: HashContext =
                    HashContext::new(concat!("ops-core 2026 ", stringify!($name)));
                let bytes = to_canonical_vec(content)?;
                Ok($name(Digest::of_fields(&CONTEXT, &[&bytes])))
            }
        }
    )+};
}

digest_id!(
    /// An event's identity: `hash(source_ref, source_native_id, payload_hash, occurred_at)` (A6).
    EventId, "evt"
);
digest_id!(
    /// A command's idempotency key: its type, target, canonical payload and dedupe scope (A2, A3).
    CommandId, "cmd"
);
digest_id!(
    /// A capability, identified by the content of its grant (A4).
    CapabilityId, "cap"
);
digest_id!(
    /// Groups everything that follows from one origin.
    CorrelationId, "cor"
);
digest_id!(
    /// A derived artifact (Section 5).
    DerivedArtifactId, "art"
);
digest_id!(
    /// A user's action in a UI or CLI, identified by what was done, by whom and when.
    UserActionId, "act"
);
digest_id!(
    /// Identity of a governed artifact: blake3 of its canonical form (A7).
    ContentId, "cid"
);
digest_id!(
    /// blake3 of the canonical form of some content, e.g. `payload_hash`.
    ContentHash, "b3"
);

content_addressed!(
    CapabilityId,
    CorrelationId,
    DerivedArtifactId,
    UserActionId,
    ContentId
);

impl ContentId {
    /// The all-zero id, for the examples in schemas.
    pub(crate) fn example() -> Self {
        ContentId(Digest([0; 32]))
    }
}

impl ContentHash {
    /// The all-zero hash, for the examples in schemas.
    pub(crate) fn example() -> Self {
        ContentHash(Digest([0; 32]))
    }

    /// The plain blake3 of `bytes`, so anyone can recompute it with any blake3 tool.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        ContentHash(Digest(*blake3::hash(bytes).as_bytes()))
    }
}

/// The inputs of an [`EventId`], each one unambiguous on its own.
#[derive(Clone, Copy, Debug)]
pub struct EventIdInputs<'a> {
    pub source_ref: &'a str,
    pub source_native_id: &'a str,
    pub payload_hash: &'a ContentHash,
    pub occurred_at: Timestamp,
}

static EVENT_ID: HashContext = HashContext::new("ops-core 2026 EventId");
static COMMAND_ID: HashContext = HashContext::new("ops-core 2026 CommandId");
static COMMAND_ID_KEY: HashContext = HashContext::new("ops-core 2026 CommandId key");

impl EventId {
    pub fn derive(inputs: EventIdInputs<'_>) -> Self {
        let fixed = inputs.occurred_at.fixed_text();
        let written;
        let occurred_at: &[u8] = match &fixed {
            Some(text) => text,
            None => {
                written = inputs.occurred_at.to_string();
                written.as_bytes()
            }
        };
        EventId(Digest::of_fields(
            &EVENT_ID,
            &[
                inputs.source_ref.as_bytes(),
                inputs.source_native_id.as_bytes(),
                inputs.payload_hash.digest().as_bytes(),
                occurred_at,
            ],
        ))
    }
}

impl CommandId {
    /// The deterministic id of a command. The request time is not an input: a retry of the
    /// same request is the same command.
    pub fn derive(
        command_type: &str,
        target_ref: &str,
        payload_hash: &ContentHash,
        dedupe_scope: &DedupeScope,
    ) -> Self {
        let scope = to_canonical_vec(dedupe_scope).expect("a dedupe scope is plain data");
        CommandId(Digest::of_fields(
            &COMMAND_ID,
            &[
                command_type.as_bytes(),
                target_ref.as_bytes(),
                payload_hash.digest().as_bytes(),
                &scope,
            ],
        ))
    }

    /// A caller-supplied idempotency key, itself a content hash (e.g. of an upstream request).
    pub fn from_idempotency_key(key: &ContentHash) -> Self {
        CommandId(Digest::of_fields(
            &COMMAND_ID_KEY,
            &[key.digest().as_bytes()],
        ))
    }
}

/// `payload_hash = blake3(canonical payload)`, the canonical bytes written straight into
/// the hasher.
pub fn payload_hash(payload: &serde_json::Value) -> ContentHash {
    let mut hasher = BufferedHasher::plain();
    crate::canonical::write_canonical(payload, &mut hasher);
    ContentHash(Digest(hasher.finalize()))
}

/// [`payload_hash`] of a typed value, its canonical bytes written straight from it into
/// the hasher with no `serde_json::Value` built; through a `Value` only for what serde_json
/// alone decides (see [`crate::canonical::write_canonical_typed`]). The same hash either way.
pub fn payload_hash_of<T: Serialize + ?Sized>(value: &T) -> Result<ContentHash, CanonicalError> {
    let hasher = crate::canonical::write_canonical_into(value, BufferedHasher::plain)?;
    Ok(ContentHash(Digest(hasher.finalize())))
}

/// The typed dedupe scope of A3; closed on purpose.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DedupeScope {
    Connector {
        connector_id: String,
        stream: String,
    },
    Egress {
        destination: String,
        tenant_id: String,
    },
    Command {
        aggregate_ref: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A typed payload hashes as its `Value` does, both where the typed serializer writes
    /// it (fields out of order, nesting, escapes) and where it hands over to serde_json
    /// (a map whose keys are numbers).
    #[test]
    fn a_typed_payload_hashes_as_its_json_value() {
        #[derive(Serialize)]
        struct Inner {
            zeta: &'static str,
            alpha: Vec<u32>,
        }
        #[derive(Serialize)]
        struct Outer {
            title: &'static str,
            inner: Inner,
            by_number: std::collections::BTreeMap<u8, bool>,
        }
        let typed = Outer {
            title: "tab\there \"quoted\" \u{1F600}",
            inner: Inner {
                zeta: "z",
                alpha: vec![3, 1],
            },
            by_number: [(2, true), (10, false)].into(),
        };
        let as_value = serde_json::to_value(&typed).unwrap();
        assert_eq!(payload_hash_of(&typed).unwrap(), payload_hash(&as_value));
        assert_eq!(
            payload_hash_of(&typed.inner).unwrap(),
            payload_hash(&as_value["inner"])
        );
    }

    /// The cached context key and the buffered hasher change nothing: an id is blake3 in
    /// derive-key mode over the length-prefixed fields, as it was written at first, and a
    /// payload hash the plain blake3 of the canonical bytes.
    #[test]
    fn ids_hash_exactly_as_derive_key_mode_over_length_prefixed_fields() {
        let long = vec![7u8; 2_000];
        let cases: [&[&[u8]]; 4] = [
            &[],
            &[b""],
            &[b"a", b"bc", &[0u8; 32]],
            &[&long, b"x", &long],
        ];
        for fields in cases {
            let mut plain = blake3::Hasher::new_derive_key("ops-core 2026 EventId");
            for field in fields {
                plain.update(&(field.len() as u64).to_le_bytes());
                plain.update(field);
            }
            assert_eq!(
                Digest::of_fields(&EVENT_ID, fields).0,
                *plain.finalize().as_bytes()
            );
        }
        // Under the buffer (hashed at once), and past it (through a hasher).
        for payload in [
            json!({"b": "x", "a": [1, 2.5, null]}),
            json!({"b": "x".repeat(1_500), "a": [1, 2.5, null], "é": {"z": true}}),
        ] {
            let bytes = to_canonical_vec(&payload).unwrap();
            assert_eq!(payload_hash(&payload), ContentHash::of_bytes(&bytes));
        }
    }

    fn inputs<'a>(payload_hash: &'a ContentHash) -> EventIdInputs<'a> {
        EventIdInputs {
            source_ref: "filesync:tickets",
            source_native_id: "T-1001",
            payload_hash,
            occurred_at: "2026-11-26T06:01:51.123456Z".parse().unwrap(),
        }
    }

    /// A golden vector: if this changes, every stored event id in the world changes. The
    /// expected values were computed outside Rust (Python `blake3`, same encoding).
    #[test]
    fn event_id_golden_vector() {
        let hash = payload_hash(&json!({"service": "checkout", "severity": "sev1"}));
        assert_eq!(
            hash.to_string(),
            "b3_df8ddc02d62941525ece00064249738c21f810af583a6d963740036e3a8d0584"
        );
        assert_eq!(
            EventId::derive(inputs(&hash)).to_string(),
            "evt_66ebf928fce0c31266c5d4698acc945ad2603c817bb0f4a229ff293cdb7d0f16"
        );
    }

    #[test]
    fn every_input_of_an_event_id_matters() {
        let hash = payload_hash(&json!({"a": 1}));
        let other_hash = payload_hash(&json!({"a": 2}));
        let base = EventId::derive(inputs(&hash));
        assert_eq!(base, EventId::derive(inputs(&hash)), "same inputs, same id");
        let variants = [
            EventIdInputs {
                source_ref: "filesync:other",
                ..inputs(&hash)
            },
            EventIdInputs {
                source_native_id: "T-1002",
                ..inputs(&hash)
            },
            EventIdInputs {
                payload_hash: &other_hash,
                ..inputs(&hash)
            },
            EventIdInputs {
                occurred_at: "2026-11-26T06:01:51.123457Z".parse().unwrap(),
                ..inputs(&hash)
            },
        ];
        for variant in variants {
            assert_ne!(EventId::derive(variant), base, "{variant:?}");
        }
    }

    #[test]
    fn length_prefixes_keep_field_boundaries_apart() {
        let hash = payload_hash(&json!(null));
        let split_one_way = EventIdInputs {
            source_ref: "ab",
            source_native_id: "c",
            ..inputs(&hash)
        };
        let split_other_way = EventIdInputs {
            source_ref: "a",
            source_native_id: "bc",
            ..inputs(&hash)
        };
        assert_ne!(
            EventId::derive(split_one_way),
            EventId::derive(split_other_way)
        );
    }

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = CorrelationId::of("incident T-1001").unwrap();
        let text = id.to_string();
        assert!(text.starts_with("cor_") && text.len() == 4 + 64);
        assert_eq!(text.parse::<CorrelationId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<CorrelationId>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_rejected_with_the_reason() {
        let good = CorrelationId::of("x").unwrap().to_string();
        let body = &good[4..];
        let wrong_prefix = format!("evt_{body}");
        assert!(matches!(
            wrong_prefix.parse::<CorrelationId>(),
            Err(IdError::WrongPrefix { prefix: "cor", .. })
        ));
        assert!(matches!(
            "cor_abc".parse::<CorrelationId>(),
            Err(IdError::WrongLength { found: 3, .. })
        ));
        let upper = format!("cor_{}", body.to_uppercase());
        let error = upper.parse::<CorrelationId>().unwrap_err();
        assert!(
            error.to_string().contains("not a lower-case hex digit"),
            "{error}"
        );
        let json_error = serde_json::from_str::<CorrelationId>("\"cor_zz\"").unwrap_err();
        assert!(
            json_error.to_string().contains("CorrelationId"),
            "{json_error}"
        );
    }

    #[test]
    fn every_byte_in_every_place_reads_as_its_digit_or_names_where_it_is() {
        let body: Vec<u8> = b"0123456789abcdef".repeat(4);
        for place in [0, 1, 17, 62, 63] {
            for byte in 0..=u8::MAX {
                let mut digits = body.clone();
                digits[place] = byte;
                let Ok(text) = String::from_utf8(digits.clone()) else {
                    continue;
                };
                let expected = (byte as char)
                    .to_digit(16)
                    .filter(|_| !byte.is_ascii_uppercase());
                match (format!("cor_{text}").parse::<CorrelationId>(), expected) {
                    (Ok(id), Some(value)) => {
                        let read = id.digest().as_bytes()[place / 2];
                        let digit = if place % 2 == 0 {
                            read >> 4
                        } else {
                            read & 0xF
                        };
                        assert_eq!(u32::from(digit), value, "{text}");
                    }
                    (Err(IdError::NotHex { position, .. }), None) => {
                        assert_eq!(position, place, "{text}")
                    }
                    (read, _) => panic!("`{text}` read as {read:?}"),
                }
            }
        }
    }

    #[test]
    fn id_kinds_do_not_collide_on_the_same_content() {
        let correlation = CorrelationId::of("same").unwrap();
        let capability = CapabilityId::of("same").unwrap();
        assert_ne!(correlation.digest(), capability.digest());
    }
}
