//! `ops-host run`: the worker, on a store whose linked releases are active.

use crate::cli::RunArgs;
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open};
use crate::vocabulary::pairs;
use ops_core::retention::RetentionPolicy;
use std::path::PathBuf;

impl RunArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let RunArgs {
            ticks,
            interval_ms,
            jobs_per_tick,
            slice_batches,
            aging,
            retention_every,
            reconcile_every,
            sources,
            lease_ms,
            worker_id,
            storage,
        } = self;
        block_on(async move {
            // What is asked is read before anything is opened or created.
            let sources = pairs("--source", &sources)?
                .into_iter()
                .map(|(id, dir)| (id, PathBuf::from(dir)))
                .collect();
            // The runners' limits are set before the first runner starts.
            let fences = storage.config()?;
            crate::jailing::set_limits(fences.pack_limits());
            crate::jailing::check()?;
            let out = &mut std::io::stdout().lock();
            let Some(services) = storage.pack_code_services(ctx, Open::Working, out).await? else {
                return Ok(Ended::Refused);
            };
            let options = crate::worker::WorkerOptions {
                ticks,
                interval: std::time::Duration::from_millis(interval_ms),
                jobs_per_tick,
                slice_batches: slice_batches as usize,
                aging,
                retention_every,
                reconcile_every,
                retention: RetentionPolicy::default(),
                sources,
                fences,
                config: storage.config_path(),
                lease: std::time::Duration::from_millis(lease_ms),
                worker_id: worker_id.unwrap_or_else(crate::worker::default_worker_id),
                keys_dir: storage.keys_dir().map(PathBuf::from),
            };
            crate::worker::run(services, options, out).await?;
            Ok(Ended::Done)
        })
    }
}
