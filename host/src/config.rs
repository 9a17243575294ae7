//! `ops.toml`: where the worker's effects go and the fences around them. Every destination
//! the worker posts to is declared with its URL and its quota, fail closed: there is no
//! default quota, and a destination not declared is not served. `ops-host config check`
//! reads a file and says what it declares, or what is wrong and where.
//!
//! ```toml
//! operators = ["human:operator@example.com"]   # who may grant root capabilities
//! trusted_keys = ["3b6a27bc…"]  # Ed25519 keys (hex) whose signatures activate releases
//!                               # and policies
//!
//! [gateway]
//! kill_all = false      # stop every effect
//! hold_seconds = 0      # an irreversible effect waits this long, cancellable meanwhile
//! attempts = 5          # unconfirmed attempts before an effect fails
//! approval_wait_seconds = 86400  # an effect no policy covers waits this long for an
//!                                # operator's approval (`ops-host effects approve`)
//!
//! [destinations."webhook.oncall"]
//! url = "http://127.0.0.1:8080/oncall"
//! quota = { effects = 20, per_seconds = 86400 }
//! killed = false        # stop this destination's effects
//! hold_seconds = 300    # this destination's hold, in place of the gateway's
//! attempts = 3          # this destination's attempts, in place of the gateway's
//! # a bearer token from the secrets provider (`ops-host secrets put`), asked for as
//! # `service:ops-host` on this capability; sent only over https or to loopback
//! credential = { secret = "webhook.oncall.token", capability = "cap_…" }
//! ca_file = "private-ca.pem"  # trust this authority for an https URL, besides Mozilla's
//!
//! [secrets]
//! dir = "/var/lib/ops/keys"   # secrets.json and its key secrets.key; default: the keys
//!                             # directory (`--keys`, else the data directory)
//!
//! [projections."incidents/incident_board"]
//! max_lag_ms = 10000    # its freshness objective, in place of the one its pack declares
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::webhook::{Credential, WebhookExecutor};
use anyhow::Context;
use ops_core::capability::Authority;
use ops_core::envelope::Actor;
use ops_core_runtime::connector::{ConnectorOptions, ReadModel};
use ops_core_runtime::egress::{ApprovalPolicy, Dispatcher, Gateway};
use ops_core_runtime::secrets::SecretsProvider;
use ops_core_runtime::signing::Trust;
use ops_core_runtime::store::EventStore;
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use crate::outcome::BadInput;

/// How long a destination credential's handle lasts; a worker renews it before it ends.
const CREDENTIAL_HANDLE_LIFETIME: std::time::Duration = ops_core::time::DAY;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The actors who may grant root capabilities (`human:ID`, `service:ID`, `agent:ID`).
    #[serde(default)]
    pub operators: Vec<String>,
    /// Ed25519 verifying keys (hex) whose signatures may activate releases and policies.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    #[serde(default)]
    pub gateway: GatewaySettings,
    #[serde(default)]
    pub destinations: BTreeMap<String, Destination>,
    #[serde(default)]
    pub secrets: SecretsSettings,
    /// `<pack>/<name>` → its objective.
    #[serde(default)]
    pub projections: BTreeMap<String, Objective>,
    /// `<pack>` → the limits of its runner (`[packs.incidents] call_ms = 2000`).
    #[serde(default)]
    pub packs: BTreeMap<String, PackLimits>,
    /// `<connector id>` → how its source is read (`[connectors.tickets] max_record_bytes`).
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorSettings>,
}

/// A connector's reading, as the operator sets it: the longest record, and how its
/// streams are read (A8), each stream as the connector unless `streams` says otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// The longest record read; a longer one is quarantined with its size. 1 MiB unless
    /// set; at most 1 GiB.
    pub max_record_bytes: Option<u64>,
    pub min_interval_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub initial_backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    /// `<stream>` → how that stream is read, over the connector's settings.
    #[serde(default)]
    pub streams: BTreeMap<String, ReadSettings>,
}

/// A stream's rate limit and retry model, as the operator sets them; each left out keeps
/// what the connector says, or the default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSettings {
    /// At least this long between two reads of the source (0: no rate limit).
    pub min_interval_ms: Option<u64>,
    /// Reads of one page before a source that is away is given up on (1 to 100).
    pub max_attempts: Option<u32>,
    /// The first retry waits this long; each next one twice as long, up to
    /// `max_backoff_ms`.
    pub initial_backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
}

/// The longest wait a read model may set: a day.
const MOST_READ_WAIT_MS: u64 = 86_400_000;

impl ReadSettings {
    /// `base` with what these settings set.
    fn over(&self, base: ReadModel) -> ReadModel {
        let ms = |set: Option<u64>, base: Duration| set.map_or(base, Duration::from_millis);
        ReadModel {
            min_interval: ms(self.min_interval_ms, base.min_interval),
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_backoff: ms(self.initial_backoff_ms, base.initial_backoff),
            max_backoff: ms(self.max_backoff_ms, base.max_backoff),
        }
    }

    /// What is wrong with the model these settings give over `base`, naming the key under
    /// `at` (`connectors."tickets"`).
    fn check(&self, base: ReadModel, at: &str) -> Result<ReadModel, String> {
        for (key, value) in [
            ("min_interval_ms", self.min_interval_ms),
            ("initial_backoff_ms", self.initial_backoff_ms),
            ("max_backoff_ms", self.max_backoff_ms),
        ] {
            if let Some(value) = value.filter(|value| *value > MOST_READ_WAIT_MS) {
                return Err(format!(
                    "`{at}.{key}` is {value}; give at most {MOST_READ_WAIT_MS} (a day)"
                ));
            }
        }
        if let Some(attempts) = self.max_attempts.filter(|n| !(1..=100).contains(n)) {
            return Err(format!("`{at}.max_attempts` is {attempts}; give 1 to 100"));
        }
        let model = self.over(base);
        if model.max_backoff < model.initial_backoff {
            return Err(format!(
                "`{at}`: `max_backoff_ms` ({}) is shorter than `initial_backoff_ms` ({}); give a longest wait at least as long as the first",
                model.max_backoff.as_millis(),
                model.initial_backoff.as_millis()
            ));
        }
        Ok(model)
    }
}

impl ConnectorSettings {
    fn reading(&self) -> ReadSettings {
        ReadSettings {
            min_interval_ms: self.min_interval_ms,
            max_attempts: self.max_attempts,
            initial_backoff_ms: self.initial_backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
        }
    }
}

/// The longest record a connector may be told to read.
const MOST_RECORD_BYTES: u64 = 1 << 30;

/// A pack's runner limits, as the operator sets them; each left out keeps its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackLimits {
    /// How long one call of its code may take, in milliseconds.
    pub call_ms: Option<u64>,
    /// Its runner's address space, in MiB.
    pub memory_mib: Option<u64>,
}

/// The least address space a runner starts in: the host binary itself is mapped into it.
const LEAST_RUNNER_MIB: u64 = 64;

/// A projection's freshness objective, as the operator sets it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    pub max_lag_ms: u64,
}

/// Where the secrets backend keeps values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSettings {
    pub dir: Option<std::path::PathBuf>,
}

/// A destination's bearer credential: which secret, on which capability.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSettings {
    pub secret: String,
    pub capability: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    #[serde(default)]
    pub kill_all: bool,
    #[serde(default)]
    pub hold_seconds: u64,
    /// `None`: an effect is tried until it is confirmed.
    pub attempts: Option<u32>,
    #[serde(default = "a_day")]
    pub approval_wait_seconds: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            kill_all: false,
            hold_seconds: 0,
            attempts: None,
            approval_wait_seconds: a_day(),
        }
    }
}

/// The longest duration a configuration may give: a hundred years.
pub const MAX_SECONDS: u64 = 100 * 365 * 86_400;

fn a_day() -> u64 {
    86_400
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub url: String,
    pub quota: Quota,
    #[serde(default)]
    pub killed: bool,
    /// In place of the gateway's.
    pub hold_seconds: Option<u64>,
    pub attempts: Option<u32>,
    pub credential: Option<CredentialSettings>,
    /// PEM certificates of authorities to trust for this destination, besides Mozilla's.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// At most this many executed effects…
    pub effects: i64,
    /// …in any window of this many seconds.
    pub per_seconds: u64,
}

impl Config {
    /// Reads and checks `path`; what is wrong is bad input, named with its place.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| BadInput(format!("reading {}: {error}", path.display())))?;
        let config: Config = toml::from_str(&text).map_err(|error| {
            BadInput(
                format!("{}: {}", path.display(), error.message())
                    + &error
                        .span()
                        .map(|span| format!(" (line {})", line_of(&text, span.start)))
                        .unwrap_or_default(),
            )
        })?;
        config.check().map_err(|problem| {
            anyhow::Error::new(BadInput(format!("{}: {problem}", path.display())))
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        self.operators()
            .map_err(|error| format!("`operators`: {error:#}"))?;
        self.durations_in_range()?;
        self.trusted_keys()?;
        for (connector, settings) in &self.connectors {
            if let Some(bytes) = settings.max_record_bytes
                && !(1..=MOST_RECORD_BYTES).contains(&bytes)
            {
                return Err(format!(
                    "`connectors.\"{connector}\".max_record_bytes` is {bytes}; give 1 to {MOST_RECORD_BYTES} (1 GiB)"
                ));
            }
            let at = format!("connectors.\"{connector}\"");
            let reading = settings.reading().check(ReadModel::default(), &at)?;
            for (stream, stream_settings) in &settings.streams {
                if !ops_core_runtime::connector::is_name(stream) {
                    return Err(format!(
                        "`{at}.streams.\"{stream}\"` is not a stream name (`[a-z][a-z0-9_-]*`)"
                    ));
                }
                stream_settings.check(reading, &format!("{at}.streams.\"{stream}\""))?;
            }
        }
        for (pack, limits) in &self.packs {
            if !ops_core::projection::is_valid_name(pack) {
                return Err(format!(
                    "`packs.\"{pack}\"` is not a pack id (`[a-z][a-z0-9_]*`)"
                ));
            }
            if limits.call_ms == Some(0) {
                return Err(format!("`packs.\"{pack}\".call_ms` is 0; give at least 1"));
            }
            if let Some(mib) = limits.memory_mib
                && !(LEAST_RUNNER_MIB..=1 << 24).contains(&mib)
            {
                return Err(format!(
                    "`packs.\"{pack}\".memory_mib` is {mib}; give {LEAST_RUNNER_MIB} to {} (16 TiB)",
                    1u64 << 24
                ));
            }
        }
        let no_attempts = |at: &str| {
            format!("`{at}.attempts` is 0; give at least 1, or leave it out to try until confirmed")
        };
        if self.gateway.attempts == Some(0) {
            return Err(no_attempts("gateway"));
        }
        for (name, destination) in &self.destinations {
            let at = format!("`destinations.\"{name}\"`");
            if destination.attempts == Some(0) {
                return Err(no_attempts(&format!("destinations.\"{name}\"")));
            }
            let uri: hyper::Uri = destination
                .url
                .parse()
                .map_err(|error| format!("{at}.url `{}` is not a URL: {error}", destination.url))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(format!(
                    "{at}.url `{}` is not an http or https URL",
                    destination.url
                ));
            }
            if let Some(credential) = &destination.credential {
                credential
                    .capability
                    .parse::<ops_core::id::CapabilityId>()
                    .map_err(|error| {
                        format!(
                            "{at}.credential.capability `{}`: {error}",
                            credential.capability
                        )
                    })?;
                // The executor refuses a token over plain http; say so when the file is read.
                WebhookExecutor::new(&destination.url)
                    .and_then(|executor| executor.refuses_credential().map_or(Ok(()), Err))
                    .map_err(|reason| format!("{at}.credential: {reason}"))?;
            }
            if let Some(file) = &destination.ca_file {
                ca_roots(file).map_err(|reason| format!("{at}.ca_file: {reason}"))?;
            }
            if destination.quota.effects <= 0 || destination.quota.per_seconds == 0 {
                return Err(format!(
                    "{at}.quota allows nothing; give `effects` and `per_seconds` above 0"
                ));
            }
        }
        Ok(())
    }

    /// Every duration at most [`MAX_SECONDS`]: beyond that a time plus it is not representable,
    /// and a duration that cannot be represented is refused here rather than wrapped or
    /// saturated where it is used.
    fn durations_in_range(&self) -> Result<(), String> {
        let mut seconds: Vec<(String, Option<u64>)> = vec![
            (
                "gateway.hold_seconds".into(),
                Some(self.gateway.hold_seconds),
            ),
            (
                "gateway.approval_wait_seconds".into(),
                Some(self.gateway.approval_wait_seconds),
            ),
        ];
        for (name, destination) in &self.destinations {
            let at = format!("destinations.\"{name}\"");
            seconds.push((format!("{at}.hold_seconds"), destination.hold_seconds));
            seconds.push((
                format!("{at}.quota.per_seconds"),
                Some(destination.quota.per_seconds),
            ));
        }
        for (pack, limits) in &self.packs {
            seconds.push((
                format!("packs.\"{pack}\".call_ms"),
                limits.call_ms.map(|ms| ms / 1000),
            ));
        }
        for (name, objective) in &self.projections {
            seconds.push((
                format!("projections.\"{name}\".max_lag_ms"),
                Some(objective.max_lag_ms / 1000),
            ));
        }
        match seconds
            .into_iter()
            .find(|(_, value)| value.is_some_and(|value| value > MAX_SECONDS))
        {
            Some((key, _)) => Err(format!(
                "`{key}` is longer than a hundred years ({MAX_SECONDS} seconds), the longest duration this host represents; give a shorter one"
            )),
            None => Ok(()),
        }
    }

    /// How connector `id` reads its streams: the defaults, with what this configuration
    /// sets for it and for each of its streams (checked when it was loaded).
    pub fn connector_options(&self, id: &str) -> ConnectorOptions {
        let Some(settings) = self.connectors.get(id) else {
            return ConnectorOptions::default();
        };
        let reading = settings.reading().over(ReadModel::default());
        ConnectorOptions {
            reading,
            streams: settings
                .streams
                .iter()
                .map(|(stream, settings)| (stream.clone(), settings.over(reading)))
                .collect(),
            ..ConnectorOptions::default()
        }
    }

    /// The longest record connector `id` reads.
    pub fn max_record_bytes(&self, id: &str) -> usize {
        self.connectors
            .get(id)
            .and_then(|settings| settings.max_record_bytes)
            .map_or(ops_core_runtime::connector::MAX_RECORD_BYTES, |bytes| {
                bytes as usize
            })
    }

    /// Each configured pack's runner limits, the defaults where it sets none.
    pub fn pack_limits(&self) -> Vec<(String, ops_core_runtime::jail::Limits)> {
        let default = ops_core_runtime::jail::Limits::default();
        self.packs
            .iter()
            .map(|(pack, limits)| {
                (
                    pack.clone(),
                    ops_core_runtime::jail::Limits {
                        call_time: limits
                            .call_ms
                            .map_or(default.call_time, std::time::Duration::from_millis),
                        memory_bytes: limits
                            .memory_mib
                            .map_or(default.memory_bytes, |mib| mib << 20),
                    },
                )
            })
            .collect()
    }

    /// The objective of each configured projection, refused when one is not installed.
    pub fn objectives(
        &self,
        installed: &[&'static dyn ops_core::projection::DynProjection],
    ) -> anyhow::Result<BTreeMap<String, u64>> {
        let names: Vec<String> = installed
            .iter()
            .map(|projection| format!("{}/{}", projection.pack_id(), projection.name()))
            .collect();
        for name in self.projections.keys() {
            if !names.contains(name) {
                anyhow::bail!(BadInput(format!(
                    "`projections.\"{name}\"` names no installed projection; installed: {}",
                    names.join(", ")
                )));
            }
        }
        Ok(self
            .projections
            .iter()
            .map(|(name, objective)| (name.clone(), objective.max_lag_ms))
            .collect())
    }

    /// The trusted keys, parsed; which one is not a key, if one is not.
    pub fn trusted_keys(&self) -> Result<Vec<ed25519_dalek::VerifyingKey>, String> {
        self.trusted_keys
            .iter()
            .enumerate()
            .map(|(n, text)| {
                hex::decode(text.trim())
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .and_then(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok())
                    .ok_or_else(|| {
                        format!(
                            "`trusted_keys[{n}]` `{text}` is not an Ed25519 key in 64 hex digits"
                        )
                    })
            })
            .collect()
    }

    /// What signatures this host trusts, and the pins it runs against.
    pub fn trust(&self, registry: &ops_core::registry::Registry) -> anyhow::Result<Trust> {
        Ok(Trust {
            keys: self.trusted_keys().map_err(BadInput)?,
            environment: ops_registry::releases::environment(registry),
        })
    }

    /// The operators, as actors (checked when the file was read).
    pub fn operators(&self) -> anyhow::Result<Vec<ops_core::envelope::Actor>> {
        self.operators
            .iter()
            .map(|operator| crate::vocabulary::parse_actor(operator))
            .collect()
    }

    /// A dispatcher named `name` that posts each declared destination's effects through
    /// its executor (from [`Config::executors`]), through the gateway these fences make,
    /// with `policies` to approve effects.
    pub fn dispatcher(
        &self,
        store: EventStore,
        name: &str,
        policies: Vec<Box<dyn ApprovalPolicy>>,
        authority: Arc<dyn Authority>,
        executors: &BTreeMap<String, Arc<WebhookExecutor>>,
    ) -> Dispatcher {
        executors.iter().fold(
            Dispatcher::new(store, name, self.gateway(policies), authority),
            |dispatcher, (destination, executor)| {
                dispatcher.with_executor(destination, Box::new(executor.clone()))
            },
        )
    }

    /// An executor per declared destination, posting to its URL (trusting its `ca_file`,
    /// with its bearer credential from `credentials` if it has one): made once, so a
    /// worker's ticks share their clients, connections and TLS setup.
    pub fn executors(
        &self,
        credentials: &BTreeMap<String, Arc<Credential>>,
    ) -> anyhow::Result<BTreeMap<String, Arc<WebhookExecutor>>> {
        self.destinations
            .iter()
            .map(|(destination, declared)| {
                let roots = match &declared.ca_file {
                    Some(file) => ca_roots(file).map_err(anyhow::Error::msg)?,
                    None => Vec::new(),
                };
                let mut executor =
                    WebhookExecutor::trusting(&declared.url, &roots).map_err(anyhow::Error::msg)?;
                if let Some(credential) = credentials.get(destination) {
                    executor = executor
                        .with_credential(credential.clone())
                        .map_err(anyhow::Error::msg)?;
                }
                Ok((destination.clone(), Arc::new(executor)))
            })
            .collect()
    }

    /// The bearer credential of each destination that declares one: a handle to its
    /// secret, asked for as `host` on the capability the file names (checked and
    /// receipted by the provider), good for a day and renewed before it ends.
    pub async fn credentials(
        &self,
        provider: &Arc<SecretsProvider>,
        host: &Actor,
    ) -> anyhow::Result<BTreeMap<String, Arc<Credential>>> {
        let mut credentials = BTreeMap::new();
        for (destination, declared) in &self.destinations {
            let Some(wanted) = &declared.credential else {
                continue;
            };
            let capability: ops_core::id::CapabilityId = wanted
                .capability
                .parse()
                .map_err(|error| BadInput(format!("`{}`: {error}", wanted.capability)))?;
            let handle = provider
                .handle(
                    &wanted.secret,
                    host,
                    capability,
                    ops_core::id::CorrelationId::of(destination)?,
                    CREDENTIAL_HANDLE_LIFETIME,
                )
                .await
                .with_context(|| format!("the credential of `{destination}`"))?;
            credentials.insert(
                destination.clone(),
                Arc::new(Credential::new(
                    provider.clone(),
                    handle,
                    CREDENTIAL_HANDLE_LIFETIME,
                    destination,
                    host.clone(),
                    capability,
                )),
            );
        }
        Ok(credentials)
    }

    /// Whether any destination declares a credential.
    pub fn wants_credentials(&self) -> bool {
        self.destinations
            .values()
            .any(|destination| destination.credential.is_some())
    }

    fn gateway(&self, policies: Vec<Box<dyn ApprovalPolicy>>) -> Gateway {
        Gateway {
            kill_all: self.gateway.kill_all,
            killed: self
                .destinations
                .iter()
                .filter(|(_, destination)| destination.killed)
                .map(|(name, _)| name.clone())
                .collect(),
            quotas: self
                .destinations
                .iter()
                .map(|(name, destination)| {
                    (
                        name.clone(),
                        (
                            destination.quota.effects,
                            Duration::from_secs(destination.quota.per_seconds),
                        ),
                    )
                })
                .collect(),
            policies,
            hold: Duration::from_secs(self.gateway.hold_seconds),
            holds: self
                .destinations
                .iter()
                .filter_map(|(name, destination)| {
                    Some((name.clone(), Duration::from_secs(destination.hold_seconds?)))
                })
                .collect(),
            max_attempts: self.gateway.attempts,
            attempts: self
                .destinations
                .iter()
                .filter_map(|(name, destination)| Some((name.clone(), destination.attempts?)))
                .collect(),
            approval_wait: Some(Duration::from_secs(self.gateway.approval_wait_seconds)),
            ..Gateway::default()
        }
    }

    /// What it declares, a line each, for `config check`.
    pub fn describe(&self) -> Vec<String> {
        let gateway = &self.gateway;
        let mut lines = vec![
            format!(
                "operators (may grant root capabilities): {}",
                if self.operators.is_empty() {
                    "none".to_owned()
                } else {
                    self.operators.join(", ")
                }
            ),
            format!(
                "trusted signing keys: {}",
                if self.trusted_keys.is_empty() {
                    "none".to_owned()
                } else {
                    self.trusted_keys.join(", ")
                }
            ),
        ];
        lines.push(format!(
            "gateway: {}, irreversible effects held {} s, {}, effects no policy covers wait {} s for an approval",
            if gateway.kill_all {
                "EVERYTHING STOPPED"
            } else {
                "running"
            },
            gateway.hold_seconds,
            gateway
                .attempts
                .map_or("tried until confirmed".to_owned(), |n| format!(
                    "{n} attempts"
                )),
            gateway.approval_wait_seconds
        ));
        lines.extend(self.projections.iter().map(|(name, objective)| {
            format!(
                "projection {name}: fresh within {} ms",
                objective.max_lag_ms
            )
        }));
        for id in self.connectors.keys() {
            let options = self.connector_options(id);
            lines.push(format!(
                "connector {id}: records of at most {} bytes; {}",
                self.max_record_bytes(id),
                options.reading
            ));
            lines.extend(
                options
                    .streams
                    .iter()
                    .map(|(stream, model)| format!("connector {id}, stream {stream}: {model}")),
            );
        }
        lines.extend(self.pack_limits().into_iter().map(|(pack, limits)| {
            format!(
                "pack {pack}: each call of its code within {} ms, its runner in {} MiB",
                limits.call_time.as_millis(),
                limits.memory_bytes >> 20
            )
        }));
        lines.extend(self.destinations.iter().map(|(name, destination)| {
            format!(
                "destination {name}: {} at most {} effects per {} s{}{}{}",
                destination.url,
                destination.quota.effects,
                destination.quota.per_seconds,
                destination
                    .hold_seconds
                    .map(|hold| format!(", irreversible effects held {hold} s"))
                    .unwrap_or_default(),
                destination
                    .attempts
                    .map(|n| format!(", {n} attempts"))
                    .unwrap_or_default()
                    + &destination
                        .credential
                        .as_ref()
                        .map(|c| format!(", bearer credential `{}`", c.secret))
                        .unwrap_or_default(),
                if destination.killed { ", STOPPED" } else { "" }
            )
        }));
        lines
    }
}

/// The certificates of a PEM file, to trust.
fn ca_roots(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .and_then(|certificates| certificates.collect::<Result<_, _>>())
        .map_err(|error| format!("{}: {error}", file.display()))?;
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", file.display()));
    }
    Ok(roots)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
