//! `ops-host run`: the host as a long-running worker, its work ordered by the scheduler's
//! lanes (Section 6). Each tick it queues what is due and not already waiting:
//! - interactive: dispatching the effects waiting for the destinations it has a webhook
//!   for (someone is waiting on a page);
//! - background: each connector it has a source for, each projection, each reaction (on
//!   the reactions' budget);
//! - batch: expiring ended capabilities, every `reconcile_every` ticks each installed
//!   reconciler, and every `retention_every` ticks the retention
//!   policy.
//!
//! Then it runs at most `jobs_per_tick` of them in the scheduler's order (lane raised by
//! waiting, per-actor turns, arrival, id), so under load batch work waits but still runs.
//! Every job is a catch-up that resumes from the log, so stopping the worker at any point
//! loses nothing, and a job that fails is reported and queued again the next tick.

use crate::services::{Services, secrets_dir};
use ops_core_runtime::clock::WallClock;
use ops_core_runtime::projection::{Partition, partition_name, partitions_of};
use ops_core_runtime::service_capability;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::webhook::WebhookExecutor;
use ops_core::budget::{BudgetLimits, Usage};
use ops_core::connector::DynConnector;
use ops_core::connector::DynReconciler;
use ops_core::envelope::{Actor, ActorId};
use ops_core::id::CapabilityId;
use ops_core::projection::DynProjection;
use ops_core::reaction::DynReaction;
use ops_core::retention::RetentionPolicy;
use ops_core::time::Timestamp;
use ops_core_runtime::budget::Budgets;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::connector::{ConnectorRunner, JsonLinesDirectory};
use ops_core_runtime::egress::pending_destinations;
use ops_core_runtime::governance::Policies;
use ops_core_runtime::leases::Leases;
use ops_core_runtime::projection::ProjectionRunner;
use ops_core_runtime::reaction::ReactionRunner;
use ops_core_runtime::reconcile::reconcile;
use ops_core_runtime::retention::Retention;
use ops_core_runtime::scheduler::{Job, Lane, Scheduler};
use ops_core_runtime::secrets::SecretsProvider;
use ops_core_runtime::signing::Trust;
use ops_core_runtime::store::EventStore;

use crate::config::Config;
use tokio::signal::unix::{SignalKind, signal};

/// What the host's reactions may spend: a call per proposed command.
pub const REACTION_BUDGET: BudgetLimits = BudgetLimits {
    per_run: Usage {
        tokens: 0,
        calls: 50,
    },
    per_day: Usage {
        tokens: 0,
        calls: 500,
    },
    calls_per_minute: 120,
};

/// The capability a pack's reactions act on: the one an operator grants as
/// `reactions/<pack>` (`ops-host capabilities grant reactions/notify --to service:pack.notify
/// …`; the demo does).
pub fn reaction_capability(
    capabilities: &Capabilities,
    pack: &str,
) -> anyhow::Result<CapabilityId> {
    Ok(crate::services::named(capabilities, &format!("reactions/{pack}"))?.id)
}

pub struct WorkerOptions {
    /// Stop after this many ticks; run until killed without it.
    pub ticks: Option<u64>,
    pub interval: Duration,
    pub jobs_per_tick: usize,
    /// Batches a projection's catch-up runs before interactive work may preempt it.
    pub slice_batches: usize,
    /// Ticks of waiting that raise a job one lane.
    pub aging: u64,
    pub retention_every: u64,
    pub retention: RetentionPolicy,
    /// Run every installed reconciler every this many ticks.
    pub reconcile_every: u64,
    /// Connector id → the directory of its JSON-lines source.
    pub sources: BTreeMap<String, PathBuf>,
    /// The destinations it posts effects to and their fences (`ops.toml`); a destination
    /// not declared there is not served.
    pub fences: Config,
    /// The file `fences` was read from: read again when it changes (or on SIGHUP), so its
    /// kill switches, holds, quotas, credentials and objectives reach the running worker.
    pub config: Option<PathBuf>,
    /// How long a claimed effect, projection, reaction or connector stream is this
    /// worker's before another may take it over.
    pub lease: Duration,
    /// This worker's name in its leases and claims; unique among live workers.
    pub worker_id: String,
    /// Where the subject keys live: the secrets backend's directory, for destinations'
    /// credentials, unless the configuration names one (`[secrets] dir`).
    pub keys_dir: Option<PathBuf>,
}

/// A worker name no other live worker has: the host, the process and when it started.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!(
        "{host}/{}/{}",
        std::process::id(),
        Timestamp::now().unix_micros()
    )
}

/// The leases of a one-off operator command (`what`: `sync`, `rebuild`) that works as a
/// worker would, so a worker running the same stream of work now is not raced.
pub fn one_off_leases(store: &EventStore, what: &str) -> Leases {
    Leases::new(
        store.db().clone(),
        format!("{}/{what}", default_worker_id()),
        Duration::from_secs(300),
    )
}

/// Ctrl-C (SIGINT) or SIGTERM, listened for from the start by a task of its own, which sets
/// `flag` at once: a dispatch under way stops posting (what is in flight finishes with its
/// receipt, the rest of its batch is given back), no further job starts, and the worker
/// stops when the job it is in ends.
struct StopSignals {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let flag = Arc::new(AtomicBool::new(false));
        let notify = Arc::new(tokio::sync::Notify::new());
        let (set, wake) = (flag.clone(), notify.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            set.store(true, Ordering::SeqCst);
            wake.notify_waiters();
        });
        Ok(StopSignals { flag, notify })
    }

    fn stopping(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    async fn received(&self) {
        let notified = self.notify.notified();
        if self.stopping() {
            return;
        }
        notified.await;
    }
}

/// Set on every SIGHUP: the worker reads its configuration file again at its next tick.
fn hangups() -> std::io::Result<Arc<AtomicBool>> {
    let mut hangup = signal(SignalKind::hangup())?;
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            set.store(true, Ordering::SeqCst);
        }
    });
    Ok(flag)
}

/// What a job does.
#[derive(Clone)]
enum Work {
    Connector(&'static dyn DynConnector),
    /// The runner of one projection, or of one partition of a split one, by its label.
    Projection(String),
    Reaction(&'static dyn DynReaction),
    Dispatch,
    ExpireCapabilities,
    Retention,
    Reconcile(&'static dyn DynReconciler),
}

struct Worker {
    store: EventStore,
    options: WorkerOptions,
    host: Actor,
    host_capability: CapabilityId,
    capabilities: Capabilities,
    bus: CommandBus,
    budgets: Arc<Budgets>,
    /// Read, not promoted: they were verified when they were activated.
    policies: Policies,
    connectors: BTreeMap<&'static str, ConnectorRunner>,
    /// By label: `pack/name`, or `pack/name.<index>of<count>` for a partition.
    projections: BTreeMap<String, ProjectionRunner>,
    /// Of each split projection (by `pack/name`), how many partitions this worker runs at
    /// most: its fair share among the live workers, computed every tick.
    shares: BTreeMap<String, usize>,
    leases: Leases,
    /// Each declared destination's executor, made for every tick's dispatcher when the
    /// configuration is read.
    executors: BTreeMap<String, Arc<WebhookExecutor>>,
    /// The secrets provider behind the credentials, refreshed every tick so a handle
    /// revoked anywhere is refused here within a tick.
    secrets: Option<Arc<SecretsProvider>>,
    /// The configuration file's text as last read, to notice a change.
    config_text: Option<String>,
    /// Set by SIGTERM or Ctrl-C.
    stop: Arc<AtomicBool>,
    /// Each job's failures in a row; a job that keeps failing is recorded, once.
    health: ops_core_runtime::health::JobHealth,
}

pub async fn run(
    services: Services,
    options: WorkerOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let stop = StopSignals::listen()?;
    if !services.store.pack_code().confined() {
        ops_core_runtime::faults::record_unconfined(&services.store, &options.worker_id).await?;
        writeln!(
            out,
            "pack code runs UNCONFINED (`--unjailed`); status and every fault receipt say so"
        )?;
    }
    let mut worker = Worker::start(services, options, stop.flag.clone()).await?;
    let hangup = hangups()?;
    let mut scheduler = Scheduler::new(worker.options.aging);
    let mut waiting: BTreeMap<String, (Work, u64)> = BTreeMap::new();
    let mut tick = 0;
    loop {
        tick += 1;
        worker
            .reload_config(hangup.swap(false, Ordering::SeqCst), out)
            .await?;
        let due = worker.due(tick).await?;
        queue(&mut scheduler, &mut waiting, tick, due);
        for _ in 0..worker.options.jobs_per_tick {
            if stop.stopping() {
                break;
            }
            let Some(job) = scheduler.pop_next() else {
                break;
            };
            let (work, queued_at) = waiting
                .remove(&job.id)
                .expect("every queued job has its work");
            let mut ended = worker.run_job(work.clone()).await;
            // A long job runs in slices; between them, interactive work that came in
            // meanwhile preempts it (Section 6), and it resumes with its place in the queue.
            let mut slices = 1;
            while matches!(&ended, Ok(ran) if ran.more) && !stop.stopping() {
                let interactive = worker.interactive_due().await?;
                queue(&mut scheduler, &mut waiting, tick, interactive);
                if scheduler.preempts(&job) {
                    scheduler.preempted();
                    waiting.insert(job.id.clone(), (work.clone(), queued_at));
                    break;
                }
                ended = worker.run_job(work.clone()).await;
                slices += 1;
            }
            let ended = ended.map(|ran| match (ran.more, slices) {
                (true, _) => format!(
                    "{} in {slices} slice(s), then preempted by interactive work; resumes in its place",
                    ran.said
                ),
                (false, 1) => ran.said,
                (false, _) => format!("{} in the last of {slices} slices", ran.said),
            });
            if let Err(error) = &ended
                && store_is_unusable(error)
            {
                // Nothing this worker does can work on a store that is not a database.
                return Err(anyhow::anyhow!(crate::outcome::message_of(error))
                    .context("the store is damaged; the worker stopped"));
            }
            let error = ended.as_ref().err().map(crate::outcome::message_of);
            worker.record_health(&job.id, error.as_deref(), out).await?;
            let done = match (ended, error) {
                (Ok(done), _) => done,
                (Err(_), error) => format!("failed: {}", error.unwrap_or_default()),
            };
            writeln!(
                out,
                "tick {tick} {:?} {}: {done} (waited {} ticks)",
                job.lane,
                job.id,
                tick - queued_at
            )?;
        }
        scheduler.tick();
        out.flush()?;
        let stopping = worker.options.ticks.is_some_and(|ticks| tick >= ticks)
            || stop.stopping()
            || tokio::select! {
                () = tokio::time::sleep(worker.options.interval) => false,
                () = stop.received() => true,
            };
        if stopping {
            // Others take this worker's streams over at once, not after their leases end.
            let released = worker.leases.release_all().await?;
            writeln!(
                out,
                "stopped after {tick} ticks; {} jobs waiting, the longest for {} ticks; {released} leases released",
                scheduler.len(),
                scheduler.longest_wait()
            )?;
            return Ok(());
        }
    }
}

/// The executors of `fences`' destinations, with their credentials (asked for from the
/// secrets backend in `secrets_dir`, whose provider is left in `secrets`); a configuration
/// naming a connector that is not installed is refused.
async fn armed(
    store: &EventStore,
    fences: &Config,
    secrets_dir: Option<&Path>,
    capabilities: &Capabilities,
    host: &Actor,
    secrets: &mut Option<Arc<SecretsProvider>>,
) -> anyhow::Result<BTreeMap<String, Arc<WebhookExecutor>>> {
    let installed = ops_core::connector::installed(ops_core_runtime::CORE);
    if let Some(unknown) = fences.connectors.keys().find(|id| {
        !installed
            .iter()
            .any(|connector| connector.id() == id.as_str())
    }) {
        anyhow::bail!(crate::outcome::BadInput(format!(
            "`connectors.\"{unknown}\"` names no installed connector; installed: {}",
            installed
                .iter()
                .map(|c| c.id())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let credentials = match (secrets_dir, fences.wants_credentials()) {
        (Some(dir), true) => {
            let provider = Arc::new(crate::services::provider(store, dir, capabilities).await?);
            let credentials = fences.credentials(&provider, host).await?;
            *secrets = Some(provider);
            credentials
        }
        (None, true) => anyhow::bail!(crate::outcome::BadInput(
            "a destination declares a credential, but there is no secrets backend: give `[secrets] dir` in the configuration, or `--keys`".to_owned()
        )),
        (_, false) => BTreeMap::new(),
    };
    fences.executors(&credentials)
}

/// Whether `error` says the store's file is not a database any more (SQLite's "database
/// disk image is malformed", "file is not a database"): no later tick can work.
fn store_is_unusable(error: &anyhow::Error) -> bool {
    error.chain().any(ops_core_runtime::db::is_damaged)
}

impl Worker {
    /// Counts how a job ended, and records a job that starts failing or works again (once
    /// per change). A store that cannot take the record is said in the output, not fatal:
    /// the job's own failure already is.
    async fn record_health(
        &mut self,
        job: &str,
        error: Option<&str>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let outcome = error.map_or(Ok(()), Err);
        match self
            .health
            .ended(&self.store, &self.options.worker_id, job, outcome)
            .await
        {
            Ok(Some(recorded)) => writeln!(
                out,
                "job {job}: {} ({})",
                if error.is_some() {
                    "FAILING, recorded for status"
                } else {
                    "works again"
                },
                recorded.event_id
            )?,
            Ok(None) => {}
            Err(record_error) => writeln!(
                out,
                "job {job}: its health could not be recorded: {record_error}"
            )?,
        }
        Ok(())
    }

    async fn start(
        services: Services,
        options: WorkerOptions,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let bus = services.bus()?;
        let Services {
            store,
            capabilities,
            ..
        } = services;
        let host_capability = store.grant_service(service_capability::WORKER).await?;
        let health = ops_core_runtime::health::JobHealth::from_log(&store).await?;
        let budgets = Budgets::open(store.clone(), REACTION_BUDGET, host_capability).await?;
        let policies = Policies::load(store.clone(), Trust::default(), host_capability).await?;
        let leases = Leases::new(store.db().clone(), &options.worker_id, options.lease);
        let host = Actor::Service(ActorId::new("ops-host")?);
        let mut secrets = None;
        let executors = armed(
            &store,
            &options.fences,
            secrets_dir(&options.fences, options.keys_dir.as_deref()).as_deref(),
            &capabilities,
            &host,
            &mut secrets,
        )
        .await?;
        let installed = ops_core::connector::installed(ops_core_runtime::CORE);
        let config_text = options
            .config
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok());
        let mut connectors = BTreeMap::new();
        for connector in installed {
            if let Some(source) = options.sources.get(connector.id()) {
                let reader = Box::new(
                    JsonLinesDirectory::new(source.clone())
                        .with_max_record_bytes(options.fences.max_record_bytes(connector.id())),
                );
                let runner = ConnectorRunner::new(
                    store.clone(),
                    connector,
                    reader,
                    options.fences.connector_options(connector.id()),
                )?
                .with_leases(leases.clone());
                connectors.insert(connector.id(), runner);
            }
        }
        let mut projections = BTreeMap::new();
        let objectives = options
            .fences
            .objectives(&ops_core::projection::installed(ops_core_runtime::CORE))?;
        for projection in ops_core::projection::installed(ops_core_runtime::CORE) {
            for partition in partitions_of(projection) {
                let mut runner = ProjectionRunner::start_partition(
                    store.clone(),
                    projection,
                    leases.clone(),
                    partition,
                )?;
                if let Some(max_lag_ms) = objectives.get(&projection_label(projection)) {
                    runner = runner.with_objective(*max_lag_ms);
                }
                projections.insert(partition_label(projection, partition), runner);
            }
        }
        Ok(Worker {
            store,
            options,
            host,
            executors,
            secrets,
            config_text,
            stop,
            host_capability,
            capabilities,
            bus,
            budgets: Arc::new(budgets),
            policies,
            connectors,
            projections,
            shares: BTreeMap::new(),
            leases,
            health,
        })
    }

    /// Reads the configuration file again when its text changed (or `forced`, on SIGHUP):
    /// it is checked as `config check` would, and armed (credentials, executors) before it
    /// replaces the one in force; a file that fails keeps the one in force, and says why.
    async fn reload_config(&mut self, forced: bool, out: &mut impl Write) -> anyhow::Result<()> {
        let Some(path) = self.options.config.clone() else {
            return Ok(());
        };
        let text = std::fs::read_to_string(&path).ok();
        if !forced && text == self.config_text {
            return Ok(());
        }
        self.config_text = text;
        let reloaded = async {
            let fences = Config::load(&path)?;
            let mut secrets = None;
            let executors = armed(
                &self.store,
                &fences,
                secrets_dir(&fences, self.options.keys_dir.as_deref()).as_deref(),
                &self.capabilities,
                &self.host,
                &mut secrets,
            )
            .await?;
            let objectives =
                fences.objectives(&ops_core::projection::installed(ops_core_runtime::CORE))?;
            anyhow::Ok((fences, executors, secrets, objectives))
        }
        .await;
        match reloaded {
            Ok((fences, executors, secrets, objectives)) => {
                for runner in self.projections.values_mut() {
                    let label = projection_label(runner.projection());
                    runner.set_objective(objectives.get(&label).copied());
                }
                crate::jailing::set_limits(fences.pack_limits());
                self.options.fences = fences;
                self.executors = executors;
                self.secrets = secrets;
                writeln!(out, "configuration reloaded from {}", path.display())?;
            }
            Err(error) => writeln!(
                out,
                "configuration {} not reloaded, the one in force stays: {}",
                path.display(),
                crate::outcome::message_of(&error)
            )?,
        }
        Ok(())
    }

    /// What is due at `tick`: `(job id, lane, actor, work)`.
    async fn due(&mut self, tick: u64) -> anyhow::Result<Vec<(String, Lane, String, Work)>> {
        // Other hosts grant and revoke too; the tick's jobs see the log as it is now.
        self.capabilities.refresh().await?;
        self.share_partitions().await?;
        if let Some(secrets) = &self.secrets {
            secrets.refresh().await?;
        }
        let mut due = self.interactive_due().await?;
        for connector in ops_core::connector::installed(ops_core_runtime::CORE) {
            if self.connectors.contains_key(connector.id()) {
                due.push((
                    format!("connector:{}", connector.id()),
                    Lane::Background,
                    format!("pack.{}", connector.pack_id()),
                    Work::Connector(connector),
                ));
            }
        }
        for projection in ops_core::projection::installed(ops_core_runtime::CORE) {
            for partition in partitions_of(projection) {
                let label = partition_label(projection, partition);
                due.push((
                    format!("projection:{label}"),
                    Lane::Background,
                    format!("pack.{}", projection.pack_id()),
                    Work::Projection(label),
                ));
            }
        }
        for reaction in ops_core::reaction::installed(ops_core_runtime::CORE) {
            due.push((
                format!(
                    "reaction:{}/{}->{}",
                    reaction.pack_id(),
                    reaction.event_type(),
                    reaction.command_type()
                ),
                Lane::Background,
                format!("pack.{}", reaction.pack_id()),
                Work::Reaction(reaction),
            ));
        }
        due.push((
            "expire-capabilities".to_owned(),
            Lane::Batch,
            "ops-host".to_owned(),
            Work::ExpireCapabilities,
        ));
        if (tick - 1).is_multiple_of(self.options.retention_every.max(1)) {
            due.push((
                "retention".to_owned(),
                Lane::Batch,
                "ops-host".to_owned(),
                Work::Retention,
            ));
        }
        if (tick - 1).is_multiple_of(self.options.reconcile_every.max(1)) {
            for reconciler in ops_core::connector::reconcilers(ops_core_runtime::CORE) {
                due.push((
                    format!("reconcile:{}", reconciler.name()),
                    Lane::Batch,
                    "ops-host".to_owned(),
                    Work::Reconcile(reconciler),
                ));
            }
        }
        Ok(due)
    }

    /// The interactive work due now: dispatching effects that wait for a destination this
    /// worker serves.
    async fn interactive_due(&self) -> anyhow::Result<Vec<(String, Lane, String, Work)>> {
        let served = pending_destinations(&self.store)
            .await?
            .iter()
            .any(|destination| self.options.fences.destinations.contains_key(destination));
        Ok(if served {
            vec![(
                "dispatch".to_owned(),
                Lane::Interactive,
                "egress".to_owned(),
                Work::Dispatch,
            )]
        } else {
            Vec::new()
        })
    }

    /// Says this worker is alive (its presence lease), and sets its share of each split
    /// projection's partitions: as many as the live workers' fair share, rounded up. A
    /// worker holding more than that gives the rest back, so a worker that joins gets
    /// partitions within a tick of the others seeing it.
    async fn share_partitions(&mut self) -> anyhow::Result<()> {
        let split: Vec<_> = ops_core::projection::installed(ops_core_runtime::CORE)
            .into_iter()
            .filter(|projection| projection.split().partitions() > 1)
            .collect();
        if split.is_empty() {
            return Ok(());
        }
        self.leases
            .acquire(&presence_lease(&self.options.worker_id))
            .await?;
        let workers = self.leases.live_holders(PRESENCE).await?.max(1) as usize;
        for projection in split {
            let partitions = partitions_of(projection);
            let label = projection_label(projection);
            let share = partitions.len().div_ceil(workers);
            self.shares.insert(label.clone(), share);
            let mut held: Vec<String> = partitions
                .iter()
                .map(|partition| partition_label(projection, *partition))
                .filter(|label| self.projections[label].holds_lease())
                .collect();
            while held.len() > share {
                let extra = held.pop().expect("more than the share");
                let runner = self.projections.get_mut(&extra).expect("started");
                runner.release_lease().await?;
            }
        }
        Ok(())
    }

    /// How many partitions of split projection `label` this worker holds.
    fn held_partitions(&self, label: &str) -> usize {
        self.projections
            .values()
            .filter(|runner| projection_label(runner.projection()) == label && runner.holds_lease())
            .count()
    }

    /// How many partitions of `label` this worker runs at most (all, when it is not split).
    fn share(&self, label: &str) -> usize {
        self.shares.get(label).copied().unwrap_or(usize::MAX)
    }

    /// Runs one job, or one slice of a long one; what it did, in a few words.
    async fn run_job(&mut self, work: Work) -> anyhow::Result<Ran> {
        let mut more = false;
        let said = match work {
            Work::Dispatch => {
                // The policies active now, with today's counts so far.
                self.policies.refresh().await?;
                let dispatcher = self
                    .options
                    .fences
                    .dispatcher(
                        self.store.clone(),
                        &self.options.worker_id,
                        vec![Box::new(self.policies.active_approvals().await?)],
                        Arc::new(self.capabilities.clone()),
                        &self.executors,
                    )
                    .with_lease(self.options.lease)
                    .with_stop(self.stop.clone());
                let report = dispatcher.dispatch(100).await?;
                let released = if report.released > 0 {
                    format!(", {} given back unposted to stop", report.released)
                } else {
                    String::new()
                };
                format!(
                    "{} executed, {} refused, {} failed for now{released}",
                    report.executed, report.refused, report.failed
                )
            }
            Work::Connector(connector) => {
                let runner = self
                    .connectors
                    .get_mut(connector.id())
                    .expect("queued only with a source");
                let reports = runner.sync().await?;
                let appended: usize = reports.iter().map(|(_, r)| r.appended).sum();
                let quarantined: usize = reports.iter().map(|(_, r)| r.quarantined).sum();
                let retries: usize = reports.iter().map(|(_, r)| r.retries).sum();
                let limited: std::time::Duration =
                    reports.iter().map(|(_, r)| r.rate_limited).sum();
                let mut reading = match (retries, limited.as_millis()) {
                    (0, 0) => String::new(),
                    (retries, limited) => {
                        format!("; {retries} reads retried, {limited} ms waited for the rate limit")
                    }
                };
                if let Some(held) = reports.iter().filter_map(|(_, r)| r.held_back).min() {
                    reading.push_str(&format!(
                        "; the rate limit holds the next read {} ms, read on later",
                        held.as_millis()
                    ));
                }
                // Streams another worker runs, or took over mid-run.
                let elsewhere: String = reports
                    .iter()
                    .filter_map(
                        |(stream, report)| match (&report.held_by, report.lease_lost) {
                            (Some(holder), _) => Some(format!("; {stream} held by {holder}")),
                            (None, true) => Some(format!("; {stream} taken over")),
                            (None, false) => None,
                        },
                    )
                    .collect();
                format!("{appended} new events, {quarantined} quarantined{reading}{elsewhere}")
            }
            Work::Projection(label) => {
                let runner = self
                    .projections
                    .get(&label)
                    .expect("started with the worker");
                let projection = projection_label(runner.projection());
                if !runner.holds_lease()
                    && self.held_partitions(&projection) >= self.share(&projection)
                {
                    return Ok(Ran::done("left to other workers: this one runs its share"));
                }
                let runner = self
                    .projections
                    .get_mut(&label)
                    .expect("started with the worker");
                let done = runner.catch_up_within(self.options.slice_batches).await?;
                more = done.more;
                match (done.held_by, done.lease_lost) {
                    (Some(holder), _) => format!("held by {holder}"),
                    (None, true) => {
                        format!("{} applied, then its lease was taken over", done.applied)
                    }
                    (None, false) => format!("{} applied", done.applied),
                }
            }
            Work::Reaction(reaction) => {
                let report = ReactionRunner::new(
                    self.store.clone(),
                    reaction,
                    reaction_capability(&self.capabilities, reaction.pack_id())?,
                )
                .with_budget(self.budgets.clone())
                .with_leases(self.leases.clone())
                .catch_up(&self.bus)
                .await?;
                if let Some(holder) = report.held_by {
                    return Ok(Ran::done(format!("held by {holder}")));
                }
                format!(
                    "{} events, {} accepted, {} denied{}{}",
                    report.events,
                    report.accepted,
                    report.denied,
                    if report.stopped_by_budget {
                        ", stopped by its budget"
                    } else if report.denied > 0 {
                        ", waiting at the denied command until it is allowed"
                    } else {
                        ""
                    },
                    if report.lease_lost {
                        ", then its lease was taken over"
                    } else {
                        ""
                    }
                )
            }
            Work::ExpireCapabilities => {
                let expired = self.capabilities.expire_due(Timestamp::now()).await?;
                format!("{} expired", expired.len())
            }
            Work::Retention => {
                let installed: Vec<&str> =
                    self.store.registry().packs().map(|pack| pack.id).collect();
                // The worker's own run: an act of its own, now.
                let now = Timestamp::now();
                let by = ops_core_runtime::acting::Acting::new(
                    self.host.clone(),
                    ops_core_runtime::acting::Cause::act("retention", now),
                );
                let receipts = Retention::new(self.store.clone(), self.host_capability)
                    .apply(&self.options.retention, &installed, now, &by)
                    .await?;
                let removed: usize = receipts.iter().map(|r| r.removed.len()).sum();
                format!("{removed} removed, receipted")
            }
            Work::Reconcile(reconciler) => {
                // Conflict events have ids of their own pair of facts: two workers
                // reconciling at once store each conflict once.
                let outcome = reconcile(&self.store, reconciler).await?;
                format!(
                    "{} new conflicts between sources, {} known before",
                    outcome.appended.len(),
                    outcome.duplicates.len()
                )
            }
        };
        Ok(Ran { said, more })
    }
}

/// What one run of a job did, and whether it stopped at the end of its slice with more to
/// do.
struct Ran {
    said: String,
    more: bool,
}

impl Ran {
    fn done(said: impl Into<String>) -> Self {
        Ran {
            said: said.into(),
            more: false,
        }
    }
}

/// Queues what is due at `tick` that is not already waiting.
fn queue(
    scheduler: &mut Scheduler,
    waiting: &mut BTreeMap<String, (Work, u64)>,
    tick: u64,
    due: Vec<(String, Lane, String, Work)>,
) {
    for (id, lane, actor, work) in due {
        if let std::collections::btree_map::Entry::Vacant(entry) = waiting.entry(id.clone()) {
            entry.insert((work, tick));
            scheduler.push(Job { id, lane, actor });
        }
    }
}

fn projection_label(projection: &dyn DynProjection) -> String {
    format!("{}/{}", projection.pack_id(), projection.name())
}

/// The label of one partition's runner: the projection's own when it is not split.
fn partition_label(projection: &dyn DynProjection, partition: Partition) -> String {
    format!(
        "{}/{}",
        projection.pack_id(),
        partition_name(projection.name(), partition)
    )
}

/// The lease that says a worker is alive, so others know how many share the work.
fn presence_lease(worker_id: &str) -> String {
    format!("{PRESENCE}{worker_id}")
}

const PRESENCE: &str = "worker:";
