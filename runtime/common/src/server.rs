//! The HTTP stack every binary shares: request ids, W3C trace context, request
//! logging and metrics, a request timeout and a body limit answered in the envelope,
//! fallbacks for unknown routes, graceful shutdown on SIGTERM or Ctrl-C, and the
//! container health check.
//!
//! A service's stack is tower-http's request-id and trace layers and tower's timeout,
//! with one layer of its own for what they do not do (the W3C trace context). The
//! gateway, whose cost per request is what it is chosen for, has one layer doing
//! all of it ([`ObserveLayer`]).
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::str::FromStr;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, MethodRouter};
use axum::{BoxError, Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::{Layer, Service};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Instrument as _;

use crate::ApiError;

// A `HeaderName`, not a `&str`: a string is parsed (and a custom name allocated)
// on every lookup.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Largest request body a JSON extractor accepts (413 beyond it).
pub const BODY_LIMIT: usize = 1024 * 1024;

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Adds the shared layers and fallbacks to a service's router, outermost first: a
/// request id (the caller's, or a new UUID) on the request and its response, the
/// caller's trace continued, a log span carrying both ids and one log line per
/// request, the time limit (503 in the envelope), and the body limit.
pub fn with_defaults(router: Router, request_timeout: Duration) -> Router {
    // Around the router, not around each route: `Router::layer` wraps every route in
    // one more boxed service, cloned and boxed again on every request.
    let stack = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceContextLayer)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(service_span)
                .on_request(())
                .on_response(
                    |response: &Response, latency: Duration, _: &tracing::Span| {
                        log_response(response.status(), latency);
                    },
                )
                // One line per request: `log_response` has logged a 5xx already, and
                // a streamed body's end is no news.
                .on_failure(())
                .on_eos(()),
        )
        .layer(HandleErrorLayer::new(over_time))
        .timeout(request_timeout)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(routed(router));
    Router::new().fallback_service(stack)
}

/// A router's share of the shared stack: every route counted under its template,
/// and unknown routes and methods answered in the envelope.
pub fn routed(router: Router) -> Router {
    router
        // A route layer sees the matched route template: the metrics' `route` label.
        .route_layer(crate::metrics::TrackLayer)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
}

/// The answer to a request that outlived the service's time limit (the router
/// itself never fails).
async fn over_time(err: BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Rejected(
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long".into(),
        )
    } else {
        ApiError::Internal(anyhow::anyhow!(err))
    }
}

/// The span every request is logged in, services' and the gateway's alike: its
/// request id (on the request by then) and trace id.
fn request_span(req: &Request, hop: Option<&crate::trace::Hop>) -> tracing::Span {
    let request_id = req.headers().get(REQUEST_ID);
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id.and_then(|id| id.to_str().ok()).unwrap_or("-"),
        trace_id = %hop.map_or_else(|| "-".to_string(), |hop| hop.ctx.trace_id_hex()),
    )
}

/// A service's request span: the hop [`TraceContextLayer`] left on the request,
/// which the request's queries are exported under.
fn service_span(req: &Request) -> tracing::Span {
    let hop = req.extensions().get::<crate::trace::Hop>();
    let span = request_span(req, hop);
    #[cfg(feature = "database")]
    if let Some(hop) = hop {
        crate::query_spans::attach(&span, hop);
    }
    span
}

/// One log line per request, with its status and latency: an error for a 5xx.
fn log_response(status: StatusCode, latency: Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let failed = status.is_server_error();
    let status = status.as_u16();
    if failed {
        tracing::error!(status, latency_ms, "response failed");
    } else {
        tracing::info!(status, latency_ms, "finished processing request");
    }
}

/// Continues the caller's W3C trace (or starts one) in a service: the request
/// carries this hop's `traceparent` (and the hop, for the log span that
/// [`TraceLayer`] makes inside), its handler's calls, events and queries the trace,
/// and, when export is on, its span goes to the collector with the response's
/// status.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextLayer;

impl<S> Layer<S> for TraceContextLayer {
    type Service = ContinueTrace<S>;

    fn layer(&self, inner: S) -> ContinueTrace<S> {
        ContinueTrace { inner }
    }
}

/// The service of [`TraceContextLayer`].
#[derive(Debug, Clone)]
pub struct ContinueTrace<S> {
    inner: S,
}

impl<S, B> Service<Request> for ContinueTrace<S>
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = axum::http::Response<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let (hop, exported) = crate::trace::arrive(&mut req);
        req.extensions_mut().insert(hop.clone());
        let pending = self.inner.call(req);
        Box::pin(async move {
            let response = crate::trace::scope(hop, pending).await?;
            if let Some(span) = exported {
                crate::otel::finish_server(span, &response);
            }
            Ok(response)
        })
    }
}

/// The gateway's whole stack in one layer: a request id (the caller's, or a new
/// one) on the request and its response, the W3C trace context continued, a span
/// carrying both for its logs, and one log line with status and latency. One layer
/// costs one allocation per request where a layer per concern costs several each.
/// It has no time limit: the proxy's upstream calls have their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let request_id = match req.headers().get(REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                req.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let (hop, exported) = crate::trace::arrive(&mut req);
        let span = request_span(&req, Some(&hop));
        let pending = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let mut response = match crate::trace::scope(hop, pending).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                log_response(response.status(), start.elapsed());
                // A response that has one (a proxied service's) keeps it.
                response
                    .headers_mut()
                    .entry(REQUEST_ID)
                    .or_insert(request_id);
                if let Some(span) = exported {
                    crate::otel::finish_server(span, &response);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Gives a request without an `x-request-id` a new one, as [`new_request_id`] makes.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

/// A new request id: a random (version 4) UUID, from the generator of trace ids.
/// Request ids need to be unique, not secret or unpredictable (a caller's own
/// `x-request-id` is kept as it came), and this costs no system call.
fn new_request_id() -> HeaderValue {
    let bytes = crate::trace::random_u128().to_le_bytes();
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf);
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::Rejected(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route".into(),
    )
}

/// `GET /health`: the process is up.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`", body = Value))
)]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /openapi.json`: the OpenAPI document `api`, turned into JSON once, here,
/// rather than cloned and serialized again on every request (and compiled again in
/// every service).
pub fn openapi(api: &utoipa::openapi::OpenApi) -> MethodRouter {
    // Only a map with keys that are not strings fails; the answer then says so.
    let json = serde_json::to_vec(api)
        .map(Bytes::from)
        .map_err(|err| format!("the OpenAPI document: {err}"));
    get(move || {
        let json = json.clone();
        async move {
            match json {
                Ok(body) => ([(CONTENT_TYPE, APPLICATION_JSON)], body).into_response(),
                Err(err) => ApiError::Internal(anyhow::anyhow!(err)).into_response(),
            }
        }
    })
}

/// Serves `router` until SIGTERM or Ctrl-C, then lets in-flight requests finish.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    serve_until(listener, router, shutdown_signal()).await
}

/// The peer of a request's connection, in its extensions as axum's
/// `ConnectInfo<Peer>` whatever the listener (axum knows only its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// A source of connections for [`serve_until`]: axum 0.8's `serve::Listener`,
/// which axum 0.7 (the major of a project with the `axum07` feature) does not have.
#[cfg(feature = "axum07")]
pub trait Listener: Send + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    type Addr: Send;

    /// The next connection; errors are handled (and logged) inside.
    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send;

    fn local_addr(&self) -> std::io::Result<Self::Addr>;
}

#[cfg(feature = "axum07")]
impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            match TcpListener::accept(self).await {
                Ok(connection) => return connection,
                // One client gone during the handshake: take the next one at once.
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    ) => {}
                // Out of file descriptors and the like: wait for some to be freed
                // rather than spin (what axum::serve does).
                Err(err) => {
                    tracing::error!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

/// Serves `app` (a router, or any service of requests) until `signal` completes,
/// then lets in-flight requests finish. `listener` is a socket, or any other source
/// of connections. axum 0.7's `serve` takes only a `TcpListener`: this is its loop
/// (hyper's HTTP/1 and HTTP/2 on each connection) over any [`Listener`].
///
/// Each request carries the peer's address as axum's `ConnectInfo`.
#[cfg(feature = "axum07")]
pub async fn serve_until<L, S, F>(mut listener: L, app: S, signal: F) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    F: Future<Output = ()> + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(signal);
    loop {
        let (io, peer) = tokio::select! {
            connection = listener.accept() => connection,
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |request: Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(Peer(peer)));
                request
            },
        ));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
    // Closed before the wait: new clients are refused at once (and retry
    // elsewhere) instead of waiting in the backlog for a process that is leaving.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A source of connections for [`serve_until`].
#[cfg(not(feature = "axum07"))]
pub use axum::serve::Listener;

/// What makes each connection's service for `axum::serve`: `app` with the
/// connection's [`Peer`] (what axum's `into_make_service_with_connect_info` does
/// for its own listener only).
#[cfg(not(feature = "axum07"))]
#[derive(Clone)]
struct WithPeer<S>(S);

#[cfg(not(feature = "axum07"))]
impl<L, S> Service<axum::serve::IncomingStream<'_, L>> for WithPeer<S>
where
    L: Listener<Addr = SocketAddr>,
    S: Clone,
{
    type Response = axum::middleware::AddExtension<S, axum::extract::ConnectInfo<Peer>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        let peer = axum::extract::ConnectInfo(Peer(*stream.remote_addr()));
        std::future::ready(Ok(axum::Extension(peer).layer(self.0.clone())))
    }
}

/// Serves `app` (a router, or any service of requests) until `signal` completes,
/// then lets in-flight requests finish. `listener` is a socket, or any other source
/// of connections. Each request carries the peer's address as axum's `ConnectInfo`.
#[cfg(not(feature = "axum07"))]
pub async fn serve_until<L, S, F>(listener: L, app: S, signal: F) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, WithPeer(app))
        .with_graceful_shutdown(signal)
        .await
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}

/// `<binary> healthcheck`: exit 0 when `GET /health` on `port` answers 200. Used
/// by the container HEALTHCHECK, since the runtime image has no curl.
pub fn healthcheck(port: u16) -> ExitCode {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let probe = || -> std::io::Result<bool> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    if probe().unwrap_or(false) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Reads `key` from the environment, or `default` when it is unset.
pub fn env_or<T>(key: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .map_err(|e| anyhow::anyhow!("{key}={v:?} is not valid: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => Err(e).with_context(|| format!("reading {key}")),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::header::HeaderMap;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    /// Answers with the request headers it saw; `/slow` after a second.
    fn app() -> Router {
        let echo = |headers: HeaderMap| async move {
            let seen = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            Json(
                json!({ "request_id": seen(REQUEST_ID.as_str()), "traceparent": seen("traceparent") }),
            )
        };
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "late"
        };
        with_defaults(
            Router::new()
                .route("/echo", get(echo))
                .route("/slow", get(slow)),
            Duration::from_millis(100),
        )
    }

    async fn call(request: axum::http::request::Builder) -> (StatusCode, HeaderMap, Value) {
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_request_gets_an_id_and_a_trace_that_its_response_carries() {
        let (status, headers, seen) = call(Request::get("/echo")).await;
        assert_eq!(status, StatusCode::OK);
        let id = headers[REQUEST_ID].to_str().unwrap();
        let uuid = uuid::Uuid::try_parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(uuid.get_version(), Some(uuid::Version::Random), "{id}");
        assert_eq!(seen["request_id"], json!(id));
        let (_, again, _) = call(Request::get("/echo")).await;
        assert_ne!(again[REQUEST_ID], headers[REQUEST_ID], "a new id each time");
        let traceparent = seen["traceparent"].as_str().unwrap();
        assert!(
            crate::trace::TraceContext::parse(traceparent).is_some(),
            "{traceparent}"
        );
    }

    #[tokio::test]
    async fn the_callers_request_id_and_trace_are_kept() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let request = Request::get("/echo")
            .header(REQUEST_ID, "from-the-caller")
            .header("traceparent", caller);
        let (_, headers, seen) = call(request).await;
        assert_eq!(headers[REQUEST_ID], "from-the-caller");
        assert_eq!(seen["request_id"], json!("from-the-caller"));
        let hop = seen["traceparent"].as_str().unwrap();
        assert!(
            hop.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{hop}"
        );
        assert_ne!(hop, caller, "this hop has its own span id");
    }

    #[tokio::test]
    async fn a_request_over_its_time_gets_503_in_the_envelope() {
        let (status, headers, body) = call(Request::get("/slow")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key(REQUEST_ID));
        assert_eq!(body["success"], json!(false));
    }

    /// The JSON log lines written while `f` runs (on this thread).
    async fn logged<F: Future>(f: F) -> Vec<Value> {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        // With one subscriber alive in the process, tracing asks only the current
        // thread's whether a log call is wanted, the first time any thread makes
        // it, and keeps the answer: a test on another thread, with none, would
        // silence this one's lines. With two alive, each call asks both.
        let second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let guard = tracing::subscriber::set_default(subscriber);
        f.await;
        drop(guard);
        drop(second);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn each_request_is_logged_once_with_its_request_and_trace_ids() {
        let mut seen = None;
        let lines = logged(async { seen = Some(call(Request::get("/echo")).await) }).await;
        let (_, headers, body) = seen.unwrap();
        let trace = crate::trace::TraceContext::parse(body["traceparent"].as_str().unwrap())
            .unwrap()
            .trace_id_hex()
            .to_string();
        let [line] = &lines[..] else {
            panic!("one line per request: {lines:#?}")
        };
        assert_eq!(line["fields"]["message"], "finished processing request");
        assert_eq!(line["fields"]["status"], 200);
        assert_eq!(
            line["span"]["request_id"],
            headers[REQUEST_ID].to_str().unwrap()
        );
        assert_eq!(line["span"]["trace_id"], trace.as_str());

        let lines = logged(call(Request::get("/slow"))).await;
        let [line] = &lines[..] else {
            panic!("one line per request: {lines:#?}")
        };
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["fields"]["message"], "response failed");
        assert_eq!(line["fields"]["status"], 503);
    }

    #[tokio::test]
    async fn unknown_routes_are_404_in_the_envelope() {
        let (status, _, body) = call(Request::get("/nowhere")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["success"], json!(false));
    }

    #[tokio::test]
    async fn the_openapi_document_is_served_as_json_every_time() {
        let mut api = utoipa::openapi::OpenApi::new(
            utoipa::openapi::Info::new("a service", "1.0.0"),
            utoipa::openapi::Paths::new(),
        );
        api.info.description = Some("ümlauts \"quoted\"".into());
        let app = Router::new().route("/openapi.json", openapi(&api));
        for _ in 0..2 {
            let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let served: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(served, serde_json::to_value(&api).unwrap());
            assert_eq!(served["info"]["description"], json!("ümlauts \"quoted\""));
        }
    }
}
