//! Capabilities kept in the log (A4): checks as of a time, late revocations, delegation
//! with attenuation and cascade, denials with receipts, and a reference model for random
//! histories.

use std::collections::BTreeSet;
use std::sync::Arc;

use ops_core::capability::{
    Action, CapabilityBook, CapabilityDenied, CapabilityGranted, Scope, Selector,
};
use ops_core::contract::{Contract, SafetyClass};
use ops_core::envelope::{Actor, ActorId, CommandOutcome, EventEnvelope};
use ops_core::id::CapabilityId;
use ops_core::time::Timestamp;
use ops_core_runtime::capability::{Capabilities, CapabilityError};
use ops_core_runtime::command::{BusError, CommandBus};
use ops_tests::commands::{capability, grant, operator, page};
use ops_tests::storage::Backend;
use ops_tests::{on_both_backends, responder};
use proptest::prelude::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a valid timestamp")
}

fn human(id: &str) -> Actor {
    Actor::Human(ActorId::new(id).expect("a valid actor id"))
}

fn paging_by(actor: Actor, destination: &str) -> Action {
    Action {
        actor,
        command_type: "pack.incidents.paging.PageResponder".to_owned(),
        safety: SafetyClass::WriteExternalSideEffect,
        tenant: Some("acme".to_owned()),
        destination: Some(destination.to_owned()),
    }
}

fn reaching(destinations: &[&str]) -> Scope {
    Scope {
        destinations: Selector::only(destinations.iter().copied()),
        ..Scope::everything()
    }
}

fn window(
    capability_id: CapabilityId,
    holder: Actor,
    scope: Scope,
    from: &str,
    until: &str,
) -> CapabilityGranted {
    CapabilityGranted {
        valid_from: at(from),
        valid_until: at(until),
        ..grant(capability_id, holder, scope)
    }
}

/// Grants `holder` paging by pager and sms for most of 2026.
async fn grant_pager_and_sms(capabilities: &Capabilities, id: CapabilityId, holder: &Actor) {
    capabilities
        .grant(
            window(
                id,
                holder.clone(),
                reaching(&["pager", "sms"]),
                "2026-01-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            at("2026-01-01T00:00:00Z"),
        )
        .await
        .expect("granting");
}

/// Two scope changes at one microsecond: the one recorded last holds, for every
/// capability (ordering by event id would get about half of them wrong), and again after a
/// reload from the log.
async fn same_instant_changes_apply_in_the_order_they_were_recorded(backend: Backend) {
    let store = backend.store("same_instant_changes_apply_in_order").await;
    let capabilities = Capabilities::load(store.clone())
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let ada = responder();
    let ids: Vec<CapabilityId> = (0..8)
        .map(|n| CapabilityId::of(&format!("same-instant-{n}")).expect("canonical"))
        .collect();
    for id in &ids {
        grant_pager_and_sms(&capabilities, *id, &ada).await;
        for only in [&["pager"], &["sms"]] {
            capabilities
                .change_scope(*id, reaching(only), operator(), at("2026-03-01T00:00:00Z"))
                .await
                .expect("changing");
        }
    }
    let reloaded = Capabilities::load(store)
        .await
        .expect("reloading")
        .with_operators(vec![operator()]);
    for book in [&capabilities, &reloaded] {
        for id in &ids {
            let allows = |destination: &str| {
                book.check(
                    *id,
                    &paging_by(ada.clone(), destination),
                    at("2026-03-02T00:00:00Z"),
                )
                .allowed
            };
            assert!(
                allows("sms") && !allows("pager"),
                "{id}: the first change held"
            );
        }
    }
}

async fn answers_as_of_any_time_and_late_revocations_count_from_when_they_happened(
    backend: Backend,
) {
    let store = backend.store("capabilities_as_of").await;
    let capabilities = Capabilities::load(store.clone())
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let id = capability();
    let ada = responder();
    grant_pager_and_sms(&capabilities, id, &ada).await;
    let narrowed = capabilities
        .change_scope(
            id,
            reaching(&["pager"]),
            operator(),
            at("2026-03-01T00:00:00Z"),
        )
        .await
        .expect("narrowing");
    let check = |when: &str, destination: &str| {
        capabilities.check(id, &paging_by(ada.clone(), destination), at(when))
    };
    assert!(
        !check("2025-12-31T00:00:00Z", "pager").allowed,
        "before the grant"
    );
    assert!(
        check("2026-02-01T00:00:00Z", "sms").allowed,
        "during, before the change"
    );
    let after_change = check("2026-04-01T00:00:00Z", "sms");
    assert!(!after_change.allowed, "the change took sms away");
    assert_eq!(
        after_change.state_ref,
        narrowed.to_string(),
        "it names the change it relied on"
    );
    assert!(check("2026-06-01T00:00:00Z", "pager").allowed);

    // The revocation happened in May but is recorded only now.
    capabilities
        .revoke(id, operator(), "left the rota", at("2026-05-01T00:00:00Z"))
        .await
        .expect("revoking");
    assert!(
        check("2026-04-30T00:00:00Z", "pager").allowed,
        "before it happened"
    );
    let revoked = check("2026-06-01T00:00:00Z", "pager");
    assert!(!revoked.allowed, "after it happened");
    assert!(
        revoked
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("revoked: left the rota"),
        "{revoked:?}"
    );
    assert!(
        !check("2026-12-02T00:00:00Z", "pager").allowed,
        "after the window"
    );
    assert!(
        !capabilities
            .check(
                id,
                &paging_by(human("eve@example.com"), "pager"),
                at("2026-02-01T00:00:00Z")
            )
            .allowed,
        "another actor cannot use it"
    );

    // The end of the window is recorded once, when it is due.
    assert!(
        capabilities
            .expire_due(at("2026-11-30T00:00:00Z"))
            .await
            .expect("expiring")
            .is_empty()
    );
    assert_eq!(
        capabilities
            .expire_due(at("2026-12-02T00:00:00Z"))
            .await
            .expect("expiring"),
        [id]
    );
    assert!(
        capabilities
            .expire_due(at("2026-12-03T00:00:00Z"))
            .await
            .expect("expiring")
            .is_empty()
    );
    let expired = store
        .read_by_type(ops_core::capability::CapabilityExpired::TYPE)
        .await
        .expect("reading");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].envelope.occurred_at, at("2026-12-01T00:00:00Z"));

    // Another host reading the same log answers the same.
    let elsewhere = Capabilities::load(store)
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    for when in [
        "2026-02-01T00:00:00Z",
        "2026-04-30T00:00:00Z",
        "2026-06-01T00:00:00Z",
    ] {
        assert_eq!(
            elsewhere.check(id, &paging_by(ada.clone(), "pager"), at(when)),
            check(when, "pager")
        );
    }
}

async fn delegation_stays_within_its_parent_and_falls_with_it(backend: Backend) {
    let store = backend.store("capabilities_delegation").await;
    let capabilities = Capabilities::load(store)
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let (ada, grace) = (responder(), human("grace@example.com"));
    let root = capability();
    let now = at("2026-06-01T00:00:00Z");
    capabilities
        .grant(
            window(
                root,
                ada.clone(),
                reaching(&["pager", "sms"]),
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            at("2026-01-01T00:00:00Z"),
        )
        .await
        .expect("granting");
    let delegated =
        |id: &str, scope: Scope, from: &str, until: &str, issuer: Actor| CapabilityGranted {
            issuer,
            parent: Some(root),
            ..window(
                CapabilityId::of(id).expect("canonical"),
                grace.clone(),
                scope,
                from,
                until,
            )
        };
    for (wider, why) in [
        (
            delegated(
                "wide",
                Scope::everything(),
                "2026-06-01T00:00:00Z",
                "2026-07-01T00:00:00Z",
                ada.clone(),
            ),
            "wider",
        ),
        (
            delegated(
                "long",
                reaching(&["pager"]),
                "2026-06-01T00:00:00Z",
                "2028-01-01T00:00:00Z",
                ada.clone(),
            ),
            "outside",
        ),
        (
            delegated(
                "stolen",
                reaching(&["pager"]),
                "2026-06-01T00:00:00Z",
                "2026-07-01T00:00:00Z",
                grace.clone(),
            ),
            "only the holder",
        ),
    ] {
        let refused = capabilities.grant(wider, now).await;
        assert!(
            matches!(&refused, Err(CapabilityError::Refused { reason, .. }) if reason.contains(why)),
            "{refused:?}"
        );
    }
    let child = delegated(
        "grace-pages",
        reaching(&["pager"]),
        "2026-06-01T00:00:00Z",
        "2026-09-01T00:00:00Z",
        ada.clone(),
    );
    let child_id = child.capability_id;
    capabilities.grant(child, now).await.expect("delegating");
    let grandchild_id = CapabilityId::of("grace-pages-again").expect("canonical");
    capabilities
        .grant(
            CapabilityGranted {
                issuer: grace.clone(),
                holder: human("linus@example.com"),
                parent: Some(child_id),
                ..window(
                    grandchild_id,
                    grace.clone(),
                    reaching(&["pager"]),
                    "2026-06-01T00:00:00Z",
                    "2026-08-01T00:00:00Z",
                )
            },
            now,
        )
        .await
        .expect("delegating again");

    let by_grace = capabilities.check(
        child_id,
        &paging_by(grace.clone(), "pager"),
        at("2026-06-02T00:00:00Z"),
    );
    assert!(by_grace.allowed, "{by_grace:?}");
    assert_eq!(
        by_grace.chain,
        [child_id, root],
        "the chain is in the decision"
    );
    assert!(
        !capabilities
            .check(
                child_id,
                &paging_by(grace.clone(), "sms"),
                at("2026-06-02T00:00:00Z")
            )
            .allowed,
        "sms was not delegated"
    );
    let by_linus = capabilities.check(
        grandchild_id,
        &paging_by(human("linus@example.com"), "pager"),
        at("2026-06-02T00:00:00Z"),
    );
    assert_eq!(by_linus.chain, [grandchild_id, child_id, root]);
    assert!(by_linus.allowed);

    // Only an operator, a holder or an issuer up the chain changes a capability: linus,
    // who holds the grandchild, may not revoke its parent.
    let by_stranger = capabilities
        .revoke(
            child_id,
            human("linus@example.com"),
            "not mine",
            at("2026-06-03T00:00:00Z"),
        )
        .await;
    assert!(
        matches!(&by_stranger, Err(CapabilityError::Refused { reason, .. }) if reason.contains("neither an operator")),
        "{by_stranger:?}"
    );
    capabilities
        .revoke(root, operator(), "rota ended", at("2026-07-01T00:00:00Z"))
        .await
        .expect("revoking");
    for (id, actor) in [
        (child_id, grace.clone()),
        (grandchild_id, human("linus@example.com")),
    ] {
        let after = capabilities.check(
            id,
            &paging_by(actor.clone(), "pager"),
            at("2026-07-02T00:00:00Z"),
        );
        assert!(!after.allowed, "revoking the root ends its descendants");
        assert!(
            after
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains("which was revoked"),
            "{after:?}"
        );
        assert!(
            capabilities
                .check(id, &paging_by(actor, "pager"), at("2026-06-30T00:00:00Z"))
                .allowed,
            "but not before"
        );
    }
}

async fn a_denied_command_leaves_a_receipt_and_passes_once_allowed(backend: Backend) {
    let store = backend.store("capabilities_denied_command").await;
    let capabilities = Capabilities::load(store.clone())
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let bus = CommandBus::new(store.clone(), Arc::new(capabilities.clone())).expect("handlers");
    let open = ops_tests::commands::open("INC-1");
    let denied = bus.submit(&open, capability(), None).await;
    assert!(
        matches!(&denied, Err(BusError::Denied { reason, .. }) if reason.contains("was not granted")),
        "{denied:?}"
    );
    let receipts = store
        .read_by_type(CapabilityDenied::TYPE)
        .await
        .expect("reading");
    assert_eq!(receipts.len(), 1);
    let receipt: CapabilityDenied =
        serde_json::from_value(receipts[0].envelope.payload.clone()).expect("a receipt");
    assert_eq!(receipt.subject, open.command_id.to_string());

    capabilities
        .grant(
            grant(capability(), responder(), reaching(&["pager"])),
            at("2026-01-01T00:00:00Z"),
        )
        .await
        .expect("granting");
    let accepted = bus
        .submit(&open, capability(), None)
        .await
        .expect("allowed now");
    assert_eq!(accepted.outcome, CommandOutcome::Accepted);
    let to_sms = bus
        .submit(&page("INC-1", "U1", "sms"), capability(), None)
        .await;
    assert!(
        matches!(&to_sms, Err(BusError::Denied { reason, .. }) if reason.contains("does not reach `sms`")),
        "{to_sms:?}"
    );
}

on_both_backends!(
    same_instant_changes_apply_in_the_order_they_were_recorded,
    answers_as_of_any_time_and_late_revocations_count_from_when_they_happened,
    delegation_stays_within_its_parent_and_falls_with_it,
    a_denied_command_leaves_a_receipt_and_passes_once_allowed,
    a_root_capability_is_granted_only_by_an_operator,
    a_holder_may_narrow_its_scope_and_only_its_issuer_widen_it,
    the_cores_services_act_on_capabilities_the_core_granted,
    a_refresh_reads_what_another_host_recorded_since_the_last_one,
);

/// A refresh reads only what was recorded since the last one (`follow_types`), and that is
/// enough: another host's grant, then its revocation, then a revocation that happened
/// earlier than what this host already read, each change the answers as of their times.
async fn a_refresh_reads_what_another_host_recorded_since_the_last_one(backend: Backend) {
    let store = backend.store("refresh_since_last").await;
    let here = Capabilities::load(store.clone()).await.expect("loading");
    let there = Capabilities::load(backend.another_worker("refresh_since_last").await)
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let (id, ada) = (capability(), responder());
    grant_pager_and_sms(&there, id, &ada).await;
    let march = at("2026-03-01T00:00:00Z");
    assert!(
        !here
            .check(id, &paging_by(ada.clone(), "sms"), march)
            .allowed
    );
    here.refresh().await.expect("refreshing");
    assert!(
        here.check(id, &paging_by(ada.clone(), "sms"), march)
            .allowed
    );
    there
        .revoke(id, operator(), "left", at("2026-06-01T00:00:00Z"))
        .await
        .expect("revoked");
    here.refresh().await.expect("refreshing");
    assert!(
        !here
            .check(
                id,
                &paging_by(ada.clone(), "sms"),
                at("2026-07-01T00:00:00Z")
            )
            .allowed
    );
    assert!(
        here.check(id, &paging_by(ada.clone(), "sms"), march)
            .allowed
    );
    // Recorded later, happened earlier: it takes its place by when it happened.
    there
        .change_scope(
            id,
            reaching(&["pager"]),
            operator(),
            at("2026-02-01T00:00:00Z"),
        )
        .await
        .expect("narrowed");
    here.refresh().await.expect("refreshing");
    assert!(
        !here
            .check(id, &paging_by(ada.clone(), "sms"), march)
            .allowed
    );
    assert!(
        here.check(id, &paging_by(ada.clone(), "pager"), march)
            .allowed
    );
    assert_eq!(here.book().len(), there.book().len());
}

/// The core grants each of its services the capability it records on, once however often
/// and by whichever worker it is asked; it reaches only what its service records, and only
/// for the service's own actor. A receipt naming a capability nobody granted is told apart.
async fn the_cores_services_act_on_capabilities_the_core_granted(backend: Backend) {
    use ops_core_runtime::service_capability;
    let store = backend.store("core_service_grants").await;
    let again = backend.another_worker("core_service_grants").await;
    let services = [
        service_capability::WORKER,
        service_capability::JAIL,
        service_capability::RECONCILIATION,
    ];
    for service in services {
        let id = store.grant_service(service).await.unwrap();
        assert_eq!(id, service_capability::of(service));
        assert_eq!(again.grant_service(service).await.unwrap(), id);
    }
    let connector = again.grant_service("connector.tickets").await.unwrap();
    store.grant_service("connector.tickets").await.unwrap();
    assert_eq!(
        store.count_of_type(CapabilityGranted::TYPE).await.unwrap(),
        services.len() as i64 + 1,
        "granting again, from another worker too, records nothing new"
    );
    let capabilities = Capabilities::load(store.clone()).await.unwrap();
    let now = at("2026-12-06T00:00:00Z");
    for service in services {
        let id = service_capability::of(service);
        assert_eq!(capabilities.ended_at(id, now), Some(false), "{service}");
        let own = Action {
            actor: service_capability::actor(service),
            command_type: "core.JobFailing".to_owned(),
            safety: SafetyClass::WriteInternal,
            tenant: None,
            destination: None,
        };
        assert!(capabilities.check(id, &own, now).allowed, "{service}");
        // Not a way to act as anyone else, on pack commands or outside the host.
        let refused = [
            Action {
                actor: responder(),
                ..own.clone()
            },
            Action {
                command_type: "pack.incidents.paging.PageResponder".to_owned(),
                ..own.clone()
            },
            Action {
                safety: SafetyClass::WriteExternalSideEffect,
                destination: Some("pager".to_owned()),
                ..own.clone()
            },
        ];
        for action in refused {
            assert!(
                !capabilities.check(id, &action, now).allowed,
                "{service}: {action:?}"
            );
        }
    }
    assert!(capabilities.ended_at(connector, now) == Some(false));

    let receipt = |capability_id| {
        EventEnvelope::new(
            &CapabilityDenied {
                capability_id,
                actor: responder(),
                action: "core.reconcile.Run".to_owned(),
                subject: "everything".to_owned(),
                reason: "asked".to_owned(),
                capability_state_ref: String::new(),
                capability_chain: vec![],
            },
            ops_core::envelope::EventOrigin {
                capability_id,
                ..ops_tests::origin("denied")
            },
        )
        .unwrap()
    };
    let nobody = CapabilityId::of("never granted").unwrap();
    assert!(
        capabilities.names_granted(&receipt(nobody)),
        "a denial names what it refused"
    );
    let mut forged = receipt(nobody);
    forged.event_type = "core.JobFailing".to_owned();
    assert!(!capabilities.names_granted(&forged));
    forged.capability_id = service_capability::of(service_capability::WORKER);
    assert!(capabilities.names_granted(&forged));
}

/// The holder of a root capability may narrow its scope but not widen it again, not even
/// back to what it was; the operator who granted it may. A refused change writes nothing.
async fn a_holder_may_narrow_its_scope_and_only_its_issuer_widen_it(backend: Backend) {
    let store = backend.store("holder_narrows_issuer_widens").await;
    let capabilities = Capabilities::load(store.clone())
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let id = capability();
    let ada = responder();
    grant_pager_and_sms(&capabilities, id, &ada).await;
    let when = at("2026-03-01T00:00:00Z");
    capabilities
        .change_scope(id, reaching(&["pager"]), ada.clone(), when)
        .await
        .expect("its holder narrows it");
    let written = store.count().await.unwrap();
    for wider in [reaching(&["pager", "sms"]), Scope::everything()] {
        let refused = capabilities
            .change_scope(id, wider, ada.clone(), when)
            .await;
        assert!(
            matches!(&refused, Err(CapabilityError::Refused { reason, .. }) if reason.contains("may only narrow")),
            "{refused:?}"
        );
    }
    assert_eq!(store.count().await.unwrap(), written, "nothing written");
    assert!(
        !capabilities
            .check(id, &paging_by(ada.clone(), "sms"), when)
            .allowed
    );
    capabilities
        .change_scope(id, reaching(&["pager", "sms"]), operator(), when)
        .await
        .expect("the operator who granted it widens it");
    assert!(capabilities.check(id, &paging_by(ada, "sms"), when).allowed);
}

/// Root grants come only from the operators the host names: none without them, not from
/// anyone else with them; nothing is written for a refused grant.
async fn a_root_capability_is_granted_only_by_an_operator(backend: Backend) {
    let store = backend.store("root_grants_by_operators").await;
    let at = "2026-06-01T00:00:00Z".parse().expect("a timestamp");
    let unconfigured = Capabilities::load(store.clone()).await.expect("loading");
    let by_operator = grant(capability(), responder(), Scope::everything());
    let refused = unconfigured.grant(by_operator.clone(), at).await;
    assert!(
        matches!(&refused, Err(CapabilityError::Refused { reason, .. }) if reason.contains("granted only by an operator")),
        "{refused:?}"
    );
    let configured = unconfigured.with_operators(vec![operator()]);
    let self_granted = CapabilityGranted {
        issuer: responder(),
        ..by_operator.clone()
    };
    let refused = configured.grant(self_granted, at).await;
    assert!(
        matches!(&refused, Err(CapabilityError::Refused { reason, .. }) if reason.contains("human `ada@example.com` is not one")),
        "{refused:?}"
    );
    assert!(
        store
            .read_by_type(CapabilityGranted::TYPE)
            .await
            .expect("reading")
            .is_empty(),
        "a refused grant writes nothing"
    );
    configured
        .grant(by_operator, at)
        .await
        .expect("granted by an operator");
}

// Random scopes and histories, in memory: the same fold the runtime keeps.

const NAMES: [&str; 4] = ["pager", "sms", "mail", "fax"];

/// Command types a scope may cover, or not.
const TYPES: [&str; 3] = [
    "pack.incidents.paging.PageResponder",
    "pack.notify.oncall.NotifyOnCall",
    "pack.incidents.incident.OpenIncident",
];

fn selector_of(names: &'static [&'static str]) -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::All),
        proptest::sample::subsequence(names.to_vec(), 0..=names.len()).prop_map(Selector::only),
    ]
}

fn selector() -> impl Strategy<Value = Selector> {
    selector_of(&NAMES)
}

/// The model of a scope: what it covers, read plainly from its lists (no patterns are
/// generated), not through the code under test.
fn model_covers(scope: &Scope, action: &Action) -> bool {
    let listed = |selector: &Selector, name: Option<&str>| match (selector, name) {
        (_, None) | (Selector::All, _) => true,
        (Selector::Only(names), Some(name)) => names.iter().any(|listed| listed == name),
    };
    listed(&scope.types, Some(&action.command_type))
        && action.safety <= scope.max_safety
        && listed(&scope.tenants, action.tenant.as_deref())
        && listed(&scope.destinations, action.destination.as_deref())
}

fn safety() -> impl Strategy<Value = SafetyClass> {
    prop_oneof![
        Just(SafetyClass::Read),
        Just(SafetyClass::WriteInternal),
        Just(SafetyClass::WriteExternalSideEffect),
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    (
        selector_of(&TYPES),
        selector(),
        safety(),
        selector(),
        selector(),
    )
        .prop_map(
            |(types, tenants, max_safety, destinations, sensitive)| Scope {
                types,
                max_safety,
                tenants,
                destinations,
                sensitive,
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    (
        safety(),
        proptest::sample::select(NAMES.to_vec()),
        proptest::sample::select(NAMES.to_vec()),
        proptest::sample::select(TYPES.to_vec()),
    )
        .prop_map(|(safety, tenant, destination, command_type)| Action {
            actor: responder(),
            command_type: command_type.to_owned(),
            safety,
            tenant: Some(tenant.to_owned()),
            destination: Some(destination.to_owned()),
        })
}

fn record(
    book: &mut CapabilityBook,
    event: &impl ops_core::contract::Event,
    native_id: &str,
    occurred_at: Timestamp,
) {
    record_at(book, event, native_id, occurred_at, 7);
}

/// As [`record`], at place `sequence` of the capability's stream.
fn record_at(
    book: &mut CapabilityBook,
    event: &impl ops_core::contract::Event,
    native_id: &str,
    occurred_at: Timestamp,
    sequence: u64,
) {
    let mut origin = ops_tests::origin(native_id);
    origin.occurred_at = occurred_at;
    origin.source_sequence = Some(sequence);
    let envelope = EventEnvelope::new(event, origin).expect("a valid event");
    book.record_event(&envelope).expect("a capability event");
}

/// Minutes after the start of 2026.
fn minute(n: u32) -> Timestamp {
    Timestamp::from_unix_micros(1_767_225_600_000_000 + i64::from(n) * 60_000_000)
        .expect("in range")
}

#[derive(Clone, Debug)]
enum Step {
    ScopeChanged(Scope),
    Revoked,
    Expired,
}

/// Records `step` of capability `id` at minute `when`, at place `sequence` of its stream.
fn record_step(
    book: &mut CapabilityBook,
    id: CapabilityId,
    native: &str,
    sequence: u64,
    when: u32,
    step: &Step,
) {
    use ops_core::capability::{CapabilityExpired, CapabilityRevoked, CapabilityScopeChanged};
    let at = minute(when);
    match step {
        Step::ScopeChanged(scope) => {
            let changed = CapabilityScopeChanged {
                capability_id: id,
                scope: scope.clone(),
                changed_by: operator(),
            };
            record_at(book, &changed, native, at, sequence)
        }
        Step::Revoked => {
            let revoked = CapabilityRevoked {
                capability_id: id,
                revoked_by: operator(),
                reason: "r".to_owned(),
            };
            record_at(book, &revoked, native, at, sequence)
        }
        Step::Expired => record_at(
            book,
            &CapabilityExpired { capability_id: id },
            native,
            at,
            sequence,
        ),
    }
}

fn history() -> impl Strategy<Value = (Scope, u32, u32, Vec<(u32, Step)>)> {
    let step = prop_oneof![
        scope().prop_map(Step::ScopeChanged),
        Just(Step::Revoked),
        Just(Step::Expired),
    ];
    (
        scope(),
        0u32..50,
        50u32..100,
        proptest::collection::vec((0u32..120, step), 0..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// A delegation the book accepts never allows what its parent would not.
    #[test]
    fn a_delegation_never_exceeds_its_parent(parent_scope in scope(), child_scope in scope(), action in action()) {
        let mut book = CapabilityBook::default();
        let root = capability();
        let parent = window(root, human("operator@example.com"), parent_scope.clone(), "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
        record(&mut book, &parent, "parent", at("2026-01-01T00:00:00Z"));
        let child = CapabilityGranted {
            issuer: human("operator@example.com"),
            parent: Some(root),
            ..window(CapabilityId::of("child").expect("canonical"), responder(), child_scope.clone(), "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
        };
        let refused = book.refuses_grant(&child, at("2026-02-01T00:00:00Z"));
        prop_assert_eq!(refused.is_none(), child_scope.within(&parent_scope));
        if refused.is_none() {
            record(&mut book, &child, "child", at("2026-02-01T00:00:00Z"));
            let child_allows = book.check(child.capability_id, &action, at("2026-02-02T00:00:00Z")).allowed;
            // The model: inside both windows, held by the actor, so allowed exactly when
            // the child's scope and its parent's both cover the action.
            let modelled = model_covers(&child_scope, &action) && model_covers(&parent_scope, &action);
            prop_assert_eq!(child_allows, modelled);
            prop_assert!(!child_allows || model_covers(&parent_scope, &action));
        }
    }

    /// The fold agrees with a plain reading of the history at every time.
    #[test]
    fn checks_agree_with_a_reference_model(
        (granted_scope, from, until, steps) in history(),
        action in action(),
        asked in proptest::collection::vec(0u32..130, 1..8),
    ) {
        let mut book = CapabilityBook::default();
        let id = capability();
        let grant = CapabilityGranted {
            valid_from: minute(from),
            valid_until: minute(until),
            ..grant(id, responder(), granted_scope.clone())
        };
        record_at(&mut book, &grant, "grant", minute(0), 0);
        // Arriving in random order: the book must sort by when they happened, and at the
        // same instant by their place in the stream (`index + 1`).
        for (index, (when, step)) in steps.iter().enumerate().rev() {
            record_step(&mut book, id, &format!("step-{index}"), index as u64 + 1, *when, step);
        }
        // Asked at several times in any order of one book: each answer is the reference's,
        // whatever answers the book kept from before.
        for asked_at in asked {
        // The reference: what had happened by then, read plainly.
        let happened: Vec<&(u32, Step)> = steps.iter().filter(|(when, _)| *when <= asked_at).collect();
        let revoked = happened.iter().any(|(_, step)| matches!(step, Step::Revoked));
        let expired = happened.iter().any(|(_, step)| matches!(step, Step::Expired));
        let mut ordered: Vec<(u32, usize, &Scope)> = steps.iter().enumerate().filter_map(|(index, (when, step))| match step {
            Step::ScopeChanged(scope) if *when <= asked_at => Some((*when, index, scope)),
            _ => None,
        }).collect();
        ordered.sort_by_key(|(when, index, _)| (*when, *index));
        let scope = ordered.last().map_or(&granted_scope, |(_, _, scope)| *scope);
        let expected = !revoked && !expired && from <= asked_at && asked_at < until
            && model_covers(scope, &action);
        let decision = book.check(id, &action, minute(asked_at));
        prop_assert_eq!(decision.allowed, expected, "{:?}", decision);
        }
    }

    /// Along a delegation chain whose links change at random times, a book asked again and
    /// again answers exactly as a book that worked every answer out afresh.
    #[test]
    fn kept_answers_are_the_answers_worked_out_afresh(
        (root_scope, from, until, root_steps) in history(),
        (_, _, _, child_steps) in history(),
        actions in proptest::collection::vec(action(), 1..3),
        asked in proptest::collection::vec((0u32..130, 0usize..3), 1..12),
    ) {
        let mut book = CapabilityBook::default();
        let root = capability();
        let root_grant = CapabilityGranted {
            holder: operator(),
            valid_from: minute(from),
            valid_until: minute(until),
            ..grant(root, operator(), root_scope.clone())
        };
        record_at(&mut book, &root_grant, "root", minute(0), 0);
        let child_id = CapabilityId::of("child").expect("canonical");
        let child = CapabilityGranted {
            issuer: operator(),
            parent: Some(root),
            valid_from: minute(from),
            valid_until: minute(until),
            ..grant(child_id, responder(), root_scope.clone())
        };
        record_at(&mut book, &child, "child", minute(0), 0);
        for (id, steps) in [(root, &root_steps), (child_id, &child_steps)] {
            for (index, (when, step)) in steps.iter().enumerate() {
                record_step(&mut book, id, &format!("{id}-step-{index}"), index as u64 + 1, *when, step);
            }
        }
        for (asked_at, which) in asked {
            let action = &actions[which % actions.len()];
            for id in [child_id, root] {
                let kept = book.check(id, action, minute(asked_at));
                // A clone keeps no answers: it works each one out.
                let afresh = book.clone().check(id, action, minute(asked_at));
                prop_assert_eq!(kept, afresh);
            }
        }
    }
}

#[test]
fn selectors_with_prefixes_nest() {
    let incidents = Selector::only(["pack.incidents.*"]);
    assert!(incidents.covers("pack.incidents.paging.PageResponder"));
    assert!(!incidents.covers("pack.incidentsx.paging.PageResponder"));
    assert!(Selector::only(["pack.incidents.paging.*"]).within(&incidents));
    assert!(Selector::only(["pack.incidents.paging.PageResponder"]).within(&incidents));
    assert!(!incidents.within(&Selector::only(["pack.incidents.paging.*"])));
    assert!(!Selector::All.within(&incidents));
    let names: BTreeSet<&str> = ["a"].into();
    assert!(!Selector::only(names).within(&Selector::only(["b"])));
}
