//! `ops-host lineage <artifact_id>`: an artifact's chain back to its source events.

use std::io::Write;

use ops_core::id::{CapabilityId, ContentId};
use ops_core::lineage::Artifact;
use ops_core_runtime::lineage::{Lineage, Link};
use ops_core_runtime::store::EventStore;

use crate::cli::*;
use crate::outcome::{Ended, OrBadInput, block_on};
use crate::services::Context;

pub async fn write_chain(
    store: &EventStore,
    artifact_id: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let id: ContentId = artifact_id
        .parse()
        .map_err(|error| {
            anyhow::anyhow!("`{artifact_id}` is not an artifact id (`cid_…`): {error}")
        })
        .or_bad_input()?;
    // Reading lineage records nothing, so no capability is exercised here.
    let reader =
        CapabilityId::of("host.lineage-reader").expect("plain strings have a canonical form");
    for link in Lineage::new(store.clone(), reader).chain(id).await? {
        match link {
            Link::Artifact {
                depth,
                id,
                artifact,
                feedback,
            } => {
                let what = match &artifact {
                    Artifact::Query(query) => format!(
                        "query of {} v{} at {} (fresh at {}), read on {}",
                        query.projection,
                        query.projection_version,
                        query.snapshot_id,
                        query.freshness_at,
                        query.capability_id
                    ),
                    Artifact::Derived(derived) => format!(
                        "derived by {}{}, {} input(s)",
                        derived.policy_version,
                        derived
                            .eval_id
                            .map(|eval| format!(", eval {eval}"))
                            .unwrap_or_default(),
                        derived.inputs.len()
                    ),
                };
                let feedback = if feedback.is_empty() {
                    String::new()
                } else {
                    format!("; feedback {feedback:?}")
                };
                writeln!(out, "{}{id} {what}{feedback}", "  ".repeat(depth))?;
            }
            Link::Removed { depth, id } => {
                writeln!(out, "{}{id} (removed by retention)", "  ".repeat(depth))?;
            }
            Link::Event {
                depth,
                id,
                event_type,
            } => writeln!(
                out,
                "{}{id} {}",
                "  ".repeat(depth),
                event_type.as_deref().unwrap_or("(not in this log)")
            )?,
        }
    }
    Ok(())
}

impl LineageArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let LineageArgs {
            artifact_id,
            storage,
        } = self;
        block_on(async move {
            let store = storage.store(ctx.registry).await?;
            write_chain(&store, &artifact_id, &mut std::io::stdout().lock()).await?;
            Ok(Ended::Done)
        })
    }
}
