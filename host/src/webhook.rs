//! Webhook destinations: the egress gateway's executor that POSTs an effect's request to an
//! HTTP endpoint, and a local endpoint that receives such posts (the demo's stand-in for a
//! real on-call service, and what the tests count deliveries with).
//!
//! Destinations may be `https` (rustls, with the Mozilla roots and any the operator adds);
//! a bearer token goes only over https, or to the loopback interface.
//!
//! The idempotency key travels in the `Idempotency-Key` header; an endpoint that honours
//! it does each effect once however often it is asked, which is what lets the dispatcher
//! retry after a lost answer.

use ops_core_runtime::clock::WallClock;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::header::{AUTHORIZATION, HeaderValue};
use ops_core::envelope::Actor;
use ops_core::id::{CapabilityId, CorrelationId};
use ops_core::secrets::SecretHandle;
use ops_core::supply_chain::ToolManifest;
use ops_core::time::Timestamp;
use ops_core_runtime::secrets::{AccessToken, SecretsProvider};
use std::time::Duration;
use zeroize::Zeroizing;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ops_core::id::ContentHash;
use ops_core_runtime::egress::{BoxFuture, Executor};
use serde_json::Value;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// POSTs each effect's request as JSON to one URL, over http or https (rustls).
pub struct WebhookExecutor {
    url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    credential: Option<Arc<Credential>>,
}

/// How the executor authenticates: a bearer credential held by the secrets provider,
/// reached through a handle, for one audience.
pub struct Credential {
    pub provider: Arc<SecretsProvider>,
    /// The handle tokens are asked from, renewed before it ends while it holds.
    handle: Mutex<SecretHandle>,
    /// How long each handle it asks for lasts.
    handle_lifetime: Duration,
    /// The destination the credential is for; tokens are bound to it.
    pub audience: String,
    /// The host's actor and capability the tokens are issued to.
    pub requester: Actor,
    pub capability_id: CapabilityId,
    token: Mutex<Option<AccessToken>>,
}

impl Credential {
    pub fn new(
        provider: Arc<SecretsProvider>,
        handle: SecretHandle,
        handle_lifetime: Duration,
        audience: &str,
        requester: Actor,
        capability_id: CapabilityId,
    ) -> Self {
        Credential {
            provider,
            handle: Mutex::new(handle),
            handle_lifetime,
            audience: audience.to_owned(),
            requester,
            capability_id,
            token: Mutex::new(None),
        }
    }

    /// The handle to ask tokens from: the one held, or a new one (asked for on the same
    /// capability, checked and receipted) once the held one is about to end, so a worker
    /// that runs for days keeps its credential. A revoked handle is never renewed.
    async fn live_handle(&self) -> Result<SecretHandle, String> {
        let held = self.handle.lock().expect("never poisoned").clone();
        let ends = self
            .provider
            .handle_ends(&held)
            .map_err(|error| format!("no credential for `{}`: {error}", self.audience))?;
        let renew_before = (self.handle_lifetime / 10).min(HANDLE_RENEWAL);
        let soon = Timestamp::now()
            .plus(renew_before)
            .unwrap_or(Timestamp::now());
        if ends.is_none_or(|ends| ends > soon) {
            return Ok(held);
        }
        let renewed = self
            .provider
            .handle(
                &held.secret_id,
                &self.requester,
                self.capability_id,
                CorrelationId::of(&self.audience).expect("plain strings have a canonical form"),
                self.handle_lifetime,
            )
            .await
            .map_err(|error| format!("renewing the credential for `{}`: {error}", self.audience))?;
        *self.handle.lock().expect("never poisoned") = renewed.clone();
        *self.token.lock().expect("never poisoned") = None;
        Ok(renewed)
    }

    /// The `Authorization` header: from the cached token while it holds, else a new one.
    async fn header(&self) -> Result<HeaderValue, String> {
        let handle = self.live_handle().await?;
        let cached = self.token.lock().expect("never poisoned").take();
        let token = match cached.filter(|token| token.expires_at > Timestamp::now()) {
            Some(token) => token,
            None => self
                .provider
                .access_token(
                    &handle,
                    &self.audience,
                    TOKEN_SCOPE,
                    TOKEN_LIFETIME,
                    &self.requester,
                    self.capability_id,
                    CorrelationId::of(&handle.handle_id)
                        .expect("plain strings have a canonical form"),
                )
                .await
                .map_err(|error| format!("no credential for `{}`: {error}", self.audience))?,
        };
        let secret = self
            .provider
            .redeem(&token, &self.audience, TOKEN_SCOPE)
            .map_err(|error| {
                format!("the credential for `{}` is refused: {error}", self.audience)
            })?;
        *self.token.lock().expect("never poisoned") = Some(token);
        let mut value = Zeroizing::new(b"Bearer ".to_vec());
        value.extend_from_slice(secret.expose());
        let mut header = HeaderValue::from_bytes(&value).map_err(|_| {
            format!(
                "the credential for `{}` is not a valid header",
                self.audience
            )
        })?;
        header.set_sensitive(true);
        Ok(header)
    }
}

/// What the executor's tokens are for: posting to their audience.
const TOKEN_SCOPE: &str = "post";

/// How long an executor's access token lasts before it asks for another.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// How long before its handle ends a credential asks for a new one (at most a tenth of
/// the handle's lifetime).
const HANDLE_RENEWAL: Duration = Duration::from_secs(3600);

impl WebhookExecutor {
    /// What this executor is, for the supply chain: a governed tool manifest.
    pub fn manifest() -> ToolManifest {
        ToolManifest {
            name: "ops-host.webhook".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description:
                "POSTs an effect's request with its Idempotency-Key and an optional bearer token"
                    .to_owned(),
            destinations: vec!["webhook.*".to_owned()],
            models: BTreeMap::new(),
        }
    }

    /// An executor for `url`; an https URL's certificate is checked against the Mozilla
    /// roots compiled in.
    pub fn new(url: &str) -> Result<Self, String> {
        Self::trusting(url, &[])
    }

    /// As [`Self::new`], also trusting the certificate authorities of `extra_roots` (DER),
    /// as a private endpoint's own authority.
    pub fn trusting(url: &str, extra_roots: &[CertificateDer<'static>]) -> Result<Self, String> {
        let url: Uri = url
            .parse()
            .map_err(|error| format!("`{url}` is not a URL: {error}"))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            return Err(format!("`{url}` is not an http or https URL"));
        }
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in extra_roots {
            roots.add(root.clone()).map_err(|error| {
                format!("a trusted certificate for `{url}` is not valid: {error}")
            })?;
        }
        let tls = ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS cannot be set up: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(WebhookExecutor {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: Duration::from_secs(10),
            credential: None,
        })
    }

    /// Sends `credential`'s bearer token with each post: refused for a plain `http` URL
    /// unless it is the loopback interface, since the token would cross the network in
    /// clear.
    pub fn with_credential(
        mut self,
        credential: impl Into<Arc<Credential>>,
    ) -> Result<Self, String> {
        if let Some(refused) = self.refuses_credential() {
            return Err(refused);
        }
        self.credential = Some(credential.into());
        Ok(self)
    }

    /// Why this executor's URL may not carry a bearer token, if it may not.
    pub fn refuses_credential(&self) -> Option<String> {
        let loopback = match self.url.host() {
            Some("localhost") => true,
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        };
        (self.url.scheme_str() != Some("https") && !loopback).then(|| {
            format!(
                "`{}` is plain http: a bearer token is sent only over https (or to the loopback interface)",
                self.url
            )
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Executor for WebhookExecutor {
    fn execute<'a>(
        &'a self,
        idempotency_key: &'a ContentHash,
        request: &'a Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = serde_json::to_vec(request).expect("a request is plain JSON");
            let mut post = Request::post(self.url.clone());
            if let Some(credential) = &self.credential {
                post = post.header(AUTHORIZATION, credential.header().await?);
            }
            let post = post
                .header("content-type", "application/json")
                .header(IDEMPOTENCY_HEADER, idempotency_key.to_string())
                .body(Full::new(Bytes::from(body)))
                .map_err(|error| format!("the request to {} cannot be built: {error}", self.url))?;
            let answer = tokio::time::timeout(self.timeout, self.client.request(post))
                .await
                .map_err(|_| format!("{} did not answer within {:?}", self.url, self.timeout))?
                .map_err(|error| format!("{} did not answer: {error}", self.url))?;
            if answer.status().is_success() {
                Ok(())
            } else {
                Err(format!("{} answered {}", self.url, answer.status()))
            }
        })
    }
}

/// What a [`WebhookSink`] saw of one idempotency key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delivery {
    /// Posts that carried the key, answered or not.
    pub attempts: u32,
    /// The request it did, the first time; later posts with the key did nothing.
    pub request: Option<Value>,
    /// The `Authorization` header of the last post, as the endpoint saw it.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct SinkState {
    deliveries: BTreeMap<String, Delivery>,
    /// Posts to refuse with 503 before doing anything.
    refuse_next: u32,
    /// Posts to do and then answer nothing (the connection drops), like a crash after
    /// the remote call.
    lose_next_answers: u32,
}

/// A local HTTP endpoint that does each effect once per idempotency key.
#[derive(Clone)]
pub struct WebhookSink {
    address: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<SinkState>>,
}

impl WebhookSink {
    /// Listens on a free port of 127.0.0.1 until the runtime stops.
    pub async fn start() -> std::io::Result<Self> {
        Self::listen(None).await
    }

    /// As [`Self::start`], over TLS with `certificate` (DER, for 127.0.0.1) and its key.
    pub async fn start_tls(
        certificate: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> std::io::Result<Self> {
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(vec![certificate], key)
        })
        .map_err(std::io::Error::other)?;
        Self::listen(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn listen(tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sink = WebhookSink {
            address: listener.local_addr()?,
            scheme: if tls.is_some() { "https" } else { "http" },
            state: Arc::default(),
        };
        let serving = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (sink, tls) = (serving.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |post| {
                        let sink = sink.clone();
                        async move { sink.receive(post).await }
                    });
                    // A dropped answer ends the connection with an error; that is the point.
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Ok(sink)
    }

    pub fn url(&self) -> String {
        format!("{}://{}/hook", self.scheme, self.address)
    }

    pub fn refuse_next(&self, posts: u32) {
        self.state.lock().expect("sink state").refuse_next = posts;
    }

    pub fn lose_next_answers(&self, posts: u32) {
        self.state.lock().expect("sink state").lose_next_answers = posts;
    }

    /// Every key seen, with its attempts and the request done.
    pub fn deliveries(&self) -> BTreeMap<String, Delivery> {
        self.state.lock().expect("sink state").deliveries.clone()
    }

    async fn receive(&self, post: Request<Incoming>) -> Result<Response<Full<Bytes>>, LostAnswer> {
        let header = |name| {
            post.headers()
                .get(name)
                .and_then(|value: &HeaderValue| value.to_str().ok())
                .map(str::to_owned)
        };
        let (key, authorization) = (header(IDEMPOTENCY_HEADER), header(AUTHORIZATION.as_str()));
        let body = post.into_body().collect().await.map(|b| b.to_bytes());
        let (Some(key), Ok(body)) = (key, body) else {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                "an idempotency-key header and a body are required",
            ));
        };
        let Ok(request) = serde_json::from_slice::<Value>(&body) else {
            return Ok(answer(StatusCode::BAD_REQUEST, "the body is not JSON"));
        };
        let mut state = self.state.lock().expect("sink state");
        if state.refuse_next > 0 {
            state.refuse_next -= 1;
            state.deliveries.entry(key).or_default().attempts += 1;
            return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, "try again later"));
        }
        let delivery = state.deliveries.entry(key).or_default();
        delivery.attempts += 1;
        delivery.authorization = authorization;
        // Done the first time only; a later post with the key is answered, not done again.
        delivery.request.get_or_insert(request);
        if state.lose_next_answers > 0 {
            state.lose_next_answers -= 1;
            return Err(LostAnswer);
        }
        Ok(answer(StatusCode::OK, "done"))
    }
}

/// The service error that makes hyper drop the connection without an answer.
#[derive(Debug)]
struct LostAnswer;

impl std::fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the answer was lost on purpose")
    }
}

impl std::error::Error for LostAnswer {}

fn answer(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}
