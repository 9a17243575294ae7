//! Projections on both backends: the incident board, exactly-once checkpoints, late
//! events, version bumps, freshness, and determinism under any arrival order.

use ops_contract_incidents::{IncidentAcknowledged, IncidentOpened, IncidentResolved, Severity};
use ops_core::contract::EventType;
use ops_core::envelope::EventEnvelope;
use ops_core::projection::{ProjectedEvent, Projection, State};
use ops_core_runtime::projection::{ProjectionRunner, all_freshness, stored_rows};
use ops_core_runtime::store::{CanonicalKey, EventStore, ExpectedVersion};
use ops_shared_people::{PersonRef, ServiceRef};
use ops_tests::storage::Backend;
use ops_tests::{on_both_backends, origin_at};
use pack_incidents::{IncidentBoard, IncidentsPack, open_by_service, time_to_acknowledge};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

const MINUTE_US: i64 = 60_000_000;

/// Incident `id` of `service` opened at `at_us`, as the tickets source states it.
pub(crate) fn opened(id: &str, at_us: i64, service: &str) -> EventEnvelope {
    let event = IncidentOpened {
        incident_id: id.to_owned(),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: service.to_owned(),
        },
        title: format!("{service} is down"),
        severity: Severity::Sev2,
    };
    EventEnvelope::new(
        &event,
        origin_at(&format!("{id}-opened"), at_us, "tickets", None),
    )
    .unwrap()
}

fn responder() -> PersonRef {
    PersonRef {
        system: "oncall".to_owned(),
        id: "U042".to_owned(),
        display_name: "Ada".to_owned(),
    }
}

pub(crate) fn acknowledged(id: &str, at_us: i64) -> EventEnvelope {
    let event = IncidentAcknowledged {
        incident_id: id.to_owned(),
        by: responder(),
    };
    EventEnvelope::new(
        &event,
        origin_at(&format!("{id}-ack"), at_us, "tickets", None),
    )
    .unwrap()
}

fn resolved(id: &str, at_us: i64) -> EventEnvelope {
    let event = IncidentResolved {
        incident_id: id.to_owned(),
        by: responder(),
        resolution: "rolled back".to_owned(),
    };
    EventEnvelope::new(
        &event,
        origin_at(&format!("{id}-resolved"), at_us, "tickets", None),
    )
    .unwrap()
}

async fn append(store: &EventStore, events: &[EventEnvelope]) {
    store
        .append("tickets", ExpectedVersion::Any, events)
        .await
        .unwrap();
}

on_both_backends!(
    catch_up_over_late_events_stays_linear,
    the_board_shows_open_incidents_and_time_to_acknowledge,
    a_late_event_rewinds_to_the_state_a_replay_would_give,
    a_new_version_is_built_in_its_own_table_then_switched_to,
    freshness_reports_lag_against_the_objective,
    lag_counts_only_the_events_a_projection_folds,
    any_arrival_order_gives_byte_identical_state,
    a_worker_whose_checkpoint_moved_on_is_refused_and_takes_the_stored_state,
    a_catch_up_in_slices_ends_where_one_catch_up_ends,
);

/// A catch-up in slices (how a worker runs a long one, so interactive work preempts it
/// between batches) stops after each slice saying there is more, and ends with the rows one
/// catch-up stores.
async fn a_catch_up_in_slices_ends_where_one_catch_up_ends(backend: Backend) {
    const EVENTS: i64 = 1_200;
    let events: Vec<EventEnvelope> = (0..EVENTS)
        .map(|i| opened(&format!("INC-{i}"), i * MINUTE_US, "payments"))
        .collect();
    let sliced = backend.store("catch_up_in_slices").await;
    let whole = backend.store("catch_up_in_one").await;
    // Started first: what the log holds at the start is built at once, not caught up.
    let mut runner = ProjectionRunner::start(sliced.clone(), &IncidentBoard)
        .await
        .expect("starting");
    for store in [&sliced, &whole] {
        store
            .append("incidents", ExpectedVersion::Any, &events)
            .await
            .expect("appending");
    }
    let mut slices = Vec::new();
    loop {
        let done = runner.catch_up_within(1).await.expect("a slice");
        slices.push((done.applied, done.more));
        if !done.more {
            break;
        }
    }
    // One batch of 500 events a slice.
    assert_eq!(slices, [(500, true), (500, true), (200, false)]);
    let mut one = ProjectionRunner::start(whole.clone(), &IncidentBoard)
        .await
        .expect("starting");
    assert!(!one.catch_up().await.expect("catching up").more);
    assert_eq!(
        stored_rows(&sliced, &IncidentBoard).await.expect("rows"),
        stored_rows(&whole, &IncidentBoard).await.expect("rows")
    );
}

/// Two workers run one projection on one database: a write from the one whose checkpoint
/// another stored since it read it is refused, and it goes on from the stored state. The
/// rows equal a single worker's, and every event is applied once.
async fn a_worker_whose_checkpoint_moved_on_is_refused_and_takes_the_stored_state(
    backend: Backend,
) {
    let first: Vec<EventEnvelope> = (0..40)
        .map(|i| {
            opened(
                &format!("INC-{i}"),
                i * MINUTE_US,
                if i % 3 == 0 { "search" } else { "payments" },
            )
        })
        .collect();
    let second: Vec<EventEnvelope> = (0..40)
        .step_by(2)
        .map(|i| acknowledged(&format!("INC-{i}"), (i + 50) * MINUTE_US))
        .collect();

    let alone = backend
        .store("a_worker_whose_checkpoint_moved_on_alone")
        .await;
    append(&alone, &first).await;
    append(&alone, &second).await;
    let mut single = ProjectionRunner::start(alone.clone(), &IncidentBoard)
        .await
        .unwrap();
    single.catch_up().await.unwrap();
    let expected = stored_rows(&alone, &IncidentBoard).await.unwrap();

    let shared = backend
        .store("a_worker_whose_checkpoint_moved_on_shared")
        .await;
    let mut a = ProjectionRunner::start(shared.clone(), &IncidentBoard)
        .await
        .unwrap();
    let mut b = ProjectionRunner::start(shared.clone(), &IncidentBoard)
        .await
        .unwrap();
    append(&shared, &first).await;
    assert_eq!(a.catch_up().await.unwrap().applied, first.len());
    // B read the checkpoint before A stored its batch: its write is refused.
    let late = b.catch_up().await.unwrap();
    assert_eq!((late.applied, late.superseded), (0, 1), "{late:?}");
    assert_eq!(b.state(), a.state());
    assert_eq!(b.position(), a.position());

    append(&shared, &second).await;
    assert_eq!(b.catch_up().await.unwrap().applied, second.len());
    let stale = a.catch_up().await.unwrap();
    assert_eq!((stale.applied, stale.superseded), (0, 1), "{stale:?}");
    assert_eq!(a.state(), b.state());

    assert_eq!(
        stored_rows(&shared, &IncidentBoard).await.unwrap(),
        expected
    );
    let freshness = a.freshness().await.unwrap();
    assert_eq!(
        freshness.applied_events as usize,
        first.len() + second.len(),
        "every event applied once"
    );
    assert_eq!(
        freshness.applied_events,
        single.freshness().await.unwrap().applied_events
    );
}

async fn the_board_shows_open_incidents_and_time_to_acknowledge(backend: Backend) {
    let store = backend
        .store("the_board_shows_open_incidents_and_time_to_acknowledge")
        .await;
    append(
        &store,
        &[
            opened("INC-1", 0, "payments"),
            acknowledged("INC-1", 90_000_000),
            opened("INC-2", MINUTE_US, "payments"),
            opened("INC-3", MINUTE_US, "search"),
            resolved("INC-3", 2 * MINUTE_US),
        ],
    )
    .await;
    let mut runner = ProjectionRunner::start(store.clone(), &IncidentBoard)
        .await
        .unwrap();
    runner.catch_up().await.unwrap();
    assert_eq!(
        open_by_service(runner.state()),
        vec![(
            "catalogue/payments".to_owned(),
            vec!["INC-1".to_owned(), "INC-2".to_owned()]
        )]
    );
    assert_eq!(
        time_to_acknowledge(runner.state()),
        vec![("INC-1".to_owned(), 90_000)]
    );

    // The checkpoint was stored with the rows: a restarted runner applies nothing again.
    let rows = stored_rows(&store, &IncidentBoard).await.unwrap();
    let mut restarted = ProjectionRunner::start(store.clone(), &IncidentBoard)
        .await
        .unwrap();
    assert_eq!(restarted.state(), runner.state());
    assert_eq!(restarted.catch_up().await.unwrap().applied, 0);
    assert_eq!(stored_rows(&store, &IncidentBoard).await.unwrap(), rows);

    // A rebuild drops the rows and replays the log: the same rows, counted as a rebuild.
    restarted.rebuild().await.unwrap();
    assert_eq!(stored_rows(&store, &IncidentBoard).await.unwrap(), rows);
    assert_eq!(restarted.freshness().await.unwrap().rebuilds, 1);

    // An acknowledgement of an incident nobody opened is quarantined, with the reason.
    append(&store, &[acknowledged("INC-404", 3 * MINUTE_US)]).await;
    let done = restarted.catch_up().await.unwrap();
    assert_eq!(done.quarantined, 1);
    let quarantined = store
        .quarantined("projection:pack:incidents/incident_board")
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(
        quarantined[0]
            .1
            .contains("INC-404 was acknowledged before it was opened")
    );
}

async fn a_late_event_rewinds_to_the_state_a_replay_would_give(backend: Backend) {
    let store = backend
        .store("a_late_event_rewinds_to_the_state_a_replay_would_give")
        .await;
    let mut runner = ProjectionRunner::start(store.clone(), &IncidentBoard)
        .await
        .unwrap();
    append(&store, &[acknowledged("INC-1", 5 * MINUTE_US)]).await;
    runner.catch_up().await.unwrap();
    assert_eq!(time_to_acknowledge(runner.state()), vec![]);
    // The opening arrives after the acknowledgement, though it happened before it.
    append(&store, &[opened("INC-1", MINUTE_US, "payments")]).await;
    let done = runner.catch_up().await.unwrap();
    // Rewound to where the opening belongs: the acknowledgement after it (set aside at
    // first) is tried again in its place, and nothing else of the log is.
    assert_eq!((done.late, done.rebuilt, done.reapplied), (1, false, 1));
    assert_eq!(
        time_to_acknowledge(runner.state()),
        vec![("INC-1".to_owned(), 4 * 60_000)]
    );
    let status = runner.freshness().await.unwrap();
    assert_eq!((status.late_events, status.rebuilds), (1, 0));
    // Exactly what a projection built from scratch holds.
    let rows = stored_rows(&store, &IncidentBoard).await.unwrap();
    let fresh = backend
        .store("a_late_event_rewinds_to_the_state_a_replay_would_give_ref")
        .await;
    append(
        &fresh,
        &[
            opened("INC-1", MINUTE_US, "payments"),
            acknowledged("INC-1", 5 * MINUTE_US),
        ],
    )
    .await;
    let mut reference = ProjectionRunner::start(fresh.clone(), &IncidentBoard)
        .await
        .unwrap();
    reference.catch_up().await.unwrap();
    assert_eq!(stored_rows(&fresh, &IncidentBoard).await.unwrap(), rows);
    // A runner started on the stored state journaled nothing before its mark: an event
    // that sorts before everything it applied itself is handled by a whole rebuild.
    let mut restarted = ProjectionRunner::start(store.clone(), &IncidentBoard)
        .await
        .unwrap();
    append(&store, &[opened("INC-2", MINUTE_US / 2, "search")]).await;
    let done = restarted.catch_up().await.unwrap();
    assert_eq!((done.late, done.rebuilt), (1, true));
    assert_eq!(restarted.freshness().await.unwrap().rebuilds, 1);
}

/// The board at its next version: same rows, rebuilt into its own table.
struct NextBoard;

impl Projection for NextBoard {
    type Pack = IncidentsPack;
    const NAME: &'static str = "incident_board";
    const VERSION: u32 = IncidentBoard::VERSION + 1;

    const EVENTS: &'static [EventType] = IncidentBoard::EVENTS;

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        IncidentBoard.apply(event, state)
    }
}

async fn a_new_version_is_built_in_its_own_table_then_switched_to(backend: Backend) {
    let store = backend
        .store("a_new_version_is_built_in_its_own_table_then_switched_to")
        .await;
    append(
        &store,
        &[
            opened("INC-1", 0, "payments"),
            acknowledged("INC-1", 1_000_000),
        ],
    )
    .await;
    let mut current = ProjectionRunner::start(store.clone(), &IncidentBoard)
        .await
        .unwrap();
    current.catch_up().await.unwrap();
    let current_rows = stored_rows(&store, &IncidentBoard).await.unwrap();

    let next = ProjectionRunner::start(store.clone(), &NextBoard)
        .await
        .unwrap();
    assert_eq!(next.state(), current.state());
    assert_eq!(stored_rows(&store, &NextBoard).await.unwrap(), current_rows);
    let status = all_freshness(&store).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].version, NextBoard::VERSION);
    // The old table is gone.
    assert!(stored_rows(&store, &IncidentBoard).await.is_err());
}

/// The board with a freshness objective no runner can meet while events wait.
struct ImpatientBoard;

impl Projection for ImpatientBoard {
    type Pack = IncidentsPack;
    const NAME: &'static str = "impatient_board";
    const VERSION: u32 = 1;
    const MAX_LAG_MS: u64 = 0;

    const EVENTS: &'static [EventType] = IncidentBoard::EVENTS;

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        IncidentBoard.apply(event, state)
    }
}

async fn freshness_reports_lag_against_the_objective(backend: Backend) {
    let store = backend
        .store("freshness_reports_lag_against_the_objective")
        .await;
    let mut runner = ProjectionRunner::start(store.clone(), &ImpatientBoard)
        .await
        .unwrap();
    append(&store, &[opened("INC-1", 0, "payments")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let behind = runner.freshness().await.unwrap();
    assert!(behind.lag_ms >= 30, "{behind:?}");
    assert!(!behind.within_objective);
    runner.catch_up().await.unwrap();
    let caught_up = runner.freshness().await.unwrap();
    assert_eq!(caught_up.lag_ms, 0);
    assert!(caught_up.within_objective);
    assert_eq!(caught_up.position, caught_up.head.unwrap());
}

/// The resolutions only, with an objective no runner can meet while one waits.
struct ImpatientResolutions;

impl Projection for ImpatientResolutions {
    type Pack = IncidentsPack;
    const NAME: &'static str = "impatient_resolutions";
    const VERSION: u32 = 1;
    const MAX_LAG_MS: u64 = 0;

    const EVENTS: &'static [EventType] = &[EventType::of::<IncidentResolved>()];

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        IncidentBoard.apply(event, state)
    }
}

/// Lag is measured against the events a projection folds: events of other types after its
/// checkpoint leave it fresh, one it folds makes it late.
async fn lag_counts_only_the_events_a_projection_folds(backend: Backend) {
    let store = backend
        .store("lag_counts_only_the_events_a_projection_folds")
        .await;
    let runner = ProjectionRunner::start(store.clone(), &ImpatientResolutions)
        .await
        .unwrap();
    append(&store, &[opened("INC-1", 0, "payments")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let unrelated = runner.freshness().await.unwrap();
    assert_eq!(unrelated.lag_ms, 0, "{unrelated:?}");
    assert!(unrelated.within_objective && unrelated.position < unrelated.head.unwrap());
    append(&store, &[resolved("INC-1", MINUTE_US)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let waiting = runner.freshness().await.unwrap();
    assert!(
        waiting.lag_ms >= 30 && !waiting.within_objective,
        "{waiting:?}"
    );
}

/// A small incident history: each incident opens, maybe is acknowledged, maybe resolved.
fn history() -> impl Strategy<Value = Vec<EventEnvelope>> {
    prop::collection::vec(
        (0i64..20, 1i64..10, 0i64..10, any::<bool>(), 0usize..3),
        1..6,
    )
    .prop_map(|incidents| {
        let mut events = Vec::new();
        for (index, (open_at, ack_after, resolve_after, resolves, service)) in
            incidents.into_iter().enumerate()
        {
            let id = format!("INC-{index}");
            let opened_at = open_at * MINUTE_US;
            events.push(opened(
                &id,
                opened_at,
                ["payments", "search", "mail"][service],
            ));
            let ack_at = opened_at + ack_after * MINUTE_US;
            events.push(acknowledged(&id, ack_at));
            if resolves {
                events.push(resolved(&id, ack_at + resolve_after * MINUTE_US));
            }
        }
        events
    })
}

/// An arrival: the events shuffled, cut into batches, with a catch-up after some of them.
fn arrival() -> impl Strategy<Value = (Vec<EventEnvelope>, Vec<usize>, Vec<(usize, bool)>)> {
    history().prop_flat_map(|events| {
        let count = events.len();
        (
            Just(events),
            Just((0..count).collect::<Vec<_>>()).prop_shuffle(),
            prop::collection::vec((1usize..4, any::<bool>()), count),
        )
    })
}

async fn any_arrival_order_gives_byte_identical_state(backend: Backend) {
    let cases = match backend {
        Backend::Sqlite => 24,
        Backend::Postgres => 10,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = arrival();
    for case in 0..cases {
        let (events, order, batches) = strategy.new_tree(&mut runner).unwrap().current();
        let arrived: Vec<EventEnvelope> = order.iter().map(|&i| events[i].clone()).collect();

        let store = backend.store(&format!("arrival_order_{case}")).await;
        let mut projection = ProjectionRunner::start(store.clone(), &IncidentBoard)
            .await
            .unwrap();
        let mut rest = arrived.as_slice();
        for (size, catch_up) in &batches {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*size).min(rest.len()));
            append(&store, batch).await;
            if *catch_up {
                projection.catch_up().await.unwrap();
            }
            rest = tail;
        }
        append(&store, rest).await;
        projection.catch_up().await.unwrap();
        let arrived_rows = stored_rows(&store, &IncidentBoard).await.unwrap();

        let mut canonical = events.clone();
        canonical.sort_by_key(CanonicalKey::of);
        let reference = backend.store(&format!("arrival_order_{case}_ref")).await;
        append(&reference, &canonical).await;
        let mut replayed = ProjectionRunner::start(reference.clone(), &IncidentBoard)
            .await
            .unwrap();
        replayed.catch_up().await.unwrap();
        let reference_rows = stored_rows(&reference, &IncidentBoard).await.unwrap();
        assert_eq!(
            arrived_rows, reference_rows,
            "case {case}: arrival order {order:?}, batches {batches:?}"
        );
        assert!(!reference_rows.is_empty());
        assert_eq!(projection.state(), replayed.state());
    }
}

/// Ingestion and the board running together: each batch brings new incidents and one
/// opening held back from the batch before, so every catch-up meets a late event. Each late
/// event costs what it changes (a rewind over the events after it), never a replay of the
/// whole log: no full rebuild, events applied again linear in the log, not quadratic; and
/// the board ends exactly as one built in order.
async fn catch_up_over_late_events_stays_linear(backend: Backend) {
    const BATCHES: usize = 40;
    const PER_BATCH: usize = 20;
    let store = backend
        .store("catch_up_over_late_events_stays_linear")
        .await;
    let mut runner = ProjectionRunner::start(store.clone(), &IncidentBoard)
        .await
        .unwrap();
    let event = |n: usize| opened(&format!("INC-{n}"), (n as i64 + 1) * MINUTE_US, "payments");
    let mut in_order = Vec::new();
    let mut held_back: Option<EventEnvelope> = None;
    let mut reapplied = 0;
    let mut late = 0;
    for batch in 0..BATCHES {
        let mut events: Vec<EventEnvelope> = held_back.take().into_iter().collect();
        for n in batch * PER_BATCH..(batch + 1) * PER_BATCH {
            in_order.push(event(n));
            // The batch's first incident arrives with the next batch.
            if n == batch * PER_BATCH && batch + 1 < BATCHES {
                held_back = Some(event(n));
            } else {
                events.push(event(n));
            }
        }
        append(&store, &events).await;
        let done = runner.catch_up().await.unwrap();
        assert!(!done.rebuilt, "batch {batch}: {done:?}");
        reapplied += done.reapplied;
        late += done.late;
    }
    assert_eq!(late, BATCHES - 1);
    let total = BATCHES * PER_BATCH;
    assert!(
        reapplied <= 3 * total,
        "{reapplied} events applied again for {total}: a replay per batch would be about {}",
        total * BATCHES / 2
    );
    assert_eq!(runner.freshness().await.unwrap().rebuilds, 0);
    let rows = stored_rows(&store, &IncidentBoard).await.unwrap();
    let fresh = backend
        .store("catch_up_over_late_events_stays_linear_ref")
        .await;
    append(&fresh, &in_order).await;
    let mut reference = ProjectionRunner::start(fresh.clone(), &IncidentBoard)
        .await
        .unwrap();
    reference.catch_up().await.unwrap();
    assert_eq!(stored_rows(&fresh, &IncidentBoard).await.unwrap(), rows);
}
