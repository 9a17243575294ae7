//! The query gateway: reads of the log on a capability, checked per call, with every
//! sensitive field redacted unless the capability reveals that type's sensitive fields.
//! The log keeps full payloads; only what leaves through a query is redacted.

use std::sync::Arc;

use ops_core::capability::{Action, Authority};
use ops_core::contract::SafetyClass;
use ops_core::envelope::{Actor, Causation, EventEnvelope};
use ops_core::id::{CapabilityId, CorrelationId, UserActionId};
use ops_core::redaction::redact;
use ops_core::time::Timestamp;

use crate::capability::{Denial, record_denial};
use crate::store::{AppendError, CurrentPayload, EventStore, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("capability {capability} may not read `{event_type}`: {reason}")]
    Denied {
        capability: CapabilityId,
        event_type: String,
        reason: String,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("recording the denial failed: {0}")]
    Append(#[from] AppendError),
}

/// An event as a query returns it: its payload upcast to the current version and
/// redacted for the caller; `redacted` lists the JSON pointers replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct QueriedEvent {
    pub envelope: EventEnvelope,
    pub redacted: Vec<String>,
}

pub struct QueryGateway {
    store: EventStore,
    authority: Arc<dyn Authority>,
}

impl QueryGateway {
    pub fn new(store: EventStore, authority: Arc<dyn Authority>) -> Self {
        QueryGateway { store, authority }
    }

    /// The events of `event_type`, as `actor` on `capability_id` may see them now.
    pub async fn events(
        &self,
        event_type: &str,
        actor: &Actor,
        capability_id: CapabilityId,
    ) -> Result<Vec<QueriedEvent>, QueryError> {
        let now = Timestamp::now();
        let action = Action {
            actor: actor.clone(),
            command_type: event_type.to_owned(),
            safety: SafetyClass::Read,
            tenant: None,
            destination: None,
        };
        let decision = self.authority.check(capability_id, &action, now);
        if !decision.allowed {
            let reason = decision.reason.clone().unwrap_or_default();
            let subject = format!("query:{event_type}");
            record_denial(
                &self.store,
                Denial {
                    capability_id,
                    actor,
                    action: event_type,
                    subject: subject.clone(),
                    reason: &reason,
                    decision,
                    correlation_id: CorrelationId::of(&subject)
                        .expect("plain strings have a canonical form"),
                    causation: Causation::UserAction(
                        UserActionId::of(&subject).expect("plain strings have a canonical form"),
                    ),
                    source_ref: "core.query",
                },
            )
            .await?;
            return Err(QueryError::Denied {
                capability: capability_id,
                event_type: event_type.to_owned(),
                reason,
            });
        }
        let reveals = self.authority.reveals(capability_id, event_type, now);
        let registry = self.store.registry();
        let mut queried = Vec::new();
        for stored in self.store.read_by_type(event_type).await? {
            let mut envelope = stored.envelope;
            let mut redacted = Vec::new();
            if let CurrentPayload::Current { version, payload } =
                self.store.current_payload(&envelope)
            {
                envelope.payload = payload;
                envelope.payload_schema_version = version;
                if !reveals && let Some(schema) = registry.schema(event_type, version) {
                    redacted = redact(&mut envelope.payload, schema);
                }
            } else if !reveals {
                // A type this build cannot read has no schema to say what is sensitive:
                // nothing of its payload leaves.
                envelope.payload =
                    serde_json::Value::String(ops_core::redaction::REDACTED.to_owned());
                redacted.push(String::new());
            }
            queried.push(QueriedEvent { envelope, redacted });
        }
        Ok(queried)
    }
}
