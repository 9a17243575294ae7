//! A projection split by stream across workers, on both backends: each partition folds
//! its own streams under its own lease and checkpoint, together they store exactly the
//! rows one worker folding everything stores, a fold that relates streams is refused, and
//! a new layout replaces the old one only when its last partition is built.

use ops_core::contract::EventType;
use ops_core::projection::{ProjectedEvent, Projection, Split, State};
use ops_core_runtime::leases::Leases;
use ops_core_runtime::projection::{
    Partition, ProjectionRunError, ProjectionRunner, all_freshness, stored_rows,
};
use ops_core_runtime::store::{EventStore, ExpectedVersion};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;
use pack_incidents::{IncidentBoard, IncidentsPack};

use crate::projections::{acknowledged, opened};

/// The incident board, split three ways by stream.
struct SplitBoard;

impl Projection for SplitBoard {
    type Pack = IncidentsPack;
    const NAME: &'static str = "split_board";
    const VERSION: u32 = 1;
    const SPLIT: Split = Split::ByStream { partitions: 3 };
    const EVENTS: &'static [EventType] = IncidentBoard::EVENTS;

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        IncidentBoard.apply(event, state)
    }
}

/// The same board under the same name, not split: the layout a split replaces.
struct WholeBoard;

impl Projection for WholeBoard {
    type Pack = IncidentsPack;
    const NAME: &'static str = "split_board";
    const VERSION: u32 = 1;
    const EVENTS: &'static [EventType] = IncidentBoard::EVENTS;

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        IncidentBoard.apply(event, state)
    }
}

const INCIDENTS: usize = 40;

/// Each incident on its own stream, opened then (every other one) acknowledged, in
/// interleaved appends.
async fn incidents(store: &EventStore) {
    for n in 0..INCIDENTS {
        let id = format!("INC-{n}");
        store
            .append(
                &id,
                ExpectedVersion::Any,
                &[opened(&id, n as i64 * 1_000, "payments")],
            )
            .await
            .unwrap();
    }
    for n in (0..INCIDENTS).step_by(2) {
        let id = format!("INC-{n}");
        let ack = acknowledged(&id, 1_000_000 + n as i64);
        store
            .append(&id, ExpectedVersion::Any, &[ack])
            .await
            .unwrap();
    }
}

fn worker(store: &EventStore, holder: &str) -> Leases {
    Leases::new(
        store.db().clone(),
        holder,
        std::time::Duration::from_secs(30),
    )
}

fn runner(store: &EventStore, leases: &Leases, index: u32) -> ProjectionRunner {
    let partition = Partition { index, count: 3 };
    ProjectionRunner::start_partition(store.clone(), &SplitBoard, leases.clone(), partition)
        .unwrap()
}

async fn two_workers_share_the_partitions_and_store_what_one_worker_stores(backend: Backend) {
    let label = "two_workers_share_the_partitions_and_store_what_one_worker_stores";
    let split = backend.store(&format!("{label}_split")).await;
    let whole = backend.store(&format!("{label}_whole")).await;
    incidents(&split).await;
    incidents(&whole).await;

    // Worker a runs partitions 0 and 1, worker b partition 2; b finds the others held.
    let (a, b) = (worker(&split, "a"), worker(&split, "b"));
    for index in [0, 1] {
        runner(&split, &a, index).catch_up().await.unwrap();
    }
    let mut taken = runner(&split, &b, 0);
    assert_eq!(
        taken.catch_up().await.unwrap().held_by.as_deref(),
        Some("a")
    );
    runner(&split, &b, 2).catch_up().await.unwrap();

    let mut alone = ProjectionRunner::start(whole.clone(), &WholeBoard)
        .await
        .unwrap();
    alone.catch_up().await.unwrap();
    let together = stored_rows(&split, &SplitBoard).await.unwrap();
    assert_eq!(
        together.len(),
        2 * INCIDENTS,
        "a row and an open row per incident"
    );
    assert_eq!(together, stored_rows(&whole, &WholeBoard).await.unwrap());

    // Each partition has its own checkpoint, and its own lease.
    let rows: Vec<(String, i64)> = all_freshness(&split)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.applied_events))
        .collect();
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["split_board.0of3", "split_board.1of3", "split_board.2of3"]
    );
    assert!(rows.iter().all(|(_, applied)| *applied > 0), "{rows:?}");
    let applied: i64 = rows.iter().map(|(_, applied)| applied).sum();
    assert_eq!(
        applied as usize,
        INCIDENTS + INCIDENTS / 2,
        "every event once, in one partition"
    );
    let leases: Vec<(String, String)> = ops_core_runtime::leases::all(split.db())
        .await
        .unwrap()
        .into_iter()
        .map(|lease| (lease.name, lease.holder))
        .collect();
    for (index, holder) in [(0, "a"), (1, "a"), (2, "b")] {
        let name = format!("projection:pack:incidents/split_board.{index}of3");
        assert!(leases.contains(&(name, holder.to_owned())), "{leases:?}");
    }

    // A worker that gives a partition back lets another take it over, from its checkpoint.
    let mut first = runner(&split, &a, 0);
    first.catch_up().await.unwrap();
    first.release_lease().await.unwrap();
    let later = acknowledged("INC-1", 2_000_000);
    split
        .append("INC-1", ExpectedVersion::Any, std::slice::from_ref(&later))
        .await
        .unwrap();
    whole
        .append("INC-1", ExpectedVersion::Any, &[later])
        .await
        .unwrap();
    for index in 0..3 {
        let done = taken_or_own(&split, &a, &b, index).await;
        assert!(done.held_by.is_none(), "partition {index}: {done:?}");
    }
    assert!(
        taken.catch_up().await.unwrap().held_by.is_none(),
        "b took partition 0 over"
    );
    alone.catch_up().await.unwrap();
    assert_eq!(
        stored_rows(&split, &SplitBoard).await.unwrap(),
        stored_rows(&whole, &WholeBoard).await.unwrap()
    );
}

/// Partition 0 by b (which may take it now), the others by their holders.
async fn taken_or_own(
    store: &EventStore,
    a: &Leases,
    b: &Leases,
    index: u32,
) -> ops_core_runtime::projection::CatchUp {
    let leases = match index {
        0 | 2 => b,
        _ => a,
    };
    runner(store, leases, index).catch_up().await.unwrap()
}

/// A stream name of partition `index` (of 3), for a test that needs two partitions.
fn stream_of(index: u32) -> String {
    let partition = Partition { index, count: 3 };
    (0..)
        .map(|n| format!("stream-{n}"))
        .find(|stream| partition.holds(stream))
        .unwrap()
}

async fn a_row_written_from_two_partitions_is_refused(backend: Backend) {
    let store = backend
        .store("a_row_written_from_two_partitions_is_refused")
        .await;
    // One incident whose events sit in streams of different partitions: its row would be
    // folded by two workers, each from half its history.
    let (first, second) = (stream_of(0), stream_of(1));
    store
        .append(
            &first,
            ExpectedVersion::Any,
            &[opened("INC-7", 0, "payments")],
        )
        .await
        .unwrap();
    let leases = worker(&store, "a");
    runner(&store, &leases, 0).catch_up().await.unwrap();
    // Partition 1 never saw it opened: an opening of the same incident in one of its
    // streams makes it write the incident's row again.
    store
        .append(
            &second,
            ExpectedVersion::Any,
            &[opened("INC-7", 5, "payments")],
        )
        .await
        .unwrap();
    let error = runner(&store, &leases, 1).catch_up().await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            ProjectionRunError::CrossPartition {
                owner: 0,
                writer: 1,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("incidents/INC-7"), "{message}");
    assert!(message.contains("Split::Whole"), "{message}");
    // Nothing of the refused batch is stored: partition 0's row stands as it was.
    let rows = stored_rows(&store, &SplitBoard).await.unwrap();
    assert_eq!(
        rows.iter()
            .filter(|(t, k, _)| t == "incidents" && k == "INC-7")
            .count(),
        1
    );
    let freshness = all_freshness(&store).await.unwrap();
    assert!(
        freshness
            .iter()
            .all(|f| f.name != "split_board.1of3" || f.applied_events == 0)
    );
}

/// The incidents, folded by the board not split: the layout a split replaces. Returns its
/// rows.
async fn built_whole(store: &EventStore) -> Vec<(String, String, String)> {
    incidents(store).await;
    let mut whole = ProjectionRunner::start(store.clone(), &WholeBoard)
        .await
        .unwrap();
    whole.catch_up().await.unwrap();
    stored_rows(store, &WholeBoard).await.unwrap()
}

async fn a_split_replaces_the_whole_layout_once_its_last_partition_is_built(backend: Backend) {
    let store = backend
        .store("a_split_replaces_the_whole_layout_once_its_last_partition_is_built")
        .await;
    let before = built_whole(&store).await;
    let tables = || async {
        let names: Vec<(String, String)> = ops_core_runtime::db::on_db!(store.db(), pool => {
            sqlx::query_as("SELECT name, state_table FROM core_projections ORDER BY name")
                .fetch_all(pool)
                .await
                .unwrap()
        });
        names
    };
    let leases = worker(&store, "a");
    for index in 0..2 {
        runner(&store, &leases, index).catch_up().await.unwrap();
        // Not built whole yet: the old layout stays, readable as it was.
        assert_eq!(stored_rows(&store, &WholeBoard).await.unwrap(), before);
        assert!(tables().await.contains(&(
            "split_board".to_owned(),
            "pack_incidents_split_board_v1".to_owned()
        )));
    }
    runner(&store, &leases, 2).catch_up().await.unwrap();
    let after = tables().await;
    assert_eq!(
        after
            .iter()
            .map(|(_, table)| table.as_str())
            .collect::<Vec<_>>(),
        ["pack_incidents_split_board_v1_p3"; 3],
        "only the new layout is left"
    );
    assert!(
        stored_rows(&store, &WholeBoard).await.is_err(),
        "its table is dropped"
    );
    assert_eq!(stored_rows(&store, &SplitBoard).await.unwrap(), before);
}

/// Every partition finishing its build at the same time, each on connections of its own:
/// whichever switches last sees the others' switches and drops the old layout.
async fn partitions_built_at_once_retire_the_old_layout(backend: Backend) {
    const TEST: &str = "partitions_built_at_once_retire_the_old_layout";
    let store = backend.store(TEST).await;
    let before = built_whole(&store).await;
    let mut workers = Vec::new();
    for index in 0..3 {
        let own = backend.another_worker(TEST).await;
        let leases = worker(&own, &format!("w{index}"));
        workers.push(runner(&own, &leases, index));
    }
    let [mut p0, mut p1, mut p2]: [ProjectionRunner; 3] = workers.try_into().ok().unwrap();
    let (r0, r1, r2) = tokio::join!(p0.catch_up(), p1.catch_up(), p2.catch_up());
    for caught_up in [r0, r1, r2] {
        caught_up.unwrap();
    }
    let tables: Vec<String> = ops_core_runtime::db::on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT state_table FROM core_projections ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    assert_eq!(
        tables, ["pack_incidents_split_board_v1_p3"; 3],
        "only the new layout is left"
    );
    assert!(
        stored_rows(&store, &WholeBoard).await.is_err(),
        "its table is dropped"
    );
    assert_eq!(stored_rows(&store, &SplitBoard).await.unwrap(), before);
}

/// A pack's declaration is input: a split beyond the bound is refused, and a split
/// projection is never started as one whole runner.
#[tokio::test]
async fn partitions_out_of_bounds_are_refused() {
    struct Huge;
    impl Projection for Huge {
        type Pack = IncidentsPack;
        const NAME: &'static str = "huge";
        const VERSION: u32 = 1;
        const SPLIT: Split = Split::ByStream {
            partitions: 1_000_000,
        };
        const EVENTS: &'static [EventType] = IncidentBoard::EVENTS;
        fn apply(&self, _: &ProjectedEvent<'_>, _: &mut State) -> Result<(), String> {
            Ok(())
        }
    }
    let store = Backend::Sqlite
        .store("partitions_out_of_bounds_are_refused")
        .await;
    let error = ProjectionRunner::start(store.clone(), &Huge)
        .await
        .err()
        .unwrap();
    assert!(matches!(
        error,
        ProjectionRunError::Partitions {
            partitions: 1_000_000,
            ..
        }
    ));
    let error = ProjectionRunner::start(store.clone(), &SplitBoard)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ProjectionRunError::Split { .. }), "{error}");
    let leases = worker(&store, "a");
    let wrong = Partition { index: 3, count: 3 };
    let error = ProjectionRunner::start_partition(store, &SplitBoard, leases, wrong)
        .err()
        .unwrap();
    assert!(
        matches!(error, ProjectionRunError::Partitions { .. }),
        "{error}"
    );
}

/// Streams spread over the partitions: none is empty, and each stream has one.
#[test]
fn every_stream_has_one_partition() {
    let partitions: Vec<Partition> = (0..4).map(|index| Partition { index, count: 4 }).collect();
    let mut sizes = [0usize; 4];
    for n in 0..4_000 {
        let stream = format!("incident/INC-{n}");
        let holders: Vec<&Partition> = partitions.iter().filter(|p| p.holds(&stream)).collect();
        assert_eq!(holders.len(), 1, "{stream}");
        sizes[holders[0].index as usize] += 1;
    }
    assert!(
        sizes.iter().all(|size| (800..1_200).contains(size)),
        "{sizes:?}"
    );
}

on_both_backends!(
    two_workers_share_the_partitions_and_store_what_one_worker_stores,
    a_row_written_from_two_partitions_is_refused,
    a_split_replaces_the_whole_layout_once_its_last_partition_is_built,
    partitions_built_at_once_retire_the_old_layout,
);

/// On PostgreSQL, once the log has statistics, a share's page is read through an index in
/// the page's order, never by reading the whole log and sorting it: that made every page
/// cost the whole log, a catch-up quadratic in it (`Partition`'s condition says why).
#[tokio::test]
async fn on_postgres_a_shares_page_walks_an_index_once_the_log_has_statistics() {
    use ops_core_runtime::db::Db;
    const TEST: &str = "on_postgres_a_shares_page_walks_an_index_once_the_log_has_statistics";
    let store = Backend::Postgres.store(TEST).await;
    let Db::Postgres(pool) = store.db() else {
        unreachable!("a PostgreSQL store")
    };
    // Rows straight in SQL: the plan depends on how many rows there are and how they
    // spread over streams, not on what their envelopes say.
    sqlx::raw_sql(
        "INSERT INTO core_events (tx_order, event_id, stream_id, stream_version, event_type, \
         payload_schema_version, occurred_at_us, source_ref, source_sequence_key, correlation_id, \
         recorded_at_us, envelope, stream_bucket) \
         SELECT 1 + g / 10, md5(g::text), 'incident-' || (g % 500), g / 500 + 1, \
         'incidents.incident.opened', 2, g * 1000, 'planned', -1, md5((g % 500)::text), 0, \
         repeat('x', 700), hashtext('incident-' || (g % 500))::bigint & 2147483647 \
         FROM generate_series(0, 19999) AS g; ANALYZE core_events",
    )
    .execute(pool)
    .await
    .unwrap();
    for index in 0..4 {
        let partition = Partition { index, count: 4 };
        let replay: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN {}",
            EventStore::replay_statement(partition)
        ))
        .bind(0_i64)
        .bind("")
        .bind(-1_i64)
        .bind("")
        .bind(i64::MAX)
        .bind(i64::MAX)
        .bind(500_i64)
        .fetch_all(pool)
        .await
        .unwrap();
        let follow: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN {}",
            EventStore::follow_statement(1, partition)
        ))
        .bind(0_i64)
        .bind(0_i64)
        .bind(500_i64)
        .bind(i64::MAX)
        .bind(i64::MAX)
        .bind("incidents.incident.opened")
        .fetch_all(pool)
        .await
        .unwrap();
        for (read, plan) in [("replay", replay), ("follow", follow)] {
            let plan = plan.join("\n");
            assert!(
                !plan.contains("Seq Scan"),
                "share {index}'s {read} page reads the whole log:\n{plan}"
            );
        }
    }
    store.db().close().await;
}
