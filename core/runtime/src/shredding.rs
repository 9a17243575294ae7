//! Crypto-shredding (Section 11): personal data in the log is encrypted per data subject,
//! and erasing a subject destroys its key.
//!
//! A field marked `#[sensitive]` in an object whose `#[subject]` fields say whose data it
//! is (a `PersonRef`'s system and id) is stored as `enc:v1:<subject id>:<hex>`: ChaCha20-
//! Poly1305 under the subject's key, with the subject id as associated data. The nonce is a
//! keyed blake3 of the plaintext under the same key, so the same fact seals to the same
//! text, its `payload_hash` and `event_id` are stable, and a retry is still a duplicate.
//! Because `payload_hash` (and with it `event_id`) is computed over the sealed payload, no
//! hash of the plaintext is stored: once the key is gone, guessing an e-mail address and
//! hashing it matches nothing. Keys live in a [`SecretBackend`] (by default an encrypted
//! file next to the database), never in the database, so a backup of the database holds
//! only ciphertext. Reading through [`crate::store::EventStore::current_payload`] opens
//! sealed fields; a field whose key was destroyed reads as `[shredded]`. Projections fold
//! the sealed form, so their rows (and backups of them) hold no personal data in clear
//! either; the query gateway opens what the reader's capability reveals.

use crate::custody::KeyError;
pub use crate::custody::{
    SEALED_PREFIX, SHREDDED, SubjectKeys, for_each_sealed, sealed_subject, subject_id,
};

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("this store seals no personal data (no subject keys are configured)")]
    NoKeys,
    #[error("reading the log failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("recording the erasure failed (the key is destroyed already): {0}")]
    Append(#[from] crate::store::AppendError),
    #[error("capability {capability} does not allow erasing a data subject: {reason}")]
    Denied {
        capability: ops_core::id::CapabilityId,
        reason: String,
    },
}

/// Every data subject with sealed fields in the log, and how many events hold them.
pub async fn sealed_subjects(
    store: &crate::store::EventStore,
) -> Result<std::collections::BTreeMap<String, usize>, sqlx::Error> {
    let mut subjects = std::collections::BTreeMap::new();
    for text in store
        .envelopes_containing(&format!("%{SEALED_PREFIX}%"))
        .await?
    {
        let Ok(envelope) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let mut found = std::collections::BTreeSet::new();
        for_each_string(&envelope["payload"], &mut |text| {
            if let Some(subject) = sealed_subject(text) {
                found.insert(subject.to_owned());
            }
        });
        for subject in found {
            *subjects.entry(subject).or_default() += 1;
        }
    }
    Ok(subjects)
}

fn for_each_string(value: &serde_json::Value, visit: &mut impl FnMut(&str)) {
    match value {
        serde_json::Value::String(text) => visit(text),
        serde_json::Value::Array(items) => {
            items.iter().for_each(|item| for_each_string(item, visit))
        }
        serde_json::Value::Object(fields) => fields
            .values()
            .for_each(|item| for_each_string(item, visit)),
        _ => {}
    }
}

/// Erases a data subject on `capability_id`, which `authority` must find allows writing
/// its tombstone (a refusal has its `CapabilityDenied` receipt): finds the fields of the
/// log sealed under its key, destroys the key, and records `core.RedactionApplied` as the
/// subject's tombstone. The log is not rewritten: every event and its id stay as they were.
pub async fn erase(
    store: &crate::store::EventStore,
    subject_id: &str,
    by: &crate::acting::Acting,
    reason: &str,
    capability_id: ops_core::id::CapabilityId,
    authority: &dyn ops_core::capability::Authority,
) -> Result<ops_core::redaction::RedactionApplied, EraseError> {
    use ops_core::contract::Contract;
    use ops_core::envelope::EventEnvelope;
    use ops_core::redaction::RedactionApplied;

    let keys = store.subject_keys().ok_or(EraseError::NoKeys)?;
    let erasing = crate::capability::step_of(&by.actor, RedactionApplied::TYPE);
    let asked =
        crate::capability::Asked::by_user(by, format!("subjects/{subject_id}"), "core.shredding");
    let relied_on =
        crate::capability::check_or_deny(store, authority, capability_id, &erasing, asked)
            .await?
            .map_err(|reason| EraseError::Denied {
                capability: capability_id,
                reason,
            })?
            .state_ref;
    let pattern = format!("%{SEALED_PREFIX}{subject_id}:%");
    let envelopes = store.envelopes_containing(&pattern).await?;
    let mut fields = std::collections::BTreeSet::new();
    for text in envelopes {
        let Ok(envelope) = serde_json::from_str::<EventEnvelope>(&text) else {
            continue;
        };
        let Some(schema) = store
            .registry()
            .schema(&envelope.event_type, envelope.payload_schema_version)
        else {
            continue;
        };
        for (found, pointer) in SubjectKeys::subjects_in(&envelope.payload, schema) {
            if found == subject_id {
                fields.insert(format!("{}#{pointer}", envelope.event_type));
            }
        }
    }
    keys.destroy(subject_id)?;
    let applied = ops_core::redaction::RedactionApplied {
        subject_id: subject_id.to_owned(),
        fields: fields.into_iter().collect(),
        reason: reason.to_owned(),
        capability_state_ref: relied_on,
    };
    let origin = by.origin(
        "core.shredding",
        &format!("{subject_id}:erased"),
        capability_id,
    );
    crate::service_event::record(store, &format!("subjects/{subject_id}"), &applied, origin)
        .await?;
    Ok(applied)
}
