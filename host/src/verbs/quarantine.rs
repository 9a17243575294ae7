//! `ops-host quarantine`: what the runtime set aside, and reading a stream's records again.

use crate::cli::QuarantineCommand;
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open, Services};

impl QuarantineCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            QuarantineCommand::List { format, storage } => block_on(async move {
                let store = storage.services(ctx, Open::Existing).await?.store;
                super::effects::list_quarantine(&store, format, &mut std::io::stdout().lock())
                    .await?;
                Ok(Ended::Done)
            }),
            QuarantineCommand::Retry {
                origin,
                acting,
                storage,
            } => block_on(async move {
                let out = &mut std::io::stdout().lock();
                let Some(Services { store, .. }) = storage
                    .acting_services(
                        ctx,
                        Open::Existing,
                        (&acting, "core.quarantine.Retry", &origin),
                        out,
                    )
                    .await?
                else {
                    return Ok(Ended::Refused);
                };
                super::effects::retry_quarantine(&store, &origin, out).await
            }),
        }
    }
}
