//! `ops-host lineage <artifact_id>`: an artifact's chain back to its source events.

use crate::cli::LineageArgs;
use crate::outcome::{Ended, block_on};
use crate::services::Context;

impl LineageArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let LineageArgs {
            artifact_id,
            storage,
        } = self;
        block_on(async move {
            let store = storage.store(ctx.registry).await?;
            crate::report::write_chain(&store, &artifact_id, &mut std::io::stdout().lock()).await?;
            Ok(Ended::Done)
        })
    }
}
