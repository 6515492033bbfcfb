//! The HTTP stack every binary shares: request ids, W3C trace context, request
//! logging and metrics, a request timeout and a body limit answered in the envelope,
//! fallbacks for unknown routes, graceful shutdown on SIGTERM or Ctrl-C, and the
//! container health check.
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
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::trace::TraceContext;
use crate::ApiError;

// A `HeaderName`, not a `&str`: a string is parsed (and a custom name allocated)
// on every lookup.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Largest request body a JSON extractor accepts (413 beyond it).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Adds the shared layers and fallbacks to a service's router.
pub fn with_defaults(router: Router, request_timeout: Duration) -> Router {
    // Around the router, not around each route: `Router::layer` wraps every route in
    // one more boxed service, cloned and boxed again on every request.
    let stack = tower::ServiceBuilder::new()
        .layer(ObserveLayer {
            request_timeout: Some(request_timeout),
        })
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

/// What every request gets on its way in and out, in one layer: a request id
/// (the caller's, or a new one) on the request and its answer, the W3C trace
/// context continued, a span carrying both for its logs, a time limit answered in
/// the envelope, and one log line with status and latency. One layer costs one
/// allocation per request where a layer per concern costs several each.
/// Without a `request_timeout`, the inner service answers in time itself (the
/// gateway's proxy, whose upstream calls have their own limit).
#[derive(Debug, Clone, Copy)]
pub struct ObserveLayer {
    pub request_timeout: Option<Duration>,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            limit: self.request_timeout,
        }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    limit: Option<Duration>,
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
        let span = request_span(&req, &request_id, &hop.ctx);
        #[cfg(feature = "database")]
        crate::query_spans::attach(&span, &hop);
        let pending = span.in_scope(|| self.inner.call(req));
        let limit = self.limit;
        Box::pin(
            async move {
                // Handlers' outgoing calls and events carry the trace on from here.
                let pending = async move {
                    match limit {
                        Some(limit) => tokio::time::timeout(limit, pending).await,
                        None => Ok(pending.await),
                    }
                };
                let mut response = match crate::trace::scope(hop, pending).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => ApiError::Rejected(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the request took too long".into(),
                    )
                    .into_response(),
                };
                let status = response.status().as_u16();
                let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
                if response.status().is_server_error() {
                    tracing::error!(status, latency_ms, "response failed");
                } else {
                    tracing::info!(status, latency_ms, "finished processing request");
                }
                // An answer that has one (a proxied service's) keeps it.
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

/// A new request id: a random UUID.
fn new_request_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The span every request is logged in, carrying its request and trace ids.
fn request_span(req: &Request, request_id: &HeaderValue, ctx: &TraceContext) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id.to_str().unwrap_or("-"),
        trace_id = %ctx.trace_id_hex(),
    )
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
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(seen["request_id"], json!(id));
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

    #[tokio::test]
    async fn unknown_routes_are_404_in_the_envelope() {
        let (status, _, body) = call(Request::get("/nowhere")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["success"], json!(false));
    }
}
