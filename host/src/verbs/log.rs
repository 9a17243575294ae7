//! `ops-host log`: the event log by type, its check, and one type's events through the query gateway.

use std::io::Write;

use crate::cli::{LogCommand, Storage};
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open, Services};
use crate::vocabulary::write_list;

impl LogCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            LogCommand::Types { storage } => block_on(log_types(ctx, storage)),
            LogCommand::Check { format, storage } => block_on(async move {
                let services = storage.services(ctx, Open::Existing).await?;
                let progress = crate::progress::Progress::new("checking the log", "events");
                let checked = log_check(&services, &progress).await;
                progress.finish();
                let checked = checked?;
                write_list(
                    &mut std::io::stdout().lock(),
                    format,
                    &checked,
                    |(id, event_type, reads)| serde_json::json!({"event_id": id, "type": event_type, "reads": reads}),
                    |(id, event_type, reads)| format!("{id} {event_type} {reads}"),
                )?;
                Ok(checked
                    .iter()
                    .all(|(_, _, reads)| reads == "typed" || reads == "raw")
                    .into())
            }),
            LogCommand::Events {
                event_type,
                acting,
                storage,
            } => block_on(async move {
                let services = storage.services(ctx, Open::Existing).await?;
                let gateway = ops_core_runtime::query::QueryGateway::new(
                    services.store,
                    std::sync::Arc::new(services.capabilities),
                );
                let (actor, capability) = acting.parsed()?;
                let read = gateway.events(&event_type, &actor, capability).await;
                let out = &mut std::io::stdout().lock();
                match read {
                    Ok(events) => {
                        for event in events {
                            writeln!(
                                out,
                                "{}{}",
                                serde_json::to_string(&event.envelope)?,
                                if event.redacted.is_empty() {
                                    String::new()
                                } else {
                                    format!(" (redacted: {})", event.redacted.join(", "))
                                }
                            )?;
                        }
                        Ok(Ended::Done)
                    }
                    Err(denied @ ops_core_runtime::query::QueryError::Denied { .. }) => {
                        writeln!(out, "denied: {denied} (receipted)")?;
                        Ok(Ended::Refused)
                    }
                    Err(error) => Err(error.into()),
                }
            }),
        }
    }
}

async fn log_types(ctx: &Context<'_>, storage: Storage) -> anyhow::Result<Ended> {
    let registry = ctx.registry;
    let store = storage.services(ctx, Open::Existing).await?.store;
    for (event_type, count) in store.count_by_type().await? {
        let readable = if registry.current_name(&event_type).is_some() {
            "typed"
        } else {
            "raw envelope (type not installed)"
        };
        writeln!(std::io::stdout(), "{event_type} {count} {readable}")?;
    }
    Ok(Ended::Done)
}

/// Every stored event in commit order: its id, type and how it reads (`typed`, `raw`,
/// `BROKEN: why`, or `UNGRANTED` when it names a capability the log never granted: every
/// receipt names the capability its writer acted on, and a denial the one it was refused).
async fn log_check(
    services: &Services,
    progress: &crate::progress::Progress,
) -> anyhow::Result<Vec<(String, String, String)>> {
    use ops_core_runtime::store::CurrentPayload;
    let (store, capabilities) = (&services.store, &services.capabilities);
    let total = store.count().await?.max(0) as u64;
    let mut checked = Vec::new();
    let mut after = Default::default();
    loop {
        let batch = store.follow(after, 1_000).await?;
        if batch.events.is_empty() && batch.corrupt.is_empty() {
            return Ok(checked);
        }
        for corrupt in batch.corrupt {
            checked.push((
                corrupt.reference,
                String::new(),
                format!("BROKEN: {}", corrupt.reason),
            ));
        }
        for event in batch.events {
            let envelope = &event.envelope;
            let reads = match (envelope.verify(), store.current_payload(envelope)) {
                (Err(error), _) => format!("BROKEN: {error}"),
                (Ok(()), CurrentPayload::Current { .. }) => "typed".to_owned(),
                (Ok(()), CurrentPayload::UnknownType) => "raw".to_owned(),
                (Ok(()), CurrentPayload::Unreadable { reason }) => format!("BROKEN: {reason}"),
            };
            let reads = if reads.starts_with("BROKEN") || capabilities.names_granted(envelope) {
                reads
            } else {
                format!(
                    "UNGRANTED: it names capability {}, which the log never granted",
                    envelope.capability_id
                )
            };
            checked.push((
                envelope.event_id.to_string(),
                envelope.event_type.clone(),
                reads,
            ));
        }
        progress.advance(checked.len() as u64, total.max(checked.len() as u64));
        after = batch.next;
    }
}
