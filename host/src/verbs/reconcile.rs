//! `ops-host reconcile`: every installed reconciler, now.

use std::io::Write;

use crate::cli::ReconcileArgs;
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open, Services};

impl ReconcileArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let ReconcileArgs { acting, storage } = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            let Some(Services { store, .. }) = storage
                .acting_services(
                    ctx,
                    Open::Working,
                    (&acting, "core.reconcile.Run", "reconcilers"),
                    out,
                )
                .await?
            else {
                return Ok(Ended::Refused);
            };
            for reconciler in ops_core::connector::reconcilers(ops_core_runtime::CORE) {
                let outcome = ops_core_runtime::reconcile::reconcile(&store, reconciler).await?;
                writeln!(
                    out,
                    "{}: {} new conflicts between sources, {} known before",
                    reconciler.name(),
                    outcome.appended.len(),
                    outcome.duplicates.len()
                )?;
            }
            for conflict in store
        .read_by_type(<ops_core::connector::SourceFactsConflicted as ops_core::contract::Contract>::TYPE)
        .await?
    {
        let payload = &conflict.envelope.payload;
        writeln!(
            out,
            "  {} ({}): {}",
            payload["subject"].as_str().unwrap_or_default(),
            conflict.envelope.event_id,
            payload["reason"].as_str().unwrap_or_default()
        )?;
    }
            Ok(Ended::Done)
        })
    }
}
