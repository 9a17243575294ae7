//! Commands as the tests send them: one request shape, the incident commands, pages,
//! stores with incidents already opened (and paged) through the command bus, and the pager
//! their effects reach.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ops_core::capability::{CapabilityBook, CapabilityGranted, Scope};
use ops_core::envelope::{Actor, ActorId, EventEnvelope};
use ops_core::projection::DynProjection;

use ops_contract_incidents::{AcknowledgeIncident, OpenIncident, Severity};
use ops_core::egress::Approval;
use ops_core::envelope::{Causation, CommandEnvelope, CommandRequest, DedupeScope};
use ops_core::id::{CapabilityId, ContentHash, CorrelationId, UserActionId};
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::egress::{ApprovalPolicy, BoxFuture, Dispatcher, Effect, Executor, Gateway};
use ops_core_runtime::projection::ProjectionRunner;
use ops_core_runtime::store::EventStore;
use ops_shared_people::{PersonRef, ServiceRef};

use crate::responder;
use crate::storage::Backend;

/// The capability the tests act on.
pub fn capability() -> CapabilityId {
    CapabilityId::of(&("responders", "ada@example.com")).expect("canonical")
}

/// The capability the notify pack's reactions act on.
pub fn reactor_capability() -> CapabilityId {
    CapabilityId::of(&("reactions", "notify")).expect("canonical")
}

/// The capability operators approve effects on.
pub fn approver_capability() -> CapabilityId {
    CapabilityId::of(&("approvers", "operator@example.com")).expect("canonical")
}

/// Who grants the tests' capabilities.
pub fn operator() -> Actor {
    Actor::Human(ActorId::new("operator@example.com").expect("a valid actor id"))
}

/// A root grant of `scope` to `holder`, valid from 2026 to 2100.
pub fn grant(capability_id: CapabilityId, holder: Actor, scope: Scope) -> CapabilityGranted {
    CapabilityGranted {
        capability_id,
        holder,
        issuer: operator(),
        scope,
        valid_from: "2026-01-01T00:00:00Z".parse().expect("a valid timestamp"),
        valid_until: "2100-01-01T00:00:00Z".parse().expect("a valid timestamp"),
        parent: None,
    }
}

/// The responder's and the notify pack's capabilities with `scope`, folded in memory by
/// the same book the runtime keeps (the stored kind is tested in `capabilities.rs`).
/// Capabilities in which only the responder's is granted: the notify pack's reactions are
/// denied until it is.
pub fn authority_without_reactions() -> Arc<CapabilityBook> {
    book_of([grant(capability(), responder(), Scope::everything())])
}

pub fn authority(scope: Scope) -> Arc<CapabilityBook> {
    book_of([
        grant(capability(), responder(), scope.clone()),
        grant(
            reactor_capability(),
            ops_core::reaction::reactor("notify"),
            scope.clone(),
        ),
        grant(approver_capability(), operator(), scope),
    ])
}

/// `actor`'s approval of `command_id`'s effect on [`approver_capability`] (held by the
/// operator, reaching `reach`) until `expires_at`, if given.
pub async fn approve_as(
    store: &EventStore,
    command_id: &ops_core::id::CommandId,
    actor: Actor,
    reach: Scope,
    expires_at: Option<ops_core::time::Timestamp>,
) -> ops_core_runtime::egress::Approved {
    let authority = authority(reach);
    let approver = ops_core_runtime::egress::Approver {
        by: crate::acting(actor),
        capability_id: approver_capability(),
        authority: &*authority,
    };
    ops_core_runtime::egress::approve(store, command_id, approver, expires_at)
        .await
        .expect("recording the approval")
}

/// As [`authority`], before anyone granted the notify pack's reactions their capability.
pub fn responder_only(scope: Scope) -> Arc<CapabilityBook> {
    book_of([grant(capability(), responder(), scope)])
}

pub fn book_of<const N: usize>(grants: [CapabilityGranted; N]) -> Arc<CapabilityBook> {
    let mut book = CapabilityBook::default();
    for grant in grants {
        let native_id = grant.capability_id.to_string();
        let event = EventEnvelope::new(&grant, crate::origin(&native_id)).expect("a valid grant");
        book.record_event(&event).expect("a capability event");
    }
    Arc::new(book)
}

/// A request by the responder at a fixed time, on `target`, deduplicated by `scope`.
pub fn request(target: &str, scope: DedupeScope) -> CommandRequest {
    CommandRequest {
        target_ref: target.to_owned(),
        dedupe_scope: scope,
        correlation_id: CorrelationId::of(target).expect("canonical"),
        causation: Causation::UserAction(UserActionId::of(target).expect("canonical")),
        actor: responder(),
        requested_at: "2026-11-26T06:00:00Z".parse().expect("a valid timestamp"),
    }
}

fn on_incident(id: &str) -> CommandRequest {
    let target = format!("incident/{id}");
    let scope = DedupeScope::Command {
        aggregate_ref: target.clone(),
    };
    request(&target, scope)
}

fn person(id: &str) -> PersonRef {
    PersonRef {
        system: "oncall".to_owned(),
        id: id.to_owned(),
        display_name: id.to_owned(),
    }
}

pub fn open(id: &str) -> CommandEnvelope {
    open_with(id, Severity::Sev1)
}

pub fn open_with(id: &str, severity: Severity) -> CommandEnvelope {
    open_titled(id, "Card authorisations time out", severity)
}

/// Opening incident `id` submitted for `target`, whatever the incident.
pub fn open_at(id: &str, target: &str) -> CommandEnvelope {
    let scope = DedupeScope::Command {
        aggregate_ref: target.to_owned(),
    };
    let command = opening(id, "Card authorisations time out", Severity::Sev1);
    CommandEnvelope::new(&command, request(target, scope)).expect("a valid command")
}

fn opening(id: &str, title: &str, severity: Severity) -> OpenIncident {
    OpenIncident {
        incident_id: id.to_owned(),
        service: ServiceRef {
            system: "catalogue".to_owned(),
            id: "payments".to_owned(),
        },
        title: title.to_owned(),
        severity,
    }
}

pub fn open_titled(id: &str, title: &str, severity: Severity) -> CommandEnvelope {
    let command = opening(id, title, severity);
    CommandEnvelope::new(&command, on_incident(id)).expect("a valid command")
}

/// An acknowledgement five minutes after the opening, so canonical order folds it after.
pub fn acknowledge(id: &str, by: &str) -> CommandEnvelope {
    let command = AcknowledgeIncident {
        incident_id: id.to_owned(),
        by: person(by),
    };
    let request = CommandRequest {
        requested_at: "2026-11-26T06:05:00Z".parse().expect("a valid timestamp"),
        ..on_incident(id)
    };
    CommandEnvelope::new(&command, request).expect("a valid command")
}

/// Pages `who` for incident `incident` through `destination`, for tenant `acme`.
pub fn page(incident: &str, who: &str, destination: &str) -> CommandEnvelope {
    let scope = DedupeScope::Egress {
        destination: destination.to_owned(),
        tenant_id: "acme".to_owned(),
    };
    pack_incidents::page_responder(
        incident,
        person(who),
        request(&format!("incident/{incident}"), scope),
    )
    .expect("a valid command")
}

/// A store with incidents `INC-0` .. `INC-<incidents - 1>` opened through the bus.
pub async fn opened(backend: Backend, test: &str, incidents: usize) -> (EventStore, CommandBus) {
    let store = backend.store(test).await;
    let bus = CommandBus::new(store.clone(), authority(Scope::everything()))
        .expect("the installed handlers are consistent");
    for n in 0..incidents {
        bus.submit(&open(&format!("INC-{n}")), capability(), None)
            .await
            .expect("opening an incident");
    }
    (store, bus)
}

/// The incident board projection, caught up with `store`'s log.
pub async fn caught_up_board(store: &EventStore) -> (ProjectionRunner, &'static dyn DynProjection) {
    let board = ops_core::projection::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|projection| projection.name() == "incident_board")
        .expect("installed");
    let mut runner = ProjectionRunner::start(store.clone(), board)
        .await
        .expect("starting");
    runner.catch_up().await.expect("catching up");
    (runner, board)
}

/// As [`opened`], with a page to `pager` for each incident waiting in the outbox.
pub async fn paged(backend: Backend, test: &str, pages: usize) -> (EventStore, CommandBus) {
    let (store, bus) = opened(backend, test, pages).await;
    for n in 0..pages {
        bus.submit(
            &page(&format!("INC-{n}"), "U042", "pager"),
            capability(),
            None,
        )
        .await
        .expect("paging");
    }
    (store, bus)
}

/// Approves every effect, as policy `tests-approve-all` 1.0.0.
pub struct ApproveAll;

impl ApprovalPolicy for ApproveAll {
    fn approve(&self, _: &Effect) -> Option<Approval> {
        Some(Approval::Policy {
            policy_id: "tests-approve-all".to_owned(),
            policy_version: "1.0.0".to_owned(),
        })
    }
}

/// A dispatcher named `d1` that approves everything, on capabilities that allow everything.
pub fn approving_dispatcher(store: &EventStore) -> Dispatcher {
    Dispatcher::new(
        store.clone(),
        "d1",
        Gateway {
            policies: vec![Box::new(ApproveAll)],
            ..Gateway::default()
        },
        authority(Scope::everything()),
    )
}

/// An in-process pager: does each effect once per idempotency key, as a destination must,
/// and counts every request.
#[derive(Clone, Default)]
pub struct Pager {
    deliveries: Arc<Mutex<BTreeMap<ContentHash, usize>>>,
}

impl Pager {
    /// Effects done: one per key.
    pub fn effects(&self) -> usize {
        self.deliveries.lock().expect("not poisoned").len()
    }

    /// Requests received, repeats included.
    pub fn asked(&self) -> usize {
        self.deliveries.lock().expect("not poisoned").values().sum()
    }
}

impl Executor for Pager {
    fn execute<'a>(
        &'a self,
        key: &'a ContentHash,
        _: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            *self
                .deliveries
                .lock()
                .expect("not poisoned")
                .entry(*key)
                .or_default() += 1;
            Ok(())
        })
    }
}
