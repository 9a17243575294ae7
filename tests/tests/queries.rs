//! The query gateway on both backends: a read of the log needs a capability that covers
//! the type, and sensitive fields leave redacted unless the capability reveals them. The
//! log itself keeps them.

use std::sync::Arc;

use ops_contract_incidents::IncidentAcknowledged;
use ops_core::capability::{CapabilityDenied, CapabilityGranted, Scope, Selector};
use ops_core::contract::Contract;
use ops_core::envelope::{Actor, ActorId};
use ops_core::id::CapabilityId;
use ops_core::redaction::REDACTED;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::query::{QueryError, QueryGateway};
use ops_tests::commands::{acknowledge, capability, grant, opened};
use ops_tests::on_both_backends;
use ops_tests::storage::Backend;

fn auditor() -> Actor {
    Actor::Human(ActorId::new("audit@example.com").expect("a valid actor id"))
}

fn reading(types: &[&str], sensitive: Selector) -> Scope {
    Scope {
        types: Selector::only(types.iter().copied()),
        sensitive,
        ..Scope::everything()
    }
}

async fn queries_redact_what_the_capability_does_not_reveal(backend: Backend) {
    let (store, bus) = opened(backend, "queries_redact", 1).await;
    bus.submit(&acknowledge("INC-0", "U042"), capability(), None)
        .await
        .expect("acknowledging");
    let capabilities = Capabilities::load(store.clone()).await.expect("loading");
    let plain = CapabilityId::of("audit-plain").expect("canonical");
    let revealing = CapabilityId::of("audit-revealing").expect("canonical");
    let at = "2026-01-01T00:00:00Z".parse().expect("a timestamp");
    for (id, sensitive) in [
        (plain, Selector::none()),
        (revealing, Selector::only(["pack.incidents.*"])),
    ] {
        let scope = reading(&["pack.incidents.incident.*"], sensitive);
        let grant: CapabilityGranted = grant(id, auditor(), scope);
        capabilities.grant(grant, at).await.expect("granting");
    }
    let queries = QueryGateway::new(store.clone(), Arc::new(capabilities));

    let redacted = queries
        .events(IncidentAcknowledged::TYPE, &auditor(), plain)
        .await
        .expect("a permitted query");
    assert_eq!(redacted.len(), 1);
    assert_eq!(redacted[0].redacted, ["/by/display_name"]);
    assert_eq!(redacted[0].envelope.payload["by"]["display_name"], REDACTED);
    assert_eq!(
        redacted[0].envelope.payload["by"]["id"], "U042",
        "the rest is intact"
    );

    let revealed = queries
        .events(IncidentAcknowledged::TYPE, &auditor(), revealing)
        .await
        .expect("a permitted query");
    assert!(revealed[0].redacted.is_empty());
    assert_eq!(revealed[0].envelope.payload["by"]["display_name"], "U042");

    // The log keeps the full payload; only the query redacts.
    let stored = store
        .read_by_type(IncidentAcknowledged::TYPE)
        .await
        .expect("reading");
    assert_eq!(stored[0].envelope.payload["by"]["display_name"], "U042");

    let denied = queries
        .events("pack.incidents.paging.PageRequested", &auditor(), plain)
        .await;
    assert!(
        matches!(&denied, Err(QueryError::Denied { reason, .. }) if reason.contains("does not cover")),
        "{denied:?}"
    );
    let receipts = store
        .read_by_type(CapabilityDenied::TYPE)
        .await
        .expect("reading");
    assert_eq!(receipts.len(), 1, "a denied query leaves a receipt");
}

on_both_backends!(queries_redact_what_the_capability_does_not_reveal);
