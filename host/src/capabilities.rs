//! `ops-host capabilities`: what each capability allowed at a time, for audits.

use ops_core_runtime::clock::WallClock;
use std::io::Write;

use anyhow::{Context, bail};
use ops_core::capability::{Action, actor_label};
use ops_core::contract::SafetyClass;
use ops_core::envelope::{Actor, ActorId};
use ops_core::id::CapabilityId;
use ops_core::time::Timestamp;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::store::EventStore;

use crate::commands::{BadInput, OrBadInput};

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

fn parse_time(at: Option<&str>) -> anyhow::Result<Timestamp> {
    at.map_or(Ok(Timestamp::now()), parse_timestamp)
}

/// Every capability as it stood at `at`.
pub async fn list(
    store: &EventStore,
    at: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let at = parse_time(at)?;
    let book = Capabilities::load(store.clone()).await?.book();
    for id in book.ids() {
        let Some(state) = book.state_at(id, at) else {
            writeln!(out, "{id} not granted by {at}")?;
            continue;
        };
        let standing = match (
            state.revoked,
            state.expired || at >= state.grant.valid_until,
        ) {
            (Some(reason), _) => format!("revoked ({reason})"),
            (None, true) => "expired".to_owned(),
            (None, false) if at < state.grant.valid_from => "not yet valid".to_owned(),
            (None, false) => "active".to_owned(),
        };
        writeln!(
            out,
            "{id} {standing}: held by {}, issued by {}, {} .. {}{}; last event {}",
            actor_label(&state.grant.holder),
            actor_label(&state.grant.issuer),
            state.grant.valid_from,
            state.grant.valid_until,
            state
                .grant
                .parent
                .map(|parent| format!(", delegated from {parent}"))
                .unwrap_or_default(),
            state.last_event
        )?;
    }
    Ok(())
}

pub struct CheckRequest<'a> {
    pub capability: &'a str,
    pub actor: &'a str,
    pub type_name: &'a str,
    pub safety: &'a str,
    pub tenant: Option<&'a str>,
    pub destination: Option<&'a str>,
    pub at: Option<&'a str>,
}

/// Whether an action was allowed at a time, from the events up to then.
pub async fn check(
    store: &EventStore,
    request: CheckRequest<'_>,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let capability: CapabilityId = request.capability.parse().map_err(|error| {
        anyhow::anyhow!("`{}` is not a capability id: {error}", request.capability)
    })?;
    let action = Action {
        actor: parse_actor(request.actor)?,
        command_type: request.type_name.to_owned(),
        safety: parse_safety(request.safety)?,
        tenant: request.tenant.map(str::to_owned),
        destination: request.destination.map(str::to_owned),
    };
    let at = parse_time(request.at)?;
    let decision = Capabilities::load(store.clone())
        .await?
        .check(capability, &action, at);
    let chain: Vec<String> = decision.chain.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "{} at {at}: {}; relied on {}; chain {}",
        if decision.allowed {
            "allowed"
        } else {
            "denied"
        },
        decision.reason.as_deref().unwrap_or("within scope"),
        if decision.state_ref.is_empty() {
            "nothing"
        } else {
            &decision.state_ref
        },
        chain.join(" <- ")
    )?;
    Ok(decision.allowed)
}
