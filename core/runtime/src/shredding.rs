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

use std::collections::BTreeMap;
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ops_core::redaction::for_each_sensitive;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::secrets::{SecretBackend, SecretValue, SecretsError};

pub const SEALED_PREFIX: &str = "enc:v1:";
/// What a sensitive field reads as once its subject was erased.
pub const SHREDDED: &str = "[shredded]";

/// The id of a data subject: a hash of its `#[subject]` fields, `sub_…`.
pub fn subject_id(subject: &str) -> String {
    format!("sub_{}", blake3::hash(subject.as_bytes()).to_hex())
}

pub struct SubjectKeys {
    backend: Box<dyn SecretBackend>,
    /// Keys known to this process; `None` for one that was destroyed.
    cache: Mutex<BTreeMap<String, Option<Zeroizing<[u8; 32]>>>>,
}

impl SubjectKeys {
    pub fn new(backend: Box<dyn SecretBackend>) -> Self {
        SubjectKeys {
            backend,
            cache: Mutex::default(),
        }
    }

    fn key(
        &self,
        subject_id: &str,
        create: bool,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, SecretsError> {
        let mut cache = self.cache.lock().expect("never poisoned");
        if let Some(Some(key)) = cache.get(subject_id) {
            return Ok(Some(key.clone()));
        }
        let name = format!("subject/{subject_id}");
        let key = match self.backend.get(&name) {
            Ok(value) => {
                let mut key = Zeroizing::new([0u8; 32]);
                key.copy_from_slice(value.expose());
                Some(key)
            }
            Err(SecretsError::Unknown(_)) if create => {
                let mut key = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(key.as_mut());
                self.backend.put(&name, &SecretValue::new(key.to_vec()))?;
                Some(key)
            }
            Err(SecretsError::Unknown(_)) => None,
            Err(error) => return Err(error),
        };
        cache.insert(subject_id.to_owned(), key.clone());
        Ok(key)
    }

    /// Destroys a subject's key: everything sealed under it becomes unreadable for good.
    pub fn destroy(&self, subject_id: &str) -> Result<bool, SecretsError> {
        self.cache
            .lock()
            .expect("never poisoned")
            .insert(subject_id.to_owned(), None);
        self.backend.delete(&format!("subject/{subject_id}"))
    }

    /// Seals every sensitive field of `payload` that names its subject; `true` if any.
    pub fn seal(&self, payload: &mut Value, schema: &Value) -> Result<bool, SecretsError> {
        let mut sealed_any = false;
        let mut failure = None;
        for_each_sensitive(payload, schema, &mut |field| {
            let (Some(subject), Value::String(plain)) = (field.subject, &*field.value) else {
                return;
            };
            if plain.starts_with(SEALED_PREFIX) || failure.is_some() {
                return;
            }
            let subject_id = subject_id(subject);
            match self.key(&subject_id, true) {
                Ok(Some(key)) => {
                    *field.value = Value::String(seal_text(plain, &subject_id, &key));
                    sealed_any = true;
                }
                Ok(None) => {}
                Err(error) => failure = Some(error),
            }
        });
        failure.map_or(Ok(sealed_any), Err)
    }

    /// Opens every sealed field; one whose key was destroyed reads as [`SHREDDED`].
    pub fn open(&self, payload: &mut Value, schema: &Value) {
        for_each_sensitive(payload, schema, &mut |field| {
            if let Value::String(text) = &*field.value
                && let Some(plain) = self.open_sealed(text)
            {
                *field.value = Value::String(plain);
            }
        });
    }

    /// The plain text of one sealed string, or [`SHREDDED`] once its key is gone; `None`
    /// when `text` is not sealed.
    fn open_sealed(&self, text: &str) -> Option<String> {
        let subject_id = sealed_subject(text)?;
        let plain = match self.key(subject_id, false) {
            Ok(Some(key)) => open_text(text, subject_id, &key),
            _ => None,
        };
        Some(plain.unwrap_or_else(|| SHREDDED.to_owned()))
    }

    /// Opens every sealed string in `value`, wherever it is.
    pub fn open_everywhere(&self, value: &mut Value) {
        for_each_sealed(value, &mut |sealed| {
            self.open_sealed(sealed)
                .expect("for_each_sealed passes only sealed strings")
        });
    }

    /// The subjects whose sealed fields `payload` holds, with their pointers.
    pub fn subjects_in(payload: &Value, schema: &Value) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut copy = payload.clone();
        for_each_sensitive(&mut copy, schema, &mut |field| {
            if let Some(subject_id) = field.value.as_str().and_then(sealed_subject) {
                found.push((subject_id.to_owned(), field.pointer.to_owned()));
            }
        });
        found
    }
}

/// Replaces every sealed string anywhere in `value` by what `replace` makes of it.
pub fn for_each_sealed(value: &mut Value, replace: &mut impl FnMut(&str) -> String) {
    match value {
        Value::String(text) if sealed_subject(text).is_some() => *text = replace(text),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| for_each_sealed(item, replace)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|field| for_each_sealed(field, replace)),
        _ => {}
    }
}

/// The subject a sealed field belongs to: `enc:v1:<subject id>:…`.
pub fn sealed_subject(text: &str) -> Option<&str> {
    text.strip_prefix(SEALED_PREFIX)?
        .split_once(':')
        .map(|(subject_id, _)| subject_id)
}

fn seal_text(plain: &str, subject_id: &str, key: &[u8; 32]) -> String {
    let nonce_bytes = blake3::keyed_hash(key, plain.as_bytes());
    let nonce = Nonce::from_slice(&nonce_bytes.as_bytes()[..12]);
    let ciphertext = ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt(
            nonce,
            Payload {
                msg: plain.as_bytes(),
                aad: subject_id.as_bytes(),
            },
        )
        .expect("encrypting in memory does not fail");
    let mut sealed = nonce.to_vec();
    sealed.extend(ciphertext);
    format!("{SEALED_PREFIX}{subject_id}:{}", hex::encode(sealed))
}

fn open_text(sealed: &str, subject_id: &str, key: &[u8; 32]) -> Option<String> {
    let bytes = hex::decode(sealed.rsplit_once(':')?.1).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let plain = ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: subject_id.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(plain).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("this store seals no personal data (no subject keys are configured)")]
    NoKeys,
    #[error("reading the log failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Keys(#[from] SecretsError),
    #[error("recording the erasure failed (the key is destroyed already): {0}")]
    Append(#[from] crate::store::AppendError),
}

/// Erases a data subject: finds the fields of the log sealed under its key, destroys the
/// key, and records `core.RedactionApplied` as the subject's tombstone. The log is not
/// rewritten: every event and its id stay as they were.
pub async fn erase(
    store: &crate::store::EventStore,
    subject_id: &str,
    actor: &ops_core::envelope::Actor,
    reason: &str,
    capability_id: ops_core::id::CapabilityId,
) -> Result<ops_core::redaction::RedactionApplied, EraseError> {
    use ops_core::envelope::EventEnvelope;

    let keys = store.subject_keys().ok_or(EraseError::NoKeys)?;
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
    };
    let origin = crate::service_event::origin(
        "core.shredding",
        &format!("{subject_id}:erased"),
        actor,
        capability_id,
    );
    crate::service_event::record(store, &format!("subjects/{subject_id}"), &applied, origin)
        .await?;
    Ok(applied)
}
