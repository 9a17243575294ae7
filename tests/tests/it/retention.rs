//! Retention of projections and receipts on both backends: what is due is named in a
//! `RetentionApplied` receipt and removed; what is not due, the log and the receipts in
//! it stay; a dropped projection is rebuilt from the log to the same rows.

use ops_core::egress::EgressExecuted;
use ops_core::retention::{RetentionApplied, RetentionPolicy};
use ops_core::time::{DAY, Timestamp};
use ops_core_runtime::clock::WallClock;
use ops_core_runtime::db::on_db;
use ops_core_runtime::projection::stored_rows;
use ops_core_runtime::retention::{Retention, RetentionError};
use ops_core_runtime::store::EventStore;
use ops_tests::commands::{
    Pager, acknowledge, approving_dispatcher, capability, caught_up_board, opened, paged,
};
use ops_tests::storage::Backend;
use ops_tests::{on_both_backends, payloads, responder};

async fn outbox_rows(store: &EventStore) -> Vec<(String, String)> {
    on_db!(store.db(), pool => {
        sqlx::query_as("SELECT command_id, state FROM core_outbox ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("reading the outbox")
    })
}

async fn finished_sagas_lose_their_outbox_rows_but_never_their_receipts(backend: Backend) {
    let (store, bus) = paged(backend, "retention_receipts", 2).await;
    let pager = Pager::default();
    approving_dispatcher(&store)
        .with_executor("pager", Box::new(pager.clone()))
        .dispatch(10)
        .await
        .expect("dispatching");
    // A third page, in INC-1's saga, is still waiting.
    bus.submit(
        &ops_tests::commands::page("INC-1", "U043", "pager"),
        capability(),
        None,
    )
    .await
    .expect("paging again");
    let before = outbox_rows(&store).await;
    assert_eq!(before.len(), 3, "{before:?}");

    let retention = Retention::new(store.clone(), capability());
    let in_three_days = Timestamp::now().plus(DAY * 3).expect("in range");
    refused_too_short(
        retention
            .receipts(0, in_three_days, &ops_tests::acting(responder()))
            .await,
    );
    // Within the period nothing is due, and the receipt says so.
    let kept = retention
        .receipts(7, in_three_days, &ops_tests::acting(responder()))
        .await
        .expect("retention");
    assert!(kept.removed.is_empty());
    let applied = retention
        .receipts(1, in_three_days, &ops_tests::acting(responder()))
        .await
        .expect("retention");
    // INC-0's saga is finished; INC-1's still has the third page pending, so its executed
    // first page is kept with it.
    assert_eq!(applied.removed, [before[0].0.clone()]);
    assert_eq!(outbox_rows(&store).await, before[1..]);
    assert_eq!(before[1].1, "executed");
    assert_eq!(before[2].1, "pending");
    // The receipts are events, and stay.
    assert_eq!(payloads::<EgressExecuted>(&store).await.len(), 2);
    let receipts = payloads::<RetentionApplied>(&store).await;
    assert_eq!(receipts, vec![kept, applied]);
}

/// An effect as the saga rule sees it: its saga (correlation), state, whether it can be
/// undone, the effect it undoes, when it last changed.
struct Effect(&'static str, &'static str, bool, Option<u32>, i64);

/// Writes `effects` as outbox rows `cmd-1`, `cmd-2`, … in order, as a dispatcher would
/// have left them (the outbox's own writes need commands and executors behind each row).
async fn with_effects(store: &EventStore, effects: &[Effect]) {
    for (n, Effect(saga, state, reversible, compensates, updated_at_us)) in
        effects.iter().enumerate()
    {
        let command_id = format!("cmd-{}", n + 1);
        on_db!(store.db(), pool => {
            sqlx::query(
                "INSERT INTO core_outbox (command_id, command_type, destination, tenant_id, \
                 idempotency_key, request_hash, request, actor, capability_id, state, attempts, \
                 claimed_until_us, created_at_us, updated_at_us, correlation_id, compensates, reversible) \
                 VALUES ($1, 'pack.incidents.paging.PageResponder', 'pager', 'acme', $1, $1, '{}', \
                 '{}', $2, $3, 1, 0, $4, $4, $5, $6, $7)",
            )
            .bind(&command_id)
            .bind(capability().to_string())
            .bind(*state)
            .bind(*updated_at_us)
            .bind(*saga)
            .bind(compensates.map(|undone| format!("cmd-{undone}")))
            .bind(i64::from(*reversible))
            .execute(pool)
            .await
            .map(drop)
        })
        .expect("writing an outbox row");
    }
}

/// The saga rule, case by case: a saga goes whole, once every effect in it is closed
/// before the period and nothing executed in it still waits for its undo.
async fn only_whole_finished_and_undone_sagas_are_due(backend: Backend) {
    let store = backend.store("retention_saga_rule").await;
    let now = Timestamp::now();
    let (old, recent) = (
        now.unix_micros() - 3 * DAY.as_micros() as i64,
        now.unix_micros(),
    );
    with_effects(
        &store,
        &[
            // 1, 2: finished.
            Effect("done", "executed", true, None, old),
            Effect("done", "executed", true, None, old),
            // 3, 4: one effect still pending keeps the whole saga.
            Effect("running", "executed", true, None, old),
            Effect("running", "pending", true, None, old),
            // 5, 6: one effect changed within the period keeps the whole saga.
            Effect("recent", "executed", true, None, old),
            Effect("recent", "refused", true, None, recent),
            // 7: without a correlation, a row is a saga of its own.
            Effect("", "refused", true, None, old),
            // 8, 9: failed, and its executed effect is not undone yet.
            Effect("waiting", "executed", true, None, old),
            Effect("waiting", "failed", true, None, old),
            // 10-12: failed, and its executed effect undone.
            Effect("undone", "executed", true, None, old),
            Effect("undone", "failed", true, None, old),
            Effect("undone", "executed", true, Some(10), old),
            // 13, 14: refused, and its executed effect cannot be undone.
            Effect("irreversible", "executed", false, None, old),
            Effect("irreversible", "refused", true, None, old),
            // 15, 16: failed; the undo of 15 lies in another saga (17, finished), which
            // does not count for this one.
            Effect("elsewhere", "executed", true, None, old),
            Effect("elsewhere", "cancelled", true, None, old),
            Effect("other", "executed", true, Some(15), old),
            // 18: a saga of its own, still pending.
            Effect("", "pending", true, None, old),
        ],
    )
    .await;
    let retention = Retention::new(store.clone(), capability());
    let by = ops_tests::acting(responder());
    let within = retention.receipts(5, now, &by).await.expect("retention");
    assert!(within.removed.is_empty(), "{within:?}");
    let applied = retention.receipts(1, now, &by).await.expect("retention");
    let due = [1, 2, 7, 10, 11, 12, 13, 14, 17].map(|n| format!("cmd-{n}"));
    assert_eq!(applied.removed, due);
    let kept: Vec<String> = outbox_rows(&store)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        kept,
        [3, 4, 5, 6, 8, 9, 15, 16, 18].map(|n| format!("cmd-{n}"))
    );
}

fn refused_too_short<T: std::fmt::Debug>(result: Result<T, RetentionError>) {
    assert!(
        matches!(result, Err(RetentionError::ReceiptsTooShort)),
        "{result:?}"
    );
}

async fn an_uninstalled_packs_idle_projection_is_dropped_and_rebuilds_the_same(backend: Backend) {
    let (store, bus) = opened(backend, "retention_projections", 3).await;
    bus.submit(&acknowledge("INC-1", "U042"), capability(), None)
        .await
        .expect("acknowledging");
    let (runner, board) = caught_up_board(&store).await;
    let rows = stored_rows(&store, board).await.expect("rows");
    assert!(!rows.is_empty());
    drop(runner);

    let retention = Retention::new(store.clone(), capability());
    let next_week = Timestamp::now().plus(DAY * 7).expect("in range");
    // Installed: kept, however idle.
    let kept = retention
        .projections(
            1,
            &["incidents"],
            next_week,
            &ops_tests::acting(responder()),
        )
        .await
        .expect("retention");
    assert!(kept.removed.is_empty());
    // Uninstalled, but updated within the period: kept.
    let recent = retention
        .projections(
            30,
            &["filesync"],
            next_week,
            &ops_tests::acting(responder()),
        )
        .await
        .expect("retention");
    assert!(recent.removed.is_empty());
    // Uninstalled here, but another worker runs it now (its lease is live): kept.
    let elsewhere = ops_core_runtime::leases::Leases::new(
        store.db().clone(),
        "a-host-with-the-incidents-pack",
        std::time::Duration::from_secs(30),
    );
    elsewhere
        .acquire("projection:pack:incidents/incident_board")
        .await
        .expect("taking the lease");
    let run_elsewhere = retention
        .projections(1, &["filesync"], next_week, &ops_tests::acting(responder()))
        .await
        .expect("retention");
    assert!(run_elsewhere.removed.is_empty(), "{run_elsewhere:?}");
    elsewhere.release_all().await.expect("releasing the lease");
    let dropped = retention
        .projections(1, &["filesync"], next_week, &ops_tests::acting(responder()))
        .await
        .expect("retention");
    assert_eq!(dropped.removed, ["pack:incidents/incident_board"]);
    assert!(
        stored_rows(&store, board).await.is_err(),
        "the state table is gone"
    );
    let statuses = ops_core_runtime::projection::all_freshness(&store)
        .await
        .expect("freshness");
    assert!(statuses.is_empty(), "{statuses:?}");

    // Reinstalled: the projection is rebuilt from the log to the same rows.
    let (_runner, _) = caught_up_board(&store).await;
    assert_eq!(stored_rows(&store, board).await.expect("rows"), rows);

    // The whole policy: one receipt per class.
    let all = retention
        .apply(
            &RetentionPolicy::default(),
            &["incidents"],
            next_week,
            &ops_tests::acting(responder()),
        )
        .await
        .expect("retention");
    let classes: Vec<&str> = all.iter().map(|r| r.class.as_str()).collect();
    assert_eq!(classes, ["artifacts", "projections", "receipts"]);
    refused_too_short(
        retention
            .apply(
                &RetentionPolicy {
                    receipts_days: 0,
                    ..RetentionPolicy::default()
                },
                &["incidents"],
                next_week,
                &ops_tests::acting(responder()),
            )
            .await,
    );
}

on_both_backends!(
    finished_sagas_lose_their_outbox_rows_but_never_their_receipts,
    only_whole_finished_and_undone_sagas_are_due,
    an_uninstalled_packs_idle_projection_is_dropped_and_rebuilds_the_same,
);
