//! `ops-host releases`: whether each installed pack, contract module and tool is the
//! active, signed release of its artifact, as a deployment check (Section 3); activating
//! what this binary links, signed with a key the configuration trusts; and making a key.
//! `ops-host run` refuses to start, in enforce mode, while any is not active.

use std::io::Write;

use ops_core::governance::Pins;
use ops_core::id::CapabilityId;
use ops_core::registry::Registry;
use ops_core::supply_chain::Release;
use ops_core_runtime::signing::{Trust, sign};
use ops_core_runtime::store::EventStore;
use ops_core_runtime::supply_chain::{ReleaseError, Releases};

use crate::cli::Format;
use crate::commands::{Ended, write_list};
use crate::webhook::WebhookExecutor;

/// What this binary runs, as releases: installed packs, contract modules, the webhook tool.
pub fn installed(registry: &Registry) -> Vec<Release> {
    let mut installed = ops_registry::releases::installed(registry);
    installed.push(WebhookExecutor::manifest().release(Pins {
        core_version: ops_core::VERSION.to_owned(),
        ..Pins::default()
    }));
    installed
}

/// Each installed release that is not the active release of its artifact, with why not.
pub async fn inactive(
    store: &EventStore,
    registry: &Registry,
) -> anyhow::Result<Vec<(Release, String)>> {
    Ok(standing(store, registry)
        .await?
        .into_iter()
        .filter(|(_, state)| state != "active")
        .collect())
}

/// Every installed release and whether it is active (`active`, or why not).
async fn standing(
    store: &EventStore,
    registry: &Registry,
) -> anyhow::Result<Vec<(Release, String)>> {
    // Only read: what was verified was verified when it was activated.
    let book = Releases::load(
        store.clone(),
        Trust::default(),
        CapabilityId::of("host.releases")?,
    )
    .await?
    .book();
    Ok(installed(registry)
        .into_iter()
        .map(|release| {
            let content_id = release.content_id();
            let state = match book.active(release.kind, &release.name) {
                Some((active, _)) if *active == content_id => "active".to_owned(),
                Some((active, running)) => format!(
                    "NOT ACTIVE: the active release is {} {active}",
                    running.version
                ),
                None if book.release(&content_id).is_some() => {
                    "NOT ACTIVE: recorded only".to_owned()
                }
                None => "NOT ACTIVE: never recorded".to_owned(),
            };
            (release, state)
        })
        .collect())
}

/// Writes one line per installed release; `true` when every one is the active release.
pub async fn verify(
    store: &EventStore,
    registry: &Registry,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let standing = standing(store, registry).await?;
    write_list(
        out,
        format,
        &standing,
        |(release, state)| {
            serde_json::json!({
                "kind": release.kind,
                "name": release.name,
                "version": release.version,
                "content_id": release.content_id(),
                "content_hash": release.content_hash,
                "state": state,
            })
        },
        |(release, state)| format!("{} {}: {state}", release.label(), release.content_id()),
    )?;
    Ok(standing.iter().all(|(_, state)| state == "active"))
}

/// Records, signs with `key` and activates every installed release that is not active,
/// as `by`; the key must be one the configuration trusts. `Refused` when one is refused.
pub async fn activate(
    store: &EventStore,
    trust: Trust,
    key: &ed25519_dalek::SigningKey,
    acting: &crate::cli::Acting,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let registry = store.registry();
    let by = &crate::capabilities::parse_actor(&acting.by)?;
    let releases = Releases::load(
        store.clone(),
        trust,
        crate::capabilities::parse_capability(&acting.capability)?,
    )
    .await?
    .checked_by(std::sync::Arc::new(
        ops_core_runtime::capability::Capabilities::load(store.clone()).await?,
    ));
    let mut ended = Ended::Done;
    let pending = inactive(store, registry).await?;
    if pending.is_empty() {
        writeln!(out, "every installed release is active")?;
    }
    for (release, _) in pending {
        let signature = sign(&release.content_id(), key);
        let done = match releases.record(&release, Some(signature.clone()), by).await {
            Ok(_) => releases
                .activate(
                    &release,
                    &signature,
                    None,
                    "activated by ops-host releases activate",
                    by,
                )
                .await
                .map(drop),
            Err(refused) => Err(refused),
        };
        match done {
            Ok(()) => writeln!(
                out,
                "{} {}: signed, verified, active",
                release.label(),
                release.content_id()
            )?,
            Err(refused @ (ReleaseError::Refused { .. } | ReleaseError::Denied { .. })) => {
                ended = Ended::Refused;
                writeln!(out, "{} refused: {refused}", release.label())?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(ended)
}

/// Whether pack code may run on `store` in `mode`: says which linked release is not the
/// active one, and in enforce mode refuses then.
pub async fn may_run(
    store: &EventStore,
    mode: crate::cli::ReleaseMode,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let inactive = inactive(store, store.registry()).await?;
    for (release, state) in &inactive {
        writeln!(
            out,
            "release {} {}: {state}",
            release.label(),
            release.content_id()
        )?;
    }
    if inactive.is_empty() || mode == crate::cli::ReleaseMode::Warn {
        return Ok(true);
    }
    writeln!(
        out,
        "refused to run: {} of what this binary links is not the active release; `ops-host releases activate --key-file FILE` signs and activates it (or pass `--releases warn`)",
        inactive.len()
    )?;
    Ok(false)
}
