//! The incidents pack's decisions and its board, tested with the pack authors' harness:
//! no database, no runtime, no async.

use ops_contract_incidents::{
    AcknowledgeIncident, IncidentAcknowledged, IncidentOpened, OpenIncident, Severity,
};
use ops_core::contract::Contract;
use ops_core::testing::{fold, given};
use ops_shared_people::{PersonRef, ServiceRef};
use pack_incidents::{
    AcknowledgeIncidentHandler, Incident, IncidentBoard, IncidentRejection, OpenIncidentHandler,
};

fn opened(id: &str) -> IncidentOpened {
    IncidentOpened {
        incident_id: id.to_owned(),
        service: ServiceRef {
            system: "catalog".to_owned(),
            id: "payments".to_owned(),
        },
        title: "Payouts stall".to_owned(),
        severity: Severity::Sev1,
    }
}

fn ada() -> PersonRef {
    PersonRef {
        system: "pagerduty".to_owned(),
        id: "U042".to_owned(),
        display_name: "Ada Responder".to_owned(),
    }
}

#[test]
fn an_incident_opens_once() {
    let open = OpenIncident {
        incident_id: "INC-1".to_owned(),
        service: opened("INC-1").service,
        title: "Payouts stall".to_owned(),
        severity: Severity::Sev1,
    };
    assert_eq!(
        given()
            .when(&OpenIncidentHandler, &open)
            .then::<IncidentOpened>(),
        [opened("INC-1")]
    );
    let again = given()
        .event(&opened("INC-1"))
        .when(&OpenIncidentHandler, &open);
    assert_eq!(
        again.rejection(),
        Some(&IncidentRejection::AlreadyOpen("INC-1".to_owned()))
    );
    assert_eq!(
        again.rejected().as_deref(),
        Some("incident INC-1 is already open")
    );
}

#[test]
fn an_incident_is_acknowledged_once_it_is_open() {
    let acknowledge = AcknowledgeIncident {
        incident_id: "INC-1".to_owned(),
        by: ada(),
    };
    let never_opened = given().when(&AcknowledgeIncidentHandler, &acknowledge);
    assert_eq!(
        never_opened.rejection(),
        Some(&IncidentRejection::NeverOpened("INC-1".to_owned()))
    );
    let open = given().event(&opened("INC-1"));
    assert_eq!(
        open.state::<Incident>(),
        Incident {
            opened: true,
            ..Incident::default()
        }
    );
    let acknowledged = open.when(&AcknowledgeIncidentHandler, &acknowledge);
    assert_eq!(
        acknowledged.types(),
        [<IncidentAcknowledged as Contract>::TYPE]
    );
    let twice = open
        .clone()
        .event(&acknowledged.then::<IncidentAcknowledged>()[0])
        .when(&AcknowledgeIncidentHandler, &acknowledge);
    assert_eq!(
        twice.rejected().as_deref(),
        Some("incident INC-1 is already acknowledged")
    );
}

#[test]
fn the_board_shows_open_incidents_by_service_and_who_acknowledged() {
    let board = fold(&IncidentBoard)
        .event("incident/INC-1", &opened("INC-1"))
        .event("incident/INC-2", &opened("INC-2"))
        .event(
            "incident/INC-1",
            &IncidentAcknowledged {
                incident_id: "INC-1".to_owned(),
                by: ada(),
            },
        );
    let row = board.row("incidents", "INC-1").expect("a row for INC-1");
    assert_eq!(row["status"], "acknowledged");
    assert_eq!(row["acknowledged_by_name"], "Ada Responder");
    assert_eq!(
        board.row("open", r#"["catalog/payments","INC-1"]"#),
        Some(&ops_core::prelude::json!({"service": "catalog/payments", "incident_id": "INC-1"}))
    );
    assert!(
        board
            .row("open", r#"["catalog/payments","INC-2"]"#)
            .is_some()
    );
}
