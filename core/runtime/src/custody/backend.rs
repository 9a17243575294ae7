//! Where secret values and subject keys rest: a [`SecretBackend`], by default
//! [`EncryptedFile`], which seals each value with ChaCha20-Poly1305 under a 32-byte key
//! from `OPS_SECRETS_KEY` (hex) or a key file, bound to its secret id. Nothing here knows
//! the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use super::{KeyError, private_file};

/// The environment variable holding the at-rest key, as 64 hex digits.
pub const KEY_VARIABLE: &str = "OPS_SECRETS_KEY";

/// A secret in clear. Only `expose` reads it; it never prints and is wiped on drop.
pub struct SecretValue(SecretBox<[u8]>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(SecretBox::new(bytes.into_boxed_slice()))
    }

    /// The bytes, for the executor that sends them to their audience.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// Where secret values rest. Implementations never log or return values but through
/// [`SecretBackend::get`].
pub trait SecretBackend: Send + Sync {
    fn put(&self, secret_id: &str, value: &SecretValue) -> Result<(), KeyError>;
    fn get(&self, secret_id: &str) -> Result<SecretValue, KeyError>;
    /// Destroys a value; `false` when there was none.
    fn delete(&self, secret_id: &str) -> Result<bool, KeyError>;
}

/// Values sealed one by one in a JSON file: `{secret_id: {nonce, ciphertext}}` in hex.
pub struct EncryptedFile {
    path: PathBuf,
    cipher: ChaCha20Poly1305,
    /// Serialises writers of this process; the file is replaced atomically.
    writing: Mutex<()>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

impl EncryptedFile {
    /// Opens (or will create) `path`, with the key from `OPS_SECRETS_KEY` or else from
    /// `key_file` (64 hex digits; created with a fresh key when absent, for local use).
    pub fn open(path: &Path, key_file: Option<&Path>) -> Result<Self, KeyError> {
        let key_hex = match (std::env::var(KEY_VARIABLE), key_file) {
            (Ok(hex), _) => Zeroizing::new(hex),
            (Err(_), Some(file)) => Zeroizing::new(read_or_create_key(file)?),
            (Err(_), None) => return Err(KeyError::NoKey),
        };
        Self::with_key(path, &key_hex)
    }

    pub fn with_key(path: &Path, key_hex: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(
            hex::decode(key_hex.trim()).map_err(|error| KeyError::BadKey(error.to_string()))?,
        );
        if bytes.len() != 32 {
            return Err(KeyError::BadKey(format!("{} bytes", bytes.len())));
        }
        Ok(EncryptedFile {
            path: path.to_owned(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
            writing: Mutex::new(()),
        })
    }

    fn file_error(&self, reason: impl ToString) -> KeyError {
        KeyError::File {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Replaces the file whole: a value removed from it is gone from the new file.
    fn write_all(&self, all: &BTreeMap<String, Sealed>) -> Result<(), KeyError> {
        let text = serde_json::to_vec_pretty(all).expect("sealed values are plain JSON");
        private_file::replace(&self.path, &text)
    }

    fn read_all(&self) -> Result<BTreeMap<String, Sealed>, KeyError> {
        match private_file::read(&self.path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.file_error(e)),
            None => Ok(BTreeMap::new()),
        }
    }
}

/// The key in `file`, created owner-only with a fresh key when there is none.
fn read_or_create_key(file: &Path) -> Result<String, KeyError> {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(key.as_mut());
    let fresh = Zeroizing::new(hex::encode(key.as_ref()));
    // Another process may create it first; then its key is the key.
    private_file::create_new(file, fresh.as_bytes())?;
    let bytes = private_file::read(file)?.unwrap_or_default();
    String::from_utf8(bytes).map_err(|error| KeyError::File {
        path: file.to_owned(),
        reason: error.to_string(),
    })
}

impl SecretBackend for EncryptedFile {
    fn put(&self, secret_id: &str, value: &SecretValue) -> Result<(), KeyError> {
        let _writer = self.writing.lock().expect("never poisoned");
        let mut all = self.read_all()?;
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        // The id is authenticated with the value: a sealed value moved under another
        // name does not decrypt.
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.expose(),
                    aad: secret_id.as_bytes(),
                },
            )
            .map_err(|_| self.file_error("encryption failed"))?;
        all.insert(
            secret_id.to_owned(),
            Sealed {
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ciphertext),
            },
        );
        self.write_all(&all)
    }

    fn delete(&self, secret_id: &str) -> Result<bool, KeyError> {
        let _writer = self.writing.lock().expect("never poisoned");
        let mut all = self.read_all()?;
        let found = all.remove(secret_id).is_some();
        if found {
            self.write_all(&all)?;
        }
        Ok(found)
    }

    fn get(&self, secret_id: &str) -> Result<SecretValue, KeyError> {
        let all = self.read_all()?;
        let sealed = all
            .get(secret_id)
            .ok_or_else(|| KeyError::Unknown(secret_id.to_owned()))?;
        let undecryptable = || KeyError::Undecryptable {
            secret_id: secret_id.to_owned(),
        };
        let nonce = hex::decode(&sealed.nonce).map_err(|_| undecryptable())?;
        let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| undecryptable())?;
        if nonce.len() != 12 {
            return Err(undecryptable());
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: secret_id.as_bytes(),
                },
            )
            .map_err(|_| undecryptable())?;
        Ok(SecretValue::new(plain))
    }
}
