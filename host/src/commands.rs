//! What each verb of the command line does: one function per subcommand, each returning
//! how it ended, so `main` alone turns that into the exit code.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ops_core::registry::Registry;
use ops_core::retention::RetentionPolicy;
use ops_core_runtime::db::Db;
use ops_core_runtime::store::EventStore;

use crate::cli::{
    CapabilitiesCommand, Command, CommandsCommand, ConfigCommand, ConfigFile, ConnectorsCommand,
    EffectsCommand, Format, LogCommand, PacksCommand, ProjectionsCommand, QuarantineCommand,
    RegistryCommand, ReleaseMode, ReleasesCommand, SagasCommand, SecretsCommand, Storage,
    SubjectsCommand,
};
use crate::config::Config;
use crate::{
    capabilities, demo, effects, lineage, policies, releases, retention, runtime_demo, sagas,
    secrets, status, subjects, submit, worker,
};

/// How a command ended, besides an error: done (exit 0), or it found something refused or
/// unhealthy and said so (exit 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Done,
    Refused,
}

/// Input the operator got wrong (a flag's value, a file, a name, a store that is not
/// there): exit 2, where something refused or failed is 1.
#[derive(Debug)]
pub(crate) struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// `.or_bad_input()`: this error is the operator's input, said in full.
pub(crate) trait OrBadInput<T> {
    fn or_bad_input(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> OrBadInput<T> for Result<T, E> {
    fn or_bad_input(self) -> anyhow::Result<T> {
        self.map_err(|error| anyhow::Error::new(BadInput(format!("{:#}", error.into()))))
    }
}

/// Whether `error` is bad input rather than a refusal or a failure.
pub(crate) fn is_bad_input(error: &anyhow::Error) -> bool {
    use ops_core_runtime::db::DbError;
    error.chain().any(|cause| {
        cause.is::<BadInput>()
            || cause
                .downcast_ref::<DbError>()
                .is_some_and(DbError::is_bad_input)
            // A command that writes, pointed at a store that cannot be written.
            || ops_core_runtime::db::is_read_only(cause)
            // The reader of the output went away (`| head`): the invocation's fault.
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

impl From<bool> for Ended {
    fn from(healthy: bool) -> Self {
        if healthy { Ended::Done } else { Ended::Refused }
    }
}

pub(crate) fn run(
    command: Command,
    registry: &'static Registry,
    installed_packs: &[&str],
    releases: ReleaseMode,
) -> anyhow::Result<Ended> {
    match command {
        Command::Demo { data } => demo(registry, installed_packs, &data),
        Command::Registry {
            command: RegistryCommand::Export { out },
        } => registry_export(registry, &out),
        Command::Registry {
            command: RegistryCommand::Upcast { input },
        } => upcast_all(registry, &input),
        Command::Packs {
            command: PacksCommand::Orphaned { storage },
        } => block_on(packs_orphaned(registry, storage)),
        Command::Projections {
            command: ProjectionsCommand::Status { storage },
        } => block_on(projections_status(registry, storage)),
        Command::Projections {
            command:
                ProjectionsCommand::Rebuild {
                    projection,
                    storage,
                },
        } => block_on(projections_rebuild(registry, projection, storage, releases)),
        Command::Sagas { command } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                SagasCommand::List { format, storage } => {
                    sagas::list(&storage.store(registry).await?, format, out).await?;
                    Ok(Ended::Done)
                }
                SagasCommand::Unwind { acting, storage } => {
                    let Some(store) = storage
                        .pack_code_store(registry, Open::Existing, releases, out)
                        .await?
                    else {
                        return Ok(Ended::Refused);
                    };
                    sagas::unwind(&store, &acting, out).await
                }
            }
        }),
        Command::Capabilities {
            command:
                CapabilitiesCommand::List {
                    at,
                    format,
                    storage,
                },
        } => block_on(async move {
            let store = storage.store(registry).await?;
            capabilities::list(&store, at.as_deref(), format, &mut std::io::stdout().lock())
                .await?;
            Ok(Ended::Done)
        }),
        Command::Capabilities {
            command:
                CapabilitiesCommand::Grant {
                    name,
                    to,
                    by,
                    scope,
                    config,
                    storage,
                },
        } => block_on(async move {
            let capabilities = storage.capabilities(registry, &config).await?;
            let grant = capabilities::Grant {
                name: &name,
                parent: None,
                to: &to,
                by: &by,
                scope: &scope,
            };
            capabilities::grant(&capabilities, grant, &mut std::io::stdout().lock()).await
        }),
        Command::Capabilities {
            command:
                CapabilitiesCommand::Delegate {
                    name,
                    from,
                    to,
                    by,
                    scope,
                    storage,
                },
        } => block_on(async move {
            let store = storage.store(registry).await?;
            let capabilities = ops_core_runtime::capability::Capabilities::load(store).await?;
            let grant = capabilities::Grant {
                name: &name,
                parent: Some(&from),
                to: &to,
                by: &by,
                scope: &scope,
            };
            capabilities::grant(&capabilities, grant, &mut std::io::stdout().lock()).await
        }),
        Command::Capabilities {
            command:
                CapabilitiesCommand::Revoke {
                    capability,
                    by,
                    reason,
                    config,
                    storage,
                },
        } => block_on(async move {
            let capabilities = storage.capabilities(registry, &config).await?;
            let out = &mut std::io::stdout().lock();
            capabilities::revoke(&capabilities, &capability, &by, &reason, out).await
        }),
        Command::Commands {
            command:
                CommandsCommand::Submit {
                    command_type,
                    payload,
                    target,
                    destination,
                    tenant,
                    expect_version,
                    acting,
                    storage,
                },
        } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            let Some(store) = storage
                .pack_code_store(registry, Open::Existing, releases, out)
                .await?
            else {
                return Ok(Ended::Refused);
            };
            let submission = submit::Submission {
                command_type: &command_type,
                payload: &payload,
                target: target.as_deref(),
                destination: destination.as_deref(),
                tenant: &tenant,
                expect_version,
                acting: &acting,
            };
            submit::submit(&store, submission, out).await
        }),
        Command::Policies { command } => block_on(async move {
            let (storage, config, capability) = command.place();
            let config = storage.config(config)?;
            let store = storage.store(registry).await?;
            let authority = ops_core_runtime::capability::Capabilities::load(store.clone()).await?;
            let checked = match capability {
                Some(capability) => capabilities::parse_capability(capability)?,
                None => capabilities::named(&authority, "host/policies")?.id,
            };
            let policies = ops_core_runtime::governance::Policies::load(
                store.clone(),
                config.trust(registry)?,
                checked,
            )
            .await?
            .checked_by(std::sync::Arc::new(authority));
            policies::run(&policies, command, &mut std::io::stdout().lock()).await
        }),
        Command::Secrets { command } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                SecretsCommand::Put {
                    secret,
                    value_file,
                    acting,
                    config,
                    storage,
                } => {
                    let provider = storage.secrets(registry, &config, true).await?;
                    secrets::put(&provider, &secret, &value_file, &acting, out).await
                }
                SecretsCommand::List {
                    format,
                    config,
                    storage,
                } => {
                    let provider = storage.secrets(registry, &config, false).await?;
                    secrets::list(&provider, format, out)?;
                    Ok(Ended::Done)
                }
                SecretsCommand::Revoke {
                    handle,
                    reason,
                    acting,
                    config,
                    storage,
                } => {
                    let provider = storage.secrets(registry, &config, false).await?;
                    secrets::revoke(&provider, &handle, &reason, &acting, out).await
                }
            }
        }),
        Command::Subjects { command } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                SubjectsCommand::List { format, storage } => {
                    subjects::list(&storage.store(registry).await?, format, out).await?;
                    Ok(Ended::Done)
                }
                SubjectsCommand::Erase {
                    subject,
                    reason,
                    acting,
                    storage,
                } => {
                    let store = storage.store(registry).await?;
                    subjects::erase_subject(&store, &subject, &reason, &acting, out).await
                }
            }
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
        } => block_on(async move {
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
            Ok(
                capabilities::check(&store, request, &mut std::io::stdout().lock())
                    .await?
                    .into(),
            )
        }),
        Command::Backup { out, storage } => block_on(async move {
            let store = storage.store(registry).await?;
            // One consistent copy, taken in one step: the progress says when it is done.
            let progress = crate::progress::Progress::new("backup", "copies");
            progress.advance(0, 1);
            let copied = store
                .db()
                .backup_to(&out, storage.database.as_deref())
                .await;
            progress.advance(u64::from(copied.is_ok()), 1);
            progress.finish();
            copied?;
            writeln!(std::io::stdout(), "backed up to {}", out.display())?;
            Ok(Ended::Done)
        }),
        Command::Run {
            ticks,
            interval_ms,
            jobs_per_tick,
            aging,
            retention_every,
            reconcile_every,
            sources,
            config,
            lease_ms,
            worker_id,
            storage,
        } => block_on(async move {
            let options = worker::WorkerOptions {
                ticks,
                interval: std::time::Duration::from_millis(interval_ms),
                jobs_per_tick,
                aging,
                retention_every,
                reconcile_every,
                retention: RetentionPolicy::default(),
                sources: pairs("--source", &sources)?
                    .into_iter()
                    .map(|(id, dir)| (id, PathBuf::from(dir)))
                    .collect(),
                fences: match &config {
                    Some(path) => Config::load(path)?,
                    None => Config::default(),
                },
                config: config.clone(),
                lease: std::time::Duration::from_millis(lease_ms),
                worker_id: worker_id.unwrap_or_else(worker::default_worker_id),
                secrets: None,
            };
            let options = worker::WorkerOptions {
                secrets: storage.secrets_dir(&options.fences),
                ..options
            };
            crate::jailing::set_limits(options.fences.pack_limits());
            crate::jailing::check()?;
            let out = &mut std::io::stdout().lock();
            let Some(store) = storage
                .pack_code_store(registry, Open::Working, releases, out)
                .await?
            else {
                return Ok(Ended::Refused);
            };
            worker::run(store, options, out).await?;
            Ok(Ended::Done)
        }),
        Command::Effects { command } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                EffectsCommand::List { format, storage } => {
                    effects::list(&storage.store(registry).await?, format, out).await?;
                    Ok(Ended::Done)
                }
                EffectsCommand::Approve {
                    command,
                    acting,
                    until,
                    storage,
                } => {
                    let store = storage.store(registry).await?;
                    effects::approve_effect(&store, &command, &acting, until.as_deref(), out).await
                }
                EffectsCommand::Cancel {
                    command,
                    acting,
                    reason,
                    storage,
                } => {
                    let store = storage.store(registry).await?;
                    effects::cancel_effect(&store, &command, &acting, &reason, out).await
                }
            }
        }),
        Command::Quarantine {
            command: QuarantineCommand::List { format, storage },
        } => block_on(async move {
            let store = storage.store(registry).await?;
            effects::list_quarantine(&store, format, &mut std::io::stdout().lock()).await?;
            Ok(Ended::Done)
        }),
        Command::Quarantine {
            command: QuarantineCommand::Retry { origin, storage },
        } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            let Some(store) = storage
                .pack_code_store(registry, Open::Existing, releases, out)
                .await?
            else {
                return Ok(Ended::Refused);
            };
            effects::retry_quarantine(&store, &origin, out).await
        }),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            for line in Config::load(&config)?.describe() {
                writeln!(std::io::stdout(), "{line}")?;
            }
            Ok(Ended::Done)
        }
        Command::Releases { command } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                ReleasesCommand::List { format, storage } => {
                    let store = storage.store(registry).await?;
                    Ok(releases::verify(&store, registry, format, out)
                        .await?
                        .into())
                }
                ReleasesCommand::Activate {
                    key_file,
                    acting,
                    config,
                    storage,
                } => {
                    let trust = storage.config(&config)?.trust(registry)?;
                    let key =
                        ops_core_runtime::custody::read_signing_key(&key_file).or_bad_input()?;
                    let store = storage.store(registry).await?;
                    releases::activate(&store, trust, &key, &acting, out).await
                }
                ReleasesCommand::Keygen { out: file } => {
                    let key =
                        ops_core_runtime::custody::create_signing_key(&file).or_bad_input()?;
                    writeln!(
                        out,
                        "made {}; its public key, for `trusted_keys`: {}",
                        file.display(),
                        hex::encode(key.verifying_key().as_bytes())
                    )?;
                    Ok(Ended::Done)
                }
            }
        }),
        Command::Retention {
            artifacts_days,
            projections_days,
            receipts_days,
            acting,
            storage,
        } => block_on(async move {
            let policy = RetentionPolicy {
                artifacts_days,
                projections_days,
                receipts_days,
            };
            let actor = capabilities::parse_actor(&acting.by)?;
            let capability_id = capabilities::parse_capability(&acting.capability)?;
            let store = storage.store(registry).await?;
            let authority = std::sync::Arc::new(
                ops_core_runtime::capability::Capabilities::load(store.clone()).await?,
            );
            let installed: Vec<&str> = registry.packs().map(|pack| pack.id).collect();
            retention::apply(
                &store,
                authority,
                &policy,
                &installed,
                &actor,
                capability_id,
                &mut std::io::stdout().lock(),
            )
            .await
        }),
        Command::Lineage {
            artifact_id,
            storage,
        } => block_on(async move {
            let store = storage.store(registry).await?;
            lineage::write_chain(&store, &artifact_id, &mut std::io::stdout().lock()).await?;
            Ok(Ended::Done)
        }),
        Command::Status { storage } => block_on(async move {
            let store = storage.store(registry).await?;
            Ok(status::write_status(&store, &mut std::io::stdout().lock())
                .await?
                .into())
        }),
        Command::Connectors {
            command:
                ConnectorsCommand::Sync {
                    id,
                    source,
                    storage,
                },
        } => block_on(async move {
            let connector = installed_connector(&id, "`ops-host registry export` lists the packs")?;
            if !source.is_dir() {
                anyhow::bail!(BadInput(format!(
                    "the source {} is not a directory",
                    source.display()
                )));
            }
            let out = &mut std::io::stdout().lock();
            let Some(store) = storage
                .pack_code_store(registry, Open::Working, releases, out)
                .await?
            else {
                return Ok(Ended::Refused);
            };
            let leases = worker::one_off_leases(&store, "sync");
            let progress = crate::progress::Progress::new(&format!("syncing {id}"), "records");
            let mut runner = ops_core_runtime::connector::ConnectorRunner::new(
                store,
                connector,
                Box::new(ops_core_runtime::connector::JsonLinesDirectory::new(source)),
                Default::default(),
            )?
            .with_leases(leases.clone())
            .with_progress(progress.callback());
            let synced = runner.sync().await;
            progress.finish();
            leases.release_all().await?;
            let out = &mut std::io::stdout().lock();
            for (stream, report) in synced? {
                match report.held_by {
                    Some(holder) => writeln!(out, "{id}/{stream}: held by {holder}")?,
                    None => writeln!(
                        out,
                        "{id}/{stream}: {} records, {} new events, {} already stored, {} quarantined; cursor {}",
                        report.records,
                        report.appended,
                        report.duplicates,
                        report.quarantined,
                        report
                            .cursor
                            .as_deref()
                            .map_or("-", ops_core_runtime::connector::cursor_place)
                    )?,
                }
            }
            Ok(Ended::Done)
        }),
        Command::Connectors {
            command:
                ConnectorsCommand::Reset {
                    id,
                    stream,
                    to,
                    to_start: _,
                    reason,
                    acting,
                    storage,
                },
        } => block_on(async move {
            let connector = installed_connector(&id, "`ops-host registry export` lists the packs")?;
            let streams = crate::jailing::pack_code()?.streams(connector)?;
            if !streams.contains(&stream) {
                anyhow::bail!(BadInput(format!(
                    "connector `{id}` has no stream `{stream}`; its streams: {}",
                    streams.join(", ")
                )));
            }
            if let Some(cursor) = &to
                && !ops_core_runtime::connector::is_cursor(cursor)
            {
                anyhow::bail!(BadInput(format!(
                    "--to `{cursor}` is not a cursor: write `<file>:<line>`, the last line to count as read"
                )));
            }
            let actor = crate::capabilities::parse_actor(&acting.by)?;
            let capability_id = crate::capabilities::parse_capability(&acting.capability)?;
            let store = storage.store(registry).await?;
            let from = store.cursor(&id, &stream).await?.map(|(cursor, _)| cursor);
            let capabilities =
                ops_core_runtime::capability::Capabilities::load(store.clone()).await?;
            let reset = ops_core::connector::SourceCursorReset {
                connector_id: id.clone(),
                stream: stream.clone(),
                from: from.clone(),
                to: to.clone(),
                reason,
            };
            let out = &mut std::io::stdout().lock();
            match ops_core_runtime::connector::reset_cursor(
                &store,
                &capabilities,
                reset,
                &actor,
                capability_id,
            )
            .await?
            {
                Ok(()) => {
                    writeln!(
                        out,
                        "{id}/{stream}: cursor moved from {} to {} (receipted)",
                        from.as_deref().unwrap_or("the start"),
                        to.as_deref().unwrap_or("the start")
                    )?;
                    Ok(Ended::Done)
                }
                Err(reason) => {
                    writeln!(
                        out,
                        "denied: {capability_id} does not allow moving the cursor: {reason} (receipted)"
                    )?;
                    Ok(Ended::Refused)
                }
            }
        }),
        Command::Reconcile { storage } => block_on(async move {
            let out = &mut std::io::stdout().lock();
            let Some(store) = storage
                .pack_code_store(registry, Open::Working, releases, out)
                .await?
            else {
                return Ok(Ended::Refused);
            };
            for reconciler in ops_core::connector::reconcilers(ops_core_runtime::CORE) {
                let outcome = ops_core_runtime::reconcile::reconcile(&store, reconciler).await?;
                writeln!(
                    out,
                    "{}: {} new conflicts between sources, {} known before",
                    reconciler.name(),
                    outcome.appended.len(),
                    outcome.duplicates.len()
                )?;
            }
            for conflict in store
                .read_by_type(<ops_core::connector::SourceFactsConflicted as ops_core::contract::Contract>::TYPE)
                .await?
            {
                let payload = &conflict.envelope.payload;
                writeln!(
                    out,
                    "  {} ({}): {}",
                    payload["subject"].as_str().unwrap_or_default(),
                    conflict.envelope.event_id,
                    payload["reason"].as_str().unwrap_or_default()
                )?;
            }
            Ok(Ended::Done)
        }),
        Command::Log {
            command: LogCommand::Types { storage },
        } => block_on(log_types(registry, storage)),
        Command::Log {
            command: LogCommand::Check { format, storage },
        } => block_on(async move {
            let store = storage.store(registry).await?;
            let progress = crate::progress::Progress::new("checking the log", "events");
            let checked = log_check(&store, &progress).await;
            progress.finish();
            let checked = checked?;
            write_list(
                &mut std::io::stdout().lock(),
                format,
                &checked,
                |(id, event_type, reads)| serde_json::json!({"event_id": id, "type": event_type, "reads": reads}),
                |(id, event_type, reads)| format!("{id} {event_type} {reads}"),
            )?;
            Ok(checked
                .iter()
                .all(|(_, _, reads)| reads == "typed" || reads == "raw")
                .into())
        }),
        Command::Log {
            command:
                LogCommand::Events {
                    event_type,
                    acting,
                    storage,
                },
        } => block_on(async move {
            let store = storage.store(registry).await?;
            let capabilities =
                ops_core_runtime::capability::Capabilities::load(store.clone()).await?;
            let gateway = ops_core_runtime::query::QueryGateway::new(
                store,
                std::sync::Arc::new(capabilities),
            );
            let read = gateway
                .events(
                    &event_type,
                    &capabilities::parse_actor(&acting.by)?,
                    capabilities::parse_capability(&acting.capability)?,
                )
                .await;
            let out = &mut std::io::stdout().lock();
            match read {
                Ok(events) => {
                    for event in events {
                        writeln!(
                            out,
                            "{}{}",
                            serde_json::to_string(&event.envelope)?,
                            if event.redacted.is_empty() {
                                String::new()
                            } else {
                                format!(" (redacted: {})", event.redacted.join(", "))
                            }
                        )?;
                    }
                    Ok(Ended::Done)
                }
                Err(denied @ ops_core_runtime::query::QueryError::Denied { .. }) => {
                    writeln!(out, "denied: {denied} (receipted)")?;
                    Ok(Ended::Refused)
                }
                Err(error) => Err(error.into()),
            }
        }),
    }
}

fn demo(
    registry: &'static Registry,
    installed_packs: &[&str],
    data: &Path,
) -> anyhow::Result<Ended> {
    let mut out = std::io::stdout().lock();
    demo::run(registry, installed_packs, &mut out)?;
    block_on(runtime_demo::run(registry, data, &mut out))?;
    Ok(Ended::Done)
}

fn registry_export(registry: &'static Registry, out: &Path) -> anyhow::Result<Ended> {
    let export = ops_registry::document::Export::of(registry)?;
    export
        .write_to(out)
        .with_context(|| format!("exporting the registry to {}", out.display()))?;
    writeln!(
        std::io::stdout(),
        "wrote {} and {} schemas",
        out.join("registry.json").display(),
        export.schemas.len()
    )?;
    Ok(Ended::Done)
}

async fn packs_orphaned(registry: &'static Registry, storage: Storage) -> anyhow::Result<Ended> {
    let store = storage.store(registry).await?;
    let installed: Vec<&str> = registry.packs().map(|pack| pack.id).collect();
    let recorded = ops_core_runtime::projection::recorded(store.db()).await?;
    let orphans = ops_core_runtime::migrate::orphans(store.db(), &installed, recorded).await?;
    for table in &orphans.tables {
        writeln!(std::io::stdout(), "table {table}")?;
    }
    for owner in &orphans.migration_owners {
        writeln!(std::io::stdout(), "migrations {owner}")?;
    }
    for projection in &orphans.projections {
        writeln!(std::io::stdout(), "projection {projection}")?;
    }
    if orphans == Default::default() {
        writeln!(std::io::stdout(), "nothing orphaned")?;
    }
    Ok(Ended::Done)
}

async fn projections_status(
    registry: &'static Registry,
    storage: Storage,
) -> anyhow::Result<Ended> {
    let store = storage.store(registry).await?;
    let paused = ops_core_runtime::faults::paused(&store).await?;
    let mut healthy = true;
    for status in ops_core_runtime::projection::all_freshness(&store).await? {
        let label = format!("{}/{}", status.owner, status.name);
        let paused = paused.get(&format!("projection {label}"));
        healthy &= status.within_objective && paused.is_none();
        writeln!(
            std::io::stdout(),
            "{label} v{}: lag {} ms of {} ms allowed ({}), {} applied, {} late, {} rebuilds{}",
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
            status.rebuilds,
            paused.map_or_else(String::new, |(_, receipt)| format!(
                "; PAUSED after faults in a row (receipt {receipt}): `ops-host projections rebuild` resumes it"
            )),
        )?;
    }
    // Exit 1 while anything printed needs attention, so a monitor can run it.
    Ok(Ended::from(healthy))
}

async fn projections_rebuild(
    registry: &'static Registry,
    projection: String,
    storage: Storage,
    releases: ReleaseMode,
) -> anyhow::Result<Ended> {
    let Some(found) = ops_core::projection::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|p| format!("{}/{}", p.pack_id(), p.name()) == projection)
    else {
        anyhow::bail!(BadInput(format!(
            "no installed projection `{projection}`; `ops-host projections status` lists them"
        )));
    };
    let out = &mut std::io::stdout().lock();
    let Some(store) = storage
        .pack_code_store(registry, Open::Existing, releases, out)
        .await?
    else {
        return Ok(Ended::Refused);
    };
    // Under the projection's lease, as a worker: a worker running it now is not raced.
    let leases = worker::one_off_leases(&store, "rebuild");
    let progress = crate::progress::Progress::new(&format!("rebuilding {projection}"), "events");
    let mut runner = ops_core_runtime::projection::ProjectionRunner::start_with_leases(
        store,
        found,
        leases.clone(),
    )?
    .with_progress(progress.callback());
    let rebuilt = runner.rebuild().await;
    progress.finish();
    leases.release_all().await?;
    rebuilt?;
    writeln!(
        out,
        "rebuilt {projection}: {} rows",
        runner.state().rows().len()
    )?;
    Ok(Ended::Done)
}

async fn log_types(registry: &'static Registry, storage: Storage) -> anyhow::Result<Ended> {
    let store = storage.store(registry).await?;
    for (event_type, count) in store.count_by_type().await? {
        let readable = if registry.current_name(&event_type).is_some() {
            "typed"
        } else {
            "raw envelope (type not installed)"
        };
        writeln!(std::io::stdout(), "{event_type} {count} {readable}")?;
    }
    Ok(Ended::Done)
}

/// Every stored event in commit order: its id, type and how it reads (`typed`, `raw`, or
/// `BROKEN: why`).
async fn log_check(
    store: &EventStore,
    progress: &crate::progress::Progress,
) -> anyhow::Result<Vec<(String, String, String)>> {
    use ops_core_runtime::store::CurrentPayload;
    let total = store.count().await?.max(0) as u64;
    let mut checked = Vec::new();
    let mut after = Default::default();
    loop {
        let batch = store.follow(after, 1_000).await?;
        if batch.events.is_empty() && batch.corrupt.is_empty() {
            return Ok(checked);
        }
        for corrupt in batch.corrupt {
            checked.push((
                corrupt.reference,
                String::new(),
                format!("BROKEN: {}", corrupt.reason),
            ));
        }
        for event in batch.events {
            let envelope = &event.envelope;
            let reads = match (envelope.verify(), store.current_payload(envelope)) {
                (Err(error), _) => format!("BROKEN: {error}"),
                (Ok(()), CurrentPayload::Current { .. }) => "typed".to_owned(),
                (Ok(()), CurrentPayload::UnknownType) => "raw".to_owned(),
                (Ok(()), CurrentPayload::Unreadable { reason }) => format!("BROKEN: {reason}"),
            };
            checked.push((
                envelope.event_id.to_string(),
                envelope.event_type.clone(),
                reads,
            ));
        }
        progress.advance(checked.len() as u64, total.max(checked.len() as u64));
        after = batch.next;
    }
}

/// The installed connector `id`; bad input naming it otherwise, and `where_listed`.
pub(crate) fn installed_connector(
    id: &str,
    where_listed: &str,
) -> anyhow::Result<&'static dyn ops_core::connector::DynConnector> {
    ops_core::connector::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|connector| connector.id() == id)
        .ok_or_else(|| {
            anyhow::Error::new(BadInput(format!(
                "no installed connector `{id}`; {where_listed}"
            )))
        })
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
                .or_bad_input()
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

fn upcast_all(registry: &Registry, input: &Path) -> anyhow::Result<Ended> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("reading {}", input.display()))
        .or_bad_input()?;
    let stored: Vec<StoredPayload> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected an array of stored payloads", input.display()))
        .or_bad_input()?;
    let names: Vec<&str> = stored
        .iter()
        .map(|stored| {
            registry
                .current_name(&stored.type_name)
                .unwrap_or(&stored.type_name)
        })
        .collect();
    let payloads = stored
        .iter()
        .zip(&names)
        .map(|(stored, name)| (*name, stored.version, stored.payload.clone()))
        .collect();
    // A faulting upcaster is a finding about that payload, not the end of the run.
    let answers: Vec<serde_json::Value> = crate::jailing::pack_code()?
        .upcast(registry, payloads)
        .into_iter()
        .map(|upcast| match upcast {
            Ok((version, payload)) => serde_json::json!({"version": version, "payload": payload}),
            Err(error) => serde_json::json!({"error": error}),
        })
        .collect();
    writeln!(std::io::stdout(), "{}", serde_json::to_string(&answers)?)?;
    Ok(Ended::Done)
}

/// `items` as `format` says: a pretty JSON array of `json`, or a line of `text` each.
pub(crate) fn write_list<T>(
    out: &mut impl Write,
    format: Format,
    items: &[T],
    json: impl Fn(&T) -> serde_json::Value,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = items.iter().map(json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        }
        Format::Text => {
            for item in items {
                writeln!(out, "{}", text(item))?;
            }
        }
    }
    Ok(())
}

/// The data directory, created owner-only when missing: it holds the log and key files.
pub(crate) fn create_data_directory(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(BadInput(format!(
            "--data {}: that is a file, not a folder; name a folder for the store",
            dir.display()
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}

/// Which store a verb opens: one that exists already, or one created and migrated if need
/// be (for verbs that do the work).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    Existing,
    Working,
}

impl Storage {
    /// The store for a verb that runs pack code: `None` (the refusal said on `out`) when
    /// what this binary links is not the active release and `mode` enforces that.
    pub(crate) async fn pack_code_store(
        &self,
        registry: &'static Registry,
        open: Open,
        mode: ReleaseMode,
        out: &mut impl Write,
    ) -> anyhow::Result<Option<EventStore>> {
        let store = match open {
            Open::Existing => self.store(registry).await?,
            Open::Working => self.working_store(registry).await?,
        };
        Ok(releases::may_run(&store, mode, out).await?.then_some(store))
    }

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

    /// The capabilities of the store, with the operators of `config`: the file given, else
    /// `ops.toml` in the data directory when there is one, else nobody.
    async fn capabilities(
        &self,
        registry: &'static Registry,
        config: &ConfigFile,
    ) -> anyhow::Result<ops_core_runtime::capability::Capabilities> {
        let config = self.config(config)?;
        let store = self.store(registry).await?;
        Ok(ops_core_runtime::capability::Capabilities::load(store)
            .await?
            .with_operators(config.operators()?))
    }

    /// The configuration: the file given, else `ops.toml` in the data directory when there
    /// is one, else the defaults (nobody is an operator).
    pub(crate) fn config(&self, config: &ConfigFile) -> anyhow::Result<Config> {
        let in_data = self.data.join("ops.toml");
        Ok(match &config.config {
            Some(path) => Config::load(path)?,
            None if self.database.is_none() && in_data.exists() => Config::load(&in_data)?,
            None => Config::default(),
        })
    }

    /// Where the subject keys live: `--keys`, else the data directory of an embedded
    /// store; none for a `--database` store without `--keys`.
    pub(crate) fn keys_dir(&self) -> Option<&Path> {
        match (&self.keys, &self.database) {
            (Some(dir), _) => Some(dir),
            (None, None) => Some(&self.data),
            (None, Some(_)) => None,
        }
    }

    /// Where the secrets backend keeps values: `[secrets] dir` of `config`, else the
    /// keys directory.
    pub(crate) fn secrets_dir(&self, config: &Config) -> Option<PathBuf> {
        config
            .secrets
            .dir
            .clone()
            .or_else(|| self.keys_dir().map(Path::to_path_buf))
    }

    /// The secrets provider of the store, checking on its capabilities; a backend that is
    /// not there yet is created only to `store` a value.
    async fn secrets(
        &self,
        registry: &'static Registry,
        config: &ConfigFile,
        store_value: bool,
    ) -> anyhow::Result<ops_core_runtime::secrets::SecretsProvider> {
        let dir = self.secrets_dir(&self.config(config)?).ok_or_else(|| {
            BadInput("a `--database` store keeps secrets where `--keys` or `[secrets] dir` says; give one".to_owned())
        })?;
        if !store_value && !dir.join(crate::story_demo::KEY_FILE).exists() {
            anyhow::bail!(BadInput(format!(
                "there is no secrets backend in {}; `ops-host secrets put` creates it",
                dir.display()
            )));
        }
        let store = self.store(registry).await?;
        let capabilities = ops_core_runtime::capability::Capabilities::load(store.clone()).await?;
        secrets::provider(&store, &dir, &capabilities).await
    }

    async fn open(&self, registry: &'static Registry, create: bool) -> anyhow::Result<EventStore> {
        let schema = self.schema.as_deref();
        let db = match (&self.database, create) {
            (Some(url), true) => Db::connect(url, schema).await?,
            (Some(url), false) => Db::connect_existing(url, schema).await?,
            (None, true) => {
                create_data_directory(&self.data)?;
                Db::open_sqlite(&self.data.join("ops.db")).await?
            }
            (None, false) => {
                let path = self.data.join("ops.db");
                if !path.exists() {
                    anyhow::bail!(BadInput(format!(
                        "there is no event log at {}; run `ops-host demo --data {}` first, or pass `--database URL`",
                        path.display(),
                        self.data.display()
                    )));
                }
                Db::open_sqlite_existing(&path).await?
            }
        };
        let store = if create {
            EventStore::open(db, registry).await?
        } else {
            EventStore::open_existing(db, registry).await?
        }
        .with_pack_code(crate::jailing::pack_code()?);
        // Personal data is sealed under the subject keys of the data directory, as the
        // demo keeps them; a store without them seals nothing.
        let Some(dir) = self.keys_dir() else {
            return Ok(store);
        };
        let kept = dir.join(crate::story_demo::KEY_FILE).exists();
        Ok(if create || kept {
            if create {
                create_data_directory(dir)?;
            }
            store.with_subject_keys(crate::story_demo::subject_keys(dir)?)
        } else {
            store
        })
    }
}
