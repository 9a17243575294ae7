//! What only a server shows: transactions that hold their commit, a transaction left open
//! elsewhere on the server, and a connection that goes away in the middle of a batch.
//!
//! The known bug of sequence-following readers: a transaction takes its sequence number,
//! then holds its commit while a later one commits first. A reader that followed by
//! sequence would read the later row, move past the earlier one and never see it.
//! `EventStore::follow` waits for it instead, and for nothing else: a transaction that
//! cannot write to this store holds no follower back.

use std::time::Duration;

use ops_contract_incidents::{IncidentOpened, Severity};
use ops_core::envelope::EventEnvelope;
use ops_core_runtime::cursors::{CursorFence, CursorUpdate};
use ops_core_runtime::db::Db;
use ops_core_runtime::store::{AppendError, EventStore, ExpectedVersion, LogPosition};
use ops_shared_people::ServiceRef;
use ops_tests::origin;
use ops_tests::storage::{Backend, database_url, drop_schemas_of, schema_of};

fn opened(native_id: &str) -> EventEnvelope {
    let event = IncidentOpened {
        incident_id: native_id.to_owned(),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: "payments".to_owned(),
        },
        title: "held".to_owned(),
        severity: Severity::Sev1,
    };
    EventEnvelope::new(&event, origin(native_id)).unwrap()
}

/// The tests hold appends and transactions open on purpose, and one ends the sessions that
/// wait on a lock; they take turns so none sees another's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Inserts into stream `held` wait, inside their transaction and after taking their
/// sequence number, until the advisory lock `key` is released.
async fn hold_inserts(store: &EventStore, key: i64) -> sqlx::PgPool {
    let Db::Postgres(pool) = store.db().clone() else {
        unreachable!("a PostgreSQL store")
    };
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION hold_insert() RETURNS trigger AS $$
         BEGIN
             IF NEW.stream_id = 'held' THEN PERFORM pg_advisory_xact_lock_shared({key}); END IF;
             RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER hold_insert AFTER INSERT ON core_events
             FOR EACH ROW EXECUTE FUNCTION hold_insert();"
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// A session of its own that holds the advisory lock `key` until it unlocks it.
async fn gate(key: i64) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let Db::Postgres(pool) = Db::connect_postgres(&database_url(), None).await.unwrap() else {
        unreachable!()
    };
    let mut gate = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut *gate)
        .await
        .unwrap();
    gate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_that_commits_late_is_not_skipped() {
    const HOLD_KEY: i64 = 4242;
    let _turn = ONE_AT_A_TIME.lock().await;
    let store = Backend::Postgres
        .store("a_transaction_that_commits_late_is_not_skipped")
        .await;
    let pool = hold_inserts(&store, HOLD_KEY).await;
    let mut gate = gate(HOLD_KEY).await;

    let held = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append("held", ExpectedVersion::Any, &[opened("early")])
                .await
                .unwrap()
        })
    };
    wait_until_blocked(&pool, HOLD_KEY).await;
    store
        .append("free", ExpectedVersion::Any, &[opened("late")])
        .await
        .unwrap();

    // The later transaction has committed; the earlier one holds a smaller sequence number
    // and has not. A follower must not move past it: it waits for that append, as it
    // waits for any append of this store still in flight.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move { store.follow(LogPosition::default(), 10).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !follower.is_finished(),
        "a follower read past an append still in flight"
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(HOLD_KEY)
        .execute(&mut *gate)
        .await
        .unwrap();
    held.await.unwrap();

    let batch = follower.await.unwrap();
    let read: Vec<(&str, i64)> = batch
        .events
        .iter()
        .map(|e| (e.envelope.source_native_id.as_str(), e.position.seq))
        .collect();
    assert_eq!(read.len(), 2, "{read:?}");
    assert_eq!(read[0].0, "early");
    assert_eq!(read[1].0, "late");
    // The bug this guards against: by sequence, `early` precedes `late`, yet `late`
    // committed first, so a sequence follower would have skipped `early`.
    assert!(read[0].1 < read[1].1, "{read:?}");
    drop_schemas_of("a_transaction_that_commits_late_is_not_skipped").await;
}

/// A transaction left open in another database of the server (an analytics session, a
/// `pg_dump`) holds the server's oldest snapshot back; followers of this store keep up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_open_elsewhere_on_the_server_holds_no_follower_back() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let url = database_url();
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let (server, _) = base.rsplit_once('/').expect("a database in DATABASE_URL");
    let elsewhere_url = format!("{server}/postgres")
        + &(if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        });
    let Db::Postgres(elsewhere) = Db::connect_postgres(&elsewhere_url, None).await.unwrap() else {
        unreachable!()
    };
    let mut open = elsewhere.begin().await.unwrap();
    let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *open)
        .await
        .unwrap();
    assert!(!xid.is_empty());

    let store = Backend::Postgres
        .store("a_transaction_open_elsewhere_on_the_server_holds_no_follower_back")
        .await;
    let events: Vec<EventEnvelope> = (0..3).map(|n| opened(&format!("kept-up-{n}"))).collect();
    store
        .append("kept-up", ExpectedVersion::Any, &events)
        .await
        .unwrap();
    let batch = store.follow(LogPosition::default(), 10).await.unwrap();
    assert_eq!(
        batch.events.len(),
        3,
        "a transaction in another database held the follower back"
    );
    let head = store
        .committed_head()
        .await
        .unwrap()
        .map(|(position, _)| position);
    assert_eq!(head, Some(batch.next));
    open.rollback().await.unwrap();
    drop_schemas_of("a_transaction_open_elsewhere_on_the_server_holds_no_follower_back").await;
}

/// Workers starting together on a fresh database and schema: creating the schema and the
/// migration ledger take turns, so every one of them opens the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_starting_together_on_a_fresh_schema_all_open_it() {
    for round in 0..5 {
        let schema = schema_of(&format!("workers_starting_together_{round}"));
        // In one task, so the four opens interleave on the server, not in threads.
        let open = || async {
            let db = Db::connect_postgres(&database_url(), Some(&schema))
                .await
                .map_err(|error| error.to_string())?;
            EventStore::open(db, ops_tests::linked_registry())
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        };
        let (a, b, c, d) = tokio::join!(open(), open(), open(), open());
        for opened in [a, b, c, d] {
            opened.unwrap_or_else(|error| panic!("round {round}: {error}"));
        }
    }
    drop_schemas_of("workers_starting_together").await;
}

/// Waits until a session waits for the advisory lock `key` (a one-number lock reads as
/// `classid` 0, `objid` the key, `objsubid` 1): the held append, not any other test's
/// session waiting on a lock of its own (migrations take advisory locks too).
async fn wait_until_blocked(pool: &sqlx::PgPool, key: i64) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND classid = 0 AND objid = $1::bigint::oid AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the held append never reached its insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_lost_mid_batch_stores_nothing() {
    const HOLD_KEY: i64 = 4343;
    let _turn = ONE_AT_A_TIME.lock().await;
    let store = Backend::Postgres
        .store("a_connection_lost_mid_batch_stores_nothing")
        .await;
    let pool = hold_inserts(&store, HOLD_KEY).await;
    let _gate = gate(HOLD_KEY).await;
    let batch: Vec<EventEnvelope> = (0..50).map(|n| opened(&format!("lost-{n}"))).collect();
    let cursor = CursorUpdate {
        connector_id: "tickets".to_owned(),
        stream: "tickets".to_owned(),
        cursor: "0001.jsonl:50".to_owned(),
        watermark: None,
        expected: CursorFence::Is(None),
    };
    let append = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append_with_cursor("held", ExpectedVersion::Any, &batch, Some(&cursor))
                .await
        })
    };
    wait_until_blocked(&pool, HOLD_KEY).await;
    // The database goes away for the writing session in the middle of its batch.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO core_events%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    let error = append.await.unwrap().unwrap_err();
    assert!(matches!(error, AppendError::Database(_)), "{error}");
    assert!(error.to_string().contains("nothing was written"), "{error}");
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.cursor("tickets", "tickets").await.unwrap().is_none());
    drop_schemas_of("a_connection_lost_mid_batch_stores_nothing").await;
}
