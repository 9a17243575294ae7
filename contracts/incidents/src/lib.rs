//! The public surface of the incidents pack: what other packs may read and send.

#![no_std]
#![forbid(unsafe_code)]

mod reconcile;

pub use reconcile::IncidentOpenings;

use ops_core::contract::Upcast;
use ops_core::prelude::*;
use ops_core::{command, data, event};
use ops_shared_people::{PersonRef, ServiceRef};

#[data]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Sev1,
    Sev2,
    Sev3,
}

/// Earlier payload versions, kept so stored events stay readable.
pub mod v1 {
    use super::event;
    use ops_core::prelude::*;

    /// Version 1 named the service by free text and had no severity.
    #[event(public, domain = "incident", version = 1)]
    #[derive(Clone, Debug, PartialEq)]
    #[schemars(example = IncidentOpened {
        incident_id: "INC-1".to_owned(),
        service: "checkout".to_owned(),
        title: "Checkout returns 502".to_owned(),
    })]
    pub struct IncidentOpened {
        pub incident_id: String,
        pub service: String,
        pub title: String,
    }
}

#[event(public, domain = "incident", version = 2, upcast_from = v1::IncidentOpened)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = IncidentOpened {
    incident_id: "INC-2".to_owned(),
    service: ServiceRef { system: "catalogue".to_owned(), id: "payments".to_owned() },
    title: "Card authorisations time out".to_owned(),
    severity: Severity::Sev1,
})]
pub struct IncidentOpened {
    pub incident_id: String,
    pub service: ServiceRef,
    pub title: String,
    pub severity: Severity,
}

/// The v1 source was the legacy catalogue; unknown severities were triaged as SEV3.
impl Upcast<v1::IncidentOpened> for IncidentOpened {
    fn upcast(old: v1::IncidentOpened) -> Self {
        IncidentOpened {
            incident_id: old.incident_id,
            service: ServiceRef {
                system: "legacy-catalogue".to_owned(),
                id: old.service,
            },
            title: old.title,
            severity: Severity::Sev3,
        }
    }
}

#[event(public, domain = "incident")]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = IncidentAcknowledged { incident_id: "INC-2".to_owned(), by: example_responder() })]
pub struct IncidentAcknowledged {
    pub incident_id: String,
    pub by: PersonRef,
}

#[event(public, domain = "incident")]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = IncidentResolved {
    incident_id: "INC-2".to_owned(),
    by: example_responder(),
    resolution: "Rolled back the gateway config".to_owned(),
})]
pub struct IncidentResolved {
    pub incident_id: String,
    pub by: PersonRef,
    pub resolution: String,
}

#[command(public, domain = "incident", safety = WRITE_INTERNAL)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = OpenIncident {
    incident_id: "INC-2".to_owned(),
    service: ServiceRef { system: "catalogue".to_owned(), id: "payments".to_owned() },
    title: "Card authorisations time out".to_owned(),
    severity: Severity::Sev1,
})]
pub struct OpenIncident {
    pub incident_id: String,
    pub service: ServiceRef,
    pub title: String,
    pub severity: Severity,
}

#[command(public, domain = "incident", safety = WRITE_INTERNAL)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = AcknowledgeIncident { incident_id: "INC-2".to_owned(), by: example_responder() })]
pub struct AcknowledgeIncident {
    pub incident_id: String,
    pub by: PersonRef,
}

fn example_responder() -> PersonRef {
    PersonRef {
        system: "oncall".to_owned(),
        id: "U042".to_owned(),
        display_name: "Ada Responder".to_owned(),
    }
}
