//! The reverse proxy: find the route, check the token where the route needs one,
//! forward the request with its body streamed, and stream the answer back.
//!
//! With the `auth` feature (a project with an auth service) a protected route's
//! token is checked here, at the edge; without it a protected route answers 401.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use common::server::Peer;
use common::ApiError;

use crate::cidr::Cidrs;
use crate::pool::Pool;
use crate::route::{self, Route};

/// Set by the gateway from the token's subject; never trusted from clients.
pub const USER_ID: HeaderName = HeaderName::from_static("x-user-id");

const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Connection-level headers that must not be forwarded (RFC 9110, section 7.6.1).
/// `Trailer`, which names a response's trailer fields, is not one of them.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Whether the client said it takes trailer fields (`TE: trailers`): the gateway
/// passes them through, so it says so upstream too.
fn accepts_trailers(headers: &HeaderMap) -> bool {
    tokens(headers, header::TE)
        .filter_map(|t| t.split(';').next())
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// The comma-separated tokens of every `name` header, trimmed.
fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Where a service is reached, and this thread's connections to it.
pub struct Upstream {
    pub authority: Authority,
    pub pool: Pool,
}

/// What the proxy needs of the gateway's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Service name → base URL.
    pub upstreams: BTreeMap<String, String>,
    /// The routes of `services.toml`, most specific first.
    pub routes: &'static [Route],
    /// Then 502.
    pub connect_timeout: Duration,
    /// The wait for a response's head (then 504), and the longest pause within
    /// its body once the request is sent (then it is cut off).
    pub upstream_timeout: Duration,
    /// Then 413.
    pub max_body_bytes: u64,
    pub trusted_proxies: Cidrs,
    /// The title of the merged OpenAPI document (`GET /openapi.json`).
    pub api_title: String,
    /// The auth service's secret, which tokens are checked with.
    #[cfg(feature = "auth")]
    pub jwt_secret: String,
}

pub struct GatewayState {
    pub upstreams: BTreeMap<String, Upstream>,
    pub routes: &'static [Route],
    pub upstream_timeout: Duration,
    pub max_body_bytes: u64,
    pub trusted_proxies: Cidrs,
    pub api_title: String,
    #[cfg(feature = "auth")]
    pub jwt: common::jwt::Verifier,
}

impl GatewayState {
    pub fn new(config: &Settings) -> anyhow::Result<Self> {
        let mut upstreams = BTreeMap::new();
        for (name, url) in &config.upstreams {
            let uri: Uri = url
                .parse()
                .map_err(|e| anyhow::anyhow!("{name} service URL {url:?}: {e}"))?;
            let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
            else {
                anyhow::bail!("{name} service URL {url:?} needs a scheme and a host, e.g. http://{name}-service:3000");
            };
            if scheme != Scheme::HTTP {
                anyhow::bail!("{name} service URL {url:?}: only http:// is supported (TLS ends before the gateway or at an ingress)");
            }
            let port = authority.port_u16().unwrap_or(80);
            let pool = Pool::new(
                authority.host(),
                port,
                config.connect_timeout,
                config.upstream_timeout,
            )?;
            upstreams.insert(name.clone(), Upstream { authority, pool });
        }
        Ok(Self {
            upstreams,
            routes: config.routes,
            upstream_timeout: config.upstream_timeout,
            max_body_bytes: config.max_body_bytes,
            trusted_proxies: config.trusted_proxies.clone(),
            api_title: config.api_title.clone(),
            #[cfg(feature = "auth")]
            jwt: common::jwt::Verifier::new(&config.jwt_secret),
        })
    }
}

/// Every request none of the gateway's own routes takes: the route of
/// `services.toml` that covers its path (404 when none does) checks it and passes it
/// on. Counted under that route.
pub async fn proxy(state: &GatewayState, request: Request) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let (route, mut response) = match route::find(state.routes, request.uri().path()) {
        Some(route) => (route.prefix, pass(state, route, request).await),
        None => (
            "unmatched",
            ApiError::NotFound("no such route".into()).into_response(),
        ),
    };
    common::metrics::track(&method, route, start, &mut response);
    response
}

async fn pass(state: &GatewayState, route: &Route, request: Request) -> Response {
    if let Some(response) = too_large(state, request.headers()) {
        return response;
    }
    let mut request = capped(state, request);
    request.headers_mut().remove(USER_ID);
    if route.protected {
        #[cfg(feature = "auth")]
        {
            let claims = common::jwt::bearer(request.headers())
                .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))
                .and_then(|token| state.jwt.verify(token));
            match claims {
                Ok(claims) => {
                    if let Ok(v) = HeaderValue::from_str(&claims.sub) {
                        request.headers_mut().insert(USER_ID, v);
                    }
                }
                Err(err) => return err.into_response(),
            }
        }
        #[cfg(not(feature = "auth"))]
        return ApiError::Unauthorized("this route needs a token".into()).into_response();
    }
    let rewritten = match route.rewrite {
        Some(to) => {
            let uri = request.uri();
            let rest = &uri.path()[route.prefix.len()..];
            let path = match uri.query() {
                Some(q) => format!("{to}{rest}?{q}"),
                None => format!("{to}{rest}"),
            };
            match PathAndQuery::try_from(path) {
                Ok(path) => Some(path),
                Err(_) => {
                    return ApiError::Rejected(StatusCode::BAD_REQUEST, "bad request path".into())
                        .into_response()
                }
            }
        }
        None => None,
    };
    forward(state, route.upstream, request, rewritten).await
}

/// The route template `GET /health/{service}` is counted under.
pub const SERVICE_HEALTH: &str = "/health/{service}";

/// `GET /health/{service}`: that service's own `/health`, through the gateway, for
/// a `service` the router decoded from the path (and counts).
/// (`path_override` of [`forward`] replaces the path and query.)
pub async fn service_health(state: &GatewayState, service: &str, request: Request) -> Response {
    if !state.upstreams.contains_key(service) {
        return unknown_service(service);
    }
    let path = PathAndQuery::from_static("/health");
    // A probe carries no body; one a client sent along is not passed on.
    let mut request = request.map(|_| Body::empty());
    request.headers_mut().remove(header::CONTENT_LENGTH);
    forward(state, service, request, Some(path)).await
}

/// [`service_health`] for a request the router did not see: the service named by
/// the path's last segment as it came, counted under [`SERVICE_HEALTH`].
pub async fn service_health_unrouted(state: &GatewayState, request: Request) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let segment = request.uri().path().strip_prefix("/health/");
    // The name as the state holds it, free of the request, which moves on.
    let mut response = match segment.and_then(|s| state.upstreams.get_key_value(s)) {
        Some((name, _)) => service_health(state, name, request).await,
        None => unknown_service(segment.unwrap_or_default()),
    };
    common::metrics::track(&method, SERVICE_HEALTH, start, &mut response);
    response
}

fn unknown_service(service: &str) -> Response {
    ApiError::NotFound(format!("no service named {service:?}")).into_response()
}

/// A body without a `Content-Length` (chunked) is counted as it streams: past
/// `MAX_BODY_BYTES` it fails, before the excess is sent, and the client is answered
/// 413 if the upstream has not responded yet (the upstream's connection is dropped);
/// if it has, the response is cut off.
fn capped(state: &GatewayState, request: Request) -> Request {
    let has_length = request.headers().contains_key(header::CONTENT_LENGTH);
    if has_length || hyper::body::Body::is_end_stream(request.body()) {
        return request;
    }
    let limit = usize::try_from(state.max_body_bytes).unwrap_or(usize::MAX);
    request.map(|body| Body::new(http_body_util::Limited::new(body, limit)))
}

/// Whether a request body failed for being longer than [`capped`] allows (however
/// deep in its chain of causes a layer put it).
fn over_limit(err: &axum::Error) -> bool {
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        if inner.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = inner.source();
    }
    false
}

fn body_too_large(state: &GatewayState) -> Response {
    ApiError::Rejected(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {} bytes", state.max_body_bytes),
    )
    .into_response()
}

fn too_large(state: &GatewayState, headers: &HeaderMap) -> Option<Response> {
    let length: u64 = headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    (length > state.max_body_bytes).then(|| body_too_large(state))
}

/// `X-Forwarded-For` gets the peer appended; `X-Real-IP` is the client as the
/// gateway sees it (through `TRUSTED_PROXIES`), set here and never passed on from
/// a client: what the services' login limit counts by.
fn forwarded_for(state: &GatewayState, parts: &mut axum::http::request::Parts) {
    let Some(peer) = parts.extensions.get::<ConnectInfo<Peer>>() else {
        parts.headers.remove(X_REAL_IP);
        return;
    };
    let peer = peer.0 .0.ip();
    let earlier = parts.headers.get(X_FORWARDED_FOR);
    let earlier = earlier.and_then(|v| v.to_str().ok());
    let client = state.trusted_proxies.client(peer, earlier);
    let value = match earlier {
        Some(earlier) => format!("{earlier}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        parts.headers.insert(X_FORWARDED_FOR, value);
    }
    match HeaderValue::from_str(&client.to_string()) {
        Ok(client) => parts.headers.insert(X_REAL_IP, client),
        Err(_) => parts.headers.remove(X_REAL_IP),
    };
}

async fn forward(
    state: &GatewayState,
    upstream: &str,
    request: Request,
    path_override: Option<PathAndQuery>,
) -> Response {
    let Some(target) = state.upstreams.get(upstream) else {
        return ApiError::BadGateway(format!("no upstream configured for {upstream}"))
            .into_response();
    };
    let (mut parts, body) = request.into_parts();
    // The pool sends the path and query alone (origin form, as HTTP/1.1 sends it to
    // a server), whatever else the URI holds.
    if let Some(path_and_query) = path_override {
        parts.uri = Uri::from(path_and_query);
    }
    if let Some(host) = parts.headers.remove(header::HOST) {
        parts.headers.insert(X_FORWARDED_HOST, host);
    }
    forwarded_for(state, &mut parts);
    let trailers = accepts_trailers(&parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    if trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let request = Request::from_parts(parts, body);

    let start = std::time::Instant::now();
    let response = match tokio::time::timeout(state.upstream_timeout, target.pool.send(request))
        .await
    {
        Err(_) => {
            tracing::warn!(upstream, address = %target.authority, "upstream timed out");
            ApiError::GatewayTimeout(format!("the {upstream} service did not answer in time"))
                .into_response()
        }
        Ok(Err(crate::pool::Error::Body(err))) if over_limit(&err) => body_too_large(state),
        // The client's body broke off: nothing the upstream did.
        Ok(Err(err @ crate::pool::Error::Body(_))) => {
            tracing::debug!(upstream, error = %err, "request body not read");
            ApiError::Rejected(
                StatusCode::BAD_REQUEST,
                "the request body could not be read".into(),
            )
            .into_response()
        }
        // hyper's server refuses a client's bad Content-Length itself: a body and
        // length that disagree here were made inside the gateway, and were not sent.
        Ok(Err(err @ crate::pool::Error::Length(_))) => {
            tracing::error!(upstream, error = %err, "request not forwarded");
            ApiError::Internal(anyhow::Error::new(err)).into_response()
        }
        Ok(Err(err)) => {
            tracing::warn!(upstream, address = %target.authority, error = %err, "upstream unreachable");
            ApiError::BadGateway(format!("the {upstream} service is unavailable")).into_response()
        }
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
    };
    common::metrics::upstream(upstream, response.status().as_u16(), start.elapsed());
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over their few headers, no lookups.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(&name.as_str()))
    {
        return;
    }
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = tokens(headers, header::CONNECTION)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}
