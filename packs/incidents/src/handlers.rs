//! What incident commands mean, given the incident's history.

use ops_contract_incidents::{
    AcknowledgeIncident, IncidentAcknowledged, IncidentOpened, IncidentResolved, OpenIncident,
};
use ops_core::handler::{Decided, Handler, PastEvent, happened};
use ops_core::prelude::*;

use crate::IncidentsPack;

pub struct OpenIncidentHandler;

impl Handler for OpenIncidentHandler {
    type Pack = IncidentsPack;
    type Command = OpenIncident;

    fn decide(
        &self,
        command: &OpenIncident,
        history: &[PastEvent],
    ) -> Result<Vec<Decided>, String> {
        if happened::<IncidentOpened>(history) {
            return Err(format!("incident {} is already open", command.incident_id));
        }
        Ok(vec![Decided::event(&IncidentOpened {
            incident_id: command.incident_id.clone(),
            service: command.service.clone(),
            title: command.title.clone(),
            severity: command.severity,
        })?])
    }
}

pub struct AcknowledgeIncidentHandler;

impl Handler for AcknowledgeIncidentHandler {
    type Pack = IncidentsPack;
    type Command = AcknowledgeIncident;

    fn decide(
        &self,
        command: &AcknowledgeIncident,
        history: &[PastEvent],
    ) -> Result<Vec<Decided>, String> {
        let id = &command.incident_id;
        if !happened::<IncidentOpened>(history) {
            return Err(format!("incident {id} was never opened"));
        }
        if happened::<IncidentResolved>(history) {
            return Err(format!("incident {id} is resolved"));
        }
        if happened::<IncidentAcknowledged>(history) {
            return Err(format!("incident {id} is already acknowledged"));
        }
        Ok(vec![Decided::event(&IncidentAcknowledged {
            incident_id: id.clone(),
            by: command.by.clone(),
        })?])
    }
}

ops_core::install_handler!(OpenIncidentHandler);
ops_core::install_handler!(AcknowledgeIncidentHandler);
