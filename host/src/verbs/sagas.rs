//! `ops-host sagas`: every saga with its effects (one line per saga, one per effect under
//! it, or JSON), and unwinding the failed ones through the command bus.

use std::io::Write;

use ops_core::envelope::CommandOutcome;
use ops_core_runtime::command::BusError;

use crate::cli::{Acting, SagasCommand};
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open, Services};

/// Compensates what the failed sagas executed, on `acting`'s capability; one line per
/// compensating command. `Refused` when one was rejected.
pub async fn unwind(
    services: &Services,
    acting: &Acting,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let (actor, capability_id) = acting.parsed()?;
    let bus = services.bus()?;
    let receipts = match bus.unwind_failed_sagas(&actor, capability_id).await {
        Ok(receipts) => receipts,
        Err(denied @ BusError::Denied { .. }) => {
            writeln!(out, "denied: {denied} (receipted)")?;
            return Ok(Ended::Refused);
        }
        Err(error) => return Err(error.into()),
    };
    if receipts.is_empty() {
        writeln!(out, "no failed saga has anything left to undo")?;
    }
    let mut ended = Ended::Done;
    for receipt in receipts {
        match receipt.outcome {
            CommandOutcome::Accepted => writeln!(
                out,
                "compensating command {} accepted; its effect is in the outbox",
                receipt.command_id
            )?,
            CommandOutcome::Rejected { reason } => {
                ended = Ended::Refused;
                writeln!(
                    out,
                    "compensating command {} rejected: {reason}",
                    receipt.command_id
                )?;
            }
        }
    }
    Ok(ended)
}

impl SagasCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                SagasCommand::List { format, storage } => {
                    crate::report::write_sagas(
                        &storage.services(ctx, Open::Existing).await?.store,
                        format,
                        out,
                    )
                    .await?;
                    Ok(Ended::Done)
                }
                SagasCommand::Unwind { acting, storage } => {
                    let Some(services) =
                        storage.pack_code_services(ctx, Open::Existing, out).await?
                    else {
                        return Ok(Ended::Refused);
                    };
                    unwind(&services, &acting, out).await
                }
            }
        })
    }
}
