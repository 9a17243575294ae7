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

/// The receipt of a handle or access token the provider issued. Version 2 added the
/// capability state the issue was checked on (A4).
#[event(public, version = 2, upcast_from = v1::SecretTokenIssued)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SecretTokenIssued {
    capability_id: "cap_0000000000000000000000000000000000000000000000000000000000000000".parse().expect("an id"),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
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
    /// The capability event the check relied on; empty in receipts before version 2.
    pub capability_state_ref: String,
    pub token_type: TokenType,
    /// The handle an access token was issued from, or the handle issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    pub secret_id: String,
    /// Who may redeem it: the destination it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// What it may be used for (`post`); a token is honoured only for its scope.
    pub scope: String,
    pub issued_at: Timestamp,
    /// When it stops being honoured; a handle's tokens end with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub requester: Actor,
    pub correlation_id: CorrelationId,
}

/// The receipt of a revoked handle: every token issued from it stops working at once.
/// Version 2 added the capability the revocation was checked on, and its state.
#[event(public, version = 2, upcast_from = v1::SecretHandleRevoked)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SecretHandleRevoked {
    handle_id: "hnd_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    secret_id: "webhook.oncall.token".to_owned(),
    revoked_by: Actor::Human(crate::envelope::ActorId::new("operator@example.com").expect("an actor id")),
    reason: "rotated".to_owned(),
    capability_id: Some("cap_0000000000000000000000000000000000000000000000000000000000000000".parse().expect("an id")),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct SecretHandleRevoked {
    pub handle_id: String,
    pub secret_id: String,
    pub revoked_by: Actor,
    pub reason: String,
    /// `None` in receipts before version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability_id: Option<CapabilityId>,
    pub capability_state_ref: String,
}

/// The receipt of a secret's value stored or replaced (never the value), on the capability
/// the operator's tooling was checked on.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = SecretStored {
    secret_id: "webhook.oncall.token".to_owned(),
    stored_by: Actor::Human(crate::envelope::ActorId::new("operator@example.com").expect("an actor id")),
    capability_id: "cap_0000000000000000000000000000000000000000000000000000000000000000".parse().expect("an id"),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct SecretStored {
    pub secret_id: String,
    pub stored_by: Actor,
    pub capability_id: CapabilityId,
    pub capability_state_ref: String,
}

impl crate::contract::Upcast<v1::SecretTokenIssued> for SecretTokenIssued {
    fn upcast(old: v1::SecretTokenIssued) -> Self {
        SecretTokenIssued {
            capability_id: old.capability_id,
            capability_state_ref: String::new(),
            token_type: old.token_type,
            handle_id: old.handle_id,
            secret_id: old.secret_id,
            audience: old.audience,
            scope: old.scope,
            issued_at: old.issued_at,
            expires_at: old.expires_at,
            requester: old.requester,
            correlation_id: old.correlation_id,
        }
    }
}

impl crate::contract::Upcast<v1::SecretHandleRevoked> for SecretHandleRevoked {
    fn upcast(old: v1::SecretHandleRevoked) -> Self {
        SecretHandleRevoked {
            handle_id: old.handle_id,
            secret_id: old.secret_id,
            revoked_by: old.revoked_by,
            reason: old.reason,
            capability_id: None,
            capability_state_ref: String::new(),
        }
    }
}

/// The receipts before they carried their capability state.
pub mod v1 {
    use super::{TokenType, example_actor, example_time};
    use crate::envelope::Actor;
    use crate::event;
    use crate::id::{CapabilityId, CorrelationId};
    use crate::time::Timestamp;

    #[event(public, version = 1)]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub handle_id: Option<String>,
        pub secret_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub audience: Option<String>,
        pub scope: String,
        pub issued_at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expires_at: Option<Timestamp>,
        pub requester: Actor,
        pub correlation_id: CorrelationId,
    }

    #[event(public, version = 1)]
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
}
