//! `ops-host effects` and `ops-host quarantine`: the operator's hands on external effects
//! (list, approve, cancel) and a view of what was set aside. Approving and cancelling go
//! through the runtime like any other action: an approval is a step of the effect, refused
//! to its own requester; a cancellation is a refusal with its receipt.

use std::io::Write;

use ops_core::id::CommandId;
use ops_core_runtime::egress::{
    Approved, Approver, Cancelled, Dispatcher, Gateway, approve, effects,
};
use ops_core_runtime::store::EventStore;
use serde_json::json;

use crate::vocabulary::parse_timestamp;
use crate::vocabulary::write_list;

use crate::cli::{Acting, EffectsCommand, Format};
use crate::outcome::{BadInput, Ended, block_on};
use crate::services::{Context, Open, Services};

fn command_id(text: &str) -> anyhow::Result<CommandId> {
    text.parse().map_err(|error| {
        anyhow::Error::new(BadInput(format!(
            "`{text}` is not a command id (`cmd_…`): {error}"
        )))
    })
}

/// Every external effect with its state and steps.
pub async fn list(store: &EventStore, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    write_list(
        out,
        format,
        &effects(store).await?,
        crate::report::effect_json,
        |effect| {
            let steps: Vec<String> = effect.steps.iter().map(|s| format!("{s:?}")).collect();
            format!(
                "{} {:?}: {}{}",
                effect.command_id,
                effect.state,
                steps.join(" -> "),
                effect
                    .note
                    .as_deref()
                    .map(|note| format!("; {note}"))
                    .unwrap_or_default()
            )
        },
    )
}

/// Records `acting.by`'s approval of a pending effect on `acting.capability`, which must
/// allow the effect itself, until `until` if given.
pub async fn approve_effect(
    services: &Services,
    command: &str,
    acting: &Acting,
    until: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let store = &services.store;
    let command_id = command_id(command)?;
    let until = until.map(parse_timestamp).transpose()?;
    let (by, capability_id) = acting.taken(store, "core.egress.Approve").await?;
    let approver = Approver {
        by,
        capability_id,
        authority: &services.capabilities,
    };
    let by = &acting.by;
    Ok(match approve(store, &command_id, approver, until).await? {
        Approved::Recorded => {
            writeln!(out, "approved {command_id} by {by} on {capability_id}")?;
            Ended::Done
        }
        Approved::NotPending => {
            writeln!(out, "refused: {command_id} has no pending effect")?;
            Ended::Refused
        }
        Approved::ByRequester => {
            writeln!(
                out,
                "refused: {by} asked for {command_id}, and nobody approves their own effect"
            )?;
            Ended::Refused
        }
        Approved::Denied { reason } => {
            writeln!(
                out,
                "refused: {capability_id} does not allow approving {command_id}: {reason} (receipted)"
            )?;
            Ended::Refused
        }
    })
}

/// Cancels a pending effect no dispatcher holds, on `acting`'s capability, with a refusal
/// receipt naming who cancelled it.
pub async fn cancel_effect(
    services: &Services,
    command: &str,
    acting: &Acting,
    reason: &str,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let store = &services.store;
    let command_id = command_id(command)?;
    let (by, capability_id) = acting.taken(store, "core.egress.Cancel").await?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        &format!("{}/cancel", crate::worker::default_worker_id()),
        Gateway::default(),
        std::sync::Arc::new(services.capabilities.clone()),
    );
    match dispatcher
        .cancel(&command_id, &by, capability_id, reason)
        .await?
    {
        Cancelled::Done => {
            writeln!(out, "cancelled {command_id}, receipted")?;
            Ok(Ended::Done)
        }
        Cancelled::NotPending => {
            writeln!(
                out,
                "refused: {command_id} has no pending effect that no dispatcher holds"
            )?;
            Ok(Ended::Refused)
        }
        Cancelled::Denied { reason } => {
            writeln!(
                out,
                "refused: {capability_id} does not allow cancelling {command_id}: {reason} (receipted)"
            )?;
            Ok(Ended::Refused)
        }
    }
}

/// Everything the runtime set aside, with where it came from and why.
pub async fn list_quarantine(
    store: &EventStore,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    write_list(
        out,
        format,
        &store.quarantine_entries().await?,
        |(origin, reference, reason, at)| json!({"origin": origin, "reference": reference, "reason": reason, "at": at}),
        |(origin, reference, reason, at)| format!("{at} {origin} {reference}: {reason}"),
    )
}

/// Retries a connector stream's quarantined records (`connector:<id>/<stream>`); other
/// origins are named with what reads them again.
pub async fn retry_quarantine(
    store: &EventStore,
    origin: &str,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    // A paused piece of pack code (as `status` names it) is given work again.
    if ops_core_runtime::faults::paused(store)
        .await?
        .contains_key(origin)
    {
        ops_core_runtime::faults::resume(store, origin, "resumed by `ops-host quarantine retry`")
            .await?;
        writeln!(out, "resumed {origin}: it is given work again")?;
        return Ok(Ended::Done);
    }
    let Some((connector, stream)) = origin
        .strip_prefix("connector:")
        .and_then(|rest| rest.split_once('/'))
    else {
        anyhow::bail!(BadInput(format!(
            "`{origin}` is not a connector stream (`connector:<id>/<stream>`); a projection's quarantined events are read again by `ops-host projections rebuild`, a reaction's by its next run"
        )));
    };
    let installed = crate::vocabulary::installed_connector(
        connector,
        "`ops-host quarantine list` shows the origins",
    )?;
    // Retrying reads only the quarantine, never the source: the reader is not used.
    let runner = ops_core_runtime::connector::ConnectorRunner::new(
        store.clone(),
        installed,
        Box::new(ops_core_runtime::connector::JsonLinesDirectory::new(
            std::path::PathBuf::new(),
        )),
        Default::default(),
    )?;
    let retried = runner.retry_quarantined(stream).await?;
    for (location, events) in &retried.stored {
        writeln!(
            out,
            "stored {location}: {events} new events; released from the quarantine"
        )?;
    }
    for (location, reason) in &retried.still_failing {
        writeln!(out, "still set aside {location}: {reason}")?;
    }
    if retried.stored.is_empty() && retried.still_failing.is_empty() {
        writeln!(out, "nothing of {origin} is set aside")?;
    }
    Ok(retried.still_failing.is_empty().into())
}

impl EffectsCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                EffectsCommand::List { format, storage } => {
                    list(
                        &storage.services(ctx, Open::Existing).await?.store,
                        format,
                        out,
                    )
                    .await?;
                    Ok(Ended::Done)
                }
                EffectsCommand::Approve {
                    command,
                    acting,
                    until,
                    storage,
                } => {
                    let services = storage.services(ctx, Open::Existing).await?;
                    approve_effect(&services, &command, &acting, until.as_deref(), out).await
                }
                EffectsCommand::Cancel {
                    command,
                    acting,
                    reason,
                    storage,
                } => {
                    let services = storage.services(ctx, Open::Existing).await?;
                    cancel_effect(&services, &command, &acting, &reason, out).await
                }
            }
        })
    }
}
