//! What the shared HTTP stack costs a service per request, in process: a trivial
//! handler called through `server::with_defaults` (tower-http's request-id and
//! trace layers, tower's timeout, the W3C trace context), through the gateway's
//! single `ObserveLayer`, and bare. Prints microseconds per request.
//!
//! `cargo run --release -p msgen-runtime-common --example stack [REQUESTS]`

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use msgen_runtime_common::server;
use tower::{Layer as _, ServiceExt as _};

fn router() -> Router {
    Router::new().route("/items/{id}", get(|| async { "ok" }))
}

/// Mean microseconds per request of `app` over `n` requests (after a warm-up).
async fn per_request<S>(mut app: S, n: u32) -> f64
where
    S: tower::Service<
        Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
    >,
{
    let request = || {
        Request::get("/items/7")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..n / 10 {
        let response = app.ready().await.unwrap().call(request()).await.unwrap();
        assert!(response.status().is_success());
    }
    let start = Instant::now();
    for _ in 0..n {
        let response = app.ready().await.unwrap().call(request()).await.unwrap();
        assert!(response.status().is_success());
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = std::env::args()
        .nth(1)
        .map_or(200_000, |n| n.parse().expect("REQUESTS is a number"));
    // Each request's log line is formatted as in production (JSON), and thrown away.
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .init();
    let bare = per_request(router(), n).await;
    let services = per_request(server::with_defaults(router(), Duration::from_secs(10)), n).await;
    let observe = per_request(server::ObserveLayer.layer(server::routed(router())), n).await;
    println!("{n} requests, in process, one thread:");
    println!("  bare router                      {bare:6.2} µs/request");
    println!("  services' stack (with_defaults)  {services:6.2} µs/request");
    println!("  gateway's ObserveLayer + routed  {observe:6.2} µs/request");
}
