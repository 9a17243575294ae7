//! `ops-host subjects`: the data subjects whose personal data the log holds sealed, and
//! erasing one (crypto-shredding, Section 11), checked against the eraser's capability and
//! receipted.

use std::io::Write;

use ops_core::contract::Contract;
use ops_core::redaction::RedactionApplied;
use ops_core_runtime::shredding::{EraseError, erase, sealed_subjects};
use ops_core_runtime::store::EventStore;

use crate::vocabulary::write_list;

use crate::cli::{Acting, Format, SubjectsCommand};
use crate::outcome::{BadInput, Ended, block_on};
use crate::services::{Context, Open, Services};

/// Each sealed subject, how many events hold its data, and whether it is erased.
pub async fn list(store: &EventStore, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let erased: std::collections::BTreeSet<String> = store
        .read_by_type(RedactionApplied::TYPE)
        .await?
        .into_iter()
        .filter_map(|stored| {
            serde_json::from_value::<RedactionApplied>(stored.envelope.payload)
                .ok()
                .map(|applied| applied.subject_id)
        })
        .collect();
    let subjects: Vec<(String, usize, bool)> = sealed_subjects(store)
        .await?
        .into_iter()
        .map(|(subject, events)| {
            let gone = erased.contains(&subject);
            (subject, events, gone)
        })
        .collect();
    write_list(
        out,
        format,
        &subjects,
        |(subject, events, erased)| serde_json::json!({"subject_id": subject, "events": events, "erased": erased}),
        |(subject, events, erased)| {
            format!(
                "{subject}: sealed in {events} event(s){}",
                if *erased { ", ERASED" } else { "" }
            )
        },
    )
}

pub async fn erase_subject(
    services: &Services,
    subject: &str,
    reason: &str,
    acting: &Acting,
    out: &mut impl Write,
) -> anyhow::Result<Ended> {
    let store = &services.store;
    if !sealed_subjects(store).await?.contains_key(subject) {
        anyhow::bail!(BadInput(format!(
            "no personal data of subject `{subject}` is sealed in the log; `ops-host subjects list` shows the subjects"
        )));
    }
    let (by, capability_id) = acting.taken(store, RedactionApplied::TYPE).await?;
    match erase(
        store,
        subject,
        &by,
        reason,
        capability_id,
        &services.capabilities,
    )
    .await
    {
        Ok(applied) => {
            writeln!(
                out,
                "erased subject {subject}: its key is destroyed; fields {}",
                applied.fields.join(", ")
            )?;
            Ok(Ended::Done)
        }
        Err(EraseError::Denied { reason, .. }) => {
            writeln!(
                out,
                "denied: {capability_id} does not allow erasing: {reason} (receipted)"
            )?;
            Ok(Ended::Refused)
        }
        Err(EraseError::NoKeys) => Err(BadInput(format!(
            "{} (the data directory holds no subject-keys.json)",
            EraseError::NoKeys
        ))
        .into()),
        Err(error) => Err(error.into()),
    }
}

impl SubjectsCommand {
    pub(crate) fn run(self, ctx: &Context<'_>) -> anyhow::Result<Ended> {
        let command = self;
        block_on(async move {
            let out = &mut std::io::stdout().lock();
            match command {
                SubjectsCommand::List { format, storage } => {
                    list(
                        &storage.services(ctx, Open::Existing).await?.store,
                        format,
                        out,
                    )
                    .await?;
                    Ok(Ended::Done)
                }
                SubjectsCommand::Erase {
                    subject,
                    reason,
                    acting,
                    storage,
                } => {
                    let services = storage.services(ctx, Open::Existing).await?;
                    erase_subject(&services, &subject, &reason, &acting, out).await
                }
            }
        })
    }
}
