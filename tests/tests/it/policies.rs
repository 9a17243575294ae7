//! Governed policies on both backends: each gate of the lifecycle refuses what it must,
//! an active policy approves effects (its receipts name its id and version), and rollback
//! goes back to a named earlier version. A reloaded book agrees.

use ops_core_runtime::clock::WallClock;
use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ops_core::contract::Contract;
use ops_core::egress::{Approval, EgressExecuted};
use ops_core::envelope::{Actor, ActorId};
use ops_core::governance::{ApprovalRule, EvalArtifact, Pins, PolicyDefinition, PolicyState};
use ops_core::id::{ContentHash, CorrelationId};
use ops_core::supply_chain::SignatureRef;
use ops_core::time::Timestamp;
use ops_core_runtime::egress::{ApprovalPolicy, Dispatcher, Effect, Gateway};
use ops_core_runtime::governance::{Policies, PolicyError};
use ops_core_runtime::signing::{Trust, sign};
use ops_core_runtime::store::EventStore;
use ops_tests::commands::{Pager, authority, capability, page, paged};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;

const POLICY: &str = "incidents.page-sev1";

fn trust(signer: &SigningKey) -> Trust {
    Trust {
        keys: vec![signer.verifying_key()],
        environment: ops_registry::releases::environment(ops_tests::linked_registry()),
    }
}

fn human(id: &str) -> Actor {
    Actor::Human(ActorId::new(id).expect("a valid actor id"))
}

fn definition(version: &str, max_per_day: u32) -> PolicyDefinition {
    PolicyDefinition {
        policy_id: POLICY.to_owned(),
        version: version.to_owned(),
        owner_pack: "incidents".to_owned(),
        description: "page the responder of a SEV1 incident without asking".to_owned(),
        rule: ApprovalRule {
            command_type: "pack.incidents.paging.PageResponder".to_owned(),
            destination: "pager".to_owned(),
            max_per_day,
        },
        pins: Pins {
            core_version: ops_core::VERSION.to_owned(),
            ..Pins::default()
        },
    }
}

fn eval(version: &str, inputs_hash: ContentHash, precision: f64) -> EvalArtifact {
    EvalArtifact {
        inputs_hash,
        policy_version: version.to_owned(),
        tool_versions: BTreeMap::new(),
        model_config: BTreeMap::new(),
        metrics: [("precision".to_owned(), precision)].into(),
        thresholds: [("precision".to_owned(), 0.95)].into(),
        passed: precision >= 0.95,
        run_at: Timestamp::now(),
        environment: "tests".to_owned(),
        correlation_id: CorrelationId::of("policy-eval").expect("canonical"),
    }
}

/// Approves the tests' first pages, so there are recorded decisions to replay.
struct Before;

impl ApprovalPolicy for Before {
    fn approve(&self, _: &Effect) -> Option<Approval> {
        Some(Approval::Policy {
            policy_id: "paging-by-hand".to_owned(),
            policy_version: "0.1.0".to_owned(),
        })
    }
}

async fn dispatch(store: &EventStore, pager: &Pager, policy: Box<dyn ApprovalPolicy>) -> usize {
    Dispatcher::new(
        store.clone(),
        "d1",
        Gateway {
            policies: vec![policy],
            ..Gateway::default()
        },
        authority(ops_core::capability::Scope::everything()),
    )
    .with_executor("pager", Box::new(pager.clone()))
    .dispatch(10)
    .await
    .expect("dispatching")
    .executed
}

fn refused(result: Result<(), PolicyError>, why: &str) {
    match result {
        Err(PolicyError::Refused { reason, .. }) if reason.contains(why) => {}
        other => panic!("expected a refusal saying `{why}`, got {other:?}"),
    }
}

async fn a_policy_passes_every_gate_before_it_approves_anything(backend: Backend) {
    let (store, bus) = paged(backend, "policies_lifecycle", 3).await;
    let pager = Pager::default();
    assert_eq!(dispatch(&store, &pager, Box::new(Before)).await, 3);

    let signer = SigningKey::from_bytes(&[7; 32]);
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let policies = Policies::load(store.clone(), trust(&signer), capability())
        .await
        .expect("loading");
    let (alice, bob) = (human("alice@example.com"), human("bob@example.com"));
    let v1 = definition("1.0.0", 2);
    let content_id = policies
        .draft(v1.clone(), &ops_tests::acting(alice.clone()))
        .await
        .expect("drafting");
    assert_eq!(content_id, v1.content_id());
    assert!(matches!(
        policies.draft(definition("1.0.0", 5), &ops_tests::acting(alice.clone())).await,
        Err(PolicyError::Refused { reason, .. }) if reason.contains("bump the version")
    ));
    // A pack's policy approves only its own pack's effects.
    let foreign = PolicyDefinition {
        owner_pack: "notify".to_owned(),
        ..definition("1.0.1", 2)
    };
    assert!(!foreign.covers("pack.incidents.paging.PageResponder", "pager"));
    assert!(matches!(
        policies.draft(foreign, &ops_tests::acting(alice.clone())).await,
        Err(PolicyError::Refused { reason, .. }) if reason.contains("does not own")
    ));
    refused(
        policies
            .approve(POLICY, "1.0.0", "fine", &ops_tests::acting(bob.clone()))
            .await,
        "only a Simulated policy",
    );

    // The replay: the candidate would have approved two of the three pages (its cap is two).
    let report = policies
        .simulate(
            POLICY,
            "1.0.0",
            "what would it change",
            &ops_tests::acting(alice.clone()),
        )
        .await
        .expect("simulating");
    assert_eq!(report.compared, 3);
    assert_eq!(report.changed.len(), 2, "{report:?}");
    assert!(
        report
            .changed
            .iter()
            .all(|change| change.candidate && !change.active)
    );

    refused(
        policies
            .approve(
                POLICY,
                "1.0.0",
                "mine is fine",
                &ops_tests::acting(alice.clone()),
            )
            .await,
        "cannot approve their own",
    );
    policies
        .approve(
            POLICY,
            "1.0.0",
            "one page fewer, as intended",
            &ops_tests::acting(bob.clone()),
        )
        .await
        .expect("approving");

    let signature = sign(&content_id, &signer);
    let activate_v1 = async |eval_id, signature: &SignatureRef| {
        policies
            .activate(
                POLICY,
                "1.0.0",
                eval_id,
                signature,
                "eval passed",
                &ops_tests::acting(bob.clone()),
            )
            .await
    };
    let missing = ops_core::id::ContentId::of("no such eval").expect("canonical");
    refused(activate_v1(missing, &signature).await, "is not recorded");
    let failing = policies
        .record_eval(
            eval("1.0.0", report.inputs_hash, 0.5),
            &ops_tests::acting(bob.clone()),
        )
        .await
        .expect("recording");
    refused(
        activate_v1(failing, &signature).await,
        "fails its thresholds",
    );
    let elsewhere = ContentHash::of_bytes(b"other inputs");
    let mismatched = policies
        .record_eval(
            eval("1.0.0", elsewhere, 0.99),
            &ops_tests::acting(bob.clone()),
        )
        .await
        .expect("recording");
    refused(activate_v1(mismatched, &signature).await, "ran on inputs");
    let passing = policies
        .record_eval(
            eval("1.0.0", report.inputs_hash, 0.99),
            &ops_tests::acting(bob.clone()),
        )
        .await
        .expect("recording");
    refused(
        policies
            .activate(
                POLICY,
                "1.0.0",
                passing,
                &sign(&content_id, &stranger),
                "eval passed",
                &ops_tests::acting(bob.clone()),
            )
            .await,
        "is not trusted",
    );
    // Signed as it was before someone raised the cap: the signature is not this artifact's.
    let tampered = sign(&definition("1.0.0", 200).content_id(), &signer);
    refused(activate_v1(passing, &tampered).await, "does not verify");
    activate_v1(passing, &signature).await.expect("activating");

    // Active: it approves new pages, at most two a day, and the receipts say so.
    for n in 0..3 {
        bus.submit(
            &page(&format!("INC-{n}"), "U7", "pager"),
            capability(),
            None,
        )
        .await
        .expect("paging");
    }
    let approvals = policies.active_approvals().await.expect("active policies");
    assert_eq!(
        dispatch(&store, &pager, Box::new(approvals)).await,
        2,
        "its cap is two a day"
    );
    let by_policy: Vec<Approval> = store
        .read_by_type(EgressExecuted::TYPE)
        .await
        .expect("reading")
        .into_iter()
        .map(|receipt| serde_json::from_value::<EgressExecuted>(receipt.envelope.payload).expect("a receipt").approval)
        .filter(|approval| matches!(approval, Approval::Policy { policy_id, .. } if policy_id == POLICY))
        .collect();
    assert_eq!(
        by_policy,
        vec![
            Approval::Policy {
                policy_id: POLICY.to_owned(),
                policy_version: "1.0.0".to_owned()
            };
            2
        ]
    );

    // Version 1.1.0, which pins a model, through the gates, then an explicit rollback.
    let mut v2 = definition("1.1.0", 50);
    v2.pins.tools = [("triage-model".to_owned(), "2026-06".to_owned())].into();
    let v2_id = policies
        .draft(v2.clone(), &ops_tests::acting(alice.clone()))
        .await
        .expect("drafting");
    let report = policies
        .simulate(
            POLICY,
            "1.1.0",
            "raise the cap",
            &ops_tests::acting(alice.clone()),
        )
        .await
        .expect("simulating");
    policies
        .approve(POLICY, "1.1.0", "fine", &ops_tests::acting(bob.clone()))
        .await
        .expect("approving");
    // The model-change impact check: an eval that did not run the pinned model is refused.
    let without_model = policies
        .record_eval(
            eval("1.1.0", report.inputs_hash, 0.97),
            &ops_tests::acting(bob.clone()),
        )
        .await
        .expect("recording");
    let activate_v2 = async |eval_id| {
        policies
            .activate(
                POLICY,
                "1.1.0",
                eval_id,
                &sign(&v2_id, &signer),
                "eval passed",
                &ops_tests::acting(bob.clone()),
            )
            .await
    };
    refused(
        activate_v2(without_model).await,
        "`triage-model` 2026-06 was not in the run",
    );
    let with_model = EvalArtifact {
        tool_versions: v2.pins.tools.clone(),
        ..eval("1.1.0", report.inputs_hash, 0.97)
    };
    let eval_id = policies
        .record_eval(with_model, &ops_tests::acting(bob.clone()))
        .await
        .expect("recording");
    activate_v2(eval_id).await.expect("activating");
    let activation = ops_tests::payloads::<ops_core::governance::PolicyPromoted>(&store)
        .await
        .into_iter()
        .find(|promoted| promoted.version == "1.1.0" && promoted.to == PolicyState::Active)
        .expect("recorded");
    let ops_core::governance::Evidence::Activation {
        impact: Some(impact),
        ..
    } = activation.evidence
    else {
        panic!("the activation names its model-change impact: {activation:?}");
    };
    assert_eq!(
        impact.changes,
        [ops_core::supply_chain::ModelChange {
            tool: "triage-model".to_owned(),
            from: None,
            to: Some("2026-06".to_owned()),
        }]
    );
    assert_eq!(impact.eval_id, Some(eval_id));
    assert_eq!(
        policies.book().version(POLICY, "1.0.0").map(|v| v.state),
        Some(PolicyState::Deprecated),
        "the version it replaced"
    );
    refused(
        policies
            .rollback(POLICY, "1.1.0", "no", &ops_tests::acting(bob.clone()))
            .await,
        "already active",
    );
    policies
        .rollback(
            POLICY,
            "1.0.0",
            "pages too often",
            &ops_tests::acting(bob.clone()),
        )
        .await
        .expect("rolling back");
    let active: Vec<String> = policies
        .book()
        .active()
        .map(|v| v.definition.version.clone())
        .collect();
    assert_eq!(active, ["1.0.0"]);

    // Every step of 1.0.0 records why (and, in its envelope, who).
    let steps: Vec<(PolicyState, String)> =
        ops_tests::payloads::<ops_core::governance::PolicyPromoted>(&store)
            .await
            .into_iter()
            .filter(|promoted| promoted.version == "1.0.0")
            .map(|promoted| (promoted.to, promoted.reason))
            .collect();
    assert_eq!(
        steps,
        [
            (PolicyState::Simulated, "what would it change".to_owned()),
            (
                PolicyState::Approved,
                "one page fewer, as intended".to_owned()
            ),
            (PolicyState::Active, "eval passed".to_owned()),
            // Replacing it is a step of its own, in the same append as the activation.
            (PolicyState::Deprecated, "replaced by 1.1.0".to_owned()),
        ]
    );
    let reloaded = Policies::load(store, trust(&signer), capability())
        .await
        .expect("loading");
    let states = |book: ops_core::governance::PolicyBook| -> Vec<(String, PolicyState)> {
        book.versions()
            .map(|v| (v.definition.version.clone(), v.state))
            .collect()
    };
    assert_eq!(states(reloaded.book()), states(policies.book()));
    assert_eq!(
        states(reloaded.book()),
        [
            ("1.0.0".to_owned(), PolicyState::Active),
            ("1.1.0".to_owned(), PolicyState::Deprecated)
        ]
    );
}

on_both_backends!(
    a_policy_passes_every_gate_before_it_approves_anything,
    each_checked_step_names_the_capability_state_it_relied_on,
);

/// A retention run and a policy step, each checked on the operator's capability, name in
/// their receipts the capability event the check relied on: its grant,
/// then the change of its scope once that is the latest. Unchecked (the runtime's own
/// job), nothing is relied on and the receipt says none.
async fn each_checked_step_names_the_capability_state_it_relied_on(backend: Backend) {
    use ops_core::capability::{Scope, Selector};
    use ops_core::governance::PolicyDrafted;
    use ops_core::retention::RetentionPolicy;
    use ops_core_runtime::capability::Capabilities;
    use ops_core_runtime::retention::Retention;
    use ops_tests::commands::{grant, operator};
    let store = backend.store("checked_steps_name_their_state").await;
    let capabilities = Capabilities::load(store.clone())
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let ada = ops_tests::responder();
    let granted = capabilities
        .grant(
            grant(capability(), ada.clone(), Scope::everything()),
            "2026-01-01T00:00:00Z".parse().expect("a time"),
        )
        .await
        .expect("granted");
    let authority = std::sync::Arc::new(capabilities.clone());
    let now = Timestamp::now();

    let retention = Retention::new(store.clone(), capability()).checked_by(authority.clone());
    let applied = retention
        .apply(
            &RetentionPolicy::default(),
            &[],
            now,
            &ops_tests::acting(ada.clone()),
        )
        .await
        .expect("retention");
    assert_eq!(applied.len(), 3);
    for receipt in &applied {
        assert_eq!(receipt.capability_state_ref, granted.to_string());
    }
    let unchecked = Retention::new(store.clone(), capability())
        .receipts(7, now, &ops_tests::acting(ada.clone()))
        .await
        .expect("retention");
    assert_eq!(unchecked.capability_state_ref, "");

    let changed = capabilities
        .change_scope(
            capability(),
            Scope {
                types: Selector::only(["core.*"]),
                ..Scope::everything()
            },
            operator(),
            now,
        )
        .await
        .expect("narrowed");
    let policies = Policies::load(store.clone(), Trust::default(), capability())
        .await
        .expect("loading")
        .checked_by(authority.clone());
    policies
        .draft(definition("1.0.0", 5), &ops_tests::acting(ada.clone()))
        .await
        .expect("drafted");
    let drafted: Vec<PolicyDrafted> = store
        .read_by_type(PolicyDrafted::TYPE)
        .await
        .expect("reading")
        .into_iter()
        .map(|stored| serde_json::from_value(stored.envelope.payload).expect("a receipt"))
        .collect();
    assert_eq!(drafted.len(), 1);
    assert_eq!(drafted[0].capability_state_ref, changed.to_string());
}
