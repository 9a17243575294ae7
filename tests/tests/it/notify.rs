//! The notify pack end to end on both backends: a SEV1 incident opened through the command
//! bus makes the pack's reaction ask for an on-call notification; the egress gateway lets
//! it through and the host's webhook executor posts it, over real HTTP, to a local endpoint
//! that counts what it receives per idempotency key.

use std::time::Duration;

use ops_contract_incidents::Severity;
use ops_core::capability::Scope;
use ops_core::contract::Contract;
use ops_core::egress::{Approval, EgressExecuted};
use ops_core::envelope::{Causation, CommandEnvelope};
use ops_core::reaction::DynReaction;
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::egress::{ApprovalPolicy, Dispatcher, Effect, Gateway};
use ops_core_runtime::reaction::ReactionRunner;
use ops_core_runtime::store::EventStore;
use ops_host::webhook::{WebhookExecutor, WebhookSink};
use ops_tests::commands::{authority, capability, open_with, reactor_capability};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;
use pack_notify::ONCALL_DESTINATION;

struct OnCallPolicy;

impl ApprovalPolicy for OnCallPolicy {
    fn approve(&self, effect: &Effect) -> Option<Approval> {
        (effect.destination == ONCALL_DESTINATION).then(|| Approval::Policy {
            policy_id: "oncall-sev1".to_owned(),
            policy_version: "1.0.0".to_owned(),
        })
    }
}

fn notify_reaction() -> &'static dyn DynReaction {
    ops_core::reaction::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|reaction| reaction.pack_id() == "notify")
        .expect("the notify pack's reaction is installed")
}

fn dispatcher(store: &EventStore, sink: &WebhookSink) -> Dispatcher {
    Dispatcher::new(
        store.clone(),
        "notifier",
        Gateway {
            policies: vec![Box::new(OnCallPolicy)],
            ..Gateway::default()
        },
        authority(Scope::everything()),
    )
    .with_executor(
        ONCALL_DESTINATION,
        Box::new(
            WebhookExecutor::new(&sink.url())
                .expect("a local URL")
                .with_timeout(Duration::from_secs(5)),
        ),
    )
}

/// A store where INC-1 (SEV1) and INC-2 (SEV3) were opened through the bus.
async fn two_incidents(backend: Backend, test: &str) -> (EventStore, CommandBus) {
    let store = backend.store(test).await;
    let bus = CommandBus::new(store.clone(), authority(Scope::everything()))
        .expect("consistent handlers");
    for (id, severity) in [("INC-1", Severity::Sev1), ("INC-2", Severity::Sev3)] {
        bus.submit(&open_with(id, severity), capability(), None)
            .await
            .expect("opening an incident");
    }
    (store, bus)
}

async fn sev1_reaches_the_oncall_once_over_http(backend: Backend) {
    let (store, bus) = two_incidents(backend, "notify_sev1_once").await;
    let runner = ReactionRunner::new(store.clone(), notify_reaction(), reactor_capability());
    let report = runner.catch_up(&bus).await.expect("the reaction runs");
    assert_eq!((report.events, report.accepted), (2, 1), "{report:?}");
    let again = runner.catch_up(&bus).await.expect("the reaction runs");
    assert_eq!(again.events, 0, "the cursor moved past both: {again:?}");

    let sink = WebhookSink::start().await.expect("a local endpoint");
    let dispatched = dispatcher(&store, &sink)
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!(dispatched.executed, 1, "{dispatched:?}");

    let deliveries = sink.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = deliveries.values().next().expect("one delivery");
    assert_eq!(delivery.attempts, 1);
    let request = delivery.request.as_ref().expect("done");
    assert_eq!(request["incident_id"], "INC-1");

    let receipts = store
        .read_by_type(EgressExecuted::TYPE)
        .await
        .expect("reading receipts");
    assert_eq!(receipts.len(), 1);
    let receipt: EgressExecuted =
        serde_json::from_value(receipts[0].envelope.payload.clone()).expect("a receipt");
    assert_eq!(receipt.effect.destination, ONCALL_DESTINATION);
    assert_eq!(
        deliveries.keys().next(),
        Some(&receipt.effect.idempotency_key.to_string()),
        "the endpoint saw the receipt's key"
    );

    // The notification was caused by the incident's opening, in its correlation.
    let opened = store
        .read_stream("incident/INC-1")
        .await
        .expect("reading the incident");
    let command: CommandEnvelope = command_of(&store, &receipt).await;
    assert_eq!(
        command.causation,
        Causation::Event(opened[0].envelope.event_id)
    );
    assert_eq!(command.correlation_id, opened[0].envelope.correlation_id);
}

async fn command_of(store: &EventStore, receipt: &EgressExecuted) -> CommandEnvelope {
    let stream = store
        .read_stream(&pack_notify::notification_stream("INC-1"))
        .await
        .expect("reading the notifications");
    let Causation::Command(id) = stream[0].envelope.causation else {
        panic!("a notification is caused by its command");
    };
    assert_eq!(id, receipt.effect.command_id);
    let reaction = notify_reaction();
    let opened = store
        .read_stream("incident/INC-1")
        .await
        .expect("reading the incident");
    let payload = opened[0].envelope.payload.clone();
    let commands = reaction
        .react(&opened[0].envelope, &payload)
        .expect("the reaction answers");
    assert_eq!(commands.len(), 1);
    assert_eq!(
        commands[0].command_id, id,
        "reacting again proposes the same command"
    );
    commands[0].clone()
}

async fn a_lost_answer_is_retried_and_done_once(backend: Backend) {
    let (store, bus) = two_incidents(backend, "notify_lost_answer").await;
    ReactionRunner::new(store.clone(), notify_reaction(), reactor_capability())
        .catch_up(&bus)
        .await
        .expect("the reaction runs");
    let sink = WebhookSink::start().await.expect("a local endpoint");
    sink.refuse_next(1);
    let dispatcher = dispatcher(&store, &sink).with_lease(Duration::from_millis(200));
    let first = dispatcher.dispatch(10).await.expect("dispatching");
    assert_eq!(first.failed, 1, "503: {first:?}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    sink.lose_next_answers(1);
    let second = dispatcher.dispatch(10).await.expect("dispatching");
    assert_eq!(second.failed, 1, "done, answer lost: {second:?}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = dispatcher.dispatch(10).await.expect("dispatching");
    assert_eq!(third.executed, 1, "{third:?}");

    let deliveries = sink.deliveries();
    assert_eq!(deliveries.len(), 1, "one key: {deliveries:?}");
    let delivery = deliveries.values().next().expect("one delivery");
    assert_eq!(delivery.attempts, 3, "asked three times");
    assert!(delivery.request.is_some(), "and done");
    assert_eq!(
        store
            .read_by_type(EgressExecuted::TYPE)
            .await
            .expect("reading receipts")
            .len(),
        1,
        "one receipt"
    );
}

on_both_backends!(
    sev1_reaches_the_oncall_once_over_http,
    a_lost_answer_is_retried_and_done_once,
    a_denied_reaction_waits_at_its_event_and_answers_once_allowed,
);

/// Before the notify pack's reactions are granted their capability, the reaction's
/// command is denied and the reaction waits at the SEV1 event (its cursor stays), however
/// often it runs, with one denial receipt; once granted, the next run answers it.
async fn a_denied_reaction_waits_at_its_event_and_answers_once_allowed(backend: Backend) {
    let store = backend.store("notify_denied_waits").await;
    let ungranted = CommandBus::new(
        store.clone(),
        ops_tests::commands::responder_only(Scope::everything()),
    )
    .expect("consistent handlers");
    for (id, severity) in [("INC-1", Severity::Sev1), ("INC-2", Severity::Sev3)] {
        ungranted
            .submit(&open_with(id, severity), capability(), None)
            .await
            .expect("opening an incident");
    }
    let runner = ReactionRunner::new(store.clone(), notify_reaction(), reactor_capability());
    for _ in 0..2 {
        let report = runner
            .catch_up(&ungranted)
            .await
            .expect("the reaction runs");
        assert_eq!(
            (report.events, report.accepted, report.denied),
            (0, 0, 1),
            "it waits at INC-1: {report:?}"
        );
    }
    let denials = store
        .read_by_type(ops_core::capability::CapabilityDenied::TYPE)
        .await
        .expect("reading receipts");
    assert_eq!(denials.len(), 1, "one receipt for one denial: {denials:?}");

    let granted = CommandBus::new(store.clone(), authority(Scope::everything()))
        .expect("consistent handlers");
    let report = runner.catch_up(&granted).await.expect("the reaction runs");
    assert_eq!(
        (report.events, report.accepted, report.denied),
        (2, 1, 0),
        "{report:?}"
    );
}
