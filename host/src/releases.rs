//! `ops-host releases`: whether each installed pack, contract module and tool is the
//! active, signed release of its artifact, as a deployment check (Section 3).

use std::io::Write;

use ops_core::contract::Contract;
use ops_core::governance::Pins;
use ops_core::registry::Registry;
use ops_core::supply_chain::{Release, ReleaseActivated, ReleaseBook, ReleaseRecorded};
use ops_core_runtime::store::EventStore;
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
    let mut book = ReleaseBook::default();
    let mut events = store.read_by_type(ReleaseRecorded::TYPE).await?;
    events.extend(store.read_by_type(ReleaseActivated::TYPE).await?);
    events.sort_by_key(|event| event.position);
    for event in events {
        let payload = event.envelope.payload;
        match event.envelope.event_type.as_str() {
            ReleaseRecorded::TYPE => book.recorded(&serde_json::from_value(payload)?),
            _ => book.activated(&serde_json::from_value(payload)?),
        }
    }
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
