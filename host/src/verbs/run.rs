//! `ops-host run`: the worker, on a store whose linked releases are active.

use crate::cli::RunArgs;
use crate::config::Config;
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
            aging,
            retention_every,
            reconcile_every,
            sources,
            config,
            lease_ms,
            worker_id,
            storage,
        } = self;
        block_on(async move {
            let options = crate::worker::WorkerOptions {
                ticks,
                interval: std::time::Duration::from_millis(interval_ms),
                jobs_per_tick,
                aging,
                retention_every,
                reconcile_every,
                retention: RetentionPolicy::default(),
                sources: pairs("--source", &sources)?
                    .into_iter()
                    .map(|(id, dir)| (id, PathBuf::from(dir)))
                    .collect(),
                fences: match &config {
                    Some(path) => Config::load(path)?,
                    None => Config::default(),
                },
                config: config.clone(),
                lease: std::time::Duration::from_millis(lease_ms),
                worker_id: worker_id.unwrap_or_else(crate::worker::default_worker_id),
                secrets: None,
            };
            let options = crate::worker::WorkerOptions {
                secrets: storage.secrets_dir(&options.fences),
                ..options
            };
            crate::jailing::set_limits(options.fences.pack_limits());
            crate::jailing::check()?;
            let out = &mut std::io::stdout().lock();
            let Some(store) = storage.pack_code_store(ctx, Open::Working, out).await? else {
                return Ok(Ended::Refused);
            };
            crate::worker::run(store, options, out).await?;
            Ok(Ended::Done)
        })
    }
}
