//! The command line: every verb and its arguments, as clap reads them. What each verb
//! does is in its module of `verbs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ops_core::retention::RetentionPolicy;

/// The longest tick interval and lease, in milliseconds: a day. Longer ones are refused, not
/// wrapped.
const DAY_MS: u64 = 86_400_000;

#[derive(Parser)]
#[command(
    name = "ops-host",
    version,
    about = "Run business operations as code, safely"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Run pack code in runners the kernel does not confine (no system-call filter, no
    /// memory limit), where it cannot: `status` and every fault receipt say so.
    #[arg(long, global = true)]
    pub unjailed: bool,
    /// `enforce`: every verb that runs pack code (`run`, `connectors sync`, `commands
    /// submit`, `projections rebuild`, `reconcile`, `quarantine retry`, `sagas unwind`)
    /// refuses while a pack, contract module or tool this binary links is not the active,
    /// signed release (`ops-host releases list`); `warn`: says so and runs.
    #[arg(long, global = true, value_enum, default_value = "enforce")]
    pub releases: ReleaseMode,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the end-to-end demo on the embedded default (SQLite in `--data`).
    Demo(DemoArgs),
    /// Inspect the type registry of the installed packs.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// What packs are installed, and what uninstalled ones left behind.
    #[command(subcommand)]
    Packs(PacksCommand),
    /// Installed projections: freshness, and rebuilding one from the log.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Sagas (the external effects of one correlation) and where each effect is in its
    /// life: pending, approved, dispatched, executed, refused or failed, compensated.
    #[command(subcommand)]
    Sagas(SagasCommand),
    /// Capabilities as of a time, and whether one allowed an action then (for audits).
    #[command(subcommand)]
    Capabilities(CapabilitiesCommand),
    /// What needs attention: projections over their freshness objective, failed sagas.
    /// Exit 1 when there is any.
    Status(StatusArgs),
    /// A consistent copy of the database in one new file: SQLite's database file, or
    /// pg_dump's SQL script of a PostgreSQL database. Personal data stays sealed in it and
    /// subject keys are not in it, so an erased subject stays erased in old backups.
    Backup(BackupArgs),
    /// Run as a worker: each tick, queue what is due (dispatch: interactive; connectors,
    /// projections, reactions: background; capability expiry, retention: batch) and run
    /// it in the scheduler's order. Stopping it at any point loses nothing.
    Run(RunArgs),
    /// Commands: submit one to its pack's handler, checked and receipted like any other.
    #[command(subcommand)]
    Commands(CommandsCommand),
    /// Data subjects: the ones whose personal data the log holds sealed, and erasing one.
    #[command(subcommand)]
    Subjects(SubjectsCommand),
    /// Approval policies: draft, simulate, approve, evaluate, activate, deprecate, roll
    /// back, list.
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Secrets: store a value, list the handles issued, revoke one (each checked and
    /// receipted; no receipt holds a value).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// External effects: list them, approve or cancel one (each receipted like any action).
    #[command(subcommand)]
    Effects(EffectsCommand),
    /// What the runtime set aside because it could not read or apply it.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// The configuration file (`ops.toml`): destinations and their fences.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Releases of what this binary links: list (exit 1 when one is not active), activate,
    /// and make a signing key.
    #[command(subcommand)]
    Releases(ReleasesCommand),
    /// Apply the retention policy (Section 11): old artifact bodies, idle projections of
    /// uninstalled packs and the outbox rows of finished sagas are removed, each class
    /// with a `RetentionApplied` receipt. Events, receipts included, are never removed.
    Retention(RetentionArgs),
    /// An artifact's lineage: what it was computed from, back to the source events;
    /// recording a derived artifact, and feedback on one.
    Lineage(LineageArgs),
    /// Installed connectors: read one's source now (a backfill), with its progress.
    #[command(subcommand)]
    Connectors(ConnectorsCommand),
    /// Runs every installed reconciler now: facts of different sources about one subject
    /// that disagree become `SourceFactsConflicted` events (once each); prints them.
    Reconcile(ReconcileArgs),
    /// Inspect the event log.
    #[command(subcommand)]
    Log(LogCommand),
}

/// `ops-host demo`: see [`Command::Demo`].
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the demo's SQLite event log lives; running again reuses it, so the
    /// second run shows every event as already stored.
    #[arg(long, value_name = "DIR", default_value = "ops-data")]
    pub data: PathBuf,
}

/// `ops-host status`: see [`Command::Status`].
#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub storage: Storage,
}

/// `ops-host backup`: see [`Command::Backup`].
#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub storage: Storage,
}

/// `ops-host run`: see [`Command::Run`].
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Stop after this many ticks (default: run until killed).
    #[arg(long)]
    pub ticks: Option<u64>,
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub interval_ms: u64,
    /// Jobs run per tick; the rest wait, and age.
    #[arg(long, default_value_t = 4)]
    pub jobs_per_tick: usize,
    /// Batches (of 500 events) a projection's catch-up runs before the worker looks for
    /// interactive work that preempts it.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub slice_batches: u32,
    /// Ticks of waiting that raise a job one lane.
    #[arg(long, default_value_t = 3)]
    pub aging: u64,
    /// Apply the default retention policy every this many ticks.
    #[arg(long, default_value_t = 3600)]
    pub retention_every: u64,
    /// Run every installed reconciler (conflicting facts of different sources) every
    /// this many ticks.
    #[arg(long, default_value_t = 60)]
    pub reconcile_every: u64,
    /// `CONNECTOR=DIR`: read that connector's JSON-lines source from DIR.
    #[arg(long = "source", value_name = "CONNECTOR=DIR")]
    pub sources: Vec<String>,
    /// How long a claimed effect, projection, reaction or connector stream is this
    /// worker's; after a crash, another worker (or this one restarted) takes it over
    /// once the lease ends. A worker that stops (Ctrl-C) releases its leases at once.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(10..=DAY_MS))]
    pub lease_ms: u64,
    /// This worker's name in its leases and claims; unique among live workers
    /// (default: host name, process id and start time).
    #[arg(long)]
    pub worker_id: Option<String>,
    #[command(flatten)]
    pub storage: Storage,
}

/// `ops-host retention`: see [`Command::Retention`].
#[derive(clap::Args)]
pub(crate) struct RetentionArgs {
    #[arg(long, default_value_t = RetentionPolicy::default().artifacts_days)]
    pub artifacts_days: u32,
    #[arg(long, default_value_t = RetentionPolicy::default().projections_days)]
    pub projections_days: u32,
    #[arg(long, default_value_t = RetentionPolicy::default().receipts_days)]
    pub receipts_days: u32,
    /// Who applies it, on which capability: it must allow recording
    /// `core.RetentionApplied` (a denial is receipted and removes nothing, exit 1).
    #[command(flatten)]
    pub acting: Acting,
    #[command(flatten)]
    pub storage: Storage,
}

/// `ops-host lineage`: see [`Command::Lineage`].
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct LineageArgs {
    #[command(subcommand)]
    pub command: Option<LineageCommand>,
    /// `cid_…`: its chain back to the source events.
    pub artifact_id: Option<String>,
    #[command(flatten)]
    pub storage: Storage,
}

#[derive(Subcommand)]
pub(crate) enum LineageCommand {
    /// Records a derived artifact: `--output FILE` computed by `--policy-version` from the
    /// stored events (`evt_…`) and recorded artifacts (`cid_…`) `--from` names; each
    /// input's hash and the output's are computed here. On `--capability`, which must cover
    /// `core.ArtifactRecorded`; prints its id.
    Derive {
        #[arg(long = "from", value_delimiter = ',', required = true)]
        inputs: Vec<String>,
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        #[arg(long)]
        policy_version: String,
        /// `NAME=VERSION` of a tool or model it was computed with.
        #[arg(long = "tool", value_name = "NAME=VERSION")]
        tools: Vec<String>,
        /// The eval (`cid_…`) that vouches for it, if one does.
        #[arg(long)]
        eval: Option<String>,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
    /// Records what someone did with an artifact: `--kind accepted|rejected|edited|
    /// overridden|snoozed`, on `--capability`, which must cover `core.FeedbackGiven`.
    Feedback {
        artifact_id: String,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
}

/// `ops-host reconcile`: see [`Command::Reconcile`].
#[derive(clap::Args)]
pub(crate) struct ReconcileArgs {
    /// Who runs them, on which capability: it must cover `core.reconcile.Run`.
    #[command(flatten)]
    pub acting: Acting,
    #[command(flatten)]
    pub storage: Storage,
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
    /// Where the subject keys live (`subject-keys.json`, sealed with `secrets.key`), which
    /// seal personal data per data subject: by default the data directory, for the
    /// embedded store; a `--database` store seals with them only when this is given. A
    /// working command creates them; others use them where `secrets.key` is.
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// The configuration (`ops.toml`: operators, destinations and their fences, secrets,
    /// pack limits; `ops-host config check FILE` reads one): this file, else `ops.toml` in
    /// the data directory of an embedded store when there is one, else the defaults
    /// (nobody is an operator, no destination is served).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Whether verbs that run pack code require what the binary links to be the active releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReleaseMode {
    Enforce,
    Warn,
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
    /// Approve a pending effect as `--by` (not its requester) on `--capability`, which
    /// must allow the effect itself; exit 1 when refused.
    Approve {
        /// The command whose effect it is (`cmd_…`).
        command: String,
        #[command(flatten)]
        acting: Acting,
        /// An RFC 3339 time after which the approval no longer counts.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        storage: Storage,
    },
    /// Cancel a pending effect no dispatcher holds (one waiting out its hold or for an
    /// approval): it is refused with a receipt naming `--by` and `--reason`, on
    /// `--capability`, which must allow the effect; exit 1 when refused or there is none.
    Cancel {
        command: String,
        #[command(flatten)]
        acting: Acting,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum CommandsCommand {
    /// Submits a command of an installed type (`pack.<id>.<module>.<Name>`) as `--by` on
    /// `--capability`; prints its receipt. Submitting it again returns the first outcome.
    /// Exit 1 when it is rejected or denied.
    Submit {
        #[arg(value_name = "TYPE")]
        command_type: String,
        /// The payload, a JSON object; `@FILE` reads it from a file.
        #[arg(long)]
        payload: String,
        /// What it acts on (an aggregate, such as `incident/INC-7`); by default, what its
        /// payload names. One that disagrees with the payload is refused.
        #[arg(long)]
        target: Option<String>,
        /// For external effects: where it goes, and for which tenant.
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Refuse it when the target is no longer at this version.
        #[arg(long)]
        expect_version: Option<i64>,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum PoliciesCommand {
    /// Every policy version with its state.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
    /// Drafts a version from a JSON definition (`policy_id`, `version`, `owner_pack`,
    /// `description`, `rule`, `pins`); a pack's policy may approve only its own commands.
    Draft {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        step: PolicyStep,
    },
    /// Replays the recorded external effects against a drafted version.
    Simulate {
        policy: String,
        version: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        step: PolicyStep,
    },
    /// Approves a simulated version; not by its author.
    Approve {
        policy: String,
        version: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        step: PolicyStep,
    },
    /// Evaluates a simulated version and records the eval the platform computes from its
    /// simulation (the share of recorded decisions it leaves unchanged, against
    /// `--unchanged-at-least`); prints its id (`cid_…`) for `activate`. Exit 1 when it
    /// fails its threshold (it is recorded all the same).
    Eval {
        policy: String,
        version: String,
        #[arg(long, default_value_t = 0.9)]
        unchanged_at_least: f64,
        /// Where it was run, as the eval records it.
        #[arg(long, default_value = "ops-host")]
        environment: String,
        #[command(flatten)]
        step: PolicyStep,
    },
    /// Activates an approved version on a passing eval (`cid_…`, from `eval`) and a
    /// signature of its content id by a key `trusted_keys` lists: made here with
    /// `--key-file` (from `releases keygen`), or given as `--signature` and `--signer` (hex).
    Activate {
        policy: String,
        version: String,
        #[arg(long)]
        eval: String,
        #[arg(long, value_name = "FILE", required_unless_present = "signature")]
        key_file: Option<PathBuf>,
        #[arg(long, requires = "signer", conflicts_with = "key_file")]
        signature: Option<String>,
        #[arg(long, requires = "signature")]
        signer: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        step: PolicyStep,
    },
    Deprecate {
        policy: String,
        version: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        step: PolicyStep,
    },
    /// Makes an earlier, once active version the active one again.
    Rollback {
        policy: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        step: PolicyStep,
    },
}

/// Who takes a policy step, on which capability, against which store.
#[derive(clap::Args)]
pub(crate) struct PolicyStep {
    #[arg(long)]
    pub by: String,
    /// The capability the step is checked on: it must cover the event type the step
    /// records (`core.PolicyDrafted`, `core.PolicyPromoted`, …).
    #[arg(long)]
    pub capability: String,
    #[command(flatten)]
    pub action: ActionKey,
    #[command(flatten)]
    pub storage: Storage,
}

impl PoliciesCommand {
    /// The store and configuration every step reads, and the capability a step (not a
    /// list) is checked on.
    pub fn place(&self) -> (&Storage, Option<&str>) {
        match self {
            PoliciesCommand::List { storage, .. } => (storage, None),
            PoliciesCommand::Draft { step, .. }
            | PoliciesCommand::Simulate { step, .. }
            | PoliciesCommand::Eval { step, .. }
            | PoliciesCommand::Approve { step, .. }
            | PoliciesCommand::Activate { step, .. }
            | PoliciesCommand::Deprecate { step, .. }
            | PoliciesCommand::Rollback { step, .. } => (&step.storage, Some(&step.capability)),
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum ReleasesCommand {
    /// Whether each installed pack (its code, manifest, migrations and schemas), contract
    /// module and tool is the active, signed release of its artifact. Exit 1 when one is
    /// not: `ops-host run` refuses to start then, in enforce mode.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
    /// Signs every installed release that is not active with `--key-file` (a key listed
    /// in `trusted_keys`), records and activates it, as `--by` on `--capability` (which
    /// must cover `core.ReleaseRecorded` and `core.ReleaseActivated`).
    Activate {
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
    /// Makes a new Ed25519 signing key in `--out` (owner-only) and prints its public half,
    /// for `trusted_keys`.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum SecretsCommand {
    /// Stores (or replaces) a secret's value, read from `--value-file` (`-`: standard
    /// input), on `--capability`, which must cover `core.secrets.Store`.
    Put {
        secret: String,
        #[arg(long, value_name = "FILE")]
        value_file: PathBuf,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
    /// Every handle issued, with its secret and whether it still holds.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
    /// Revokes a handle (`hnd_…`) and every token issued from it, on `--capability`, which
    /// must cover `core.secrets.Issue`.
    Revoke {
        handle: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum SubjectsCommand {
    /// The data subjects whose personal data the log holds sealed, and whether each is
    /// erased.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
    /// Erases a subject: its key is destroyed, so every sealed field of it reads
    /// `[shredded]` everywhere, and a `RedactionApplied` receipt names the fields. The log
    /// is not rewritten.
    Erase {
        subject: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConnectorsCommand {
    /// Reads every stream of connector `ID` from its stored cursor to the end of its
    /// JSON-lines source in `--source DIR`, as a worker's connector job does (under the
    /// stream's lease), showing the records read as it goes. As `--by` on `--capability`,
    /// which must cover `core.connectors.Sync`.
    Sync {
        id: String,
        #[arg(long, value_name = "DIR")]
        source: PathBuf,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
    /// Moves the cursor of connector `ID`'s `STREAM` to `--to CURSOR` (`<file>:<line>`:
    /// its next sync reads after that line) or `--to-start`, with a `SourceCursorReset`
    /// receipt: when the source changed under the cursor (a sync stops and says so), or to
    /// read again. Checked on `--capability`; a denial is receipted and moves nothing (exit 1).
    Reset {
        id: String,
        stream: String,
        #[arg(long, value_name = "CURSOR", required_unless_present = "to_start")]
        to: Option<String>,
        #[arg(long, conflicts_with = "to")]
        to_start: bool,
        /// Why, for the receipt.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        acting: Acting,
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
    /// Reads a connector stream's quarantined records again (`connector:<id>/<stream>`),
    /// with this build's connector: each one it now reads is stored and released from the
    /// quarantine in one transaction; the others stay, with why. Exit 1 when some stay.
    /// As `--by` on `--capability`, which must cover `core.quarantine.Retry`.
    Retry {
        origin: String,
        #[command(flatten)]
        acting: Acting,
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
    /// Drops a projection's rows and replays the log into it: `<pack>/<name>`, as `--by`
    /// on `--capability`, which must cover `core.projections.Rebuild` (a denial is
    /// receipted and rebuilds nothing, exit 1).
    Rebuild {
        projection: String,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand)]
pub(crate) enum SagasCommand {
    /// Every saga with its effects, their current states and the steps they went through.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
    /// Compensates the executed effects of every saga in which an effect was refused or
    /// failed, each compensation a command decided and receipted like any other, on
    /// `--capability`. Running it again finds nothing new to undo.
    Unwind {
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
}

/// Who does an action, and on which capability (`cap_…`) it is checked.
#[derive(clap::Args)]
pub(crate) struct Acting {
    /// `human:ID`, `service:ID` or `agent:ID`.
    #[arg(long)]
    pub by: String,
    #[arg(long, value_name = "CAPABILITY")]
    pub capability: String,
    #[command(flatten)]
    pub action: ActionKey,
}

/// The action a verb that records something is part of.
#[derive(clap::Args)]
pub(crate) struct ActionKey {
    /// A key naming this action (letters, digits, `.`, `_`, `:`, `-`): run the verb again
    /// with the same key (a retry after a crash or a timeout) and every receipt it records is
    /// the one already stored, with the same id and time. Default: a new action each run.
    #[arg(long = "action", value_name = "KEY")]
    pub key: Option<String>,
}

/// What a granted or delegated capability reaches, and for how long.
#[derive(clap::Args)]
pub(crate) struct ScopeArgs {
    /// Command and event types, comma-separated; `pack.incidents.*` covers a prefix.
    #[arg(long, value_delimiter = ',', required = true)]
    pub types: Vec<String>,
    /// The highest safety class allowed: read, write_internal or write_external.
    #[arg(long, default_value = "read")]
    pub max_safety: String,
    /// Tenants, comma-separated (default: every tenant).
    #[arg(long, value_delimiter = ',')]
    pub tenants: Vec<String>,
    /// Destinations, comma-separated (default: every destination).
    #[arg(long, value_delimiter = ',')]
    pub destinations: Vec<String>,
    /// Types whose sensitive fields reads on it reveal (default: none).
    #[arg(long, value_delimiter = ',')]
    pub reveals: Vec<String>,
    /// Valid for this many days from now…
    #[arg(long, default_value_t = 30, conflicts_with = "until")]
    pub days: u32,
    /// …or until this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
}

/// What a grant or a delegation gives, to whom, as whom.
#[derive(clap::Args)]
pub(crate) struct GrantArgs {
    pub name: String,
    /// Who holds it: `human:ID`, `service:ID` or `agent:ID`.
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub by: String,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub action: ActionKey,
    #[command(flatten)]
    pub storage: Storage,
}

#[derive(Subcommand)]
pub(crate) enum CapabilitiesCommand {
    /// Grants a root capability `NAME` (its id is derived from the name) as `--by`, who
    /// must be an operator of the configuration; prints its id.
    Grant(GrantArgs),
    /// Delegates part of `--from` as `--by`, its holder: a capability `NAME` within the
    /// parent's scope and window, ending when the parent ends.
    Delegate {
        #[arg(long, value_name = "CAPABILITY")]
        from: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Revokes a capability and every capability delegated from it, as `--by`: an
    /// operator, its holder, or an issuer or holder up its chain.
    Revoke {
        capability: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        action: ActionKey,
        #[command(flatten)]
        storage: Storage,
    },
    /// Every capability as it stood at `--at` (default: now).
    List {
        /// An RFC 3339 time, e.g. 2026-11-26T09:00:00Z.
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
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
    /// Every stored event by id and type, and whether it reads: its id and payload hash
    /// recomputed, and its payload as the installed type's current version (`typed`) or,
    /// its type not installed here, as a raw envelope (`raw`); and whether the capability it
    /// names was granted in the log (`UNGRANTED` when not). Exit 1 when one does not read
    /// or names a capability nobody granted.
    Check {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        storage: Storage,
    },
    /// The envelopes of one event type, read through the query gateway on `--capability`:
    /// its scope must cover the type, and sensitive fields read `[redacted]` unless it
    /// reveals them (the JSON pointers replaced are listed). A denial is receipted.
    Events {
        #[arg(value_name = "TYPE")]
        event_type: String,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        storage: Storage,
    },
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
