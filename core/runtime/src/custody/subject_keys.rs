//! Subject keys: every `#[sensitive]` field of a `#[subject]` object sealed under its data
//! subject's key, deterministically (see `crate::shredding` for why), and opened back, or
//! read as `[shredded]` once the key is destroyed. The keys rest in a [`SecretBackend`];
//! nothing here knows the store, which seals through this.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ops_core::redaction::for_each_sensitive;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{KeyError, SecretBackend, SecretValue};

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

    fn key(&self, subject_id: &str, create: bool) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
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
            Err(KeyError::Unknown(_)) if create => {
                let mut key = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(key.as_mut());
                self.backend.put(&name, &SecretValue::new(key.to_vec()))?;
                Some(key)
            }
            Err(KeyError::Unknown(_)) => None,
            Err(error) => return Err(error),
        };
        cache.insert(subject_id.to_owned(), key.clone());
        Ok(key)
    }

    /// Destroys a subject's key: everything sealed under it becomes unreadable for good.
    pub fn destroy(&self, subject_id: &str) -> Result<bool, KeyError> {
        self.cache
            .lock()
            .expect("never poisoned")
            .insert(subject_id.to_owned(), None);
        self.backend.delete(&format!("subject/{subject_id}"))
    }

    /// Seals every sensitive field of `payload` that names its subject; `true` if any.
    pub fn seal(&self, payload: &mut Value, schema: &Value) -> Result<bool, KeyError> {
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
