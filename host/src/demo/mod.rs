//! The demo: what the installed packs provide, and the guarantees of the core shown on
//! their own types. It names no pack: deleting a pack only shortens the output.

use anyhow::bail;
use ops_core::envelope::{Actor, ActorId, Causation, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId, UserActionId};
use ops_core::registry::{Registry, TypeDescriptor};
use ops_core::time::Timestamp;
use ops_registry::document::Export;
use serde_json::Value;
use std::io::Write;

pub(crate) mod runtime;
pub(crate) mod story;

pub fn run(registry: &Registry, installed: &[&str], out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "== installed packs ({})", installed.join(", "))?;
    let export = Export::of(registry)?;
    for pack in &export.document.packs {
        let manifest = &pack.manifest;
        writeln!(
            out,
            "pack {} {}  {}  tables {}*  contracts [{}]",
            manifest.id,
            manifest.version,
            pack.content_id,
            manifest.migrations_prefix,
            manifest.contracts.join(", ")
        )?;
    }
    writeln!(out, "\n== type registry")?;
    for entry in &export.document.types {
        let safety = entry.safety.map(|s| format!(" {s:?}")).unwrap_or_default();
        writeln!(
            out,
            "{:<48} v{}  {:?} {:?}{}  {}",
            entry.name, entry.version, entry.visibility, entry.kind, safety, entry.schema_hash
        )?;
    }
    writeln!(out, "\n== upcasting stored payloads")?;
    for descriptor in registry.types().filter(|t| t.version == 1) {
        let latest = registry
            .latest(descriptor.name)
            .expect("the type is registered");
        if latest.version == 1 {
            continue;
        }
        for example in examples_of(&export, descriptor) {
            let (version, upcast) = crate::jailing::pack_code()?
                .upcast(registry, vec![(descriptor.name, 1, example.clone())])
                .pop()
                .expect("one result for one payload")
                .map_err(|error| {
                    anyhow::anyhow!("upcasting an example of `{}`: {error}", descriptor.name)
                })?;
            (latest.check_payload)(&upcast).map_err(|error| {
                anyhow::anyhow!(
                    "`{}` v{version} rejects the upcast example: {error}",
                    latest.name
                )
            })?;
            writeln!(
                out,
                "{} v1 {example}\n  -> v{version} {upcast}",
                descriptor.name
            )?;
        }
    }
    writeln!(out, "\n== deterministic event ids")?;
    for latest in registry.types().filter(|t| is_latest_event(registry, t)) {
        let Some(example) = examples_of(&export, latest).first().cloned() else {
            continue;
        };
        let first = envelope_of(latest, example.clone())?;
        let again = envelope_of(latest, example)?;
        first.verify()?;
        if first.event_id != again.event_id {
            bail!("`{}`: the same inputs gave two event ids", latest.name);
        }
        writeln!(out, "{:<48} {}", latest.name, first.event_id)?;
    }
    Ok(())
}

fn is_latest_event(registry: &Registry, descriptor: &TypeDescriptor) -> bool {
    descriptor.kind == ops_core::contract::Kind::Event
        && registry.latest(descriptor.name).map(|t| t.version) == Some(descriptor.version)
}

/// Sample payloads that the type's author put in its schema (`#[schemars(example = ...)]`).
fn examples_of<'e>(export: &'e Export, descriptor: &TypeDescriptor) -> &'e [Value] {
    export
        .schema(descriptor.name, descriptor.version)
        .and_then(|schema| schema.get("examples"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn envelope_of(descriptor: &TypeDescriptor, payload: Value) -> anyhow::Result<EventEnvelope> {
    let demo_user = ActorId::new("demo@ops.local")?;
    let occurred_at: Timestamp = "2026-11-26T06:00:00Z".parse()?;
    let origin = EventOrigin {
        source_ref: "demo".to_owned(),
        source_native_id: format!("{}#1", descriptor.name),
        source_sequence: Some(1),
        occurred_at,
        ingested_at: occurred_at,
        effective_at: None,
        correlation_id: CorrelationId::of("demo run")?,
        causation: Causation::UserAction(UserActionId::of(&("demo", descriptor.name))?),
        actor: Actor::Human(demo_user.clone()),
        capability_id: CapabilityId::of(&("demo grant", demo_user.as_str()))?,
    };
    Ok(EventEnvelope::from_parts(
        ops_core_runtime::CORE,
        descriptor.name.to_owned(),
        descriptor.version,
        payload,
        origin,
    ))
}
