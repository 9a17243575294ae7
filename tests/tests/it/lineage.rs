//! Lineage on both backends: a query artifact of the incident board names the events it
//! folded, a derived artifact names its inputs, feedback attaches to it, the chain leads
//! back to the source events, and retention removes bodies but not records.

use ops_core_runtime::clock::WallClock;
use std::collections::BTreeMap;

use ops_core::capability::{Scope, Selector};
use ops_core::contract::Contract;
use ops_core::id::ContentHash;
use ops_core::lineage::{Artifact, ArtifactRecorded, DerivedArtifact, FeedbackKind, Input};
use ops_core::retention::RetentionApplied;
use ops_core::time::Timestamp;
use ops_core_runtime::lineage::{Lineage, LineageError, Link};
use ops_core_runtime::query::{QueryError, QueryGateway};
use ops_core_runtime::retention::Retention;
use ops_tests::commands::{acknowledge, authority, capability, caught_up_board, opened};
use ops_tests::on_both_backends;
use ops_tests::responder;
use ops_tests::storage::Backend;

async fn a_derived_artifact_leads_back_to_its_source_events(backend: Backend) {
    let (store, bus) = opened(backend, "lineage_chain", 2).await;
    bus.submit(&acknowledge("INC-0", "U042"), capability(), None)
        .await
        .expect("acknowledging");
    let (runner, _) = caught_up_board(&store).await;

    let lineage = Lineage::new(store.clone(), capability());
    // The read goes through the query gateway: refused on a capability that does not
    // cover what the board folds, recorded with the check it relied on otherwise.
    let elsewhere = QueryGateway::new(
        store.clone(),
        authority(Scope {
            types: Selector::only(["pack.notify.*"]),
            ..Scope::everything()
        }),
    );
    assert!(matches!(
        lineage
            .query_artifact(&elsewhere, &runner, &responder())
            .await,
        Err(LineageError::Query(QueryError::Denied { .. }))
    ));
    let gateway = QueryGateway::new(store.clone(), authority(Scope::everything()));
    let query = lineage
        .query_artifact(&gateway, &runner, &responder())
        .await
        .expect("a query artifact");
    assert!(
        query.capability_state_ref.starts_with("evt_"),
        "{}",
        query.capability_state_ref
    );
    assert_eq!(query.projection, "incidents/incident_board");
    assert_eq!(
        query.source_events.len(),
        3,
        "two openings and an acknowledgement"
    );
    let query_id = lineage
        .record(
            &Artifact::Query(query.clone()),
            &ops_tests::acting(responder()),
        )
        .await
        .expect("recording");
    assert_eq!(
        lineage
            .record(
                &Artifact::Query(query.clone()),
                &ops_tests::acting(responder())
            )
            .await
            .expect("again"),
        query_id
    );

    let opened_event = query.source_events[0];
    let derived = Artifact::Derived(DerivedArtifact {
        inputs: vec![Input::Artifact(query_id), Input::Event(opened_event)],
        input_hashes: vec![
            query.result_hash,
            ContentHash::of_bytes(opened_event.to_string().as_bytes()),
        ],
        policy_version: "incidents.summary 1.0.0".to_owned(),
        tool_versions: [("summariser".to_owned(), "0.3.1".to_owned())].into(),
        model_config: BTreeMap::new(),
        eval_id: None,
        output_hash: ContentHash::of_bytes(b"Two incidents on payments; one acknowledged."),
    });
    let derived_id = lineage
        .record(&derived, &ops_tests::acting(responder()))
        .await
        .expect("recording");
    lineage
        .feedback(
            derived_id,
            FeedbackKind::Edited,
            Some("named the service"),
            &ops_tests::acting(responder()),
        )
        .await
        .expect("feedback");
    let unknown = ops_core::id::ContentId::of("nothing").expect("canonical");
    assert!(matches!(
        lineage
            .feedback(
                unknown,
                FeedbackKind::Accepted,
                None,
                &ops_tests::acting(responder())
            )
            .await,
        Err(LineageError::Unknown(_))
    ));
    assert_eq!(
        store
            .read_by_type(ArtifactRecorded::TYPE)
            .await
            .expect("reading")
            .len(),
        2
    );

    let chain = lineage.chain(derived_id).await.expect("the chain");
    let shape: Vec<(usize, String)> = chain
        .iter()
        .map(|link| match link {
            Link::Artifact {
                depth,
                id,
                feedback,
                ..
            } => (*depth, format!("artifact {id} {feedback:?}")),
            Link::Removed { depth, id } => (*depth, format!("removed {id}")),
            Link::Event {
                depth, event_type, ..
            } => (
                *depth,
                format!("event {}", event_type.clone().unwrap_or_default()),
            ),
        })
        .collect();
    assert_eq!(shape[0], (0, format!("artifact {derived_id} [Edited]")));
    assert_eq!(shape[1], (1, format!("artifact {query_id} []")));
    assert_eq!(
        shape[2..5]
            .iter()
            .map(|(depth, _)| *depth)
            .collect::<Vec<_>>(),
        [2, 2, 2]
    );
    assert_eq!(shape[2].1, "event pack.incidents.incident.IncidentOpened");
    assert_eq!(
        shape[4].1,
        "event pack.incidents.incident.IncidentAcknowledged"
    );
    assert_eq!(
        shape[5],
        (1, "event pack.incidents.incident.IncidentOpened".to_owned())
    );

    // Retention removes the bodies; the records and the chain's first link stay.
    let tomorrow = Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 86_400_000_000)
        .expect("in range");
    let retention = Retention::new(store.clone(), capability());
    let removed = retention
        .artifacts(0, tomorrow, &ops_tests::acting(responder()))
        .await
        .expect("retention")
        .removed;
    assert_eq!(removed.len(), 2);
    let receipts = store
        .read_by_type(RetentionApplied::TYPE)
        .await
        .expect("reading");
    let receipt: RetentionApplied =
        serde_json::from_value(receipts[0].envelope.payload.clone()).expect("a receipt");
    assert_eq!(receipt.removed, removed);
    assert_eq!(
        lineage.chain(derived_id).await.expect("the chain"),
        [Link::Removed {
            depth: 0,
            id: derived_id
        }]
    );
    assert!(
        retention
            .artifacts(0, tomorrow, &ops_tests::acting(responder()))
            .await
            .expect("retention")
            .removed
            .is_empty()
    );
}

on_both_backends!(a_derived_artifact_leads_back_to_its_source_events);
