//! The filesync pack: a connector that reads a ticketing system's export, a directory of
//! JSON-lines files of change records, and states them as incident events.
//!
//! ```json
//! {"seq": 1, "op": "create", "id": "T-100", "at": "2026-11-20T09:00:00Z",
//!  "service": "payments", "title": "Card authorisations time out", "severity": "sev1"}
//! {"seq": 2, "op": "update", "id": "T-100", "at": "...", "status": "acknowledged",
//!  "assignee": {"id": "U042", "name": "Ada Responder"}}
//! {"seq": 3, "op": "delete", "id": "T-100", "at": "..."}
//! ```

#![no_std]
#![forbid(unsafe_code)]

use ops_contract_incidents::{IncidentAcknowledged, IncidentOpened, IncidentResolved, Severity};
use ops_core::connector::{Connector, Drift, Fact, decode_record};
use ops_core::pack;
use ops_core::prelude::*;
use ops_core::time::Timestamp;
use ops_shared_people::{PersonRef, ServiceRef};
use serde::Deserialize;
use serde_json::Value;

#[pack(id = "filesync", contracts = ["ops-contract-incidents"])]
pub struct FilesyncPack;

/// The export of the ticketing system; its one stream is `tickets`.
pub struct TicketExport;

/// The committed sample export, for the demo and the tests.
pub const SAMPLE_EXPORT: &str = ops_core::pack_path!("sample");

/// Every record names its operation; the rest of its shape depends on it.
#[derive(Deserialize)]
struct Operation {
    op: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Created {
    seq: u64,
    #[serde(rename = "op")]
    _op: String,
    id: String,
    at: String,
    /// When it took effect, if the ticket says (an outage filed after it began).
    #[serde(default)]
    effective_at: Option<String>,
    service: String,
    title: String,
    severity: Severity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Updated {
    seq: u64,
    #[serde(rename = "op")]
    _op: String,
    id: String,
    at: String,
    #[serde(default)]
    effective_at: Option<String>,
    status: Status,
    assignee: Assignee,
    #[serde(default)]
    resolution: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deleted {
    #[serde(rename = "seq")]
    _seq: u64,
    #[serde(rename = "op")]
    _op: String,
    id: String,
    at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Acknowledged,
    Resolved,
    Reopened,
}

#[derive(Deserialize)]
struct Assignee {
    id: String,
    name: String,
}

impl Connector for TicketExport {
    type Pack = FilesyncPack;
    const ID: &'static str = "tickets";
    const SAMPLE: Option<&'static str> = Some(SAMPLE_EXPORT);

    fn streams(&self) -> Vec<String> {
        vec!["tickets".to_owned()]
    }

    fn interpret(&self, _stream: &str, record: &Value) -> Result<Vec<Fact>, Drift> {
        let Operation { op } = decode_record(record)?;
        let by = |assignee: Assignee| PersonRef {
            system: "ticketing".to_owned(),
            id: assignee.id,
            display_name: assignee.name,
        };
        let fact = match op.as_str() {
            "create" => {
                let created: Created = decode_record(record)?;
                let opened = IncidentOpened {
                    incident_id: created.id.clone(),
                    service: ServiceRef {
                        system: "catalogue".to_owned(),
                        id: created.service,
                    },
                    title: created.title,
                    severity: created.severity,
                };
                event(
                    &opened,
                    &created.id,
                    created.seq,
                    &created.at,
                    created.effective_at.as_deref(),
                )?
            }
            "update" => {
                let updated: Updated = decode_record(record)?;
                match updated.status {
                    Status::Acknowledged => {
                        let acknowledged = IncidentAcknowledged {
                            incident_id: updated.id.clone(),
                            by: by(updated.assignee),
                        };
                        event(
                            &acknowledged,
                            &updated.id,
                            updated.seq,
                            &updated.at,
                            updated.effective_at.as_deref(),
                        )?
                    }
                    Status::Resolved => {
                        let resolved = IncidentResolved {
                            incident_id: updated.id.clone(),
                            by: by(updated.assignee),
                            resolution: updated.resolution.ok_or_else(|| {
                                Drift::at("/resolution", "a resolved ticket needs a resolution")
                            })?,
                        };
                        event(
                            &resolved,
                            &updated.id,
                            updated.seq,
                            &updated.at,
                            updated.effective_at.as_deref(),
                        )?
                    }
                    // Reopening has no incident event yet: the record is read, and states
                    // nothing.
                    Status::Reopened => return Ok(Vec::new()),
                }
            }
            "delete" => {
                let deleted: Deleted = decode_record(record)?;
                Fact::Deleted {
                    native_id: deleted.id,
                    occurred_at: time(&deleted.at)?,
                }
            }
            other => {
                return Err(Drift::at(
                    "/op",
                    format!("unknown operation `{other}`; expected `create`, `update` or `delete`"),
                ));
            }
        };
        Ok(vec![fact])
    }
}

fn time(at: &str) -> Result<Timestamp, Drift> {
    time_at(at, "/at")
}

fn time_at(text: &str, pointer: &str) -> Result<Timestamp, Drift> {
    text.parse()
        .map_err(|error: ops_core::time::TimestampError| Drift::at(pointer, error.to_string()))
}

/// A change record's event: the record (`<ticket>#<seq>`) is its native id; when it took
/// effect, if the record says, goes with it.
fn event<E: ops_core::contract::Event>(
    event: &E,
    ticket: &str,
    seq: u64,
    at: &str,
    effective_at: Option<&str>,
) -> Result<Fact, Drift> {
    let fact = Fact::event(event, format!("{ticket}#{seq}"), time(at)?, Some(seq))
        .map_err(|reason| Drift::at("", reason))?;
    Ok(match effective_at {
        Some(text) => fact.effective_at(time_at(text, "/effective_at")?),
        None => fact,
    })
}

ops_core::install_connector!(TicketExport);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_create_record_becomes_an_opened_incident() {
        let facts = TicketExport
            .interpret(
                "tickets",
                &json!({"seq": 1, "op": "create", "id": "T-1", "at": "2026-11-20T09:00:00Z",
                        "service": "payments", "title": "down", "severity": "sev1"}),
            )
            .unwrap();
        match &facts[..] {
            [Fact::Event(fact)] => {
                assert_eq!(
                    fact.event().event_type(),
                    "pack.incidents.incident.IncidentOpened"
                );
                assert_eq!(fact.native_id(), "T-1#1");
                assert_eq!(fact.event().payload()["service"]["id"], "payments");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn drift_names_the_field() {
        let drift = TicketExport
            .interpret(
                "tickets",
                &json!({"seq": 1, "op": "create", "id": "T-1", "at": "2026-11-20T09:00:00Z",
                        "service": "payments", "title": "down", "severity": "urgent"}),
            )
            .unwrap_err();
        assert_eq!(drift.pointer, "/severity");
        let drift = TicketExport
            .interpret(
                "tickets",
                &json!({"seq": 1, "op": "delete", "id": "T-1", "at": "yesterday"}),
            )
            .unwrap_err();
        assert_eq!(drift.pointer, "/at");
    }
}
