//! `ops-host commands submit`: an operator's command, through the same bus as a reaction's,
//! so it is checked against its capability, decided once by its pack's handler and
//! recorded with its receipt (or its denial's).

use std::io::Write;

use anyhow::Context as _;
use ops_core::contract::Kind;
use ops_core::envelope::{Causation, CommandEnvelope, CommandOutcome, CommandRequest, DedupeScope};
use ops_core::id::{CorrelationId, UserActionId};
use ops_core::time::Timestamp;
use ops_core_runtime::clock::WallClock;
use ops_core_runtime::command::{BusError, CommandBus};
use ops_core_runtime::jail::PieceError;
use ops_core_runtime::store::EventStore;

use crate::vocabulary::{parse_actor, parse_capability};

use crate::cli::{Acting, CommandsCommand};
use crate::outcome::{BadInput, Ended, OrBadInput, block_on};
use crate::services::{Context, Open, Services};

/// What the operator asks for.
pub struct Submission<'a> {
    pub command_type: &'a str,
    /// A JSON object, or `@FILE`.
    pub payload: &'a str,
    /// `None`: the target the command's payload names.
    pub target: Option<&'a str>,
    pub destination: Option<&'a str>,
    pub tenant: &'a str,
    pub expect_version: Option<i64>,
    pub acting: &'a Acting,
}

pub async fn submit(
    services: &Services,
    submission: Submission<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let capability_id = parse_capability(&submission.acting.capability)?;
    let bus = services.bus()?;
    let command = envelope(&services.store, &bus, &submission)?;
    let receipt = match bus
        .submit(&command, capability_id, submission.expect_version)
        .await
    {
        Ok(receipt) => receipt,
        Err(BusError::Denied { reason, .. }) => {
            writeln!(
                out,
                "denied: {capability_id} does not allow {}: {reason} (receipted)",
                command.command_type
            )?;
            return Ok(Ended::Refused);
        }
        Err(conflict @ BusError::Conflict { .. }) => {
            writeln!(out, "refused: {conflict}")?;
            return Ok(Ended::Refused);
        }
        Err(error) => return Err(error.into()),
    };
    let again = if receipt.replayed {
        " (decided before; nothing new was written)"
    } else {
        ""
    };
    match &receipt.outcome {
        CommandOutcome::Accepted => {
            let events: Vec<String> = receipt.event_ids.iter().map(ToString::to_string).collect();
            writeln!(
                out,
                "accepted {}{again}: events [{}]; capability state {}",
                receipt.command_id,
                events.join(", "),
                receipt.capability_state_ref
            )?;
            Ok(Ended::Done)
        }
        CommandOutcome::Rejected { reason } => {
            writeln!(
                out,
                "rejected {}{again}: {reason}; capability state {}",
                receipt.command_id, receipt.capability_state_ref
            )?;
            Ok(Ended::Refused)
        }
    }
}

/// The command envelope the submission describes, checked against the installed type.
fn envelope(
    store: &EventStore,
    bus: &CommandBus,
    submission: &Submission<'_>,
) -> anyhow::Result<CommandEnvelope> {
    let registry = store.registry();
    let descriptor = registry
        .latest(submission.command_type)
        .filter(|descriptor| descriptor.kind == Kind::Command)
        .with_context(|| {
            format!(
                "`{}` is not an installed command type; `ops-host registry export` lists them",
                submission.command_type
            )
        })
        .or_bad_input()?;
    let text = match submission.payload.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the payload from {file}"))
            .or_bad_input()?,
        None => submission.payload.to_owned(),
    };
    let payload: serde_json::Value = serde_json::from_str(&text)
        .context("the payload is not JSON")
        .or_bad_input()?;
    let target = target(bus, descriptor.name, &payload, submission.target)?;
    let dedupe_scope = match (descriptor.dedupe, submission.destination) {
        (Some(ops_core::contract::DedupeKind::Egress), Some(destination)) => DedupeScope::Egress {
            destination: destination.to_owned(),
            tenant_id: submission.tenant.to_owned(),
        },
        (Some(ops_core::contract::DedupeKind::Egress), None) => anyhow::bail!(BadInput(format!(
            "`{}` is an external effect: give its `--destination`",
            descriptor.name
        ))),
        (Some(ops_core::contract::DedupeKind::Command), _) => DedupeScope::Command {
            aggregate_ref: target.clone(),
        },
        (other, _) => anyhow::bail!(BadInput(format!(
            "`{}` deduplicates by {other:?} scope, which only its connector gives",
            descriptor.name
        ))),
    };
    let requested_at = Timestamp::now();
    let action = format!(
        "ops-host commands submit {} {} {requested_at}",
        descriptor.name, target
    );
    let request = CommandRequest {
        target_ref: target,
        dedupe_scope,
        correlation_id: CorrelationId::of(&action)?,
        causation: Causation::UserAction(UserActionId::of(&action)?),
        actor: parse_actor(&submission.acting.by)?,
        requested_at,
    };
    let decodes = crate::jailing::pack_code()?
        .check_payloads(registry, &[(descriptor.name, descriptor.version, &payload)])
        .pop()
        .expect("one answer for one payload");
    CommandEnvelope::of_descriptor(
        ops_core_runtime::CORE,
        descriptor,
        payload,
        decodes,
        request,
    )
    .map_err(|error| anyhow::Error::new(BadInput(format!("{error}"))))
}

/// What the command acts on: what its payload names (a `--target` that disagrees is bad
/// input), else the operator's `--target`, which must name something.
fn target(
    bus: &CommandBus,
    command_type: &str,
    payload: &serde_json::Value,
    given: Option<&str>,
) -> anyhow::Result<String> {
    let named = match bus.target_of(command_type, payload) {
        Ok(named) => named,
        Err(PieceError::Refused(reason)) => anyhow::bail!(BadInput(reason)),
        Err(error) => {
            return Err(error).with_context(|| {
                format!("the handler of `{command_type}` could not read what it acts on")
            });
        }
    };
    match (named, given) {
        (Some(named), Some(given)) if named != given => anyhow::bail!(BadInput(format!(
            "`{command_type}` acts on `{named}` (its payload says so), not on `{given}`: leave out `--target`"
        ))),
        (Some(named), _) => Ok(named),
        (None, Some(given)) if given.trim().is_empty() => anyhow::bail!(BadInput(format!(
            "`--target` is empty: name what `{command_type}` acts on (such as `incident/INC-7`)"
        ))),
        (None, Some(given)) => Ok(given.to_owned()),
        (None, None) => anyhow::bail!(BadInput(format!(
            "`{command_type}`'s payload does not say what it acts on: give `--target`"
        ))),
    }
}

impl CommandsCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        match self {
            CommandsCommand::Submit {
                command_type,
                payload,
                target,
                destination,
                tenant,
                expect_version,
                acting,
                storage,
            } => block_on(async move {
                let out = &mut std::io::stdout().lock();
                let Some(services) = storage.pack_code_services(ctx, Open::Existing, out).await?
                else {
                    return Ok(Ended::Refused);
                };
                let submission = Submission {
                    command_type: &command_type,
                    payload: &payload,
                    target: target.as_deref(),
                    destination: destination.as_deref(),
                    tenant: &tenant,
                    expect_version,
                    acting: &acting,
                };
                submit(&services, submission, out).await
            }),
        }
    }
}
