//! OpenTelemetry export, switched on by the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable: every request a binary serves
//! becomes one span, sent in batches over OTLP/HTTP (protobuf), and so does every
//! call to another service, every event published or handled (where the project
//! has them) and every database query (`query_spans.rs`).
//! Spans of your own code (`#[tracing::instrument]`, `info_span!`) are exported too,
//! through tracing-opentelemetry, at the levels `RUST_LOG` shows: they nest under
//! the request or event being handled, and the calls, events and queries made in
//! them nest under them. A span made outside any request or event (at startup, in a
//! background task) starts a trace of its own; so does one in a task a handler
//! spawns with `tokio::spawn`, where `trace::spawn` keeps it in the handler's
//! trace. Log lines stay in the log: they are not copied into spans, so an error is
//! marked on your span by its `otel.status_code = "ERROR"` field, not by an
//! `error!` written in it.
//! The spans carry the same W3C trace ids as the logs and the `traceparent` headers,
//! so a trace found in a log is the trace in the collector. The other standard
//! variables apply (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, ...).
//!
//! The endpoint is plain `http://` (a collector or agent beside the service); any
//! other (`https://`, no scheme) is refused with an error in the log. Probes and scrapes (`/health`,
//! `/metrics`) are not exported.
//!
//! When the endpoint is unset nothing is built: [`start`] is one atomic load that
//! returns `None`, so an unobserved system pays nothing for this.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt as _, LevelFilter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::trace::TraceContext;

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// How long one export may take; shutting down waits a little longer for the last.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a collector's response that is read.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Keeps the exporter of this process; [`Exporter::shutdown`] sends what is left.
#[must_use = "call shutdown() on exit, or the last spans are lost"]
pub struct Exporter {
    provider: Option<SdkTracerProvider>,
}

/// Starts exporting spans as `service_name` (unless `OTEL_SERVICE_NAME` says
/// otherwise) when an OTLP endpoint is configured. A configuration the exporter
/// refuses is logged and the binary runs without export: telemetry never stops a
/// service from serving.
pub fn init(service_name: &str) -> Exporter {
    let off = Exporter { provider: None };
    let endpoints = endpoints();
    if endpoints.is_empty() || TRACER.get().is_some() {
        return off;
    }
    if let Some(other) = endpoints
        .iter()
        .find(|e| !e.trim().parse().is_ok_and(|uri| plain_http(&uri)))
    {
        tracing::error!(
            endpoint = %other,
            "OpenTelemetry export is off: this binary speaks plain http to the collector; point it at an http:// endpoint (a collector or agent beside it)"
        );
        return off;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("OpenTelemetry export is off: init must run inside the tokio runtime");
        return off;
    };
    let client = OnRuntime { runtime };
    let exporter = match SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            tracing::error!("OpenTelemetry export is off: {e}");
            return off;
        }
    };
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| service_name.to_string());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(name).build())
        .build();
    let _ = TRACER.set(provider.tracer(env!("CARGO_PKG_NAME")));
    tracing::info!("exporting spans over OTLP/HTTP");
    Exporter {
        provider: Some(provider),
    }
}

impl Exporter {
    /// Sends the spans still buffered and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The exporter's thread hands its requests to this runtime: block elsewhere.
        let done = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(EXPORT_TIMEOUT + Duration::from_secs(1))
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!("OpenTelemetry shutdown: {e}");
        }
    }
}

/// The OTLP endpoints the environment names (for traces, then for every signal).
fn endpoints() -> Vec<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .filter_map(|key| std::env::var(key).ok())
    .filter(|v| !v.trim().is_empty())
    .collect()
}

/// Whether the environment asks for spans to be exported, before [`init`] runs
/// (which can still refuse the endpoint).
pub fn configured() -> bool {
    !endpoints().is_empty()
}

/// Whether spans are exported by this process.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// One span being recorded; ends (and is queued for export) on [`Span::finish`] or drop.
pub struct Span {
    inner: opentelemetry_sdk::trace::Span,
    name: String,
}

/// Starts a span of `kind` named `name`, a child of the span in `parent` (see
/// [`remote_parent`] and [`hop_parent`]) or, in an empty context, the root of a new
/// trace; `None` when export is off.
pub fn start(
    kind: SpanKind,
    name: String,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Option<Span> {
    let tracer = TRACER.get()?;
    let builder = tracer
        .span_builder(name.clone())
        .with_kind(kind)
        .with_attributes(attributes);
    let inner = tracer.build_with_context(builder, parent);
    // After shutdown the SDK hands out spans without ids: carry on without one.
    inner
        .span_context()
        .is_valid()
        .then_some(Span { inner, name })
}

/// Records a span that already ended, from `started` to `ended`, a child of the
/// span in `parent` (a query that sqlx reports once it is done); nothing when export
/// is off.
pub fn record(
    kind: SpanKind,
    name: String,
    parent: &Context,
    attributes: Vec<KeyValue>,
    started: SystemTime,
    ended: SystemTime,
) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    let builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .with_start_time(started);
    tracer
        .build_with_context(builder, parent)
        .end_with_timestamp(ended);
}

/// The OpenTelemetry context of a caller's `traceparent` and `tracestate`: a
/// remote parent; an empty context (a new trace) without one.
pub fn remote_parent(
    parent: Option<&TraceContext>,
    state: Option<&crate::trace::TraceState>,
) -> Context {
    parent.map_or_else(Context::new, |p| parent_context(p, state, true))
}

/// The OpenTelemetry context of `hop`, a request or event this process handles:
/// the local parent of the spans made in it, which keep its `tracestate`.
pub fn hop_parent(hop: &crate::trace::Hop) -> Context {
    parent_context(&hop.ctx, hop.state.as_ref(), false)
}

fn parent_context(
    parent: &TraceContext,
    state: Option<&crate::trace::TraceState>,
    remote: bool,
) -> Context {
    let flags = if parent.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    // OpenTelemetry's parser refuses a list the standard allows when a key's system
    // id (after a tenant's `@`) has 14 characters: such a list is left out of the
    // spans, and the headers still carry it.
    let state = state
        .and_then(|s| s.as_str().parse::<TraceState>().ok())
        .unwrap_or_default();
    Context::new().with_remote_span_context(SpanContext::new(
        parent.trace_id.into(),
        parent.span_id.into(),
        flags,
        remote,
        state,
    ))
}

/// `sc` as the ids logs and `traceparent` headers carry.
fn trace_context(sc: &SpanContext) -> TraceContext {
    TraceContext {
        trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        sampled: sc.is_sampled(),
    }
}

/// OpenTelemetry's current context when it holds a span: the innermost span of
/// your own code this thread is in (tracing-opentelemetry makes it current when it
/// is entered), or the exported request or event being handled.
pub(crate) fn current_span() -> Option<Context> {
    let cx = Context::current();
    let valid = cx.span().span_context().is_valid();
    valid.then_some(cx)
}

/// The hop being handled as a parent, when it is an exported span: the parent of
/// the work done in it (queries) outside any span of yours.
#[cfg(feature = "database")]
pub(crate) fn exported_hop_parent() -> Option<Context> {
    crate::trace::with_current(|hop| hop.exported.then(|| hop_parent(hop))).flatten()
}

/// [`current_span`], or else the hop being handled (exported or not), or else an
/// empty context: the parent of a call's or an event's span.
fn current_parent() -> Context {
    current_span()
        .or_else(|| crate::trace::with_current(hop_parent))
        .unwrap_or_default()
}

impl Span {
    /// This span as a hop of the trace: the ids logs and `traceparent` headers carry.
    pub fn context(&self) -> TraceContext {
        trace_context(self.inner.span_context())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn rename(&mut self, name: String) {
        self.inner.update_name(name.clone());
        self.name = name;
    }

    pub fn set(&mut self, attribute: KeyValue) {
        self.inner.set_attribute(attribute);
    }

    /// Ends the span, marked as failed when `error` says why.
    pub fn finish(mut self, error: Option<String>) {
        if let Some(description) = error {
            self.inner.set_status(Status::error(description));
        }
        self.inner.end();
    }
}

/// The route template a request matched, left in its response by the metrics layer.
#[derive(Debug, Clone)]
pub struct Route(pub String);

/// The server span of one request (HTTP semantic conventions), a child of the
/// caller's `traceparent` (with its `tracestate`); `None` when export is off.
pub fn server_span(
    req: &axum::extract::Request,
    parent: Option<&TraceContext>,
    state: Option<&crate::trace::TraceState>,
) -> Option<Span> {
    if !enabled() {
        return None;
    }
    // Probes and scrapes come every few seconds and say nothing about a request.
    let path = req.uri().path();
    if path == "/metrics" || path == "/health" || path.starts_with("/health/") {
        return None;
    }
    let method = req.method().as_str().to_string();
    let attributes = vec![
        KeyValue::new("http.request.method", method.clone()),
        KeyValue::new("url.path", req.uri().path().to_string()),
    ];
    start(
        SpanKind::Server,
        method,
        &remote_parent(parent, state),
        attributes,
    )
}

/// Ends a request's span with its route and status; 5xx answers are errors.
pub fn finish_server<B>(mut span: Span, response: &axum::http::Response<B>) {
    let status = response.status();
    if let Some(Route(route)) = response.extensions().get::<Route>() {
        let name = format!("{} {route}", span.name());
        span.rename(name);
        span.set(KeyValue::new("http.route", route.clone()));
    }
    span.set(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    let error = status
        .is_server_error()
        .then(|| status.as_u16().to_string());
    span.finish(error);
}

/// The span of one call to another service (HTTP semantic conventions), a child of
/// the request or event being handled; `None` when export is off.
pub fn client_span(method: &str, url: &str, peer: &str) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let authority = url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.into_parts().authority);
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("url.full", without_credentials(url, authority.as_ref())),
        KeyValue::new("peer.service", peer.to_string()),
    ];
    if let Some(authority) = authority {
        attributes.push(KeyValue::new(
            "server.address",
            authority.host().to_string(),
        ));
        if let Some(port) = authority.port_u16() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    start(
        SpanKind::Client,
        method.to_string(),
        &current_parent(),
        attributes,
    )
}

/// `url` with the credentials of its `authority` (if any) replaced, as the HTTP
/// semantic conventions ask of `url.full`.
fn without_credentials(url: &str, authority: Option<&hyper::http::uri::Authority>) -> String {
    match authority.map(|a| a.as_str()) {
        Some(a) if a.contains('@') => {
            let host = &a[a.rfind('@').map_or(0, |at| at + 1)..];
            url.replacen(a, &format!("REDACTED:REDACTED@{host}"), 1)
        }
        _ => url.to_string(),
    }
}

/// Ends a call's span with the status the other service answered (if it did) and
/// why the call failed (if it did).
pub fn finish_client(mut span: Span, status: Option<u16>, error: Option<String>) {
    if let Some(status) = status {
        span.set(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    span.finish(error);
}

/// The span of publishing one event (messaging semantic conventions), a child of
/// the request or event being handled and the parent of its consumers' spans;
/// `None` when export is off.
pub fn producer_span(subject: &str, event_id: &str) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let attributes = vec![
        KeyValue::new("messaging.system", "nats"),
        KeyValue::new("messaging.operation.type", "send"),
        KeyValue::new("messaging.destination.name", subject.to_string()),
        KeyValue::new("messaging.message.id", event_id.to_string()),
    ];
    start(
        SpanKind::Producer,
        format!("{subject} publish"),
        &current_parent(),
        attributes,
    )
}

/// The span of handling one event (messaging semantic conventions), a child of the
/// publisher's hop (its `traceparent` and `tracestate` headers); `None` when export
/// is off.
pub fn consumer_span(
    subject: &str,
    event_id: &str,
    parent: Option<&TraceContext>,
    state: Option<&crate::trace::TraceState>,
) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let attributes = vec![
        KeyValue::new("messaging.system", "nats"),
        KeyValue::new("messaging.destination.name", subject.to_string()),
        KeyValue::new("messaging.message.id", event_id.to_string()),
    ];
    start(
        SpanKind::Consumer,
        format!("{subject} process"),
        &remote_parent(parent, state),
        attributes,
    )
}

/// The layer exporting the spans of your own code (`#[instrument]`, `info_span!`)
/// that `filter` (the log's `RUST_LOG`) lets through, while spans are exported.
/// The log spans of requests and events are left out: their spans are the
/// runtime's own (with the ids their logs and `traceparent` headers carry), and
/// `trace::scope` makes them current for tracing-opentelemetry to nest under.
pub fn layer<S>(filter: EnvFilter) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let yours = filter_fn(|meta| enabled() && meta.is_span() && !is_hop(meta))
        // No level of its own: without a hint the pair would have none either, and
        // every `debug!` and `trace!` the log hides would be asked about again.
        .with_max_level_hint(LevelFilter::TRACE);
    OpenTelemetryLayer::new(LateTracer)
        // Idle and busy times are two more attributes per span, kept up at every
        // poll; the span's own start and end say how long it took.
        .with_tracked_inactivity(false)
        // The thread a span began on says little in a work-stealing runtime.
        .with_threads(false)
        .with_filter(yours.and(filter))
}

/// A span of a request or an event being handled: the log span this crate opens
/// for it (`request` or `event`, with its `trace_id`). A span of yours with a
/// `trace_id` field is not one.
pub(crate) fn is_hop(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span()
        && matches!(meta.name(), "request" | "event")
        && meta.target().split("::").next() == module_path!().split("::").next()
        && meta.fields().field("trace_id").is_some()
}

/// The tracer of [`init`], for a layer installed with the log before [`init`] runs.
/// Until then (or when export is off) the layer's filter lets no span reach it.
#[derive(Debug, Clone, Copy)]
struct LateTracer;

impl opentelemetry::trace::Tracer for LateTracer {
    type Span = opentelemetry_sdk::trace::Span;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> Self::Span {
        // The filter lets spans through only once `TRACER` is set, so this tracer
        // that samples nothing is never reached: the trait wants a span either way.
        static OFF: OnceLock<SdkTracer> = OnceLock::new();
        TRACER
            .get()
            .unwrap_or_else(|| {
                OFF.get_or_init(|| {
                    SdkTracerProvider::builder()
                        .with_sampler(Sampler::AlwaysOff)
                        .build()
                        .tracer("off")
                })
            })
            .build_with_context(builder, parent_cx)
    }
}

/// The SDK exports from a thread of its own, where no tokio runtime runs; the
/// requests are handed to the binary's runtime.
#[derive(Debug)]
struct OnRuntime {
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let uri = request.uri().clone();
        let sent = self
            .runtime
            .spawn(async move {
                match tokio::time::timeout(EXPORT_TIMEOUT, send(request)).await {
                    Ok(sent) => sent,
                    Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}").into()),
                }
            })
            .await?;
        // The SDK's own diagnostics are compiled out: say here when spans are lost.
        match &sent {
            Ok(response) if !response.status().is_success() => {
                tracing::warn!(%uri, status = %response.status(), "the OpenTelemetry collector refused spans");
            }
            Err(e) => tracing::warn!(%uri, "cannot send spans to the OpenTelemetry collector: {e}"),
            Ok(_) => {}
        }
        sent
    }
}

/// Whether `uri` is one this binary can send spans to: `http://` (no TLS, and a
/// scheme is needed to tell a host from a path).
fn plain_http(uri: &hyper::Uri) -> bool {
    uri.scheme_str() == Some("http") && uri.authority().is_some()
}

/// Sends one batch over a connection of its own: a batch leaves every few seconds
/// at most, so a kept connection would mostly sit idle (and could be closed by the
/// collector under it).
async fn send(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let (mut parts, body) = request.into_parts();
    let Some(authority) = parts
        .uri
        .authority()
        .filter(|_| plain_http(&parts.uri))
        .cloned()
    else {
        return Err(format!("the OTLP endpoint {} is no http:// URL", parts.uri).into());
    };
    // An IPv6 literal comes bracketed in a URI, bare in a socket address.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    // HTTP/1.1 sends the path in the request line and the authority as Host.
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()?;
    // Host names the server only: credentials in the endpoint's URL stay out of it.
    let host_header = match authority.port() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_string(),
    };
    parts
        .headers
        .entry(hyper::header::HOST)
        .or_insert(host_header.parse()?);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    // A collector answers with a short status; a huge body is not one.
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await?
        .to_bytes();
    drop(sender);
    // The connection ends once the request is gone; its error, if any, was the
    // response's.
    let _ = connection.await;
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collector on loopback that answers 200 and reports what it was sent.
    async fn collector() -> (
        u16,
        tokio::sync::mpsc::UnboundedReceiver<(String, String, Bytes)>,
    ) {
        use axum::http::{HeaderMap, Uri};
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let host = headers[hyper::header::HOST].to_str().unwrap().to_string();
            let _ = tx.send((uri.to_string(), host, body));
            async { "ok" }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (port, rx)
    }

    #[tokio::test]
    async fn a_batch_is_posted_in_origin_form_without_credentials_in_host() {
        let (port, mut seen) = collector().await;
        let request = Request::post(format!("http://user:secret@127.0.0.1:{port}/v1/traces"))
            .body(Bytes::from_static(b"spans"))
            .unwrap();
        let response = send(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(&response.body()[..], b"ok");
        let (uri, host, body) = seen.recv().await.unwrap();
        assert_eq!(uri, "/v1/traces");
        assert_eq!(host, format!("127.0.0.1:{port}"));
        assert_eq!(&body[..], b"spans");
    }

    #[test]
    fn a_hop_is_a_local_parent_that_keeps_its_tracestate() {
        let hop = |state: &str| crate::trace::Hop {
            ctx: TraceContext {
                trace_id: 7,
                span_id: 9,
                sampled: true,
            },
            state: crate::trace::TraceState::parse([state]),
            exported: true,
        };
        let parent = |hop: &crate::trace::Hop| hop_parent(hop).span().span_context().clone();
        let kept = parent(&hop("vendor=abc,t@sys=1"));
        assert!(!kept.is_remote());
        assert!(kept.is_sampled());
        assert_eq!(kept.trace_state().header(), "vendor=abc,t@sys=1");
        // A system id of 14 characters: valid, refused by OpenTelemetry's parser.
        let refused = hop("t@abcdefghijklmn=1");
        assert!(refused.state.is_some());
        assert_eq!(parent(&refused).trace_state().header(), "");
        // A caller's parent is remote.
        let caller = remote_parent(Some(&hop("").ctx), None);
        assert!(caller.span().span_context().is_remote());
    }

    #[test]
    fn the_span_layer_asks_for_no_more_than_the_log_shows() {
        // Were the hint missing, every `debug!` the log hides would be asked about.
        let layer = layer::<tracing_subscriber::Registry>(EnvFilter::new("info"));
        assert_eq!(layer.max_level_hint(), Some(LevelFilter::INFO));
    }

    #[test]
    fn a_hop_is_this_crate_s_request_or_event_span_not_a_span_named_like_one() {
        macro_rules! span {
            ($name:literal, $target:expr) => {
                tracing::callsite::Callsite::metadata(tracing::callsite!(
                    name: $name,
                    kind: tracing::metadata::Kind::SPAN,
                    target: $target,
                    level: tracing::Level::INFO,
                    fields: trace_id
                ))
            };
        }
        assert!(is_hop(span!("request", module_path!())));
        assert!(is_hop(span!("event", module_path!())));
        // Yours, with a `trace_id` of its own: exported like any span of yours.
        assert!(!is_hop(span!("request", "blog_service::handlers")));
        assert!(!is_hop(span!("create_post", module_path!())));
    }

    #[test]
    fn only_http_endpoints_are_accepted() {
        let accepted = |e: &str| e.parse().is_ok_and(|uri| plain_http(&uri));
        assert!(accepted("http://collector:4318"));
        assert!(accepted("http://[::1]:4318/v1/traces"));
        for refused in [
            "https://collector:4318",
            "HTTPS://collector:4318",
            "collector:4318",
            "/v1/traces",
        ] {
            assert!(!accepted(refused), "{refused}");
        }
    }

    #[tokio::test]
    async fn only_http_endpoints_are_sent_to() {
        let (port, _seen) = collector().await;
        for endpoint in [
            format!("HTTPS://127.0.0.1:{port}/v1/traces"),
            "/v1/traces".into(),
        ] {
            let request = Request::post(endpoint.as_str()).body(Bytes::new()).unwrap();
            let e = send(request).await.unwrap_err().to_string();
            assert!(e.contains("no http:// URL"), "{endpoint}: {e}");
        }
    }

    #[test]
    fn a_call_s_url_is_exported_without_credentials() {
        let full = |url: &str| {
            let authority = url
                .parse::<hyper::Uri>()
                .ok()
                .and_then(|u| u.into_parts().authority);
            without_credentials(url, authority.as_ref())
        };
        assert_eq!(
            full("http://svc:s3cret@user:8080/api/v1/users/1"),
            "http://REDACTED:REDACTED@user:8080/api/v1/users/1"
        );
        assert_eq!(
            full("http://user:8080/api/v1/users/1"),
            "http://user:8080/api/v1/users/1"
        );
    }

    #[test]
    fn nothing_is_started_without_an_endpoint() {
        assert!(!enabled());
        assert!(start(SpanKind::Server, "GET".into(), &Context::new(), Vec::new()).is_none());
    }
}
