//! The event store, the same suite on SQLite and on PostgreSQL.

use ops_contract_incidents::{IncidentAcknowledged, IncidentOpened, Severity, v1};
use ops_core::contract::Contract;
use ops_core::envelope::EventEnvelope;
use ops_core_runtime::store::{
    AppendError, CanonicalKey, CurrentPayload, EventStore, ExpectedVersion, LogPosition,
};
use ops_shared_people::ServiceRef;
use ops_tests::storage::Backend;
use ops_tests::{on_both_backends, origin, origin_at};
use serde_json::json;

fn opened(native_id: &str) -> EventEnvelope {
    opened_with(native_id, origin(native_id))
}

fn opened_with(native_id: &str, origin: ops_core::envelope::EventOrigin) -> EventEnvelope {
    let event = IncidentOpened {
        incident_id: native_id.to_owned(),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: "payments".to_owned(),
        },
        title: "Card authorisations time out".to_owned(),
        severity: Severity::Sev2,
    };
    EventEnvelope::new(&event, origin).unwrap()
}

fn acknowledged(native_id: &str) -> EventEnvelope {
    let event = IncidentAcknowledged {
        incident_id: native_id.to_owned(),
        by: ops_shared_people::PersonRef {
            system: "oncall".to_owned(),
            id: "U042".to_owned(),
            display_name: "Ada".to_owned(),
        },
    };
    EventEnvelope::new(&event, origin(&format!("{native_id}-ack"))).unwrap()
}

on_both_backends!(
    appended_events_read_back_by_stream_type_and_correlation,
    appending_the_same_event_again_stores_it_once,
    a_batch_with_one_bad_event_writes_nothing,
    unknown_types_and_forged_envelopes_are_refused_on_append,
    the_expected_version_is_checked,
    replay_is_in_canonical_order_and_upcasts_old_versions,
    events_of_an_uninstalled_pack_read_as_raw_envelopes,
    concurrent_writers_never_make_a_follower_skip,
    a_follower_of_some_types_sees_each_once_and_reaches_the_head,
    nothing_is_appended_once_the_store_is_closed,
);

async fn appended_events_read_back_by_stream_type_and_correlation(backend: Backend) {
    let store = backend
        .store("appended_events_read_back_by_stream_type_and_correlation")
        .await;
    let batch = vec![opened("INC-1"), acknowledged("INC-1")];
    let outcome = store
        .append("incident/INC-1", ExpectedVersion::NoStream, &batch)
        .await
        .unwrap();
    assert_eq!(outcome.appended.len(), 2);
    assert_eq!(outcome.stream_version, 2);
    store
        .append("incident/INC-2", ExpectedVersion::Any, &[opened("INC-2")])
        .await
        .unwrap();

    let stream = store.read_stream("incident/INC-1").await.unwrap();
    let envelopes: Vec<_> = stream.iter().map(|e| e.envelope.clone()).collect();
    assert_eq!(envelopes, batch);
    assert_eq!(
        stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [1, 2]
    );
    let opened_events = store.read_by_type(IncidentOpened::TYPE).await.unwrap();
    assert_eq!(opened_events.len(), 2);
    let correlated = store
        .read_by_correlation(&batch[0].correlation_id)
        .await
        .unwrap();
    assert_eq!(correlated.len(), 1);
    assert_eq!(correlated[0].envelope, batch[0]);
}

async fn appending_the_same_event_again_stores_it_once(backend: Backend) {
    let store = backend
        .store("appending_the_same_event_again_stores_it_once")
        .await;
    let first = vec![opened("INC-1"), opened("INC-2")];
    store
        .append("s", ExpectedVersion::Any, &first)
        .await
        .unwrap();
    let again = store
        .append("s", ExpectedVersion::Any, &first)
        .await
        .unwrap();
    assert!(again.appended.is_empty());
    assert_eq!(again.duplicates.len(), 2);
    // An overlapping batch (a connector re-reading a range) stores only what is new, and
    // an event twice in one batch counts once.
    let overlapping = vec![opened("INC-2"), opened("INC-3"), opened("INC-3")];
    let outcome = store
        .append("s", ExpectedVersion::Any, &overlapping)
        .await
        .unwrap();
    assert_eq!(outcome.appended, vec![overlapping[1].event_id]);
    assert_eq!(outcome.duplicates.len(), 2);
    assert_eq!(store.count().await.unwrap(), 3);
    assert_eq!(outcome.stream_version, 3);
}

async fn a_batch_with_one_bad_event_writes_nothing(backend: Backend) {
    let store = backend
        .store("a_batch_with_one_bad_event_writes_nothing")
        .await;
    let bad = EventEnvelope::from_parts(
        ops_core_runtime::CORE,
        IncidentOpened::TYPE.to_owned(),
        2,
        json!({"incident_id": "INC-9", "title": 7}),
        origin("INC-9"),
    );
    let error = store
        .append("s", ExpectedVersion::Any, &[opened("INC-1"), bad])
        .await
        .unwrap_err();
    match &error {
        AppendError::InvalidPayload { index, reason, .. } => {
            assert_eq!(*index, 1);
            assert!(reason.starts_with("at `/title`: invalid type"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(
        error.to_string().contains("event 1 of the batch"),
        "{error}"
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

async fn unknown_types_and_forged_envelopes_are_refused_on_append(backend: Backend) {
    let store = backend
        .store("unknown_types_and_forged_envelopes_are_refused_on_append")
        .await;
    let unknown = EventEnvelope::from_parts(
        ops_core_runtime::CORE,
        "pack.gone.thing.Happened".to_owned(),
        1,
        json!({}),
        origin("x"),
    );
    let error = store
        .append("s", ExpectedVersion::Any, &[unknown])
        .await
        .unwrap_err();
    assert!(
        matches!(error, AppendError::UnknownType { index: 0, .. }),
        "{error}"
    );
    let mut forged = serde_json::to_value(opened("INC-1")).unwrap();
    forged["payload"]["title"] = json!("something else");
    let forged: EventEnvelope = serde_json::from_value(forged).unwrap();
    let error = store
        .append("s", ExpectedVersion::Any, &[forged])
        .await
        .unwrap_err();
    assert!(
        matches!(error, AppendError::Envelope { index: 0, .. }),
        "{error}"
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

async fn the_expected_version_is_checked(backend: Backend) {
    let store = backend.store("the_expected_version_is_checked").await;
    store
        .append(
            "incident/INC-1",
            ExpectedVersion::NoStream,
            &[opened("INC-1")],
        )
        .await
        .unwrap();
    let error = store
        .append(
            "incident/INC-1",
            ExpectedVersion::NoStream,
            &[acknowledged("INC-1")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, AppendError::Conflict { actual: 1, .. }),
        "{error}"
    );
    let error = store
        .append(
            "incident/INC-1",
            ExpectedVersion::Exact(3),
            &[acknowledged("INC-1")],
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nothing was written"), "{error}");
    store
        .append(
            "incident/INC-1",
            ExpectedVersion::Exact(1),
            &[acknowledged("INC-1")],
        )
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 2);
}

async fn replay_is_in_canonical_order_and_upcasts_old_versions(backend: Backend) {
    let store = backend
        .store("replay_is_in_canonical_order_and_upcasts_old_versions")
        .await;
    let legacy = EventEnvelope::new(
        &v1::IncidentOpened {
            incident_id: "INC-0".to_owned(),
            service: "checkout".to_owned(),
            title: "Checkout returns 502".to_owned(),
        },
        origin_at("INC-0", 1_000, "legacy", None),
    )
    .unwrap();
    // Appended out of order, in separate batches and streams.
    let events = [
        opened_with("c", origin_at("c", 3_000, "b-source", Some(2))),
        opened_with("a", origin_at("a", 3_000, "a-source", None)),
        opened_with("d", origin_at("d", 3_000, "b-source", Some(1))),
        legacy,
        opened_with("e", origin_at("e", 2_000, "z-source", Some(9))),
        opened_with("f", origin_at("f", 3_000, "b-source", None)),
    ];
    for (index, event) in events.iter().enumerate() {
        store
            .append(
                &format!("s{}", index % 2),
                ExpectedVersion::Any,
                std::slice::from_ref(event),
            )
            .await
            .unwrap();
    }
    let mut expected: Vec<CanonicalKey> = events.iter().map(CanonicalKey::of).collect();
    expected.sort();
    // Paged through the keyset, two at a time.
    let mut replayed = Vec::new();
    let mut after: Option<CanonicalKey> = None;
    loop {
        let page = store.replay(after.as_ref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| CanonicalKey::of(&e.envelope));
        replayed.extend(page);
    }
    let keys: Vec<CanonicalKey> = replayed
        .iter()
        .map(|e| CanonicalKey::of(&e.envelope))
        .collect();
    assert_eq!(keys, expected);
    let native_order: Vec<&str> = replayed
        .iter()
        .map(|e| e.envelope.source_native_id.as_str())
        .collect();
    assert_eq!(native_order, ["INC-0", "e", "a", "f", "d", "c"]);

    let first = &replayed[0].envelope;
    assert_eq!(first.payload_schema_version, 1);
    match store.current_payload(first) {
        CurrentPayload::Current { version, payload } => {
            assert_eq!(version, 2);
            assert_eq!(payload["service"]["system"], "legacy-catalogue");
            assert_eq!(payload["severity"], "sev3");
        }
        other => panic!("{other:?}"),
    }
}

async fn events_of_an_uninstalled_pack_read_as_raw_envelopes(backend: Backend) {
    let store = backend
        .store("events_of_an_uninstalled_pack_read_as_raw_envelopes")
        .await;
    // Written by a build that had the pack: the row is as that build stored it.
    let gone = EventEnvelope::from_parts(
        ops_core_runtime::CORE,
        "pack.gone.thing.Happened".to_owned(),
        3,
        json!({"what": "it happened"}),
        origin("gone-1"),
    );
    insert_raw(&store, &gone).await;
    let read = store
        .read_by_type("pack.gone.thing.Happened")
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].envelope, gone);
    assert_eq!(
        store.current_payload(&read[0].envelope),
        CurrentPayload::UnknownType
    );
    let replayed = store.replay(None, 10).await.unwrap();
    assert_eq!(replayed.len(), 1);
}

/// What an older build with more packs installed wrote: a row the append of this build
/// would refuse (its type is unknown here).
async fn insert_raw(store: &EventStore, envelope: &EventEnvelope) {
    let key = CanonicalKey::of(envelope);
    let sql = "INSERT INTO core_events (tx_order, event_id, stream_id, stream_version, event_type, \
               payload_schema_version, occurred_at_us, source_ref, source_sequence_key, correlation_id, \
               recorded_at_us, envelope) VALUES (0, $1, 'gone', 1, $2, $3, $4, $5, $6, $7, 0, $8)";
    ops_core_runtime::db::on_db!(store.db(), pool => {
        sqlx::query(sql)
            .bind(key.event_id)
            .bind(&envelope.event_type)
            .bind(i64::from(envelope.payload_schema_version))
            .bind(key.occurred_at_us)
            .bind(key.source_ref)
            .bind(key.source_sequence_key)
            .bind(envelope.correlation_id.to_string())
            .bind(serde_json::to_string(envelope).unwrap())
            .execute(pool)
            .await
            .unwrap();
    });
}

/// `writers` tasks at once, each appending `batches` batches (`events(writer, batch)`) to a
/// stream of its own.
fn spawn_writers(
    store: &EventStore,
    writers: usize,
    batches: usize,
    events: impl Fn(usize, usize) -> Vec<EventEnvelope> + Send + Sync + Copy + 'static,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for batch in 0..batches {
                    store
                        .append(
                            &format!("writer-{writer}"),
                            ExpectedVersion::Any,
                            &events(writer, batch),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect()
}

/// Many writers at once, a follower reading as they go: it sees every event exactly once.
async fn concurrent_writers_never_make_a_follower_skip(backend: Backend) {
    let store = backend
        .store("concurrent_writers_never_make_a_follower_skip")
        .await;
    const WRITERS: usize = 6;
    const BATCHES: usize = 15;
    let writers = spawn_writers(&store, WRITERS, BATCHES, |writer, batch| {
        (0..3)
            .map(|n| opened(&format!("w{writer}-b{batch}-{n}")))
            .collect()
    });
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut position = LogPosition::default();
            while seen.len() < WRITERS * BATCHES * 3 {
                let batch = store.follow(position, 7).await.unwrap();
                assert!(batch.corrupt.is_empty());
                position = batch.next;
                seen.extend(batch.events.into_iter().map(|e| e.envelope.event_id));
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    assert_each_once(&follower.await.unwrap(), WRITERS * BATCHES * 3);
}

/// `seen` holds `expected` events, none of them twice.
fn assert_each_once(seen: &[ops_core::id::EventId], expected: usize) {
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was delivered twice");
    assert_eq!(seen.len(), expected);
}

/// A follower of one type among concurrent writers of two (`follow_types`, pages of 4): it
/// sees every event of its type exactly once, in commit order, none of the other, and once
/// the writers are done its position reaches the head although the log ends with the other
/// type (a projection that folds a few types is caught up without reading the rest).
async fn a_follower_of_some_types_sees_each_once_and_reaches_the_head(backend: Backend) {
    let store = backend
        .store("a_follower_of_some_types_sees_each_once_and_reaches_the_head")
        .await;
    const WRITERS: usize = 4;
    const BATCHES: usize = 10;
    let acknowledged_type = acknowledged("INC-x").event_type;
    let writers = spawn_writers(&store, WRITERS, BATCHES, |writer, batch| {
        let id = format!("w{writer}-b{batch}");
        vec![
            opened(&id),
            acknowledged(&id),
            opened(&format!("{id}-late")),
        ]
    });
    let mut seen = Vec::new();
    let mut positions = Vec::new();
    let mut position = LogPosition::default();
    let follow = |position| {
        let store = store.clone();
        let wanted = acknowledged_type.clone();
        async move { store.follow_types(&[&wanted], position, 4).await.unwrap() }
    };
    while seen.len() < WRITERS * BATCHES {
        let batch = follow(position).await;
        assert!(batch.corrupt.is_empty());
        assert!(batch.next >= position, "a follower never moves back");
        position = batch.next;
        for event in batch.events {
            assert_eq!(event.envelope.event_type, acknowledged_type);
            positions.push(event.position);
            seen.push(event.envelope.event_id);
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_each_once(&seen, WRITERS * BATCHES);
    assert!(
        positions.is_sorted(),
        "events of a type come in commit order"
    );
    // Nothing more of its type: one more read reaches the head, past the last `opened`.
    let last = follow(position).await;
    assert!(last.events.is_empty());
    let (head, _) = store.head().await.unwrap().unwrap();
    assert_eq!(last.next, head);
    assert!(head > *positions.last().unwrap());
}

/// A closed store writes nothing more, whichever way its appends would have gone (on
/// SQLite, an append of one statement is written through its own connection when it can).
async fn nothing_is_appended_once_the_store_is_closed(backend: Backend) {
    const TEST: &str = "nothing_is_appended_once_the_store_is_closed";
    let store = backend.store(TEST).await;
    store
        .append("s", ExpectedVersion::Any, &[opened("INC-1")])
        .await
        .unwrap();
    store.db().close().await;
    let refused = store
        .append("s", ExpectedVersion::Any, &[opened("INC-2")])
        .await;
    assert!(refused.is_err(), "a closed store appended: {refused:?}");
    let reopened = backend.another_worker(TEST).await;
    assert_eq!(reopened.count().await.unwrap(), 1);
    reopened.db().close().await;
}

/// On SQLite, an append that finds the file's write lock held by another connection waits
/// for it, as the pool's connections do, and then stores its events after the other's.
#[tokio::test]
async fn on_sqlite_an_append_waits_for_a_writer_holding_the_lock() {
    use ops_core_runtime::db::Db;
    const TEST: &str = "on_sqlite_an_append_waits_for_a_writer_holding_the_lock";
    let store = Backend::Sqlite.store(TEST).await;
    store
        .append("s", ExpectedVersion::Any, &[opened("INC-1")])
        .await
        .unwrap();
    let Db::Sqlite(pool) = store.db() else {
        unreachable!("a SQLite store")
    };
    let holder = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let appending = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append("s", ExpectedVersion::Exact(1), &[opened("INC-2")])
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !appending.is_finished(),
        "the append did not wait for the lock: {:?}",
        appending.await
    );
    holder.commit().await.unwrap();
    let outcome = appending.await.unwrap().unwrap();
    assert_eq!(outcome.stream_version, 2);
    assert_eq!(store.count().await.unwrap(), 2);
    store.db().close().await;
}
