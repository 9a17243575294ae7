//! The runtime as every verb receives it ([`Services`]): the store the storage flags name
//! (as it is, or created and migrated for verbs that work), with its subject keys and pack
//! code, the configuration in force, the capabilities with its operators, the bus and the
//! secrets provider built from them, and the checks every verb passes the same way: pack
//! code runs only as active releases (`pack_code_services`), and an operator's action only
//! on a capability that allows it (`acting_services`, `Services::allowed`). Where the
//! store's files live (the data directory, its key files) is defined here, once, for
//! production and demo alike.
use ops_core_runtime::service_capability;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use ops_core::governance::Pins;
use ops_core::id::CapabilityId;
use ops_core::registry::Registry;
use ops_core::supply_chain::Release;
use ops_core::time::Timestamp;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::clock::WallClock;
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::db::Db;
use ops_core_runtime::secrets::{EncryptedFile, SecretsProvider};
use ops_core_runtime::shredding::SubjectKeys;
use ops_core_runtime::signing::Trust;
use ops_core_runtime::store::EventStore;
use ops_core_runtime::supply_chain::Releases;

use crate::cli::{Acting, ReleaseMode, Storage};
use crate::config::Config;
use crate::outcome::BadInput;
use crate::webhook::WebhookExecutor;

/// What every verb is given besides its own arguments: the registry this binary links and
/// the global flags.
pub(crate) struct Context<'a> {
    pub registry: &'static Registry,
    pub installed_packs: &'a [&'a str],
    /// Whether pack code runs only as active releases.
    pub releases: ReleaseMode,
}

/// The key file of a data directory (or `--keys`, or `[secrets] dir`): it seals the
/// subject keys and the secrets backend, and is kept owner-only.
pub const KEY_FILE: &str = "secrets.key";

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

/// The runtime a verb works with, assembled once from the storage flags and `ops.toml`:
/// the store (as it is, or set up for work), the configuration, and the capabilities with
/// the configuration's operators. The bus, the secrets provider and the checks every verb
/// passes (`allowed`, `Storage::pack_code_services`) are built from these, the same way for
/// every verb.
pub(crate) struct Services {
    pub store: EventStore,
    pub config: Config,
    pub capabilities: Capabilities,
    /// Where the secrets backend keeps values (`[secrets] dir`, else the keys directory).
    secrets_dir: Option<PathBuf>,
}

impl Services {
    /// The command bus, checking on these capabilities.
    pub fn bus(&self) -> anyhow::Result<CommandBus> {
        Ok(CommandBus::new(
            self.store.clone(),
            Arc::new(self.capabilities.clone()),
        )?)
    }

    /// Whether `acting` may take the operator's `action` (`core.<area>.<Verb>`) on
    /// `subject`: checked on its capability; a denial is receipted and said on `out`, and
    /// the verb then ends refused (exit 1) having done nothing.
    ///
    /// The operator's action is recorded first (see [`Acting::taken`]) and answered when
    /// it is allowed, for the receipts the verb goes on to record.
    pub async fn allowed(
        &self,
        acting: &Acting,
        action: &str,
        subject: &str,
        out: &mut impl Write,
    ) -> anyhow::Result<Option<(ops_core_runtime::acting::Acting, CapabilityId)>> {
        let (by, capability) = acting.taken(&self.store, action).await?;
        match self
            .capabilities
            .authorize_step(capability, &by, action, subject.to_owned())
            .await?
        {
            Ok(_) => Ok(Some((by, capability))),
            Err(reason) => {
                writeln!(
                    out,
                    "denied: {capability} does not allow `{action}`: {reason} (receipted)"
                )?;
                Ok(None)
            }
        }
    }

    /// The secrets provider of the store, checking on its capabilities; a backend that is
    /// not there yet is created only to `store` a value.
    pub async fn secrets(&self, store_value: bool) -> anyhow::Result<SecretsProvider> {
        let dir = self.secrets_dir.as_deref().ok_or_else(|| {
            BadInput("a `--database` store keeps secrets where `--keys` or `[secrets] dir` says; give one".to_owned())
        })?;
        if !store_value && !dir.join(KEY_FILE).exists() {
            anyhow::bail!(BadInput(format!(
                "there is no secrets backend in {}; `ops-host secrets put` creates it",
                dir.display()
            )));
        }
        provider(&self.store, dir, &self.capabilities).await
    }
}

impl Storage {
    /// The runtime over the store as it is (which must exist: inspecting verbs never
    /// create one), or, `Open::Working`, over one created under `--data` if missing with
    /// every installed pack's migrations run.
    pub(crate) async fn services(&self, ctx: &Context<'_>, open: Open) -> anyhow::Result<Services> {
        let config = self.config()?;
        let store = match open {
            Open::Existing => self.store(ctx.registry).await?,
            Open::Working => self.working_store(ctx.registry).await?,
        };
        let capabilities = Capabilities::load(store.clone())
            .await?
            .with_operators(config.operators()?);
        Ok(Services {
            secrets_dir: self.secrets_dir(&config),
            store,
            config,
            capabilities,
        })
    }

    /// The runtime for a verb that runs pack code: `None` (the refusal said on `out`) when
    /// what this binary links is not the active release and `ctx` enforces that.
    pub(crate) async fn pack_code_services(
        &self,
        ctx: &Context<'_>,
        open: Open,
        out: &mut impl Write,
    ) -> anyhow::Result<Option<Services>> {
        let services = self.services(ctx, open).await?;
        Ok(may_run(&services.store, ctx.releases, out)
            .await?
            .then_some(services))
    }

    /// The runtime for an operator's `action` (`core.<area>.<Verb>`) on `subject` that
    /// runs pack code, as `acting`: `None` (said on `out`) when the releases refuse it, or
    /// when `acting`'s capability does not allow it (the denial receipted).
    pub(crate) async fn acting_services(
        &self,
        ctx: &Context<'_>,
        open: Open,
        (acting, action, subject): (&Acting, &str, &str),
        out: &mut impl Write,
    ) -> anyhow::Result<Option<Services>> {
        let Some(services) = self.pack_code_services(ctx, open, out).await? else {
            return Ok(None);
        };
        let allowed = services.allowed(acting, action, subject, out).await?;
        Ok(allowed.map(|_| services))
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

    /// The configuration file in force: `--config`, else `ops.toml` in the data directory
    /// of an embedded store when there is one.
    pub(crate) fn config_path(&self) -> Option<PathBuf> {
        let in_data = self.data.join("ops.toml");
        match &self.config {
            Some(path) => Some(path.clone()),
            None if self.database.is_none() && in_data.exists() => Some(in_data),
            None => None,
        }
    }

    /// The configuration in force ([`Storage::config_path`]), else the defaults (nobody is
    /// an operator, no destination is served).
    pub(crate) fn config(&self) -> anyhow::Result<Config> {
        Ok(match self.config_path() {
            Some(path) => Config::load(&path)?,
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

    /// Where the secrets backend keeps values under `config`.
    pub(crate) fn secrets_dir(&self, config: &Config) -> Option<PathBuf> {
        secrets_dir(config, self.keys_dir())
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
        let kept = dir.join(KEY_FILE).exists();
        Ok(if create || kept {
            if create {
                create_data_directory(dir)?;
            }
            store.with_subject_keys(subject_keys(dir)?)
        } else {
            store
        })
    }
}

/// Where the secrets backend keeps values: `[secrets] dir` of `config`, else the keys
/// directory.
pub(crate) fn secrets_dir(config: &Config, keys_dir: Option<&Path>) -> Option<PathBuf> {
    config
        .secrets
        .dir
        .clone()
        .or_else(|| keys_dir.map(Path::to_path_buf))
}

/// The secrets provider over `dir/secrets.json`, sealed with `dir/secrets.key` (kept
/// owner-only), checking on `capabilities`.
pub async fn provider(
    store: &EventStore,
    dir: &Path,
    capabilities: &Capabilities,
) -> anyhow::Result<SecretsProvider> {
    create_data_directory(dir)?;
    let backend = EncryptedFile::open(&dir.join("secrets.json"), Some(&dir.join(KEY_FILE)))?;
    Ok(SecretsProvider::open(
        store.clone(),
        Box::new(backend),
        Arc::new(capabilities.clone()),
    )
    .await?)
}

/// The id of the `n`th grant of the name `name` (the first is 1). A name is granted again
/// under a new id once its last grant ended (revoked or expired): an ended name never
/// blocks a new grant, and whatever acts on the name moves to the new one.
fn nth_named(name: &str, n: u32) -> anyhow::Result<CapabilityId> {
    Ok(if n <= 1 {
        CapabilityId::of(&("ops-host capability", name))?
    } else {
        CapabilityId::of(&("ops-host capability", name, n))?
    })
}

/// What the name `name` (`capabilities grant NAME`) stands for now.
pub struct Named {
    /// Its latest grant (live or ended), or the id its first grant will take.
    pub id: CapabilityId,
    /// The id a new grant of the name takes: its latest's while that is live (so the
    /// runtime refuses it as existing), the next one once it ended.
    pub next_grant: CapabilityId,
}

/// The capability an operator named `name`, as the log has it now.
pub fn named(capabilities: &Capabilities, name: &str) -> anyhow::Result<Named> {
    let now = Timestamp::now();
    let mut n = 1;
    let mut latest = None;
    loop {
        let id = nth_named(name, n)?;
        match capabilities.ended_at(id, now) {
            Some(ended) => latest = Some((id, ended)),
            None => break,
        }
        n += 1;
    }
    Ok(match latest {
        None => Named {
            id: nth_named(name, 1)?,
            next_grant: nth_named(name, 1)?,
        },
        Some((id, false)) => Named { id, next_grant: id },
        Some((id, true)) => Named {
            id,
            next_grant: nth_named(name, n)?,
        },
    })
}

/// The subject keys kept in `data_dir` (`subject-keys.json`), sealed with its key file:
/// where that file is, personal data is sealed.
pub fn subject_keys(data_dir: &Path) -> anyhow::Result<Arc<SubjectKeys>> {
    let backend = EncryptedFile::open(
        &data_dir.join("subject-keys.json"),
        Some(&data_dir.join(KEY_FILE)),
    )?;
    Ok(Arc::new(SubjectKeys::new(Box::new(backend))))
}

/// What this binary runs, as releases: installed packs, contract modules, the webhook tool.
pub fn installed(registry: &Registry) -> Vec<Release> {
    let mut installed = ops_registry::releases::installed(registry);
    installed.push(WebhookExecutor::manifest().release(Pins {
        core_version: ops_core::VERSION.to_owned(),
        ..Pins::default()
    }));
    installed
}

/// Each installed release that is not the active release of its artifact, with why not.
pub async fn inactive(
    store: &EventStore,
    registry: &Registry,
) -> anyhow::Result<Vec<(Release, String)>> {
    Ok(standing(store, registry)
        .await?
        .into_iter()
        .filter(|(_, state)| state != "active")
        .collect())
}

/// Every installed release and whether it is active (`active`, or why not).
pub(crate) async fn standing(
    store: &EventStore,
    registry: &Registry,
) -> anyhow::Result<Vec<(Release, String)>> {
    // Only read: what was verified was verified when it was activated.
    let book = Releases::load(
        store.clone(),
        Trust::default(),
        service_capability::of(service_capability::READER),
    )
    .await?
    .book();
    Ok(installed(registry)
        .into_iter()
        .map(|release| {
            let content_id = release.content_id();
            let state = match book.active(release.kind, &release.name) {
                Some((active, _)) if *active == content_id => "active".to_owned(),
                Some((active, running)) => format!(
                    "NOT ACTIVE: the active release is {} {active}",
                    running.version
                ),
                None if book.release(&content_id).is_some() => {
                    "NOT ACTIVE: recorded only".to_owned()
                }
                None => "NOT ACTIVE: never recorded".to_owned(),
            };
            (release, state)
        })
        .collect())
}

/// Whether pack code may run on `store` in `mode`: says which linked release is not the
/// active one, and in enforce mode refuses then.
pub async fn may_run(
    store: &EventStore,
    mode: ReleaseMode,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let inactive = inactive(store, store.registry()).await?;
    for (release, state) in &inactive {
        writeln!(
            out,
            "release {} {}: {state}",
            release.label(),
            release.content_id()
        )?;
    }
    if inactive.is_empty() || mode == ReleaseMode::Warn {
        return Ok(true);
    }
    writeln!(
        out,
        "refused to run: {} of what this binary links is not the active release; `ops-host releases activate --key-file FILE` signs and activates it (or pass `--releases warn`)",
        inactive.len()
    )?;
    Ok(false)
}
