//! Leases on both backends: one worker runs each projection, reaction and connector stream
//! at a time; an ended or released lease is taken over, and a write from a worker that lost
//! its lease is refused.

use std::path::PathBuf;
use std::time::Duration;

use ops_core_runtime::connector::{
    ConnectorOptions, ConnectorRunner, JsonLinesDirectory, SourceReader,
};
use ops_core_runtime::leases::{self, Acquired, Leases};
use ops_core_runtime::projection::{ProjectionRunner, stored_rows};
use ops_core_runtime::store::EventStore;
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;
use pack_filesync::TicketExport;
use pack_incidents::IncidentBoard;

on_both_backends!(
    a_lease_is_one_workers_until_it_ends_or_is_released,
    a_projection_runs_under_one_worker_and_a_takeover_goes_on_from_its_state,
    a_page_written_after_the_lease_was_taken_over_is_refused,
);

const LONG: Duration = Duration::from_secs(60);

fn held(acquired: Acquired) -> leases::Lease {
    match acquired {
        Acquired::Held(lease) => lease,
        Acquired::Busy { holder, .. } => panic!("held by {holder}"),
    }
}

async fn a_lease_is_one_workers_until_it_ends_or_is_released(backend: Backend) {
    let store = backend.store("lease_one_worker").await;
    let a = Leases::new(store.db().clone(), "a", LONG);
    let b = Leases::new(store.db().clone(), "b", LONG);

    let first = held(a.acquire("projection:x").await.unwrap());
    assert_eq!(first.generation, 1);
    match b.acquire("projection:x").await.unwrap() {
        Acquired::Busy { holder, .. } => assert_eq!(holder, "a"),
        Acquired::Held(lease) => panic!("two holders: {lease:?}"),
    }
    // Renewing is not a takeover: the fencing token stays.
    assert_eq!(held(a.acquire("projection:x").await.unwrap()), first);

    assert_eq!(a.release_all().await.unwrap(), 1);
    let taken = held(b.acquire("projection:x").await.unwrap());
    assert_eq!(taken.generation, 2, "a takeover moves the generation on");
    assert!(!a.holds(&first).await.unwrap());
    assert!(b.holds(&taken).await.unwrap());

    // A lease that ended (its worker died) is taken over without a release.
    let brief = Leases::new(store.db().clone(), "c", Duration::from_millis(1));
    held(brief.acquire("reaction:y").await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(held(b.acquire("reaction:y").await.unwrap()).generation, 2);

    // Workers racing for a free lease: exactly one wins.
    let mut racers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let racer = Leases::new(store.db().clone(), format!("racer-{n}"), LONG);
        racers.spawn(async move { racer.acquire("connector:z/s").await.unwrap() });
    }
    let winners = racers
        .join_all()
        .await
        .into_iter()
        .filter(|outcome| matches!(outcome, Acquired::Held(_)))
        .count();
    assert_eq!(winners, 1);

    let stored = leases::all(store.db()).await.unwrap();
    let names: Vec<(&str, &str, bool)> = stored
        .iter()
        .map(|lease| (lease.name.as_str(), lease.holder.as_str(), lease.live))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&("projection:x", "b", true)), "{names:?}");
    assert!(names.contains(&("reaction:y", "b", true)), "{names:?}");
}

/// The sample export and, in `0003.jsonl`, `extra` more tickets opened.
fn export_with(test: &str, extra: usize) -> PathBuf {
    let dir = ops_tests::sample_copy(
        &std::env::temp_dir().join(format!("ops-leases-{test}-{}", std::process::id())),
    );
    if extra > 0 {
        let lines: Vec<String> = (0..extra)
            .map(|n| {
                format!(
                    r#"{{"seq": {}, "op": "create", "id": "T-{}", "at": "2026-11-20T14:{:02}:00Z", "service": "search", "title": "slow", "severity": "sev2"}}"#,
                    100 + n,
                    500 + n,
                    n % 60
                )
            })
            .collect();
        std::fs::write(dir.join("tickets/0003.jsonl"), lines.join("\n") + "\n").unwrap();
    }
    dir
}

fn connector(store: &EventStore, source: impl SourceReader + 'static) -> ConnectorRunner {
    let options = ConnectorOptions {
        page_size: 4,
        reading: ops_core_runtime::connector::ReadModel {
            initial_backoff: Duration::from_millis(1),
            ..Default::default()
        },
        ..ConnectorOptions::default()
    };
    ConnectorRunner::new(store.clone(), &TicketExport, Box::new(source), options).unwrap()
}

/// Two workers' runners of one projection: while one holds the lease the other does
/// nothing; once it is released the other takes over from the stored state (what it held
/// in memory from before is stale), applies only what is new, and the rows are what one
/// runner makes.
async fn a_projection_runs_under_one_worker_and_a_takeover_goes_on_from_its_state(
    backend: Backend,
) {
    let test = format!("projection-{backend:?}");
    let store = backend.store("lease_projection").await;
    let leased = |holder: &str| {
        ProjectionRunner::start_with_leases(
            store.clone(),
            &IncidentBoard,
            Leases::new(store.db().clone(), holder, LONG),
        )
        .unwrap()
    };
    let release = |holder: &str| {
        let leases = Leases::new(store.db().clone(), holder, LONG);
        async move { leases.release_all().await }
    };
    let (mut a, mut b) = (leased("a"), leased("b"));

    // `a` takes the lease and builds the (empty) projection; `b` finds it held.
    assert_eq!(a.catch_up().await.unwrap().held_by, None);
    let idle = b.catch_up().await.unwrap();
    assert_eq!(idle.held_by.as_deref(), Some("a"), "{idle:?}");
    let source = export_with(&test, 0);
    connector(&store, JsonLinesDirectory::new(&source))
        .sync_stream("tickets")
        .await
        .unwrap();
    let first = a.catch_up().await.unwrap();
    assert!(first.applied > 0, "{first:?}");

    // `b` takes over and goes on from `a`'s state: nothing to apply again.
    release("a").await.unwrap();
    let taken = b.catch_up().await.unwrap();
    assert_eq!(
        (taken.applied, taken.superseded, taken.held_by),
        (0, 0, None)
    );
    assert_eq!(a.catch_up().await.unwrap().held_by.as_deref(), Some("b"));
    let source = export_with(&test, 3);
    connector(&store, JsonLinesDirectory::new(&source))
        .sync_stream("tickets")
        .await
        .unwrap();
    assert_eq!(b.catch_up().await.unwrap().applied, 3);

    // Back to `a`, whose memory is from before the three: it loads `b`'s state instead of
    // applying them again.
    release("b").await.unwrap();
    let back = a.catch_up().await.unwrap();
    assert_eq!((back.applied, back.superseded, back.held_by), (0, 0, None));

    let alone = backend.store("lease_projection_alone").await;
    connector(&alone, JsonLinesDirectory::new(&source))
        .sync_stream("tickets")
        .await
        .unwrap();
    let mut one = ProjectionRunner::start(alone.clone(), &IncidentBoard)
        .await
        .unwrap();
    one.catch_up().await.unwrap();
    assert_eq!(
        stored_rows(&store, &IncidentBoard).await.unwrap(),
        stored_rows(&alone, &IncidentBoard).await.unwrap()
    );
    assert_eq!(a.state(), one.state());
    std::fs::remove_dir_all(&source).unwrap();
}

async fn a_page_written_after_the_lease_was_taken_over_is_refused(backend: Backend) {
    let store = backend.store("lease_connector_fence").await;
    // Before the second page, worker `b` takes over the stream's lease, which worker `a`'s
    // short lease let end.
    let thief = Leases::new(store.db().clone(), "b", LONG);
    let take_over = move |read: usize| {
        if read == 1 {
            std::thread::sleep(Duration::from_millis(20));
            let taken = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(thief.acquire("connector:tickets/tickets"))
            });
            assert!(matches!(taken, Ok(Acquired::Held(_))), "{taken:?}");
        }
        Ok(())
    };
    let mut runner = connector(&store, ops_tests::sources::SampleWith::new(take_over)).with_leases(
        Leases::new(store.db().clone(), "a", Duration::from_millis(1)),
    );
    assert_eq!(runner.lease_name("tickets"), "connector:tickets/tickets");
    let report = runner.sync_stream("tickets").await.unwrap();
    assert!(report.lease_lost, "{report:?}");
    // The first page (four records) is stored with its cursor; the second, read after the
    // takeover, is refused whole and the worker stopped.
    assert_eq!(report.records, 8, "{report:?}");
    assert_eq!(
        store
            .cursor("tickets", "tickets")
            .await
            .unwrap()
            .map(|(c, _)| ops_core_runtime::connector::cursor_place(&c).to_owned()),
        Some("0001.jsonl:4".to_owned())
    );
    let stored = store.replay(None, 100).await.unwrap();
    let records = stored
        .iter()
        .filter(|event| event.envelope.source_ref.starts_with("connector:"))
        .count();
    assert_eq!(records, report.appended, "{report:?}");
    assert!(report.appended <= 4, "{report:?}");
}
