//! Secrets custody on both backends: the on-call webhook's credential goes from the
//! encrypted store to the destination only through the provider, with receipts; revoked,
//! expired and misdirected tokens are refused; and the raw secret is nowhere at rest.

use std::sync::Arc;
use std::time::Duration;

use ops_core::capability::{Scope, Selector};
use ops_core::contract::Contract;
use ops_core::id::CorrelationId;
use ops_core::secrets::{SecretHandle, SecretHandleRevoked, SecretTokenIssued, TokenType};
use ops_core_runtime::command::CommandBus;
use ops_core_runtime::reaction::ReactionRunner;
use ops_core_runtime::secrets::{
    AccessToken, EncryptedFile, KeyError, SecretBackend, SecretValue, SecretsError, SecretsProvider,
};
use ops_core_runtime::store::EventStore;
use ops_host::webhook::{Credential, WebhookExecutor, WebhookSink};
use ops_tests::commands::{approving_dispatcher, authority, capability, open, reactor_capability};
use ops_tests::storage::{Backend, sqlite_path, temp_file};
use ops_tests::{on_both_backends, responder};
use pack_notify::ONCALL_DESTINATION;

/// What the on-call service expects; it must never be found at rest.
const SECRET: &str = "oncall-webhook-token-7f3a9c2e51";
const SECRET_ID: &str = "webhook.oncall.token";
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

async fn provider(store: &EventStore, file: &std::path::Path, scope: Scope) -> SecretsProvider {
    let backend = EncryptedFile::with_key(file, KEY).expect("a valid key");
    SecretsProvider::open(store.clone(), Box::new(backend), authority(scope))
        .await
        .expect("opening the provider")
}

/// Stores the webhook secret in `provider` and returns the responder's handle to it.
async fn holding_the_secret(provider: &SecretsProvider) -> SecretHandle {
    provider
        .store_secret(
            SECRET_ID,
            SecretValue::new(SECRET.as_bytes().to_vec()),
            &ops_tests::acting(responder()),
            capability(),
        )
        .await
        .expect("storing the secret");
    provider
        .handle(
            SECRET_ID,
            &responder(),
            capability(),
            correlation(),
            Duration::from_secs(3600),
        )
        .await
        .expect("a handle")
}

/// A token to `post` to `audience` for `ttl`, asked by the responder.
async fn post_token(
    provider: &SecretsProvider,
    handle: &SecretHandle,
    audience: &str,
    ttl: Duration,
) -> Result<AccessToken, SecretsError> {
    provider
        .access_token(
            handle,
            audience,
            "post",
            ttl,
            &responder(),
            capability(),
            correlation(),
        )
        .await
}

fn correlation() -> CorrelationId {
    CorrelationId::of("secrets-test").expect("canonical")
}

/// Every byte the test's database holds at rest, as text.
async fn everything_at_rest(backend: Backend, test: &str, store: &EventStore) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let path = sqlite_path(test);
            let mut bytes = Vec::new();
            for suffix in ["", "-wal"] {
                bytes.extend(
                    std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default(),
                );
            }
            bytes
        }
        Backend::Postgres => {
            let ops_core_runtime::db::Db::Postgres(pool) = store.db() else {
                unreachable!("a PostgreSQL store");
            };
            let mut text = String::new();
            for table in [
                "core_events",
                "core_commands",
                "core_outbox",
                "core_quarantine",
            ] {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM {table} AS t"))
                        .fetch_all(pool)
                        .await
                        .expect("reading a table");
                text.extend(rows);
            }
            text.into_bytes()
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

async fn the_webhook_credential_reaches_its_audience_only_through_the_provider(backend: Backend) {
    // Files are per backend: both run at once.
    let test = &format!("secrets_webhook_credential_{backend:?}").to_lowercase();
    let store = backend.store(test).await;
    let file = temp_file(test, "secrets.json");
    let provider = Arc::new(provider(&store, &file, Scope::everything()).await);
    let handle = holding_the_secret(&provider).await;

    // A SEV1 incident; the notify pack's reaction asks for the on-call to be told.
    let bus = CommandBus::new(store.clone(), authority(Scope::everything())).expect("handlers");
    bus.submit(&open("INC-1"), capability(), None)
        .await
        .expect("opening");
    let reaction = ops_core::reaction::installed(ops_core_runtime::CORE)
        .into_iter()
        .find(|reaction| reaction.pack_id() == "notify")
        .expect("installed");
    ReactionRunner::new(store.clone(), reaction, reactor_capability())
        .catch_up(&bus)
        .await
        .expect("reacting");

    // Over https, to an endpoint whose certificate the executor is told to trust.
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let certificate = certified.cert.der().clone();
    let key = rustls_key(certified.key_pair.serialize_der());
    let sink = WebhookSink::start_tls(certificate.clone(), key)
        .await
        .expect("a local endpoint");
    assert!(sink.url().starts_with("https://"));
    let credential = || {
        Credential::new(
            provider.clone(),
            handle.clone(),
            Duration::from_secs(3600),
            ONCALL_DESTINATION,
            responder(),
            capability(),
        )
    };
    // A bearer token never crosses the network in clear.
    let plain = WebhookExecutor::new("http://oncall.example/hook")
        .expect("a URL")
        .with_credential(credential());
    assert!(
        matches!(&plain, Err(reason) if reason.contains("only over https")),
        "{:?}",
        plain.as_ref().err()
    );
    let untrusted = WebhookExecutor::new(&sink.url()).expect("a URL");
    let answered = ops_core_runtime::egress::Executor::execute(
        &untrusted,
        &ops_core::id::ContentHash::of_bytes(b"probe"),
        &serde_json::json!({}),
    )
    .await;
    assert!(
        matches!(&answered, Err(reason) if reason.contains("did not answer")),
        "a certificate nobody trusts is refused before anything is sent: {answered:?}"
    );
    let executor = WebhookExecutor::trusting(&sink.url(), &[certificate])
        .expect("a URL")
        .with_credential(credential())
        .expect("https carries the token");
    let dispatcher = approving_dispatcher(&store)
        .with_executor(ONCALL_DESTINATION, Box::new(executor))
        .with_lease(Duration::from_millis(50));
    let report = dispatcher.dispatch(10).await.expect("dispatching");
    let steps = ops_core_runtime::egress::effects(&store)
        .await
        .expect("reading steps");
    assert_eq!(report.executed, 1, "{report:?} {steps:?}");
    let delivery = sink
        .deliveries()
        .into_values()
        .next()
        .expect("one delivery");
    assert_eq!(
        delivery.authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );

    // Receipts for the handle and the token; none holds the value.
    let issued: Vec<SecretTokenIssued> = ops_tests::payloads::<SecretTokenIssued>(&store).await;
    assert_eq!(
        issued.iter().map(|i| i.token_type).collect::<Vec<_>>(),
        [TokenType::Handle, TokenType::AccessToken]
    );
    let token = &issued[1];
    assert_eq!(token.audience.as_deref(), Some(ONCALL_DESTINATION));
    assert_eq!(token.secret_id, SECRET_ID);
    assert_eq!(token.handle_id.as_deref(), Some(handle.handle_id.as_str()));
    assert_eq!(
        (token.requester.clone(), token.capability_id),
        (responder(), capability())
    );
    assert!(
        token
            .expires_at
            .is_some_and(|expires| expires > token.issued_at)
    );
    // Each receipt names the capability state its check relied on.
    assert!(
        issued
            .iter()
            .all(|receipt| receipt.capability_state_ref.starts_with("evt_")),
        "{issued:?}"
    );

    let token =
        async |audience: &str, ttl: Duration| post_token(&provider, &handle, audience, ttl).await;
    // Tokens are bound to their audience and their time.
    let elsewhere = token("webhook.other", Duration::from_secs(60))
        .await
        .expect("a token for another audience");
    assert!(matches!(
        provider.redeem(&elsewhere, ONCALL_DESTINATION, "post"),
        Err(SecretsError::TokenRefused(reason)) if reason.contains("not `webhook.oncall`")
    ));
    // …and to their scope: a token to post does not read.
    let posting = token(ONCALL_DESTINATION, Duration::from_secs(60))
        .await
        .expect("a token");
    assert!(matches!(
        provider.redeem(&posting, ONCALL_DESTINATION, "read"),
        Err(SecretsError::TokenRefused(reason)) if reason.contains("is for `post`, not `read`")
    ));
    let short = token(ONCALL_DESTINATION, Duration::ZERO)
        .await
        .expect("a token that is already over");
    assert!(matches!(
        provider.redeem(&short, ONCALL_DESTINATION, "post"),
        Err(SecretsError::TokenRefused(reason)) if reason.contains("expired")
    ));

    // Revoking the handle ends its tokens at once, and the executor can no longer post.
    let live = token(ONCALL_DESTINATION, Duration::from_secs(60))
        .await
        .expect("a token");
    // Revoking is checked like issuing: not on a capability that does not cover secrets.
    let narrow = self::provider(
        &store,
        &file,
        Scope {
            types: Selector::only(["pack.notify.*"]),
            ..Scope::everything()
        },
    )
    .await;
    assert!(matches!(
        narrow
            .revoke(
                &handle.handle_id,
                &ops_tests::acting(responder()),
                "rotated",
                capability()
            )
            .await,
        Err(SecretsError::Denied { .. })
    ));
    provider
        .revoke(
            &handle.handle_id,
            &ops_tests::acting(responder()),
            "rotated",
            capability(),
        )
        .await
        .expect("revoking");
    let revoked = ops_tests::payloads::<SecretHandleRevoked>(&store).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].capability_id, Some(capability()));
    assert!(revoked[0].capability_state_ref.starts_with("evt_"));
    assert!(matches!(
        provider.redeem(&live, ONCALL_DESTINATION, "post"),
        Err(SecretsError::TokenRefused(_))
    ));
    assert!(matches!(
        token(ONCALL_DESTINATION, Duration::from_secs(60)).await,
        Err(SecretsError::Revoked(_))
    ));
    assert_eq!(
        store
            .read_by_type(SecretHandleRevoked::TYPE)
            .await
            .expect("reading")
            .len(),
        1
    );
    // A provider opened again from the log knows the handle is revoked.
    let reopened = self::provider(&store, &file, Scope::everything()).await;
    assert!(matches!(
        post_token(
            &reopened,
            &handle,
            ONCALL_DESTINATION,
            Duration::from_secs(60)
        )
        .await,
        Err(SecretsError::Revoked(_))
    ));

    // The raw secret is nowhere at rest: not in the secrets file, not in the database.
    let sealed = std::fs::read(&file).expect("the secrets file");
    assert!(
        !contains(&sealed, SECRET),
        "the secrets file holds the value in clear"
    );
    assert!(
        contains(&sealed, SECRET_ID),
        "the file does hold the sealed entry"
    );
    let at_rest = everything_at_rest(backend, test, &store).await;
    assert!(!at_rest.is_empty());
    assert!(
        contains(&at_rest, SECRET_ID),
        "the receipts name the secret"
    );
    assert!(
        !contains(&at_rest, SECRET),
        "the database holds the value in clear"
    );
}

async fn a_capability_that_does_not_reach_the_audience_gets_no_token(backend: Backend) {
    // Files are per backend: both run at once.
    let test = &format!("secrets_capability_denied_{backend:?}").to_lowercase();
    let store = backend.store(test).await;
    let file = temp_file(test, "secrets.json");
    let provider = provider(
        &store,
        &file,
        Scope {
            destinations: Selector::only(["webhook.other"]),
            ..Scope::everything()
        },
    )
    .await;
    // A handle needs no audience.
    let handle = holding_the_secret(&provider).await;
    let denied = post_token(
        &provider,
        &handle,
        ONCALL_DESTINATION,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(&denied, Err(SecretsError::Denied { reason, .. }) if reason.contains("does not reach `webhook.oncall`")),
        "{denied:?}"
    );
    assert_eq!(
        ops_tests::payloads::<ops_core::capability::CapabilityDenied>(&store)
            .await
            .len(),
        1,
        "the denial has its receipt"
    );
    // A handle ends after its lifetime, and with it every token from it.
    let brief = provider
        .handle(
            SECRET_ID,
            &responder(),
            capability(),
            correlation(),
            Duration::ZERO,
        )
        .await
        .expect("a handle");
    assert!(matches!(
        post_token(&provider, &brief, "webhook.other", Duration::from_secs(60)).await,
        Err(SecretsError::Expired(..))
    ));
}

on_both_backends!(
    the_webhook_credential_reaches_its_audience_only_through_the_provider,
    a_capability_that_does_not_reach_the_audience_gets_no_token,
);

/// A credential renews its handle shortly before the handle ends (a tenth of its lifetime
/// before), with a new handle checked and receipted like the first, so a worker that runs
/// longer than a handle lasts keeps posting; the ended handle's tokens are no longer asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_renews_its_handle_before_it_ends() {
    let test = "secrets_handle_renewal";
    let store = Backend::Sqlite.store(test).await;
    let file = temp_file(test, "secrets.json");
    let provider = Arc::new(provider(&store, &file, Scope::everything()).await);
    holding_the_secret(&provider).await;
    let lifetime = Duration::from_secs(3);
    let first = provider
        .handle(
            SECRET_ID,
            &responder(),
            capability(),
            correlation(),
            lifetime,
        )
        .await
        .expect("a short handle");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let certificate = certified.cert.der().clone();
    let sink = WebhookSink::start_tls(
        certificate.clone(),
        rustls_key(certified.key_pair.serialize_der()),
    )
    .await
    .expect("a local endpoint");
    let credential = Credential::new(
        provider.clone(),
        first.clone(),
        lifetime,
        ONCALL_DESTINATION,
        responder(),
        capability(),
    );
    let executor = WebhookExecutor::trusting(&sink.url(), &[certificate])
        .expect("a URL")
        .with_credential(credential)
        .expect("https carries the token");
    let post = |n: u32| {
        let executor = &executor;
        async move {
            ops_core_runtime::egress::Executor::execute(
                executor,
                &ops_core::id::ContentHash::of_bytes(&n.to_be_bytes()),
                &serde_json::json!({"post": n}),
            )
            .await
        }
    };
    let handles = || async {
        store
            .read_by_type(SecretTokenIssued::TYPE)
            .await
            .expect("reading receipts")
            .into_iter()
            .filter_map(|stored| {
                let issued: SecretTokenIssued =
                    serde_json::from_value(stored.envelope.payload).expect("a receipt");
                (issued.token_type == TokenType::Handle).then_some(issued.handle_id)
            })
            .flatten()
            .collect::<Vec<String>>()
    };
    post(1).await.expect("posted on the first handle");
    let before = handles().await;
    let ends = provider
        .handle_ends(&first)
        .expect("it holds")
        .expect("it ends");
    let until = |at: ops_core::time::Timestamp| {
        Duration::from_micros(
            (at.unix_micros()
                - <ops_core::time::Timestamp as ops_core_runtime::clock::WallClock>::now()
                    .unix_micros())
            .max(0) as u64,
        )
    };
    // Midway into the last tenth of its lifetime: the next post asks for a new handle.
    tokio::time::sleep(until(ends.minus(lifetime / 20).expect("a time"))).await;
    post(2).await.expect("posted on a renewed handle");
    let renewed = handles().await;
    assert_eq!(renewed.len(), before.len() + 1, "{renewed:?}");
    assert!(renewed.contains(&first.handle_id));
    // Past the first handle's end, posts go on.
    tokio::time::sleep(until(ends.plus(lifetime / 10).expect("a time"))).await;
    assert!(matches!(
        provider.handle_ends(&first),
        Err(SecretsError::Expired(..))
    ));
    post(3).await.expect("posted after the first handle ended");
    assert_eq!(handles().await.len(), renewed.len(), "renewed once");
    assert_eq!(sink.deliveries().len(), 3);
}

#[test]
fn a_tampered_or_moved_secret_does_not_decrypt() {
    let file = temp_file("secrets_tampered", "secrets.json");
    let backend = EncryptedFile::with_key(&file, KEY).expect("a valid key");
    backend
        .put(SECRET_ID, &SecretValue::new(SECRET.as_bytes().to_vec()))
        .expect("storing");
    assert_eq!(
        backend.get(SECRET_ID).expect("reading").expose(),
        SECRET.as_bytes()
    );
    let mut sealed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the file")).expect("JSON");
    // Moved under another name: the name is authenticated with the value.
    sealed["webhook.other.token"] = sealed[SECRET_ID].clone();
    let ciphertext = sealed[SECRET_ID]["ciphertext"]
        .as_str()
        .expect("hex")
        .to_owned();
    let flipped = format!(
        "{}{}",
        if ciphertext.starts_with('0') {
            "1"
        } else {
            "0"
        },
        &ciphertext[1..]
    );
    sealed[SECRET_ID]["ciphertext"] = flipped.into();
    std::fs::write(&file, serde_json::to_vec(&sealed).expect("JSON")).expect("writing");
    for secret_id in [SECRET_ID, "webhook.other.token"] {
        assert!(
            matches!(backend.get(secret_id), Err(KeyError::Undecryptable { .. })),
            "{secret_id} decrypted"
        );
    }
    let wrong_key = EncryptedFile::with_key(&file, &KEY.replace('0', "f")).expect("a valid key");
    assert!(matches!(
        wrong_key.get("webhook.other.token"),
        Err(KeyError::Undecryptable { .. })
    ));
    assert!(matches!(
        EncryptedFile::with_key(&file, "abcd"),
        Err(KeyError::BadKey(_))
    ));
}

/// The key file, the sealed values and their directory are created owner-only, and a key
/// file or values file other users can read is refused with the `chmod` that fixes it.
#[test]
fn key_material_is_owner_only_and_a_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let dir = std::env::temp_dir().join(format!("ops-key-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (key, values) = (dir.join("keys/secrets.key"), dir.join("keys/secrets.json"));
    let backend = EncryptedFile::open(&values, Some(&key)).unwrap();
    backend
        .put(SECRET_ID, &SecretValue::new(SECRET.as_bytes().to_vec()))
        .unwrap();
    assert_eq!(
        (mode(&key), mode(&values), mode(&dir.join("keys"))),
        (0o600, 0o600, 0o700)
    );
    // Opened again, the same key reads the value.
    let again = EncryptedFile::open(&values, Some(&key)).unwrap();
    assert_eq!(again.get(SECRET_ID).unwrap().expose(), SECRET.as_bytes());

    chmod(&key, 0o644);
    let refused = EncryptedFile::open(&values, Some(&key)).err().unwrap();
    assert!(
        matches!(refused, KeyError::Exposed { mode: 0o644, .. }),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains(&format!("run `chmod 600 {}`", key.display())),
        "{message}"
    );
    chmod(&key, 0o600);
    chmod(&values, 0o640);
    let readable = EncryptedFile::open(&values, Some(&key))
        .unwrap()
        .get(SECRET_ID)
        .err()
        .unwrap();
    assert!(
        matches!(readable, KeyError::Exposed { mode: 0o640, .. }),
        "{readable}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn rustls_key(der: Vec<u8>) -> tokio_rustls::rustls::pki_types::PrivateKeyDer<'static> {
    tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(der.into())
}
