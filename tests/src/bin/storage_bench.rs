//! Storage benchmarks, each against a baseline measured in the same run on the same
//! machine: append vs. a raw sqlx multi-row `INSERT` of the same rows in one transaction,
//! replay vs. a raw sqlx `SELECT ... ORDER BY` with `serde_json::from_str`, `event_id`
//! derivation vs. `serde_json::to_vec` + `blake3`, and outbox dispatch vs. a raw
//! claim-and-delete loop on the same table, receipts retention vs. one raw `DELETE`, and
//! commands on a long stream through a bus that keeps its handlers' states vs. a new bus
//! per command, and the jail's cost: projection catch-up (with upcasting) and command
//! decisions with pack code in a confined runner against the same in process. Run through `cargo xtask bench`, which
//! builds it in release. Prints one JSON object per line.

use ops_core_runtime::clock::WallClock;
use std::time::{Duration, Instant};

use ops_contract_incidents::{IncidentOpened, Severity, v1};
use ops_core::capability::Scope;
use ops_core::envelope::EventEnvelope;
use ops_core_runtime::db::{Db, Dialect, on_db};
use ops_core_runtime::egress::{BoxFuture, Dispatcher, Executor, Gateway};
use ops_core_runtime::store::{CanonicalKey, ExpectedVersion};
use ops_shared_people::ServiceRef;
use ops_tests::origin_at;
use ops_tests::storage::Backend;
use serde_json::json;
use sqlx::QueryBuilder;

fn opened(run: &str, n: usize) -> EventEnvelope {
    opened_at(
        run,
        n,
        1_795_000_000_000_000 + (n as i64 % 5_000) * 1_000_000,
    )
}

/// Incident `n` opened at `at` (microseconds since the epoch).
fn opened_at(run: &str, n: usize, at: i64) -> EventEnvelope {
    let event = IncidentOpened {
        incident_id: format!("INC-{n}"),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: format!("service-{}", n % 17),
        },
        title: "Card authorisations time out for one issuer".to_owned(),
        severity: Severity::Sev2,
    };
    EventEnvelope::new(
        &event,
        origin_at(&format!("{run}-{n}"), at, "bench", Some(n as u64)),
    )
    .unwrap()
}

/// One in ten is a stored v1 payload, so replay upcasts.
fn mixed(run: &str, n: usize) -> EventEnvelope {
    if n.is_multiple_of(10) {
        let event = v1::IncidentOpened {
            incident_id: format!("INC-{n}"),
            service: "checkout".to_owned(),
            title: "Checkout returns 502".to_owned(),
        };
        let at = 1_795_000_000_000_000 + (n as i64 % 5_000) * 1_000_000;
        EventEnvelope::new(
            &event,
            origin_at(&format!("{run}-{n}"), at, "bench", Some(n as u64)),
        )
        .unwrap()
    } else {
        opened(run, n)
    }
}

/// One timing, as raw durations; `cargo xtask bench` turns them into rates and a ratio.
fn report(name: &str, items: usize, ours: Duration, baseline: Duration) {
    println!("{}", timing(name, items, ours, baseline));
}

/// As [`report`], with a second baseline: the engine's own limit for the same rows.
fn report_with_engine(
    name: &str,
    items: usize,
    ours: Duration,
    baseline: Duration,
    engine: Duration,
) {
    let mut timing = timing(name, items, ours, baseline);
    timing["engine_s"] = json!(engine.as_secs_f64());
    println!("{timing}");
}

fn timing(name: &str, items: usize, ours: Duration, baseline: Duration) -> serde_json::Value {
    json!({
        "name": name,
        "items": items,
        "ours_s": ours.as_secs_f64(),
        "baseline_s": baseline.as_secs_f64(),
    })
}

/// The same table as `core_events`, with the same indexes, for the raw baseline.
const RAW_TABLE: &str = "CREATE TABLE bench_raw AS SELECT * FROM core_events WHERE 1 = 0;
CREATE UNIQUE INDEX bench_raw_event_id ON bench_raw (event_id);
CREATE UNIQUE INDEX bench_raw_stream ON bench_raw (stream_id, stream_version);
CREATE INDEX bench_raw_canonical ON bench_raw (occurred_at_us, source_ref, source_sequence_key, event_id);
CREATE INDEX bench_raw_follow ON bench_raw (tx_order, seq);
CREATE INDEX bench_raw_type ON bench_raw (event_type, tx_order, seq);
CREATE INDEX bench_raw_correlation ON bench_raw (correlation_id, seq);";

/// A row as the raw baseline inserts it, prepared before the clock starts.
struct RawRow {
    seq: i64,
    event_id: String,
    stream_version: i64,
    event_type: String,
    occurred_at_us: i64,
    source_ref: String,
    source_sequence_key: i64,
    correlation_id: String,
    envelope: String,
    stream_bucket: i64,
}

/// Inserts `rows` into `bench_raw` in transaction `tx`, 500 to a multi-row `INSERT` (a
/// macro: the same code for either backend's transaction type).
macro_rules! raw_insert_rows {
    ($tx:expr, $rows:expr, $dialect:expr) => {
        for chunk in $rows.chunks(500) {
            let mut query = QueryBuilder::new(
                "INSERT INTO bench_raw (seq, tx_order, event_id, stream_id, stream_version, event_type, \
                 payload_schema_version, occurred_at_us, source_ref, source_sequence_key, correlation_id, \
                 recorded_at_us, envelope, stream_bucket) ",
            );
            query.push_values(chunk, |mut row, raw: &RawRow| {
                row.push_bind(raw.seq)
                    .push($dialect.tx_order_expr())
                    .push_bind(raw.event_id.as_str())
                    .push_bind("bench")
                    .push_bind(raw.stream_version)
                    .push_bind(raw.event_type.as_str())
                    .push_bind(2i64)
                    .push_bind(raw.occurred_at_us)
                    .push_bind(raw.source_ref.as_str())
                    .push_bind(raw.source_sequence_key)
                    .push_bind(raw.correlation_id.as_str())
                    .push_bind(0i64)
                    .push_bind(raw.envelope.as_str())
                    .push_bind(raw.stream_bucket);
            });
            query.push(" ON CONFLICT (event_id) DO NOTHING");
            query.build().execute(&mut *$tx).await.unwrap();
        }
    };
}

/// The statements an append of `rows` runs, through sqlx with nothing of the store around
/// them: the write lock taken at `BEGIN` on SQLite (the appends' shared lock with the
/// stream's version on PostgreSQL), the stream's version, the multi-row insert, the commit;
/// on SQLite, a batch that fits one insert is one statement that reads the version itself,
/// outside a transaction, as the store writes it.
async fn raw_insert(db: &Db, rows: &[RawRow]) {
    raw_insert_closing(db, rows, &[]).await;
}

/// [`raw_insert`], and the outbox rows of `closing` (command ids) deleted in the same
/// transaction, as a receipt and what it receipts are written together.
async fn raw_insert_closing(db: &Db, rows: &[RawRow], closing: &[String]) {
    if let (Db::Sqlite(pool), 1..=500, []) = (db, rows.len(), closing) {
        let mut query = QueryBuilder::new(
            "WITH current(version) AS (SELECT COALESCE((SELECT stream_version FROM bench_raw \
             WHERE stream_id = 'bench' ORDER BY stream_version DESC LIMIT 1), 0)), \
             batch(position, seq, event_id, event_type, occurred_at_us, source_ref, \
             source_sequence_key, correlation_id, envelope, stream_bucket) AS (",
        );
        query.push_values(rows.iter().enumerate(), |mut row, (index, raw)| {
            row.push_bind(index as i64 + 1)
                .push_bind(raw.seq)
                .push_bind(raw.event_id.as_str())
                .push_bind(raw.event_type.as_str())
                .push_bind(raw.occurred_at_us)
                .push_bind(raw.source_ref.as_str())
                .push_bind(raw.source_sequence_key)
                .push_bind(raw.correlation_id.as_str())
                .push_bind(raw.envelope.as_str())
                .push_bind(raw.stream_bucket);
        });
        query.push(
            ") INSERT INTO bench_raw (seq, tx_order, event_id, stream_id, stream_version, event_type, \
             payload_schema_version, occurred_at_us, source_ref, source_sequence_key, correlation_id, \
             recorded_at_us, envelope, stream_bucket) \
             SELECT batch.seq, 0, batch.event_id, 'bench', current.version + batch.position, \
             batch.event_type, 2, batch.occurred_at_us, batch.source_ref, batch.source_sequence_key, \
             batch.correlation_id, 0, batch.envelope, batch.stream_bucket FROM current, batch \
             ORDER BY batch.position RETURNING stream_version",
        );
        let versions: Vec<i64> = query.build_query_scalar().fetch_all(pool).await.unwrap();
        assert_eq!(versions.len(), rows.len(), "every row is inserted");
        return;
    }
    const VERSION: &str = "SELECT COALESCE((SELECT stream_version FROM bench_raw WHERE stream_id = $1 \
         ORDER BY stream_version DESC LIMIT 1), 0)";
    let (begin, version) = match db.dialect() {
        Dialect::Sqlite => ("BEGIN IMMEDIATE", VERSION.to_owned()),
        Dialect::Postgres => (
            "BEGIN",
            format!(
                "{VERSION} FROM (SELECT pg_advisory_xact_lock_shared(28528, hashtext(current_schema()))) AS appending"
            ),
        ),
    };
    on_db!(db, pool => {
        let mut tx = pool.begin_with(begin).await.unwrap();
        let _: i64 = sqlx::query_scalar(&version)
            .bind("bench")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        raw_insert_rows!(tx, rows, db.dialect());
        if !closing.is_empty() {
            let mut query = QueryBuilder::new("DELETE FROM core_outbox WHERE command_id IN (");
            let mut keys = query.separated(", ");
            for key in closing {
                keys.push_bind(key.as_str());
            }
            query.push(")");
            query.build().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
}

/// Four writers appending batches of ten to streams of their own at once, against four
/// writers inserting the same rows into a bare table at once: what the store's ordering
/// (the commit-order lock followers rely on, stream versions, dedupe) costs concurrent
/// appenders.
async fn concurrent_append_bench(backend: Backend, batches: usize) {
    const WRITERS: usize = 4;
    const BATCH: usize = 10;
    let name = format!("append_concurrent_{WRITERS}x{BATCH}_{backend:?}").to_lowercase();
    let events: Vec<EventEnvelope> = (0..WRITERS * BATCH * batches)
        .map(|n| opened(&name, n))
        .collect();
    let share = events.len() / WRITERS;
    let [ours, baseline] = in_turns(APPEND_ROUNDS, async |round, side| {
        if side == 0 {
            let store = backend.store(&format!("bench_{name}_ours_{round}")).await;
            let append = |writer: usize| {
                let (store, events) =
                    (store.clone(), &events[writer * share..(writer + 1) * share]);
                async move {
                    for chunk in events.chunks(BATCH) {
                        store
                            .append(&format!("bench-{writer}"), ExpectedVersion::Any, chunk)
                            .await
                            .unwrap();
                    }
                }
            };
            let started = Instant::now();
            tokio::join!(append(0), append(1), append(2), append(3));
            let elapsed = started.elapsed();
            store.db().close().await;
            elapsed
        } else {
            let raw = backend.store(&format!("bench_{name}_raw_{round}")).await;
            on_db!(raw.db(), pool => sqlx::raw_sql(RAW_TABLE).execute(pool).await.map(drop))
                .unwrap();
            let insert = |writer: usize| {
                let (db, events) = (
                    raw.db().clone(),
                    &events[writer * share..(writer + 1) * share],
                );
                async move {
                    for (n, chunk) in events.chunks(BATCH).enumerate() {
                        raw_insert(&db, &raw_rows(chunk, writer * share + n * BATCH)).await;
                    }
                }
            };
            let started = Instant::now();
            tokio::join!(insert(0), insert(1), insert(2), insert(3));
            let elapsed = started.elapsed();
            raw.db().close().await;
            elapsed
        }
    })
    .await;
    report(&name, events.len(), median(ours), median(baseline));
}

/// The rows a bare insert of `events` writes, for the baselines.
/// Built inside the baselines' timings, as the store serialises inside its own: both start
/// from the same envelopes. `first` is the log position of the first.
fn raw_rows(events: &[EventEnvelope], first: usize) -> Vec<RawRow> {
    // One stream, hashed once an append, as the store does.
    let bucket = ops_core_runtime::store::stream_bucket("bench");
    events
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let key = CanonicalKey::of(e);
            let position = (first + index) as i64 + 1;
            RawRow {
                seq: position,
                event_id: key.event_id,
                stream_version: position,
                event_type: e.event_type.clone(),
                occurred_at_us: key.occurred_at_us,
                source_ref: key.source_ref,
                source_sequence_key: key.source_sequence_key,
                correlation_id: e.correlation_id.to_string(),
                envelope: serde_json::to_string(e).unwrap(),
                stream_bucket: bucket,
            }
        })
        .collect()
}

/// Rounds per benchmark of the longer kinds (replay, dispatch, catch-up); each side's median
/// counts.
const ROUNDS: usize = 3;

/// Rounds per append benchmark; each side's median counts. An append bench times a fraction
/// of a second a side, where one slow flush of the server moves a round by a tenth: five rounds
/// make the median one round's, not one flush's.
const APPEND_ROUNDS: usize = 5;

/// The middle one of a side's timings, one per round.
fn median(mut timings: Vec<Duration>) -> Duration {
    timings.sort();
    timings[timings.len() / 2]
}

/// Runs `side(round, side)` for each of `SIDES` sides in each of `rounds` rounds, each side
/// first in turn, so none is always the one that meets the server still flushing what the
/// last round wrote. What each side returned, in round order.
async fn in_turns<const SIDES: usize, T>(
    rounds: usize,
    mut side: impl AsyncFnMut(usize, usize) -> T,
) -> [Vec<T>; SIDES] {
    let mut results: [Vec<T>; SIDES] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for turn in 0..SIDES {
            let which = (round + turn) % SIDES;
            results[which].push(side(round, which).await);
        }
    }
    results
}

async fn append_bench(backend: Backend, batch: usize, batches: usize) {
    let name = format!("append_batch_{batch}_{backend:?}").to_lowercase();
    let events: Vec<EventEnvelope> = (0..batch * batches).map(|n| opened(&name, n)).collect();
    // Each side writes into a fresh database of its own, so neither pays for the other's
    // checkpoints.
    let [ours, baseline, engine] = in_turns(APPEND_ROUNDS, async |round, side| match side {
        0 => {
            let store = backend.store(&format!("bench_{name}_ours_{round}")).await;
            let started = Instant::now();
            for chunk in events.chunks(batch) {
                store
                    .append("bench", ExpectedVersion::Any, chunk)
                    .await
                    .unwrap();
            }
            let elapsed = started.elapsed();
            store.db().close().await;
            elapsed
        }
        1 => {
            let raw = backend.store(&format!("bench_{name}_raw_{round}")).await;
            on_db!(raw.db(), pool => sqlx::raw_sql(RAW_TABLE).execute(pool).await.map(drop))
                .unwrap();
            let started = Instant::now();
            for (n, chunk) in events.chunks(batch).enumerate() {
                raw_insert(raw.db(), &raw_rows(chunk, n * batch)).await;
            }
            let elapsed = started.elapsed();
            raw.db().close().await;
            elapsed
        }
        _ => {
            let label = format!("bench_{name}_engine_{round}");
            engine_insert(backend, &label, &events, batch).await
        }
    })
    .await;
    report_with_engine(
        &name,
        events.len(),
        median(ours),
        median(baseline),
        median(engine),
    );
}

/// The engine's own limit for the rows the raw baseline inserts, `batch` to a transaction,
/// on a fresh database of `label` with the same table and indexes: on SQLite, its C API
/// (`rusqlite`) with one prepared statement stepped once a row, on a connection with the
/// store's settings (WAL, `synchronous = NORMAL`); on PostgreSQL, `COPY … FROM STDIN` (CSV),
/// one a batch. Neither goes through sqlx, so the gap to the raw baseline is sqlx's own.
async fn engine_insert(
    backend: Backend,
    label: &str,
    events: &[EventEnvelope],
    batch: usize,
) -> Duration {
    let store = backend.store(label).await;
    on_db!(store.db(), pool => sqlx::raw_sql(RAW_TABLE).execute(pool).await.map(drop)).unwrap();
    match store.db() {
        Db::Sqlite(_) => {
            store.db().close().await;
            let connection =
                rusqlite::Connection::open(ops_tests::storage::sqlite_path(label)).unwrap();
            connection
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .unwrap();
            let started = Instant::now();
            for (n, chunk) in events.chunks(batch).enumerate() {
                let chunk = raw_rows(chunk, n * batch);
                connection.execute_batch("BEGIN IMMEDIATE").unwrap();
                let mut insert = connection
                    .prepare_cached(
                        "INSERT INTO bench_raw (seq, tx_order, event_id, stream_id, stream_version, event_type, \
                         payload_schema_version, occurred_at_us, source_ref, source_sequence_key, correlation_id, \
                         recorded_at_us, envelope, stream_bucket) VALUES (?1, 0, ?2, 'bench', ?3, ?4, 2, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
                    )
                    .unwrap();
                for raw in &chunk {
                    insert
                        .execute(rusqlite::params![
                            raw.seq,
                            raw.event_id,
                            raw.stream_version,
                            raw.event_type,
                            raw.occurred_at_us,
                            raw.source_ref,
                            raw.source_sequence_key,
                            raw.correlation_id,
                            raw.envelope,
                            raw.stream_bucket,
                        ])
                        .unwrap();
                }
                connection.execute_batch("COMMIT").unwrap();
            }
            started.elapsed()
        }
        Db::Postgres(pool) => {
            use sqlx::postgres::PgPoolCopyExt;
            let started = Instant::now();
            for (n, chunk) in events.chunks(batch).enumerate() {
                let mut csv = String::new();
                for raw in raw_rows(chunk, n * batch) {
                    let quoted = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
                    csv.push_str(&format!(
                        "{},0,{},bench,{},{},2,{},{},{},{},0,{},{}\n",
                        raw.seq,
                        quoted(&raw.event_id),
                        raw.stream_version,
                        quoted(&raw.event_type),
                        raw.occurred_at_us,
                        quoted(&raw.source_ref),
                        raw.source_sequence_key,
                        quoted(&raw.correlation_id),
                        quoted(&raw.envelope),
                        raw.stream_bucket,
                    ));
                }
                let mut copy = pool
                    .copy_in_raw(
                        "COPY bench_raw (seq, tx_order, event_id, stream_id, stream_version, event_type, \
                         payload_schema_version, occurred_at_us, source_ref, source_sequence_key, correlation_id, \
                         recorded_at_us, envelope, stream_bucket) FROM STDIN WITH (FORMAT csv)",
                    )
                    .await
                    .unwrap();
                copy.send(csv.into_bytes()).await.unwrap();
                copy.finish().await.unwrap();
            }
            let elapsed = started.elapsed();
            store.db().close().await;
            elapsed
        }
    }
}

/// Appends `events` to stream `bench` and settles the database: a store's contents before
/// anything is timed.
async fn fill(store: &ops_core_runtime::store::EventStore, events: &[EventEnvelope]) {
    append_all(store, events).await;
    settle(store.db()).await;
}

/// Appends `events` to stream `bench`, a thousand to a batch.
async fn append_all(store: &ops_core_runtime::store::EventStore, events: &[EventEnvelope]) {
    for chunk in events.chunks(1000) {
        store
            .append("bench", ExpectedVersion::Any, chunk)
            .await
            .unwrap();
    }
}

/// After a fill, before anything is timed: SQLite copies its write-ahead log into the
/// database file now, rather than in whichever timed run passes the log's size limit
/// (megabytes of the fill written back in the middle of one side's timing, not the
/// other's); PostgreSQL vacuums and gathers the new tables' statistics now, rather than
/// whenever autovacuum gets to them, so both sides are planned on the same statistics and
/// neither is the first to read the new rows (the first reader of a row marks it
/// committed and writes its page again: seconds of a million-event replay, on whichever
/// side ran first).
async fn settle(db: &Db) {
    match db {
        Db::Sqlite(pool) => sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .map(drop),
        // This store's tables only: a bare `ANALYZE` reads every schema of the database,
        // the other benchmarks' millions of rows among them.
        Db::Postgres(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
                 WHERE schemaname = current_schema()",
            )
            .fetch_all(pool)
            .await
            .expect("listing the store's tables");
            sqlx::raw_sql(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
                .execute(pool)
                .await
                .map(drop)
        }
    }
    .expect("settling the database after a fill");
}

async fn replay_bench(backend: Backend, count: usize) {
    let name = format!("replay_{count}_{backend:?}").to_lowercase();
    let store = backend.store(&format!("bench_{name}")).await;
    let events: Vec<EventEnvelope> = (0..count).map(|n| mixed(&name, n)).collect();
    fill(&store, &events).await;
    // The sides alternate, each first in turn, so all see the same page cache and machine.
    let [ours, baseline, engine] = in_turns(ROUNDS, async |_, side| {
        let started = Instant::now();
        let replayed = match side {
            0 => replay_all(&store).await,
            1 => raw_replay_all(store.db()).await,
            _ => engine_replay_all(backend, &format!("bench_{name}"), store.db()).await,
        };
        let elapsed = started.elapsed();
        assert_eq!(replayed, count);
        elapsed
    })
    .await;
    report_with_engine(&name, count, median(ours), median(baseline), median(engine));
}

/// The engine's own limit for a replay: the same columns of every row in canonical order,
/// each envelope decoded into the same type, without sqlx. On SQLite, the C API (`rusqlite`,
/// one prepared statement stepped through the whole log on a connection of its own to the
/// same file); on PostgreSQL, `COPY (SELECT …) TO STDOUT`, its text rows split and the
/// envelope unescaped. Returns how many it decoded.
async fn engine_replay_all(backend: Backend, label: &str, db: &Db) -> usize {
    const COLUMNS: &str = "seq, tx_order, stream_id, stream_version, recorded_at_us, envelope";
    const ORDER: &str = "ORDER BY occurred_at_us, source_ref, source_sequence_key, event_id";
    match (backend, db) {
        (Backend::Sqlite, _) => {
            let connection =
                rusqlite::Connection::open(ops_tests::storage::sqlite_path(label)).unwrap();
            let mut select = connection
                .prepare(&format!("SELECT {COLUMNS} FROM core_events {ORDER}"))
                .unwrap();
            let mut rows = select.query([]).unwrap();
            let mut decoded = 0;
            while let Some(row) = rows.next().unwrap() {
                let _: (i64, i64, String, i64, i64) = (
                    row.get(0).unwrap(),
                    row.get(1).unwrap(),
                    row.get(2).unwrap(),
                    row.get(3).unwrap(),
                    row.get(4).unwrap(),
                );
                let text = row.get_ref(5).unwrap().as_str().unwrap();
                std::hint::black_box(serde_json::from_str::<EventEnvelope>(text).unwrap());
                decoded += 1;
            }
            decoded
        }
        (_, Db::Postgres(pool)) => {
            use futures_util::TryStreamExt;
            use sqlx::postgres::PgPoolCopyExt;
            let mut copy = pool
                .copy_out_raw(&format!(
                    "COPY (SELECT {COLUMNS} FROM core_events {ORDER}) TO STDOUT"
                ))
                .await
                .unwrap();
            let (mut pending, mut decoded) = (Vec::new(), 0);
            while let Some(chunk) = copy.try_next().await.unwrap() {
                pending.extend_from_slice(&chunk);
                let complete = pending
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |n| n + 1);
                for line in pending[..complete]
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    let envelope = line.rsplit(|b| *b == b'\t').next().unwrap();
                    let text = unescape_copy_text(envelope);
                    std::hint::black_box(serde_json::from_str::<EventEnvelope>(&text).unwrap());
                    decoded += 1;
                }
                pending.drain(..complete);
            }
            decoded
        }
        (Backend::Postgres, Db::Sqlite(_)) => unreachable!("a PostgreSQL store is on PostgreSQL"),
    }
}

/// A column of `COPY … TO STDOUT` text, its backslash escapes undone (JSON text has no
/// tab or newline of its own, only its escapes, which come doubled).
fn unescape_copy_text(column: &[u8]) -> String {
    let mut text = Vec::with_capacity(column.len());
    let mut bytes = column.iter();
    while let Some(&byte) = bytes.next() {
        if byte == b'\\' {
            match bytes.next() {
                Some(b'n') => text.push(b'\n'),
                Some(b't') => text.push(b'\t'),
                Some(b'r') => text.push(b'\r'),
                Some(&other) => text.push(other),
                None => {}
            }
        } else {
            text.push(byte);
        }
    }
    String::from_utf8(text).unwrap()
}

/// A million events replayed (ours, then the raw baseline), with each side's peak resident
/// memory while it replays: the log is filled a thousand events at a time, the peak is reset
/// before each side (`/proc/self/clear_refs`), and read after it (`VmHWM`). Flat memory
/// means the peak stays near a page's worth whatever the log's length.
async fn replay_memory_bench(backend: Backend, count: usize) {
    let name = format!("replay_{count}_{backend:?}").to_lowercase();
    let store = backend.store(&format!("bench_{name}")).await;
    for start in (0..count).step_by(1000) {
        let events: Vec<EventEnvelope> = (start..start + 1000).map(|n| mixed(&name, n)).collect();
        append_all(&store, &events).await;
    }
    settle(store.db()).await;
    let resident = || {
        std::fs::write("/proc/self/clear_refs", "5").expect("the peak can be reset");
        peak_resident_mb()
    };
    let before_ours = resident();
    let started = Instant::now();
    assert_eq!(replay_all(&store).await, count);
    let ours = started.elapsed();
    let ours_peak = peak_resident_mb();
    let before_baseline = resident();
    let started = Instant::now();
    assert_eq!(raw_replay_all(store.db()).await, count);
    let baseline = started.elapsed();
    let baseline_peak = peak_resident_mb();
    let mut timing = timing(&name, count, ours, baseline);
    timing["peak_rss_mb"] = json!(ours_peak);
    timing["rss_before_mb"] = json!(before_ours);
    timing["baseline_peak_rss_mb"] = json!(baseline_peak);
    timing["baseline_rss_before_mb"] = json!(before_baseline);
    println!("{timing}");
}

/// This process's peak resident memory since it was last reset, in MiB (`VmHWM`).
fn peak_resident_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Replays the whole log in canonical order, 5,000 events to a page, each page's payloads
/// brought to their current versions at once (as a rebuild does); returns how many.
async fn replay_all(store: &ops_core_runtime::store::EventStore) -> usize {
    let mut read = 0;
    let mut after = None;
    loop {
        let page = store.replay(after.as_ref(), 5_000).await.unwrap();
        let Some(last) = page.last() else {
            return read;
        };
        after = Some(CanonicalKey::of(&last.envelope));
        let envelopes: Vec<&EventEnvelope> = page.iter().map(|event| &event.envelope).collect();
        read += std::hint::black_box(store.current_sealed_payloads(&envelopes)).len();
    }
}

/// The replay's baseline: the same statement (the same columns in the same order, in pages
/// of the same size by the same keyset), each envelope decoded into the same type; everything but the upcasting.
async fn raw_replay_all(db: &Db) -> usize {
    let mut after = CanonicalKey {
        occurred_at_us: i64::MIN,
        source_ref: String::new(),
        source_sequence_key: i64::MIN,
        event_id: String::new(),
    };
    let mut decoded = 0;
    loop {
        let rows: Vec<(i64, i64, String, i64, i64, String)> = on_db!(db, pool => {
            sqlx::query_as(
                "SELECT seq, tx_order, stream_id, stream_version, recorded_at_us, envelope FROM core_events \
                 WHERE (occurred_at_us, source_ref, source_sequence_key, event_id) > ($1, $2, $3, $4) \
                 AND (tx_order, seq) <= ($5, $6) \
                 ORDER BY occurred_at_us, source_ref, source_sequence_key, event_id LIMIT $7",
            )
            .bind(after.occurred_at_us)
            .bind(after.source_ref.as_str())
            .bind(after.source_sequence_key)
            .bind(after.event_id.as_str())
            .bind(i64::MAX)
            .bind(i64::MAX)
            .bind(5000_i64)
            .fetch_all(pool)
            .await
            .unwrap()
        });
        if rows.is_empty() {
            return decoded;
        }
        // Each row's text freed once decoded, as the store does.
        let envelopes: Vec<EventEnvelope> = rows
            .into_iter()
            .map(|row| serde_json::from_str(&row.5).unwrap())
            .collect();
        after = CanonicalKey::of(envelopes.last().unwrap());
        decoded += std::hint::black_box(envelopes).len();
    }
}

/// An event's id from its typed payload and origin, as [`EventEnvelope::new`] derives it
/// (the payload's canonical form written straight into the hasher, then the id over the
/// origin and that hash), against the same payload through `serde_json::to_vec` and one
/// blake3 hash: serialising and hashing the same value, less the canonical order and the
/// second hash an id needs. `event_envelope` is the whole envelope against the same
/// baseline: the id, and the payload built as the `serde_json::Value` the envelope keeps.
fn event_id_bench(count: usize) {
    use ops_core::id::{EventId, EventIdInputs, payload_hash_of};
    // A round takes milliseconds: more of them than the storage rows take.
    const ID_ROUNDS: usize = 7;
    let events: Vec<IncidentOpened> = (0..count)
        .map(|n| IncidentOpened {
            incident_id: format!("INC-{n}"),
            service: ServiceRef {
                system: "catalogue".to_owned(),
                id: "payments".to_owned(),
            },
            title: "Card authorisations time out".to_owned(),
            severity: Severity::Sev1,
        })
        .collect();
    let origin = origin_at("id-bench", 1_795_000_000_000_000, "bench", None);
    let baseline = || {
        let started = Instant::now();
        for event in &events {
            let bytes = serde_json::to_vec(event).unwrap();
            std::hint::black_box(blake3::hash(&bytes));
        }
        started.elapsed()
    };
    let ids = || {
        let started = Instant::now();
        for event in &events {
            std::hint::black_box(EventId::derive(EventIdInputs {
                source_ref: &origin.source_ref,
                source_native_id: &origin.source_native_id,
                payload_hash: &payload_hash_of(event).unwrap(),
                occurred_at: origin.occurred_at,
            }));
        }
        started.elapsed()
    };
    let envelopes = || {
        let started = Instant::now();
        for event in &events {
            std::hint::black_box(EventEnvelope::new(event, origin.clone()).unwrap().event_id);
        }
        started.elapsed()
    };
    // The same ids, or the bench measures something else.
    let first = EventEnvelope::new(&events[0], origin.clone()).unwrap();
    assert_eq!(first.payload_hash, payload_hash_of(&events[0]).unwrap());
    // Rounds alternate the sides, so both see the same machine; each side's median counts.
    let rounds = |ours: &dyn Fn() -> Duration| {
        let (mine, theirs): (Vec<Duration>, Vec<Duration>) =
            (0..ID_ROUNDS).map(|_| (ours(), baseline())).unzip();
        (median(mine), median(theirs))
    };
    let (ours, against) = rounds(&ids);
    report("event_id", count, ours, against);
    let (ours, against) = rounds(&envelopes);
    report("event_envelope", count, ours, against);
}

/// Fills the outbox with `count` pages in `state`, as the command bus (and, for a closed
/// state, a dispatcher long ago) would have.
async fn fill_outbox(db: &Db, count: usize, capability: &str, state: &str) {
    let actor = r#"{"kind":"human","id":"ada@example.com"}"#;
    on_db!(db, pool => {
        let mut tx = pool.begin().await.unwrap();
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            let mut query = QueryBuilder::new(
                "INSERT INTO core_outbox (command_id, command_type, destination, tenant_id, idempotency_key, \
                 request_hash, request, actor, capability_id, approval, state, attempts, claimed_by, \
                 claimed_until_us, created_at_us, updated_at_us) ",
            );
            query.push_values(chunk, |mut row, n| {
                row.push_bind(format!("cmd_{n:064x}"))
                    .push_bind("pack.incidents.paging.PageResponder")
                    .push_bind("pager")
                    .push_bind("acme")
                    .push_bind(format!("b3_{n:064x}"))
                    .push_bind(format!("b3_{n:064x}"))
                    .push_bind(r#"{"incident_id":"INC-1"}"#)
                    .push_bind(actor)
                    .push_bind(capability)
                    .push_bind(r#"{"kind":"policy","policy_id":"paging","policy_version":"1.0.0"}"#)
                    .push_bind(state)
                    .push_bind(0i64)
                    .push_bind(None::<String>)
                    .push_bind(0i64)
                    .push_bind(0i64)
                    .push_bind(0i64);
            });
            query.build().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
    settle(db).await;
}

/// A destination that accepts everything at once.
struct NullSink;

impl Executor for NullSink {
    fn execute<'a>(
        &'a self,
        _: &'a ops_core::id::ContentHash,
        _: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// Outbox dispatch with 1, 2 and 4 dispatchers (claim, gateway, execute, receipt), each
/// against the same number of raw SQL workers doing the same durable work with the same
/// null executor, in [`ROUNDS`] rounds that run every count on fresh stores, each count
/// first in turn, so each count's median saw the same machine as the others: claim a batch (the same `UPDATE … RETURNING` columns, decoded as ours decodes
/// them), post each request, then in one transaction write three event rows per effect
/// (its `Dispatched` step, its `EgressExecuted` receipt and its `Executed` step: the same
/// event types with the same fields, so rows of the same size, into a copy of
/// `core_events` with the same indexes) and close the rows. Ours commits twice a batch
/// after the claim (the `Dispatched` steps must be durable before any destination is
/// reached) and checks every effect's capability; the ratio shows what both cost.
async fn dispatch_bench(backend: Backend, count: usize) {
    const WORKERS: [usize; 3] = [1, 2, 4];
    let timings: [Vec<(Duration, Duration)>; WORKERS.len()] =
        in_turns(ROUNDS, async |round, turn| {
            let workers = WORKERS[turn];
            let label = format!("dispatch_{workers}_{round}_{backend:?}").to_lowercase();
            dispatch_once(backend, &label, workers, count).await
        })
        .await;
    for (rounds, workers) in timings.into_iter().zip(WORKERS) {
        let (ours, baseline) = rounds.into_iter().unzip();
        let name = format!("dispatch_{workers}_{backend:?}").to_lowercase();
        report(&name, count, median(ours), median(baseline));
    }
}

/// One round of [`dispatch_bench`] with `workers` dispatchers, on fresh stores named after
/// `name`: how long ours took, and the raw baseline.
async fn dispatch_once(
    backend: Backend,
    name: &str,
    workers: usize,
    count: usize,
) -> (Duration, Duration) {
    // The responder's capability: the rows below are the responder's pages.
    let capability = ops_tests::commands::capability();
    let store = backend.store(&format!("bench_{name}_ours")).await;
    fill_outbox(store.db(), count, &capability.to_string(), "pending").await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let dispatcher = Dispatcher::new(
                store.clone(),
                &format!("bench-{worker}"),
                Gateway::default(),
                ops_tests::commands::authority(Scope::everything()),
            )
            .with_executor("pager", Box::new(NullSink));
            tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let report = dispatcher.dispatch(50).await.unwrap();
                    if report.executed == 0 {
                        return done;
                    }
                    done += report.executed;
                }
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap();
    }
    let ours = started.elapsed();
    assert_eq!(done, count);

    let raw = backend.store(&format!("bench_{name}_raw")).await;
    fill_outbox(raw.db(), count, &capability.to_string(), "pending").await;
    on_db!(raw.db(), pool => sqlx::raw_sql(RAW_TABLE).execute(pool).await.map(drop)).unwrap();
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (db, seq) = (raw.db().clone(), seq.clone());
            tokio::spawn(async move {
                let mut done = 0;
                while let Some(claimed) = raw_claim(&db, worker).await {
                    for effect in &claimed {
                        NullSink
                            .execute(&effect.request.idempotency_key, &effect.body)
                            .await
                            .unwrap();
                    }
                    raw_close(&db, worker, &claimed, &seq).await;
                    done += claimed.len();
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap();
    }
    let baseline = started.elapsed();
    assert_eq!(done, count);
    (ours, baseline)
}

/// A row the raw baseline claimed, decoded as the dispatcher decodes its own.
struct RawClaimed {
    id: i64,
    attempts: u32,
    request: ops_core::egress::EffectRequest,
    body: serde_json::Value,
}

/// The raw baseline's claim of up to 50 rows by `worker`, as the dispatcher's: `None` when
/// nothing is left.
async fn raw_claim(db: &Db, worker: usize) -> Option<Vec<RawClaimed>> {
    use ops_core::egress::{EffectRequest, Reversibility};
    let lock = match db {
        Db::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE core_outbox SET claimed_by = $1, claimed_until_us = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM core_outbox WHERE state = 'pending' AND claimed_until_us < $3 \
         ORDER BY id LIMIT 50 {lock}) \
         RETURNING id, command_id, command_type, destination, tenant_id, idempotency_key, request_hash, \
         request, actor, capability_id, approval, attempts, correlation_id, compensates, reversible, \
         approval_expires_us, created_at_us"
    );
    let now = ops_core::time::Timestamp::now().unix_micros();
    let rows: Vec<RawClaimed> = on_db!(db, pool => {
        use sqlx::Row;
        sqlx::query(&sql)
            .bind(format!("raw-{worker}"))
            .bind(now + 30_000_000)
            .bind(now)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let text = |column: &str| row.get::<String, _>(column);
                // Stored as 0 or 1 on both backends.
                let reversible = row.get::<i64, _>("reversible") != 0;
                RawClaimed {
                    id: row.get("id"),
                    attempts: row.get::<i64, _>("attempts") as u32,
                    request: EffectRequest {
                        command_id: text("command_id").parse().unwrap(),
                        destination: text("destination"),
                        tenant_id: text("tenant_id"),
                        idempotency_key: text("idempotency_key").parse().unwrap(),
                        request_hash: text("request_hash").parse().unwrap(),
                        requested_by: serde_json::from_str(&text("actor")).unwrap(),
                        capability_id: text("capability_id").parse().unwrap(),
                        reversibility: Some(if reversible {
                            Reversibility::Reversible
                        } else {
                            Reversibility::Irreversible
                        }),
                    },
                    body: serde_json::from_str(&text("request")).unwrap(),
                }
            })
            .collect()
    });
    (!rows.is_empty()).then_some(rows)
}

/// The raw baseline's writes for a posted batch, in one transaction: three events per
/// effect (as ours: its two steps and its receipt) and the rows closed while `worker`
/// still holds them, in one statement.
async fn raw_close(
    db: &Db,
    worker: usize,
    claimed: &[RawClaimed],
    seq: &std::sync::atomic::AtomicI64,
) {
    use ops_core::egress::{Approval, EffectState, EffectStateChanged, EgressExecuted};
    let events: Vec<EventEnvelope> = claimed
        .iter()
        .flat_map(|effect| {
            let command_id = effect.request.command_id;
            let origin = ops_tests::origin(&command_id.to_string());
            let step = |state| {
                let changed = EffectStateChanged {
                    command_id,
                    state,
                    attempt: effect.attempts,
                    note: None,
                    compensates: None,
                };
                EventEnvelope::new(&changed, origin.clone()).unwrap()
            };
            let executed = EgressExecuted {
                effect: effect.request.clone(),
                // As long as the capability event id ours names.
                capability_state_ref: command_id.to_string(),
                capability_chain: vec![effect.request.capability_id],
                approval: Approval::Actor {
                    actor: effect.request.requested_by.clone(),
                },
            };
            [
                step(EffectState::Dispatched),
                EventEnvelope::new(&executed, origin.clone()).unwrap(),
                step(EffectState::Executed),
            ]
        })
        .collect();
    let count = events.len() as i64;
    let first = seq.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    let rows = raw_rows(&events, first as usize);
    on_db!(db, pool => {
        let mut tx = pool.begin().await.unwrap();
        raw_insert_rows!(tx, rows, db.dialect());
        // One statement closes the batch, as ours does.
        let mut close = QueryBuilder::new("UPDATE core_outbox SET state = 'executed', claimed_by = NULL, updated_at_us = 0 WHERE claimed_by = ");
        close.push_bind(format!("raw-{worker}"));
        close.push(" AND state = 'pending' AND id IN (");
        let mut ids = close.separated(", ");
        for effect in claimed {
            ids.push_bind(effect.id);
        }
        close.push(")");
        let closed = close.build().execute(&mut *tx).await.unwrap().rows_affected();
        assert_eq!(closed, claimed.len() as u64, "each claimed row is closed");
        tx.commit().await.unwrap();
    });
}

/// The incident board caught up over `count` events by `workers` workers at once (each
/// starting the projection and catching up under its own leases, as `ops-host run` does),
/// against plain Rust doing the same durable work on a copy of the log in the same run
/// ([`raw_catch_up`]). One worker holds the projection's lease and the others find it held
/// (a projection is not split across workers), so more workers show what leases cost.
async fn catch_up_bench(backend: Backend, workers: usize, count: usize) {
    use ops_core_runtime::projection::ProjectionRunner;
    let name = format!("projection_catch_up_{workers}_{backend:?}").to_lowercase();
    let fill = |label: String| async move {
        let store = backend.store(&label).await;
        let events: Vec<EventEnvelope> = (0..count).map(|n| opened(&label, n)).collect();
        fill(&store, &events).await;
        store
    };
    let one = |store: ops_core_runtime::store::EventStore, holder: &'static str| async move {
        let leases = ops_core_runtime::leases::Leases::new(
            store.db().clone(),
            holder,
            std::time::Duration::from_secs(30),
        );
        ProjectionRunner::start_with_leases(store, &pack_incidents::IncidentBoard, leases)
            .unwrap()
            .catch_up()
            .await
            .unwrap();
    };
    let raw = fill(format!("bench_{name}_raw")).await;
    let started = Instant::now();
    let folded = raw_catch_up(raw.db()).await;
    let baseline = started.elapsed();
    assert_eq!(folded, count);

    let shared = fill(format!("bench_{name}_shared")).await;
    let started = Instant::now();
    // At once, interleaved on one task: the runners' futures are not `Send`.
    let worker = |holder| one(shared.clone(), holder);
    match workers {
        1 => worker("w1").await,
        2 => drop(tokio::join!(worker("w1"), worker("w2"))),
        _ => drop(tokio::join!(
            worker("w1"),
            worker("w2"),
            worker("w3"),
            worker("w4")
        )),
    }
    let ours = started.elapsed();
    report(&name, count, ours, baseline);
}

/// The incident board split four ways by stream, for [`split_catch_up_bench`].
struct SplitBoard;

impl ops_core::projection::Projection for SplitBoard {
    type Pack = pack_incidents::IncidentsPack;
    const NAME: &'static str = "split_board";
    const VERSION: u32 = 1;
    const SPLIT: ops_core::projection::Split =
        ops_core::projection::Split::ByStream { partitions: 4 };
    const EVENTS: &'static [ops_core::contract::EventType] =
        <pack_incidents::IncidentBoard as ops_core::projection::Projection>::EVENTS;

    fn apply(
        &self,
        event: &ops_core::projection::ProjectedEvent<'_>,
        state: &mut ops_core::projection::State,
    ) -> Result<(), String> {
        pack_incidents::IncidentBoard.apply(event, state)
    }
}

/// Incidents `0..count` in 500 streams, a stream's events in one append, eight appends at
/// once. A share of a split projection is the streams whose hash falls in it: with these
/// 500 names the two halves two workers run hold 54% and 46% of the events, which caps two
/// workers at 1.84× one whatever the runtime does (2,500 streams split 51.5% / 48.5%; kept
/// at 500 so the figures compare with earlier runs).
async fn fill_streams(store: &ops_core_runtime::store::EventStore, run: &str, count: usize) {
    use futures_util::{StreamExt, TryStreamExt};
    const STREAMS: usize = 500;
    futures_util::stream::iter(0..STREAMS.min(count))
        .map(|stream| async move {
            let events: Vec<EventEnvelope> = (stream..count)
                .step_by(STREAMS)
                .map(|n| opened(run, n))
                .collect();
            store
                .append(&format!("incident-{stream}"), ExpectedVersion::Any, &events)
                .await
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    settle(store.db()).await;
}

/// The board split four ways by stream, caught up over `count` events (in 500 streams) by
/// 1, 2 and 4 workers, each an OS thread with its own runtime and connections running its
/// share of the partitions (`p % workers`) under its own leases, as `ops-host run`
/// processes sharing one database do. Baseline: [`raw_catch_up`], one plain-Rust worker
/// folding the same events. Each of [`ROUNDS`] rounds runs the baseline and every worker
/// count once, each first in turn, on fresh stores, so each count's median saw the same
/// machine as the others
/// (`cargo xtask bench` says how much faster than one worker each count went).
async fn split_catch_up_bench(backend: Backend, count: usize) {
    const WORKERS: [usize; 3] = [1, 2, 4];
    let label = |workers: usize, round: usize| {
        format!("bench_split_catch_up_{workers}_{round}_{backend:?}").to_lowercase()
    };
    // The baseline is the last side: in turn first, as every worker count is.
    let [one, two, four, baseline] = in_turns(ROUNDS, async |round, turn| {
        let Some(&workers) = WORKERS.get(turn) else {
            let raw = backend.store(&label(0, round)).await;
            fill_streams(&raw, "raw", count).await;
            let started = Instant::now();
            let folded = raw_catch_up(raw.db()).await;
            let elapsed = started.elapsed();
            assert_eq!(folded, count);
            return elapsed;
        };
        split_catch_up(backend, &label(workers, round), count, workers).await
    })
    .await;
    let baseline = median(baseline);
    for (timings, workers) in [one, two, four].into_iter().zip(WORKERS) {
        let name = format!("projection_catch_up_split_{workers}_{backend:?}").to_lowercase();
        report(&name, count, median(timings), baseline);
    }
}

/// One run of [`split_catch_up_bench`]: `count` events caught up by `workers` workers, on
/// a fresh store named `label`, from when every worker has its store open (connections, the
/// migration ledger's read) until the last one is done, before it closes it: the baseline's
/// store is open before its clock starts and stays open after, and a host opens its store
/// once, not once a catch-up.
async fn split_catch_up(backend: Backend, label: &str, count: usize, workers: usize) -> Duration {
    use ops_core_runtime::projection::ProjectionRunner;
    let shared = backend.store(label).await;
    fill_streams(&shared, "split", count).await;
    let ready = std::sync::Arc::new(std::sync::Barrier::new(workers + 1));
    let threads: Vec<_> = (0..workers)
        .map(|worker| {
            let (label, ready) = (label.to_owned(), ready.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let store = runtime.block_on(backend.another_worker(&label));
                let leases = ops_core_runtime::leases::Leases::new(
                    store.db().clone(),
                    format!("w{worker}"),
                    std::time::Duration::from_secs(30),
                );
                ready.wait();
                runtime.block_on(async move {
                    for partition in ops_core_runtime::projection::partitions_of(&SplitBoard) {
                        if partition.index as usize % workers == worker {
                            ProjectionRunner::start_partition(
                                store.clone(),
                                &SplitBoard,
                                leases.clone(),
                                partition,
                            )
                            .unwrap()
                            .catch_up()
                            .await
                            .unwrap();
                        }
                    }
                    let finished = Instant::now();
                    store.db().close().await;
                    finished
                })
            })
        })
        .collect();
    ready.wait();
    let started = Instant::now();
    let finished = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .max()
        .expect("at least one worker");
    let elapsed = finished - started;
    let rows = ops_core_runtime::projection::stored_rows(&shared, &SplitBoard)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2 * count, "a row and an open row per incident");
    elapsed
}

/// The honest baseline of a catch-up: plain Rust that reads the board's event types in
/// commit order, 500 to a query (the runner's page), decodes each envelope, sorts the page
/// canonically (the board's declared order), applies the same fold in process, and writes
/// the changed rows (multi-row upserts) and a checkpoint in one transaction per page. No
/// leases, fences, quarantine, journal for late events or jail. Returns how many events it
/// folded.
async fn raw_catch_up(db: &Db) -> usize {
    use ops_core::projection::{DynProjection, ProjectedEvent, State};
    let board = &pack_incidents::IncidentBoard;
    let types: Vec<&str> = board.event_types().iter().map(|t| t.name()).collect();
    on_db!(db, pool => sqlx::raw_sql(
        "CREATE TABLE bench_board (tbl TEXT NOT NULL, key TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (tbl, key));
         CREATE TABLE bench_checkpoint (name TEXT PRIMARY KEY, tx_order BIGINT NOT NULL, seq BIGINT NOT NULL);
         INSERT INTO bench_checkpoint VALUES ('board', 0, 0);"
    ).execute(pool).await.map(drop)).unwrap();
    let in_list = (0..types.len())
        .map(|n| format!("${}", n + 4))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT tx_order, seq, stream_id, stream_version, envelope FROM core_events \
         WHERE (tx_order, seq) > ($1, $2) AND event_type IN ({in_list}) ORDER BY tx_order, seq LIMIT $3"
    );
    let mut state = State::default();
    let (mut after, mut folded) = ((0_i64, 0_i64), 0);
    loop {
        let rows: Vec<(i64, i64, String, i64, String)> = on_db!(db, pool => {
            let mut query = sqlx::query_as(&sql).bind(after.0).bind(after.1).bind(500_i64);
            for event_type in &types {
                query = query.bind(*event_type);
            }
            query.fetch_all(pool).await.unwrap()
        });
        let Some(last) = rows.last() else { break };
        after = (last.0, last.1);
        let mut page: Vec<(CanonicalKey, String, i64, EventEnvelope)> = rows
            .into_iter()
            .map(|(_, _, stream, version, text)| {
                let envelope: EventEnvelope = serde_json::from_str(&text).unwrap();
                (CanonicalKey::of(&envelope), stream, version, envelope)
            })
            .collect();
        page.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, stream_id, stream_version, envelope) in &page {
            let event = ProjectedEvent {
                envelope,
                stream_id,
                stream_version: *stream_version,
                payload: &envelope.payload,
                version: envelope.payload_schema_version,
            };
            board.apply(&event, &mut state).unwrap();
            folded += 1;
        }
        let changes = state.take_changes();
        on_db!(db, pool => {
            let mut tx = pool.begin().await.unwrap();
            for chunk in changes.chunks(300) {
                let mut query = QueryBuilder::new("INSERT INTO bench_board (tbl, key, document) ");
                query.push_values(chunk, |mut row, ((tbl, key), document)| {
                    row.push_bind(tbl.as_str())
                        .push_bind(key.as_str())
                        .push_bind(document.as_ref().map(|d| d.to_string()));
                });
                query.push(" ON CONFLICT (tbl, key) DO UPDATE SET document = excluded.document");
                query.build().execute(&mut *tx).await.unwrap();
            }
            sqlx::query("UPDATE bench_checkpoint SET tx_order = $1, seq = $2 WHERE name = 'board'")
                .bind(after.0)
                .bind(after.1)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        });
    }
    folded
}

/// The incident board built while tickets are ingested, `count` events in batches of 200
/// with a catch-up after each. Ours: each batch's first ticket arrives with the next batch
/// (late, so every catch-up rewinds). Baseline: the same events in order, in the same
/// batches, with the same catch-ups: the same durable work (appends, rows, checkpoints),
/// without lateness. Aim (issue 29): at most 1.5 times the baseline.
async fn mid_ingest_bench(backend: Backend, count: usize) {
    use ops_core_runtime::projection::ProjectionRunner;
    const BATCH: usize = 200;
    let name = format!("projection_mid_ingest_{count}_{backend:?}").to_lowercase();
    // One second apart, so arrival order is the only thing that makes one late.
    let ticket =
        |run: &str, n: usize| opened_at(run, n, 1_795_000_000_000_000 + n as i64 * 1_000_000);
    let run = |label: String, late: bool| async move {
        let store = backend.store(&label).await;
        let mut runner = ProjectionRunner::start(store.clone(), &pack_incidents::IncidentBoard)
            .await
            .unwrap();
        let batches: Vec<Vec<EventEnvelope>> = (0..count / BATCH)
            .map(|batch| {
                let range = batch * BATCH..(batch + 1) * BATCH;
                let mut events: Vec<EventEnvelope> = Vec::new();
                if late && batch > 0 {
                    events.push(ticket(&label, (batch - 1) * BATCH));
                }
                events.extend(
                    range
                        .filter(|n| !(late && n % BATCH == 0 && *n + BATCH < count))
                        .map(|n| ticket(&label, n)),
                );
                events
            })
            .collect();
        let started = Instant::now();
        for events in &batches {
            // Ingest and catch-up interleaved, both timed: nothing settles in between.
            append_all(&store, events).await;
            runner.catch_up().await.unwrap();
        }
        started.elapsed()
    };
    let baseline = run(format!("bench_{name}_in_order"), false).await;
    let ours = run(format!("bench_{name}_late"), true).await;
    report(&name, count, ours, baseline);
}

/// The `n`th acknowledgement of incident INC-0, through `bus`.
async fn acknowledge(bus: &ops_core_runtime::command::CommandBus, n: usize) {
    bus.submit(
        &ops_tests::commands::acknowledge("INC-0", &format!("U{n}")),
        ops_tests::commands::capability(),
        None,
    )
    .await
    .unwrap();
}

/// The jail's benchmarks do the same work with pack code in a confined runner of this
/// binary (ours) and in process (the baseline), each on a store of its own, in
/// [`ROUNDS`] rounds, each side first in turn, so both see the same machine: `side` does the timed
/// work once for a store label and its pack code. Reports the medians.
async fn jailed_against_in_process<Side, Timed>(name: &str, count: usize, mut side: Side)
where
    Side: FnMut(String, ops_core_runtime::jail::PackCode) -> Timed,
    Timed: std::future::Future<Output = Duration>,
{
    use ops_core_runtime::jail::{Jail, PackCode};
    let program = std::env::current_exe().expect("this benchmark's binary");
    let [jailed, in_process] = in_turns(ROUNDS, async |round, turn| {
        if turn == 0 {
            let code = PackCode::Jailed(Jail::new(program.clone()));
            side(format!("bench_{name}_jailed_{round}"), code).await
        } else {
            side(
                format!("bench_{name}_in_process_{round}"),
                PackCode::InProcess,
            )
            .await
        }
    })
    .await;
    report(name, count, median(jailed), median(in_process));
}

/// The incident board built from `count` events (`upcast_catch_up`: one in ten stored at
/// v1, so upcasters run too), its folds and upcasters in a confined runner (ours) against
/// the same catch-up with them in process (baseline): the same appends, rows and
/// checkpoints. Aim (issue 28): at least 0.8.
async fn jailed_catch_up_bench(backend: Backend, what: &str, count: usize) {
    use ops_core_runtime::projection::ProjectionRunner;
    let name = format!("jailed_{what}_{count}_{backend:?}").to_lowercase();
    jailed_against_in_process(&name, count, |label, code| async move {
        let store = backend.store(&label).await.with_pack_code(code);
        let events: Vec<EventEnvelope> = (0..count)
            .map(|n| {
                if what == "catch_up" {
                    opened(&label, n)
                } else {
                    mixed(&label, n)
                }
            })
            .collect();
        fill(&store, &events).await;
        let started = Instant::now();
        let mut runner = ProjectionRunner::start(store, &pack_incidents::IncidentBoard)
            .await
            .unwrap();
        runner.catch_up().await.unwrap();
        started.elapsed()
    })
    .await;
}

/// `commands` acknowledgements of one incident with a 1,000-event history, decided by its
/// handler in a confined runner (ours) against in process (baseline), each through a bus
/// that keeps the handler's state: the same checks, decisions and appends.
async fn jailed_command_bench(backend: Backend, commands: usize) {
    let name = format!("jailed_commands_{commands}_{backend:?}").to_lowercase();
    jailed_against_in_process(&name, commands, |label, code| async move {
        let target = "incident/INC-0";
        let store = backend.store(&label).await.with_pack_code(code);
        let history: Vec<EventEnvelope> = (0..1000)
            .map(|n| opened(&format!("{label}-{n}"), 0))
            .collect();
        store
            .append(target, ExpectedVersion::Any, &history)
            .await
            .unwrap();
        settle(store.db()).await;
        let bus = ops_core_runtime::command::CommandBus::new(
            store.clone(),
            ops_tests::commands::authority(Scope::everything()),
        )
        .unwrap();
        let started = Instant::now();
        for n in 0..commands {
            acknowledge(&bus, n).await;
        }
        started.elapsed()
    })
    .await;
}

/// `check` over `roots` delegation chains of `depth` capabilities each (10,000 in all for
/// 2,000 chains of 5), from a warm book, against the cheapest possible authority: a hash
/// set of the allowed (capability, destination) pairs computed beforehand. Also prints the
/// p50 and p99 latency of one check. The book keeps each answer for as long as it holds,
/// so the first check of each leaf (1% of them) works it out and the rest find it kept.
fn capability_bench(roots: usize, depth: usize, checks: usize) {
    use std::collections::HashSet;

    use ops_core::capability::{Action, CapabilityBook, CapabilityGranted, Selector};
    use ops_core::contract::SafetyClass;
    use ops_core::envelope::{Actor, ActorId};
    use ops_core::id::CapabilityId;

    let holder = |n: usize| Actor::Human(ActorId::new(format!("holder{n}@example.com")).unwrap());
    let mut book = CapabilityBook::default();
    let mut leaves = Vec::new();
    let from: ops_core::time::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for root in 0..roots {
        let mut parent: Option<CapabilityId> = None;
        for level in 0..depth {
            let id = CapabilityId::of(&(root, level)).unwrap();
            let grant = CapabilityGranted {
                capability_id: id,
                holder: holder(level),
                issuer: if level == 0 {
                    holder(usize::MAX)
                } else {
                    holder(level - 1)
                },
                scope: Scope {
                    destinations: Selector::only(
                        ["pager", "sms"].into_iter().take(2 - level.min(1)),
                    ),
                    ..Scope::everything()
                },
                valid_from: from,
                valid_until: "2100-01-01T00:00:00Z".parse().unwrap(),
                parent,
            };
            let mut origin = ops_tests::origin(&id.to_string());
            origin.occurred_at = from;
            book.record_event(&EventEnvelope::new(&grant, origin).unwrap())
                .unwrap();
            parent = Some(id);
        }
        leaves.push(parent.unwrap());
    }
    let action = Action {
        actor: holder(depth - 1),
        command_type: "pack.incidents.paging.PageResponder".to_owned(),
        safety: SafetyClass::WriteExternalSideEffect,
        tenant: Some("acme".to_owned()),
        destination: Some("pager".to_owned()),
    };
    let now = ops_core::time::Timestamp::now();
    let mut latencies = Vec::with_capacity(checks);
    let started = Instant::now();
    let mut allowed = 0;
    for n in 0..checks {
        let one = Instant::now();
        allowed += usize::from(book.check(leaves[n % leaves.len()], &action, now).allowed);
        latencies.push(one.elapsed());
    }
    let ours = started.elapsed();
    assert_eq!(allowed, checks, "every leaf may page");
    let baseline_set: HashSet<(CapabilityId, &str)> =
        leaves.iter().map(|id| (*id, "pager")).collect();
    let started = Instant::now();
    let mut found = 0;
    for n in 0..checks {
        found += usize::from(baseline_set.contains(&(
            leaves[n % leaves.len()],
            action.destination.as_deref().unwrap(),
        )));
    }
    let baseline = started.elapsed();
    assert_eq!(found, checks);
    latencies.sort();
    let p99 = latencies[checks * 99 / 100];
    let name = format!("capability_check_{}_depth_{depth}", roots * depth);
    let mut line = timing(&name, checks, ours, baseline);
    line["p99_us"] = json!((p99.as_secs_f64() * 1e7).round() / 10.0);
    let p50 = latencies[checks / 2];
    line["p50_us"] = json!((p50.as_secs_f64() * 1e8).round() / 100.0);
    println!("{line}");
}

/// Retention of `count` outbox rows of finished sagas (each judged by the saga rule,
/// receipted in chunks, deleted by key) against the same in raw SQL ([`raw_retention`]).
async fn retention_bench(backend: Backend, count: usize) {
    let name = format!("retention_receipts_{count}_{backend:?}").to_lowercase();
    let capability = ops_tests::commands::capability().to_string();
    let now = ops_core::time::Timestamp::now();
    let store = backend.store(&format!("bench_{name}_ours")).await;
    fill_outbox(store.db(), count, &capability, "executed").await;
    let retention = ops_core_runtime::retention::Retention::new(
        store.clone(),
        ops_tests::commands::capability(),
    );
    let started = Instant::now();
    let applied = retention
        .receipts(1, now, &ops_tests::acting(ops_tests::responder()))
        .await
        .unwrap();
    let ours = started.elapsed();
    assert_eq!(applied.removed.len(), count);

    let raw = backend.store(&format!("bench_{name}_raw")).await;
    fill_outbox(raw.db(), count, &capability, "executed").await;
    on_db!(raw.db(), pool => sqlx::raw_sql(RAW_TABLE).execute(pool).await.map(drop)).unwrap();
    let cutoff = now.unix_micros() - ops_core::time::DAY.as_micros() as i64;
    let started = Instant::now();
    let deleted = raw_retention(raw.db(), cutoff).await;
    let baseline = started.elapsed();
    assert_eq!(deleted, count);
    report(&name, count, ours, baseline);
}

/// Retention's baseline in raw SQL, the same durable work: the rows of sagas whose every
/// effect is closed and older than `cutoff` (the saga rule, in one query), then a thousand
/// at a time a receipt naming them (one event row, its JSON with a blake3 id) and the
/// delete of those rows, in one transaction as ours. Returns how many rows it removed.
async fn raw_retention(db: &Db, cutoff: i64) -> usize {
    let due: Vec<String> = on_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT command_id FROM core_outbox WHERE correlation_id NOT IN \
             (SELECT correlation_id FROM core_outbox WHERE state = 'pending' OR updated_at_us >= $1) \
             ORDER BY id",
        )
        .bind(cutoff)
        .fetch_all(pool)
        .await
        .unwrap()
    });
    for (part, chunk) in due.chunks(1000).enumerate() {
        let envelope = json!({
            "event_type": "core.retention.RetentionApplied",
            "class": "receipts",
            "removed": chunk,
        })
        .to_string();
        let receipt = RawRow {
            seq: part as i64 + 1,
            event_id: blake3::hash(envelope.as_bytes()).to_hex().to_string(),
            stream_version: part as i64 + 1,
            event_type: "core.retention.RetentionApplied".to_owned(),
            occurred_at_us: cutoff,
            source_ref: "core.retention".to_owned(),
            source_sequence_key: -1,
            correlation_id: format!("retention:{part}"),
            envelope,
            stream_bucket: ops_core_runtime::store::stream_bucket("bench"),
        };
        raw_insert_closing(db, std::slice::from_ref(&receipt), chunk).await;
    }
    due.len()
}

/// `commands` commands on one target whose stream already holds `history` events, through
/// one bus, which keeps the handler's folded state and folds only what came since, against
/// a new bus per command, which folds the whole stream each time: the same command records
/// and events written, in two stores filled alike.
async fn command_bench(backend: Backend, history: usize, commands: usize) {
    let name = format!("commands_on_a_{history}_event_stream_{backend:?}").to_lowercase();
    let target = "incident/INC-0";
    let mut timings = Vec::new();
    for kept in [true, false] {
        let store = backend
            .store(&format!(
                "bench_{name}_{}",
                if kept { "kept" } else { "refolded" }
            ))
            .await;
        // Openings of incident INC-0, each its own event: what its handlers fold.
        for start in (0..history).step_by(1000) {
            let chunk: Vec<EventEnvelope> = (start..history.min(start + 1000))
                .map(|n| opened(&format!("{name}-{n}"), 0))
                .collect();
            store
                .append(target, ExpectedVersion::Any, &chunk)
                .await
                .unwrap();
        }
        settle(store.db()).await;
        let authority = ops_tests::commands::authority(Scope::everything());
        let one_bus =
            ops_core_runtime::command::CommandBus::new(store.clone(), authority.clone()).unwrap();
        let started = Instant::now();
        for n in 0..commands {
            let fresh;
            let bus = if kept {
                &one_bus
            } else {
                fresh =
                    ops_core_runtime::command::CommandBus::new(store.clone(), authority.clone())
                        .unwrap();
                &fresh
            };
            acknowledge(bus, n).await;
        }
        timings.push(started.elapsed());
    }
    report(&name, commands, timings[0], timings[1]);
}

/// With an argument, runs only the benchmarks whose name starts with it. Prints one JSON
/// timing per line.
fn main() -> std::process::ExitCode {
    // The jail's benchmarks start this binary as their pack runner: it links the packs.
    if let Some(code) = ops_core_runtime::jail::serve_if_runner() {
        return code;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run());
    std::process::ExitCode::SUCCESS
}

async fn run() {
    let only = std::env::args().nth(1).unwrap_or_default();
    let wanted = |name: &str| name.starts_with(&only);
    if wanted("event_id") {
        event_id_bench(20_000);
    }
    if wanted("capability_check") {
        capability_bench(2_000, 5, 200_000);
    }
    // Each benchmark's stores are removed once it is done: a full run makes gigabytes.
    let tidy = || ops_tests::storage::remove_stores_of("bench_");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let suffix = format!("{backend:?}").to_lowercase();
        for (batch, batches) in [(1, 500), (100, 50), (1000, 10)] {
            if wanted(&format!("append_batch_{batch}_{suffix}")) {
                append_bench(backend, batch, batches).await;
                tidy().await;
            }
        }
        if wanted(&format!("append_concurrent_4x10_{suffix}")) {
            concurrent_append_bench(backend, 100).await;
            tidy().await;
        }
        if wanted(&format!("replay_100000_{suffix}")) {
            replay_bench(backend, 100_000).await;
            tidy().await;
        }
        if wanted(&format!("replay_1000000_{suffix}")) {
            replay_memory_bench(backend, 1_000_000).await;
            tidy().await;
        }
        if [1, 2, 4]
            .iter()
            .any(|workers| wanted(&format!("dispatch_{workers}_{suffix}")))
        {
            dispatch_bench(backend, 5_000).await;
            tidy().await;
        }
        for workers in [1, 2, 4] {
            if wanted(&format!("projection_catch_up_{workers}_{suffix}")) {
                catch_up_bench(backend, workers, 10_000).await;
                tidy().await;
            }
        }
        if wanted(&format!("projection_catch_up_split_{suffix}")) {
            split_catch_up_bench(backend, 10_000).await;
            tidy().await;
        }
        if wanted(&format!("projection_mid_ingest_20000_{suffix}")) {
            mid_ingest_bench(backend, 20_000).await;
            tidy().await;
        }
        if wanted(&format!("commands_on_a_5000_event_stream_{suffix}")) {
            command_bench(backend, 5_000, 200).await;
            tidy().await;
        }
        for (what, events) in [("catch_up", 10_000), ("upcast_catch_up", 10_000)] {
            if wanted(&format!("jailed_{what}_{events}_{suffix}")) {
                jailed_catch_up_bench(backend, what, events).await;
                tidy().await;
            }
        }
        if wanted(&format!("jailed_commands_200_{suffix}")) {
            jailed_command_bench(backend, 200).await;
            tidy().await;
        }
        if wanted(&format!("retention_receipts_20000_{suffix}")) {
            retention_bench(backend, 20_000).await;
            tidy().await;
        }
    }
}
