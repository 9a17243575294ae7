//! Releases of packs, contract modules and tool manifests on both backends: a draft may be
//! unsigned, but activation needs a trusted signature over an unchanged artifact, pins
//! that match the host, and, when a model version changes, a passing eval run with the new
//! version; the impact report names what the old version computed. Rollback is activating
//! the earlier version again, and another host reads the same state from the log.

use ops_core_runtime::clock::WallClock;
use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ops_core::governance::EvalArtifact;
use ops_core::id::{ContentHash, ContentId, CorrelationId};
use ops_core::lineage::{Artifact, DerivedArtifact, Input};
use ops_core::supply_chain::{ArtifactKind, ModelChange, ToolManifest};
use ops_core::time::Timestamp;
use ops_core_runtime::governance::Policies;
use ops_core_runtime::lineage::Lineage;
use ops_core_runtime::signing::{Trust, sign};
use ops_core_runtime::store::EventStore;
use ops_core_runtime::supply_chain::{ReleaseError, Releases};
use ops_registry::releases;
use ops_tests::commands::{capability, opened};
use ops_tests::storage::Backend;
use ops_tests::{linked_registry, on_both_backends, responder};

const MODEL: &str = "summary-model";

fn refused<T: std::fmt::Debug>(result: Result<T, ReleaseError>, why: &str) {
    match result {
        Err(ReleaseError::Refused { reason, .. }) if reason.contains(why) => {}
        other => panic!("expected a refusal saying `{why}`, got {other:?}"),
    }
}

fn summarizer(version: &str, model: &str) -> ToolManifest {
    ToolManifest {
        name: "summarizer".to_owned(),
        version: version.to_owned(),
        description: "summarises an incident for the status page".to_owned(),
        destinations: vec![],
        models: [(MODEL.to_owned(), model.to_owned())].into(),
    }
}

async fn eval_with(store: &EventStore, model: &str, score: f64) -> ContentId {
    let policies = Policies::load(store.clone(), Trust::default(), capability())
        .await
        .expect("loading");
    let eval = EvalArtifact {
        inputs_hash: ContentHash::of_bytes(b"golden incidents"),
        policy_version: "summarizer".to_owned(),
        tool_versions: [(MODEL.to_owned(), model.to_owned())].into(),
        model_config: BTreeMap::new(),
        metrics: [("faithfulness".to_owned(), score)].into(),
        thresholds: [("faithfulness".to_owned(), 0.9)].into(),
        passed: score >= 0.9,
        run_at: Timestamp::now(),
        environment: "tests".to_owned(),
        correlation_id: CorrelationId::of(model).expect("canonical"),
    };
    policies
        .record_eval(eval, &ops_tests::acting(responder()))
        .await
        .expect("recording the eval")
}

async fn load(store: &EventStore, signer: &SigningKey) -> Releases {
    let trust = Trust {
        keys: vec![signer.verifying_key()],
        environment: releases::environment(linked_registry()),
    };
    Releases::load(store.clone(), trust, capability())
        .await
        .expect("loading releases")
}

async fn a_pack_release_is_active_only_signed_unchanged_and_pinned_to_this_host(backend: Backend) {
    let (store, _) = opened(
        backend,
        "a_pack_release_is_active_only_signed_unchanged_and_pinned_to_this_host",
        0,
    )
    .await;
    let signer = SigningKey::from_bytes(&[3; 32]);
    let stranger = SigningKey::from_bytes(&[4; 32]);
    let releases = load(&store, &signer).await;
    let installed = releases::installed(linked_registry());
    let pack = installed
        .iter()
        .find(|r| r.kind == ArtifactKind::Pack && r.name == "incidents")
        .expect("the incidents pack is linked")
        .clone();
    assert!(
        installed
            .iter()
            .any(|r| r.kind == ArtifactKind::ContractModule && r.name == "ops-contract-incidents"),
        "{installed:?}"
    );
    assert_eq!(pack.pins.core_version, ops_core::VERSION);
    assert!(pack.pins.contracts.contains_key("ops-contract-incidents"));

    // A draft needs no signature; a declared one must verify.
    let content_id = releases
        .record(&pack, None, &ops_tests::acting(responder()))
        .await
        .expect("recording a draft");
    assert_eq!(
        releases
            .record(&pack, None, &ops_tests::acting(responder()))
            .await
            .expect("again"),
        content_id
    );
    refused(
        releases
            .record(
                &pack,
                Some(sign(&content_id, &stranger)),
                &ops_tests::acting(responder()),
            )
            .await,
        "is not trusted",
    );

    let signature = sign(&content_id, &signer);
    refused(
        releases
            .activate(
                &pack,
                &sign(&content_id, &stranger),
                None,
                "first",
                &ops_tests::acting(responder()),
            )
            .await,
        "is not trusted",
    );
    // A schema changed after the release was recorded and signed.
    let tampered = ops_core::supply_chain::Release {
        content_hash: ContentHash::of_bytes(b"another schema"),
        ..pack.clone()
    };
    refused(
        releases
            .activate(
                &tampered,
                &signature,
                None,
                "first",
                &ops_tests::acting(responder()),
            )
            .await,
        "no longer hashes to",
    );
    // Signed by the right key, but over the tampered content: the signature says so.
    let mut forged = signature.clone();
    forged.signature = sign(&tampered.content_id(), &signer).signature;
    refused(
        releases
            .activate(
                &pack,
                &forged,
                None,
                "first",
                &ops_tests::acting(responder()),
            )
            .await,
        "does not verify",
    );
    // Built against another core.
    let old_core = ops_core::supply_chain::Release {
        version: "0.0.9".to_owned(),
        pins: ops_core::governance::Pins {
            core_version: "0.0.9".to_owned(),
            ..pack.pins.clone()
        },
        ..pack.clone()
    };
    let old_id = releases
        .record(&old_core, None, &ops_tests::acting(responder()))
        .await
        .expect("recording");
    refused(
        releases
            .activate(
                &old_core,
                &sign(&old_id, &signer),
                None,
                "old",
                &ops_tests::acting(responder()),
            )
            .await,
        "it pins ops-core 0.0.9",
    );

    let activated = releases
        .activate(
            &pack,
            &signature,
            None,
            "first release",
            &ops_tests::acting(responder()),
        )
        .await
        .expect("activating");
    assert_eq!(activated.replaces, None);
    assert!(activated.impact.changes.is_empty());
    refused(
        releases
            .activate(
                &pack,
                &signature,
                None,
                "again",
                &ops_tests::acting(responder()),
            )
            .await,
        "already active",
    );
    let reloaded = load(&store, &signer).await.book();
    assert_eq!(
        reloaded
            .active(ArtifactKind::Pack, "incidents")
            .map(|(id, _)| *id),
        Some(content_id)
    );
}

async fn a_model_change_needs_a_passing_eval_and_names_what_it_affects(backend: Backend) {
    let (store, _) = opened(
        backend,
        "a_model_change_needs_a_passing_eval_and_names_what_it_affects",
        0,
    )
    .await;
    let signer = SigningKey::from_bytes(&[3; 32]);
    let releases = load(&store, &signer).await;
    let lineage = Lineage::new(store.clone(), capability());
    let old_summary = Artifact::Derived(DerivedArtifact {
        inputs: vec![Input::Artifact(
            ContentId::of("an incident").expect("canonical"),
        )],
        input_hashes: vec![ContentHash::of_bytes(b"an incident")],
        policy_version: "none".to_owned(),
        tool_versions: [("summarizer".to_owned(), "1.0.0".to_owned())].into(),
        model_config: [(MODEL.to_owned(), "2026-01".to_owned())].into(),
        eval_id: None,
        output_hash: ContentHash::of_bytes(b"a summary"),
    });
    let summary_id = lineage
        .record(&old_summary, &ops_tests::acting(responder()))
        .await
        .expect("recording the summary");

    let v1 = summarizer("1.0.0", "2026-01").release(Default::default());
    let v1_id = releases
        .record(&v1, None, &ops_tests::acting(responder()))
        .await
        .expect("v1");
    let old_eval = eval_with(&store, "2026-01", 0.95).await;
    releases
        .activate(
            &v1,
            &sign(&v1_id, &signer),
            Some(old_eval),
            "first",
            &ops_tests::acting(responder()),
        )
        .await
        .expect("activating v1");

    let v2 = summarizer("2.0.0", "2026-06").release(Default::default());
    let v2_id = releases
        .record(&v2, None, &ops_tests::acting(responder()))
        .await
        .expect("v2");
    let v2_signature = sign(&v2_id, &signer);
    let activate_v2 = async |eval| {
        releases
            .activate(
                &v2,
                &v2_signature,
                eval,
                "new model",
                &ops_tests::acting(responder()),
            )
            .await
    };
    refused(activate_v2(None).await, "model-change impact check");
    refused(
        activate_v2(Some(old_eval)).await,
        "`summary-model` ran at 2026-01, pinned at 2026-06",
    );
    let failing = eval_with(&store, "2026-06", 0.5).await;
    refused(activate_v2(Some(failing)).await, "fails its thresholds");
    let passing = eval_with(&store, "2026-06", 0.97).await;
    let activated = activate_v2(Some(passing)).await.expect("activating v2");
    assert_eq!(
        activated.impact.changes,
        vec![ModelChange {
            tool: MODEL.to_owned(),
            from: Some("2026-01".to_owned()),
            to: Some("2026-06".to_owned()),
        }]
    );
    assert_eq!(activated.impact.affected_artifacts, vec![summary_id]);
    assert_eq!(activated.impact.eval_id, Some(passing));
    assert_eq!(activated.replaces.as_deref(), Some("1.0.0"));

    // Rollback: v1 again, explicitly, on the eval of its model; the summary made with the
    // new model is not affected by going back, since none was made.
    let rolled_back = releases
        .activate(
            &v1,
            &sign(&v1_id, &signer),
            Some(old_eval),
            "rollback: summaries too long",
            &ops_tests::acting(responder()),
        )
        .await
        .expect("rolling back");
    assert_eq!(rolled_back.replaces.as_deref(), Some("2.0.0"));
    assert!(rolled_back.impact.affected_artifacts.is_empty());
    let reloaded = load(&store, &signer).await.book();
    assert_eq!(
        reloaded
            .active(ArtifactKind::ToolManifest, "summarizer")
            .map(|(_, release)| release.version.clone()),
        Some("1.0.0".to_owned())
    );
}

on_both_backends!(
    a_pack_release_is_active_only_signed_unchanged_and_pinned_to_this_host,
    a_model_change_needs_a_passing_eval_and_names_what_it_affects,
);
