//! `ops-host secrets`: an operator stores a secret's value, lists the handles issued and
//! revokes one, each through the secrets provider, checked on a capability and receipted
//! (no receipt holds a value). The backend is the encrypted file in the secrets directory.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context as _;
use ops_core::contract::Contract;
use ops_core_runtime::secrets::{SecretValue, SecretsError, SecretsProvider};
use ops_core_runtime::store::EventStore;

use crate::vocabulary::write_list;

use crate::cli::{Acting, Format, SecretsCommand};
use crate::outcome::{Ended, OrBadInput, block_on};
use crate::services::{Context, Open};

/// Stores `secret_id`'s value, read from `value_file` (`-`: standard input), trimmed of
/// a final newline.
pub async fn put(
    (store, provider): (&EventStore, &SecretsProvider),
    secret_id: &str,
    value_file: &Path,
    acting: &Acting,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let mut value = Vec::new();
    if value_file == Path::new("-") {
        std::io::stdin().read_to_end(&mut value)?;
    } else {
        value = std::fs::read(value_file)
            .with_context(|| format!("reading the value from {}", value_file.display()))
            .or_bad_input()?;
    }
    while value
        .last()
        .is_some_and(|byte| *byte == b'\n' || *byte == b'\r')
    {
        value.pop();
    }
    let (by, capability) = acting
        .taken(store, ops_core::secrets::SecretStored::TYPE)
        .await?;
    let stored = provider
        .store_secret(secret_id, SecretValue::new(value), &by, capability)
        .await;
    answered(stored, out, || {
        format!("stored secret {secret_id}, receipted")
    })
}

pub async fn revoke(
    (store, provider): (&EventStore, &SecretsProvider),
    handle: &str,
    reason: &str,
    acting: &Acting,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let (by, capability) = acting
        .taken(store, ops_core::secrets::SecretHandleRevoked::TYPE)
        .await?;
    let revoked = provider.revoke(handle, &by, reason, capability).await;
    answered(revoked, out, || {
        format!("revoked handle {handle} and every token issued from it, receipted")
    })
}

/// A provider's answer as the CLI ends it: a denial or an unknown, revoked or ended handle
/// is refused (exit 1), with what the provider said.
fn answered(
    done: Result<(), SecretsError>,
    out: &mut impl Write,
    said: impl FnOnce() -> String,
) -> anyhow::Result<Ended> {
    match done {
        Ok(()) => {
            writeln!(out, "{}", said())?;
            Ok(Ended::Done)
        }
        Err(
            refused @ (SecretsError::Denied { .. }
            | SecretsError::UnknownHandle(_)
            | SecretsError::Revoked(_)
            | SecretsError::Expired(..)),
        ) => {
            writeln!(out, "refused: {refused}")?;
            Ok(Ended::Refused)
        }
        Err(error) => Err(error.into()),
    }
}

pub fn list(
    provider: &SecretsProvider,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    write_list(
        out,
        format,
        &provider.handles(),
        |(handle, secret, revoked, ends)| serde_json::json!({"handle_id": handle, "secret_id": secret, "revoked": revoked, "expires_at": ends}),
        |(handle, secret, revoked, ends)| {
            format!(
                "{handle} for {secret}: {}",
                match (revoked, ends) {
                    (true, _) => "REVOKED".to_owned(),
                    (false, Some(ends)) => format!("until {ends}"),
                    (false, None) => "without end".to_owned(),
                }
            )
        },
    )
}

impl SecretsCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            let (storage, store_value) = match &command {
                SecretsCommand::Put { storage, .. } => (storage, true),
                SecretsCommand::List { storage, .. } | SecretsCommand::Revoke { storage, .. } => {
                    (storage, false)
                }
            };
            let services = storage.services(ctx, Open::Existing).await?;
            let provider = services.secrets(store_value).await?;
            let store = &services.store;
            match command {
                SecretsCommand::Put {
                    secret,
                    value_file,
                    acting,
                    ..
                } => put((store, &provider), &secret, &value_file, &acting, out).await,
                SecretsCommand::List { format, .. } => {
                    list(&provider, format, out)?;
                    Ok(Ended::Done)
                }
                SecretsCommand::Revoke {
                    handle,
                    reason,
                    acting,
                    ..
                } => revoke((store, &provider), &handle, &reason, &acting, out).await,
            }
        })
    }
}
