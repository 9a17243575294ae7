//! Crypto-shredding on both backends: a person's name is sealed under their key in the
//! log, the command records and the outbox; it reads in clear through the store and
//! reaches the destination in clear; after the subject is erased it reads as shredded,
//! every event and id is unchanged, and the name is nowhere at rest.

use std::sync::Arc;

use ops_contract_incidents::{AcknowledgeIncident, IncidentAcknowledged};
use ops_core::capability::{Scope, Selector};
use ops_core::contract::Contract;
use ops_core::envelope::{CommandEnvelope, CommandRequest, DedupeScope};
use ops_core::redaction::{REDACTED, RedactionApplied};
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::projection::stored_rows;
use ops_core_runtime::query::QueryGateway;
use ops_core_runtime::secrets::EncryptedFile;
use ops_core_runtime::shredding::{EraseError, SHREDDED, SubjectKeys, erase};
use ops_core_runtime::store::{CurrentPayload, EventStore};
use ops_host::webhook::{WebhookExecutor, WebhookSink};
use ops_shared_people::PersonRef;
use ops_tests::commands::{
    approving_dispatcher, authority, capability, caught_up_board, open, request,
};
use ops_tests::storage::{Backend, temp_file};
use ops_tests::{on_both_backends, responder};

const NAME: &str = "Ada Lovelace";
const KEY: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

fn ada() -> PersonRef {
    PersonRef {
        system: "oncall".to_owned(),
        id: "U042".to_owned(),
        display_name: NAME.to_owned(),
    }
}

fn keys(file: &std::path::Path) -> Arc<SubjectKeys> {
    Arc::new(SubjectKeys::new(Box::new(
        EncryptedFile::with_key(file, KEY).expect("a valid key"),
    )))
}

/// Every table that holds payloads, as text.
async fn at_rest(store: &EventStore) -> String {
    let mut text = String::new();
    for table in ["core_events", "core_commands", "core_outbox"] {
        let rows: Vec<String> = ops_core_runtime::db::on_db!(store.db(), pool => {
            sqlx::query_scalar::<_, String>(&format!(
                "SELECT {} FROM {table}",
                match table {
                    "core_outbox" => "request",
                    _ => "envelope",
                }
            ))
            .fetch_all(pool)
            .await
            .expect("reading a table")
        });
        text.extend(rows);
    }
    text
}

fn display_name(store: &EventStore, stored: &ops_core_runtime::store::StoredEvent) -> String {
    let CurrentPayload::Current { payload, .. } = store.current_payload(&stored.envelope) else {
        panic!("readable");
    };
    payload["by"]["display_name"]
        .as_str()
        .expect("a string")
        .to_owned()
}

async fn an_erased_subject_reads_as_shredded_and_is_nowhere_at_rest(backend: Backend) {
    // Files are per backend: both run at once.
    let test = &format!("shredding_erase_{backend:?}").to_lowercase();
    let file = temp_file(test, "keys.json");
    let store = backend.store(test).await.with_subject_keys(keys(&file));
    let bus = CommandBus::new(store.clone(), authority(Scope::everything())).expect("handlers");
    bus.submit(&open("INC-1"), capability(), None)
        .await
        .expect("opening");
    let acknowledge = CommandEnvelope::new(
        &AcknowledgeIncident {
            incident_id: "INC-1".to_owned(),
            by: ada(),
        },
        // Five minutes after the opening, so the board folds it after the opening.
        CommandRequest {
            requested_at: "2026-11-26T06:05:00Z".parse().expect("a valid timestamp"),
            ..request(
                "incident/INC-1",
                DedupeScope::Command {
                    aggregate_ref: "incident/INC-1".to_owned(),
                },
            )
        },
    )
    .expect("a valid command");
    let acknowledged_receipt = bus
        .submit(&acknowledge, capability(), None)
        .await
        .expect("acknowledging");
    // Kept under an id derived from the sealed payload: no hash of the name is stored.
    assert_ne!(acknowledged_receipt.command_id, acknowledge.command_id);
    let page = pack_incidents::page_responder(
        "INC-1",
        ada(),
        request(
            "incident/INC-1",
            DedupeScope::Egress {
                destination: "pager".to_owned(),
                tenant_id: "acme".to_owned(),
            },
        ),
    )
    .expect("a valid command");
    bus.submit(&page, capability(), None).await.expect("paging");

    // The board shows who acknowledged, by name: its row holds the name sealed, and the
    // query gateway opens it for a capability that reveals it.
    let (mut board, projection) = caught_up_board(&store).await;
    let rows = stored_rows(&store, projection).await.expect("rows");
    assert!(
        rows.iter().all(|(_, _, document)| !document.contains(NAME))
            && rows
                .iter()
                .any(|(_, _, document)| document.contains("enc:v1:sub_")),
        "{rows:?}"
    );
    assert_eq!(acknowledged_by(&store, projection, true).await, NAME);
    assert_eq!(acknowledged_by(&store, projection, false).await, REDACTED);

    // Sealed at rest, in clear through the store and at the destination.
    let before = at_rest(&store).await;
    assert!(!before.contains(NAME), "the name is stored in clear");
    assert!(before.contains("enc:v1:sub_"));
    let acknowledged = store
        .read_by_type(IncidentAcknowledged::TYPE)
        .await
        .expect("reading");
    assert_eq!(display_name(&store, &acknowledged[0]), NAME);
    acknowledged[0]
        .envelope
        .verify()
        .expect("the id recomputes over the sealed payload");
    let sink = WebhookSink::start().await.expect("a local endpoint");
    let report = approving_dispatcher(&store)
        .with_executor(
            "pager",
            Box::new(WebhookExecutor::new(&sink.url()).expect("a URL")),
        )
        .dispatch(10)
        .await
        .expect("dispatching");
    assert_eq!(report.executed, 1);
    let delivered = sink
        .deliveries()
        .into_values()
        .next()
        .expect("one delivery");
    assert_eq!(
        delivered.request.expect("done")["responder"]["display_name"],
        NAME
    );

    // Submitting the same command again is still the same command: sealing is stable.
    let again = bus
        .submit(&acknowledge, capability(), None)
        .await
        .expect("again");
    assert!(again.replayed);
    assert_eq!(again.command_id, acknowledged_receipt.command_id);

    let subject_id = before
        .split("enc:v1:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("a sealed field names its subject")
        .to_owned();
    // A backup made by the tool before the erasure (SQLite: a database file; PostgreSQL:
    // pg_dump's plain SQL, so a name in clear would show in the bytes).
    let backup = ops_tests::storage::temp_file(test, "backup");
    let url = ops_tests::storage::database_url();
    store
        .db()
        .backup_to(&backup, Some(&url))
        .await
        .expect("backing up");
    let bytes = std::fs::read(&backup).expect("the backup");
    assert!(
        String::from_utf8_lossy(&bytes).contains(&subject_id),
        "the scan sees the sealed fields in the backup"
    );
    assert!(
        !String::from_utf8_lossy(&bytes).contains(NAME),
        "the backup holds the name in clear"
    );
    let ids_before: Vec<_> = store
        .replay(None, 1_000)
        .await
        .expect("replaying")
        .iter()
        .map(|e| e.envelope.event_id)
        .collect();
    // Erasing is checked like any action: a capability that reaches only the incidents
    // pack's types may not, and its denial is receipted; nothing is destroyed.
    let incidents_only = authority(Scope {
        types: ops_core::capability::Selector::only(["pack.incidents.*"]),
        ..Scope::everything()
    });
    let denied = erase(
        &store,
        &subject_id,
        &ops_tests::acting(responder()),
        "right to erasure request 17",
        capability(),
        &*incidents_only,
    )
    .await;
    assert!(
        matches!(&denied, Err(EraseError::Denied { reason, .. }) if reason.contains("RedactionApplied")),
        "{denied:?}"
    );
    assert_eq!(
        ops_tests::payloads::<ops_core::capability::CapabilityDenied>(&store)
            .await
            .len(),
        1
    );
    let applied = erase(
        &store,
        &subject_id,
        &ops_tests::acting(responder()),
        "right to erasure request 17",
        capability(),
        &*authority(Scope::everything()),
    )
    .await
    .expect("erasing");
    assert!(
        applied
            .fields
            .contains(&format!("{}#/by/display_name", IncidentAcknowledged::TYPE)),
        "{:?}",
        applied.fields
    );
    assert!(
        applied
            .fields
            .iter()
            .any(|field| field.ends_with("#/responder/display_name")),
        "{:?}",
        applied.fields
    );

    // The log is unchanged but for the denial's receipt and the tombstone; the name reads
    // as shredded, everywhere.
    let after: Vec<_> = store.replay(None, 1_000).await.expect("replaying");
    let ids_after: Vec<_> = after.iter().map(|e| e.envelope.event_id).collect();
    assert_eq!(ids_after.len(), ids_before.len() + 2);
    assert!(
        ids_before.iter().all(|id| ids_after.contains(id)),
        "no event id changed"
    );
    assert_eq!(
        store
            .read_by_type(RedactionApplied::TYPE)
            .await
            .expect("reading")
            .len(),
        1
    );
    let acknowledged = store
        .read_by_type(IncidentAcknowledged::TYPE)
        .await
        .expect("reading");
    assert_eq!(display_name(&store, &acknowledged[0]), SHREDDED);
    // A process that starts now, with the same key file, cannot read it either.
    let fresh = backend_store_again(&store, keys(&file));
    assert_eq!(display_name(&fresh, &acknowledged[0]), SHREDDED);
    // The backup made before the erasure, restored, cannot be read either: the key was
    // never in it.
    let restored = EventStore::open(
        backend.restore(test, &backup).await,
        ops_tests::linked_registry(),
    )
    .await
    .expect("a store over the restored backup")
    .with_subject_keys(keys(&file));
    let from_backup = restored
        .read_by_type(IncidentAcknowledged::TYPE)
        .await
        .expect("reading");
    assert_eq!(from_backup.len(), acknowledged.len(), "the backup restored");
    assert_eq!(display_name(&restored, &from_backup[0]), SHREDDED);
    restored.db().close().await;
    let rest = at_rest(&store).await;
    assert!(!rest.contains(NAME));
    // The board's row is unchanged, and reads as shredded through the gateway.
    board.catch_up().await.expect("catching up");
    assert_eq!(acknowledged_by(&store, projection, true).await, SHREDDED);
    let rows = stored_rows(&store, projection).await.expect("rows");
    assert!(
        rows.iter().all(|(_, _, document)| !document.contains(NAME)),
        "{rows:?}"
    );
    let key_file = std::fs::read_to_string(&file).expect("the key file");
    assert!(
        !key_file.contains(&subject_id),
        "the subject's key is gone from the key file"
    );
}

/// Who acknowledged INC-1, as the board shows it through the query gateway to a
/// capability that reveals personal data, or one that does not.
async fn acknowledged_by(
    store: &EventStore,
    projection: &'static dyn ops_core::projection::DynProjection,
    reveals: bool,
) -> String {
    let scope = if reveals {
        Scope::everything()
    } else {
        Scope {
            sensitive: Selector::none(),
            ..Scope::everything()
        }
    };
    let rows = QueryGateway::new(store.clone(), authority(scope))
        .rows(projection, &responder(), capability())
        .await
        .expect("reading the board");
    let incident = rows
        .iter()
        .find(|row| row.table == "incidents" && row.key == "INC-1")
        .expect("INC-1 is on the board");
    incident.document["acknowledged_by_name"]
        .as_str()
        .expect("a name")
        .to_owned()
}

/// The same database, read by another handle with its own keys.
fn backend_store_again(store: &EventStore, keys: Arc<SubjectKeys>) -> EventStore {
    store.clone().with_subject_keys(keys)
}

on_both_backends!(an_erased_subject_reads_as_shredded_and_is_nowhere_at_rest);
