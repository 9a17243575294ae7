//! Two sources that open the same incident must agree on what it is. This lives with
//! `IncidentOpened`, shared by every pack whose source opens incidents (the incidents
//! pack's commands, the filesync pack's ticket export), and the host runs it.

use crate::IncidentOpened;
use ops_core::connector::Reconciler;
use ops_core::prelude::*;

/// Openings of one incident id from different sources: service, title and severity must
/// match.
pub struct IncidentOpenings;

ops_core::install_reconciler!(IncidentOpenings);

impl Reconciler for IncidentOpenings {
    const NAME: &'static str = "incident-openings";
    const EVENTS: &'static [EventType] = &[EventType::of::<IncidentOpened>()];

    fn subject(&self, event_type: &str, payload: &Value) -> Option<String> {
        (event_type == IncidentOpened::TYPE)
            .then(|| {
                payload["incident_id"]
                    .as_str()
                    .map(|id| format!("incident {id}"))
            })
            .flatten()
    }

    fn conflict(&self, first: &Value, second: &Value) -> Option<String> {
        let differing: Vec<String> = ["service", "title", "severity"]
            .into_iter()
            .filter(|field| first[field] != second[field])
            .map(|field| {
                format!(
                    "`{field}` is {} in one source and {} in the other",
                    first[field], second[field]
                )
            })
            .collect();
        (!differing.is_empty()).then(|| differing.join("; "))
    }
}
