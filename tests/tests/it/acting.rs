//! A6, A7 on both backends: an operator's action is recorded once under its key, and a
//! receipt takes its time and causation from its cause, so a retry of the action (the same
//! key) states the receipts already stored, with the same ids, and records nothing twice.

use ops_core::contract::Contract;
use ops_core::envelope::{Actor, Causation};
use ops_core::id::ContentHash;
use ops_core::lineage::{Artifact, DerivedArtifact, FeedbackGiven, FeedbackKind};
use ops_core::operator::OperatorActionTaken;
use ops_core::time::Timestamp;
use ops_core_runtime::acting::{Acting, Cause, OperatorAction, OperatorActionError};
use ops_core_runtime::lineage::Lineage;
use ops_tests::commands::capability;
use ops_tests::on_both_backends;
use ops_tests::responder;
use ops_tests::storage::Backend;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a valid time")
}

async fn a_retried_action_states_the_receipts_already_stored(backend: Backend) {
    let store = backend.store("acting_retry").await;
    let lineage = Lineage::new(store.clone(), capability());
    let by = |action: OperatorAction| Acting::new(responder(), Cause::Operator(action));
    // `actor` takes action `key` with `verb` at `now`.
    let take = |key: &'static str, verb: &'static str, actor: Actor, now: &str| {
        let store = &store;
        let now = at(now);
        async move { OperatorAction::record(store, key, verb, &actor, capability(), now).await }
    };
    let given = || ops_tests::payloads::<FeedbackGiven>(&store);
    let first = take(
        "feedback-17",
        "lineage feedback",
        responder(),
        "2026-12-01T10:00:00Z",
    )
    .await
    .expect("taking the action");
    let artifact = Artifact::Derived(DerivedArtifact {
        inputs: Vec::new(),
        input_hashes: Vec::new(),
        policy_version: "summary 1.0.0".to_owned(),
        tool_versions: Default::default(),
        model_config: Default::default(),
        eval_id: None,
        output_hash: ContentHash::of_bytes(b"a summary"),
    });
    let artifact_id = lineage
        .record(&artifact, &by(first.clone()))
        .await
        .expect("recording the artifact");
    let give = |action: OperatorAction| {
        let lineage = &lineage;
        async move {
            lineage
                .feedback(artifact_id, FeedbackKind::Accepted, None, &by(action))
                .await
                .expect("feedback");
        }
    };
    give(first.clone()).await;

    // The retry, an hour later: the same action, with its first time.
    let retry = take(
        "feedback-17",
        "lineage feedback",
        responder(),
        "2026-12-01T11:00:00Z",
    )
    .await
    .expect("taking it again");
    assert_eq!(retry, first);
    assert_eq!(retry.at(), at("2026-12-01T10:00:00Z"));
    give(retry).await;
    assert_eq!(given().await.len(), 1, "the retry stated a second receipt");
    let stored = store
        .read_by_type(FeedbackGiven::TYPE)
        .await
        .expect("reading");
    let receipt = &stored[0].envelope;
    assert_eq!(receipt.occurred_at, at("2026-12-01T10:00:00Z"));
    assert_eq!(receipt.causation, Causation::UserAction(first.id()));
    let taken = store
        .read_by_type(OperatorActionTaken::TYPE)
        .await
        .expect("reading");
    assert_eq!(taken.len(), 1, "the action is recorded once");
    assert_eq!(taken[0].envelope.occurred_at, first.at());

    // Another action (another key) is its own receipt.
    let other = take(
        "feedback-18",
        "lineage feedback",
        responder(),
        "2026-12-01T12:00:00Z",
    )
    .await
    .expect("another action");
    give(other).await;
    assert_eq!(given().await.len(), 2);

    // The key names its action alone: another verb, or another actor, is refused.
    let reused = take(
        "feedback-17",
        "secrets put",
        responder(),
        "2026-12-01T13:00:00Z",
    )
    .await;
    assert!(
        matches!(&reused, Err(OperatorActionError::KeyTaken { verb, .. }) if verb == "lineage feedback"),
        "{reused:?}"
    );
    let someone_else = take(
        "feedback-17",
        "lineage feedback",
        ops_tests::commands::operator(),
        "2026-12-01T13:00:00Z",
    )
    .await;
    assert!(
        matches!(someone_else, Err(OperatorActionError::KeyTaken { .. })),
        "{someone_else:?}"
    );
    for bad in ["", "has space", "slash/in/it", &"k".repeat(129)] {
        assert!(
            matches!(
                OperatorAction::keyed(bad, at("2026-12-01T13:00:00Z")),
                Err(OperatorActionError::InvalidKey { .. })
            ),
            "{bad:?}"
        );
    }
}

on_both_backends!(a_retried_action_states_the_receipts_already_stored);
