//! The query gateway: reads of the log and of projections on a capability, checked per
//! call, with every sensitive field redacted unless the capability reveals that type's
//! sensitive fields. The log and projections keep full payloads (personal data sealed);
//! only what leaves through a query is opened or redacted.

use crate::clock::WallClock;
use ops_core::contract::EventType;
use std::sync::Arc;

use ops_core::capability::{Action, Authority, Decision};
use ops_core::contract::SafetyClass;
use ops_core::envelope::{Actor, EventEnvelope};
use ops_core::id::{CapabilityId, CorrelationId};
use ops_core::projection::DynProjection;
use ops_core::redaction::{REDACTED, redact};
use ops_core::time::Timestamp;

use crate::acting::{Acting, Cause};
use crate::capability::{Denial, record_denial};
use crate::projection::stored_rows;
use crate::shredding::for_each_sealed;
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
    #[error("reading projection rows failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("projection row {row} is damaged: {reason}")]
    Damaged { row: String, reason: String },
}

/// A projection row as a query returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueriedRow {
    pub table: String,
    pub key: String,
    pub document: serde_json::Value,
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
        self.authorize(
            event_type,
            &format!("query:{event_type}"),
            actor,
            capability_id,
            now,
        )
        .await?;
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
                envelope.payload = serde_json::Value::String(REDACTED.to_owned());
                redacted.push(String::new());
            }
            queried.push(QueriedEvent { envelope, redacted });
        }
        Ok(queried)
    }

    /// The rows of `projection`, as `actor` on `capability_id` may see them now. The
    /// capability must allow reading every event type the projection folds. Rows hold
    /// personal data sealed; it is opened (or reads `[shredded]`) only when the capability
    /// reveals all of those types, and reads `[redacted]` otherwise.
    pub async fn rows(
        &self,
        projection: &dyn DynProjection,
        actor: &Actor,
        capability_id: CapabilityId,
    ) -> Result<Vec<QueriedRow>, QueryError> {
        let (_, reveals) = self.check_rows(projection, actor, capability_id).await?;
        let subject = query_subject(projection);
        let mut rows = Vec::new();
        for (table, key, document) in stored_rows(&self.store, projection).await? {
            let mut document: serde_json::Value =
                serde_json::from_str(&document).map_err(|error| QueryError::Damaged {
                    row: format!("{subject}/{table}/{key}"),
                    reason: error.to_string(),
                })?;
            if reveals {
                self.store.open_sealed(&mut document);
            } else {
                for_each_sealed(&mut document, &mut |_| REDACTED.to_owned());
            }
            rows.push(QueriedRow {
                table,
                key,
                document,
            });
        }
        Ok(rows)
    }

    /// Whether `actor` on `capability_id` may read `projection`'s rows now (a denial is
    /// recorded), the check it relied on, and whether its personal data is revealed: what
    /// [`QueryGateway::rows`] checks, for a caller that records the read (lineage).
    pub async fn check_rows(
        &self,
        projection: &dyn DynProjection,
        actor: &Actor,
        capability_id: CapabilityId,
    ) -> Result<(Decision, bool), QueryError> {
        let now = Timestamp::now();
        let subject = query_subject(projection);
        let mut reveals = true;
        let mut last = None;
        for event_type in projection.event_types().iter().map(EventType::name) {
            let decision = self
                .authorize(event_type, &subject, actor, capability_id, now)
                .await?;
            reveals &= self.authority.reveals(capability_id, event_type, now);
            last = Some((event_type, decision));
        }
        let Some((event_type, decision)) = last else {
            return Err(QueryError::Denied {
                capability: capability_id,
                event_type: String::new(),
                reason: format!("{subject} folds no event type, so nothing allows reading it"),
            });
        };
        // Rows have no schema: without sealing nothing marks what to redact, so a reader
        // who may not see personal data may not read them at all.
        if !reveals && !self.store.seals_personal_data() {
            let refused = Decision {
                allowed: false,
                reason: Some("this store seals no personal data, so the projection's rows cannot be redacted; read it on a capability that reveals the types it folds".to_owned()),
                ..decision
            };
            return Err(self
                .refuse(event_type, &subject, actor, capability_id, refused)
                .await);
        }
        Ok((decision, reveals))
    }

    /// Whether `capability_id`, held by `actor`, may read `event_type` now; a denial is
    /// recorded, naming what was asked for (`subject`).
    async fn authorize(
        &self,
        event_type: &str,
        subject: &str,
        actor: &Actor,
        capability_id: CapabilityId,
        now: Timestamp,
    ) -> Result<Decision, QueryError> {
        let action = Action {
            actor: actor.clone(),
            command_type: event_type.to_owned(),
            safety: SafetyClass::Read,
            tenant: None,
            destination: None,
        };
        let decision = self.authority.check(capability_id, &action, now);
        if decision.allowed {
            return Ok(decision);
        }
        Err(self
            .refuse(event_type, subject, actor, capability_id, decision)
            .await)
    }

    /// Records the `CapabilityDenied` receipt of a refused read and says why.
    async fn refuse(
        &self,
        event_type: &str,
        subject: &str,
        actor: &Actor,
        capability_id: CapabilityId,
        decision: Decision,
    ) -> QueryError {
        let reason = decision.reason.clone().unwrap_or_default();
        // A read is no action anyone retries: each refused read is its own, at its time.
        let by = Acting::new(actor.clone(), Cause::act(subject, Timestamp::now()));
        let recorded = record_denial(
            &self.store,
            Denial {
                capability_id,
                by: &by,
                action: event_type,
                subject: subject.to_owned(),
                reason: &reason,
                decision,
                correlation_id: CorrelationId::of(subject)
                    .expect("plain strings have a canonical form"),
                source_ref: "core.query",
            },
        )
        .await;
        match recorded {
            Ok(_) => QueryError::Denied {
                capability: capability_id,
                event_type: event_type.to_owned(),
                reason,
            },
            Err(error) => error.into(),
        }
    }
}

/// What a query of `projection`'s rows is recorded as asking for.
fn query_subject(projection: &dyn DynProjection) -> String {
    format!("query:{}/{}", projection.pack_id(), projection.name())
}
