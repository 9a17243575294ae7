//! The command bus on both backends: routing to the owning pack's handler, outcomes
//! recorded with their events in one transaction, idempotent re-submission, and
//! optimistic concurrency on the target.

use std::collections::BTreeMap;

use ops_contract_incidents::AcknowledgeIncident;
use ops_core::capability::Scope;
use ops_core::envelope::{Causation, CommandOutcome, EventEnvelope};
use ops_core::handler::{Decided, Handler};
use ops_core_runtime::command::{BusError, CommandBus, history_seen_by};
use ops_core_runtime::store::{EventStore, ExpectedVersion};
use ops_tests::commands::{acknowledge, capability, open, opened};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;

async fn bus(backend: Backend, test: &str) -> (EventStore, CommandBus) {
    opened(backend, test, 0).await
}

on_both_backends!(
    accepted_commands_store_their_events_with_the_outcome,
    a_command_is_decided_once,
    rejections_are_recorded_with_their_reason,
    a_stale_expected_version_is_a_conflict_not_a_lost_write,
    concurrent_commands_on_one_target_are_decided_in_turn,
    a_handler_sees_only_the_history_its_pack_may_see,
    a_kept_state_folds_only_what_happened_since_and_an_erasure_drops_it,
    a_command_submitted_for_another_target_than_its_payloads_is_refused,
);

/// An incident's commands act on `incident/<id>` of their payload: opening INC-1 under
/// other targets (five streams for one incident, or none) is refused, each time with
/// why, and nothing is stated.
async fn a_command_submitted_for_another_target_than_its_payloads_is_refused(backend: Backend) {
    let (store, bus) = bus(backend, "command_target_from_payload").await;
    for target in ["incident/INC-2", "", "anything/else"] {
        let command = ops_tests::commands::open_at("INC-1", target);
        let receipt = bus.submit(&command, capability(), None).await.unwrap();
        assert_eq!(
            receipt.outcome,
            CommandOutcome::Rejected {
                reason: format!(
                    "`pack.incidents.incident.OpenIncident` acts on `incident/INC-1` (its payload says so), not on `{target}`"
                )
            }
        );
    }
    assert_eq!(store.count().await.unwrap(), 0);
    let opened = bus
        .submit(&open("INC-1"), capability(), None)
        .await
        .unwrap();
    assert_eq!(opened.outcome, CommandOutcome::Accepted);
}

/// One stream holding a public incident event, the incidents pack's private triage note and
/// the notify pack's private notification (written under its type name, as a string door
/// would): each pack's handlers see their own events and what the contracts they list
/// publish, never another pack's private ones.
async fn a_handler_sees_only_the_history_its_pack_may_see(backend: Backend) {
    let (store, bus) = bus(backend, "a_handler_sees_only_the_history_its_pack_may_see").await;
    bus.submit(&open("INC-7"), capability(), None)
        .await
        .unwrap();
    let note = pack_incidents::triage_note(
        "INC-7",
        "rolled back the deploy",
        ops_shared_people::PersonRef {
            system: "pagerduty".into(),
            id: "U042".into(),
            display_name: "Ada".into(),
        },
        ops_tests::origin("note-1"),
    )
    .unwrap();
    let notified = EventEnvelope::from_parts(
        ops_core_runtime::CORE,
        "pack.notify.oncall.OnCallNotified".to_owned(),
        1,
        serde_json::json!({"incident_id": "INC-7"}),
        ops_tests::origin("notified-1"),
    );
    store
        .append(
            "incident/INC-7",
            ExpectedVersion::Exact(1),
            &[note, notified],
        )
        .await
        .unwrap();
    let history = store.read_stream("incident/INC-7").await.unwrap();
    assert_eq!(history.len(), 3);
    let seen = |pack: &str| -> Vec<String> {
        history_seen_by(&store, pack, &history)
            .into_iter()
            .map(|event| event.event_type)
            .collect()
    };
    assert_eq!(
        seen("incidents"),
        vec![
            "pack.incidents.incident.IncidentOpened",
            "pack.incidents.triage.TriageNoteAdded"
        ]
    );
    assert_eq!(
        seen("notify"),
        vec![
            "pack.incidents.incident.IncidentOpened",
            "pack.notify.oncall.OnCallNotified"
        ]
    );
    assert_eq!(
        seen("filesync"),
        vec!["pack.incidents.incident.IncidentOpened"]
    );
    // The bus decides on that filtered past: acknowledging still works for incidents.
    let acknowledged = bus
        .submit(&acknowledge("INC-7", "U042"), capability(), None)
        .await
        .unwrap();
    assert_eq!(acknowledged.outcome, CommandOutcome::Accepted);
}

async fn accepted_commands_store_their_events_with_the_outcome(backend: Backend) {
    let (store, bus) = bus(
        backend,
        "accepted_commands_store_their_events_with_the_outcome",
    )
    .await;
    let opened = bus
        .submit(&open("INC-1"), capability(), None)
        .await
        .unwrap();
    assert_eq!(opened.outcome, CommandOutcome::Accepted);
    let acknowledged = bus
        .submit(&acknowledge("INC-1", "U042"), capability(), Some(1))
        .await
        .unwrap();
    assert_eq!(acknowledged.outcome, CommandOutcome::Accepted);
    let stream = store.read_stream("incident/INC-1").await.unwrap();
    assert_eq!(stream.len(), 2);
    let event = &stream[1].envelope;
    assert_eq!(event.event_id, acknowledged.event_ids[0]);
    assert_eq!(event.causation, Causation::Command(acknowledged.command_id));
    assert_eq!(event.capability_id, capability());
    assert_eq!(
        event.occurred_at.to_string(),
        "2026-11-26T06:05:00.000000Z",
        "when it was requested"
    );
    // Each event's place in its stream is its source sequence, so same-instant events of
    // one stream sort in the order they were decided.
    let places: Vec<(Option<u64>, i64)> = stream
        .iter()
        .map(|stored| (stored.envelope.source_sequence, stored.stream_version))
        .collect();
    assert_eq!(places, [(Some(1), 1), (Some(2), 2)]);
    // The record names the capability state the check relied on: the responder's grant,
    // and a replay reads the same.
    let granted = EventEnvelope::new(
        &ops_tests::commands::grant(capability(), ops_tests::responder(), Scope::everything()),
        ops_tests::origin(&capability().to_string()),
    )
    .unwrap();
    assert_eq!(
        acknowledged.capability_state_ref,
        granted.event_id.to_string()
    );
    let replayed = bus
        .submit(&acknowledge("INC-1", "U042"), capability(), Some(1))
        .await
        .unwrap();
    assert!(replayed.replayed);
    assert_eq!(
        replayed.capability_state_ref,
        acknowledged.capability_state_ref
    );
}

async fn a_command_is_decided_once(backend: Backend) {
    let (store, bus) = bus(backend, "a_command_is_decided_once").await;
    let command = open("INC-1");
    let first = bus.submit(&command, capability(), None).await.unwrap();
    let again = bus.submit(&command, capability(), None).await.unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(
        (again.outcome, again.event_ids),
        (first.outcome, first.event_ids)
    );
    assert_eq!(store.count().await.unwrap(), 1);

    // The same command from several places at once: one decision, one set of events.
    let bus = std::sync::Arc::new(bus);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.submit(&open("INC-2"), capability(), None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.push(task.await.unwrap());
    }
    assert!(
        receipts
            .iter()
            .all(|r| r.event_ids == receipts[0].event_ids)
    );
    assert_eq!(receipts.iter().filter(|r| !r.replayed).count(), 1);
    assert_eq!(store.count().await.unwrap(), 2);
    // Submitted again on a capability that does not allow it, it is checked like a new
    // command: denied, and its recorded outcome is not given back.
    let denied = bus
        .submit(&command, ops_tests::commands::approver_capability(), None)
        .await;
    assert!(
        matches!(
            denied,
            Err(ops_core_runtime::command::BusError::Denied { .. })
        ),
        "{denied:?}"
    );
}

async fn rejections_are_recorded_with_their_reason(backend: Backend) {
    let (store, bus) = bus(backend, "rejections_are_recorded_with_their_reason").await;
    let command = acknowledge("INC-404", "U042");
    let rejected = bus.submit(&command, capability(), None).await.unwrap();
    assert_eq!(
        rejected.outcome,
        CommandOutcome::Rejected {
            reason: "incident INC-404 was never opened".to_owned()
        }
    );
    assert!(rejected.event_ids.is_empty());
    let again = bus.submit(&command, capability(), None).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, rejected.outcome);
    assert_eq!(store.count().await.unwrap(), 0);
}

async fn a_stale_expected_version_is_a_conflict_not_a_lost_write(backend: Backend) {
    let (store, bus) = bus(
        backend,
        "a_stale_expected_version_is_a_conflict_not_a_lost_write",
    )
    .await;
    bus.submit(&open("INC-1"), capability(), None)
        .await
        .unwrap();
    let error = bus
        .submit(&acknowledge("INC-1", "U042"), capability(), Some(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            BusError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("nothing was written"));
    assert_eq!(store.count().await.unwrap(), 1);
    // Not recorded: the caller may decide again on the current state.
    let accepted = bus
        .submit(&acknowledge("INC-1", "U042"), capability(), Some(1))
        .await
        .unwrap();
    assert_eq!(accepted.outcome, CommandOutcome::Accepted);
}

async fn concurrent_commands_on_one_target_are_decided_in_turn(backend: Backend) {
    let (store, bus) = bus(
        backend,
        "concurrent_commands_on_one_target_are_decided_in_turn",
    )
    .await;
    bus.submit(&open("INC-1"), capability(), None)
        .await
        .unwrap();
    let bus = std::sync::Arc::new(bus);
    let tasks: Vec<_> = ["U1", "U2", "U3"]
        .into_iter()
        .map(|by| {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.submit(&acknowledge("INC-1", by), capability(), None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap().outcome {
            CommandOutcome::Accepted => accepted += 1,
            CommandOutcome::Rejected { reason } => {
                assert_eq!(reason, "incident INC-1 is already acknowledged")
            }
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(store.read_stream("incident/INC-1").await.unwrap().len(), 2);
}

/// A handler a pack registered by hand for a command of another pack.
struct Rogue;

impl Handler for Rogue {
    type Pack = pack_filesync::FilesyncPack;
    type Command = AcknowledgeIncident;
    type State = ();
    type Rejection = String;

    fn decide(&self, _: &AcknowledgeIncident, _: &()) -> Result<Vec<Decided>, String> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn the_bus_refuses_a_handler_of_another_owner() {
    let store = Backend::Sqlite
        .store("the_bus_refuses_a_handler_of_another_owner")
        .await;
    let error = CommandBus::with_handlers(
        store,
        vec![&Rogue],
        ops_tests::commands::authority(ops_core::capability::Scope::everything()),
    )
    .err()
    .unwrap();
    assert!(
        error.to_string().contains("pack `filesync` handles `pack.incidents.incident.AcknowledgeIncident`, which it does not own"),
        "{error}"
    );
}

/// A handler of the incidents pack that tries to forge a receipt of the egress gateway.
struct Forger;

impl Handler for Forger {
    type Pack = pack_incidents::IncidentsPack;
    type Command = AcknowledgeIncident;
    type State = ();
    type Rejection = String;

    fn decide(&self, command: &AcknowledgeIncident, _: &()) -> Result<Vec<Decided>, String> {
        let forged = ops_core::egress::EffectStateChanged {
            command_id: ops_core::id::CommandId::from_idempotency_key(
                &ops_core::id::ContentHash::of_bytes(command.incident_id.as_bytes()),
            ),
            state: ops_core::egress::EffectState::Executed,
            attempt: 1,
            note: None,
            compensates: None,
        };
        Ok(vec![Decided::event(&forged)])
    }
}

#[tokio::test]
async fn a_handler_cannot_state_core_events() {
    let store = Backend::Sqlite
        .store("a_handler_cannot_state_core_events")
        .await;
    let bus = CommandBus::with_handlers(
        store.clone(),
        vec![&Forger],
        ops_tests::commands::authority(ops_core::capability::Scope::everything()),
    )
    .unwrap();
    let receipt = bus
        .submit(&acknowledge("INC-1", "U042"), capability(), None)
        .await
        .unwrap();
    assert_eq!(
        receipt.outcome,
        CommandOutcome::Rejected {
            reason: "the handler of pack `incidents` decided `core.EffectStateChanged`, which is not its pack's to state".to_owned()
        }
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

/// How many events `Counted` states folded, and how many the last decision saw, by
/// incident (each backend's test uses its own).
static APPLIED: std::sync::Mutex<BTreeMap<String, usize>> = std::sync::Mutex::new(BTreeMap::new());
static SEEN: std::sync::Mutex<BTreeMap<String, usize>> = std::sync::Mutex::new(BTreeMap::new());

fn tally(counts: &std::sync::Mutex<BTreeMap<String, usize>>, incident: &str) -> usize {
    counts.lock().unwrap().get(incident).copied().unwrap_or(0)
}

/// A state that counts what it was given.
#[derive(Default)]
struct Counted {
    events: usize,
}

impl ops_core::handler::Aggregate for Counted {
    fn apply(&mut self, event: &ops_core::handler::PastEvent) {
        let incident = event.payload["incident_id"].as_str().unwrap_or_default();
        *APPLIED
            .lock()
            .unwrap()
            .entry(incident.to_owned())
            .or_default() += 1;
        self.events += 1;
    }
}

/// Accepts every acknowledgement with one more event on the target.
struct Counting;

impl Handler for Counting {
    type Pack = pack_incidents::IncidentsPack;
    type Command = AcknowledgeIncident;
    type State = Counted;
    type Rejection = String;

    fn decide(
        &self,
        command: &AcknowledgeIncident,
        state: &Counted,
    ) -> Result<Vec<Decided>, String> {
        SEEN.lock()
            .unwrap()
            .insert(command.incident_id.clone(), state.events);
        Ok(vec![Decided::event(
            &ops_contract_incidents::IncidentOpened {
                incident_id: command.incident_id.clone(),
                service: ops_shared_people::ServiceRef {
                    system: "catalog".to_owned(),
                    id: "payments".to_owned(),
                },
                title: format!("seen {}", state.events),
                severity: ops_contract_incidents::Severity::Sev3,
            },
        )])
    }
}

/// The bus keeps a handler's state of a target: the next command folds only the events
/// since (its own and another writer's), and a recorded erasure makes it fold the whole
/// stream again, since a kept state may hold the erased person's data in clear.
async fn a_kept_state_folds_only_what_happened_since_and_an_erasure_drops_it(backend: Backend) {
    let incident = format!("INC-{backend:?}");
    let stream = format!("incident/{incident}");
    let store = backend
        .store("a_kept_state_folds_only_what_happened_since")
        .await;
    let bus = CommandBus::with_handlers(
        store.clone(),
        vec![&Counting],
        ops_tests::commands::authority(Scope::everything()),
    )
    .unwrap();
    // (events folded for this command, events the decision saw)
    let decide = async |by: &str| {
        let before = tally(&APPLIED, &incident);
        let receipt = bus
            .submit(&acknowledge(&incident, by), capability(), None)
            .await
            .unwrap();
        assert_eq!(receipt.outcome, CommandOutcome::Accepted);
        (tally(&APPLIED, &incident) - before, tally(&SEEN, &incident))
    };
    assert_eq!(decide("U1").await, (0, 0));
    assert_eq!(decide("U2").await, (1, 1));
    assert_eq!(decide("U3").await, (1, 2));

    // Another writer's event on the target: folded next time, with the last decision's
    // event and nothing before them.
    let note = pack_incidents::triage_note(
        &incident,
        "rolled back",
        ops_shared_people::PersonRef {
            system: "pagerduty".into(),
            id: "U042".into(),
            display_name: "Ada".into(),
        },
        ops_tests::origin("note-kept"),
    )
    .unwrap();
    store
        .append(&stream, ExpectedVersion::Exact(3), &[note])
        .await
        .unwrap();
    assert_eq!(decide("U4").await, (2, 4));

    let erased = EventEnvelope::new(
        &ops_core::redaction::RedactionApplied {
            subject_id: "sub_0000000000000000000000000000000000000000000000000000000000000000"
                .to_owned(),
            fields: Vec::new(),
            reason: "a test erasure".to_owned(),
            capability_state_ref: String::new(),
        },
        ops_tests::origin("erasure-kept"),
    )
    .unwrap();
    store
        .append("subjects/erased", ExpectedVersion::NoStream, &[erased])
        .await
        .unwrap();
    assert_eq!(decide("U5").await, (5, 5), "folded again from the start");
    assert_eq!(decide("U6").await, (1, 6));
}
