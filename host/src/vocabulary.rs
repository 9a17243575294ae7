//! The words every verb shares: parsers of the operator's arguments (actors, capability
//! ids, safety classes, times, `KEY=VALUE` pairs, installed names) and how a list prints.

use std::io::Write;

use anyhow::{Context, bail};
use ops_core::contract::SafetyClass;
use ops_core::envelope::{Actor, ActorId};
use ops_core::id::CapabilityId;
use ops_core::time::Timestamp;

use ops_core_runtime::acting;
use ops_core_runtime::clock::WallClock as _;
use ops_core_runtime::store::EventStore;

use crate::cli::Format;
use crate::outcome::{BadInput, OrBadInput};

/// `KEY=VALUE` arguments of `flag`, by key.
pub(crate) fn pairs(
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

/// `human:ada@example.com`, `service:pack.notify` or `agent:triage-bot`.
pub fn parse_actor(text: &str) -> anyhow::Result<Actor> {
    let (kind, id) = text
        .split_once(':')
        .with_context(|| format!("`{text}` is not `human:ID`, `service:ID` or `agent:ID`"))
        .or_bad_input()?;
    let id = ActorId::new(id)
        .with_context(|| format!("`{id}` is not an actor id"))
        .or_bad_input()?;
    Ok(match kind {
        "human" => Actor::Human(id),
        "service" => Actor::Service(id),
        "agent" => Actor::Agent(id),
        other => bail!(BadInput(format!(
            "`{other}` is not an actor kind; use human, service or agent"
        ))),
    })
}

/// `read`, `write_internal` or `write_external`.
pub fn parse_safety(text: &str) -> anyhow::Result<SafetyClass> {
    Ok(match text {
        "read" => SafetyClass::Read,
        "write_internal" => SafetyClass::WriteInternal,
        "write_external" => SafetyClass::WriteExternalSideEffect,
        other => {
            bail!(BadInput(format!(
                "`{other}` is not a safety class; use read, write_internal or write_external"
            )))
        }
    })
}

/// An RFC 3339 time the operator gave.
pub fn parse_timestamp(text: &str) -> anyhow::Result<Timestamp> {
    text.parse()
        .map_err(|error| anyhow::anyhow!("`{text}` is not an RFC 3339 time: {error}"))
        .or_bad_input()
}

/// `cap_…`, as the operator gave it.
pub fn parse_capability(text: &str) -> anyhow::Result<CapabilityId> {
    text.parse()
        .map_err(|error| anyhow::anyhow!("`{text}` is not a capability id (`cap_…`): {error}"))
        .or_bad_input()
}

impl crate::cli::Acting {
    /// Who acts (`--by`) and on which capability (`--capability`), as the runtime reads
    /// them; either malformed is bad input.
    pub(crate) fn parsed(&self) -> anyhow::Result<(Actor, ops_core::id::CapabilityId)> {
        Ok((parse_actor(&self.by)?, parse_capability(&self.capability)?))
    }

    /// Who acts, in the action `verb` (recorded in `store` before anything it causes), on
    /// which capability: what every receipt of a verb that records something is taken by.
    pub(crate) async fn taken(
        &self,
        store: &EventStore,
        verb: &str,
    ) -> anyhow::Result<(acting::Acting, ops_core::id::CapabilityId)> {
        let (actor, capability) = self.parsed()?;
        let by = self.action.acting(store, verb, actor, capability).await?;
        Ok((by, capability))
    }
}

impl crate::cli::PolicyStep {
    /// As [`crate::cli::Acting::taken`], for a policy's step.
    pub(crate) async fn taken(
        &self,
        store: &EventStore,
        verb: &str,
    ) -> anyhow::Result<acting::Acting> {
        let (actor, capability) = (parse_actor(&self.by)?, parse_capability(&self.capability)?);
        self.action.acting(store, verb, actor, capability).await
    }
}

impl crate::cli::ActionKey {
    /// The operator's action `verb` by `actor`: the one `--action` names (taken again, with
    /// its first time, when this run is its retry), else a new one; recorded in `store`.
    /// A key that is malformed, or names another verb's or actor's action, is bad input.
    pub(crate) async fn taken(
        &self,
        store: &EventStore,
        verb: &str,
        actor: &Actor,
        capability: ops_core::id::CapabilityId,
    ) -> anyhow::Result<acting::OperatorAction> {
        let now = Timestamp::now();
        let key = self.key.clone().unwrap_or_else(|| {
            format!(
                "{}.{}.{}",
                verb.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
                now.unix_micros(),
                std::process::id()
            )
        });
        acting::OperatorAction::record(store, &key, verb, actor, capability, now)
            .await
            .map_err(|error| match error {
                acting::OperatorActionError::InvalidKey { .. }
                | acting::OperatorActionError::KeyTaken { .. } => {
                    anyhow::Error::new(BadInput(format!("--action: {error}")))
                }
                other => other.into(),
            })
    }

    /// `actor` acting in the action [`Self::taken`] answers.
    async fn acting(
        &self,
        store: &EventStore,
        verb: &str,
        actor: Actor,
        capability: ops_core::id::CapabilityId,
    ) -> anyhow::Result<acting::Acting> {
        let action = self.taken(store, verb, &actor, capability).await?;
        Ok(acting::Acting::new(actor, acting::Cause::Operator(action)))
    }
}
