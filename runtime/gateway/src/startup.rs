//! Building the gateway apart from running it, so tests can start it on port 0.
//!
//! The gateway runs thread-per-core: each thread has a single-threaded runtime and
//! its own pool of upstream connections, and one task deals the accepted
//! connections out to the threads in turn (`balance`). A request and its upstream
//! call then stay on one thread, with no cross-thread wake-up, which serves a fifth
//! more proxied requests per second than one work-stealing runtime.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::Context as _;
use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use common::server::{Observe, ObserveLayer};
use tokio::net::TcpListener;
use tower::{Layer as _, Service};

use crate::balance;
use crate::proxy::{self, GatewayState, Settings};

/// Where the gateway listens.
#[derive(Debug, Clone)]
pub struct Listen {
    pub host: IpAddr,
    /// The public port (0: any free one).
    pub port: u16,
    /// Port of `GET /metrics`: not the public one, so that the outside never sees it.
    pub metrics_port: u16,
    /// Threads serving the public port, each with its own runtime; 0: one per core.
    pub threads: usize,
}

/// What the gateway is built from: the project's configuration turns into it
/// (`impl From<Config> for Setup`, in `config.rs`).
#[derive(Debug, Clone)]
pub struct Setup {
    pub listen: Listen,
    pub proxy: Settings,
}

pub struct Gateway {
    setup: Setup,
    port: u16,
    listener: TcpListener,
    app: App,
    metrics_port: u16,
    metrics_listener: TcpListener,
}

/// The gateway as one service of requests: the shared layers around [`Dispatch`].
/// No time limit of its own: every call to an upstream has one (`/openapi.json`'s
/// too), and the gateway's other routes answer at once.
pub type App = Observe<Dispatch>;

pub fn app(state: GatewayState) -> App {
    // One Arc for the whole state: handlers clone it on every request.
    let state = Arc::new(state);
    let local = Router::new()
        .route("/health", get(common::server::health))
        .route(
            #[cfg(feature = "axum07")]
            // `proxy::SERVICE_HEALTH` in axum 0.7's syntax.
            "/health/:service",
            #[cfg(not(feature = "axum07"))]
            proxy::SERVICE_HEALTH,
            get(
                |State(state): State<Arc<GatewayState>>,
                 Path(service): Path<String>,
                 request: Request| async move {
                    proxy::service_health(&state, &service, request).await
                },
            ),
        )
        .route("/openapi.json", get(crate::openapi::openapi))
        .with_state(Arc::clone(&state));
    let dispatch = Dispatch {
        local: common::server::routed(local),
        state,
    };
    ObserveLayer.layer(dispatch)
}

/// Sends the gateway's own few paths to its router and every other request
/// straight to the proxy, which finds the services.toml route (or answers 404)
/// itself: through a router, a proxied request was matched, given parameters and
/// extensions, and boxed again, for a fifth of what the gateway spent on it.
/// `GET /health/{service}`, probed as often as anything, goes straight to its
/// service too, unless its name needs decoding.
#[derive(Clone)]
pub struct Dispatch {
    local: Router,
    state: Arc<GatewayState>,
}

impl Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        // One segment after `/health/`, as the router's `{service}` takes it; deeper
        // paths are an upstream's (an adopted monolith's, say).
        let service = path
            .strip_prefix("/health/")
            .filter(|s| !s.is_empty() && !s.contains('/'));
        let straight = service.is_some_and(|s| !s.contains('%'))
            && matches!(*request.method(), Method::GET | Method::HEAD);
        let state = Arc::clone(&self.state);
        if straight {
            Box::pin(async move { Ok(proxy::service_health_unrouted(&state, request).await) })
        } else if service.is_some() || path == "/health" || path == "/openapi.json" {
            Box::pin(self.local.call(request))
        } else {
            Box::pin(async move { Ok(proxy::proxy(&state, request).await) })
        }
    }
}

impl Gateway {
    pub async fn build(setup: impl Into<Setup>) -> anyhow::Result<Self> {
        let setup: Setup = setup.into();
        let state = GatewayState::new(&setup.proxy)?;
        let config = &setup.listen;
        let address = (config.host, config.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {}:{}", address.0, address.1))?;
        let metrics_address = (config.host, config.metrics_port);
        let metrics_listener = TcpListener::bind(metrics_address).await.with_context(|| {
            format!(
                "cannot listen on {}:{} (METRICS_PORT)",
                metrics_address.0, metrics_address.1
            )
        })?;
        Ok(Self {
            port: listener.local_addr()?.port(),
            listener,
            app: app(state),
            metrics_port: metrics_listener.local_addr()?.port(),
            metrics_listener,
            setup,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `GET /metrics`.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// Serves until SIGTERM or Ctrl-C; in-flight requests finish first.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(common::server::shutdown_signal()).await
    }

    /// Serves until `signal` completes; in-flight requests finish first, on every
    /// thread.
    pub async fn run_until<F>(self, signal: F) -> anyhow::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let metrics = Router::new().route("/metrics", get(common::metrics::metrics));
        let metrics = AbortOnDrop(tokio::spawn(async move {
            axum::serve(self.metrics_listener, metrics).await
        }));
        let (senders, mut shares) = balance::shares(
            threads(self.setup.listen.threads),
            self.listener.local_addr()?,
        );
        let (own, own_drained) = shares.remove(0);
        let mut workers = Vec::new();
        for (i, (share, drained)) in shares.into_iter().enumerate() {
            // Everything that can fail happens here, before any thread serves.
            let app = app(GatewayState::new(&self.setup.proxy)?);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a runtime for a gateway thread")?;
            let stop = drained.wait();
            let worker = std::thread::Builder::new()
                .name(format!("gateway-{}", i + 1))
                .spawn(move || runtime.block_on(common::server::serve_until(share, app, stop)))
                .context("cannot start a gateway thread")?;
            workers.push(worker);
        }
        // On the signal (or when this future is dropped) the acceptor stops; every
        // thread then takes the connections already handed to it, and finishes them.
        let acceptor = AbortOnDrop(tokio::spawn(balance::accept(
            self.listener,
            senders,
            signal,
        )));
        let mut outcome = common::server::serve_until(own, self.app, own_drained.wait())
            .await
            .map_err(anyhow::Error::from);
        // Every thread drains its requests before the first error (if any) is told.
        let joined = tokio::task::spawn_blocking(move || {
            workers
                .into_iter()
                .map(|w| match w.join() {
                    Ok(served) => served.map_err(anyhow::Error::from),
                    Err(_) => Err(anyhow::anyhow!("a gateway thread panicked")),
                })
                .collect::<Vec<_>>()
        })
        .await?;
        for result in joined {
            outcome = outcome.and(result);
        }
        drop((acceptor, metrics));
        outcome
    }
}

/// Stops the task when dropped, also on an early return.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// More threads than this only add idle runtimes and upstream pools.
const MAX_THREADS: usize = 256;

/// Threads serving the public port: `GATEWAY_THREADS`, or one per core.
fn threads(asked: usize) -> usize {
    match asked {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n.min(MAX_THREADS),
    }
}
