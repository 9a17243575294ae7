//! `ops-host lineage`: an artifact's chain back to its source events (`lineage <cid_…>`),
//! recording a derived artifact (`lineage derive`) and feedback on one (`lineage
//! feedback`), each write checked on a capability.

use std::io::Write;

use anyhow::Context as _;
use ops_core::contract::Contract;
use ops_core::id::{ContentHash, ContentId};
use ops_core::lineage::{ArtifactRecorded, FeedbackGiven, FeedbackKind, Input};
use ops_core_runtime::lineage::Lineage;

use crate::cli::{LineageArgs, LineageCommand};
use crate::outcome::{BadInput, Ended, OrBadInput, block_on};
use crate::services::{Context, Open};
use crate::vocabulary::pairs;

impl LineageArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match (self.command, self.artifact_id) {
            (Some(command), _) => command.run(ctx),
            (None, Some(artifact_id)) => block_on(async move {
                let store = self.storage.services(ctx, Open::Existing).await?.store;
                crate::report::write_chain(&store, &artifact_id, &mut std::io::stdout().lock())
                    .await?;
                Ok(Ended::Done)
            }),
            (None, None) => anyhow::bail!(BadInput(
                "name an artifact (`cid_…`), or `derive` or `feedback`".to_owned()
            )),
        }
    }
}

impl LineageCommand {
    fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let out = &mut std::io::stdout().lock();
        match self {
            LineageCommand::Derive {
                inputs,
                output,
                policy_version,
                tools,
                eval,
                acting,
                storage,
            } => block_on(async move {
                let inputs = inputs
                    .iter()
                    .map(|input| parse_input(input))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let eval = eval.as_deref().map(parse_artifact_id).transpose()?;
                let tools = pairs("--tool", &tools)?;
                let bytes = std::fs::read(&output)
                    .with_context(|| format!("reading the output {}", output.display()))
                    .or_bad_input()?;
                let services = storage.services(ctx, Open::Existing).await?;
                let Some((by, capability)) = services
                    .allowed(
                        &acting,
                        ArtifactRecorded::TYPE,
                        &output.display().to_string(),
                        out,
                    )
                    .await?
                else {
                    return Ok(Ended::Refused);
                };
                let lineage = Lineage::new(services.store, capability);
                let id = lineage
                    .derive(
                        inputs,
                        ContentHash::of_bytes(&bytes),
                        &policy_version,
                        tools.into_iter().collect(),
                        eval,
                        &by,
                    )
                    .await
                    .map_err(|error| match error {
                        ops_core_runtime::lineage::LineageError::Unknown(_)
                        | ops_core_runtime::lineage::LineageError::UnknownEvent(_) => {
                            anyhow::Error::new(BadInput(error.to_string()))
                        }
                        other => other.into(),
                    })?;
                writeln!(out, "recorded derived artifact {id}")?;
                Ok(Ended::Done)
            }),
            LineageCommand::Feedback {
                artifact_id,
                kind,
                note,
                acting,
                storage,
            } => block_on(async move {
                let id = parse_artifact_id(&artifact_id)?;
                let kind: FeedbackKind = serde_json::from_value(serde_json::Value::String(kind.clone()))
                    .map_err(|_| {
                        BadInput(format!(
                            "`{kind}` is not a kind of feedback; use accepted, rejected, edited, overridden or snoozed"
                        ))
                    })?;
                let services = storage.services(ctx, Open::Existing).await?;
                let Some((by, capability)) = services
                    .allowed(&acting, FeedbackGiven::TYPE, &artifact_id, out)
                    .await?
                else {
                    return Ok(Ended::Refused);
                };
                Lineage::new(services.store, capability)
                    .feedback(id, kind, note.as_deref(), &by)
                    .await
                    .map_err(|error| match error {
                        ops_core_runtime::lineage::LineageError::Unknown(_) => {
                            anyhow::Error::new(BadInput(error.to_string()))
                        }
                        other => other.into(),
                    })?;
                writeln!(out, "recorded {kind:?} feedback on {id}")?;
                Ok(Ended::Done)
            }),
        }
    }
}

/// An artifact id (`cid_…`) the operator gave.
fn parse_artifact_id(text: &str) -> anyhow::Result<ContentId> {
    text.parse()
        .map_err(|error| anyhow::anyhow!("`{text}` is not an artifact id (`cid_…`): {error}"))
        .or_bad_input()
}

/// An input of a derived artifact: a stored event (`evt_…`) or a recorded artifact (`cid_…`).
fn parse_input(text: &str) -> anyhow::Result<Input> {
    if text.starts_with("evt_") {
        return text
            .parse()
            .map(Input::Event)
            .map_err(|error| anyhow::anyhow!("`{text}` is not an event id: {error}"))
            .or_bad_input();
    }
    parse_artifact_id(text).map(Input::Artifact).map_err(|_| {
        anyhow::Error::new(BadInput(format!(
            "`{text}` is neither an event id (`evt_…`) nor an artifact id (`cid_…`)"
        )))
    })
}
