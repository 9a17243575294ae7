//! Several workers on one database: three start together on a fresh store, ingest a few
//! thousand records through a connector into a projection, one is killed mid-run, and the
//! log and the projection's rows end byte for byte as one worker's run of the same input
//! leaves them, every event stored once.

use std::path::PathBuf;

use ops_core_runtime::connector::{ConnectorOptions, ConnectorRunner, JsonLinesDirectory};
use ops_core_runtime::projection::{ProjectionRunner, stored_rows};
use ops_core_runtime::store::EventStore;
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;
use pack_filesync::TicketExport;
use pack_incidents::IncidentBoard;

const RECORDS: usize = 2_000;
const PER_FILE: usize = 250;

on_both_backends!(three_workers_one_killed_end_as_one_worker_does,);

/// A ticket export of `RECORDS` records.
fn export(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ops-workers-{test}-{}", std::process::id()));
    ops_tests::export::ticket_export(&dir, RECORDS, PER_FILE)
}

/// One worker's loop: read the source, bring the board up to date, until both are done.
async fn work(store: EventStore, source: PathBuf) {
    let options = ConnectorOptions {
        page_size: 50,
        reading: ops_core_runtime::connector::ReadModel {
            initial_backoff: std::time::Duration::from_millis(1),
            ..Default::default()
        },
        ..ConnectorOptions::default()
    };
    let mut connector = ConnectorRunner::new(
        store.clone(),
        &TicketExport,
        Box::new(JsonLinesDirectory::new(source)),
        options,
    )
    .unwrap();
    let mut board = ProjectionRunner::start(store, &IncidentBoard)
        .await
        .unwrap();
    loop {
        let read = connector.sync_stream("tickets").await.unwrap();
        let applied = board.catch_up().await.unwrap();
        if read.appended == 0 && applied.applied == 0 && applied.superseded == 0 {
            return;
        }
    }
}

async fn log_of(store: &EventStore) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.replay(after.as_ref(), 1_000).await.unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        after = Some(ops_core_runtime::store::CanonicalKey::of(&last.envelope));
        // Everything but when it was ingested, which differs between any two runs.
        out.extend(page.iter().map(|e| {
            let mut envelope = serde_json::to_value(&e.envelope).unwrap();
            envelope.as_object_mut().unwrap().remove("ingested_at");
            envelope.to_string()
        }));
    }
}

async fn three_workers_one_killed_end_as_one_worker_does(backend: Backend) {
    let source = export(&format!("{backend:?}"));

    let alone = backend.store("three_workers_alone").await;
    work(alone.clone(), source.clone()).await;
    let expected_log = log_of(&alone).await;
    let expected_rows = stored_rows(&alone, &IncidentBoard).await.unwrap();
    assert!(
        expected_log.len() >= RECORDS,
        "{} events",
        expected_log.len()
    );

    let shared = backend.store("three_workers_shared").await;
    // Three workers at once, interleaved at every wait on the database; the third, on
    // its own connections, is killed mid-run: its future dropped wherever it is,
    // transactions open or not, then its connections closed, as a killed process loses
    // them (a connection it left inside a transaction is never another worker's).
    let doomed = backend.another_worker("three_workers_shared").await;
    let killed = async {
        let cut = tokio::time::timeout(
            std::time::Duration::from_millis(150),
            work(doomed.clone(), source.clone()),
        )
        .await;
        // At once: a dropped future can leave its connection inside a transaction that
        // holds SQLite's write lock until the connection closes.
        doomed.db().close().await;
        cut
    };
    let ((), (), cut) = tokio::join!(
        work(shared.clone(), source.clone()),
        work(shared.clone(), source.clone()),
        killed
    );
    assert!(
        cut.is_err(),
        "the third worker was to be killed before it finished"
    );
    // A worker started after everything is done finds nothing left to do.
    work(shared.clone(), source.clone()).await;

    let log = log_of(&shared).await;
    assert_eq!(log.len(), expected_log.len(), "every event stored once");
    let differ = log.iter().zip(&expected_log).position(|(a, b)| a != b);
    assert_eq!(differ, None, "the logs differ first at {differ:?}");
    assert_eq!(
        stored_rows(&shared, &IncidentBoard).await.unwrap(),
        expected_rows
    );
    let _ = std::fs::remove_dir_all(&source);
}
