//! The demo's governance story, after ingest: a policy promoted through its gates approves
//! the on-call notification, a delegated capability is revoked, a data subject is erased,
//! and a derived artifact shows its lineage. Each part works on whatever the installed
//! packs put in the log and is idempotent: a second run shows what the first recorded.

use ops_core_runtime::clock::WallClock;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use ops_core::capability::{Action, CapabilityGranted, Scope, Selector};
use ops_core::contract::{Contract, SafetyClass};
use ops_core::envelope::Actor;
use ops_core::governance::{ApprovalRule, Pins, PolicyDefinition, PolicyState};
use ops_core::id::{CapabilityId, ContentHash};
use ops_core::lineage::{Artifact, DerivedArtifact, FeedbackKind, Input};
use ops_core::redaction::RedactionApplied;
use ops_core::registry::Registry;
use ops_core::supply_chain::Release;
use ops_core::time::{DAY, Timestamp};
use ops_core_runtime::acting::{Acting, Cause, OperatorAction};
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::governance::{ActivePolicies, Policies};
use ops_core_runtime::lineage::Lineage;
use ops_core_runtime::projection::ProjectionRunner;
use ops_core_runtime::query::QueryGateway;
use ops_core_runtime::shredding::{erase, sealed_subject};
use ops_core_runtime::signing::{Trust, sign};
use ops_core_runtime::store::{CurrentPayload, EventStore};
use ops_core_runtime::supply_chain::Releases;

/// The demo's operator: the one actor its `ops.toml` lets grant root capabilities.
pub const DEMO_OPERATOR: &str = "operator@example.com";

/// The DEMO key: fixed so the demo's runs agree, and labelled as such wherever it is used;
/// a deployment's key is its own (`ops-host releases keygen`).
const DEMO_SIGNING_SEED: [u8; 32] = [42; 32];
const POLICY: &str = "notify.oncall-sev1";

pub fn human(id: &str) -> anyhow::Result<Actor> {
    Ok(Actor::Human(ops_core::envelope::ActorId::new(id)?))
}

/// The public half of the demo's key, hex.
pub fn demo_key_hex() -> String {
    hex::encode(
        SigningKey::from_bytes(&DEMO_SIGNING_SEED)
            .verifying_key()
            .as_bytes(),
    )
}

/// The demo trusts its own fixed key, and pins to what this binary runs.
fn demo_trust(registry: &Registry) -> Trust {
    Trust {
        keys: vec![SigningKey::from_bytes(&DEMO_SIGNING_SEED).verifying_key()],
        environment: ops_registry::releases::environment(registry),
    }
}

/// The releases this host runs: every installed pack and contract module, and the webhook
/// tool, recorded, signed and activated (once); a pack changed after signing is refused.
pub async fn supply_chain(
    store: &EventStore,
    capability: CapabilityId,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    writeln!(out, "\n== supply chain")?;
    let signer = SigningKey::from_bytes(&DEMO_SIGNING_SEED);
    writeln!(
        out,
        "signing with the DEMO key {} (compiled into this binary, for the demo only; a deployment makes its own with `ops-host releases keygen` and lists it in `trusted_keys`)",
        demo_key_hex()
    )?;
    let releases = Releases::load(store.clone(), demo_trust(store.registry()), capability).await?;
    let operator = human("operator@example.com")?;
    let installed = crate::services::installed(store.registry());
    for release in &installed {
        let content_id = release.content_id();
        if releases
            .book()
            .active(release.kind, &release.name)
            .is_some_and(|(active, _)| *active == content_id)
        {
            writeln!(
                out,
                "{} {content_id}: active (an earlier run)",
                release.label()
            )?;
            continue;
        }
        let signature = sign(&content_id, &signer);
        releases
            .record(
                release,
                Some(signature.clone()),
                &acting(&operator, "release-record")?,
            )
            .await?;
        releases
            .activate(
                release,
                &signature,
                None,
                "installed by the demo",
                &acting(&operator, "release-activate")?,
            )
            .await?;
        writeln!(
            out,
            "{} {content_id}: signed, verified, pinned to ops-core {}, active",
            release.label(),
            release.pins.core_version
        )?;
    }
    if let Some(pack) = installed.first() {
        let tampered = Release {
            content_hash: ContentHash::of_bytes(b"a schema edited after signing"),
            ..pack.clone()
        };
        let signature = sign(&pack.content_id(), &signer);
        if let Err(refused) = releases
            .activate(
                &tampered,
                &signature,
                None,
                "tampered",
                &acting(&operator, "release-tampered")?,
            )
            .await
        {
            writeln!(out, "a changed copy refused: {refused}")?;
        }
    }
    Ok(())
}

/// Drafts, simulates, approves, evaluates, signs and activates the on-call policy (once),
/// and returns the active policies for the gateway.
pub async fn governance(
    store: &EventStore,
    capability: CapabilityId,
    out: &mut impl Write,
) -> anyhow::Result<ActivePolicies> {
    writeln!(out, "\n== governance")?;
    let signer = SigningKey::from_bytes(&DEMO_SIGNING_SEED);
    let policies = Policies::load(store.clone(), demo_trust(store.registry()), capability).await?;
    let (author, lead) = (human("operator@example.com")?, human("lead@example.com")?);
    let definition = PolicyDefinition {
        policy_id: POLICY.to_owned(),
        version: "1.0.0".to_owned(),
        owner_pack: "notify".to_owned(),
        description: "approve on-call notifications of SEV1 incidents, at most 20 a day".to_owned(),
        rule: ApprovalRule {
            command_type: "pack.notify.oncall.NotifyOnCall".to_owned(),
            destination: "webhook.oncall".to_owned(),
            max_per_day: 20,
        },
        pins: Pins {
            core_version: ops_core::VERSION.to_owned(),
            ..Pins::default()
        },
    };
    let state = policies.book().version(POLICY, "1.0.0").map(|v| v.state);
    if state == Some(PolicyState::Active) {
        writeln!(
            out,
            "policy {POLICY} 1.0.0 is active (promoted by an earlier run)"
        )?;
        return Ok(policies.active_approvals().await?);
    }
    let content_id = policies
        .draft(definition, &acting(&author, "policy-draft")?)
        .await?;
    writeln!(
        out,
        "policy {POLICY} 1.0.0 drafted by the operator: {content_id}"
    )?;
    let report = policies
        .simulate(
            POLICY,
            "1.0.0",
            "replay today's decisions",
            &acting(&author, "policy-simulate")?,
        )
        .await?;
    writeln!(
        out,
        "simulated against {} recorded decision(s): {} would change",
        report.compared,
        report.changed.len()
    )?;
    if let Err(refused) = policies
        .approve(
            POLICY,
            "1.0.0",
            "looks right to me",
            &acting(&author, "policy-approve-own")?,
        )
        .await
    {
        writeln!(out, "approval by its author refused: {refused}")?;
    }
    policies
        .approve(
            POLICY,
            "1.0.0",
            "the simulation changes no decision",
            &acting(&lead, "policy-approve")?,
        )
        .await?;
    writeln!(out, "approved by lead@example.com")?;
    // The eval measures the simulation: the share of recorded decisions the candidate
    // leaves as they were, against a threshold; it passes only if the share reaches it.
    let (eval_id, _) = policies
        .evaluate(POLICY, "1.0.0", 0.9, "demo", &acting(&lead, "policy-eval")?)
        .await?;
    let signature = sign(&content_id, &signer);
    policies
        .activate(
            POLICY,
            "1.0.0",
            eval_id,
            &signature,
            "eval passed; signed by the release key",
            &acting(&lead, "policy-activate")?,
        )
        .await?;
    writeln!(out, "activated on eval {eval_id} with a verified signature")?;
    Ok(policies.active_approvals().await?)
}

/// A lead delegates paging to a responder for a week, then the lead's capability is
/// revoked: the delegation falls with it.
pub async fn delegation(capabilities: &Capabilities, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "\n== delegation")?;
    let (operator, lead, responder) = (
        human("operator@example.com")?,
        human("lead@example.com")?,
        human("ada@example.com")?,
    );
    let lead_capability = CapabilityId::of(&("host.demo", "lead"))?;
    let delegated = CapabilityId::of(&("host.demo", "lead", "ada"))?;
    let now = Timestamp::now();
    let week = now.plus(7 * DAY).context("a week from now")?;
    let year = now.plus(365 * DAY).context("a year from now")?;
    let paging = |actor: Actor| Action {
        actor,
        command_type: "pack.incidents.paging.PageResponder".to_owned(),
        safety: SafetyClass::WriteExternalSideEffect,
        tenant: Some("acme".to_owned()),
        destination: Some("pager".to_owned()),
    };
    if !capabilities.is_granted(lead_capability) {
        capabilities
            .grant(
                CapabilityGranted {
                    capability_id: lead_capability,
                    holder: lead.clone(),
                    issuer: operator.clone(),
                    scope: Scope {
                        types: Selector::only(["pack.incidents.*"]),
                        ..Scope::everything()
                    },
                    valid_from: now,
                    valid_until: year,
                    parent: None,
                },
                now,
            )
            .await?;
        let wider = CapabilityGranted {
            capability_id: delegated,
            holder: responder.clone(),
            issuer: lead.clone(),
            scope: Scope::everything(),
            valid_from: now,
            valid_until: week,
            parent: Some(lead_capability),
        };
        if let Err(refused) = capabilities.grant(wider.clone(), now).await {
            writeln!(out, "a delegation wider than its parent: {refused}")?;
        }
        capabilities
            .grant(
                CapabilityGranted {
                    scope: Scope {
                        types: Selector::only(["pack.incidents.paging.*"]),
                        destinations: Selector::only(["pager"]),
                        ..Scope::everything()
                    },
                    ..wider
                },
                now,
            )
            .await?;
        let before = capabilities.check(delegated, &paging(responder.clone()), Timestamp::now());
        writeln!(
            out,
            "ada pages on the lead's delegation: allowed = {} (chain {:?})",
            before.allowed, before.chain
        )?;
        capabilities
            .revoke(
                lead_capability,
                operator,
                "the lead left the rota",
                Timestamp::now(),
            )
            .await?;
    }
    let after = capabilities.check(delegated, &paging(responder), Timestamp::now());
    writeln!(
        out,
        "after the lead's capability was revoked: allowed = {}; {}",
        after.allowed,
        after.reason.unwrap_or_default()
    )?;
    Ok(())
}

/// The demo operator's capability `name` for `holder`, granted for a year on the first
/// run.
pub async fn grant_once(
    capabilities: &Capabilities,
    name: &str,
    holder: Actor,
    scope: Scope,
    out: &mut impl Write,
) -> anyhow::Result<CapabilityId> {
    let capability = crate::services::named(capabilities, name)?.id;
    if capabilities.is_granted(capability) {
        writeln!(out, "capability {capability} ({name}): granted before")?;
        return Ok(capability);
    }
    let now = Timestamp::now();
    let grant = CapabilityGranted {
        capability_id: capability,
        holder,
        issuer: human(DEMO_OPERATOR)?,
        scope,
        valid_from: now,
        valid_until: now.plus(365 * DAY).context("a year from now")?,
        parent: None,
    };
    let event = capabilities.grant(grant, now).await?;
    writeln!(
        out,
        "capability {capability} ({name}) granted by the operator ({event})"
    )?;
    Ok(capability)
}

/// Erases the first data subject found sealed in the log, and shows what remains.
pub async fn erasure(
    store: &EventStore,
    capabilities: &Capabilities,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    writeln!(out, "\n== right to erasure")?;
    let acknowledged = store
        .read_by_type("pack.incidents.incident.IncidentAcknowledged")
        .await?;
    let Some(first) = acknowledged.first() else {
        writeln!(out, "no personal data in the log")?;
        return Ok(());
    };
    let sealed = first.envelope.payload["by"]["display_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let Some(subject_id) = sealed_subject(&sealed) else {
        writeln!(out, "the log holds no sealed personal data")?;
        return Ok(());
    };
    let name = |store: &EventStore| match store.current_payload(&first.envelope) {
        CurrentPayload::Current { payload, .. } => payload["by"]["display_name"].to_string(),
        _ => "(unreadable)".to_owned(),
    };
    writeln!(
        out,
        "in the log: {}…; read through the store: {}",
        &sealed[..sealed.len().min(40)],
        name(store)
    )?;
    let erased = store.read_by_type(RedactionApplied::TYPE).await?;
    if erased.is_empty() {
        // The privacy officer erases on a capability the operator granted for it alone.
        let privacy = human("privacy@example.com")?;
        let capability = grant_once(
            capabilities,
            "privacy",
            privacy.clone(),
            Scope {
                types: Selector::only([RedactionApplied::TYPE]),
                max_safety: SafetyClass::WriteInternal,
                ..Scope::everything()
            },
            out,
        )
        .await?;
        let applied = erase(
            store,
            subject_id,
            &acting(&privacy, "erase")?,
            "erasure request 2026-117",
            capability,
            capabilities,
        )
        .await?;
        writeln!(
            out,
            "erased subject {subject_id}: key destroyed, fields {:?}",
            applied.fields
        )?;
    } else {
        writeln!(out, "subject {subject_id} was erased by an earlier run")?;
    }
    writeln!(
        out,
        "read through the store now: {}; event {} unchanged",
        name(store),
        first.envelope.event_id
    )?;
    Ok(())
}

/// A summary derived from the incident board, with feedback and its chain.
pub async fn lineage(
    store: &EventStore,
    capabilities: &Capabilities,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    writeln!(out, "\n== lineage")?;
    let Some(board) = ops_core::projection::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|projection| projection.name() == "incident_board")
    else {
        writeln!(out, "no projection installed")?;
        return Ok(());
    };
    let mut runner = ProjectionRunner::start(store.clone(), board).await?;
    runner.catch_up().await?;
    // The analyst reads the board on a capability of its own, through the query gateway;
    // the query artifact records the check it relied on.
    let analyst = human("analyst@example.com")?;
    let reads = board.event_types().iter().map(|t| t.name());
    let capability = grant_once(
        capabilities,
        "analyst",
        analyst.clone(),
        Scope {
            types: Selector::only(reads),
            max_safety: SafetyClass::Read,
            sensitive: Selector::none(),
            ..Scope::everything()
        },
        out,
    )
    .await?;
    let gateway = QueryGateway::new(store.clone(), Arc::new(capabilities.clone()));
    let lineage = Lineage::new(store.clone(), capability);
    let query = lineage.query_artifact(&gateway, &runner, &analyst).await?;
    let query_id = lineage
        .record(
            &Artifact::Query(query.clone()),
            &acting(&analyst, "query-artifact")?,
        )
        .await?;
    let summary = format!("{} event(s) on the board", query.source_events.len());
    let derived = Artifact::Derived(DerivedArtifact {
        inputs: vec![Input::Artifact(query_id)],
        input_hashes: vec![query.result_hash],
        policy_version: "board-summary 0.1.0".to_owned(),
        tool_versions: [("ops-host".to_owned(), env!("CARGO_PKG_VERSION").to_owned())].into(),
        model_config: Default::default(),
        eval_id: None,
        output_hash: ContentHash::of_bytes(summary.as_bytes()),
    });
    let derived_id = lineage
        .record(&derived, &acting(&analyst, "derive")?)
        .await?;
    lineage
        .feedback(
            derived_id,
            FeedbackKind::Accepted,
            None,
            &acting(&analyst, "feedback")?,
        )
        .await?;
    writeln!(
        out,
        "derived artifact {derived_id} (\"{summary}\"); ops-host lineage {derived_id}:"
    )?;
    let mut chain = Vec::new();
    crate::report::write_chain(store, &derived_id.to_string(), &mut chain).await?;
    let text = String::from_utf8(chain)?;
    for line in text.lines().take(6) {
        writeln!(out, "  {line}")?;
    }
    if text.lines().count() > 6 {
        writeln!(out, "  … {} more source event(s)", text.lines().count() - 6)?;
    }
    Ok(())
}

/// `actor` taking the demo's `step`, an action as the CLI's `--action` names one.
fn acting(actor: &Actor, step: &str) -> anyhow::Result<Acting> {
    Ok(Acting::new(
        actor.clone(),
        Cause::Operator(OperatorAction::keyed(
            &format!("demo.{step}"),
            Timestamp::now(),
        )?),
    ))
}
