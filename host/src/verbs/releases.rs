//! `ops-host releases`: whether each installed pack, contract module and tool is the
//! active, signed release of its artifact, as a deployment check (Section 3); activating
//! what this binary links, signed with a key the configuration trusts; and making a key.
//! `ops-host run` refuses to start, in enforce mode, while any is not active.

use std::io::Write;

use ops_core::registry::Registry;
use ops_core_runtime::signing::sign;
use ops_core_runtime::store::EventStore;
use ops_core_runtime::supply_chain::{ReleaseError, Releases};

use crate::services::{Open, Services, inactive, standing};
use crate::vocabulary::write_list;

use crate::cli::{Format, ReleasesCommand};
use crate::outcome::{Ended, OrBadInput, block_on};
use crate::services::Context;

/// Writes one line per installed release; `true` when every one is the active release.
pub async fn verify(
    store: &EventStore,
    registry: &Registry,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let standing = standing(store, registry).await?;
    write_list(
        out,
        format,
        &standing,
        |(release, state)| {
            serde_json::json!({
                "kind": release.kind,
                "name": release.name,
                "version": release.version,
                "content_id": release.content_id(),
                "content_hash": release.content_hash,
                "state": state,
            })
        },
        |(release, state)| format!("{} {}: {state}", release.label(), release.content_id()),
    )?;
    Ok(standing.iter().all(|(_, state)| state == "active"))
}

/// Records, signs with `key` and activates every installed release that is not active,
/// as `by`; the key must be one the configuration trusts. `Refused` when one is refused.
pub async fn activate(
    services: Services,
    key: &ed25519_dalek::SigningKey,
    acting: &crate::cli::Acting,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let store = &services.store;
    let registry = store.registry();
    let trust = services.config.trust(registry)?;
    let (by, capability) = acting.taken(store, "releases activate").await?;
    let by = &by;
    let releases = Releases::load(store.clone(), trust, capability)
        .await?
        .checked_by(std::sync::Arc::new(services.capabilities.clone()));
    let mut ended = Ended::Done;
    let pending = inactive(store, registry).await?;
    if pending.is_empty() {
        writeln!(out, "every installed release is active")?;
    }
    for (release, _) in pending {
        let signature = sign(&release.content_id(), key);
        let done = match releases.record(&release, Some(signature.clone()), by).await {
            Ok(_) => releases
                .activate(
                    &release,
                    &signature,
                    None,
                    "activated by ops-host releases activate",
                    by,
                )
                .await
                .map(drop),
            Err(refused) => Err(refused),
        };
        match done {
            Ok(()) => writeln!(
                out,
                "{} {}: signed, verified, active",
                release.label(),
                release.content_id()
            )?,
            Err(refused @ (ReleaseError::Refused { .. } | ReleaseError::Denied { .. })) => {
                ended = Ended::Refused;
                writeln!(out, "{} refused: {refused}", release.label())?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(ended)
}

impl ReleasesCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                ReleasesCommand::List { format, storage } => {
                    let store = storage.services(ctx, Open::Existing).await?.store;
                    Ok(verify(&store, ctx.registry, format, out).await?.into())
                }
                ReleasesCommand::Activate {
                    key_file,
                    acting,
                    storage,
                } => {
                    let services = storage.services(ctx, Open::Existing).await?;
                    let key =
                        ops_core_runtime::custody::read_signing_key(&key_file).or_bad_input()?;
                    activate(services, &key, &acting, out).await
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
        })
    }
}
