//! The event envelope as the jail's frames carry it, for `#[serde(with = "packed")]`: its
//! fields in order without their names, and causation and actor as plain enums. The stored
//! form flattens causation into the envelope and tags both enums by field, which serde can
//! only read from a self-describing format through a buffer of the whole envelope; a host
//! and its runners (one binary) read this form straight through. Ids cross as their
//! digests' 32 bytes and times as microseconds since the epoch: their text forms cost a
//! hex encoding and an RFC 3339 parse per id and time of every event a runner folds.
//! Never stored or hashed: the stored form and the ids stay the envelope's own.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Actor, ActorId, Causation, EventEnvelope};
use crate::id::{
    CapabilityId, CommandId, ContentHash, CorrelationId, DerivedArtifactId, EventId, UserActionId,
};
use crate::time::Timestamp;

#[derive(Serialize, Deserialize)]
#[serde(remote = "Causation")]
enum CausationForm {
    Event(#[serde(with = "digest")] EventId),
    Command(#[serde(with = "digest")] CommandId),
    DerivedArtifact(#[serde(with = "digest")] DerivedArtifactId),
    UserAction(#[serde(with = "digest")] UserActionId),
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Actor")]
enum ActorForm {
    Human(ActorId),
    Service(ActorId),
    Agent(ActorId),
}

/// [`EventEnvelope`]'s fields in declaration order, borrowed (ids and times are copies).
#[derive(Serialize)]
struct Borrowed<'a>(
    u32,
    #[serde(with = "digest")] EventId,
    &'a str,
    u32,
    &'a Value,
    #[serde(with = "digest")] ContentHash,
    #[serde(with = "micros")] Timestamp,
    #[serde(with = "micros")] Timestamp,
    #[serde(with = "micros_if_any")] Option<Timestamp>,
    #[serde(with = "digest")] CorrelationId,
    #[serde(with = "CausationForm")] &'a Causation,
    &'a str,
    &'a str,
    &'a Option<u64>,
    #[serde(with = "ActorForm")] &'a Actor,
    #[serde(with = "digest")] CapabilityId,
);

/// [`Borrowed`], owned: what a frame is read into.
#[derive(Deserialize)]
struct Owned(
    u32,
    #[serde(with = "digest")] EventId,
    String,
    u32,
    Value,
    #[serde(with = "digest")] ContentHash,
    #[serde(with = "micros")] Timestamp,
    #[serde(with = "micros")] Timestamp,
    #[serde(with = "micros_if_any")] Option<Timestamp>,
    #[serde(with = "digest")] CorrelationId,
    #[serde(with = "CausationForm")] Causation,
    String,
    String,
    Option<u64>,
    #[serde(with = "ActorForm")] Actor,
    #[serde(with = "digest")] CapabilityId,
);

/// An id as its digest's bytes.
mod digest {
    use std::marker::PhantomData;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::id::DigestBytes;

    pub fn serialize<S: Serializer, Id: DigestBytes>(
        id: &Id,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(id.digest_bytes())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, Id: DigestBytes>(
        deserializer: D,
    ) -> Result<Id, D::Error> {
        deserializer.deserialize_bytes(DigestVisitor(PhantomData))
    }

    struct DigestVisitor<Id>(PhantomData<Id>);

    impl<'de, Id: DigestBytes> Visitor<'de> for DigestVisitor<Id> {
        type Value = Id;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a digest's 32 bytes")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Id, E> {
            let bytes =
                <[u8; 32]>::try_from(bytes).map_err(|_| E::invalid_length(bytes.len(), &self))?;
            Ok(Id::from_digest_bytes(bytes))
        }

        /// Formats without bytes (JSON) write them as an array of numbers.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Id, A::Error> {
            let mut bytes = [0u8; 32];
            for (n, byte) in bytes.iter_mut().enumerate() {
                *byte = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(n, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(A::Error::invalid_length(33, &self));
            }
            Ok(Id::from_digest_bytes(bytes))
        }
    }
}

/// A time as microseconds since the epoch (a timestamp keeps no finer part).
mod micros {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::time::Timestamp;

    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(at.unix_micros())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let micros = i64::deserialize(deserializer)?;
        Timestamp::from_unix_micros(micros).ok_or_else(|| {
            serde::de::Error::custom(format!("{micros} µs since the epoch is out of range"))
        })
    }
}

/// [`micros`] for an optional time.
mod micros_if_any {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::time::Timestamp;

    pub fn serialize<S: Serializer>(
        at: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(|at| at.unix_micros()).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        #[derive(Deserialize)]
        struct At(#[serde(with = "super::micros")] Timestamp);
        Ok(Option::<At>::deserialize(deserializer)?.map(|At(at)| at))
    }
}

pub fn serialize<S: Serializer>(
    envelope: &EventEnvelope,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let e = envelope;
    Borrowed(
        e.envelope_version,
        e.event_id,
        &e.event_type,
        e.payload_schema_version,
        &e.payload,
        e.payload_hash,
        e.occurred_at,
        e.ingested_at,
        e.effective_at,
        e.correlation_id,
        &e.causation,
        &e.source_ref,
        &e.source_native_id,
        &e.source_sequence,
        &e.actor,
        e.capability_id,
    )
    .serialize(serializer)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<EventEnvelope, D::Error> {
    let fields = Owned::deserialize(deserializer)?;
    Ok(EventEnvelope {
        envelope_version: fields.0,
        event_id: fields.1,
        event_type: fields.2,
        payload_schema_version: fields.3,
        payload: fields.4,
        payload_hash: fields.5,
        occurred_at: fields.6,
        ingested_at: fields.7,
        effective_at: fields.8,
        correlation_id: fields.9,
        causation: fields.10,
        source_ref: fields.11,
        source_native_id: fields.12,
        source_sequence: fields.13,
        actor: fields.14,
        capability_id: fields.15,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Framed(#[serde(with = "super")] EventEnvelope);

    /// Every field, the optional ones set and not, every causation and every actor kind:
    /// the packed form reads back as the same envelope, and holds no field's name, id's
    /// text or time's text.
    #[test]
    fn every_envelope_reads_back_from_its_packed_form() {
        let digits = "0123456789abcdef".repeat(4);
        let causations = [
            Causation::Event(format!("evt_{digits}").parse().unwrap()),
            Causation::Command(format!("cmd_{digits}").parse().unwrap()),
            Causation::DerivedArtifact(DerivedArtifactId::of("derived").unwrap()),
            Causation::UserAction(UserActionId::of("clicked").unwrap()),
        ];
        let actors = [Actor::Human, Actor::Service, Actor::Agent];
        let decided = crate::budget::BudgetDecided {
            run_id: "run-1".to_owned(),
            actor: Actor::Agent(ActorId::new("triage-bot").unwrap()),
            asked: crate::budget::Usage {
                tokens: 1,
                calls: 1,
            },
            allowed: true,
            reason: None,
            run_used: crate::budget::Usage {
                tokens: 2,
                calls: 2,
            },
            day_used: crate::budget::Usage {
                tokens: 3,
                calls: 3,
            },
        };
        for (n, causation) in causations.into_iter().enumerate() {
            let at: Timestamp = "2026-02-03T04:05:06.123456Z".parse().unwrap();
            let origin = super::super::EventOrigin {
                source_ref: format!("source {n}"),
                source_native_id: format!("record {n}"),
                source_sequence: (n % 2 == 0).then_some(n as u64 + 7),
                occurred_at: at,
                ingested_at: at,
                effective_at: (n % 2 == 1).then_some(at),
                correlation_id: CorrelationId::of(&n).unwrap(),
                causation,
                actor: actors[n % 3](ActorId::new(format!("actor{n}")).unwrap()),
                capability_id: CapabilityId::of(&n).unwrap(),
            };
            let envelope = EventEnvelope::new(&decided, origin).unwrap();
            let packed = serde_json::to_string(&Framed(envelope.clone())).unwrap();
            assert!(!packed.contains("event_id"), "{packed}");
            // Ids and times cross as bytes and numbers, not as their text.
            assert!(
                !packed.contains("evt_") && !packed.contains("2026-"),
                "{packed}"
            );
            let read: Framed = serde_json::from_str(&packed).unwrap();
            assert_eq!(read.0, envelope, "{packed}");
        }
    }
}
