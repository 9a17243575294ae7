//! How the host shows sagas: one line per saga, one per effect under it.

use std::io::Write;

use ops_core_runtime::egress::sagas;
use ops_core_runtime::store::EventStore;

pub async fn write_sagas(store: &EventStore, out: &mut impl Write) -> anyhow::Result<()> {
    for saga in sagas(store).await? {
        writeln!(out, "saga {} {:?}", saga.correlation_id, saga.state)?;
        for effect in saga.effects {
            let steps: Vec<String> = effect.steps.iter().map(|s| format!("{s:?}")).collect();
            writeln!(
                out,
                "  {} {:?} (attempt {}): {}{}{}",
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
                    .map(|note| format!("; {note}"))
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(())
}
