//! The incident board: open incidents per service and time to acknowledge, folded from
//! the public incident events in canonical order.

use ops_contract_incidents::{IncidentAcknowledged, IncidentOpened, IncidentResolved};
use ops_core::connector::SourceRecordDeleted;
use ops_core::prelude::*;
use ops_core::projection::{ProjectedEvent, Projection, State};
use serde_json::{Value, json};

use crate::IncidentsPack;

/// Rows: `incidents/<id>` (service, title, severity, status, opened/acknowledged/resolved
/// times, who acknowledged it, by id and name, `time_to_acknowledge_ms`) and one
/// `open/["<system>/<id>","<incident id>"]` per open incident (its service and id), so an
/// event changes a row or two however many incidents a service has open.
pub struct IncidentBoard;

const INCIDENTS: &str = "incidents";
const OPEN: &str = "open";

impl Projection for IncidentBoard {
    type Pack = IncidentsPack;
    const NAME: &'static str = "incident_board";
    // v2: the acknowledger's name, which erasure of that person turns into `[shredded]`.
    // v3: a row per open incident instead of one list per service.
    const VERSION: u32 = 3;

    const EVENTS: &'static [EventType] = &[
        EventType::of::<IncidentOpened>(),
        EventType::of::<IncidentAcknowledged>(),
        EventType::of::<IncidentResolved>(),
        EventType::of::<SourceRecordDeleted>(),
    ];

    fn apply(&self, event: &ProjectedEvent<'_>, state: &mut State) -> Result<(), String> {
        let at = event.envelope.occurred_at;
        if let Some(opened) = event.decode::<IncidentOpened>() {
            let opened = opened.map_err(|e| e.to_string())?;
            if state.get(INCIDENTS, &opened.incident_id).is_some() {
                return Err(format!(
                    "incident {} was already opened",
                    opened.incident_id
                ));
            }
            let service = format!("{}/{}", opened.service.system, opened.service.id);
            state.put(
                INCIDENTS,
                &opened.incident_id,
                json!({
                    "service": service,
                    "title": opened.title,
                    "severity": opened.severity,
                    "status": "open",
                    "opened_at": at.to_string(),
                    "opened_at_us": at.unix_micros(),
                }),
            );
            set_open(state, &service, &opened.incident_id, true);
        } else if let Some(acknowledged) = event.decode::<IncidentAcknowledged>() {
            let acknowledged = acknowledged.map_err(|e| e.to_string())?;
            let mut incident = known(state, &acknowledged.incident_id, "acknowledged")?;
            if incident["status"] == "open" {
                let waited_ms =
                    (at.unix_micros() - incident["opened_at_us"].as_i64().unwrap_or(0)) / 1_000;
                incident["status"] = json!("acknowledged");
                incident["acknowledged_at"] = json!(at.to_string());
                incident["acknowledged_by"] = json!(acknowledged.by.id);
                incident["acknowledged_by_name"] = json!(acknowledged.by.display_name);
                incident["time_to_acknowledge_ms"] = json!(waited_ms);
                state.put(INCIDENTS, &acknowledged.incident_id, incident);
            }
        } else if let Some(resolved) = event.decode::<IncidentResolved>() {
            let resolved = resolved.map_err(|e| e.to_string())?;
            let mut incident = known(state, &resolved.incident_id, "resolved")?;
            incident["status"] = json!("resolved");
            incident["resolved_at"] = json!(at.to_string());
            let service = incident["service"].as_str().unwrap_or_default().to_owned();
            state.put(INCIDENTS, &resolved.incident_id, incident);
            set_open(state, &service, &resolved.incident_id, false);
        } else if let Some(deleted) = event.decode::<SourceRecordDeleted>() {
            // A ticket deleted at its source is no longer an open incident; other deleted
            // records are not about incidents.
            let deleted = deleted.map_err(|e| e.to_string())?;
            if let Some(mut incident) = state.get(INCIDENTS, &deleted.native_id).cloned() {
                incident["status"] = json!("deleted_at_source");
                let service = incident["service"].as_str().unwrap_or_default().to_owned();
                state.put(INCIDENTS, &deleted.native_id, incident);
                set_open(state, &service, &deleted.native_id, false);
            }
        }
        Ok(())
    }
}

/// An incident must be opened before anything else happens to it, in canonical order.
fn known(state: &State, incident_id: &str, what: &str) -> Result<Value, String> {
    state
        .get(INCIDENTS, incident_id)
        .cloned()
        .ok_or_else(|| format!("incident {incident_id} was {what} before it was opened"))
}

fn set_open(state: &mut State, service: &str, incident_id: &str, open: bool) {
    let key = serde_json::to_string(&(service, incident_id)).expect("strings are JSON");
    if open {
        let row = json!({"service": service, "incident_id": incident_id});
        state.put(OPEN, &key, row);
    } else {
        state.delete(OPEN, &key);
    }
}

/// Open incident ids per service (services and ids sorted), from a board's state.
pub fn open_by_service(state: &State) -> Vec<(String, Vec<String>)> {
    let mut by_service = BTreeMap::<String, Vec<String>>::new();
    for (_, row) in state.table(OPEN) {
        let text = |field: &str| row[field].as_str().unwrap_or_default().to_owned();
        by_service
            .entry(text("service"))
            .or_default()
            .push(text("incident_id"));
    }
    for ids in by_service.values_mut() {
        ids.sort();
    }
    by_service.into_iter().collect()
}

/// Time to acknowledge of every acknowledged incident, in milliseconds.
pub fn time_to_acknowledge(state: &State) -> Vec<(String, i64)> {
    state
        .table(INCIDENTS)
        .filter_map(|(id, incident)| {
            incident["time_to_acknowledge_ms"]
                .as_i64()
                .map(|ms| (id.to_owned(), ms))
        })
        .collect()
}

ops_core::install_projection!(IncidentBoard);
