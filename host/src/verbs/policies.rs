//! `ops-host policies`: an approval policy's life from the CLI (Section 9): drafted from a
//! definition file, simulated against the recorded decisions, approved by another actor
//! than its author, activated on a passing eval and a trusted signature, deprecated or
//! rolled back, each step a recorded event; `list` shows every version and its state.

use ops_core_runtime::service_capability;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use ops_core::governance::PolicyDefinition;
use ops_core::supply_chain::SignatureRef;
use ops_core_runtime::governance::{Policies, PolicyError};

use crate::cli::{Format, PoliciesCommand};
use crate::vocabulary::write_list;
use ops_core_runtime::store::EventStore;

use crate::outcome::{BadInput, Ended, OrBadInput, block_on};
use crate::services::{Context, Open};

pub async fn run(
    (store, policies): (&EventStore, &Policies),
    command: PoliciesCommand,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let done = match command {
        PoliciesCommand::List { format, .. } => {
            list(policies, format, out)?;
            return Ok(Ended::Done);
        }
        PoliciesCommand::Draft { file, step } => {
            let definition = read_definition(&file)?;
            let (id, version) = (definition.policy_id.clone(), definition.version.clone());
            policies
                .draft(definition, &step.taken(store, "policies draft").await?)
                .await
                .map(|content_id| format!("drafted {id} {version}: {content_id}"))
        }
        PoliciesCommand::Simulate {
            policy,
            version,
            reason,
            step,
        } => policies
            .simulate(&policy, &version, &reason, &step.taken(store, "policies simulate").await?)
            .await
            .map(|report| {
                format!(
                    "simulated {policy} {version} against {} recorded decision(s): {} would change (inputs {})",
                    report.compared,
                    report.changed.len(),
                    report.inputs_hash
                )
            }),
        PoliciesCommand::Approve {
            policy,
            version,
            reason,
            step,
        } => policies
            .approve(&policy, &version, &reason, &step.taken(store, "policies approve").await?)
            .await
            .map(|()| format!("approved {policy} {version}")),
        PoliciesCommand::Eval {
            policy,
            version,
            unchanged_at_least,
            environment,
            step,
        } => {
            if !(0.0..=1.0).contains(&unchanged_at_least) {
                anyhow::bail!(BadInput(format!(
                    "`--unchanged-at-least {unchanged_at_least}` is not a share between 0 and 1"
                )));
            }
            let evaluated = policies
                .evaluate(
                    &policy,
                    &version,
                    unchanged_at_least,
                    &environment,
                    &step.taken(store, "policies eval").await?,
                )
                .await;
            if let Ok((eval_id, eval)) = &evaluated
                && !eval.passed
            {
                writeln!(
                    out,
                    "eval {eval_id} of {policy} {version} recorded, FAILED: {}",
                    eval.failure().unwrap_or_default()
                )?;
                return Ok(Ended::Refused);
            }
            evaluated.map(|(eval_id, eval)| {
                format!(
                    "eval {eval_id} of {policy} {version} recorded, passed: decisions_unchanged {} (at least {unchanged_at_least})",
                    eval.metrics["decisions_unchanged"]
                )
            })
        }
        PoliciesCommand::Activate {
            policy,
            version,
            eval,
            key_file,
            signature,
            signer,
            reason,
            step,
        } => {
            let eval = eval
                .parse()
                .map_err(|error| BadInput(format!("`{eval}` is not an eval id (`cid_…`): {error}")))?;
            let signature = match (key_file, signature, signer) {
                (Some(key_file), _, _) => {
                    let key = ops_core_runtime::custody::read_signing_key(&key_file).or_bad_input()?;
                    let content_id = policies
                        .book()
                        .version(&policy, &version)
                        .map(|found| found.content_id)
                        .ok_or_else(|| {
                            BadInput(format!("policy `{policy}` {version} was never drafted"))
                        })?;
                    ops_core_runtime::signing::sign(&content_id, &key)
                }
                (None, Some(signature), Some(signer)) => SignatureRef { signature, signer },
                _ => anyhow::bail!(BadInput(
                    "give `--key-file`, or `--signature` with `--signer`".to_owned()
                )),
            };
            policies
                .activate(&policy, &version, eval, &signature, &reason, &step.taken(store, "policies activate").await?)
                .await
                .map(|()| format!("activated {policy} {version}"))
        }
        PoliciesCommand::Deprecate {
            policy,
            version,
            reason,
            step,
        } => policies
            .deprecate(&policy, &version, &reason, &step.taken(store, "policies deprecate").await?)
            .await
            .map(|()| format!("deprecated {policy} {version}")),
        PoliciesCommand::Rollback {
            policy,
            to,
            reason,
            step,
        } => policies
            .rollback(&policy, &to, &reason, &step.taken(store, "policies rollback").await?)
            .await
            .map(|()| format!("rolled {policy} back to {to}")),
    };
    match done {
        Ok(said) => {
            writeln!(out, "{said}")?;
            Ok(Ended::Done)
        }
        Err(refused @ (PolicyError::Refused { .. } | PolicyError::Denied { .. })) => {
            writeln!(out, "refused: {refused}")?;
            Ok(Ended::Refused)
        }
        Err(error) => Err(error.into()),
    }
}

fn read_definition(file: &Path) -> anyhow::Result<PolicyDefinition> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading {}", file.display()))
        .or_bad_input()?;
    let mut reader = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        anyhow::Error::new(BadInput(format!(
            "{}: at `{}`: {}",
            file.display(),
            error.path(),
            error.inner()
        )))
    })
}

fn list(policies: &Policies, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let book = policies.book();
    let versions: Vec<_> = book.versions().collect();
    write_list(
        out,
        format,
        &versions,
        |version| {
            serde_json::json!({
                "policy_id": version.definition.policy_id,
                "version": version.definition.version,
                "owner_pack": version.definition.owner_pack,
                "state": version.state,
                "content_id": version.content_id,
                "rule": version.definition.rule,
                "drafted_by": version.drafted_by,
            })
        },
        |version| {
            format!(
                "{} {} ({}): {:?}; approves {} to {}, at most {} a day; {}",
                version.definition.policy_id,
                version.definition.version,
                version.definition.owner_pack,
                version.state,
                version.definition.rule.command_type,
                version.definition.rule.destination,
                version.definition.rule.max_per_day,
                version.content_id
            )
        },
    )
}

impl PoliciesCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let (storage, capability) = command.place();
            let services = storage.services(ctx, Open::Existing).await?;
            // Listing records nothing, so no capability is exercised then.
            let checked = match capability {
                Some(capability) => crate::vocabulary::parse_capability(capability)?,
                None => service_capability::of(service_capability::READER),
            };
            let policies = ops_core_runtime::governance::Policies::load(
                services.store.clone(),
                services.config.trust(ctx.registry)?,
                checked,
            )
            .await?
            .checked_by(std::sync::Arc::new(services.capabilities.clone()));
            run(
                (&services.store, &policies),
                command,
                &mut std::io::stdout().lock(),
            )
            .await
        })
    }
}
