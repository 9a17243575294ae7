//! `ops-host demo`: the end-to-end demo on the embedded default.

use crate::cli::DemoArgs;
use crate::outcome::{Ended, block_on};
use crate::services::Context;

impl DemoArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let mut out = std::io::stdout().lock();
        crate::demo::run(ctx.registry, ctx.installed_packs, &mut out)?;
        block_on(crate::demo::runtime::run(
            ctx.registry,
            &self.data,
            &mut out,
        ))?;
        Ok(Ended::Done)
    }
}
