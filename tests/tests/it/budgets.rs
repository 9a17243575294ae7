//! Budgets on both backends: per-run, per-day and per-minute limits, every decision a
//! receipt, and a reopened ledger that remembers the day.

use std::sync::Arc;

use ops_contract_incidents::Severity;
use ops_core::budget::{BudgetDecided, BudgetLimits, Usage};
use ops_core::capability::CapabilityDenied;
use ops_core::capability::Scope;
use ops_core::contract::Contract;
use ops_core::envelope::{Actor, ActorId};
use ops_core_runtime::budget::Budgets;
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::db::on_db;
use ops_core_runtime::reaction::ReactionRunner;
use ops_tests::commands::{
    authority, authority_without_reactions, capability, open_with, reactor_capability,
};
use ops_tests::storage::Backend;
use ops_tests::{on_both_backends, payloads};

fn bot() -> Actor {
    Actor::Agent(ActorId::new("triage-bot").expect("a valid actor id"))
}

fn limits() -> BudgetLimits {
    BudgetLimits {
        per_run: Usage {
            tokens: 1_000,
            calls: 10,
        },
        per_day: Usage {
            tokens: 2_500,
            calls: 100,
        },
        calls_per_minute: 6,
    }
}

fn tokens(tokens: u64) -> Usage {
    Usage { tokens, calls: 1 }
}

/// Whether `budgets` lets `step` of `run` spend `n` tokens in one call.
async fn spends(budgets: &Budgets, run: &str, step: &str, n: u64) -> bool {
    budgets
        .spend(run, step, &bot(), tokens(n))
        .await
        .expect("deciding")
}

async fn spending_stops_at_each_limit_with_a_receipt(backend: Backend) {
    let store = backend.store("budgets_limits").await;
    let budgets = Budgets::open(store.clone(), limits(), capability())
        .await
        .expect("opening");
    assert!(spends(&budgets, "run-1", "step-1", 600).await);
    assert!(
        !spends(&budgets, "run-1", "step-2", 600).await,
        "over the run's 1000"
    );
    assert!(
        spends(&budgets, "run-1", "step-3", 400).await,
        "exactly the run's limit"
    );
    assert!(spends(&budgets, "run-2", "step-4", 900).await);
    assert!(
        !spends(&budgets, "run-3", "step-5", 900).await,
        "over the day's 2500"
    );

    // Asked again (a run retried after a crash), an allowed step spends nothing twice and
    // records nothing new.
    assert!(
        spends(&budgets, "run-2", "step-4", 900).await,
        "an allowed step is allowed again"
    );
    let receipts: Vec<BudgetDecided> = ops_tests::payloads::<BudgetDecided>(&store).await;
    assert_eq!(
        receipts.iter().map(|r| r.allowed).collect::<Vec<_>>(),
        [true, false, true, true, false]
    );
    assert!(
        receipts[1]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("run `run-1` would use 1200 tokens"),
        "{:?}",
        receipts[1]
    );
    assert!(
        receipts[4]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("the day would use 2800 tokens"),
        "{:?}",
        receipts[4]
    );
    assert_eq!(
        receipts[4].day_used,
        Usage {
            tokens: 1_900,
            calls: 3
        }
    );

    // Reopened, it remembers today's spending; and the rate limit holds: six calls a minute.
    let reopened = Budgets::open(store.clone(), limits(), capability())
        .await
        .expect("opening");
    assert!(
        !spends(&reopened, "run-4", "step-6", 700).await,
        "the day is nearly spent"
    );
    let mut allowed = 0;
    for step in 7..12 {
        allowed += usize::from(spends(&reopened, "run-5", &format!("step-{step}"), 1).await);
    }
    assert_eq!(allowed, 3, "three calls were made this minute already");
    let last: BudgetDecided = serde_json::from_value(
        store
            .read_by_type(BudgetDecided::TYPE)
            .await
            .expect("reading")
            .last()
            .expect("receipts")
            .envelope
            .payload
            .clone(),
    )
    .expect("a receipt");
    assert!(
        last.reason
            .as_deref()
            .unwrap_or_default()
            .contains("calls in the last minute; the limit is 6"),
        "{last:?}"
    );
}

/// A reaction on a budget of two calls a run: of three SEV1 incidents, a run notifies
/// about two and stops before the third, which the next run answers.
async fn a_reaction_stops_when_its_run_is_spent_and_the_next_run_resumes(backend: Backend) {
    let store = backend.store("budgets_reaction").await;
    let bus = CommandBus::new(store.clone(), authority(Scope::everything()))
        .expect("consistent handlers");
    for id in ["INC-1", "INC-2", "INC-3"] {
        bus.submit(&open_with(id, Severity::Sev1), capability(), None)
            .await
            .expect("opening an incident");
    }
    let two_a_run = BudgetLimits {
        per_run: Usage {
            tokens: 0,
            calls: 2,
        },
        ..limits()
    };
    let budgets = Arc::new(
        Budgets::open(store.clone(), two_a_run, capability())
            .await
            .expect("opening"),
    );
    let reaction = ops_core::reaction::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|reaction| reaction.pack_id() == "notify")
        .expect("installed");
    let runner =
        ReactionRunner::new(store.clone(), reaction, reactor_capability()).with_budget(budgets);
    let first = runner.catch_up(&bus).await.expect("the reaction runs");
    assert_eq!(
        (first.events, first.accepted, first.stopped_by_budget),
        (2, 2, true),
        "{first:?}"
    );
    let decisions: Vec<bool> = payloads::<BudgetDecided>(&store)
        .await
        .iter()
        .map(|decided| decided.allowed)
        .collect();
    assert_eq!(decisions, [true, true, false]);
    let second = runner.catch_up(&bus).await.expect("the reaction runs");
    assert_eq!(
        (second.events, second.accepted, second.stopped_by_budget),
        (1, 1, false),
        "{second:?}"
    );
    let third = runner.catch_up(&bus).await.expect("the reaction runs");
    assert_eq!(third.events, 0, "{third:?}");
    let notifications: i64 = on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM core_outbox WHERE command_type = 'pack.notify.oncall.NotifyOnCall'")
            .fetch_one(pool)
            .await
            .expect("counting")
    });
    assert_eq!(
        notifications, 3,
        "one notification per incident, none twice"
    );
}

/// A store where one SEV1 incident was opened, and the bus that opened it.
async fn one_sev1_opened(
    backend: Backend,
    test: &str,
) -> (ops_core_runtime::store::EventStore, CommandBus) {
    let store = backend.store(test).await;
    let bus = CommandBus::new(store.clone(), authority(Scope::everything())).expect("handlers");
    bus.submit(&open_with("INC-1", Severity::Sev1), capability(), None)
        .await
        .expect("opening an incident");
    (store, bus)
}

/// How many events the log holds.
async fn logged(store: &ops_core_runtime::store::EventStore) -> i64 {
    on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM core_events")
            .fetch_one(pool)
            .await
            .expect("counting")
    })
}

/// The notify pack's reaction, on a budget.
fn notifier(store: &ops_core_runtime::store::EventStore, budgets: Arc<Budgets>) -> ReactionRunner {
    let reaction = ops_core::reaction::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|reaction| reaction.pack_id() == "notify")
        .expect("installed");
    ReactionRunner::new(store.clone(), reaction, reactor_capability()).with_budget(budgets)
}

const IDLE_TICKS: usize = 200;

/// Idle is idle: a reaction whose capability is not granted yet waits at its event. Run
/// again and again, it writes its denial once and nothing more, and spends no budget on
/// denials; granted, it answers at once, its budget whole.
async fn a_reaction_waiting_for_its_grant_writes_nothing_and_spends_nothing(backend: Backend) {
    let (store, bus) = one_sev1_opened(backend, "budgets_waiting_reaction").await;
    let one_a_run = BudgetLimits {
        per_run: Usage {
            tokens: 0,
            calls: 1,
        },
        ..limits()
    };
    let budgets = Arc::new(
        Budgets::open(store.clone(), one_a_run, capability())
            .await
            .unwrap(),
    );
    let runner = notifier(&store, budgets);
    let denying = CommandBus::new(store.clone(), authority_without_reactions()).expect("handlers");
    let before = logged(&store).await;
    for _ in 0..IDLE_TICKS {
        let report = runner.catch_up(&denying).await.expect("the reaction runs");
        assert_eq!((report.denied, report.accepted), (1, 0), "{report:?}");
    }
    assert_eq!(
        logged(&store).await - before,
        1,
        "{IDLE_TICKS} runs at a denied command write one denial and nothing else"
    );
    assert_eq!(payloads::<CapabilityDenied>(&store).await.len(), 1);
    assert!(
        payloads::<BudgetDecided>(&store).await.is_empty(),
        "a denial spends nothing"
    );
    let granted = runner.catch_up(&bus).await.expect("the reaction runs");
    assert_eq!(
        (granted.accepted, granted.stopped_by_budget),
        (1, false),
        "{granted:?}"
    );
}

/// A reaction over its budget stops at its event; asked again every tick, the same refusal
/// is recorded once, not once per tick.
async fn a_reaction_over_its_budget_records_its_refusal_once(backend: Backend) {
    let (store, bus) = one_sev1_opened(backend, "budgets_refused_once").await;
    let nothing_a_day = BudgetLimits {
        per_day: Usage {
            tokens: 0,
            calls: 0,
        },
        ..limits()
    };
    let budgets = Arc::new(
        Budgets::open(store.clone(), nothing_a_day, capability())
            .await
            .unwrap(),
    );
    let runner = notifier(&store, budgets);
    let before = logged(&store).await;
    for _ in 0..IDLE_TICKS {
        let report = runner.catch_up(&bus).await.expect("the reaction runs");
        assert!(report.stopped_by_budget, "{report:?}");
    }
    assert_eq!(
        logged(&store).await - before,
        1,
        "one refusal for {IDLE_TICKS} runs"
    );
    let decided = payloads::<BudgetDecided>(&store).await;
    assert_eq!(decided.len(), 1);
    assert!(!decided[0].allowed);
}

on_both_backends!(
    a_reaction_waiting_for_its_grant_writes_nothing_and_spends_nothing,
    a_reaction_over_its_budget_records_its_refusal_once,
    spending_stops_at_each_limit_with_a_receipt,
    a_reaction_stops_when_its_run_is_spent_and_the_next_run_resumes,
);
