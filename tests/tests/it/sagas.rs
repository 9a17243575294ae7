//! Sagas on both backends: the effects of one correlation succeed or are undone together;
//! an effect that cannot be undone is held and can be cancelled; an approval can expire and
//! an actor has a quota.

use ops_core_runtime::clock::WallClock;
use std::time::Duration;

use ops_core::capability::Scope;
use ops_core::contract::Contract;
use ops_core::egress::{
    Check, EffectState, EgressExecuted, EgressFailed, EgressRefused, Reversibility,
};
use ops_core::envelope::{CommandEnvelope, CommandOutcome, CommandRequest, DedupeScope};
use ops_core::id::{ContentHash, CorrelationId};
use ops_core::time::Timestamp;
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::egress::{
    Approved, BoxFuture, Cancelled, Dispatcher, Executor, Gateway, SagaState, sagas,
};
use ops_core_runtime::store::EventStore;
use ops_tests::commands::{
    ApproveAll, Pager, approve_as, authority, capability, opened, operator, page, request,
};
use ops_tests::storage::Backend;
use ops_tests::{on_both_backends, responder};
use pack_notify::{ONCALL_DESTINATION, notify_oncall, publish_status_update};

const STATUS_PAGE: &str = "statuspage";

/// A destination that never confirms anything.
struct Down;

impl Executor for Down {
    fn execute<'a>(
        &'a self,
        _: &'a ContentHash,
        _: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("the status page answered 503".to_owned()) })
    }
}

/// A request in saga `saga` to `destination`.
fn in_saga(saga: &str, target: &str, destination: &str) -> CommandRequest {
    let mut request = request(
        target,
        DedupeScope::Egress {
            destination: destination.to_owned(),
            tenant_id: "acme".to_owned(),
        },
    );
    request.correlation_id = CorrelationId::of(saga).expect("canonical");
    request
}

fn notify(saga: &str, incident: &str) -> CommandEnvelope {
    let target = pack_notify::notification_stream(incident);
    notify_oncall(
        incident,
        "Card authorisations time out",
        "payments",
        in_saga(saga, &target, ONCALL_DESTINATION),
    )
    .expect("a valid command")
}

fn status_update(saga: &str, incident: &str, message: &str) -> CommandEnvelope {
    let target = format!("status/{incident}");
    publish_status_update(incident, message, in_saga(saga, &target, STATUS_PAGE))
        .expect("a valid command")
}

fn dispatcher(store: &EventStore, pager: &Pager, gateway: Gateway) -> Dispatcher {
    Dispatcher::new(store.clone(), "d1", gateway, authority(Scope::everything()))
        .with_executor(ONCALL_DESTINATION, Box::new(pager.clone()))
        .with_executor("pager", Box::new(pager.clone()))
        .with_executor(STATUS_PAGE, Box::new(Down))
}

fn approving(gateway: Gateway) -> Gateway {
    Gateway {
        policies: vec![Box::new(ApproveAll)],
        ..gateway
    }
}

async fn submit(bus: &CommandBus, command: &CommandEnvelope) {
    let receipt = bus
        .submit(command, capability(), None)
        .await
        .expect("submitting");
    assert_eq!(receipt.outcome, CommandOutcome::Accepted);
}

async fn saga_state(store: &EventStore) -> SagaState {
    let all = sagas(store).await.expect("reading sagas");
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].state
}

async fn a_failed_step_undoes_the_steps_already_executed(backend: Backend) {
    let store = backend.store("a_failed_step_undoes_the_executed").await;
    let bus = CommandBus::new(store.clone(), authority(Scope::everything()))
        .expect("consistent handlers");
    submit(&bus, &notify("saga-1", "INC-1")).await;
    submit(&bus, &status_update("saga-1", "INC-1", "Investigating")).await;
    assert_eq!(saga_state(&store).await, SagaState::Running);

    let pager = Pager::default();
    let gateway = || {
        approving(Gateway {
            max_attempts: Some(2),
            ..Gateway::default()
        })
    };
    let first = dispatcher(&store, &pager, gateway())
        .with_lease(Duration::from_millis(1))
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!((first.executed, first.failed), (1, 1), "{first:?}");
    assert_eq!(
        saga_state(&store).await,
        SagaState::Running,
        "one attempt left"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = dispatcher(&store, &pager, gateway())
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!(second.gave_up, 1, "{second:?}");
    assert_eq!(saga_state(&store).await, SagaState::Failed);
    let failed = store
        .read_by_type(EgressFailed::TYPE)
        .await
        .expect("reading");
    let failed: EgressFailed =
        serde_json::from_value(failed[0].envelope.payload.clone()).expect("a receipt");
    assert_eq!(failed.attempts, 2);
    assert!(failed.reason.contains("503"), "{}", failed.reason);

    let unwound = bus
        .unwind_failed_sagas(&responder(), capability())
        .await
        .expect("unwinding");
    assert_eq!(unwound.len(), 1, "the notification is retracted");
    assert_eq!(unwound[0].outcome, CommandOutcome::Accepted);
    assert!(
        bus.unwind_failed_sagas(&responder(), capability())
            .await
            .expect("unwinding")
            .is_empty(),
        "a second run finds nothing new"
    );
    assert_eq!(saga_state(&store).await, SagaState::Compensating);

    let third = dispatcher(&store, &pager, gateway())
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!(third.executed, 1, "the retraction goes out: {third:?}");
    assert_eq!(pager.effects(), 2, "the notification and its retraction");
    let saga = &sagas(&store).await.expect("reading sagas")[0];
    assert_eq!(saga.state, SagaState::Compensated);
    let notification = saga
        .effects
        .iter()
        .find(|effect| effect.command_id == notify("saga-1", "INC-1").command_id)
        .expect("the notification is in the saga");
    assert_eq!(
        notification.steps,
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
}

async fn an_irreversible_effect_is_held_and_can_be_cancelled(backend: Backend) {
    let store = backend.store("an_irreversible_effect_is_held").await;
    let bus = CommandBus::new(store.clone(), authority(Scope::everything()))
        .expect("consistent handlers");
    let update = status_update("saga-2", "INC-2", "Resolved");
    submit(&bus, &update).await;
    submit(&bus, &notify("saga-2", "INC-2")).await;
    let pager = Pager::default();
    let held = dispatcher(
        &store,
        &pager,
        approving(Gateway {
            hold: Duration::from_secs(3600),
            ..Gateway::default()
        }),
    );
    let report = held.dispatch(10).await.expect("dispatching");
    assert_eq!(
        (report.executed, report.refused, report.failed),
        (1, 0, 0),
        "only the reversible notification goes out: {report:?}"
    );
    // The hold may be the destination's own, in place of the gateway's.
    let DedupeScope::Egress { destination, .. } = &update.dedupe_scope else {
        panic!("an external effect");
    };
    let own_hold = dispatcher(
        &store,
        &pager,
        approving(Gateway {
            holds: [(destination.clone(), Duration::from_secs(3600))].into(),
            ..Gateway::default()
        }),
    );
    assert_eq!(
        own_hold.dispatch(10).await.expect("dispatching"),
        Default::default(),
        "the update's destination holds it"
    );

    let cancel = |reason: &'static str| {
        let (held, command_id) = (&held, &update.command_id);
        async move {
            held.cancel(
                command_id,
                &ops_tests::acting(responder()),
                capability(),
                reason,
            )
            .await
            .expect("cancelling")
        }
    };
    assert_eq!(cancel("wrong incident").await, Cancelled::Done);
    assert_eq!(
        cancel("again").await,
        Cancelled::NotPending,
        "nothing left to cancel"
    );
    let refusals = store
        .read_by_type(EgressRefused::TYPE)
        .await
        .expect("reading");
    assert_eq!(refusals.len(), 1);
    let refusal: EgressRefused =
        serde_json::from_value(refusals[0].envelope.payload.clone()).expect("a receipt");
    assert_eq!(refusal.check, Check::Hold);
    // Each receipt says whether its effect could be undone: the held update could not,
    // the notification that went out could (A5, S2).
    assert_eq!(
        refusal.effect.reversibility,
        Some(Reversibility::Irreversible)
    );
    let executed = store
        .read_by_type(EgressExecuted::TYPE)
        .await
        .expect("reading");
    let executed: EgressExecuted =
        serde_json::from_value(executed[0].envelope.payload.clone()).expect("a receipt");
    assert_eq!(
        executed.effect.reversibility,
        Some(Reversibility::Reversible)
    );
    assert!(
        refusal
            .reason
            .contains("cancelled by human `ada@example.com`")
            && refusal.reason.contains("wrong incident"),
        "{}",
        refusal.reason
    );
    assert_eq!(pager.effects(), 1);
    // Cancelled is its own terminal state (A9), and its saga, with the notification it
    // executed, is to be undone.
    let effects = ops_core_runtime::egress::effects(&store)
        .await
        .expect("reading steps");
    let cancelled = effects
        .iter()
        .find(|effect| effect.command_id == update.command_id)
        .expect("the update's effect");
    assert_eq!(cancelled.state, EffectState::Cancelled);
    assert_eq!(
        cancelled.steps,
        [EffectState::Pending, EffectState::Cancelled]
    );
    let saga = sagas(&store)
        .await
        .expect("reading sagas")
        .into_iter()
        .find(|saga| saga.correlation_id == cancelled.correlation_id)
        .expect("its saga");
    assert_eq!(saga.state, SagaState::Failed);
    let report = held.dispatch(10).await.expect("dispatching");
    assert_eq!(report, Default::default(), "nothing is left to dispatch");
}

async fn an_expired_approval_and_an_actor_over_quota_are_refused(backend: Backend) {
    let (store, bus) = opened(backend, "an_expired_approval_is_refused", 3).await;
    let pager = Pager::default();
    let expired = page("INC-0", "U1", "pager");
    submit(&bus, &expired).await;
    let an_hour_ago = Timestamp::from_unix_micros(Timestamp::now().unix_micros() - 3_600_000_000)
        .expect("a time in range");
    assert_eq!(
        approve_as(
            &store,
            &expired.command_id,
            operator(),
            Scope::everything(),
            Some(an_hour_ago)
        )
        .await,
        Approved::Recorded
    );
    let report = dispatcher(&store, &pager, Gateway::default())
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!(report.refused, 1, "{report:?}");
    let refusal: EgressRefused = serde_json::from_value(
        store
            .read_by_type(EgressRefused::TYPE)
            .await
            .expect("reading")[0]
            .envelope
            .payload
            .clone(),
    )
    .expect("a receipt");
    assert_eq!(refusal.check, Check::Approval);
    assert!(refusal.reason.contains("expired"), "{}", refusal.reason);

    let per_actor = || {
        approving(Gateway {
            actor_quota: Some((1, Duration::from_secs(3600))),
            ..Gateway::default()
        })
    };
    submit(&bus, &page("INC-1", "U1", "pager")).await;
    let report = dispatcher(&store, &pager, per_actor())
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!(report.executed, 1, "{report:?}");
    submit(&bus, &page("INC-2", "U1", "pager")).await;
    let report = dispatcher(&store, &pager, per_actor())
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!(report.refused, 1, "{report:?}");
    let refusals = store
        .read_by_type(EgressRefused::TYPE)
        .await
        .expect("reading");
    let refusal: EgressRefused =
        serde_json::from_value(refusals.last().expect("two").envelope.payload.clone())
            .expect("a receipt");
    assert_eq!(refusal.check, Check::Quota);
    assert!(
        refusal
            .reason
            .contains("human `ada@example.com` had 1 effects")
            && refusal.reason.contains("quota per actor is 1"),
        "{}",
        refusal.reason
    );
    assert_eq!(pager.effects(), 1);
}

on_both_backends!(
    a_failed_step_undoes_the_steps_already_executed,
    an_irreversible_effect_is_held_and_can_be_cancelled,
    an_expired_approval_and_an_actor_over_quota_are_refused,
);
