//! `ops-host projections`: freshness (exit 1 when one is STALE or paused) and rebuilding one from the log.

use std::io::Write;

use crate::cli::{Acting, ProjectionsCommand, Storage};
use crate::outcome::{BadInput, Ended, block_on};
use crate::services::{Context, Open, Services};

impl ProjectionsCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            ProjectionsCommand::Status { storage } => block_on(projections_status(ctx, storage)),
            ProjectionsCommand::Rebuild {
                projection,
                acting,
                storage,
            } => block_on(projections_rebuild(ctx, projection, &acting, storage)),
        }
    }
}

async fn projections_status(ctx: &Context<'_>, storage: Storage) -> anyhow::Result<Ended> {
    let store = storage.services(ctx, Open::Existing).await?.store;
    let paused = ops_core_runtime::faults::paused(&store).await?;
    let mut healthy = true;
    for status in ops_core_runtime::projection::all_freshness(&store).await? {
        let label = format!("{}/{}", status.owner, status.name);
        let paused = paused.get(&format!("projection {label}"));
        healthy &= status.within_objective && paused.is_none();
        writeln!(
            std::io::stdout(),
            "{label} v{}: lag {} ms of {} ms allowed ({}), {} applied, {} late, {} rebuilds{}",
            status.version,
            status.lag_ms,
            status.max_lag_ms,
            if status.within_objective {
                "fresh"
            } else {
                "STALE"
            },
            status.applied_events,
            status.late_events,
            status.rebuilds,
            paused.map_or_else(String::new, |(_, receipt)| format!(
                "; PAUSED after faults in a row (receipt {receipt}): `ops-host projections rebuild` resumes it"
            )),
        )?;
    }
    // Exit 1 while anything printed needs attention, so a monitor can run it.
    Ok(Ended::from(healthy))
}

async fn projections_rebuild(
    ctx: &Context<'_>,
    projection: String,
    acting: &Acting,
    storage: Storage,
) -> anyhow::Result<Ended> {
    let Some(found) = ops_core::projection::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|p| format!("{}/{}", p.pack_id(), p.name()) == projection)
    else {
        anyhow::bail!(BadInput(format!(
            "no installed projection `{projection}`; `ops-host projections status` lists them"
        )));
    };
    let out = &mut std::io::stdout().lock();
    let Some(Services { store, .. }) = storage
        .acting_services(
            ctx,
            Open::Existing,
            (acting, "core.projections.Rebuild", &projection),
            out,
        )
        .await?
    else {
        return Ok(Ended::Refused);
    };
    // Under the projection's lease, as a worker: a worker running it now is not raced.
    let leases = crate::worker::one_off_leases(&store, "rebuild");
    let progress = crate::progress::Progress::new(&format!("rebuilding {projection}"), "events");
    // Every partition of a split projection, one after another, each under its lease.
    let mut rows = 0;
    let mut rebuilt = Ok(());
    for partition in ops_core_runtime::projection::partitions_of(found) {
        let mut runner = ops_core_runtime::projection::ProjectionRunner::start_partition(
            store.clone(),
            found,
            leases.clone(),
            partition,
        )?
        .with_progress(progress.callback());
        rebuilt = runner.rebuild().await;
        rows += runner.state().row_count();
        if rebuilt.is_err() {
            break;
        }
    }
    progress.finish();
    leases.release_all().await?;
    rebuilt?;
    writeln!(out, "rebuilt {projection}: {rows} rows")?;
    Ok(Ended::Done)
}
