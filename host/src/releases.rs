//! `ops-host releases`: whether each installed pack, contract module and tool is the
//! active, signed release of its artifact, as a deployment check (Section 3).

use std::io::Write;

use ops_core::governance::Pins;
use ops_core::id::CapabilityId;
use ops_core::registry::Registry;
use ops_core::supply_chain::Release;
use ops_core_runtime::signing::Trust;
use ops_core_runtime::store::EventStore;
use ops_core_runtime::supply_chain::Releases;
use ops_host::webhook::WebhookExecutor;

/// What this binary runs, as releases: installed packs, contract modules, the webhook tool.
pub fn installed(registry: &Registry) -> Vec<Release> {
    let mut installed = ops_registry::releases::installed(registry);
    installed.push(WebhookExecutor::manifest().release(Pins {
        core_version: ops_core::VERSION.to_owned(),
        ..Pins::default()
    }));
    installed
}

/// Writes one line per installed release; `true` when every one is the active release.
pub async fn verify(
    store: &EventStore,
    registry: &Registry,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    // Only read: what was verified was verified when it was activated.
    let book = Releases::load(
        store.clone(),
        Trust::default(),
        CapabilityId::of("host.releases")?,
    )
    .await?
    .book();
    let mut all_active = true;
    for release in installed(registry) {
        let content_id = release.content_id();
        let state = match book.active(release.kind, &release.name) {
            Some((active, _)) if *active == content_id => "active".to_owned(),
            Some((active, running)) => format!(
                "NOT ACTIVE: the active release is {} {active}",
                running.version
            ),
            None if book.release(&content_id).is_some() => "NOT ACTIVE: recorded only".to_owned(),
            None => "NOT ACTIVE: never recorded".to_owned(),
        };
        all_active &= state == "active";
        writeln!(out, "{} {content_id}: {state}", release.label())?;
    }
    Ok(all_active)
}
