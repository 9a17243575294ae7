//! The capabilities the core's own services act on. Every receipt names the capability
//! its writer acted on, and that capability must exist in the log like any other, so an
//! audit that walks receipts back to grants never meets a name nobody granted. The core
//! grants one to each of its services, and to each connector, before the service records
//! its first receipt in a store, and to any other service of the host that asks
//! (`EventStore::grant_service`: the worker's budgets, the demo). A service that only
//! reads ([`READER`]) records nothing and needs no grant.
//!
//! A service capability is a root grant issued by the core itself, held by the service's
//! own actor, valid from the epoch on, and reaching only what its service records: core
//! types (a connector: any type its mapping records), internal writes at most, no
//! destination and no personal data. It is written the same way every time, so granting
//! it again (a second host, the next start) is a duplicate the store skips.
//!
//! Only builds envelopes, so the store can grant the fixed ones as it sets itself up.

use ops_core::capability::{CapabilityGranted, Scope, Selector};
use ops_core::contract::SafetyClass;
use ops_core::envelope::{Actor, ActorId, Causation, EventEnvelope, EventOrigin};
use ops_core::id::{CapabilityId, CorrelationId, UserActionId};
use ops_core::time::Timestamp;

/// The worker: its job health receipts, the budgets and policies its reactions spend.
pub const WORKER: &str = "core.worker";
/// The jail: the faults and pauses of pack pieces.
pub const JAIL: &str = "core.jail";
/// Reconciliation: conflicts between sources.
pub const RECONCILIATION: &str = "core.reconciliation";
/// What reads the core's books (releases, lineage) for a report; it records nothing.
pub const READER: &str = "core.reader";

const CANONICAL: &str = "plain strings have a canonical form";

/// The capability `service` (its actor id) acts on.
pub fn of(service: &str) -> CapabilityId {
    CapabilityId::of(&("core service", service)).expect(CANONICAL)
}

/// The actor `service` records as.
pub fn actor(service: &str) -> Actor {
    Actor::Service(ActorId::new(service).expect("service names are actor ids"))
}

/// The stream a capability's events are kept in.
pub fn stream(capability_id: CapabilityId) -> String {
    format!("capability/{capability_id}")
}

/// The grant of `service`'s capability, the same envelope every time it is built.
pub fn grant(service: &str) -> EventEnvelope {
    let epoch = Timestamp::from_unix_micros(0).expect("the epoch is a time");
    let end_of_time =
        Timestamp::from_unix_micros(253_402_300_799_999_999).expect("9999-12-31 is a time");
    let capability_id = of(service);
    // A connector records what its mapping maps to; every other service, core types.
    let types = if service.starts_with("connector.") {
        Selector::All
    } else {
        Selector::only(["core.*"])
    };
    let granted = CapabilityGranted {
        capability_id,
        holder: actor(service),
        issuer: actor("core"),
        scope: Scope {
            types,
            max_safety: SafetyClass::WriteInternal,
            tenants: Selector::All,
            destinations: Selector::none(),
            sensitive: Selector::none(),
        },
        valid_from: epoch,
        valid_until: end_of_time,
        parent: None,
    };
    let native_id = format!("{capability_id}:granted");
    let origin = EventOrigin {
        source_ref: "core.capabilities".to_owned(),
        source_native_id: native_id.clone(),
        source_sequence: None,
        occurred_at: epoch,
        ingested_at: epoch,
        effective_at: None,
        correlation_id: CorrelationId::of(&capability_id.to_string()).expect(CANONICAL),
        causation: Causation::UserAction(UserActionId::of(&native_id).expect(CANONICAL)),
        actor: actor("core"),
        capability_id,
    };
    EventEnvelope::new(&granted, origin).expect("core events are plain JSON")
}
