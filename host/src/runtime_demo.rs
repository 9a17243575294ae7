//! The demo's second half: the runtime on the embedded default. Every installed pack's
//! migrations run in its name, every installed connector reads its sample source into a
//! SQLite event log, and every installed projection catches up and shows its rows. It
//! names no pack.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ops_core::registry::Registry;
use ops_core_runtime::connector::{ConnectorOptions, ConnectorRunner, JsonLinesDirectory};
use ops_core_runtime::db::Db;
use ops_core_runtime::migrate;
use ops_core_runtime::projection::ProjectionRunner;
use ops_core_runtime::store::EventStore;

/// Rows shown per projection table.
const ROWS_SHOWN: usize = 8;

pub async fn run(
    registry: &'static Registry,
    data_dir: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let path = data_dir.join("ops.db");
    let db = Db::open_sqlite(&path).await?;
    let store = EventStore::open(db.clone(), registry).await?;
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
    for connector in ops_core::connector::installed() {
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
                report.cursor.as_deref().unwrap_or("-")
            )?;
            let origin = format!("connector:{}/{stream}", connector.id());
            for (location, reason, _) in store.quarantined(&origin).await? {
                writeln!(out, "  quarantined {location}: {reason}")?;
            }
        }
    }
    writeln!(out, "log holds {} events", store.count().await?)?;

    writeln!(out, "\n== projections")?;
    for projection in ops_core::projection::installed() {
        let mut runner = ProjectionRunner::start(store.clone(), projection).await?;
        let done = runner.catch_up().await?;
        let freshness = runner.freshness().await?;
        writeln!(
            out,
            "projection {}/{} v{}: {} events applied ({} this run), {} late, {} quarantined this run; lag {} ms (objective {} ms)",
            projection.pack_id(),
            projection.name(),
            projection.version(),
            freshness.applied_events,
            done.applied,
            freshness.late_events,
            done.quarantined,
            freshness.lag_ms,
            freshness.max_lag_ms
        )?;
        let mut shown = std::collections::BTreeMap::<&str, usize>::new();
        for ((table, key), document) in runner.state().rows() {
            let count = shown.entry(table).or_default();
            *count += 1;
            if *count <= ROWS_SHOWN {
                writeln!(out, "  {table}/{key} {document}")?;
            }
        }
    }
    store.db().close().await;
    Ok(())
}
