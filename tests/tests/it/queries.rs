//! The query gateway on both backends: a read of the log or of a projection needs a
//! capability that covers the types, and sensitive fields leave redacted unless the
//! capability reveals them. The log itself keeps them.

use std::sync::Arc;

use ops_contract_incidents::IncidentAcknowledged;
use ops_core::capability::{CapabilityDenied, CapabilityGranted, Scope, Selector};
use ops_core::connector::SourceRecordDeleted;
use ops_core::contract::Contract;
use ops_core::envelope::{Actor, ActorId};
use ops_core::id::CapabilityId;
use ops_core::redaction::REDACTED;
use ops_core_runtime::capability::Capabilities;
use ops_core_runtime::query::{QueryError, QueryGateway};
use ops_tests::commands::{acknowledge, capability, caught_up_board, grant, opened, operator};
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
    let capabilities = Capabilities::load(store.clone())
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
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

/// A projection's rows are read on a capability that covers every type it folds; in a
/// store that seals nothing, only a capability that reveals personal data may read them,
/// since nothing in a row says what to redact.
async fn projection_rows_need_every_folded_type_and_sealing_to_redact(backend: Backend) {
    let (store, bus) = opened(backend, "queries_rows", 1).await;
    bus.submit(&acknowledge("INC-0", "U042"), capability(), None)
        .await
        .expect("acknowledging");
    let (_runner, board) = caught_up_board(&store).await;
    let capabilities = Capabilities::load(store.clone())
        .await
        .expect("loading")
        .with_operators(vec![operator()]);
    let incidents_only = CapabilityId::of("board-incidents-only").expect("canonical");
    let plain = CapabilityId::of("board-plain").expect("canonical");
    let revealing = CapabilityId::of("board-revealing").expect("canonical");
    let everything_folded = ["pack.incidents.incident.*", SourceRecordDeleted::TYPE];
    let at = "2026-01-01T00:00:00Z".parse().expect("a timestamp");
    for (id, types, sensitive) in [
        (incidents_only, &everything_folded[..1], Selector::none()),
        (plain, &everything_folded[..], Selector::none()),
        (revealing, &everything_folded[..], Selector::All),
    ] {
        capabilities
            .grant(grant(id, auditor(), reading(types, sensitive)), at)
            .await
            .expect("granting");
    }
    let queries = QueryGateway::new(store.clone(), Arc::new(capabilities));
    let denied = queries.rows(board, &auditor(), incidents_only).await;
    assert!(
        matches!(&denied, Err(QueryError::Denied { event_type, reason, .. })
            if event_type == SourceRecordDeleted::TYPE && reason.contains("does not cover")),
        "{denied:?}"
    );
    let unredactable = queries.rows(board, &auditor(), plain).await;
    assert!(
        matches!(&unredactable, Err(QueryError::Denied { reason, .. }) if reason.contains("cannot be redacted")),
        "{unredactable:?}"
    );
    let rows = queries
        .rows(board, &auditor(), revealing)
        .await
        .expect("a permitted read");
    let incident = rows
        .iter()
        .find(|row| row.table == "incidents" && row.key == "INC-0")
        .expect("INC-0 is on the board");
    assert_eq!(incident.document["acknowledged_by_name"], "U042");
    let receipts = store
        .read_by_type(CapabilityDenied::TYPE)
        .await
        .expect("reading");
    assert_eq!(receipts.len(), 2, "each refused read leaves a receipt");
}

on_both_backends!(
    queries_redact_what_the_capability_does_not_reveal,
    projection_rows_need_every_folded_type_and_sealing_to_redact,
);
