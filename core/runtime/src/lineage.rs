//! Lineage kept by the core (Section 5): artifacts stored under their content id with an
//! `ArtifactRecorded` event in the same transaction, feedback as events, the chain of an
//! artifact back to the source events. Retention of artifact bodies is
//! [`crate::retention`]'s.

use ops_core::contract::{Contract, Event};
use ops_core::envelope::{Actor, EventEnvelope};
use ops_core::id::{CapabilityId, ContentHash, ContentId, EventId};
use ops_core::lineage::{
    Artifact, ArtifactRecorded, DerivedArtifact, FeedbackGiven, FeedbackKind, Input, QueryArtifact,
};
use ops_core::supply_chain::ModelChange;
use ops_core::time::Timestamp;

use crate::acting::Acting;
use crate::projection::ProjectionRunner;
use crate::query::QueryGateway;
use crate::store::{AppendError, EventStore, ExpectedVersion, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("artifact {0} is not known")]
    Unknown(ContentId),
    #[error("event {0} is not stored")]
    UnknownEvent(EventId),
    #[error("artifact {id} is damaged: {reason}")]
    Damaged { id: String, reason: String },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("reading artifacts failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("recording failed; nothing was written: {0}")]
    Append(#[from] AppendError),
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
}

/// One line of an artifact's chain, from the artifact back to its source events.
#[derive(Clone, Debug, PartialEq)]
pub enum Link {
    Artifact {
        depth: usize,
        id: ContentId,
        artifact: Artifact,
        feedback: Vec<FeedbackKind>,
    },
    /// Recorded, but its body was removed by retention.
    Removed { depth: usize, id: ContentId },
    Event {
        depth: usize,
        id: EventId,
        event_type: Option<String>,
    },
}

pub struct Lineage {
    store: EventStore,
    capability_id: CapabilityId,
}

impl Lineage {
    pub fn new(store: EventStore, capability_id: CapabilityId) -> Self {
        Lineage {
            store,
            capability_id,
        }
    }

    /// What a projection answers now, as a query artifact read by `reader` on this
    /// lineage's capability through `gateway`: the read is checked (a denial is recorded
    /// and nothing is), and the artifact records the capability state the check relied on.
    pub async fn query_artifact(
        &self,
        gateway: &QueryGateway,
        runner: &ProjectionRunner,
        reader: &Actor,
    ) -> Result<QueryArtifact, LineageError> {
        let projection = runner.projection();
        let (decision, _) = gateway
            .check_rows(projection, reader, self.capability_id)
            .await?;
        let position = runner.position();
        let mut source_events = Vec::new();
        let mut freshness_at = Timestamp::from_unix_micros(0).expect("the epoch");
        let mut after = Default::default();
        loop {
            let batch = self.store.follow(after, 1_000).await?;
            if batch.events.is_empty() {
                break;
            }
            for event in &batch.events {
                if event.position > position {
                    break;
                }
                if projection.reads(&event.envelope.event_type) {
                    source_events.push(event.envelope.event_id);
                    freshness_at = freshness_at.max(event.recorded_at);
                }
            }
            if batch.next >= position {
                break;
            }
            after = batch.next;
        }
        let rows: Vec<(String, String, serde_json::Value)> = runner
            .state()
            .rows()
            .map(|((table, key), row)| (table.to_owned(), key.to_owned(), row.clone()))
            .collect();
        Ok(QueryArtifact {
            snapshot_id: format!("{}:{}", position.tx_order, position.seq),
            projection: format!("{}/{}", projection.pack_id(), projection.name()),
            projection_version: projection.version(),
            freshness_at,
            capability_id: self.capability_id,
            capability_state_ref: decision.state_ref,
            source_events,
            result_hash: ops_core::id::payload_hash(
                &serde_json::to_value(rows).expect("rows are plain JSON"),
            ),
        })
    }

    /// Stores an artifact and records it; storing it again changes nothing.
    pub async fn record(
        &self,
        artifact: &Artifact,
        by: &Acting,
    ) -> Result<ContentId, LineageError> {
        let id = artifact.artifact_id();
        if self.was_recorded(id).await? {
            return Ok(id);
        }
        let kind = match artifact {
            Artifact::Query(_) => "query",
            Artifact::Derived(_) => "derived",
        };
        let body = serde_json::to_string(artifact).expect("an artifact is plain JSON");
        let recorded = ArtifactRecorded {
            artifact_id: id,
            kind: kind.to_owned(),
        };
        let event = self.event(&recorded, &format!("{id}:recorded"), by);
        self.store
            .append_with(
                &format!("artifact/{id}"),
                ExpectedVersion::Any,
                &[event],
                &[&crate::artifacts::StoreBody {
                    id: &id.to_string(),
                    kind,
                    body: &body,
                }],
            )
            .await?;
        Ok(id)
    }

    /// Records a derived artifact: `output_hash` computed by `policy_version` (with `tools`
    /// and, where one vouches for it, eval `eval_id`) from `inputs`, each of which must be
    /// stored: an event, or a recorded artifact. Each input's hash is the runtime's (the
    /// event's payload hash, the artifact's canonical body), never the caller's.
    pub async fn derive(
        &self,
        inputs: Vec<Input>,
        output_hash: ContentHash,
        policy_version: &str,
        tools: std::collections::BTreeMap<String, String>,
        eval_id: Option<ContentId>,
        by: &Acting,
    ) -> Result<ContentId, LineageError> {
        let mut input_hashes = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let hash = match input {
                Input::Event(id) => self
                    .store
                    .payload_hash_of(*id)
                    .await?
                    .ok_or_else(|| LineageError::UnknownEvent(*id))?,
                Input::Artifact(id) => {
                    let artifact = self.get(*id).await?.ok_or(LineageError::Unknown(*id))?;
                    ops_core::id::payload_hash(
                        &serde_json::to_value(&artifact).expect("an artifact is plain JSON"),
                    )
                }
            };
            input_hashes.push(hash);
        }
        let derived = Artifact::Derived(DerivedArtifact {
            inputs,
            input_hashes,
            policy_version: policy_version.to_owned(),
            tool_versions: tools,
            model_config: std::collections::BTreeMap::new(),
            eval_id,
            output_hash,
        });
        self.record(&derived, by).await
    }

    pub async fn feedback(
        &self,
        artifact_id: ContentId,
        feedback: FeedbackKind,
        note: Option<&str>,
        by: &Acting,
    ) -> Result<(), LineageError> {
        if self.get(artifact_id).await?.is_none() && !self.was_recorded(artifact_id).await? {
            return Err(LineageError::Unknown(artifact_id));
        }
        let given = FeedbackGiven {
            artifact_id,
            feedback,
            note: note.map(str::to_owned),
        };
        let event = self.event(
            &given,
            &format!("{artifact_id}:{feedback:?}:{}", by.cause.label()),
            by,
        );
        self.store
            .append(
                &format!("artifact/{artifact_id}"),
                ExpectedVersion::Any,
                &[event],
            )
            .await?;
        Ok(())
    }

    pub async fn get(&self, artifact_id: ContentId) -> Result<Option<Artifact>, LineageError> {
        let body = crate::artifacts::body(self.store.db(), &artifact_id.to_string()).await?;
        body.map(|text| {
            serde_json::from_str(&text).map_err(|error| LineageError::Damaged {
                id: artifact_id.to_string(),
                reason: error.to_string(),
            })
        })
        .transpose()
    }

    /// The derived artifacts computed with a version that `changes` replace, sorted: what
    /// a change of model or tool versions affects.
    pub async fn affected_by(
        &self,
        changes: &[ModelChange],
    ) -> Result<Vec<ContentId>, LineageError> {
        let replaced: Vec<(&str, &str)> = changes
            .iter()
            .filter_map(|change| Some((change.tool.as_str(), change.from.as_deref()?)))
            .collect();
        if replaced.is_empty() {
            return Ok(Vec::new());
        }
        let rows = crate::artifacts::bodies_of_kind(self.store.db(), "derived").await?;
        let mut affected = Vec::new();
        for (id, body) in rows {
            let damaged = |reason: String| LineageError::Damaged {
                id: id.clone(),
                reason,
            };
            let Artifact::Derived(derived) =
                serde_json::from_str(&body).map_err(|error| damaged(error.to_string()))?
            else {
                continue;
            };
            let used = |tool: &str, version: &str| {
                [&derived.tool_versions, &derived.model_config]
                    .iter()
                    .any(|pins| pins.get(tool).is_some_and(|used| used == version))
            };
            if replaced.iter().any(|(tool, version)| used(tool, version)) {
                affected.push(id.parse().map_err(|error| damaged(format!("{error}")))?);
            }
        }
        Ok(affected)
    }

    async fn was_recorded(&self, artifact_id: ContentId) -> Result<bool, LineageError> {
        Ok(!self
            .store
            .read_stream(&format!("artifact/{artifact_id}"))
            .await?
            .is_empty())
    }

    /// The artifact, what it was computed from, and so on back to the source events.
    pub async fn chain(&self, artifact_id: ContentId) -> Result<Vec<Link>, LineageError> {
        let mut links = Vec::new();
        let mut pending = vec![(0, Input::Artifact(artifact_id))];
        while let Some((depth, input)) = pending.pop() {
            match input {
                Input::Event(id) => {
                    let event_type = self.event_type(id).await?;
                    links.push(Link::Event {
                        depth,
                        id,
                        event_type,
                    });
                }
                Input::Artifact(id) => {
                    let Some(artifact) = self.get(id).await? else {
                        if self.was_recorded(id).await? {
                            links.push(Link::Removed { depth, id });
                            continue;
                        }
                        return Err(LineageError::Unknown(id));
                    };
                    let inputs: Vec<Input> = match &artifact {
                        Artifact::Derived(derived) => derived.inputs.clone(),
                        Artifact::Query(query) => query
                            .source_events
                            .iter()
                            .copied()
                            .map(Input::Event)
                            .collect(),
                    };
                    let feedback = self.feedback_on(id).await?;
                    links.push(Link::Artifact {
                        depth,
                        id,
                        artifact,
                        feedback,
                    });
                    pending.extend(inputs.into_iter().rev().map(|input| (depth + 1, input)));
                }
            }
        }
        Ok(links)
    }

    async fn feedback_on(&self, artifact_id: ContentId) -> Result<Vec<FeedbackKind>, LineageError> {
        Ok(self
            .store
            .read_stream(&format!("artifact/{artifact_id}"))
            .await?
            .into_iter()
            .filter(|event| event.envelope.event_type == FeedbackGiven::TYPE)
            .filter_map(|event| {
                serde_json::from_value::<FeedbackGiven>(event.envelope.payload).ok()
            })
            .map(|given| given.feedback)
            .collect())
    }

    async fn event_type(&self, id: EventId) -> Result<Option<String>, LineageError> {
        Ok(self.store.event_type_of(id).await?)
    }

    fn event<E: Event>(&self, event: &E, native_id: &str, by: &Acting) -> EventEnvelope {
        let origin = by.origin("core.lineage", native_id, self.capability_id);
        EventEnvelope::new(event, origin).expect("lineage events are plain JSON")
    }
}
