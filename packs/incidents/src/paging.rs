//! Paging a responder: an external side effect. The pack decides that a page is due; the
//! core's egress gateway, not the pack, reaches the pager.

use ops_core::envelope::{CommandEnvelope, CommandRequest, EnvelopeError};
use ops_core::handler::{Decided, Handler};
use ops_core::prelude::*;
use ops_core::{command, event};
use ops_shared_people::PersonRef;

use crate::handlers::{Incident, IncidentRejection};
use crate::{IncidentsPack, incident_target};

#[command(domain = "paging", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress, compensation = CancelPage)]
pub(crate) struct PageResponder {
    incident_id: String,
    responder: PersonRef,
}

#[command(domain = "paging", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress, compensation = PageResponder)]
pub(crate) struct CancelPage {
    incident_id: String,
    responder: PersonRef,
}

#[event(domain = "paging")]
pub(crate) struct PageRequested {
    incident_id: String,
    responder: PersonRef,
}

#[event(domain = "paging")]
pub(crate) struct PageCancelled {
    incident_id: String,
    responder: PersonRef,
}

/// A page request leaves the pack only as an envelope.
pub fn page_responder(
    incident_id: &str,
    responder: PersonRef,
    request: CommandRequest,
) -> Result<CommandEnvelope, EnvelopeError> {
    let page = PageResponder {
        incident_id: incident_id.to_owned(),
        responder,
    };
    CommandEnvelope::new(&page, request)
}

pub(crate) struct PageResponderHandler;

impl Handler for PageResponderHandler {
    type Pack = IncidentsPack;
    type Command = PageResponder;
    type State = Incident;
    type Rejection = IncidentRejection;

    fn decide(
        &self,
        command: &PageResponder,
        incident: &Incident,
    ) -> Result<Vec<Decided>, IncidentRejection> {
        if !incident.opened {
            return Err(IncidentRejection::NeverOpened(command.incident_id.clone()));
        }
        Ok(vec![Decided::event(&PageRequested {
            incident_id: command.incident_id.clone(),
            responder: command.responder.clone(),
        })])
    }

    fn target(&self, command: &PageResponder) -> Option<String> {
        Some(incident_target(&command.incident_id))
    }
}

ops_core::install_handler!(PageResponderHandler);

/// Undoing a page: it must have been asked for.
pub(crate) struct CancelPageHandler;

impl Handler for CancelPageHandler {
    type Pack = IncidentsPack;
    type Command = CancelPage;
    type State = Incident;
    type Rejection = IncidentRejection;

    fn decide(
        &self,
        command: &CancelPage,
        incident: &Incident,
    ) -> Result<Vec<Decided>, IncidentRejection> {
        if !incident.paged {
            return Err(IncidentRejection::NobodyPaged(command.incident_id.clone()));
        }
        Ok(vec![Decided::event(&PageCancelled {
            incident_id: command.incident_id.clone(),
            responder: command.responder.clone(),
        })])
    }

    fn target(&self, command: &CancelPage) -> Option<String> {
        Some(incident_target(&command.incident_id))
    }
}

ops_core::install_handler!(CancelPageHandler);
