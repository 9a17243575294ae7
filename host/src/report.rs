//! What a saga, an effect and an artifact's lineage look like in print: the verbs that list
//! them and the demo print them the same way.

use ops_core_runtime::service_capability;
use std::io::Write;

use ops_core::id::ContentId;
use ops_core::lineage::Artifact;
use ops_core_runtime::egress::{EffectStatus, SagaStatus, sagas};
use ops_core_runtime::lineage::{Lineage, Link};
use ops_core_runtime::store::EventStore;
use serde_json::json;

use crate::cli::Format;
use crate::outcome::OrBadInput;
use crate::vocabulary::write_list;

/// Every saga with its effects, as `format` says.
pub async fn write_sagas(
    store: &EventStore,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    write_list(
        out,
        format,
        &sagas(store).await?,
        |saga| {
            serde_json::json!({
                "saga": saga.correlation_id,
                "state": state_name(saga),
                "effects": saga.effects.iter().map(effect_json).collect::<Vec<_>>(),
            })
        },
        |saga| {
            let mut text = format!("saga {} {:?}", saga.correlation_id, saga.state);
            for effect in &saga.effects {
                let steps: Vec<String> = effect.steps.iter().map(|s| format!("{s:?}")).collect();
                text.push_str(&format!(
                    "\n  {} {:?} (attempt {}): {}{}{}",
                    effect.command_id,
                    effect.state,
                    effect.attempt,
                    steps.join(" -> "),
                    effect
                        .compensates
                        .map(|original| format!("; undoes {original}"))
                        .unwrap_or_default(),
                    effect
                        .note
                        .as_deref()
                        .map(|note| format!("; {note}"))
                        .unwrap_or_default()
                ));
            }
            text
        },
    )
}

fn state_name(saga: &SagaStatus) -> String {
    format!("{:?}", saga.state).to_lowercase()
}

/// An effect as `--format json` shows it.
pub fn effect_json(effect: &EffectStatus) -> serde_json::Value {
    json!({
        "command_id": effect.command_id,
        "saga": effect.correlation_id,
        "state": effect.state,
        "attempt": effect.attempt,
        "steps": effect.steps,
        "note": effect.note,
        "compensates": effect.compensates,
    })
}

/// `artifact_id`'s chain back to the source events it was computed from, one line per link.
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
    let reader = service_capability::of(service_capability::READER);
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
