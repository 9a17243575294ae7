//! Key custody, below the store and knowing nothing of it: where secret values and subject
//! keys rest ([`SecretBackend`], [`EncryptedFile`]) and how personal data is sealed per
//! subject ([`SubjectKeys`]). The services that state receipts about keys sit above the
//! store: `crate::secrets` (the secrets provider) and `crate::shredding` (erasure).

mod backend;
mod private_file;
mod subject_keys;

pub use backend::{EncryptedFile, KEY_VARIABLE, SecretBackend, SecretValue};
pub use subject_keys::{
    SEALED_PREFIX, SHREDDED, SubjectKeys, for_each_sealed, sealed_subject, subject_id,
};

use std::path::{Path, PathBuf};

/// A signing key kept in a private file as the 64 hex digits of its Ed25519 seed: refused
/// when users other than its owner can read the file (naming the `chmod` that fixes it).
pub fn read_signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey, KeyError> {
    let text = private_file::read(path)?.ok_or_else(|| KeyError::File {
        path: path.to_owned(),
        reason: "there is no such file".to_owned(),
    })?;
    let seed = hex::decode(String::from_utf8_lossy(&text).trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            KeyError::BadKey(format!("{} does not hold 64 hex digits", path.display()))
        })?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Creates a new signing key in `path` (owner-only; an existing file is never replaced) and
/// returns it.
pub fn create_signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey, KeyError> {
    if path.exists() {
        return Err(KeyError::File {
            path: path.to_owned(),
            reason: "it exists already; a key is never replaced".to_owned(),
        });
    }
    use chacha20poly1305::aead::{OsRng, rand_core::RngCore};
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(seed.as_mut());
    private_file::create_new(path, hex::encode(seed.as_ref()).as_bytes())?;
    read_signing_key(path)
}

/// What goes wrong keeping keys and values at rest.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the secrets key is missing: set {KEY_VARIABLE} to 64 hex digits or give a key file")]
    NoKey,
    #[error("the secrets key is not 32 bytes of hex: {0}")]
    BadKey(String),
    #[error("the secrets file {path} cannot be used: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "{path} holds key material and users other than its owner can read or change it (mode {mode:03o}); run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("secret `{0}` is not stored")]
    Unknown(String),
    #[error("secret `{secret_id}` does not decrypt with this key (tampered, or another key)")]
    Undecryptable { secret_id: String },
}
