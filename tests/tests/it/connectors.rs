//! Ingress connectors on both backends, with the filesync pack's sample export.

use std::path::PathBuf;

use ops_contract_incidents::IncidentOpenings;
use ops_core::connector::{DynConnector, SourceRecordDeleted, SourceSchemaDrifted};
use ops_core::contract::Contract;
use ops_core_runtime::connector::{
    ConnectorError, ConnectorOptions, ConnectorRunner, JsonLinesDirectory, SourceError,
    SourceReader, cursor_place,
};
use ops_core_runtime::cursors::{CursorFence, CursorUpdate};
use ops_core_runtime::projection::ProjectionRunner;
use ops_core_runtime::store::{AppendError, EventStore, ExpectedVersion};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;
use pack_filesync::{SAMPLE_EXPORT, TicketExport};
use pack_incidents::{IncidentBoard, open_by_service, time_to_acknowledge};

const TICKETS: &dyn DynConnector = &TicketExport;

fn runner(store: &EventStore, source: impl SourceReader + 'static) -> ConnectorRunner {
    let options = ConnectorOptions {
        page_size: 4,
        reading: ops_core_runtime::connector::ReadModel {
            initial_backoff: std::time::Duration::from_millis(1),
            ..Default::default()
        },
        ..ConnectorOptions::default()
    };
    ConnectorRunner::new(store.clone(), TICKETS, Box::new(source), options).unwrap()
}

/// A copy of the sample export that a test may change.
fn sample_copy(test: &str) -> PathBuf {
    ops_tests::sample_copy(
        &std::env::temp_dir().join(format!("ops-filesync-{test}-{}", std::process::id())),
    )
}

on_both_backends!(
    the_sample_export_feeds_the_incident_board,
    reading_again_from_the_same_cursor_gives_the_same_events,
    only_new_and_complete_records_are_read,
    a_cursor_beyond_the_source_is_refused,
    transient_source_errors_are_retried_with_backoff,
    two_sources_that_disagree_become_a_conflict_event,
    two_workers_reading_one_stream_store_each_page_once,
    a_quarantined_record_this_build_reads_is_stored_and_released,
    a_sources_effective_date_is_kept_beside_when_the_event_happened,
    a_streams_rate_limit_and_retry_model_hold_against_a_source_that_counts_its_reads,
);

/// The sample export behind a source that notes when each read came, and is away for
/// reads `away` (counted from 0).
fn counting(
    away: std::ops::RangeInclusive<usize>,
) -> (
    impl SourceReader,
    std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
) {
    let reads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = reads.clone();
    let source = ops_tests::sources::SampleWith::new(move |read| {
        noted.lock().unwrap().push(std::time::Instant::now());
        if away.contains(&read) {
            Err(SourceError::Transient(
                "the export share is busy".to_owned(),
            ))
        } else {
            Ok(())
        }
    });
    (source, reads)
}

/// A8: a stream's rate limit spaces every read of its source (retries too), and its retry
/// model decides how often a source that is away is asked again; a stream without its own
/// model reads as its connector says, and a model for a stream the connector does not have
/// is refused before anything is read.
async fn a_streams_rate_limit_and_retry_model_hold_against_a_source_that_counts_its_reads(
    backend: Backend,
) {
    use ops_core_runtime::connector::ReadModel;
    use std::time::Duration;
    let label = "a_streams_rate_limit_and_retry_model_hold_against_a_source_that_counts_its_reads";
    let never_retry = ReadModel {
        max_attempts: 1,
        ..ReadModel::default()
    };
    let limited = ReadModel {
        min_interval: Duration::from_millis(30),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(8),
    };
    // The tickets connector on `store`, reading `source` as `streams` say (and never
    // retrying a stream they do not name).
    let runner_on =
        |store: &EventStore, source: Box<dyn SourceReader>, streams: &[(&str, ReadModel)]| {
            let options = ConnectorOptions {
                page_size: 4,
                reading: never_retry,
                streams: streams
                    .iter()
                    .map(|(stream, model)| ((*stream).to_owned(), *model))
                    .collect(),
                ..ConnectorOptions::default()
            };
            ConnectorRunner::new(store.clone(), TICKETS, source, options).unwrap()
        };

    // The tickets stream's own model: away twice, asked again twice, every read 30 ms
    // or more after the one before.
    let store = backend.store(label).await;
    let (source, reads) = counting(1..=2);
    let mut runner = runner_on(&store, Box::new(source), &[("tickets", limited)]);
    let reports = runner.sync().await.unwrap();
    let (_, report) = &reports[0];
    assert_eq!((report.appended, report.retries), (10, 2), "{report:?}");
    let reads = reads.lock().unwrap().clone();
    // Ten records in pages of four: three pages and the empty one that ends the stream,
    // and the two reads that found the source away.
    assert_eq!(reads.len(), 4 + 2);
    for pair in reads.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= limited.min_interval, "reads {gap:?} apart");
    }
    assert!(report.rate_limited > Duration::ZERO, "{report:?}");

    // Without a model of its own, the stream reads as its connector says: never again.
    let other = backend.store(&format!("{label}_2")).await;
    let (source, reads) = counting(1..=2);
    let error = runner_on(&other, Box::new(source), &[])
        .sync()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("the export share is busy"),
        "{error}"
    );
    assert_eq!(
        reads.lock().unwrap().len(),
        2,
        "one page, then one read that failed"
    );

    // A rate limit longer than a sync waits ends the stream's sync for now, after a page,
    // with its cursor stored; the next sync (a worker's next tick) holds back too, until
    // the interval is over, and reads nothing meanwhile.
    let slow = backend.store(&format!("{label}_3")).await;
    // An empty range: this source is never away.
    let (source, reads) = counting(std::ops::RangeInclusive::new(1, 0));
    let hourly = ReadModel {
        min_interval: Duration::from_secs(3_600),
        ..ReadModel::default()
    };
    let mut runner = runner_on(&slow, Box::new(source), &[("tickets", hourly)]);
    let report = runner.sync_stream("tickets").await.unwrap();
    assert_eq!(report.appended, 4, "{report:?}");
    assert!(
        report
            .held_back
            .is_some_and(|held| held > Duration::from_secs(3_590)),
        "{report:?}"
    );
    assert!(slow.cursor("tickets", "tickets").await.unwrap().is_some());
    let again = runner.sync_stream("tickets").await.unwrap();
    assert_eq!(
        (again.records, again.held_back.is_some()),
        (0, true),
        "{again:?}"
    );
    assert_eq!(reads.lock().unwrap().len(), 1);

    // A model for a stream the connector does not have is a mistake, said before reading.
    let (source, reads) = counting(0..=0);
    let error = runner_on(
        &other,
        Box::new(source),
        &[("tickets", limited), ("tikcets", limited)],
    )
    .sync()
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ConnectorError::UnknownStream { stream, .. } if stream == "tikcets"),
        "{error}"
    );
    assert!(reads.lock().unwrap().is_empty());
}

/// A ticket filed after the outage began says when it began: the connector states that
/// as the event's `effective_at` (A1). It is kept in the envelope, and it changes neither
/// the event's id nor where the event stands in the canonical order, which `occurred_at`
/// decides.
async fn a_sources_effective_date_is_kept_beside_when_the_event_happened(backend: Backend) {
    let test = "a_sources_effective_date_is_kept_beside_when_the_event_happened";
    let record = |effective: &str| {
        format!(
            "{{\"seq\": 1, \"op\": \"create\", \"id\": \"T-7\", \"at\": \"2026-11-20T09:00:00Z\", {effective}\"service\": \"payments\", \"title\": \"Card payments fail\", \"severity\": \"sev1\"}}\n"
        )
    };
    let mut stored = Vec::new();
    for (n, effective) in ["\"effective_at\": \"2026-11-20T07:30:00Z\", ", ""]
        .into_iter()
        .enumerate()
    {
        let store = backend.store(&format!("{test}_{n}")).await;
        let dir = std::env::temp_dir().join(format!(
            "ops-filesync-{test}-{backend:?}-{n}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tickets")).unwrap();
        std::fs::write(dir.join("tickets/0001.jsonl"), record(effective)).unwrap();
        let report = runner(&store, JsonLinesDirectory::new(&dir))
            .sync_stream("tickets")
            .await
            .unwrap();
        assert_eq!(report.appended, 1);
        let events = store
            .read_by_type("pack.incidents.incident.IncidentOpened")
            .await
            .unwrap();
        stored.push(events[0].envelope.clone());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let (stated, unstated) = (&stored[0], &stored[1]);
    assert_eq!(
        stated.effective_at,
        Some("2026-11-20T07:30:00Z".parse().unwrap())
    );
    assert_eq!(unstated.effective_at, None);
    assert_eq!(stated.occurred_at, unstated.occurred_at);
    assert_eq!(stated.event_id, unstated.event_id, "not part of the id");
    assert_eq!(
        ops_core_runtime::store::CanonicalKey::of(stated),
        ops_core_runtime::store::CanonicalKey::of(unstated),
        "not part of the order"
    );
    stated.verify().unwrap();
}

/// The quarantine keeps what an earlier build could not read. Retried, a record this
/// build reads is stored and released in one transaction (and retrying again stores
/// nothing); one it still cannot read stays, with why.
async fn a_quarantined_record_this_build_reads_is_stored_and_released(backend: Backend) {
    let store = backend.store("quarantine_retry").await;
    let origin = "connector:tickets/tickets";
    let readable = r#"{"seq": 90, "op": "create", "id": "T-190", "at": "2026-11-20T13:00:00Z", "service": "payments", "title": "Payouts stall", "severity": "sev1"}"#;
    store
        .quarantine(
            origin,
            "tickets/0009.jsonl:1",
            "an earlier build refused it",
            readable,
        )
        .await
        .unwrap();
    store
        .quarantine(origin, "tickets/0009.jsonl:2", "not JSON", "{broken")
        .await
        .unwrap();
    let connector = runner(&store, JsonLinesDirectory::new(SAMPLE_EXPORT));
    let retried = connector.retry_quarantined("tickets").await.unwrap();
    assert_eq!(retried.stored, [("tickets/0009.jsonl:1".to_owned(), 1)]);
    assert_eq!(retried.still_failing.len(), 1);
    assert!(
        retried.still_failing[0].1.contains("not JSON"),
        "{retried:?}"
    );
    let left = store.quarantined(origin).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "tickets/0009.jsonl:2");
    let opened = store
        .read_by_type(
            <ops_contract_incidents::IncidentOpened as ops_core::contract::Contract>::TYPE,
        )
        .await
        .unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].envelope.payload["incident_id"], "T-190");
    let again = connector.retry_quarantined("tickets").await.unwrap();
    assert!(again.stored.is_empty(), "{again:?}");
}

/// Two workers sync the same stream at once: a page is stored with its cursor only if the
/// cursor is still where its worker read it, so the log and the cursor end as one worker's
/// run leaves them, and a page written against a moved cursor is refused whole.
async fn two_workers_reading_one_stream_store_each_page_once(backend: Backend) {
    let alone = backend.store("two_workers_reading_one_stream_alone").await;
    let single = runner(&alone, JsonLinesDirectory::new(SAMPLE_EXPORT))
        .sync_stream("tickets")
        .await
        .unwrap();

    let shared = backend.store("two_workers_reading_one_stream_shared").await;
    let mut first = runner(&shared, JsonLinesDirectory::new(SAMPLE_EXPORT));
    let mut second = runner(&shared, JsonLinesDirectory::new(SAMPLE_EXPORT));
    let (a, b) = tokio::join!(first.sync_stream("tickets"), second.sync_stream("tickets"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(replayed_ids(&shared).await, replayed_ids(&alone).await);
    assert_eq!(a.appended + b.appended, single.appended, "{a:?} {b:?}");
    assert_eq!(
        shared.cursor("tickets", "tickets").await.unwrap(),
        alone.cursor("tickets", "tickets").await.unwrap()
    );

    // A page written against a cursor that has moved stores nothing.
    let stale = CursorUpdate {
        connector_id: "tickets".to_owned(),
        stream: "tickets".to_owned(),
        cursor: "0001.jsonl:4".to_owned(),
        watermark: None,
        expected: CursorFence::Is(Some("0001.jsonl:0".to_owned())),
    };
    let before = replayed_ids(&shared).await;
    let refused = shared
        .append_with_cursor(
            "connector/tickets/tickets",
            ExpectedVersion::Any,
            &[],
            Some(&stale),
        )
        .await;
    assert!(
        matches!(refused, Err(AppendError::Fenced { .. })),
        "{refused:?}"
    );
    assert_eq!(replayed_ids(&shared).await, before);
    assert_eq!(
        shared.cursor("tickets", "tickets").await.unwrap(),
        alone.cursor("tickets", "tickets").await.unwrap()
    );
}

async fn the_sample_export_feeds_the_incident_board(backend: Backend) {
    let store = backend
        .store("the_sample_export_feeds_the_incident_board")
        .await;
    let report = runner(&store, JsonLinesDirectory::new(SAMPLE_EXPORT))
        .sync_stream("tickets")
        .await
        .unwrap();
    assert_eq!(report.records, 10);
    assert_eq!(report.appended, 10);
    assert_eq!(report.quarantined, 1);
    assert_eq!(report.deleted, 1);
    assert_eq!(
        report.cursor.as_deref().map(cursor_place),
        Some("0002.jsonl:5")
    );
    let (cursor, watermark) = store.cursor("tickets", "tickets").await.unwrap().unwrap();
    assert_eq!(cursor_place(&cursor), "0002.jsonl:5");
    assert_eq!(
        watermark.unwrap().to_string(),
        "2026-11-20T12:01:00.000000Z"
    );

    // The record that drifted is quarantined with where it is and why, and stated as an event.
    let quarantined = store
        .quarantined("connector:tickets/tickets")
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].0, "tickets/0002.jsonl:2");
    assert!(
        quarantined[0]
            .1
            .starts_with("at `/severity`: unknown variant `urgent`"),
        "{}",
        quarantined[0].1
    );
    assert!(quarantined[0].2.contains("\"T-103\""));
    let drifted = store.read_by_type(SourceSchemaDrifted::TYPE).await.unwrap();
    assert_eq!(
        drifted[0].envelope.payload["location"],
        "tickets/0002.jsonl:2"
    );
    let deleted = store.read_by_type(SourceRecordDeleted::TYPE).await.unwrap();
    assert_eq!(deleted[0].envelope.payload["native_id"], "T-104");

    let mut board = ProjectionRunner::start(store.clone(), &IncidentBoard)
        .await
        .unwrap();
    board.catch_up().await.unwrap();
    assert_eq!(
        open_by_service(board.state()),
        vec![(
            "catalogue/payments".to_owned(),
            vec!["T-100".to_owned(), "T-102".to_owned()]
        )]
    );
    assert_eq!(
        time_to_acknowledge(board.state()),
        vec![
            ("T-100".to_owned(), 270_000),
            ("T-101".to_owned(), 900_000),
            ("T-102".to_owned(), 720_000)
        ]
    );
}

/// The ids of the log, in canonical order.
async fn replayed_ids(store: &EventStore) -> Vec<ops_core::id::EventId> {
    store
        .replay(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.envelope.event_id)
        .collect()
}

async fn reading_again_from_the_same_cursor_gives_the_same_events(backend: Backend) {
    let store = backend
        .store("reading_again_from_the_same_cursor_gives_the_same_events")
        .await;
    let mut connector = runner(&store, JsonLinesDirectory::new(SAMPLE_EXPORT));
    connector.sync_stream("tickets").await.unwrap();
    let first = replayed_ids(&store).await;
    let again = connector.backfill("tickets", None).await.unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 10));
    let from_middle = connector
        .backfill("tickets", Some("0001.jsonl:3"))
        .await
        .unwrap();
    assert_eq!((from_middle.records, from_middle.appended), (7, 0));
    let second = replayed_ids(&store).await;
    assert_eq!(first, second);
    // The drifted record is kept once, however often it is read.
    assert_eq!(
        store
            .quarantined("connector:tickets/tickets")
            .await
            .unwrap()
            .len(),
        1
    );

    // A second store fed from scratch holds the same ids.
    let other = backend
        .store("reading_again_from_the_same_cursor_gives_the_same_events_2")
        .await;
    runner(&other, JsonLinesDirectory::new(SAMPLE_EXPORT))
        .sync_stream("tickets")
        .await
        .unwrap();
    let third = replayed_ids(&other).await;
    assert_eq!(first, third);
}

async fn only_new_and_complete_records_are_read(backend: Backend) {
    let test = "only_new_and_complete_records_are_read";
    let store = backend.store(test).await;
    let dir = sample_copy(&format!("{test}-{backend:?}"));
    let mut connector = runner(&store, JsonLinesDirectory::new(&dir));
    connector.sync_stream("tickets").await.unwrap();
    // The exporter is still writing 0003.jsonl: its last line has no newline yet.
    let third = dir.join("tickets/0003.jsonl");
    std::fs::write(
        &third,
        "{\"seq\": 11, \"op\": \"update\", \"id\": \"T-100\", \"at\": \"2026-11-20T13:00:00Z\", \"status\": \"reopened\", \"assignee\": {\"id\": \"U042\", \"name\": \"Ada\"}}\n{\"seq\": 12, \"op\": \"upd",
    )
    .unwrap();
    let report = connector.sync_stream("tickets").await.unwrap();
    assert_eq!((report.records, report.quarantined), (1, 0));
    assert_eq!(
        report.cursor.as_deref().map(cursor_place),
        Some("0003.jsonl:1")
    );
    std::fs::write(
        &third,
        "{\"seq\": 11, \"op\": \"update\", \"id\": \"T-100\", \"at\": \"2026-11-20T13:00:00Z\", \"status\": \"reopened\", \"assignee\": {\"id\": \"U042\", \"name\": \"Ada\"}}\n{\"seq\": 12, \"op\": \"create\", \"id\": \"T-105\", \"at\": \"2026-11-20T13:05:00Z\", \"service\": \"mail\", \"title\": \"Bounces\", \"severity\": \"sev2\"}\n",
    )
    .unwrap();
    let report = connector.sync_stream("tickets").await.unwrap();
    assert_eq!((report.records, report.appended), (1, 1));
    // 11 records' events, and the grant of the capability the connector records on.
    assert_eq!(store.count().await.unwrap(), 12);
}

async fn a_cursor_beyond_the_source_is_refused(backend: Backend) {
    let store = backend.store("a_cursor_beyond_the_source_is_refused").await;
    let mut connector = runner(&store, JsonLinesDirectory::new(SAMPLE_EXPORT));
    for cursor in ["0009.jsonl:1", "0001.jsonl:99", "garbage"] {
        let error = connector
            .backfill("tickets", Some(cursor))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                ConnectorError::Source {
                    source: SourceError::CursorBeyondEnd { .. },
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains(cursor), "{error}");
    }
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.cursor("tickets", "tickets").await.unwrap().is_none());
}

/// The sample export behind a source that is away for its first `failures` reads.
fn flaky(failures: usize) -> impl SourceReader {
    ops_tests::sources::SampleWith::new(move |read| {
        if read < failures {
            Err(SourceError::Transient(
                "the export share is busy".to_owned(),
            ))
        } else {
            Ok(())
        }
    })
}

async fn transient_source_errors_are_retried_with_backoff(backend: Backend) {
    let store = backend
        .store("transient_source_errors_are_retried_with_backoff")
        .await;
    let report = runner(&store, flaky(3))
        .sync_stream("tickets")
        .await
        .unwrap();
    assert_eq!(report.retries, 3);
    assert_eq!(report.appended, 10);

    let down = flaky(100);
    let other = backend
        .store("transient_source_errors_are_retried_with_backoff_2")
        .await;
    let error = runner(&other, down)
        .sync_stream("tickets")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("the export share is busy"),
        "{error}"
    );
    assert_eq!(other.count().await.unwrap(), 0);
}

async fn two_sources_that_disagree_become_a_conflict_event(backend: Backend) {
    let store = backend
        .store("two_sources_that_disagree_become_a_conflict_event")
        .await;
    runner(&store, JsonLinesDirectory::new(SAMPLE_EXPORT))
        .sync_stream("tickets")
        .await
        .unwrap();
    // The pager also opened T-100, as SEV2 on another service; it agrees on T-102.
    let pager = |id: &str, service: &str, title: &str, severity| {
        let event = ops_contract_incidents::IncidentOpened {
            incident_id: id.to_owned(),
            service: ops_shared_people::ServiceRef {
                system: "catalogue".to_owned(),
                id: service.to_owned(),
            },
            title: title.to_owned(),
            severity,
        };
        ops_core::envelope::EventEnvelope::new(
            &event,
            ops_tests::origin_at(&format!("page-{id}"), 1_795_165_300_000_000, "pager", None),
        )
        .unwrap()
    };
    use ops_contract_incidents::Severity;
    store
        .append(
            "pager",
            ops_core_runtime::store::ExpectedVersion::Any,
            &[
                pager(
                    "T-100",
                    "checkout",
                    "Card authorisations time out",
                    Severity::Sev2,
                ),
                pager(
                    "T-102",
                    "payments",
                    "Refunds fail for one bank",
                    Severity::Sev2,
                ),
            ],
        )
        .await
        .unwrap();
    let outcome = ops_core_runtime::reconcile::reconcile(&store, &IncidentOpenings)
        .await
        .unwrap();
    assert_eq!(outcome.appended.len(), 1);
    let conflicts = store
        .read_by_type(ops_core::connector::SourceFactsConflicted::TYPE)
        .await
        .unwrap();
    let payload = &conflicts[0].envelope.payload;
    assert_eq!(payload["subject"], "incident T-100");
    let reason = payload["reason"].as_str().unwrap();
    assert!(
        reason.contains("`service`") && reason.contains("`severity`"),
        "{reason}"
    );
    assert!(!reason.contains("`title`"), "{reason}");
    // Reconciling again finds the same conflict and stores nothing new.
    let again = ops_core_runtime::reconcile::reconcile(&store, &IncidentOpenings)
        .await
        .unwrap();
    assert_eq!((again.appended.len(), again.duplicates.len()), (0, 1));
}

/// An event a forging connector states for every record it reads, and that connector's id.
trait Forgery: ops_core::contract::Event + Send + Sync {
    const CONNECTOR: &'static str;
    fn forged() -> Self;
}

/// A filesync connector that states `F` for every record, whatever it reads.
struct Stating<F>(std::marker::PhantomData<F>);

impl<F: Forgery> ops_core::connector::Connector for Stating<F> {
    type Pack = pack_filesync::FilesyncPack;
    const ID: &'static str = F::CONNECTOR;

    fn streams(&self) -> Vec<String> {
        vec!["tickets".to_owned()]
    }

    fn interpret(
        &self,
        _: &str,
        _: &serde_json::Value,
    ) -> Result<Vec<ops_core::connector::Fact>, ops_core::connector::Drift> {
        let at = "2026-11-20T09:00:00Z".parse().unwrap();
        Ok(vec![
            ops_core::connector::Fact::event(&F::forged(), "T-100", at, None).unwrap(),
        ])
    }
}

/// A forged tombstone: a core event.
impl Forgery for SourceRecordDeleted {
    const CONNECTOR: &'static str = "forging";

    fn forged() -> Self {
        SourceRecordDeleted {
            connector_id: "tickets".to_owned(),
            stream: "tickets".to_owned(),
            native_id: "T-100".to_owned(),
        }
    }
}

/// Syncs the sample export through `connector` into a fresh SQLite store.
async fn sync_sample(
    test: &str,
    connector: &'static dyn DynConnector,
) -> (EventStore, ops_core_runtime::connector::SyncReport) {
    let store = Backend::Sqlite.store(test).await;
    let report = ConnectorRunner::new(
        store.clone(),
        connector,
        Box::new(JsonLinesDirectory::new(SAMPLE_EXPORT)),
        ConnectorOptions::default(),
    )
    .unwrap()
    .sync_stream("tickets")
    .await
    .unwrap();
    (store, report)
}

/// Every record was quarantined, none of `event_type` stored, and the first reason says `why`.
async fn all_quarantined(
    (store, report): (EventStore, ops_core_runtime::connector::SyncReport),
    connector_id: &str,
    event_type: &str,
    why: &str,
) {
    assert_eq!(report.quarantined, 10);
    assert!(store.read_by_type(event_type).await.unwrap().is_empty());
    let quarantined = store
        .quarantined(&format!("connector:{connector_id}/tickets"))
        .await
        .unwrap();
    assert!(quarantined[0].1.contains(why), "{}", quarantined[0].1);
}

#[tokio::test]
async fn a_connector_cannot_state_core_events() {
    all_quarantined(
        sync_sample(
            "a_connector_cannot_state_core_events",
            &Stating::<SourceRecordDeleted>(std::marker::PhantomData),
        )
        .await,
        "forging",
        SourceRecordDeleted::TYPE,
        "`core.SourceRecordDeleted` is a core event; a connector cannot state it",
    )
    .await;
}

/// A payload that claims by hand to be the notify pack's private `OnCallNotified`, and to
/// be public: what a string door would let a connector state.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct ClaimsToBeOnCallNotified {
    incident_id: String,
}

impl Contract for ClaimsToBeOnCallNotified {
    const TYPE: &'static str = "pack.notify.oncall.OnCallNotified";
    const VERSION: u32 = 1;
    const KIND: ops_core::contract::Kind = ops_core::contract::Kind::Event;
    const VISIBILITY: ops_core::contract::Visibility = ops_core::contract::Visibility::Public;
}

impl ops_core::contract::Event for ClaimsToBeOnCallNotified {}

// The seals only the macros write: this crate is not sandboxed, so it can name them, which a
// pack cannot; the runtime still refuses what the forgery states, by its Rust type.
impl ops_core::__private::ContractSeal for ClaimsToBeOnCallNotified {}
impl ops_core::__private::EventSeal for ClaimsToBeOnCallNotified {}

/// Another pack's private event, stated by a filesync connector.
impl Forgery for ClaimsToBeOnCallNotified {
    const CONNECTOR: &'static str = "impersonating";

    fn forged() -> Self {
        ClaimsToBeOnCallNotified {
            incident_id: "T-100".to_owned(),
        }
    }
}

#[tokio::test]
async fn a_connector_cannot_state_another_packs_private_event() {
    all_quarantined(
        sync_sample(
            "a_connector_cannot_state_another_packs_private_event",
            &Stating::<ClaimsToBeOnCallNotified>(std::marker::PhantomData),
        )
        .await,
        "impersonating",
        "pack.notify.oncall.OnCallNotified",
        "`pack.notify.oncall.OnCallNotified` v1 was made from `it::connectors::ClaimsToBeOnCallNotified`, not from `pack_notify::OnCallNotified`",
    )
    .await;
}

/// A stream name is the pack's to choose, so it is checked like an id: `../..` reaches no
/// folder. And a source folder's link to a file or folder outside it is not followed.
#[tokio::test]
async fn a_connector_reads_only_inside_its_source_folder() {
    let store = Backend::Sqlite
        .store("a_connector_reads_only_inside_its_source_folder")
        .await;
    let source = sample_copy("inside-source");
    for stream in ["../..", "tickets/../..", "/etc", "Tickets", ""] {
        let error = runner(&store, JsonLinesDirectory::new(&source))
            .sync_stream(stream)
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("names stream `{stream}`, which is not a name")),
            "{error}"
        );
        // The source itself refuses it too, whoever asks.
        let refused = JsonLinesDirectory::new(&source).read_after(stream, None, 10);
        assert!(
            matches!(refused, Err(SourceError::Permanent(_))),
            "{stream}: {refused:?}"
        );
    }
    // A link inside the source folder that points outside it.
    let outside = source.with_extension("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("0001.jsonl"), "{\"secret\": true}\n").unwrap();
    std::os::unix::fs::symlink(&outside, source.join("linked")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("0001.jsonl"),
        source.join("tickets/0000-linked.jsonl"),
    )
    .unwrap();
    let reader = JsonLinesDirectory::new(&source);
    for stream in ["linked", "tickets"] {
        match reader.read_after(stream, None, 100) {
            Err(SourceError::Permanent(reason)) => {
                assert!(reason.contains("outside the source folder"), "{reason}")
            }
            other => panic!("{stream}: {other:?}"),
        }
    }
    std::fs::remove_dir_all(&outside).ok();
    std::fs::remove_dir_all(&source).ok();
}

/// A source directory of one stream, `tickets`, with `files`.
fn source_with(test: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ops-source-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tickets")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join("tickets").join(name), bytes).unwrap();
    }
    dir
}

fn cursor_after(source: &JsonLinesDirectory, cursor: Option<&str>) -> (Vec<String>, String) {
    let records = source.read_after("tickets", cursor, 100).unwrap();
    let texts = records.iter().map(|r| r.text.clone()).collect();
    (
        texts,
        records.last().map(|r| r.cursor.clone()).unwrap_or_default(),
    )
}

/// Sources never lose a record silently: a file truncated and written again, or a new file
/// that sorts before the cursor's, stops the read with what changed, instead of skipping.
#[test]
fn a_source_that_changed_under_its_cursor_is_reported_not_skipped() {
    let dir = source_with(
        "changed",
        &[("0002.jsonl", b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n")],
    );
    let source = JsonLinesDirectory::new(&dir);
    let (read, cursor) = cursor_after(&source, None);
    assert_eq!(read.len(), 3);
    // Appended to: read on.
    std::fs::write(
        dir.join("tickets/0002.jsonl"),
        b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n",
    )
    .unwrap();
    let (read, cursor) = cursor_after(&source, Some(&cursor));
    assert_eq!(read, ["{\"n\":4}"]);
    // Truncated, then written past the old cursor again: what it pointed at changed.
    std::fs::write(
        dir.join("tickets/0002.jsonl"),
        b"{\"n\":9}\n{\"n\":10}\n{\"n\":11}\n{\"n\":12}\n{\"n\":13}\n",
    )
    .unwrap();
    match source.read_after("tickets", Some(&cursor), 100) {
        Err(SourceError::Changed { reason, .. }) => {
            assert!(reason.contains("truncated or rewritten"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A new file that sorts before the cursor's file.
    let dir = source_with("earlier", &[("0002.jsonl", b"{\"n\":1}\n")]);
    let source = JsonLinesDirectory::new(&dir);
    let (_, cursor) = cursor_after(&source, None);
    std::fs::write(dir.join("tickets/0001.jsonl"), b"{\"n\":0}\n").unwrap();
    match source.read_after("tickets", Some(&cursor), 100) {
        Err(SourceError::Changed { reason, .. }) => {
            assert!(
                reason.contains("a file was added or removed ahead of the cursor"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    // The cursor's file deleted: beyond the source, with the verb that moves on.
    std::fs::remove_file(dir.join("tickets/0002.jsonl")).unwrap();
    match source.read_after("tickets", Some(&cursor), 100) {
        Err(SourceError::CursorBeyondEnd { reason, .. }) => {
            assert!(reason.contains("ops-host connectors reset"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A byte-order mark is not part of the first record; a line that is not UTF-8 or over the
/// record limit is a record whose content is its reason (quarantined, its bytes escaped,
/// not altered); the unterminated last line of a file the writer has moved on from is read.
#[test]
fn odd_bytes_are_read_or_reported_never_dropped_or_altered() {
    let dir = source_with(
        "odd",
        &[
            (
                "0001.jsonl",
                b"\xEF\xBB\xBF{\"n\":1}\n{\"n\":\"\xff\"}\n{\"n\":3}",
            ),
            (
                "0002.jsonl",
                b"{\"n\":4,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n{\"n\":5}",
            ),
        ],
    );
    let source = JsonLinesDirectory::new(&dir).with_max_record_bytes(32);
    let records = source.read_after("tickets", None, 100).unwrap();
    let contents: Vec<Result<serde_json::Value, String>> =
        records.iter().map(|r| r.content.clone()).collect();
    assert_eq!(
        contents[0],
        Ok(serde_json::json!({"n": 1})),
        "the mark is not data"
    );
    assert!(
        contents[1].as_ref().is_err_and(|e| e.contains("not UTF-8")),
        "{:?}",
        contents[1]
    );
    assert_eq!(records[1].text, "{\"n\":\"\\xff\"}");
    assert_eq!(
        contents[2],
        Ok(serde_json::json!({"n": 3})),
        "a later file exists"
    );
    assert!(
        contents[3]
            .as_ref()
            .is_err_and(|e| e.contains("over this source's limit of 32 bytes")),
        "{:?}",
        contents[3]
    );
    // The newest file's unterminated last line is still being written.
    assert_eq!(records.len(), 4);
    std::fs::remove_dir_all(&dir).ok();
}

/// `connectors reset` moves a cursor only on a capability that allows it, with a receipt;
/// a denial is receipted too and moves nothing.
#[tokio::test]
async fn a_cursor_moves_only_on_a_capability_with_a_receipt() {
    use ops_core::connector::SourceCursorReset;
    let store = Backend::Sqlite
        .store("a_cursor_moves_only_on_a_capability_with_a_receipt")
        .await;
    let reset_on = |authority: std::sync::Arc<ops_core::capability::CapabilityBook>| {
        let store = store.clone();
        async move {
            let reset = SourceCursorReset {
                connector_id: "tickets".to_owned(),
                stream: "tickets".to_owned(),
                from: None,
                to: Some("0001.jsonl:1".to_owned()),
                reason: "the export was rewritten".to_owned(),
            };
            ops_core_runtime::connector::reset_cursor(
                &store,
                &*authority,
                reset,
                &ops_tests::acting(ops_tests::commands::operator()),
                ops_tests::commands::approver_capability(),
            )
            .await
            .unwrap()
        }
    };
    let denied = reset_on(ops_tests::commands::authority_without_reactions()).await;
    assert!(denied.is_err());
    assert!(store.cursor("tickets", "tickets").await.unwrap().is_none());
    assert_eq!(
        store
            .read_by_type(ops_core::capability::CapabilityDenied::TYPE)
            .await
            .unwrap()
            .len(),
        1
    );
    let allowed = reset_on(ops_tests::commands::authority(
        ops_core::capability::Scope::everything(),
    ))
    .await;
    assert_eq!(allowed, Ok(()));
    assert_eq!(
        store
            .cursor("tickets", "tickets")
            .await
            .unwrap()
            .map(|(c, _)| c),
        Some("0001.jsonl:1".to_owned())
    );
    assert_eq!(
        store
            .read_by_type(SourceCursorReset::TYPE)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A record dated implausibly far after it was read (a source's clock or data is wrong) is
/// quarantined with the reason, not stored: stored, it would sort after every real event and
/// make each one after it late for every projection.
#[tokio::test]
async fn a_record_dated_far_in_the_future_is_quarantined() {
    let store = Backend::Sqlite
        .store("a_record_dated_far_in_the_future_is_quarantined")
        .await;
    let dir = source_with(
        "future",
        &[(
            "0001.jsonl",
            b"{\"seq\": 1, \"op\": \"create\", \"id\": \"T-1\", \"at\": \"9999-12-31T00:00:00Z\", \"service\": \"payments\", \"title\": \"x\", \"severity\": \"sev1\"}\n{\"seq\": 2, \"op\": \"create\", \"id\": \"T-2\", \"at\": \"2026-11-20T09:00:00Z\", \"service\": \"payments\", \"title\": \"y\", \"severity\": \"sev2\"}\n",
        )],
    );
    let report = runner(&store, JsonLinesDirectory::new(&dir))
        .sync_stream("tickets")
        .await
        .unwrap();
    // Stored: T-2's opening and the drift that says why T-1 was set aside.
    assert_eq!((report.quarantined, report.appended), (1, 2), "{report:?}");
    assert_eq!(
        store
            .read_by_type(SourceSchemaDrifted::TYPE)
            .await
            .unwrap()
            .len(),
        1
    );
    let quarantined = store
        .quarantined("connector:tickets/tickets")
        .await
        .unwrap();
    assert!(
        quarantined[0].1.contains("dated 9999-12-31")
            && quarantined[0].1.contains("after it was read"),
        "{quarantined:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
