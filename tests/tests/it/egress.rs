//! The outbox and the egress gateway on both backends: an external command joins the
//! outbox with its events, a dispatcher carries it out once through its destination with
//! the idempotency key and a receipt, and each refusal leaves a receipt and no effect.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_core::capability::CapabilityDenied;
use ops_core::capability::{Scope, Selector};
use ops_core::egress::{Approval, Check, EffectState, EgressExecuted, EgressRefused};
use ops_core::envelope::{Causation, CommandEnvelope, CommandOutcome};
use ops_core::id::ContentHash;
use ops_core_runtime::egress::{
    ApprovalPolicy, Approved, BoxFuture, DispatchReport, Dispatcher, Effect, Executor, Gateway,
};
use ops_core_runtime::store::EventStore;
use ops_tests::commands::{
    Pager, approve_as, approver_capability, authority, capability, opened, operator, page, paged,
};
use ops_tests::storage::Backend;
use ops_tests::{on_both_backends, responder};
use serde_json::Value;

/// Pages for SEV1 incidents are approved by policy `paging-sev1` 1.0.0.
struct Sev1Policy;

impl ApprovalPolicy for Sev1Policy {
    fn approve(&self, effect: &Effect) -> Option<Approval> {
        (effect.command_type == "pack.incidents.paging.PageResponder").then(|| Approval::Policy {
            policy_id: "paging-sev1".to_owned(),
            policy_version: "1.0.0".to_owned(),
        })
    }
}

/// A dispatcher whose capability allow-list reaches `reach`, with one executor.
fn dispatcher_with(
    store: &EventStore,
    name: &str,
    gateway: Gateway,
    reach: &str,
    executor: Option<(&str, Box<dyn Executor>)>,
) -> Dispatcher {
    let dispatcher = Dispatcher::new(
        store.clone(),
        name,
        gateway,
        authority(Scope {
            destinations: Selector::only([reach]),
            ..Scope::everything()
        }),
    );
    match executor {
        Some((destination, executor)) => dispatcher.with_executor(destination, executor),
        None => dispatcher,
    }
}

fn dispatcher(store: &EventStore, name: &str, pager: &Pager, gateway: Gateway) -> Dispatcher {
    dispatcher_with(
        store,
        name,
        gateway,
        "pager",
        Some(("pager", Box::new(pager.clone()))),
    )
}

fn policy_gateway() -> Gateway {
    Gateway {
        policies: vec![Box::new(Sev1Policy)],
        ..Gateway::default()
    }
}

on_both_backends!(
    an_external_command_is_carried_out_once_with_a_receipt,
    each_refusal_leaves_a_receipt_and_no_effect,
    two_dispatchers_never_carry_out_the_same_effect,
    an_effect_whose_answer_was_lost_is_carried_out_once,
    a_claim_is_renewed_while_its_effect_is_in_flight,
    slow_destinations_and_short_leases_post_each_effect_once,
    a_stopping_dispatcher_gives_back_what_it_has_not_posted,
    an_executed_effect_is_undone_by_its_compensation,
);

async fn an_executed_effect_is_undone_by_its_compensation(backend: Backend) {
    let (store, bus) = opened(
        backend,
        "an_executed_effect_is_undone_by_its_compensation",
        1,
    )
    .await;
    let command = page("INC-0", "U042", "pager");
    bus.submit(&command, capability(), None).await.unwrap();
    // Nothing to undo before the page went out.
    let early = bus
        .compensate(&command.command_id, responder(), capability())
        .await
        .unwrap_err();
    assert!(
        early
            .to_string()
            .contains("no executed effect to undo (its effect is pending)"),
        "{early}"
    );

    let pager = Pager::default();
    let policies = || Gateway {
        policies: vec![Box::new(Sev1Policy), Box::new(CancelPolicy)],
        ..Gateway::default()
    };
    dispatcher(&store, "d1", &pager, policies())
        .dispatch(10)
        .await
        .unwrap();
    let undo = bus
        .compensate(&command.command_id, responder(), capability())
        .await
        .unwrap();
    assert_eq!(undo.outcome, CommandOutcome::Accepted);
    // Asking again is the same compensation, recorded once.
    let again = bus
        .compensate(&command.command_id, responder(), capability())
        .await
        .unwrap();
    assert!(again.replayed);
    dispatcher(&store, "d1", &pager, policies())
        .dispatch(10)
        .await
        .unwrap();
    // The cancellation is an effect of its own at the pager (a different key), receipted.
    assert_eq!((pager.effects(), pager.asked()), (2, 2));
    let receipts = store.read_by_type(EgressExecuted::TYPE).await.unwrap();
    assert_eq!(receipts.len(), 2);
    let effects = ops_core_runtime::egress::effects(&store).await.unwrap();
    let original = effects
        .iter()
        .find(|e| e.command_id == command.command_id)
        .unwrap();
    assert_eq!(
        original.steps,
        [
            EffectState::Pending,
            // approved by the policy: a step of its own (A9)
            EffectState::Approved,
            EffectState::Dispatched,
            EffectState::Executed,
            EffectState::Compensating,
            EffectState::Compensated
        ]
    );
    let cancel = effects
        .iter()
        .find(|e| e.command_id != command.command_id)
        .unwrap();
    assert_eq!(cancel.state, EffectState::Executed);
}

/// Cancelling a page is approved by policy too.
struct CancelPolicy;

impl ApprovalPolicy for CancelPolicy {
    fn approve(&self, effect: &Effect) -> Option<Approval> {
        (effect.command_type == "pack.incidents.paging.CancelPage").then(|| Approval::Policy {
            policy_id: "paging-cancel".to_owned(),
            policy_version: "1.0.0".to_owned(),
        })
    }
}

/// The pager does the effect, but the first answer per key never comes back: a crash
/// between the remote call and the receipt.
#[derive(Clone, Default)]
struct LossyPager {
    pager: Pager,
    answered: Arc<Mutex<std::collections::BTreeSet<ContentHash>>>,
}

impl Executor for LossyPager {
    fn execute<'a>(
        &'a self,
        key: &'a ContentHash,
        request: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.pager.execute(key, request).await?;
            if self.answered.lock().unwrap().insert(*key) {
                return Err("connection reset after the request was sent".to_owned());
            }
            Ok(())
        })
    }
}

/// The pager answers, slowly.
#[derive(Clone, Default)]
struct SlowPager(Pager);

impl Executor for SlowPager {
    fn execute<'a>(
        &'a self,
        key: &'a ContentHash,
        request: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            self.0.execute(key, request).await
        })
    }
}

/// A dispatcher whose pager answers slowly, approved by the SEV1 policy.
fn slow_dispatcher(store: &EventStore, name: &str, pager: &Pager) -> Dispatcher {
    dispatcher_with(
        store,
        name,
        policy_gateway(),
        "pager",
        Some(("pager", Box::new(SlowPager(pager.clone())))),
    )
}

/// How many `EgressExecuted` receipts the log holds.
async fn executed_receipts(store: &EventStore) -> usize {
    store
        .read_by_type(EgressExecuted::TYPE)
        .await
        .unwrap()
        .len()
}

async fn an_effect_whose_answer_was_lost_is_carried_out_once(backend: Backend) {
    const PAGES: usize = 20;
    let (store, _) = paged(
        backend,
        "an_effect_whose_answer_was_lost_is_carried_out_once",
        PAGES,
    )
    .await;
    let lossy = LossyPager::default();
    let dispatcher = dispatcher_with(
        &store,
        "d1",
        policy_gateway(),
        "pager",
        Some(("pager", Box::new(lossy.clone()))),
    )
    .with_lease(Duration::from_millis(5));
    let mut executed = 0;
    for _ in 0..200 {
        executed += dispatcher.dispatch(50).await.unwrap().executed;
        if executed == PAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(6)).await;
    }
    assert_eq!(executed, PAGES);
    // Every page was asked for twice and done once, with one receipt each.
    assert_eq!(
        (lossy.pager.effects(), lossy.pager.asked()),
        (PAGES, 2 * PAGES)
    );
    assert_eq!(executed_receipts(&store).await, PAGES);
    let effects = ops_core_runtime::egress::effects(&store).await.unwrap();
    assert!(effects.iter().all(|effect| effect.steps
        == [
            EffectState::Pending,
            // approved by the policy: a step of its own (A9)
            EffectState::Approved,
            EffectState::Dispatched,
            EffectState::AttemptFailed,
            EffectState::Dispatched,
            EffectState::Executed
        ]));
}

/// A post that outlasts the lease keeps its claim: the dispatcher renews it while the post is
/// in flight, so a second dispatcher finds nothing to claim, and the pager is asked once.
async fn a_claim_is_renewed_while_its_effect_is_in_flight(backend: Backend) {
    let (store, bus) = opened(
        backend,
        "a_claim_is_renewed_while_its_effect_is_in_flight",
        1,
    )
    .await;
    bus.submit(&page("INC-0", "U042", "pager"), capability(), None)
        .await
        .unwrap();
    let pager = Pager::default();
    let slow = slow_dispatcher(&store, "slow", &pager).with_lease(Duration::from_millis(20));
    let slow = tokio::spawn(async move { slow.dispatch(1).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(60)).await;
    // Three leases later the post is still in flight, and its claim alive.
    let fast = dispatcher(&store, "fast", &pager, policy_gateway())
        .dispatch(1)
        .await
        .unwrap();
    assert_eq!(fast, Default::default());
    let slow = slow.await.unwrap();
    assert_eq!((slow.executed, slow.lost_claims), (1, 0));
    assert_eq!((pager.effects(), pager.asked()), (1, 1));
    assert_eq!(executed_receipts(&store).await, 1);
}

/// Two healthy dispatchers, a destination slower than the lease and batches far longer than
/// it: the rows a dispatcher has not reached yet lose their claims to the other one, which
/// posts them, and the first, finding its claim gone, does not. Each effect is posted once,
/// and its receipt written as soon as its answer came.
async fn slow_destinations_and_short_leases_post_each_effect_once(backend: Backend) {
    const PAGES: usize = 12;
    let (store, _) = paged(
        backend,
        "slow_destinations_and_short_leases_post_each_effect_once",
        PAGES,
    )
    .await;
    let pager = Pager::default();
    let run = |name: &'static str| {
        let dispatcher =
            slow_dispatcher(&store, name, &pager).with_lease(Duration::from_millis(100));
        let pager = pager.clone();
        tokio::spawn(async move {
            let mut report = DispatchReport::default();
            for _ in 0..200 {
                if pager.effects() == PAGES {
                    break;
                }
                let batch = dispatcher.dispatch(PAGES).await.unwrap();
                if batch == Default::default() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                report.executed += batch.executed;
                report.lost_claims += batch.lost_claims;
            }
            report
        })
    };
    let (first, second) = (run("d1"), run("d2"));
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first.executed + second.executed, PAGES);
    assert_eq!(pager.effects(), PAGES);
    assert_eq!(pager.asked(), PAGES, "an effect was posted twice");
    assert!(
        first.lost_claims + second.lost_claims > 0,
        "the batches outlasted their leases, so some claims moved: {first:?} {second:?}"
    );
    assert_eq!(executed_receipts(&store).await, PAGES);
}

/// SIGTERM stops posting at once: what is in flight finishes with its receipt, the rest of
/// the batch is given back and another worker takes it straight away.
async fn a_stopping_dispatcher_gives_back_what_it_has_not_posted(backend: Backend) {
    const PAGES: usize = 10;
    let (store, _) = paged(
        backend,
        "a_stopping_dispatcher_gives_back_what_it_has_not_posted",
        PAGES,
    )
    .await;
    let pager = Pager::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = slow_dispatcher(&store, "stopping", &pager).with_stop(stop.clone());
    let stopping = tokio::spawn(async move { stopping.dispatch(PAGES).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let stopped = stopping.await.unwrap();
    assert!(
        stopped.executed >= 1 && stopped.executed < PAGES,
        "{stopped:?}"
    );
    assert_eq!(stopped.released, PAGES - stopped.executed);
    // Given back at once, not after the 30 s lease.
    let other = dispatcher(&store, "other", &pager, policy_gateway())
        .dispatch(PAGES)
        .await
        .unwrap();
    assert_eq!(other.executed, PAGES - stopped.executed);
    assert_eq!((pager.effects(), pager.asked()), (PAGES, PAGES));
}

async fn an_external_command_is_carried_out_once_with_a_receipt(backend: Backend) {
    let (store, bus) = opened(
        backend,
        "an_external_command_is_carried_out_once_with_a_receipt",
        1,
    )
    .await;
    let command = page("INC-0", "U042", "pager");
    let receipt = bus.submit(&command, capability(), None).await.unwrap();
    assert_eq!(receipt.outcome, CommandOutcome::Accepted);
    // The same command again: decided once, enqueued once.
    bus.submit(&command, capability(), None).await.unwrap();

    let pager = Pager::default();
    let report = dispatcher(&store, "d1", &pager, policy_gateway())
        .dispatch(10)
        .await
        .unwrap();
    assert_eq!((report.executed, report.refused), (1, 0));
    assert_eq!((pager.effects(), pager.asked()), (1, 1));
    let receipts = store.read_by_type(EgressExecuted::TYPE).await.unwrap();
    assert_eq!(receipts.len(), 1);
    let executed: EgressExecuted =
        serde_json::from_value(receipts[0].envelope.payload.clone()).unwrap();
    assert_eq!(executed.effect.command_id, command.command_id);
    assert_eq!(executed.effect.destination, "pager");
    assert_eq!(executed.effect.requested_by, responder());
    // The grant the decision relied on, by event id; no copy of its scope.
    assert!(
        executed.capability_state_ref.starts_with("evt_"),
        "{}",
        executed.capability_state_ref
    );
    assert_eq!(executed.capability_chain, [capability()]);
    assert!(matches!(executed.approval, Approval::Policy { .. }));
    assert_eq!(
        receipts[0].envelope.causation,
        Causation::Command(command.command_id)
    );
    // Each step of its life is an event.
    let effects = ops_core_runtime::egress::effects(&store).await.unwrap();
    assert_eq!(effects.len(), 1);
    assert_eq!(
        effects[0].steps,
        [
            EffectState::Pending,
            // approved by the policy: a step of its own (A9)
            EffectState::Approved,
            EffectState::Dispatched,
            EffectState::Executed
        ]
    );
    // Nothing is left to do.
    let again = dispatcher(&store, "d1", &pager, policy_gateway())
        .dispatch(10)
        .await
        .unwrap();
    assert_eq!(again, Default::default());
}

use ops_core::contract::Contract;

async fn each_refusal_leaves_a_receipt_and_no_effect(backend: Backend) {
    let (store, bus) = opened(backend, "each_refusal_leaves_a_receipt_and_no_effect", 5).await;
    let pager = Pager::default();
    let refuse = |gateway: Gateway, command: CommandEnvelope, check: Check| {
        let (store, bus, pager) = (&store, &bus, &pager);
        async move {
            bus.submit(&command, capability(), None).await.unwrap();
            let report = dispatcher(store, "d1", pager, gateway)
                .dispatch(10)
                .await
                .unwrap();
            assert_eq!(report.refused, 1, "{check:?}");
            let refusals = store.read_by_type(EgressRefused::TYPE).await.unwrap();
            let last: EgressRefused =
                serde_json::from_value(refusals.last().unwrap().envelope.payload.clone()).unwrap();
            assert_eq!(
                (last.effect.command_id, last.check),
                (command.command_id, check)
            );
            // Judged on the requester's capability as it stood: the receipt names the state.
            assert!(
                last.capability_state_ref.starts_with("evt_") && !last.capability_chain.is_empty(),
                "{last:?}"
            );
            // Refused before it was dispatched (A9), and its saga, with nothing executed,
            // is aborted: there is nothing to undo.
            let effects = ops_core_runtime::egress::effects(store).await.unwrap();
            let effect = effects
                .iter()
                .find(|effect| effect.command_id == command.command_id)
                .unwrap();
            assert_eq!(effect.steps, [EffectState::Pending, EffectState::Refused]);
            let sagas = ops_core_runtime::egress::sagas(store).await.unwrap();
            let saga = sagas
                .iter()
                .find(|saga| saga.correlation_id == effect.correlation_id)
                .unwrap();
            assert_eq!(saga.state, ops_core_runtime::egress::SagaState::Aborted);
            last.reason
        }
    };
    let kill = Gateway {
        killed: ["pager".to_owned()].into(),
        ..policy_gateway()
    };
    let reason = refuse(kill, page("INC-0", "U1", "pager"), Check::KillSwitch).await;
    assert!(reason.contains("kill switch"), "{reason}");
    let reason = refuse(
        Gateway::default(),
        page("INC-1", "U1", "pager"),
        Check::Approval,
    )
    .await;
    assert!(reason.contains("no actor approved it"), "{reason}");
    let reason = refuse(
        policy_gateway(),
        page("INC-2", "U1", "sms"),
        Check::Capability,
    )
    .await;
    assert!(reason.contains("does not reach `sms`"), "{reason}");
    // Within quota the first goes out; the next is refused.
    let quota = || Gateway {
        quotas: [("pager".to_owned(), (1, Duration::from_secs(3600)))].into(),
        ..policy_gateway()
    };
    bus.submit(&page("INC-3", "U1", "pager"), capability(), None)
        .await
        .unwrap();
    dispatcher(&store, "d1", &pager, quota())
        .dispatch(10)
        .await
        .unwrap();
    assert_eq!(pager.effects(), 1);
    let reason = refuse(quota(), page("INC-4", "U1", "pager"), Check::Quota).await;
    assert!(reason.contains("its quota is 1"), "{reason}");
    assert_eq!(pager.effects(), 1, "a refused effect reached the pager");

    // Allowed, but nowhere to send it.
    bus.submit(&page("INC-0", "U9", "fax"), capability(), None)
        .await
        .unwrap();
    let report = dispatcher_with(&store, "d1", policy_gateway(), "fax", None)
        .dispatch(10)
        .await
        .unwrap();
    assert_eq!(report.refused, 1);
    let refusals = store.read_by_type(EgressRefused::TYPE).await.unwrap();
    let last: EgressRefused =
        serde_json::from_value(refusals.last().unwrap().envelope.payload.clone()).unwrap();
    assert_eq!(last.check, Check::Destination);
    assert!(
        last.reason.contains("`fax` is not a known destination"),
        "{}",
        last.reason
    );
    assert_eq!(pager.effects(), 1);

    // An actor's approval stands in for a policy.
    let (store, bus) = opened(backend, "each_refusal_leaves_a_receipt_and_no_effect_2", 1).await;
    let command = page("INC-0", "U1", "pager");
    bus.submit(&command, capability(), None).await.unwrap();
    // Not by its requester: nobody approves their own effect.
    let everything = Scope::everything;
    assert_eq!(
        approve_as(&store, &command.command_id, responder(), everything(), None).await,
        Approved::ByRequester
    );
    // Nor on a capability that does not reach the effect's destination: refused, with the
    // denial's receipt.
    let elsewhere = Scope {
        destinations: Selector::only(["sms"]),
        ..Scope::everything()
    };
    let denied = approve_as(&store, &command.command_id, operator(), elsewhere, None).await;
    assert!(
        matches!(&denied, Approved::Denied { reason } if reason.contains("`pager`")),
        "{denied:?}"
    );
    let denial = ops_tests::payloads::<CapabilityDenied>(&store)
        .await
        .remove(0);
    assert_eq!(
        (denial.capability_id, denial.subject),
        (approver_capability(), command.command_id.to_string())
    );
    assert_eq!(
        approve_as(&store, &command.command_id, operator(), everything(), None).await,
        Approved::Recorded
    );
    let report = dispatcher(&store, "d1", &pager, Gateway::default())
        .dispatch(10)
        .await
        .unwrap();
    assert_eq!(report.executed, 1);
    let effects = ops_core_runtime::egress::effects(&store).await.unwrap();
    assert_eq!(
        effects[0].steps,
        [
            EffectState::Pending,
            EffectState::Approved,
            EffectState::Dispatched,
            EffectState::Executed
        ]
    );
}

/// 200 rows here; `cargo xtask soak` races 10,000 (`OPS_RACE_ROWS`).
async fn two_dispatchers_never_carry_out_the_same_effect(backend: Backend) {
    let pages: usize = std::env::var("OPS_RACE_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(200);
    let (store, _) = paged(
        backend,
        "two_dispatchers_never_carry_out_the_same_effect",
        pages,
    )
    .await;
    let pager = Pager::default();
    // Small batches interleave the two dispatchers more; large runs need larger ones.
    let batch = (pages / 30).clamp(7, 50);
    let run = |name: &'static str| {
        let dispatcher = dispatcher(&store, name, &pager, policy_gateway());
        tokio::spawn(async move {
            let mut total = 0;
            loop {
                let report = dispatcher.dispatch(batch).await.unwrap();
                if report == Default::default() {
                    return total;
                }
                total += report.executed;
            }
        })
    };
    let (first, second) = (run("d1"), run("d2"));
    let executed = first.await.unwrap() + second.await.unwrap();
    assert_eq!(executed, pages);
    assert_eq!(pager.effects(), pages);
    assert_eq!(pager.asked(), pages, "an effect was carried out twice");
    assert_eq!(executed_receipts(&store).await, pages);
}
