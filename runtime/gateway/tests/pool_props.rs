//! Property tests ("fuzzing", bounded by a case count) of the gateway's upstream
//! client, through its public API only:
//!
//! - request bodies of random sizes, frame splits and framings (known length,
//!   chunked with trailers) through the pool to hyper's own HTTP/1.1 server, which
//!   must receive exactly what was sent, on connections the pool reuses;
//! - conversations: a body fed a part at a time, each part sent only once the
//!   upstream (hyper's server answering as it reads) has passed the one before
//!   back, with a known length or chunked; then the connection serves again;
//! - bodies that disagree with their `Content-Length`, which must be refused
//!   without desynchronising the upstream (the next request on the pool is intact);
//! - well-formed responses of every framing, written to the pool in random
//!   fragments, which must come back exactly (status, body, trailers);
//! - malformed responses (conflicting lengths, oversized heads, bad chunk sizes,
//!   truncation, random bytes), which must be errors, never a panic or a silently
//!   wrong body.
//!
//! `PROPTEST_CASES` sets the number of cases (64 by default here).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use msgen_runtime_gateway::pool::{Error, Pool};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A request body of given frames, claiming `exact` as its length (true or not).
struct Frames {
    frames: VecDeque<Frame<Bytes>>,
    exact: Option<u64>,
}

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

fn body(chunks: &[Vec<u8>], exact: Option<u64>, trailers: Option<HeaderMap>) -> Body {
    let mut frames: VecDeque<Frame<Bytes>> = chunks
        .iter()
        .map(|c| Frame::data(Bytes::from(c.clone())))
        .collect();
    if let Some(t) = trailers {
        frames.push_back(Frame::trailers(t));
    }
    Body::new(Frames { frames, exact })
}

/// hyper's HTTP/1.1 server, answering each request with its body and, in
/// `x-trailers`, the trailer fields it came with (`name=value;...`).
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let collected = req.into_body().collect().await;
                        let Ok(collected) = collected else {
                            return Ok::<_, Infallible>(
                                Response::builder()
                                    .status(StatusCode::BAD_REQUEST)
                                    .body(Body::empty())
                                    .unwrap(),
                            );
                        };
                        let trailers = collected
                            .trailers()
                            .map(|t| {
                                t.iter()
                                    .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                                    .collect::<Vec<_>>()
                                    .join(";")
                            })
                            .unwrap_or_default();
                        Ok(Response::builder()
                            .header("x-trailers", trailers)
                            .body(Body::from(collected.to_bytes()))
                            .unwrap())
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    port
}

/// hyper's HTTP/1.1 server passing each request's body back as the response's, as
/// it reads it. Returns its port and a count of its connections.
async fn streaming_echo_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| {
                    std::future::ready(Ok::<_, Infallible>(Response::new(req.into_body())))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (port, accepted)
}

/// A request body the test feeds part by part; it ends when the feed is dropped.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl hyper::body::Body for Fed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|part| part.map(|part| Ok(Frame::data(part))))
    }
}

/// `f`, or a failure naming `what` after 10 s: a desynchronised connection shows
/// as an upstream waiting for bytes that never come.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"))
}

fn pool(port: u16) -> Pool {
    Pool::new(
        "127.0.0.1",
        port,
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn post(body: Body) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/echo")
        .body(body)
        .unwrap()
}

async fn read(response: Response<Body>) -> Result<(Bytes, Option<HeaderMap>), String> {
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

fn chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..64),
            1 => prop::collection::vec(any::<u8>(), 0..9000),
        ],
        0..6,
    )
}

/// Trailer fields, a name often repeated (each of its values must arrive).
fn trailer_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof!["x-[ab]", "x-[a-z]{1,8}"];
    prop::collection::vec((name, "[a-zA-Z0-9 ]{0,16}"), 0..4)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_bodies_reach_the_upstream_exactly(
        chunks in chunks(),
        known in any::<bool>(),
        trailers in trailer_fields(),
    ) {
        let sent: Vec<u8> = chunks.concat();
        let length = sent.len() as u64;
        let mut fields = HeaderMap::new();
        for (n, v) in &trailers {
            fields.append(
                axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v.trim()).unwrap(),
            );
        }
        runtime().block_on(async {
            let pool = pool(echo_server().await);
            for _ in 0..2 {
                let exact = known.then_some(length);
                let with = (!known && !fields.is_empty()).then(|| fields.clone());
                let response = pool.send(post(body(&chunks, exact, with))).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let echoed = response.headers()["x-trailers"].to_str().unwrap().to_string();
                let (got, _) = read(response).await.unwrap();
                assert_eq!(got.as_ref(), sent.as_slice());
                // Trailers go with a chunked body (an empty one too).
                if !known && !fields.is_empty() {
                    let expected: Vec<String> = fields
                        .iter()
                        .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                        .collect();
                    assert_eq!(echoed, expected.join(";"));
                }
            }
        });
    }

    #[test]
    fn a_conversation_streams_both_ways(
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..9000), 1..6),
        known in any::<bool>(),
    ) {
        let length: usize = parts.iter().map(Vec::len).sum();
        runtime().block_on(async {
            let (port, accepted) = streaming_echo_server().await;
            let pool = pool(port);
            let (feed, fed) = tokio::sync::mpsc::unbounded_channel();
            let mut request = post(Body::new(Fed(fed)));
            if known {
                request.headers_mut().insert("content-length", length.into());
            }
            feed.send(Bytes::from(parts[0].clone())).unwrap();
            let response = within("the response's head", pool.send(request)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    feed.send(Bytes::from(part.clone())).unwrap();
                }
                let mut echoed = Vec::new();
                while echoed.len() < part.len() {
                    let frame = within("the part passed back", body.frame()).await;
                    let data = frame.expect("the body ended early").unwrap().into_data();
                    echoed.extend_from_slice(&data.unwrap_or_default());
                }
                assert_eq!(&echoed, part);
            }
            drop(feed);
            assert!(within("the end", body.frame()).await.is_none());
            // Both the request and the response were whole: the connection serves
            // the next request.
            let next = pool.send(post(Body::from("next")));
            let response = within("the next request", next).await.unwrap();
            assert_eq!(read(response).await.unwrap().0.as_ref(), b"next");
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn a_body_that_disagrees_with_its_content_length_is_refused_without_desync(
        chunks in chunks(),
        delta in prop_oneof![Just(-1i64), Just(1), 2i64..5000, -5000i64..-2],
        in_header in any::<bool>(),
    ) {
        let actual = chunks.concat().len() as i64;
        // A claim below zero cannot be sent: it is that far above instead (drawn,
        // not rejected, so any case count runs).
        let declared = if actual + delta >= 0 { actual + delta } else { actual - delta };
        runtime().block_on(async {
            let pool = pool(echo_server().await);
            let request = if in_header {
                // A layer that rewrote the body and kept the client's header.
                let mut r = post(body(&chunks, None, None));
                r.headers_mut().insert("content-length", declared.into());
                r
            } else {
                // A body whose own claim is wrong.
                post(body(&chunks, Some(declared as u64), None))
            };
            match within("the disagreeing request", pool.send(request)).await {
                Err(Error::Length(_)) => {}
                // A body that has ended before its first frame is sent as no body,
                // whatever it claimed: what the upstream reads is still one whole
                // request, the one the client's frames make.
                Ok(response) if response.status() == StatusCode::OK => {
                    assert_eq!(actual, 0, "{declared} declared, {actual} sent");
                    assert!(read(response).await.unwrap().0.is_empty());
                }
                // A head already refused by the upstream is its answer.
                Ok(response) => assert!(
                    response.status().is_client_error(),
                    "{declared} declared, {actual} sent: {}",
                    response.status()
                ),
                Err(other) => panic!("{declared} declared, {actual} sent: {other}"),
            }
            // The upstream, on this pool's connections, reads the next request whole.
            let next = pool.send(post(body(&[b"next".to_vec()], Some(4), None)));
            let response = within("the next request", next).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(read(response).await.unwrap().0.as_ref(), b"next");
        });
    }
}

/// How a raw response frames its body.
#[derive(Debug, Clone)]
enum Framing {
    Length,
    /// Chunk sizes to cut the body into (cycled), extensions on, trailers.
    Chunked(Vec<usize>, bool, Vec<(String, String)>),
    UntilClose,
}

fn raw_response(status: u16, body: &[u8], framing: &Framing) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} Whatever\r\nx-test: 1\r\n").into_bytes();
    match framing {
        Framing::Length => {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
        Framing::Chunked(sizes, extensions, trailers) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            let mut rest = body;
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].clamp(1, rest.len());
                i += 1;
                let ext = if *extensions { ";name=\"v\"" } else { "" };
                out.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
                out.extend_from_slice(&rest[..n]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            out.extend_from_slice(b"0\r\n");
            for (n, v) in trailers {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        Framing::UntilClose => {
            out.extend_from_slice(b"connection: close\r\n\r\n");
            out.extend_from_slice(body);
        }
    }
    out
}

/// An upstream that reads each request's head (these requests have no body) and
/// writes `raw` in pieces cut at `cuts`, flushing between them; it closes the
/// connection after each response when `close` is set.
async fn raw_upstream(raw: Vec<u8>, cuts: Vec<usize>, close: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let raw = raw.clone();
            let cuts = cuts.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    seen.drain(..end);
                    let mut at = 0;
                    for cut in cuts.iter().map(|c| c % (raw.len() + 1)) {
                        if cut > at {
                            if stream.write_all(&raw[at..cut]).await.is_err() {
                                return;
                            }
                            let _ = stream.flush().await;
                            tokio::task::yield_now().await;
                            at = cut;
                        }
                    }
                    if stream.write_all(&raw[at..]).await.is_err() {
                        return;
                    }
                    if close {
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    port
}

fn get() -> Request<Body> {
    Request::builder().uri("/").body(Body::empty()).unwrap()
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Length),
        (
            prop::collection::vec(1usize..700, 1..4),
            any::<bool>(),
            trailer_fields()
        )
            .prop_map(|(s, e, t)| Framing::Chunked(s, e, t)),
        Just(Framing::UntilClose),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn well_formed_responses_come_back_exactly(
        status in prop::sample::select(vec![200u16, 201, 400, 404, 500, 503]),
        body in prop::collection::vec(any::<u8>(), 0..5000),
        framing in framing(),
        mut cuts in prop::collection::vec(0usize..6000, 0..6),
    ) {
        cuts.sort_unstable();
        let raw = raw_response(status, &body, &framing);
        let close = matches!(framing, Framing::UntilClose);
        runtime().block_on(async {
            let pool = pool(raw_upstream(raw, cuts, close).await);
            for _ in 0..2 {
                let response = pool.send(get()).await.unwrap();
                assert_eq!(response.status().as_u16(), status);
                assert_eq!(response.headers()["x-test"], "1");
                let (got, trailers) = read(response).await.unwrap();
                assert_eq!(got.as_ref(), body.as_slice());
                if let Framing::Chunked(_, _, fields) = &framing {
                    let mut got: Vec<(String, String)> = trailers
                        .iter()
                        .flatten()
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                        .collect();
                    let mut expected: Vec<(String, String)> = fields
                        .iter()
                        .map(|(n, v)| (n.clone(), v.trim().to_string()))
                        .collect();
                    // Only the order of a name's own values means anything (RFC 9110,
                    // 5.3); a field map keeps those, grouped by name.
                    got.sort_by(|a, b| a.0.cmp(&b.0));
                    expected.sort_by(|a, b| a.0.cmp(&b.0));
                    assert_eq!(got, expected);
                }
            }
        });
    }

    #[test]
    fn malformed_responses_are_errors_never_a_wrong_body(
        body in prop::collection::vec(any::<u8>(), 1..3000),
        fault in 0usize..7,
        mut cuts in prop::collection::vec(0usize..4000, 0..4),
    ) {
        cuts.sort_unstable();
        let length = body.len();
        let mut raw = match fault {
            // Two lengths.
            0 => format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\ncontent-length: {}\r\n\r\n", length + 1).into_bytes(),
            // A head larger than the pool reads.
            1 => format!("HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: {length}\r\n\r\n", "a".repeat(70 * 1024)).into_bytes(),
            // A chunk size that is not hexadecimal.
            2 => format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{length:x}g\r\n").into_bytes(),
            // A chunk size past u64.
            3 => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1ffffffffffffffffff\r\n".to_vec(),
            // Chunk data not followed by CRLF.
            4 => format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n", length.saturating_sub(1).max(1)).into_bytes(),
            // A body cut short.
            5 => format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", length + 10).into_bytes(),
            // More header fields than the pool reads.
            _ => {
                let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
                for i in 0..101 {
                    head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
                }
                head.extend_from_slice(format!("content-length: {length}\r\n\r\n").as_bytes());
                head
            }
        };
        let full_body_follows = matches!(fault, 0 | 1 | 6);
        raw.extend_from_slice(&body);
        if fault == 4 {
            raw.extend_from_slice(b"XX0\r\n\r\n");
        }
        runtime().block_on(async {
            let pool = pool(raw_upstream(raw, cuts, true).await);
            let outcome = match pool.send(get()).await {
                Err(err) => Err(err.to_string()),
                Ok(response) => read(response).await.map(|(b, _)| b),
            };
            assert!(
                outcome.is_err(),
                "fault {fault} (full body follows: {full_body_follows}) was taken as {outcome:?}"
            );
        });
    }

    #[test]
    fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut with_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        with_head.extend_from_slice(&raw);
        for raw in [raw, with_head] {
            runtime().block_on(async {
                let pool = pool(raw_upstream(raw, Vec::new(), true).await);
                if let Ok(response) = pool.send(get()).await {
                    let _ = read(response).await;
                }
            });
        }
    }
}

#[test]
fn trailers_that_may_not_trail_or_cannot_be_fields_are_dropped_not_fatal() {
    let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\ncontent-length: 5\r\nnot a field\r\nauthorization: x\r\nx-checksum: 7\r\n\r\n".to_vec();
    runtime().block_on(async {
        let pool = pool(raw_upstream(raw, Vec::new(), false).await);
        for _ in 0..2 {
            let (body, trailers) = read(pool.send(get()).await.unwrap()).await.unwrap();
            assert_eq!(body.as_ref(), b"ok");
            let trailers = trailers.expect("x-checksum trails");
            assert_eq!(trailers.len(), 1, "{trailers:?}");
            assert_eq!(trailers["x-checksum"], "7");
        }
    });
}

#[test]
fn a_request_body_s_trailers_that_may_not_trail_are_not_sent() {
    runtime().block_on(async {
        let pool = pool(echo_server().await);
        let mut fields = HeaderMap::new();
        fields.insert("x-checksum", HeaderValue::from_static("7"));
        fields.insert("host", HeaderValue::from_static("elsewhere"));
        fields.insert("authorization", HeaderValue::from_static("Bearer forged"));
        let response = pool
            .send(post(body(&[b"ok".to_vec()], None, Some(fields))))
            .await
            .unwrap();
        assert_eq!(response.headers()["x-trailers"], "x-checksum=7");
        assert_eq!(read(response).await.unwrap().0.as_ref(), b"ok");
    });
}
