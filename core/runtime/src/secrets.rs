//! The secrets provider (Section 12): the one place credentials exist in clear, and only
//! for as long as an executor in the host uses one.
//!
//! - [`SecretBackend`] keeps values at rest. [`EncryptedFile`] seals each value with
//!   ChaCha20-Poly1305 under a 32-byte key from the environment (`OPS_SECRETS_KEY`, hex) or
//!   a key file, bound to its secret id; a Vault or KMS backend implements the same trait.
//! - [`SecretsProvider`] issues opaque [`SecretHandle`]s to packs and, for executors,
//!   scoped, time-bounded, audience-bound [`AccessToken`]s, each on a capability checked
//!   at issue and with a `SecretTokenIssued` receipt. Revoking a handle ends its tokens at
//!   once, with a `SecretHandleRevoked` receipt; revoking is checked on the revoker's
//!   capability like issuing. Handles end after their lifetime, and a token with its
//!   handle. A token is refused at redemption when it expired, was revoked, or is presented
//!   for another audience or scope. Every receipt names the capability state its check
//!   relied on; a denial has its `CapabilityDenied` receipt.
//! - [`SecretValue`] and [`AccessToken`] implement neither `Debug` (beyond their ids),
//!   `Display` nor `Serialize`, and are wiped from memory on drop.
//!
//! Tokens live in this process's memory only: a restart ends them, and executors ask for
//! new ones. Handles and revocations are rebuilt from the log at open.

use crate::clock::WallClock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chacha20poly1305::aead::{OsRng, rand_core::RngCore};
use ops_core::capability::{Action, Authority, Decision};
use ops_core::contract::SafetyClass;
use ops_core::envelope::{Actor, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId};
use ops_core::secrets::{
    SecretHandle, SecretHandleRevoked, SecretStored, SecretTokenIssued, TokenType,
};
use ops_core::time::Timestamp;
use zeroize::Zeroizing;

use crate::acting::{Acting, Cause};
pub use crate::custody::{EncryptedFile, KEY_VARIABLE, KeyError, SecretBackend, SecretValue};
use crate::service_event;
use crate::store::{AppendError, EventStore, LogPosition, ReadError};
use ops_core::contract::Contract;

/// The command type a capability must cover to use secrets; the audience is its
/// destination.
pub const SECRETS_ACTION: &str = "core.secrets.Issue";

/// The command type a capability must cover to store a secret's value.
pub const SECRETS_STORE_ACTION: &str = "core.secrets.Store";

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
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("handle {0} is not known")]
    UnknownHandle(String),
    #[error("handle {0} was revoked")]
    Revoked(String),
    #[error("handle {0} ended at {1}")]
    Expired(String, Timestamp),
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

struct Issued {
    handle_id: String,
    secret_id: String,
    audience: String,
    scope: String,
    expires_at: Timestamp,
}

struct Handle {
    secret_id: String,
    revoked: bool,
    /// `None` for handles issued before handles ended.
    expires_at: Option<Timestamp>,
}

/// How many receipts a refresh reads at a time.
const REFRESH_BATCH: usize = 1_000;

#[derive(Default)]
struct Ledger {
    handles: BTreeMap<String, Handle>,
    /// token id → what it allows.
    tokens: BTreeMap<String, Issued>,
}

pub struct SecretsProvider {
    store: EventStore,
    backend: Box<dyn SecretBackend>,
    authority: Arc<dyn Authority>,
    ledger: Mutex<Ledger>,
    /// How far in the log the ledger has read: each refresh reads only what came since.
    read_up_to: tokio::sync::Mutex<LogPosition>,
}

impl SecretsProvider {
    /// A provider over `backend`, with the handles and revocations of the log.
    pub async fn open(
        store: EventStore,
        backend: Box<dyn SecretBackend>,
        authority: Arc<dyn Authority>,
    ) -> Result<Self, SecretsError> {
        let provider = SecretsProvider {
            store,
            backend,
            authority,
            ledger: Mutex::new(Ledger::default()),
            read_up_to: Default::default(),
        };
        provider.refresh().await?;
        Ok(provider)
    }

    /// Reads the handles issued and revoked since, by any host: a handle revoked anywhere
    /// is refused here from the next refresh on, with every token issued from it (a worker
    /// refreshes every tick).
    pub async fn refresh(&self) -> Result<(), SecretsError> {
        // One refresh at a time, each from where the last one stopped, in commit order.
        let mut read_up_to = self.read_up_to.lock().await;
        loop {
            let batch = self
                .store
                .follow_types(
                    &[SecretTokenIssued::TYPE, SecretHandleRevoked::TYPE],
                    *read_up_to,
                    REFRESH_BATCH,
                )
                .await?;
            if batch.events.is_empty() && batch.corrupt.is_empty() {
                return Ok(());
            }
            *read_up_to = batch.next;
            // Kept aside, not dropped: a receipt that cannot be read issues nothing.
            for corrupt in &batch.corrupt {
                self.store
                    .quarantine("secrets", &corrupt.reference, &corrupt.reason, &corrupt.raw)
                    .await
                    .map_err(ReadError::from)?;
            }
            let mut ledger = self.ledger.lock().expect("never poisoned");
            for stored in batch.events {
                let crate::store::CurrentPayload::Current { payload, .. } =
                    self.store.current_payload(&stored.envelope)
                else {
                    continue;
                };
                if stored.envelope.event_type == SecretTokenIssued::TYPE {
                    let Ok(issued) = serde_json::from_value::<SecretTokenIssued>(payload) else {
                        continue;
                    };
                    if issued.token_type == TokenType::Handle
                        && let Some(handle_id) = issued.handle_id
                    {
                        ledger.handles.entry(handle_id).or_insert(Handle {
                            secret_id: issued.secret_id,
                            revoked: false,
                            expires_at: issued.expires_at,
                        });
                    }
                } else if let Ok(revoked) = serde_json::from_value::<SecretHandleRevoked>(payload) {
                    if let Some(handle) = ledger.handles.get_mut(&revoked.handle_id) {
                        handle.revoked = true;
                    }
                    ledger
                        .tokens
                        .retain(|_, issued| issued.handle_id != revoked.handle_id);
                }
            }
        }
    }

    /// When `handle` ends, while it holds (`None`: it does not end); an error once it was
    /// revoked or ended.
    pub fn handle_ends(&self, handle: &SecretHandle) -> Result<Option<Timestamp>, SecretsError> {
        self.live_handle(&handle.handle_id).map(|(_, ends)| ends)
    }

    /// Stores (or replaces) a secret's value as `by` on `capability_id`, which must cover
    /// [`SECRETS_STORE_ACTION`]; the receipt names the secret, never its value.
    pub async fn store_secret(
        &self,
        secret_id: &str,
        value: SecretValue,
        by: &Acting,
        capability_id: CapabilityId,
    ) -> Result<(), SecretsError> {
        let decision = self
            .check(capability_id, by, SECRETS_STORE_ACTION, None, secret_id)
            .await?;
        self.backend.put(secret_id, &value)?;
        let receipt = SecretStored {
            secret_id: secret_id.to_owned(),
            stored_by: by.actor.clone(),
            capability_id,
            capability_state_ref: decision.state_ref,
        };
        let correlation =
            CorrelationId::of(secret_id).expect("plain strings have a canonical form");
        self.record(
            &receipt,
            &format!("{secret_id}:stored:{}", by.cause.label()),
            by,
            capability_id,
            correlation,
        )
        .await
    }

    /// An opaque handle to `secret_id`, for `requester` on `capability_id`, good for
    /// `lifetime`: after that neither it nor a token from it is honoured.
    pub async fn handle(
        &self,
        secret_id: &str,
        requester: &Actor,
        capability_id: CapabilityId,
        correlation_id: CorrelationId,
        lifetime: Duration,
    ) -> Result<SecretHandle, SecretsError> {
        let now = Timestamp::now();
        let handle_id = format!(
            "hnd_{}",
            blake3::hash(format!("{secret_id}\n{requester:?}\n{capability_id}\n{now}").as_bytes())
                .to_hex()
        );
        // A handle is new each time one is asked for.
        let by = Acting::new(requester.clone(), Cause::act(&handle_id, now));
        let decision = self.authorize(capability_id, &by, None, secret_id).await?;
        let expires_at = now.plus(lifetime).unwrap_or(now);
        let receipt = SecretTokenIssued {
            capability_id,
            capability_state_ref: decision.state_ref,
            token_type: TokenType::Handle,
            handle_id: Some(handle_id.clone()),
            secret_id: secret_id.to_owned(),
            audience: None,
            scope: "handle".to_owned(),
            issued_at: now,
            expires_at: Some(expires_at),
            requester: requester.clone(),
            correlation_id,
        };
        self.record(&receipt, &handle_id, &by, capability_id, correlation_id)
            .await?;
        self.ledger.lock().expect("never poisoned").handles.insert(
            handle_id.clone(),
            Handle {
                secret_id: secret_id.to_owned(),
                revoked: false,
                expires_at: Some(expires_at),
            },
        );
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
        let (secret_id, handle_ends) = self.live_handle(&handle.handle_id)?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        let bearer = Zeroizing::new(hex::encode(bytes.as_ref()));
        let token_id = token_id(&bearer);
        // A token is new each time one is asked for.
        let by = Acting::new(requester.clone(), Cause::act(&token_id, now));
        let decision = self
            .authorize(capability_id, &by, Some(audience), &secret_id)
            .await?;
        // A token ends with its handle, if that is sooner.
        let asked = now.plus(ttl).unwrap_or(now);
        let expires_at = handle_ends.map_or(asked, |ends| asked.min(ends));
        let receipt = SecretTokenIssued {
            capability_id,
            capability_state_ref: decision.state_ref,
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
        self.record(&receipt, &token_id, &by, capability_id, correlation_id)
            .await?;
        self.ledger.lock().expect("never poisoned").tokens.insert(
            token_id.clone(),
            Issued {
                handle_id: handle.handle_id.clone(),
                secret_id,
                audience: audience.to_owned(),
                scope: scope.to_owned(),
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

    /// The secret behind `token`, for an executor reaching `audience` to do `scope`.
    pub fn redeem(
        &self,
        token: &AccessToken,
        audience: &str,
        scope: &str,
    ) -> Result<SecretValue, SecretsError> {
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
            if issued.scope != scope {
                return Err(SecretsError::TokenRefused(format!(
                    "it is for `{}`, not `{scope}`",
                    issued.scope
                )));
            }
            if Timestamp::now() >= issued.expires_at {
                return Err(SecretsError::TokenRefused(format!(
                    "it expired at {}",
                    issued.expires_at
                )));
            }
            if ledger
                .handles
                .get(&issued.handle_id)
                .is_none_or(|h| h.revoked)
            {
                return Err(SecretsError::TokenRefused(format!(
                    "its handle {} was revoked",
                    issued.handle_id
                )));
            }
            issued.secret_id.clone()
        };
        Ok(self.backend.get(&secret_id)?)
    }

    /// Revokes a handle and every token issued from it, with a receipt, as `by` on
    /// `capability_id`, which must allow using secrets (a denial has its receipt).
    pub async fn revoke(
        &self,
        handle_id: &str,
        by: &Acting,
        reason: &str,
        capability_id: CapabilityId,
    ) -> Result<(), SecretsError> {
        let (secret_id, _) = self.live_handle(handle_id)?;
        let decision = self.authorize(capability_id, by, None, &secret_id).await?;
        {
            let mut ledger = self.ledger.lock().expect("never poisoned");
            if let Some(handle) = ledger.handles.get_mut(handle_id) {
                handle.revoked = true;
            }
            ledger
                .tokens
                .retain(|_, issued| issued.handle_id != handle_id);
        }
        let receipt = SecretHandleRevoked {
            handle_id: handle_id.to_owned(),
            secret_id,
            revoked_by: by.actor.clone(),
            reason: reason.to_owned(),
            capability_id: Some(capability_id),
            capability_state_ref: decision.state_ref,
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

    /// Every handle issued, with its secret, whether it was revoked and when it ends.
    pub fn handles(&self) -> Vec<(String, String, bool, Option<Timestamp>)> {
        self.ledger
            .lock()
            .expect("never poisoned")
            .handles
            .iter()
            .map(|(id, handle)| {
                (
                    id.clone(),
                    handle.secret_id.clone(),
                    handle.revoked,
                    handle.expires_at,
                )
            })
            .collect()
    }

    /// The secret a handle names and when it ends, while it is neither revoked nor over.
    fn live_handle(&self, handle_id: &str) -> Result<(String, Option<Timestamp>), SecretsError> {
        let ledger = self.ledger.lock().expect("never poisoned");
        let handle = ledger
            .handles
            .get(handle_id)
            .ok_or_else(|| SecretsError::UnknownHandle(handle_id.to_owned()))?;
        if handle.revoked {
            return Err(SecretsError::Revoked(handle_id.to_owned()));
        }
        if let Some(ended) = handle.expires_at.filter(|end| Timestamp::now() >= *end) {
            return Err(SecretsError::Expired(handle_id.to_owned(), ended));
        }
        Ok((handle.secret_id.clone(), handle.expires_at))
    }

    /// Whether `capability_id` lets `requester` use secrets for `audience` now; a denial is
    /// recorded with its receipt, naming the secret.
    async fn authorize(
        &self,
        capability_id: CapabilityId,
        by: &Acting,
        audience: Option<&str>,
        secret_id: &str,
    ) -> Result<Decision, SecretsError> {
        self.check(capability_id, by, SECRETS_ACTION, audience, secret_id)
            .await
    }

    /// Whether `capability_id` lets `by` do `action` to `secret_id` now; a denial
    /// is recorded with its receipt.
    async fn check(
        &self,
        capability_id: CapabilityId,
        by: &Acting,
        action: &str,
        audience: Option<&str>,
        secret_id: &str,
    ) -> Result<Decision, SecretsError> {
        let action = Action {
            actor: by.actor.clone(),
            command_type: action.to_owned(),
            safety: SafetyClass::WriteExternalSideEffect,
            tenant: None,
            destination: audience.map(str::to_owned),
        };
        let asked =
            crate::capability::Asked::by_user(by, format!("secrets/{secret_id}"), "core.secrets");
        crate::capability::check_or_deny(
            &self.store,
            &*self.authority,
            capability_id,
            &action,
            asked,
        )
        .await?
        .map_err(|reason| SecretsError::Denied {
            capability: capability_id,
            reason,
        })
    }

    async fn record<E: ops_core::contract::Event>(
        &self,
        receipt: &E,
        native_id: &str,
        by: &Acting,
        capability_id: CapabilityId,
        correlation_id: CorrelationId,
    ) -> Result<(), SecretsError> {
        let origin = EventOrigin {
            correlation_id,
            ..by.origin("core.secrets", native_id, capability_id)
        };
        service_event::record(&self.store, "secrets", receipt, origin).await?;
        Ok(())
    }
}

/// `tok_` and a hash of the bearer string: what the ledger and the logs know a token by.
fn token_id(bearer: &str) -> String {
    format!("tok_{}", blake3::hash(bearer.as_bytes()).to_hex())
}
