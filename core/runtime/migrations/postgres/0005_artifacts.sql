-- Lineage (Section 5): query and derived artifacts, stored under their content id. The log
-- records each one (core.ArtifactRecorded); retention may remove a body, never the record.
CREATE TABLE core_artifacts (
    artifact_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    recorded_at_us BIGINT NOT NULL
);
CREATE INDEX core_artifacts_recorded ON core_artifacts (recorded_at_us);
