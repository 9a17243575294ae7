//! Secrets custody as packs see it (Section 12): nothing but opaque handles and receipts.
//!
//! Credentials live only inside the runtime's secrets provider, encrypted at rest. A pack
//! may be given a [`SecretHandle`], which names a secret and carries no value; only an
//! executor in the host can turn a handle into a scoped, time-bounded, audience-bound
//! access token and redeem it. Issuing a handle or token and revoking a handle leave
//! receipts in the log; no receipt holds a secret value.

use crate::envelope::Actor;
use crate::event;
use crate::id::{CapabilityId, CorrelationId};
use crate::time::Timestamp;

/// A secret by name, without its value. Holding one allows nothing by itself.
#[crate::data]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretHandle {
    /// `hnd_…`
    pub handle_id: String,
    /// The secret's class, such as `webhook.oncall.token`; never its value.
    pub secret_id: String,
}

#[crate::data]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Handle,
    AccessToken,
}

fn example_actor() -> Actor {
    Actor::Service(crate::envelope::ActorId::new("pack.notify").expect("an actor id"))
}

fn example_time(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

/// The receipt of a handle or access token the provider issued.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SecretTokenIssued {
    capability_id: "cap_0000000000000000000000000000000000000000000000000000000000000000".parse().expect("an id"),
    token_type: TokenType::AccessToken,
    handle_id: Some("hnd_0000000000000000000000000000000000000000000000000000000000000000".to_owned()),
    secret_id: "webhook.oncall.token".to_owned(),
    audience: Some("webhook.oncall".to_owned()),
    scope: "post".to_owned(),
    issued_at: example_time("2026-11-26T09:00:00Z"),
    expires_at: Some(example_time("2026-11-26T09:05:00Z")),
    requester: example_actor(),
    correlation_id: CorrelationId::of("example").expect("canonical"),
})]
pub struct SecretTokenIssued {
    pub capability_id: CapabilityId,
    pub token_type: TokenType,
    /// The handle an access token was issued from, or the handle issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    pub secret_id: String,
    /// Who may redeem it: the destination it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub scope: String,
    pub issued_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub requester: Actor,
    pub correlation_id: CorrelationId,
}

/// The receipt of a revoked handle: every token issued from it stops working at once.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SecretHandleRevoked {
    handle_id: "hnd_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    secret_id: "webhook.oncall.token".to_owned(),
    revoked_by: Actor::Human(crate::envelope::ActorId::new("operator@example.com").expect("an actor id")),
    reason: "rotated".to_owned(),
})]
pub struct SecretHandleRevoked {
    pub handle_id: String,
    pub secret_id: String,
    pub revoked_by: Actor,
    pub reason: String,
}
