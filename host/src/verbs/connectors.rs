//! `ops-host connectors`: reading a source now (a backfill) and moving a cursor, with a receipt.

use std::io::Write;

use crate::cli::ConnectorsCommand;
use crate::outcome::{BadInput, Ended, block_on};
use crate::services::{Context, Open, Services};
use crate::vocabulary::installed_connector;

impl ConnectorsCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            ConnectorsCommand::Sync {
                id,
                source,
                acting,
                storage,
            } => block_on(async move {
                let connector =
                    installed_connector(&id, "`ops-host registry export` lists the packs")?;
                if !source.is_dir() {
                    anyhow::bail!(BadInput(format!(
                        "the source {} is not a directory",
                        source.display()
                    )));
                }
                let out = &mut std::io::stdout().lock();
                let Some(Services { store, config, .. }) = storage
                    .acting_services(
                        ctx,
                        Open::Working,
                        (&acting, "core.connectors.Sync", &id),
                        out,
                    )
                    .await?
                else {
                    return Ok(Ended::Refused);
                };
                let leases = crate::worker::one_off_leases(&store, "sync");
                let progress = crate::progress::Progress::new(&format!("syncing {id}"), "records");
                let mut runner = ops_core_runtime::connector::ConnectorRunner::new(
                    store,
                    connector,
                    Box::new(
                        ops_core_runtime::connector::JsonLinesDirectory::new(source)
                            .with_max_record_bytes(config.max_record_bytes(&id)),
                    ),
                    config.connector_options(&id),
                )?
                .with_leases(leases.clone())
                .with_progress(progress.callback());
                let synced = runner.sync().await;
                progress.finish();
                leases.release_all().await?;
                let out = &mut std::io::stdout().lock();
                for (stream, report) in synced? {
                    match report.held_by {
                        Some(holder) => writeln!(out, "{id}/{stream}: held by {holder}")?,
                        None => writeln!(
                            out,
                            "{id}/{stream}: {} records, {} new events, {} already stored, {} quarantined; cursor {}",
                            report.records,
                            report.appended,
                            report.duplicates,
                            report.quarantined,
                            report
                                .cursor
                                .as_deref()
                                .map_or("-", ops_core_runtime::connector::cursor_place)
                        )?,
                    }
                }
                Ok(Ended::Done)
            }),
            ConnectorsCommand::Reset {
                id,
                stream,
                to,
                to_start: _,
                reason,
                acting,
                storage,
            } => block_on(async move {
                let connector =
                    installed_connector(&id, "`ops-host registry export` lists the packs")?;
                let streams = crate::jailing::pack_code()?.streams(connector)?;
                if !streams.contains(&stream) {
                    anyhow::bail!(BadInput(format!(
                        "connector `{id}` has no stream `{stream}`; its streams: {}",
                        streams.join(", ")
                    )));
                }
                if let Some(cursor) = &to
                    && !ops_core_runtime::connector::is_cursor(cursor)
                {
                    anyhow::bail!(BadInput(format!(
                        "--to `{cursor}` is not a cursor: write `<file>:<line>`, the last line to count as read"
                    )));
                }
                let Services {
                    store,
                    capabilities,
                    ..
                } = storage.services(ctx, Open::Existing).await?;
                let (by, capability_id) = acting
                    .taken(
                        &store,
                        <ops_core::connector::SourceCursorReset as ops_core::contract::Contract>::TYPE,
                    )
                    .await?;
                let from = store.cursor(&id, &stream).await?.map(|(cursor, _)| cursor);
                let reset = ops_core::connector::SourceCursorReset {
                    connector_id: id.clone(),
                    stream: stream.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    reason,
                };
                let out = &mut std::io::stdout().lock();
                match ops_core_runtime::connector::reset_cursor(
                    &store,
                    &capabilities,
                    reset,
                    &by,
                    capability_id,
                )
                .await?
                {
                    Ok(()) => {
                        writeln!(
                            out,
                            "{id}/{stream}: cursor moved from {} to {} (receipted)",
                            from.as_deref().unwrap_or("the start"),
                            to.as_deref().unwrap_or("the start")
                        )?;
                        Ok(Ended::Done)
                    }
                    Err(reason) => {
                        writeln!(
                            out,
                            "denied: {capability_id} does not allow moving the cursor: {reason} (receipted)"
                        )?;
                        Ok(Ended::Refused)
                    }
                }
            }),
        }
    }
}
