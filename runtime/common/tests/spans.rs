//! The spans of one request's work, exported to a collector on loopback: the
//! handler's own span (`#[instrument]`'s, through tracing-opentelemetry) is a child
//! of the request's span; its query (from sqlx's report, on SQLite's own thread,
//! its literal kept out) and its call to another service are children of the
//! handler's span, and the call's span is the parent the other service is told of.
//! Queries outside any exported span (the migrations) get none. One test per
//! process: export is set up once, from the environment.

#![cfg(all(feature = "sqlite", feature = "clients"))]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request};
use msgen_runtime_common::client::ServiceClient;
use msgen_runtime_common::trace::{self, TraceContext};
use msgen_runtime_common::{db, otel, server, telemetry};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use sqlx::migrate::Migrator;
use tower::ServiceExt as _;

/// Serves `app` on a loopback port of its own.
async fn serve(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// One exported span: ids in hex, string and integer attributes as text.
#[derive(Debug)]
struct Span {
    name: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
    /// The log lines written in it that became span events.
    events: usize,
    trace_state: String,
    /// Whether its parent is another process's span (OTLP's span flags).
    parent_remote: Option<bool>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spans(exports: &[Bytes]) -> Vec<Span> {
    let mut out = Vec::new();
    for body in exports {
        let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
        for span in request
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
        {
            let attributes = span
                .attributes
                .into_iter()
                .filter_map(|kv| {
                    let value = match kv.value?.value? {
                        Value::StringValue(s) => s,
                        Value::IntValue(i) => i.to_string(),
                        _ => return None,
                    };
                    Some((kv.key, value))
                })
                .collect();
            out.push(Span {
                name: span.name,
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                attributes,
                events: span.events.len(),
                trace_state: span.trace_state,
                parent_remote: (span.flags & 0x100 != 0).then_some(span.flags & 0x200 != 0),
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_s_own_spans_queries_and_calls_nest_under_its_span() {
    // The collector keeps every export's body.
    let exports = Arc::new(Mutex::new(Vec::<Bytes>::new()));
    let sink = Arc::clone(&exports);
    let collector = serve(axum::Router::new().fallback(move |body: Bytes| {
        sink.lock().unwrap().push(body);
        async { "" }
    }))
    .await;
    // The other service notes the path, `traceparent` and `tracestate` of each call.
    let seen = Arc::new(Mutex::new(BTreeMap::<String, (String, String)>::new()));
    let note = Arc::clone(&seen);
    let other = serve(axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap| {
            let header = |name: &str| {
                headers
                    .get(name)
                    .map_or("", |v| v.to_str().unwrap())
                    .to_string()
            };
            let call = (header("traceparent"), header("tracestate"));
            note.lock().unwrap().insert(uri.path().to_string(), call);
            async { axum::Json(serde_json::json!({"success": true, "data": {"id": 1}})) }
        },
    ))
    .await;

    // Set before the exporter or any other thread reads the environment.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{collector}"),
    );
    // The log shows INFO, so the handler's own span is exported (and the query, on
    // SQLite's own thread, nests under it); the environment's RUST_LOG is not read.
    std::env::remove_var("RUST_LOG");
    telemetry::init("info");
    let exporter = otel::init("spans-test");
    assert!(otel::enabled());

    let dir = tempfile::tempdir().unwrap();
    let migrations = Migrator::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrations"))
        .await
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("spans.db").display());
    let pool = db::connect_sqlite(&url, 1, migrations).await.unwrap();
    // Outside any request: no span.
    sqlx::query("SELECT 1 AS outside_a_request")
        .execute(&pool)
        .await
        .unwrap();

    let client = ServiceClient::new(
        "user",
        &format!("http://127.0.0.1:{other}"),
        Duration::from_secs(5),
    )
    .unwrap();
    // One request through the server's layers, as a service handles it. Its handler
    // makes a query itself (sqlx runs it on SQLite's own thread), spawns a task that
    // opens a span and makes a call, then has a log span of its own, as
    // `#[instrument]` gives one.
    let handler = move || async move {
        sqlx::query("SELECT 1 AS in_the_request")
            .execute(&pool)
            .await
            .unwrap();
        let task_client = client.clone();
        trace::spawn(async move {
            tracing::info_span!("background_work").in_scope(|| ());
            let _: Option<serde_json::Value> = task_client.get("/api/v1/users/2").await.unwrap();
        })
        .await
        .unwrap();
        tracing::Instrument::instrument(
            async move {
                sqlx::query("INSERT INTO authors (id, name) VALUES ($1, 'a secret name')")
                    .bind(7_i64)
                    .execute(&pool)
                    .await
                    .unwrap();
                let user: Option<serde_json::Value> = client.get("/api/v1/users/1").await.unwrap();
                assert!(user.is_some());
                tracing::info!(author.id = 7, "author created");
                trace::current().unwrap().header()
            },
            tracing::info_span!("create_author", author.id = 7),
        )
        .await
    };
    let app = server::with_defaults(
        axum::Router::new().route("/authors", axum::routing::post(handler)),
        Duration::from_secs(10),
    );
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .oneshot(
            Request::post("/authors")
                .header("traceparent", caller)
                .header("tracestate", "vendor=abc,other=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let request = TraceContext::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    exporter.shutdown().await;

    let spans = spans(&exports.lock().unwrap());
    let request_span = format!("{:016x}", request.span_id);
    let server = spans
        .iter()
        .find(|s| s.span_id == request_span)
        .unwrap_or_else(|| panic!("the request's span is exported: {spans:#?}"));
    assert_eq!(server.parent, "00f067aa0ba902b7");
    // The handler's own span, with its fields, under the request.
    let handler = spans
        .iter()
        .find(|s| s.name == "create_author")
        .unwrap_or_else(|| panic!("the handler's span is exported: {spans:#?}"));
    assert_eq!(handler.parent, request_span);
    assert_eq!(handler.attributes["author.id"], "7");
    // Its log lines stay in the log: they are not copied into the span.
    assert_eq!(handler.events, 0, "{handler:#?}");
    // The request's log span is not exported a second time.
    assert!(
        spans.iter().all(|s| s.name != "request"),
        "the request's log span is not exported: {spans:#?}"
    );
    // The query: named by operation and table, under the handler's span, its literal out.
    let query = spans
        .iter()
        .find(|s| s.name == "INSERT authors")
        .unwrap_or_else(|| panic!("the query's span is exported: {spans:#?}"));
    assert_eq!(query.parent, handler.span_id);
    assert_eq!(query.attributes["db.system.name"], "sqlite");
    assert_eq!(query.attributes["db.collection.name"], "authors");
    assert_eq!(
        query.attributes["db.query.text"],
        "INSERT INTO authors (id, name) VALUES ($1, ?)"
    );
    assert!(
        spans.iter().all(|s| !s
            .attributes
            .values()
            .any(|v| v.contains("outside_a_request"))),
        "a query outside a request has no span: {spans:#?}"
    );
    // Nor do the migrations.
    assert!(
        spans
            .iter()
            .all(|s| !s.attributes.values().any(|v| v.contains("CREATE TABLE"))),
        "{spans:#?}"
    );
    // The handler's own query, noted on the request's log span for SQLite's thread.
    let own_query = spans
        .iter()
        .find(|s| {
            s.attributes.get("db.query.text").map(String::as_str)
                == Some("SELECT ? AS in_the_request")
        })
        .unwrap_or_else(|| panic!("the handler's query is exported: {spans:#?}"));
    assert_eq!(own_query.parent, request_span);
    // The calls: spans of their own, each the other service's parent.
    let call_to = |path: &str| {
        let url = format!("http://127.0.0.1:{other}{path}");
        let call = spans
            .iter()
            .find(|s| s.name == "GET" && s.attributes["url.full"] == url)
            .unwrap_or_else(|| panic!("the call to {path} is exported: {spans:#?}"));
        let (traceparent, tracestate) = seen.lock().unwrap()[path].clone();
        let called = TraceContext::parse(&traceparent).expect("the call carries a traceparent");
        assert_eq!(called.trace_id, request.trace_id);
        assert_eq!(format!("{:016x}", called.span_id), call.span_id);
        // The caller's `tracestate` goes on with the trace.
        assert_eq!(tracestate, "vendor=abc,other=1", "{path}");
        call
    };
    let spawned_call = call_to("/api/v1/users/2");
    let call = call_to("/api/v1/users/1");
    assert_eq!(call.parent, handler.span_id);
    assert_eq!(call.attributes["peer.service"], "user");
    assert_eq!(call.attributes["http.response.status_code"], "200");

    // A task the handler spawned stays in the request's trace.
    let background = spans
        .iter()
        .find(|s| s.name == "background_work")
        .unwrap_or_else(|| panic!("the spawned task's span is exported: {spans:#?}"));
    assert_eq!(background.parent, request_span);
    assert_eq!(spawned_call.parent, request_span);

    // Only the request's span has its parent in another process, and every span of
    // the request keeps the caller's `tracestate`.
    for (span, remote) in [
        (server, true),
        (handler, false),
        (query, false),
        (own_query, false),
        (call, false),
        (background, false),
        (spawned_call, false),
    ] {
        assert_eq!(span.parent_remote, Some(remote), "{span:#?}");
        assert_eq!(span.trace_state, "vendor=abc,other=1", "{span:#?}");
    }
}
