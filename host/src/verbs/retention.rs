//! `ops-host retention`: applies a retention policy as `--by` on `--capability` (checked,
//! a denial receipted), showing its progress class by class, and prints each class's
//! receipt.

use std::io::Write;

use ops_core::id::CapabilityId;
use ops_core::retention::RetentionPolicy;
use ops_core_runtime::acting::Acting;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::retention::{Retention, RetentionError};
use std::sync::Arc;

use ops_core_runtime::store::EventStore;

use crate::cli::RetentionArgs;
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open, Services};

/// Applies `policy` as `by` on `capability_id`, checked on `capabilities`: a denial is
/// receipted, removes nothing and ends the command refused (exit 1).
pub async fn apply(
    store: &EventStore,
    capabilities: Arc<Capabilities>,
    policy: &RetentionPolicy,
    installed: &[&str],
    by: &Acting,
    capability_id: CapabilityId,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let retention = Retention::new(store.clone(), capability_id).checked_by(capabilities);
    let progress = crate::progress::Progress::new("retention", "classes");
    let receipts = retention
        .apply_reporting(
            policy,
            installed,
            // As of the action's time: a retry of it removes what the first run removed.
            by.cause.at(),
            by,
            Some(progress.callback()),
        )
        .await;
    progress.finish();
    let receipts = match receipts {
        Ok(receipts) => receipts,
        Err(denied @ RetentionError::Denied { .. }) => {
            writeln!(out, "denied: {denied}")?;
            return Ok(Ended::Refused);
        }
        Err(error) => return Err(error.into()),
    };
    for receipt in receipts {
        writeln!(
            out,
            "{}: kept {} days, removed {}{}",
            receipt.class,
            receipt.retention_days,
            receipt.removed.len(),
            if receipt.removed.is_empty() {
                String::new()
            } else {
                format!(" ({})", receipt.removed.join(", "))
            }
        )?;
    }
    Ok(Ended::Done)
}

impl RetentionArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let RetentionArgs {
            artifacts_days,
            projections_days,
            receipts_days,
            acting,
            storage,
        } = self;
        block_on(async move {
            let policy = RetentionPolicy {
                artifacts_days,
                projections_days,
                receipts_days,
            };
            let Services {
                store,
                capabilities,
                ..
            } = storage.services(ctx, Open::Existing).await?;
            let (by, capability_id) = acting
                .taken(
                    &store,
                    <ops_core::retention::RetentionApplied as ops_core::contract::Contract>::TYPE,
                )
                .await?;
            let authority = std::sync::Arc::new(capabilities);
            let installed: Vec<&str> = ctx.registry.packs().map(|pack| pack.id).collect();
            apply(
                &store,
                authority,
                &policy,
                &installed,
                &by,
                capability_id,
                &mut std::io::stdout().lock(),
            )
            .await
        })
    }
}
