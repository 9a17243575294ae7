//! `ops-host packs`: what uninstalled packs left behind.

use std::io::Write;

use crate::cli::{PacksCommand, Storage};
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open};

impl PacksCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            PacksCommand::Orphaned { storage } => block_on(packs_orphaned(ctx, storage)),
        }
    }
}

async fn packs_orphaned(ctx: &Context<'_>, storage: Storage) -> anyhow::Result<Ended> {
    let registry = ctx.registry;
    let store = storage.services(ctx, Open::Existing).await?.store;
    let installed: Vec<&str> = registry.packs().map(|pack| pack.id).collect();
    let recorded = ops_core_runtime::projection::recorded(store.db()).await?;
    let orphans = ops_core_runtime::migrate::orphans(store.db(), &installed, recorded).await?;
    for table in &orphans.tables {
        writeln!(std::io::stdout(), "table {table}")?;
    }
    for owner in &orphans.migration_owners {
        writeln!(std::io::stdout(), "migrations {owner}")?;
    }
    for projection in &orphans.projections {
        writeln!(std::io::stdout(), "projection {projection}")?;
    }
    if orphans == Default::default() {
        writeln!(std::io::stdout(), "nothing orphaned")?;
    }
    Ok(Ended::Done)
}
