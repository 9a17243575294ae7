//! The demo's second half: the runtime on the embedded default. Every installed pack's
//! migrations run in its name, every installed connector reads its sample source into a
//! SQLite event log, every installed projection catches up and shows its rows, and every
//! installed reaction answers what was ingested; the commands it proposes go through the
//! command bus, and their external effects through the egress gateway to a local webhook
//! endpoint standing in for the real destinations. It names no pack.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::webhook::WebhookSink;
use anyhow::Context;
use ops_core::capability::{Scope, Selector};
use ops_core::contract::Contract;
use ops_core::egress::EgressExecuted;
use ops_core::registry::Registry;
use ops_core_runtime::budget::Budgets;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::connector::{ConnectorOptions, ConnectorRunner, JsonLinesDirectory};
use ops_core_runtime::db::Db;
use ops_core_runtime::egress::pending_destinations;
use ops_core_runtime::migrate;
use ops_core_runtime::projection::ProjectionRunner;
use ops_core_runtime::query::QueryGateway;
use ops_core_runtime::reaction::ReactionRunner;
use ops_core_runtime::service_capability;
use ops_core_runtime::store::EventStore;

/// Rows shown per projection table.
const ROWS_SHOWN: usize = 8;

/// The service the demo records its own receipts as (releases, budgets, policies).
const DEMO_SERVICE: &str = "host.demo";

pub async fn run(
    registry: &'static Registry,
    data_dir: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    crate::services::create_data_directory(data_dir)?;
    let path = data_dir.join("ops.db");
    let db = Db::open_sqlite(&path).await?;
    // Personal data is sealed per subject from the first event on (keys next to the log).
    let store = EventStore::open(db.clone(), registry)
        .await?
        .with_pack_code(crate::jailing::check()?)
        .with_subject_keys(crate::services::subject_keys(data_dir)?);
    if !store.pack_code().confined() {
        ops_core_runtime::faults::record_unconfined(&store, "demo").await?;
        writeln!(out, "pack code runs UNCONFINED (`--unjailed`)")?;
    }
    // What the demo itself records (releases, budgets, policies) is on its own capability.
    let demo_capability = store.grant_service(DEMO_SERVICE).await?;
    crate::demo::story::supply_chain(&store, demo_capability, out).await?;
    writeln!(out, "\n== event log: SQLite at {}", path.display())?;
    for pack in registry.packs() {
        migrate::run_pack(&db, pack.id, pack.migrations).await?;
        writeln!(
            out,
            "pack {}: {} migration(s) applied in its name",
            pack.id,
            pack.migrations.len()
        )?;
    }

    writeln!(out, "\n== ingress connectors")?;
    for connector in ops_core::connector::installed(ops_core_runtime::CORE) {
        let Some(sample) = connector.sample() else {
            writeln!(
                out,
                "connector {}: no sample source, skipped",
                connector.id()
            )?;
            continue;
        };
        let reader = Box::new(JsonLinesDirectory::new(sample));
        let mut runner = ConnectorRunner::new(
            store.clone(),
            connector,
            reader,
            ConnectorOptions::default(),
        )?;
        for (stream, report) in runner.sync().await? {
            writeln!(
                out,
                "connector {}/{stream}: {} records, {} new events, {} already stored, {} tombstones, {} quarantined; cursor {}",
                connector.id(),
                report.records,
                report.appended,
                report.duplicates,
                report.deleted,
                report.quarantined,
                report
                    .cursor
                    .as_deref()
                    .map_or("-", ops_core_runtime::connector::cursor_place)
            )?;
            let origin = format!("connector:{}/{stream}", connector.id());
            for (location, reason, _) in store.quarantined(&origin).await? {
                writeln!(out, "  quarantined {location}: {reason}")?;
            }
        }
    }
    writeln!(out, "log holds {} events", store.count().await?)?;

    writeln!(out, "\n== reconciliation")?;
    for reconciler in ops_core::connector::reconcilers(ops_core_runtime::CORE) {
        let outcome = ops_core_runtime::reconcile::reconcile(&store, reconciler).await?;
        writeln!(
            out,
            "reconciler {}: {} new conflicts between sources, {} found before",
            reconciler.name(),
            outcome.appended.len(),
            outcome.duplicates.len()
        )?;
    }

    // The demo's fences and operators, as an operator declares them: written next to the
    // log and read back like any `ops.toml` (again once its destinations are known).
    let sink = WebhookSink::start().await?;
    let config_path = data_dir.join("ops.toml");
    let config = write_config(&config_path, &sink.url(), &[])?;
    writeln!(out, "\n== capabilities")?;
    let capabilities = Capabilities::load(store.clone())
        .await?
        .with_operators(config.operators()?);
    // The operator reads the projections through the query gateway, on a capability that
    // reveals the personal data of the types they fold.
    let folded: Vec<&str> = ops_core::projection::installed(ops_core_runtime::CORE)
        .into_iter()
        .flat_map(|projection| projection.event_types().iter().map(|t| t.name()))
        .collect();
    let reader = crate::demo::story::grant_once(
        &capabilities,
        "projections-reader",
        crate::demo::story::human(crate::demo::story::DEMO_OPERATOR)?,
        Scope {
            types: Selector::only(folded.iter().copied()),
            max_safety: ops_core::contract::SafetyClass::Read,
            sensitive: Selector::only(folded.iter().copied()),
            ..Scope::everything()
        },
        out,
    )
    .await?;
    let queries = QueryGateway::new(store.clone(), Arc::new(capabilities.clone()));

    writeln!(out, "\n== projections")?;
    for projection in ops_core::projection::installed(ops_core_runtime::CORE) {
        // A split projection's partitions, each with its own checkpoint.
        for mut runner in ProjectionRunner::start_all(store.clone(), projection).await? {
            let done = runner.catch_up().await?;
            let freshness = runner.freshness().await?;
            writeln!(
                out,
                "projection {}/{} v{}: {} events applied ({} this run), {} late, {} quarantined this run; lag {} ms (objective {} ms)",
                projection.pack_id(),
                freshness.name,
                projection.version(),
                freshness.applied_events,
                done.applied,
                freshness.late_events,
                done.quarantined,
                freshness.lag_ms,
                freshness.max_lag_ms
            )?;
        }
        let rows = queries
            .rows(
                projection,
                &crate::demo::story::human(crate::demo::story::DEMO_OPERATOR)?,
                reader,
            )
            .await?;
        let mut shown = std::collections::BTreeMap::<&str, usize>::new();
        for row in &rows {
            let count = shown.entry(&row.table).or_default();
            *count += 1;
            if *count <= ROWS_SHOWN {
                writeln!(out, "  {}/{} {}", row.table, row.key, row.document)?;
            }
        }
        writeln!(
            out,
            "  (read through the query gateway on {reader}, which reveals personal data; rows store it sealed)"
        )?;
    }
    reactions_and_egress(&store, &capabilities, &config_path, &sink, out).await?;
    crate::demo::story::delegation(&capabilities, out).await?;
    crate::demo::story::erasure(&store, &capabilities, out).await?;
    crate::demo::story::lineage(&store, &capabilities, out).await?;
    store.db().close().await;
    Ok(())
}

async fn reactions_and_egress(
    store: &EventStore,
    capabilities: &Capabilities,
    config_path: &Path,
    sink: &WebhookSink,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut reactors = std::collections::BTreeMap::new();
    for reaction in ops_core::reaction::installed(ops_core_runtime::CORE) {
        let pack = reaction.pack_id();
        // A pack's reactions may send its own commands, to any destination, for a year.
        let scope = Scope {
            types: Selector::only([format!("pack.{pack}.*").as_str()]),
            ..Scope::everything()
        };
        let capability = crate::demo::story::grant_once(
            capabilities,
            &format!("reactions/{pack}"),
            ops_core::reaction::reactor(pack),
            scope,
            out,
        )
        .await?;
        reactors.insert(pack, capability);
    }

    writeln!(out, "\n== reactions")?;
    let bus = CommandBus::new(store.clone(), Arc::new(capabilities.clone()))?;
    // Automation spends from a budget: every proposed command is a call, receipted.
    let limits = crate::worker::REACTION_BUDGET;
    let budgets =
        Arc::new(Budgets::open(store.clone(), limits, service_capability::of(DEMO_SERVICE)).await?);
    writeln!(
        out,
        "budget for reactions: {} calls a run, {} a day, {} a minute",
        limits.per_run.calls, limits.per_day.calls, limits.calls_per_minute
    )?;
    for reaction in ops_core::reaction::installed(ops_core_runtime::CORE) {
        let report = ReactionRunner::new(store.clone(), reaction, reactors[reaction.pack_id()])
            .with_budget(budgets.clone())
            .catch_up(&bus)
            .await?;
        writeln!(
            out,
            "reaction {}: {} -> {}: {} events, {} commands accepted, {} rejected, {} denied, {} decided before, {} quarantined{}",
            reaction.pack_id(),
            reaction.event_type(),
            reaction.command_type(),
            report.events,
            report.accepted,
            report.rejected,
            report.denied,
            report.replayed,
            report.quarantined,
            if report.stopped_by_budget {
                "; stopped by its budget"
            } else {
                ""
            }
        )?;
    }

    let approvals =
        crate::demo::story::governance(store, service_capability::of(DEMO_SERVICE), out).await?;

    writeln!(out, "\n== egress")?;
    let config = write_config(
        config_path,
        &sink.url(),
        &pending_destinations(store).await?,
    )?;
    writeln!(out, "fences read from {}:", config_path.display())?;
    for line in config.describe() {
        writeln!(out, "  {line}")?;
    }
    let dispatcher = config.dispatcher(
        store.clone(),
        "demo",
        vec![Box::new(approvals)],
        Arc::new(capabilities.clone()),
        &config.executors(&Default::default())?,
    );
    let report = dispatcher.dispatch(100).await?;
    writeln!(
        out,
        "dispatched: {} executed, {} refused, {} failed for now, {} given up",
        report.executed, report.refused, report.failed, report.gave_up
    )?;
    for (key, delivery) in sink.deliveries() {
        writeln!(
            out,
            "  webhook received key {key} ({} post(s)): {}",
            delivery.attempts,
            delivery.request.unwrap_or_default()
        )?;
    }
    for receipt in store.read_by_type(EgressExecuted::TYPE).await? {
        let executed: EgressExecuted = serde_json::from_value(receipt.envelope.payload)?;
        writeln!(
            out,
            "  receipt {}: {} to {} on capability {} ({}), approved by {:?}",
            receipt.envelope.event_id,
            executed.effect.command_id,
            executed.effect.destination,
            executed.effect.capability_id,
            executed.capability_state_ref,
            executed.approval
        )?;
    }
    crate::report::write_sagas(store, crate::cli::Format::Text, out).await?;
    Ok(())
}

/// Writes the demo's `ops.toml` (its operator, and `destinations` posted to `url`) and
/// reads it back as any host reads its configuration.
fn write_config(
    path: &Path,
    url: &str,
    destinations: &[String],
) -> anyhow::Result<crate::config::Config> {
    let mut text = format!(
        "# The demo's ops.toml. Its destinations post to the demo's own local endpoint,\n\
         # which lives only while the demo runs.\n\
         operators = [\"human:{}\"]\n\
         # The DEMO signing key: compiled into this binary, so anyone has it. Never list it\n\
         # in a deployment's ops.toml; make your own with `ops-host releases keygen`.\n\
         trusted_keys = [\"{}\"]\n\n[gateway]\nattempts = 3\n",
        crate::demo::story::DEMO_OPERATOR,
        crate::demo::story::demo_key_hex()
    );
    for destination in destinations {
        text.push_str(&format!(
            "\n[destinations.\"{destination}\"]\nurl = \"{url}\"\nquota = {{ effects = 100, per_seconds = 86400 }}\n"
        ));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    crate::config::Config::load(path)
}
