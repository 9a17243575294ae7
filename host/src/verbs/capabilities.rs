//! `ops-host capabilities`: granting, delegating and revoking capabilities through the
//! runtime's checks (root grants only by operators, delegations within their parent), and
//! what each capability allowed at a time, for audits.

use ops_core_runtime::clock::WallClock;
use std::io::Write;

use anyhow::Context as _;
use ops_core::capability::{Action, CapabilityGranted, Scope, Selector, actor_label};
use ops_core::id::CapabilityId;
use ops_core::time::{DAY, Timestamp};
use ops_core_runtime::capability::{Capabilities, CapabilityError};

use crate::vocabulary::write_list;
use crate::vocabulary::{parse_actor, parse_capability, parse_safety, parse_timestamp};

use crate::cli::{CapabilitiesCommand, Format, GrantArgs, ScopeArgs};
use crate::outcome::{BadInput, Ended, OrBadInput, block_on};
use crate::services::{Context, Open};
use ops_core_runtime::store::EventStore;

fn parse_time(at: Option<&str>) -> anyhow::Result<Timestamp> {
    at.map_or(Ok(Timestamp::now()), parse_timestamp)
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

/// Grants (or, with a `parent`, delegates) a capability; `Refused` when the runtime's
/// checks refuse it, with their reason.
///
/// The grant is an operator action (`--action KEY`): it is dated by the action, so a retry
/// of it finds the capability it granted, as it granted it, and grants nothing twice.
pub(crate) async fn grant(
    (store, capabilities): (&EventStore, &Capabilities),
    grant: &GrantArgs,
    parent: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let issuer = parse_actor(&grant.by)?;
    let capability_id = crate::services::named(capabilities, &grant.name)?.next_grant;
    let action = grant
        .action
        .taken(store, "capabilities grant", &issuer, capability_id)
        .await?;
    let at = action.at();
    let granted = CapabilityGranted {
        capability_id,
        holder: parse_actor(&grant.to)?,
        issuer,
        scope: grant.scope.scope()?,
        valid_from: at,
        valid_until: grant.scope.window(at)?,
        parent: parent.map(parse_capability).transpose()?,
    };
    let id = granted.capability_id;
    if capabilities.records(&granted) {
        writeln!(
            out,
            "granted {id} to {} (already, by this action)",
            grant.to
        )?;
        return Ok(Ended::Done);
    }
    match capabilities.grant(granted, at).await {
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

/// Revokes a capability, and with it its delegations, as `by`, in an operator action
/// (`--action KEY`): dated by the action, so a retry of it states the revocation already
/// stored.
pub async fn revoke(
    (store, capabilities): (&EventStore, &Capabilities),
    (capability, by, action): (&str, &str, &crate::cli::ActionKey),
    reason: &str,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let id = parse_capability(capability)?;
    let by = parse_actor(by)?;
    let at = action
        .taken(store, "capabilities revoke", &by, id)
        .await?
        .at();
    match capabilities.revoke(id, by, reason, at).await {
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
pub fn list(
    capabilities: &Capabilities,
    at: Option<&str>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let at = parse_time(at)?;
    let book = capabilities.book();
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
pub fn check(
    capabilities: &Capabilities,
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
    let decision = capabilities.check(capability, &action, at);
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

impl CapabilitiesCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            let services = match &command {
                CapabilitiesCommand::List { storage, .. }
                | CapabilitiesCommand::Grant(GrantArgs { storage, .. })
                | CapabilitiesCommand::Delegate {
                    grant: GrantArgs { storage, .. },
                    ..
                }
                | CapabilitiesCommand::Revoke { storage, .. }
                | CapabilitiesCommand::Check { storage, .. } => {
                    storage.services(ctx, Open::Existing).await?
                }
            };
            let capabilities = &services.capabilities;
            match command {
                CapabilitiesCommand::List { at, format, .. } => {
                    list(capabilities, at.as_deref(), format, out)?;
                    Ok(Ended::Done)
                }
                CapabilitiesCommand::Grant(asked) => {
                    grant((&services.store, capabilities), &asked, None, out).await
                }
                CapabilitiesCommand::Delegate { from, grant: asked } => {
                    grant((&services.store, capabilities), &asked, Some(&from), out).await
                }
                CapabilitiesCommand::Revoke {
                    capability,
                    by,
                    reason,
                    action,
                    ..
                } => {
                    revoke(
                        (&services.store, capabilities),
                        (&capability, &by, &action),
                        &reason,
                        out,
                    )
                    .await
                }
                CapabilitiesCommand::Check {
                    capability,
                    actor,
                    type_name,
                    safety,
                    tenant,
                    destination,
                    at,
                    ..
                } => {
                    let request = CheckRequest {
                        capability: &capability,
                        actor: &actor,
                        type_name: &type_name,
                        safety: &safety,
                        tenant: tenant.as_deref(),
                        destination: destination.as_deref(),
                        at: at.as_deref(),
                    };
                    Ok(check(capabilities, request, out)?.into())
                }
            }
        })
    }
}
