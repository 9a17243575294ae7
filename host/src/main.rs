//! `ops-host`: the binary that links the installed packs and runs the platform.

mod capabilities;
mod demo;
mod lineage;
mod releases;
mod retention;
mod runtime_demo;
mod sagas;
mod status;
mod story_demo;
mod worker;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ops_core::registry::Registry;
use ops_core::retention::RetentionPolicy;
use ops_core_runtime::db::Db;
use ops_core_runtime::store::EventStore;

include!(concat!(env!("OUT_DIR"), "/installed_packs.rs"));

#[derive(Parser)]
#[command(
    name = "ops-host",
    version,
    about = "Run business operations as code, safely"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the end-to-end demo on the embedded default (SQLite in `--data`).
    Demo {
        /// Where the demo's SQLite event log lives; running again reuses it, so the
        /// second run shows every event as already stored.
        #[arg(long, value_name = "DIR", default_value = "ops-data")]
        data: PathBuf,
    },
    /// Inspect the type registry of the installed packs.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// What packs are installed, and what uninstalled ones left behind.
    Packs {
        #[command(subcommand)]
        command: PacksCommand,
    },
    /// Installed projections: freshness, and rebuilding one from the log.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Sagas (the external effects of one correlation) and where each effect is in its
    /// life: pending, approved, dispatched, executed, refused or failed, compensated.
    Sagas {
        #[command(subcommand)]
        command: SagasCommand,
    },
    /// Capabilities as of a time, and whether one allowed an action then (for audits).
    Capabilities {
        #[command(subcommand)]
        command: CapabilitiesCommand,
    },
    /// What needs attention: projections over their freshness objective, failed sagas.
    /// Exit 1 when there is any.
    Status {
        #[command(flatten)]
        storage: Storage,
    },
    /// A consistent copy of the database in one new file: SQLite's database file, or
    /// pg_dump's SQL script of a PostgreSQL database. Personal data stays sealed in it and
    /// subject keys are not in it, so an erased subject stays erased in old backups.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        storage: Storage,
    },
    /// Run as a worker: each tick, queue what is due (dispatch: interactive; connectors,
    /// projections, reactions: background; capability expiry, retention: batch) and run
    /// it in the scheduler's order. Stopping it at any point loses nothing.
    Run {
        /// Stop after this many ticks (default: run until killed).
        #[arg(long)]
        ticks: Option<u64>,
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Jobs run per tick; the rest wait, and age.
        #[arg(long, default_value_t = 4)]
        jobs_per_tick: usize,
        /// Ticks of waiting that raise a job one lane.
        #[arg(long, default_value_t = 3)]
        aging: u64,
        /// Apply the default retention policy every this many ticks.
        #[arg(long, default_value_t = 3600)]
        retention_every: u64,
        /// `CONNECTOR=DIR`: read that connector's JSON-lines source from DIR.
        #[arg(long = "source", value_name = "CONNECTOR=DIR")]
        sources: Vec<String>,
        /// `DESTINATION=URL`: post that destination's effects to URL.
        #[arg(long = "webhook", value_name = "DESTINATION=URL")]
        webhooks: Vec<String>,
        /// How long a claimed effect is this worker's; after a crash, another worker (or
        /// this one restarted) takes it over once the lease ends.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
        #[command(flatten)]
        storage: Storage,
    },
    /// Whether each installed pack, contract module and tool is the active, signed release
    /// of its artifact. Exit 1 when one is not.
    Releases {
        #[command(flatten)]
        storage: Storage,
    },
    /// Apply the retention policy (Section 11): old artifact bodies, idle projections of
    /// uninstalled packs and the outbox rows of finished sagas are removed, each class
    /// with a `RetentionApplied` receipt. Events, receipts included, are never removed.
    Retention {
        #[arg(long, default_value_t = RetentionPolicy::default().artifacts_days)]
        artifacts_days: u32,
        #[arg(long, default_value_t = RetentionPolicy::default().projections_days)]
        projections_days: u32,
        #[arg(long, default_value_t = RetentionPolicy::default().receipts_days)]
        receipts_days: u32,
        /// Who applies it: `human:ID`, `service:ID` or `agent:ID`.
        #[arg(long, default_value = "service:ops-host")]
        actor: String,
        #[command(flatten)]
        storage: Storage,
    },
    /// An artifact's lineage: what it was computed from, back to the source events.
    Lineage {
        /// `cid_…`
        artifact_id: String,
        #[command(flatten)]
        storage: Storage,
    },
    /// Inspect the event log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

/// Which database: the demo's SQLite file under `--data`, or `--database URL`.
#[derive(clap::Args)]
struct Storage {
    #[arg(long, value_name = "DIR", default_value = "ops-data")]
    data: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; overrides `--data`.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

impl Storage {
    /// The store, which must exist: inspecting commands never create one.
    async fn store(&self, registry: &'static Registry) -> anyhow::Result<EventStore> {
        self.open(registry, false).await
    }

    /// The store, created under `--data` if missing, with every installed pack's
    /// migrations run: for commands that do the work.
    async fn working_store(&self, registry: &'static Registry) -> anyhow::Result<EventStore> {
        let store = self.open(registry, true).await?;
        for pack in registry.packs() {
            ops_core_runtime::migrate::run_pack(store.db(), pack.id, pack.migrations).await?;
        }
        Ok(store)
    }

    async fn open(&self, registry: &'static Registry, create: bool) -> anyhow::Result<EventStore> {
        let db = match &self.database {
            Some(url) => Db::connect(url).await?,
            None => {
                let path = self.data.join("ops.db");
                if create {
                    std::fs::create_dir_all(&self.data).with_context(|| {
                        format!("creating the data directory {}", self.data.display())
                    })?;
                } else if !path.exists() {
                    anyhow::bail!(
                        "there is no event log at {}; run `ops-host demo --data {}` first, or pass `--database URL`",
                        path.display(),
                        self.data.display()
                    );
                }
                Db::open_sqlite(&path).await?
            }
        };
        Ok(EventStore::open(db, registry).await?)
    }
}

#[derive(Subcommand)]
enum PacksCommand {
    /// Tables, migrations and projections of packs that are no longer installed. They are
    /// kept: deleting data is an operator's decision.
    Orphaned {
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Where each projection is against the log head, and whether it meets its objective.
    Status {
        #[command(flatten)]
        storage: Storage,
    },
    /// Drops a projection's rows and replays the log into it: `<pack>/<name>`.
    Rebuild {
        projection: String,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
enum SagasCommand {
    /// Every saga with its effects, their current states and the steps they went through.
    List {
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
enum CapabilitiesCommand {
    /// Every capability as it stood at `--at` (default: now).
    List {
        /// An RFC 3339 time, e.g. 2026-11-26T09:00:00Z.
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        storage: Storage,
    },
    /// Whether `--capability` allowed an action at `--at`; exit 1 when it did not.
    Check {
        #[arg(long)]
        capability: String,
        /// `human:ID`, `service:ID` or `agent:ID`.
        #[arg(long)]
        actor: String,
        /// The command or event type.
        #[arg(long = "type")]
        type_name: String,
        /// read, write_internal or write_external.
        #[arg(long, default_value = "read")]
        safety: String,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        destination: Option<String>,
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Events per type, and whether this build can read them as typed payloads.
    Types {
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Write `DIR/registry.json` and `DIR/schemas/<type>@v<N>.json`.
    Export {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Read stored payloads as the current version of their type, through every upcaster.
    ///
    /// FILE holds a JSON array of `{"type": NAME, "version": N, "payload": {...}}`; the
    /// answer is one JSON array, in the same order, of `{"version": N, "payload": {...}}`
    /// or `{"error": "..."}`.
    Upcast {
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
}

/// `KEY=VALUE` arguments of `flag`, by key.
fn pairs(
    flag: &str,
    values: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    values
        .iter()
        .map(|value| {
            value
                .split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .with_context(|| format!("{flag} `{value}`: expected KEY=VALUE"))
        })
        .collect()
}

fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

#[derive(serde::Deserialize)]
struct StoredPayload {
    #[serde(rename = "type")]
    type_name: String,
    version: u32,
    payload: serde_json::Value,
}

fn upcast_all(registry: &Registry, input: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let stored: Vec<StoredPayload> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected an array of stored payloads", input.display()))?;
    let answers: Vec<serde_json::Value> = stored
        .into_iter()
        .map(|stored| {
            let name = registry
                .current_name(&stored.type_name)
                .unwrap_or(&stored.type_name);
            // A panicking upcaster is a finding about that payload, not the end of the run.
            let upcast = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                registry.upcast_to_latest(name, stored.version, stored.payload)
            }));
            match upcast {
                Ok(Ok((version, payload))) => {
                    serde_json::json!({"version": version, "payload": payload})
                }
                Ok(Err(error)) => serde_json::json!({"error": error.to_string()}),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    serde_json::json!({"error": format!("the upcaster panicked: {message}")})
                }
            }
        })
        .collect();
    println!("{}", serde_json::to_string(&answers)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let registry = ops_core::registry::registry().map_err(|error| anyhow::anyhow!("{error}"))?;
    match Cli::parse().command {
        Command::Demo { data } => {
            let mut out = std::io::stdout().lock();
            demo::run(registry, INSTALLED_PACKS, &mut out)?;
            block_on(runtime_demo::run(registry, &data, &mut out))
        }
        Command::Registry {
            command: RegistryCommand::Export { out },
        } => {
            let export = ops_registry::document::Export::of(registry)?;
            export
                .write_to(&out)
                .with_context(|| format!("exporting the registry to {}", out.display()))?;
            println!(
                "wrote {} and {} schemas",
                out.join("registry.json").display(),
                export.schemas.len()
            );
            Ok(())
        }
        Command::Registry {
            command: RegistryCommand::Upcast { input },
        } => upcast_all(registry, &input),
        Command::Packs {
            command: PacksCommand::Orphaned { storage },
        } => block_on(async {
            let store = storage.store(registry).await?;
            let installed: Vec<&str> = registry.packs().map(|pack| pack.id).collect();
            let orphans = ops_core_runtime::migrate::orphans(store.db(), &installed).await?;
            for table in &orphans.tables {
                println!("table {table}");
            }
            for owner in &orphans.migration_owners {
                println!("migrations {owner}");
            }
            for projection in &orphans.projections {
                println!("projection {projection}");
            }
            if orphans == Default::default() {
                println!("nothing orphaned");
            }
            Ok(())
        }),
        Command::Projections {
            command: ProjectionsCommand::Status { storage },
        } => block_on(async {
            let store = storage.store(registry).await?;
            for status in ops_core_runtime::projection::all_freshness(&store).await? {
                println!(
                    "{}/{} v{}: lag {} ms of {} ms allowed ({}), {} applied, {} late, {} rebuilds",
                    status.owner,
                    status.name,
                    status.version,
                    status.lag_ms,
                    status.max_lag_ms,
                    if status.within_objective {
                        "fresh"
                    } else {
                        "STALE"
                    },
                    status.applied_events,
                    status.late_events,
                    status.rebuilds
                );
            }
            Ok(())
        }),
        Command::Projections {
            command:
                ProjectionsCommand::Rebuild {
                    projection,
                    storage,
                },
        } => block_on(async {
            let Some(found) = ops_core::projection::installed()
                .into_iter()
                .find(|p| format!("{}/{}", p.pack_id(), p.name()) == projection)
            else {
                anyhow::bail!(
                    "no installed projection `{projection}`; `ops-host projections status` lists them"
                );
            };
            let store = storage.store(registry).await?;
            let mut runner =
                ops_core_runtime::projection::ProjectionRunner::start(store, found).await?;
            runner.rebuild().await?;
            println!("rebuilt {projection}: {} rows", runner.state().rows().len());
            Ok(())
        }),
        Command::Sagas {
            command: SagasCommand::List { storage },
        } => block_on(async {
            let store = storage.store(registry).await?;
            sagas::write_sagas(&store, &mut std::io::stdout().lock()).await
        }),
        Command::Capabilities {
            command: CapabilitiesCommand::List { at, storage },
        } => block_on(async {
            let store = storage.store(registry).await?;
            capabilities::list(&store, at.as_deref(), &mut std::io::stdout().lock()).await
        }),
        Command::Capabilities {
            command:
                CapabilitiesCommand::Check {
                    capability,
                    actor,
                    type_name,
                    safety,
                    tenant,
                    destination,
                    at,
                    storage,
                },
        } => block_on(async {
            let store = storage.store(registry).await?;
            let request = capabilities::CheckRequest {
                capability: &capability,
                actor: &actor,
                type_name: &type_name,
                safety: &safety,
                tenant: tenant.as_deref(),
                destination: destination.as_deref(),
                at: at.as_deref(),
            };
            if capabilities::check(&store, request, &mut std::io::stdout().lock()).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }),
        Command::Backup { out, storage } => block_on(async {
            let store = storage.store(registry).await?;
            store.db().backup_to(&out).await?;
            println!("backed up to {}", out.display());
            Ok(())
        }),
        Command::Run {
            ticks,
            interval_ms,
            jobs_per_tick,
            aging,
            retention_every,
            sources,
            webhooks,
            lease_ms,
            storage,
        } => block_on(async {
            let options = worker::WorkerOptions {
                ticks,
                interval: std::time::Duration::from_millis(interval_ms),
                jobs_per_tick,
                aging,
                retention_every,
                retention: RetentionPolicy::default(),
                sources: pairs("--source", &sources)?
                    .into_iter()
                    .map(|(id, dir)| (id, PathBuf::from(dir)))
                    .collect(),
                webhooks: pairs("--webhook", &webhooks)?,
                lease: std::time::Duration::from_millis(lease_ms),
            };
            let store = storage.working_store(registry).await?;
            worker::run(store, options, &mut std::io::stdout().lock()).await
        }),
        Command::Releases { storage } => block_on(async {
            let store = storage.store(registry).await?;
            if releases::verify(&store, registry, &mut std::io::stdout().lock()).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }),
        Command::Retention {
            artifacts_days,
            projections_days,
            receipts_days,
            actor,
            storage,
        } => block_on(async {
            let policy = RetentionPolicy {
                artifacts_days,
                projections_days,
                receipts_days,
            };
            let actor = capabilities::parse_actor(&actor)?;
            let store = storage.store(registry).await?;
            let installed: Vec<&str> = registry.packs().map(|pack| pack.id).collect();
            retention::apply(
                &store,
                &policy,
                &installed,
                &actor,
                &mut std::io::stdout().lock(),
            )
            .await
        }),
        Command::Lineage {
            artifact_id,
            storage,
        } => block_on(async {
            let store = storage.store(registry).await?;
            lineage::write_chain(&store, &artifact_id, &mut std::io::stdout().lock()).await
        }),
        Command::Status { storage } => block_on(async {
            let store = storage.store(registry).await?;
            if status::write_status(&store, &mut std::io::stdout().lock()).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }),
        Command::Log {
            command: LogCommand::Types { storage },
        } => block_on(async {
            let store = storage.store(registry).await?;
            for (event_type, count) in store.count_by_type().await? {
                let readable = if registry.current_name(&event_type).is_some() {
                    "typed"
                } else {
                    "raw envelope (type not installed)"
                };
                println!("{event_type} {count} {readable}");
            }
            Ok(())
        }),
    }
}
