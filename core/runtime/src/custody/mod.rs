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

use std::path::PathBuf;

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
