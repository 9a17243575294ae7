//! The notify pack: asks for the on-call to be told when a SEV1 incident opens. It never
//! reaches the on-call itself: its `NotifyOnCall` command is an external side effect, so
//! the command bus puts it in the outbox and the host's webhook executor delivers it once
//! the egress gateway lets it through. `RetractNotification` undoes it when a saga that
//! sent it fails. `PublishStatusUpdate` posts to the public status page, which cannot be
//! taken back: the gateway holds it before dispatch so a person can still cancel it.

#![no_std]
#![forbid(unsafe_code)]

use ops_contract_incidents::{IncidentOpened, Severity};
use ops_core::envelope::{CommandEnvelope, CommandRequest, DedupeScope, EnvelopeError};
use ops_core::handler::{Aggregate, Decided, Handler, PastEvent};
use ops_core::prelude::*;
use ops_core::reaction::{Proposal, Reaction};
use ops_core::{command, event, pack};

#[pack(id = "notify", contracts = ["ops-contract-incidents"])]
pub struct NotifyPack;

/// Where on-call notifications go; the host maps it to a webhook URL.
pub const ONCALL_DESTINATION: &str = "webhook.oncall";

/// Notifications are not per tenant yet: one on-call rota.
const TENANT: &str = "default";

#[command(domain = "oncall", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress, compensation = RetractNotification)]
pub(crate) struct NotifyOnCall {
    incident_id: String,
    title: String,
    service: String,
}

#[command(domain = "oncall", safety = WRITE_EXTERNAL_SIDE_EFFECT, dedupe = egress, compensation = NotifyOnCall)]
pub(crate) struct RetractNotification {
    incident_id: String,
    title: String,
    service: String,
}

#[event(domain = "oncall")]
pub(crate) struct OnCallNotified {
    incident_id: String,
}

#[event(domain = "oncall")]
pub(crate) struct NotificationRetracted {
    incident_id: String,
}

/// What the status page says cannot be unsaid: no compensation, so the effect is held.
#[command(domain = "status", safety = WRITE_EXTERNAL_SIDE_EFFECT, irreversible)]
pub(crate) struct PublishStatusUpdate {
    incident_id: String,
    message: String,
}

#[event(domain = "status")]
pub(crate) struct StatusUpdatePublished {
    incident_id: String,
    message: String,
}

/// Asks for the on-call to be told of an incident; `request` says where and for whom.
pub fn notify_oncall(
    incident_id: &str,
    title: &str,
    service: &str,
    request: CommandRequest,
) -> Result<CommandEnvelope, EnvelopeError> {
    let notify = NotifyOnCall {
        incident_id: incident_id.to_owned(),
        title: title.to_owned(),
        service: service.to_owned(),
    };
    CommandEnvelope::new(&notify, request)
}

/// Asks for a status page update about an incident.
pub fn publish_status_update(
    incident_id: &str,
    message: &str,
    request: CommandRequest,
) -> Result<CommandEnvelope, EnvelopeError> {
    let update = PublishStatusUpdate {
        incident_id: incident_id.to_owned(),
        message: message.to_owned(),
    };
    CommandEnvelope::new(&update, request)
}

/// The on-call hears of every SEV1 incident, once.
pub(crate) struct NotifyOnCallOfSev1;

impl Reaction for NotifyOnCallOfSev1 {
    type Pack = NotifyPack;
    type Event = IncidentOpened;
    type Command = NotifyOnCall;

    fn react(&self, opened: &IncidentOpened) -> Vec<Proposal<NotifyOnCall>> {
        if opened.severity != Severity::Sev1 {
            return Vec::new();
        }
        vec![Proposal {
            command: NotifyOnCall {
                incident_id: opened.incident_id.clone(),
                title: opened.title.clone(),
                service: opened.service.id.clone(),
            },
            target_ref: notification_stream(&opened.incident_id),
            dedupe_scope: DedupeScope::Egress {
                destination: ONCALL_DESTINATION.to_owned(),
                tenant_id: TENANT.to_owned(),
            },
        }]
    }
}

ops_core::install_reaction!(NotifyOnCallOfSev1);

/// The stream of an incident's notifications.
pub fn notification_stream(incident_id: &str) -> String {
    format!("notify/incident/{incident_id}")
}

pub(crate) struct NotifyOnCallHandler;

impl Handler for NotifyOnCallHandler {
    type Pack = NotifyPack;
    type Command = NotifyOnCall;
    type State = ();
    type Rejection = String;

    fn decide(&self, command: &NotifyOnCall, _: &()) -> Result<Vec<Decided>, String> {
        Ok(vec![Decided::event(&OnCallNotified {
            incident_id: command.incident_id.clone(),
        })])
    }
}

ops_core::install_handler!(NotifyOnCallHandler);

/// Whether the on-call was told of the incident of a notification stream.
#[derive(Default)]
pub(crate) struct Notified(bool);

impl Aggregate for Notified {
    fn apply(&mut self, event: &PastEvent) {
        self.0 |= event.is::<OnCallNotified>();
    }
}

pub(crate) struct RetractNotificationHandler;

impl Handler for RetractNotificationHandler {
    type Pack = NotifyPack;
    type Command = RetractNotification;
    type State = Notified;
    type Rejection = String;

    fn decide(
        &self,
        command: &RetractNotification,
        notified: &Notified,
    ) -> Result<Vec<Decided>, String> {
        if !notified.0 {
            return Err(format!(
                "the on-call was never notified of incident {}",
                command.incident_id
            ));
        }
        Ok(vec![Decided::event(&NotificationRetracted {
            incident_id: command.incident_id.clone(),
        })])
    }
}

ops_core::install_handler!(RetractNotificationHandler);

pub(crate) struct PublishStatusUpdateHandler;

impl Handler for PublishStatusUpdateHandler {
    type Pack = NotifyPack;
    type Command = PublishStatusUpdate;
    type State = ();
    type Rejection = String;

    fn decide(&self, command: &PublishStatusUpdate, _: &()) -> Result<Vec<Decided>, String> {
        if command.message.trim().is_empty() {
            return Err("a status update needs a message".to_owned());
        }
        Ok(vec![Decided::event(&StatusUpdatePublished {
            incident_id: command.incident_id.clone(),
            message: command.message.clone(),
        })])
    }
}

ops_core::install_handler!(PublishStatusUpdateHandler);
