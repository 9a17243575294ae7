//! `ops-host capabilities`: granting, delegating and revoking capabilities through the
//! runtime's checks (root grants only by operators, delegations within their parent), and
//! what each capability allowed at a time, for audits.

use ops_core_runtime::clock::WallClock;
use std::io::Write;

use anyhow::{Context, bail};
use ops_core::capability::{Action, CapabilityGranted, Scope, Selector, actor_label};
use ops_core::contract::SafetyClass;
use ops_core::envelope::{Actor, ActorId};
use ops_core::id::CapabilityId;
use ops_core::time::{DAY, Timestamp};
use ops_core_runtime::capability::{Capabilities, CapabilityError};
use ops_core_runtime::store::EventStore;

use crate::cli::{Format, ScopeArgs};
use crate::commands::{BadInput, Ended, OrBadInput, write_list};

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

/// `cap_…`, as the operator gave it.
pub fn parse_capability(text: &str) -> anyhow::Result<CapabilityId> {
    text.parse()
        .map_err(|error| anyhow::anyhow!("`{text}` is not a capability id (`cap_…`): {error}"))
        .or_bad_input()
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

fn selector(names: &[String], empty: Selector) -> Selector {
    if names.is_empty() {
        empty
    } else {
        Selector::only(names.iter().map(String::as_str))
    }
}

impl ScopeArgs {
    fn scope(&self) -> anyhow::Result<Scope> {
        Ok(Scope {
            types: selector(&self.types, Selector::none()),
            max_safety: parse_safety(&self.max_safety)?,
            tenants: selector(&self.tenants, Selector::All),
            destinations: selector(&self.destinations, Selector::All),
            sensitive: selector(&self.reveals, Selector::none()),
        })
    }

    fn window(&self, from: Timestamp) -> anyhow::Result<Timestamp> {
        match &self.until {
            Some(until) => parse_timestamp(until),
            None => from
                .plus(DAY * self.days)
                .with_context(|| format!("{} days from now is out of range", self.days))
                .or_bad_input(),
        }
    }
}

/// What granting or delegating is asked for.
pub struct Grant<'a> {
    pub name: &'a str,
    pub parent: Option<&'a str>,
    pub to: &'a str,
    pub by: &'a str,
    pub scope: &'a ScopeArgs,
}

/// Grants (or, with a parent, delegates) a capability; `Refused` when the runtime's
/// checks refuse it, with their reason.
pub async fn grant(
    capabilities: &Capabilities,
    grant: Grant<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let now = Timestamp::now();
    let granted = CapabilityGranted {
        capability_id: named(capabilities, grant.name)?.next_grant,
        holder: parse_actor(grant.to)?,
        issuer: parse_actor(grant.by)?,
        scope: grant.scope.scope()?,
        valid_from: now,
        valid_until: grant.scope.window(now)?,
        parent: grant.parent.map(parse_capability).transpose()?,
    };
    let id = granted.capability_id;
    match capabilities.grant(granted, now).await {
        Ok(event) => {
            writeln!(out, "granted {id} to {} ({event})", grant.to)?;
            Ok(Ended::Done)
        }
        Err(CapabilityError::Refused { reason, .. }) => {
            writeln!(out, "refused: {reason}")?;
            Ok(Ended::Refused)
        }
        Err(error) => Err(error.into()),
    }
}

/// Revokes a capability, and with it its delegations, as `by`.
pub async fn revoke(
    capabilities: &Capabilities,
    capability: &str,
    by: &str,
    reason: &str,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let id = parse_capability(capability)?;
    match capabilities
        .revoke(id, parse_actor(by)?, reason, Timestamp::now())
        .await
    {
        Ok(event) => {
            writeln!(out, "revoked {id} and its delegations ({event})")?;
            Ok(Ended::Done)
        }
        Err(CapabilityError::Refused { reason, .. }) => {
            writeln!(out, "refused: {reason}")?;
            Ok(Ended::Refused)
        }
        Err(error @ CapabilityError::Unknown(_)) => Err(BadInput(error.to_string()).into()),
        Err(error) => Err(error.into()),
    }
}

/// Every capability as it stood at `at`.
pub async fn list(
    store: &EventStore,
    at: Option<&str>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let at = parse_time(at)?;
    let book = Capabilities::load(store.clone()).await?.book();
    let ids: Vec<CapabilityId> = book.ids().collect();
    let standing = |id: &CapabilityId| {
        let state = book.state_at(*id, at)?;
        let standing = match (
            state.revoked,
            state.expired || at >= state.grant.valid_until,
        ) {
            (Some(reason), _) => format!("revoked ({reason})"),
            (None, true) => "expired".to_owned(),
            (None, false) if at < state.grant.valid_from => "not yet valid".to_owned(),
            (None, false) => "active".to_owned(),
        };
        Some((state, standing))
    };
    write_list(
        out,
        format,
        &ids,
        |id| match standing(id) {
            None => serde_json::json!({"capability_id": id, "standing": "not granted"}),
            Some((state, standing)) => serde_json::json!({
                "capability_id": id,
                "standing": standing,
                "holder": state.grant.holder,
                "issuer": state.grant.issuer,
                "scope": state.scope,
                "valid_from": state.grant.valid_from,
                "valid_until": state.grant.valid_until,
                "parent": state.grant.parent,
                "last_event": state.last_event,
            }),
        },
        |id| match standing(id) {
            None => format!("{id} not granted by {at}"),
            Some((state, standing)) => format!(
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
            ),
        },
    )
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
    let capability = parse_capability(request.capability)?;
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
