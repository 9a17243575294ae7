//! The command line: every verb and its arguments, as clap reads them. What each verb
//! does is in `commands`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ops_core::retention::RetentionPolicy;

#[derive(Parser)]
#[command(
    name = "ops-host",
    version,
    about = "Run business operations as code, safely"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// The destinations to post effects to, with their fences (`ops.toml`; `ops-host
        /// config check` reads one). Without it no destination is served: effects wait.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// How long a claimed effect, projection, reaction or connector stream is this
        /// worker's; after a crash, another worker (or this one restarted) takes it over
        /// once the lease ends. A worker that stops (Ctrl-C) releases its leases at once.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
        /// This worker's name in its leases and claims; unique among live workers
        /// (default: host name, process id and start time).
        #[arg(long)]
        worker_id: Option<String>,
        #[command(flatten)]
        storage: Storage,
    },
    /// External effects: list them, approve or cancel one (each receipted like any action).
    Effects {
        #[command(subcommand)]
        command: EffectsCommand,
    },
    /// What the runtime set aside because it could not read or apply it.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// The configuration file (`ops.toml`): destinations and their fences.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
pub(crate) struct Storage {
    #[arg(long, value_name = "DIR", default_value = "ops-data")]
    pub data: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; overrides `--data`.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// The PostgreSQL schema the store lives in (one per tenant), instead of the
    /// connection's default.
    #[arg(long, value_name = "NAME", requires = "database")]
    pub schema: Option<String>,
}

/// How a list prints: for people, or for scripts.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum EffectsCommand {
    /// Every external effect with its state and the steps it went through.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
    /// Approve a pending effect as `--by` (not its requester); exit 1 when refused.
    Approve {
        /// The command whose effect it is (`cmd_…`).
        command: String,
        /// `human:ID`, `service:ID` or `agent:ID`.
        #[arg(long)]
        by: String,
        /// An RFC 3339 time after which the approval no longer counts.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        storage: Storage,
    },
    /// Cancel a pending effect no dispatcher holds (one waiting out its hold, say): it is
    /// refused with a receipt naming `--by` and `--reason`; exit 1 when there is none.
    Cancel {
        command: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum QuarantineCommand {
    /// Every record set aside, with its origin, reference and reason.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Reads the file and prints what it declares, or what is wrong and where (exit 2).
    Check {
        #[arg(long, value_name = "FILE", default_value = "ops.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum PacksCommand {
    /// Tables, migrations and projections of packs that are no longer installed. They are
    /// kept: deleting data is an operator's decision.
    Orphaned {
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum ProjectionsCommand {
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
pub(crate) enum SagasCommand {
    /// Every saga with its effects, their current states and the steps they went through.
    List {
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum CapabilitiesCommand {
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
pub(crate) enum LogCommand {
    /// Events per type, and whether this build can read them as typed payloads.
    Types {
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum RegistryCommand {
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
