//! The secrets provider (Section 12): the one place credentials exist in clear, and only
//! for as long as an executor in the host uses one.
//!
//! - [`SecretBackend`] keeps values at rest. [`EncryptedFile`] seals each value with
//!   ChaCha20-Poly1305 under a 32-byte key from the environment (`OPS_SECRETS_KEY`, hex) or
//!   a key file, bound to its secret id; a Vault or KMS backend implements the same trait.
//! - [`SecretsProvider`] issues opaque [`SecretHandle`]s to packs and, for executors,
//!   scoped, time-bounded, audience-bound [`AccessToken`]s, each on a capability checked
//!   at issue and with a `SecretTokenIssued` receipt. Revoking a handle ends its tokens at
//!   once, with a `SecretHandleRevoked` receipt. A token is refused at redemption when it
//!   expired, was revoked, or is presented for another audience.
//! - [`SecretValue`] and [`AccessToken`] implement neither `Debug` (beyond their ids),
//!   `Display` nor `Serialize`, and are wiped from memory on drop.
//!
//! Tokens live in this process's memory only: a restart ends them, and executors ask for
//! new ones. Handles and revocations are rebuilt from the log at open.

use crate::clock::WallClock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ops_core::capability::{Action, Authority};
use ops_core::contract::{Contract, SafetyClass};
use ops_core::envelope::{Actor, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId};
use ops_core::secrets::{SecretHandle, SecretHandleRevoked, SecretTokenIssued, TokenType};
use ops_core::time::Timestamp;
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use crate::service_event;
use crate::store::{AppendError, EventStore, ReadError};

/// The command type a capability must cover to use secrets; the audience is its
/// destination.
pub const SECRETS_ACTION: &str = "core.secrets.Issue";

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

/// A bearer token for one audience, until it expires. Its bearer string never prints.
pub struct AccessToken {
    token_id: String,
    bearer: Zeroizing<String>,
    pub audience: String,
    pub expires_at: Timestamp,
}

impl AccessToken {
    /// `tok_…`: a hash of the bearer string, safe to log.
    pub fn token_id(&self) -> &str {
        &self.token_id
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token_id", &self.token_id)
            .field("audience", &self.audience)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the secrets key is missing: set {KEY_VARIABLE} to 64 hex digits or give a key file")]
    NoKey,
    #[error("the secrets key is not 32 bytes of hex: {0}")]
    BadKey(String),
    #[error("the secrets file {path} cannot be used: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("secret `{0}` is not stored")]
    Unknown(String),
    #[error("secret `{secret_id}` does not decrypt with this key (tampered, or another key)")]
    Undecryptable { secret_id: String },
    #[error("handle {0} is not known")]
    UnknownHandle(String),
    #[error("handle {0} was revoked")]
    Revoked(String),
    #[error("capability {capability} does not allow it: {reason}")]
    Denied {
        capability: CapabilityId,
        reason: String,
    },
    #[error("the token is refused: {0}")]
    TokenRefused(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("writing the receipt failed: {0}")]
    Append(#[from] AppendError),
}

/// Where secret values rest. Implementations never log or return values but through
/// [`SecretBackend::get`].
pub trait SecretBackend: Send + Sync {
    fn put(&self, secret_id: &str, value: &SecretValue) -> Result<(), SecretsError>;
    fn get(&self, secret_id: &str) -> Result<SecretValue, SecretsError>;
    /// Destroys a value; `false` when there was none.
    fn delete(&self, secret_id: &str) -> Result<bool, SecretsError>;
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
    pub fn open(path: &Path, key_file: Option<&Path>) -> Result<Self, SecretsError> {
        let key_hex = match (std::env::var(KEY_VARIABLE), key_file) {
            (Ok(hex), _) => Zeroizing::new(hex),
            (Err(_), Some(file)) => Zeroizing::new(read_or_create_key(file)?),
            (Err(_), None) => return Err(SecretsError::NoKey),
        };
        Self::with_key(path, &key_hex)
    }

    pub fn with_key(path: &Path, key_hex: &str) -> Result<Self, SecretsError> {
        let bytes = Zeroizing::new(
            hex::decode(key_hex.trim()).map_err(|error| SecretsError::BadKey(error.to_string()))?,
        );
        if bytes.len() != 32 {
            return Err(SecretsError::BadKey(format!("{} bytes", bytes.len())));
        }
        Ok(EncryptedFile {
            path: path.to_owned(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
            writing: Mutex::new(()),
        })
    }

    fn file_error(&self, reason: impl ToString) -> SecretsError {
        SecretsError::File {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Replaces the file whole: a value removed from it is gone from the new file.
    fn write_all(&self, all: &BTreeMap<String, Sealed>) -> Result<(), SecretsError> {
        let text = serde_json::to_vec_pretty(all).expect("sealed values are plain JSON");
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, text).map_err(|e| self.file_error(e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| self.file_error(e))
    }

    fn read_all(&self) -> Result<BTreeMap<String, Sealed>, SecretsError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.file_error(e)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(error) => Err(self.file_error(error)),
        }
    }
}

fn read_or_create_key(file: &Path) -> Result<String, SecretsError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut key = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(key.as_mut());
            let text = hex::encode(key.as_ref());
            std::fs::write(file, &text).map_err(|error| SecretsError::File {
                path: file.to_owned(),
                reason: error.to_string(),
            })?;
            Ok(text)
        }
        Err(error) => Err(SecretsError::File {
            path: file.to_owned(),
            reason: error.to_string(),
        }),
    }
}

impl SecretBackend for EncryptedFile {
    fn put(&self, secret_id: &str, value: &SecretValue) -> Result<(), SecretsError> {
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

    fn delete(&self, secret_id: &str) -> Result<bool, SecretsError> {
        let _writer = self.writing.lock().expect("never poisoned");
        let mut all = self.read_all()?;
        let found = all.remove(secret_id).is_some();
        if found {
            self.write_all(&all)?;
        }
        Ok(found)
    }

    fn get(&self, secret_id: &str) -> Result<SecretValue, SecretsError> {
        let all = self.read_all()?;
        let sealed = all
            .get(secret_id)
            .ok_or_else(|| SecretsError::Unknown(secret_id.to_owned()))?;
        let undecryptable = || SecretsError::Undecryptable {
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

struct Issued {
    handle_id: String,
    secret_id: String,
    audience: String,
    expires_at: Timestamp,
}

#[derive(Default)]
struct Ledger {
    /// handle id → secret id, and whether it was revoked.
    handles: BTreeMap<String, (String, bool)>,
    /// token id → what it allows.
    tokens: BTreeMap<String, Issued>,
}

pub struct SecretsProvider {
    store: EventStore,
    backend: Box<dyn SecretBackend>,
    authority: Arc<dyn Authority>,
    ledger: Mutex<Ledger>,
}

impl SecretsProvider {
    /// A provider over `backend`, with the handles and revocations of the log.
    pub async fn open(
        store: EventStore,
        backend: Box<dyn SecretBackend>,
        authority: Arc<dyn Authority>,
    ) -> Result<Self, SecretsError> {
        let mut ledger = Ledger::default();
        for stored in store.read_by_type(SecretTokenIssued::TYPE).await? {
            if let Ok(issued) = serde_json::from_value::<SecretTokenIssued>(stored.envelope.payload)
                && issued.token_type == TokenType::Handle
                && let Some(handle_id) = issued.handle_id
            {
                ledger.handles.insert(handle_id, (issued.secret_id, false));
            }
        }
        for stored in store.read_by_type(SecretHandleRevoked::TYPE).await? {
            if let Ok(revoked) =
                serde_json::from_value::<SecretHandleRevoked>(stored.envelope.payload)
                && let Some(handle) = ledger.handles.get_mut(&revoked.handle_id)
            {
                handle.1 = true;
            }
        }
        Ok(SecretsProvider {
            store,
            backend,
            authority,
            ledger: Mutex::new(ledger),
        })
    }

    /// Stores (or replaces) a secret's value; only the operator's tooling calls this.
    pub fn store_secret(&self, secret_id: &str, value: SecretValue) -> Result<(), SecretsError> {
        self.backend.put(secret_id, &value)
    }

    /// An opaque handle to `secret_id`, for `requester` on `capability_id`.
    pub async fn handle(
        &self,
        secret_id: &str,
        requester: &Actor,
        capability_id: CapabilityId,
        correlation_id: CorrelationId,
    ) -> Result<SecretHandle, SecretsError> {
        let now = Timestamp::now();
        self.authorize(capability_id, requester, None, now)?;
        let handle_id = format!(
            "hnd_{}",
            blake3::hash(format!("{secret_id}\n{requester:?}\n{capability_id}\n{now}").as_bytes())
                .to_hex()
        );
        let receipt = SecretTokenIssued {
            capability_id,
            token_type: TokenType::Handle,
            handle_id: Some(handle_id.clone()),
            secret_id: secret_id.to_owned(),
            audience: None,
            scope: "handle".to_owned(),
            issued_at: now,
            expires_at: None,
            requester: requester.clone(),
            correlation_id,
        };
        self.record(
            &receipt,
            &handle_id,
            requester,
            capability_id,
            correlation_id,
        )
        .await?;
        self.ledger
            .lock()
            .expect("never poisoned")
            .handles
            .insert(handle_id.clone(), (secret_id.to_owned(), false));
        Ok(SecretHandle {
            handle_id,
            secret_id: secret_id.to_owned(),
        })
    }

    /// A token for `audience` from `handle`, good for `ttl`.
    #[allow(clippy::too_many_arguments)]
    pub async fn access_token(
        &self,
        handle: &SecretHandle,
        audience: &str,
        scope: &str,
        ttl: Duration,
        requester: &Actor,
        capability_id: CapabilityId,
        correlation_id: CorrelationId,
    ) -> Result<AccessToken, SecretsError> {
        let now = Timestamp::now();
        let secret_id = self.live_handle(&handle.handle_id)?;
        self.authorize(capability_id, requester, Some(audience), now)?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        let bearer = Zeroizing::new(hex::encode(bytes.as_ref()));
        let token_id = token_id(&bearer);
        let expires_at = now.plus(ttl).unwrap_or(now);
        let receipt = SecretTokenIssued {
            capability_id,
            token_type: TokenType::AccessToken,
            handle_id: Some(handle.handle_id.clone()),
            secret_id: secret_id.clone(),
            audience: Some(audience.to_owned()),
            scope: scope.to_owned(),
            issued_at: now,
            expires_at: Some(expires_at),
            requester: requester.clone(),
            correlation_id,
        };
        self.record(
            &receipt,
            &token_id,
            requester,
            capability_id,
            correlation_id,
        )
        .await?;
        self.ledger.lock().expect("never poisoned").tokens.insert(
            token_id.clone(),
            Issued {
                handle_id: handle.handle_id.clone(),
                secret_id,
                audience: audience.to_owned(),
                expires_at,
            },
        );
        Ok(AccessToken {
            token_id,
            bearer,
            audience: audience.to_owned(),
            expires_at,
        })
    }

    /// The secret behind `token`, for an executor reaching `audience`.
    pub fn redeem(&self, token: &AccessToken, audience: &str) -> Result<SecretValue, SecretsError> {
        let secret_id = {
            let ledger = self.ledger.lock().expect("never poisoned");
            let issued = ledger
                .tokens
                .get(&token_id(&token.bearer))
                .ok_or_else(|| SecretsError::TokenRefused("it was not issued here".to_owned()))?;
            if issued.audience != audience {
                return Err(SecretsError::TokenRefused(format!(
                    "it is for `{}`, not `{audience}`",
                    issued.audience
                )));
            }
            if Timestamp::now() >= issued.expires_at {
                return Err(SecretsError::TokenRefused(format!(
                    "it expired at {}",
                    issued.expires_at
                )));
            }
            if ledger.handles.get(&issued.handle_id).is_none_or(|h| h.1) {
                return Err(SecretsError::TokenRefused(format!(
                    "its handle {} was revoked",
                    issued.handle_id
                )));
            }
            issued.secret_id.clone()
        };
        self.backend.get(&secret_id)
    }

    /// Revokes a handle and every token issued from it, with a receipt.
    pub async fn revoke(
        &self,
        handle_id: &str,
        by: &Actor,
        reason: &str,
        capability_id: CapabilityId,
    ) -> Result<(), SecretsError> {
        let secret_id = self.live_handle(handle_id)?;
        {
            let mut ledger = self.ledger.lock().expect("never poisoned");
            if let Some(handle) = ledger.handles.get_mut(handle_id) {
                handle.1 = true;
            }
            ledger
                .tokens
                .retain(|_, issued| issued.handle_id != handle_id);
        }
        let receipt = SecretHandleRevoked {
            handle_id: handle_id.to_owned(),
            secret_id,
            revoked_by: by.clone(),
            reason: reason.to_owned(),
        };
        let correlation =
            CorrelationId::of(handle_id).expect("plain strings have a canonical form");
        self.record(
            &receipt,
            &format!("{handle_id}:revoked"),
            by,
            capability_id,
            correlation,
        )
        .await
    }

    fn live_handle(&self, handle_id: &str) -> Result<String, SecretsError> {
        match self
            .ledger
            .lock()
            .expect("never poisoned")
            .handles
            .get(handle_id)
        {
            None => Err(SecretsError::UnknownHandle(handle_id.to_owned())),
            Some((_, true)) => Err(SecretsError::Revoked(handle_id.to_owned())),
            Some((secret_id, false)) => Ok(secret_id.clone()),
        }
    }

    fn authorize(
        &self,
        capability_id: CapabilityId,
        requester: &Actor,
        audience: Option<&str>,
        at: Timestamp,
    ) -> Result<(), SecretsError> {
        let decision = self.authority.check(
            capability_id,
            &Action {
                actor: requester.clone(),
                command_type: SECRETS_ACTION.to_owned(),
                safety: SafetyClass::WriteExternalSideEffect,
                tenant: None,
                destination: audience.map(str::to_owned),
            },
            at,
        );
        if decision.allowed {
            Ok(())
        } else {
            Err(SecretsError::Denied {
                capability: capability_id,
                reason: decision.reason.unwrap_or_default(),
            })
        }
    }

    async fn record<E: ops_core::contract::Event>(
        &self,
        receipt: &E,
        native_id: &str,
        actor: &Actor,
        capability_id: CapabilityId,
        correlation_id: CorrelationId,
    ) -> Result<(), SecretsError> {
        let origin = EventOrigin {
            correlation_id,
            ..service_event::origin("core.secrets", native_id, actor, capability_id)
        };
        service_event::record(&self.store, "secrets", receipt, origin).await?;
        Ok(())
    }
}

/// `tok_` and a hash of the bearer string: what the ledger and the logs know a token by.
fn token_id(bearer: &str) -> String {
    format!("tok_{}", blake3::hash(bearer.as_bytes()).to_hex())
}
