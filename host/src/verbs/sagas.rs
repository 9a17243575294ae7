//! `ops-host sagas`: every saga with its effects (one line per saga, one per effect under
//! it, or JSON), and unwinding the failed ones through the command bus.

use std::io::Write;
use std::sync::Arc;

use ops_core::envelope::CommandOutcome;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::command::{BusError, CommandBus};
use ops_core_runtime::egress::{SagaStatus, sagas};
use ops_core_runtime::store::EventStore;

use crate::cli::{Acting, Format};
use crate::verbs::effects::effect_json;
use crate::vocabulary::write_list;
use crate::vocabulary::{parse_actor, parse_capability};

use crate::cli::*;
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open};

pub async fn write_sagas(store: &EventStore, out: &mut impl Write) -> anyhow::Result<()> {
    list(store, Format::Text, out).await
}

pub async fn list(store: &EventStore, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    write_list(
        out,
        format,
        &sagas(store).await?,
        |saga| {
            serde_json::json!({
                "saga": saga.correlation_id,
                "state": state_name(saga),
                "effects": saga.effects.iter().map(effect_json).collect::<Vec<_>>(),
            })
        },
        |saga| {
            let mut text = format!("saga {} {:?}", saga.correlation_id, saga.state);
            for effect in &saga.effects {
                let steps: Vec<String> = effect.steps.iter().map(|s| format!("{s:?}")).collect();
                text.push_str(&format!(
                    "\n  {} {:?} (attempt {}): {}{}{}",
                    effect.command_id,
                    effect.state,
                    effect.attempt,
                    steps.join(" -> "),
                    effect
                        .compensates
                        .map(|original| format!("; undoes {original}"))
                        .unwrap_or_default(),
                    effect
                        .note
                        .as_deref()
                        .map(|note| format!("; {note}"))
                        .unwrap_or_default()
                ));
            }
            text
        },
    )
}

fn state_name(saga: &SagaStatus) -> String {
    format!("{:?}", saga.state).to_lowercase()
}

/// Compensates what the failed sagas executed, on `acting`'s capability; one line per
/// compensating command. `Refused` when one was rejected.
pub async fn unwind(
    store: &EventStore,
    acting: &Acting,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let actor = parse_actor(&acting.by)?;
    let capability_id = parse_capability(&acting.capability)?;
    let bus = CommandBus::new(
        store.clone(),
        Arc::new(Capabilities::load(store.clone()).await?),
    )?;
    let receipts = match bus.unwind_failed_sagas(&actor, capability_id).await {
        Ok(receipts) => receipts,
        Err(denied @ BusError::Denied { .. }) => {
            writeln!(out, "denied: {denied} (receipted)")?;
            return Ok(Ended::Refused);
        }
        Err(error) => return Err(error.into()),
    };
    if receipts.is_empty() {
        writeln!(out, "no failed saga has anything left to undo")?;
    }
    let mut ended = Ended::Done;
    for receipt in receipts {
        match receipt.outcome {
            CommandOutcome::Accepted => writeln!(
                out,
                "compensating command {} accepted; its effect is in the outbox",
                receipt.command_id
            )?,
            CommandOutcome::Rejected { reason } => {
                ended = Ended::Refused;
                writeln!(
                    out,
                    "compensating command {} rejected: {reason}",
                    receipt.command_id
                )?;
            }
        }
    }
    Ok(ended)
}

impl SagasCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                SagasCommand::List { format, storage } => {
                    list(&storage.store(ctx.registry).await?, format, out).await?;
                    Ok(Ended::Done)
                }
                SagasCommand::Unwind { acting, storage } => {
                    let Some(store) = storage
                        .pack_code_store(ctx.registry, Open::Existing, ctx.releases, out)
                        .await?
                    else {
                        return Ok(Ended::Refused);
                    };
                    unwind(&store, &acting, out).await
                }
            }
        })
    }
}
