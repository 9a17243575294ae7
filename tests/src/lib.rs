//! Shared fixtures of the workspace tests: a valid origin for envelopes, and the linked
//! registry with every example pack in it.

pub mod commands;
pub mod export;
pub mod sources;
pub mod storage;

use ops_core::envelope::{Actor, ActorId, Causation, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId, UserActionId};
use ops_core::registry::Registry;

// Linked for their registrations; no code here names them otherwise.
use pack_incidents as _;
use pack_notify as _;

/// The registry of this test binary: core plus every example pack.
pub fn linked_registry() -> &'static Registry {
    match ops_core::registry::registry(ops_core_runtime::CORE) {
        Ok(registry) => registry,
        Err(error) => panic!("{error}"),
    }
}

/// The payloads of every stored `E`, in log order.
pub async fn payloads<E: ops_core::contract::Event>(
    store: &ops_core_runtime::store::EventStore,
) -> Vec<E> {
    store
        .read_by_type(E::TYPE)
        .await
        .expect("reading the log")
        .into_iter()
        .map(|stored| {
            serde_json::from_value(stored.envelope.payload).expect("a payload of its type")
        })
        .collect()
}

pub fn responder() -> Actor {
    Actor::Human(ActorId::new("ada@example.com").expect("a valid actor id"))
}

/// `actor` in an operator action of its own, taken now: a new action each call (its key
/// counts up), as a CLI run without `--action` is.
pub fn acting(actor: Actor) -> ops_core_runtime::acting::Acting {
    use ops_core_runtime::clock::WallClock as _;
    static ACTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = ACTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let action = ops_core_runtime::acting::OperatorAction::keyed(
        &format!("test.{}.{n}", std::process::id()),
        ops_core::time::Timestamp::now(),
    )
    .expect("a valid key");
    ops_core_runtime::acting::Acting::new(actor, ops_core_runtime::acting::Cause::Operator(action))
}

/// An origin at a fixed time from a connector-like source.
pub fn origin(native_id: &str) -> EventOrigin {
    let occurred_at = "2026-11-26T06:01:51.123456Z"
        .parse()
        .expect("a valid timestamp");
    EventOrigin {
        source_ref: "filesync:tickets".to_owned(),
        source_native_id: native_id.to_owned(),
        source_sequence: Some(7),
        occurred_at,
        ingested_at: occurred_at,
        effective_at: None,
        correlation_id: CorrelationId::of(native_id).expect("a string has a canonical form"),
        causation: Causation::UserAction(
            UserActionId::of(&("open", native_id)).expect("canonical"),
        ),
        actor: responder(),
        capability_id: CapabilityId::of("responders").expect("canonical"),
    }
}

/// An origin at `occurred_at_us` from `source_ref`, for ordering tests.
pub fn origin_at(
    native_id: &str,
    occurred_at_us: i64,
    source_ref: &str,
    source_sequence: Option<u64>,
) -> EventOrigin {
    let occurred_at =
        ops_core::time::Timestamp::from_unix_micros(occurred_at_us).expect("a time in range");
    EventOrigin {
        source_ref: source_ref.to_owned(),
        source_sequence,
        occurred_at,
        ingested_at: occurred_at,
        ..origin(native_id)
    }
}

/// A copy of the filesync pack's sample export in a fresh `dir`, for a test to change.
pub fn sample_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tickets")).expect("creating the copy");
    for file in ["0001.jsonl", "0002.jsonl"] {
        std::fs::copy(
            std::path::Path::new(pack_filesync::SAMPLE_EXPORT)
                .join("tickets")
                .join(file),
            dir.join("tickets").join(file),
        )
        .expect("copying the sample");
    }
    dir.to_owned()
}
