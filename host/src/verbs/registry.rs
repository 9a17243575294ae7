//! `ops-host registry`: the type registry of the installed packs, and reading stored payloads through every upcaster.

use std::io::Write;

use crate::cli::RegistryCommand;
use crate::outcome::{Ended, OrBadInput};
use crate::services::Context;
use anyhow::Context as _;
use ops_core::registry::Registry;
use std::path::Path;

impl RegistryCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            RegistryCommand::Export { out } => registry_export(ctx.registry, &out),
            RegistryCommand::Upcast { input } => upcast_all(ctx.registry, &input),
        }
    }
}

fn registry_export(registry: &'static Registry, out: &Path) -> anyhow::Result<Ended> {
    let export = ops_registry::document::Export::of(registry)?;
    export
        .write_to(out)
        .with_context(|| format!("exporting the registry to {}", out.display()))?;
    writeln!(
        std::io::stdout(),
        "wrote {} and {} schemas",
        out.join("registry.json").display(),
        export.schemas.len()
    )?;
    Ok(Ended::Done)
}

#[derive(serde::Deserialize)]
struct StoredPayload {
    #[serde(rename = "type")]
    type_name: String,
    version: u32,
    payload: serde_json::Value,
}

fn upcast_all(registry: &Registry, input: &Path) -> anyhow::Result<Ended> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("reading {}", input.display()))
        .or_bad_input()?;
    let stored: Vec<StoredPayload> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected an array of stored payloads", input.display()))
        .or_bad_input()?;
    let names: Vec<&str> = stored
        .iter()
        .map(|stored| {
            registry
                .current_name(&stored.type_name)
                .unwrap_or(&stored.type_name)
        })
        .collect();
    let payloads = stored
        .iter()
        .zip(&names)
        .map(|(stored, name)| (*name, stored.version, stored.payload.clone()))
        .collect();
    // A faulting upcaster is a finding about that payload, not the end of the run.
    let answers: Vec<serde_json::Value> = crate::jailing::pack_code()?
        .upcast(registry, payloads)
        .into_iter()
        .map(|upcast| match upcast {
            Ok((version, payload)) => serde_json::json!({"version": version, "payload": payload}),
            Err(error) => serde_json::json!({"error": error}),
        })
        .collect();
    writeln!(std::io::stdout(), "{}", serde_json::to_string(&answers)?)?;
    Ok(Ended::Done)
}
