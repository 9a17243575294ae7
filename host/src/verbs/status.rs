//! `ops-host status`: what needs an operator's attention. Projections over their freshness
//! objective (Section 6), records set aside in the quarantine (connector, projection and
//! reaction input and output), effects refused or given up, sagas that failed, pack code
//! that faulted or is paused, and jobs a worker recorded as failing are listed; the exit code is 1 when there is any, so a monitor can run it. Capability
//! denials are counted, which worker runs each stream of work now (its live leases) is
//! listed, and how each connector reads its streams (rate limit and retry model).

use std::io::Write;

use ops_core::capability::CapabilityDenied;
use ops_core::contract::Contract;
use ops_core::egress::EffectState;
use ops_core::fault::PackCodeFaulted;
use ops_core::time::Timestamp;
use ops_core_runtime::clock::WallClock;
use ops_core_runtime::egress::{SagaState, effects, sagas};
use ops_core_runtime::leases;
use ops_core_runtime::projection::all_freshness;
use ops_core_runtime::reaction::ReactionRunner;
use ops_core_runtime::store::EventStore;

use crate::cli::StatusArgs;
use crate::outcome::{Ended, block_on};
use crate::services::{Context, Open, Services};

/// Writes the status; `true` when nothing needs attention.
pub async fn write_status(services: &Services, out: &mut impl Write) -> anyhow::Result<bool> {
    let store = &services.store;
    let mut healthy = true;
    let projections = all_freshness(store).await?;
    let stale: Vec<_> = projections.iter().filter(|p| !p.within_objective).collect();
    writeln!(
        out,
        "projections: {} within their freshness objective, {} over it",
        projections.len() - stale.len(),
        stale.len()
    )?;
    for status in stale {
        healthy = false;
        writeln!(
            out,
            "  SLO VIOLATED {}/{} v{}: lag {} ms, objective {} ms",
            status.owner, status.name, status.version, status.lag_ms, status.max_lag_ms
        )?;
    }
    let quarantined = store.quarantine_counts().await?;
    let set_aside: i64 = quarantined.iter().map(|(_, count)| count).sum();
    writeln!(out, "quarantine: {set_aside} records set aside")?;
    for (origin, count) in &quarantined {
        healthy = false;
        writeln!(out, "  QUARANTINED {count} from {origin}")?;
    }
    let effects = effects(store).await?;
    let ended = |state: EffectState| effects.iter().filter(|e| e.state == state).count();
    let (refused, failed) = (ended(EffectState::Refused), ended(EffectState::Failed));
    writeln!(
        out,
        "effects: {} pending, {} executed, {refused} refused, {} cancelled, {failed} failed",
        effects.iter().filter(|e| !e.state.is_final()).count(),
        ended(EffectState::Executed),
        ended(EffectState::Cancelled)
    )?;
    for effect in effects
        .iter()
        .filter(|e| matches!(e.state, EffectState::Refused | EffectState::Failed))
    {
        healthy = false;
        writeln!(
            out,
            "  {} effect of command {}: {}",
            if effect.state == EffectState::Refused {
                "REFUSED"
            } else {
                "FAILED"
            },
            effect.command_id,
            effect.note.as_deref().unwrap_or("no reason recorded")
        )?;
    }
    let denials = store
        .count_by_type()
        .await?
        .into_iter()
        .find(|(event_type, _)| event_type == CapabilityDenied::TYPE)
        .map_or(0, |(_, count)| count);
    writeln!(
        out,
        "capabilities: {denials} requests denied (each with its `{}` receipt)",
        CapabilityDenied::TYPE
    )?;
    // A reaction holds its cursor at a command it was denied (or could not afford): the
    // events past it wait, and say which capability to grant.
    let capabilities = &services.capabilities;
    for reaction in ops_core::reaction::installed(ops_core_runtime::CORE) {
        let capability = crate::worker::reaction_capability(capabilities, reaction.pack_id())?;
        let waiting = ReactionRunner::new(store.clone(), reaction, capability)
            .unanswered()
            .await?;
        if waiting > 0 {
            healthy = false;
            let pack = reaction.pack_id();
            // Say what is missing, never ask for what is already there.
            let what_now = match capabilities.ended_at(capability, Timestamp::now()) {
                None => format!(
                    "`reactions/{pack}` was never granted: grant it to `service:pack.{pack}`, allowing `{}`",
                    reaction.command_type()
                ),
                Some(true) => format!(
                    "`reactions/{pack}` ({capability}) ended: grant `reactions/{pack}` again, allowing `{}`",
                    reaction.command_type()
                ),
                Some(false) => format!(
                    "it acts on `reactions/{pack}` ({capability}), which is granted: a worker answers them at its next tick unless that capability's scope or the reaction's budget refuses them (their receipts say which)"
                ),
            };
            writeln!(
                out,
                "  WAITING reaction {pack}: {} -> {}: {waiting} events not answered yet; {what_now}",
                reaction.event_type(),
                reaction.command_type(),
            )?;
        }
    }
    let all = sagas(store).await?;
    let count = |state: SagaState| all.iter().filter(|saga| saga.state == state).count();
    writeln!(
        out,
        "sagas: {} running, {} completed, {} failed, {} compensating, {} compensated, {} aborted",
        count(SagaState::Running),
        count(SagaState::Completed),
        count(SagaState::Failed),
        count(SagaState::Compensating),
        count(SagaState::Compensated),
        count(SagaState::Aborted)
    )?;
    for saga in all.iter().filter(|saga| saga.state == SagaState::Failed) {
        healthy = false;
        writeln!(
            out,
            "  FAILED saga {}: `ops-host sagas unwind` compensates what it executed",
            saga.correlation_id
        )?;
    }
    write_pack_code(store, out, &mut healthy).await?;
    let failing = ops_core_runtime::health::failing(store).await?;
    writeln!(out, "jobs: {} failing", failing.len())?;
    for (job, failing) in &failing {
        healthy = false;
        writeln!(
            out,
            "  FAILING {job} on worker {} since {} ({} failures in a row): {}",
            failing.worker, failing.since, failing.failures, failing.error
        )?;
    }
    let leases = leases::all(store.db()).await?;
    let live: Vec<_> = leases.iter().filter(|lease| lease.live).collect();
    let workers: std::collections::BTreeSet<&str> =
        live.iter().map(|lease| lease.holder.as_str()).collect();
    writeln!(
        out,
        "workers: {} running {} streams of work; {} leases ended (free to take)",
        workers.len(),
        live.len(),
        leases.len() - live.len()
    )?;
    for lease in live {
        writeln!(
            out,
            "  {} run by {} until {} (generation {})",
            lease.name, lease.holder, lease.expires_at, lease.generation
        )?;
    }
    // How each installed connector reads its streams: its rate limit and retry model, as
    // the configuration sets them (A8).
    for connector in ops_core::connector::installed(ops_core_runtime::CORE) {
        let options = services.config.connector_options(connector.id());
        writeln!(out, "connector {}: {}", connector.id(), options.reading)?;
        for (stream, model) in &options.streams {
            writeln!(out, "  stream {stream}: {model}")?;
        }
    }
    Ok(healthy)
}

/// Where pack code runs, its faults, and the pieces paused after faults in a row (each a
/// reason for attention, named with the receipt that paused it).
async fn write_pack_code(
    store: &EventStore,
    out: &mut impl Write,
    healthy: &mut bool,
) -> anyhow::Result<()> {
    let faults = store.read_by_type(PackCodeFaulted::TYPE).await?;
    let unconfined = faults
        .iter()
        .filter(|e| e.envelope.payload["confined"] == serde_json::Value::Bool(false))
        .count();
    let unconfined_runs = ops_core_runtime::faults::unconfined_runs(store).await?;
    writeln!(
        out,
        "pack code: {}; {} faults recorded{}",
        match unconfined_runs.last() {
            None => "runs in runners the kernel confines".to_owned(),
            Some((host, at)) => format!(
                "ran UNCONFINED (`--unjailed`) in {} host start(s), the last by {host} at {at}",
                unconfined_runs.len()
            ),
        },
        faults.len(),
        if unconfined > 0 {
            format!(", {unconfined} of them in unconfined runners")
        } else {
            String::new()
        }
    )?;
    // Each faulting piece once: how often, and its last fault with the receipt's id.
    let mut by_piece: std::collections::BTreeMap<String, (usize, String)> =
        std::collections::BTreeMap::new();
    for event in &faults {
        let payload = &event.envelope.payload;
        let piece = payload["piece"].as_str().unwrap_or_default().to_owned();
        let last = format!(
            "{} (receipt {})",
            payload["fault"].as_str().unwrap_or_default(),
            event.envelope.event_id
        );
        let entry = by_piece.entry(piece).or_default();
        *entry = (entry.0 + 1, last);
    }
    for (piece, (count, last)) in &by_piece {
        writeln!(out, "  FAULTED {piece}: {count} time(s); last: {last}")?;
    }
    for (piece, (pack, receipt)) in ops_core_runtime::faults::paused(store).await? {
        *healthy = false;
        writeln!(
            out,
            "  PAUSED {piece} of pack {pack} after {} faults in a row (receipt {receipt}); fix the pack, then `ops-host projections rebuild` or `ops-host quarantine retry \"{piece}\"` resumes it",
            ops_core_runtime::faults::PAUSE_AFTER
        )?;
    }
    Ok(())
}

impl StatusArgs {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let StatusArgs { storage } = self;
        block_on(async move {
            let services = storage.services(ctx, Open::Existing).await?;
            Ok(write_status(&services, &mut std::io::stdout().lock())
                .await?
                .into())
        })
    }
}
