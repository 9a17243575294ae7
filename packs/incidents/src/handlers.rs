//! What incident commands mean, given what the incident's history folds into.

use core::fmt;

use ops_contract_incidents::{
    AcknowledgeIncident, IncidentAcknowledged, IncidentOpened, IncidentResolved, OpenIncident,
};
use ops_core::handler::{Aggregate, Decided, Handler, PastEvent};
use ops_core::prelude::*;

use crate::paging::PageRequested;
use crate::{IncidentsPack, incident_target};

/// An incident as its handlers see it, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Incident {
    pub opened: bool,
    pub acknowledged: bool,
    pub resolved: bool,
    /// Whether a responder was paged for it (and not yet told it is off).
    pub paged: bool,
}

impl Aggregate for Incident {
    fn apply(&mut self, event: &PastEvent) {
        self.opened |= event.is::<IncidentOpened>();
        self.acknowledged |= event.is::<IncidentAcknowledged>();
        self.resolved |= event.is::<IncidentResolved>();
        self.paged |= event.is::<PageRequested>();
    }
}

/// Why an incident command is refused; the text is what the command's record keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncidentRejection {
    AlreadyOpen(String),
    NeverOpened(String),
    Resolved(String),
    AlreadyAcknowledged(String),
    NobodyPaged(String),
}

impl fmt::Display for IncidentRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncidentRejection::AlreadyOpen(id) => write!(f, "incident {id} is already open"),
            IncidentRejection::NeverOpened(id) => write!(f, "incident {id} was never opened"),
            IncidentRejection::Resolved(id) => write!(f, "incident {id} is resolved"),
            IncidentRejection::AlreadyAcknowledged(id) => {
                write!(f, "incident {id} is already acknowledged")
            }
            IncidentRejection::NobodyPaged(id) => write!(f, "nobody was paged for incident {id}"),
        }
    }
}

/// Opens an incident once; a second `OpenIncident` is refused.
///
/// ```
/// use ops_contract_incidents::{IncidentOpened, OpenIncident, Severity};
/// use ops_core::testing::given;
/// use ops_shared_people::ServiceRef;
/// use pack_incidents::{IncidentRejection, OpenIncidentHandler};
///
/// let open = OpenIncident {
///     incident_id: "INC-1".to_owned(),
///     service: ServiceRef { system: "catalog".to_owned(), id: "payments".to_owned() },
///     title: "Payouts stall".to_owned(),
///     severity: Severity::Sev2,
/// };
/// let opened = given().when(&OpenIncidentHandler, &open).then::<IncidentOpened>();
/// assert_eq!(opened[0].incident_id, "INC-1");
/// let again = given().event(&opened[0]).when(&OpenIncidentHandler, &open);
/// assert_eq!(again.rejection(), Some(&IncidentRejection::AlreadyOpen("INC-1".to_owned())));
/// ```
pub struct OpenIncidentHandler;

impl Handler for OpenIncidentHandler {
    type Pack = IncidentsPack;
    type Command = OpenIncident;
    type State = Incident;
    type Rejection = IncidentRejection;

    fn decide(
        &self,
        command: &OpenIncident,
        incident: &Incident,
    ) -> Result<Vec<Decided>, IncidentRejection> {
        if incident.opened {
            return Err(IncidentRejection::AlreadyOpen(command.incident_id.clone()));
        }
        Ok(vec![Decided::event(&IncidentOpened {
            incident_id: command.incident_id.clone(),
            service: command.service.clone(),
            title: command.title.clone(),
            severity: command.severity,
        })])
    }

    fn target(&self, command: &OpenIncident) -> Option<String> {
        Some(incident_target(&command.incident_id))
    }
}

pub struct AcknowledgeIncidentHandler;

impl Handler for AcknowledgeIncidentHandler {
    type Pack = IncidentsPack;
    type Command = AcknowledgeIncident;
    type State = Incident;
    type Rejection = IncidentRejection;

    fn decide(
        &self,
        command: &AcknowledgeIncident,
        incident: &Incident,
    ) -> Result<Vec<Decided>, IncidentRejection> {
        let id = || command.incident_id.clone();
        if !incident.opened {
            return Err(IncidentRejection::NeverOpened(id()));
        }
        if incident.resolved {
            return Err(IncidentRejection::Resolved(id()));
        }
        if incident.acknowledged {
            return Err(IncidentRejection::AlreadyAcknowledged(id()));
        }
        Ok(vec![Decided::event(&IncidentAcknowledged {
            incident_id: id(),
            by: command.by.clone(),
        })])
    }

    fn target(&self, command: &AcknowledgeIncident) -> Option<String> {
        Some(incident_target(&command.incident_id))
    }
}

ops_core::install_handler!(OpenIncidentHandler);
ops_core::install_handler!(AcknowledgeIncidentHandler);
