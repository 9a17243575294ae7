//! A projection's declared order holds on rebuild as it does live, on both backends: one
//! that takes each stream in its own order (`Ordering::PerStream`) and one that applies
//! late events as they come (`LateEvents::ApplyInArrivalOrder`) fold in commit order live,
//! and a rebuild replays the log in that same order, so it gives the same state.

use ops_contract_incidents::IncidentOpened;
use ops_core::contract::EventType;
use ops_core::envelope::EventEnvelope;
use ops_core::projection::{LateEvents, Ordering, ProjectedEvent, Projection, State};
use ops_core_runtime::projection::{ProjectionRunner, stored_rows};
use ops_core_runtime::store::ExpectedVersion;
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;
use pack_incidents::IncidentsPack;
use serde_json::json;

/// The incident ids in the order they were applied: a fold whose result is the order.
fn note_order(event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
    let opened = event
        .decode::<IncidentOpened>()
        .ok_or("not an opening")?
        .map_err(|e| e.to_string())?;
    let mut seen = state.get("seen", "order").cloned().unwrap_or(json!([]));
    seen.as_array_mut()
        .ok_or("not a list")?
        .push(json!(opened.incident_id));
    state.put("seen", "order", seen);
    Ok(())
}

struct PerStreamOrder;

impl Projection for PerStreamOrder {
    type Pack = IncidentsPack;
    const NAME: &'static str = "per_stream_order";
    const VERSION: u32 = 1;
    const ORDERING: Ordering = Ordering::PerStream;
    const EVENTS: &'static [EventType] = &[EventType::of::<IncidentOpened>()];

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        note_order(event, state)
    }
}

struct ArrivalOrder;

impl Projection for ArrivalOrder {
    type Pack = IncidentsPack;
    const NAME: &'static str = "arrival_order";
    const VERSION: u32 = 1;
    const LATE_EVENTS: LateEvents = LateEvents::ApplyInArrivalOrder;
    const EVENTS: &'static [EventType] = &[EventType::of::<IncidentOpened>()];

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        note_order(event, state)
    }
}

/// Incident `n` opened `minutes` after a fixed start.
fn opened(n: usize, minutes: i64) -> EventEnvelope {
    let at = 1_795_000_000_000_000 + minutes * 60_000_000;
    crate::projections::opened(&format!("INC-{n}"), at, "payments")
}

async fn a_rebuild_keeps_the_order_the_projection_declared(backend: Backend) {
    let store = backend
        .store("a_rebuild_keeps_the_order_the_projection_declared")
        .await;
    let projections: [&'static dyn ops_core::projection::DynProjection; 2] =
        [&PerStreamOrder, &ArrivalOrder];
    let mut runners = Vec::new();
    for projection in projections {
        runners.push(
            ProjectionRunner::start(store.clone(), projection)
                .await
                .unwrap(),
        );
    }
    // Each arrives earlier than the one before it, some in one stream, some in another,
    // with catch-ups between: commit order is the reverse of the canonical order.
    for (n, stream) in [(1, "a"), (2, "b"), (3, "a"), (4, "b")] {
        store
            .append(stream, ExpectedVersion::Any, &[opened(n, 10 - n as i64)])
            .await
            .unwrap();
        for runner in &mut runners {
            runner.catch_up().await.unwrap();
        }
    }
    let commit_order = r#"["INC-1","INC-2","INC-3","INC-4"]"#;
    for (runner, projection) in runners.iter_mut().zip(projections) {
        let live = stored_rows(&store, projection).await.unwrap();
        assert_eq!(live[0].2, commit_order, "{}", projection.name());
        runner.rebuild().await.unwrap();
        let rebuilt = stored_rows(&store, projection).await.unwrap();
        assert_eq!(rebuilt, live, "{} after a rebuild", projection.name());
    }
    // One more, the earliest of all: followed live, then rebuilt by a new runner.
    store
        .append("c", ExpectedVersion::Any, &[opened(5, 0)])
        .await
        .unwrap();
    for (runner, projection) in runners.iter_mut().zip(projections) {
        runner.catch_up().await.unwrap();
        let mut restarted = ProjectionRunner::start(store.clone(), projection)
            .await
            .unwrap();
        restarted.rebuild().await.unwrap();
        let order = &stored_rows(&store, projection).await.unwrap()[0].2;
        assert_eq!(order, r#"["INC-1","INC-2","INC-3","INC-4","INC-5"]"#);
    }
}

on_both_backends!(a_rebuild_keeps_the_order_the_projection_declared);
