//! Prometheus text metrics at `GET /metrics`: requests by method, route and status,
//! with a latency histogram, plus figures a binary registers itself (its database
//! pool, the gateway's upstreams). Each thread records into its own shard, behind a
//! lock no other thread takes until a scrape sums the shards: counting a request
//! costs a hash lookup, with no cache line shared between cores and no label string
//! built. A scrape hands the sums to `prometheus-client`, which writes the text
//! format (names, labels and their escaping, bucket bounds, help lines).
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeMetric, MetricEncoder,
};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry as Encoded;
use tower::{Layer, Service};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        // Counts per bucket; the encoder makes them cumulative and adds `+Inf`.
        let buckets: [(f64, u64); BUCKETS.len()] =
            std::array::from_fn(|i| (BUCKETS[i], self.buckets[i]));
        let sum = self.sum_micros as f64 / 1e6;
        encoder.encode_histogram::<Labels>(sum, self.count, &buckets, None)
    }
}

/// A series' labels, in the order they are written.
pub type Labels = Vec<(&'static str, String)>;

/// FNV-1a, for maps whose keys no client chooses. Here they are route templates,
/// upstream names, standard methods and status codes, so SipHash's defence against
/// chosen keys buys nothing; it cost more than the rest of counting.
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Request histograms by route, then by method and status.
type Requests = Map<String, Map<(&'static str, u16), Histogram>>;

/// Upstream call histograms by upstream, then by status.
type Upstreams = Map<String, Map<u16, Histogram>>;

/// One thread's histograms.
#[derive(Default)]
struct Shard {
    requests: Mutex<Requests>,
    upstreams: Mutex<Upstreams>,
}

type Gauges = Box<dyn Fn() -> Vec<(Labels, f64)> + Send + Sync>;

#[derive(Default)]
struct Registry {
    shards: Mutex<Vec<Arc<Shard>>>,
    gauges: RwLock<Vec<(&'static str, &'static str, Gauges)>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

thread_local! {
    /// Also kept by the registry, so a thread's counts outlive the thread.
    static SHARD: Arc<Shard> = {
        let shard = Arc::new(Shard::default());
        lock(&registry().shards).push(Arc::clone(&shard));
        shard
    };
}

/// Counts stay valid if a thread panicked while holding a lock.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `record` on this thread's shard (not at all while the thread exits).
fn record(record: impl FnOnce(&Shard)) {
    let _ = SHARD.try_with(|shard| record(shard));
}

/// Records `elapsed` in the histogram of `name` and `key`, made on first use.
/// `name` is looked up as borrowed, so a request allocates nothing once its name
/// was seen.
fn observe<K: Eq + Hash>(
    family: &mut Map<String, Map<K, Histogram>>,
    name: &str,
    key: K,
    elapsed: Duration,
) {
    let by_name = match family.get_mut(name) {
        Some(by_name) => by_name,
        None => family.entry(name.to_string()).or_default(),
    };
    by_name.entry(key).or_default().observe(elapsed);
}

/// The method as counted: one of the standard ones, or `OTHER`, so a client cannot
/// grow the metrics by inventing methods.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

fn observe_request(method: &Method, route: &str, status: u16, elapsed: Duration) {
    record(|shard| {
        let key = (method_label(method), status);
        observe(&mut lock(&shard.requests), route, key, elapsed);
    });
}

/// Route layer (where the matched route is known): counts and times every request
/// by method, route template and status.
#[derive(Debug, Clone, Copy)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

/// The service of [`TrackLayer`].
#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let method = req.method().clone();
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let pending = self.inner.call(req);
        Box::pin(async move {
            let mut response = match pending.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
            track(&method, route, start, &mut response);
            Ok(response)
        })
    }
}

/// Counts and times a request that began at `start` under `route`: what
/// [`TrackLayer`] does for a router's routes, for a service that finds the route
/// itself (the gateway's proxy).
pub fn track(method: &Method, route: &str, start: Instant, response: &mut Response) {
    observe_request(method, route, response.status().as_u16(), start.elapsed());
    if crate::otel::enabled() {
        // The exported span is named after the route, which only routing knows.
        let route = route.to_string();
        response.extensions_mut().insert(crate::otel::Route(route));
    }
}

/// Records one call to an upstream (the gateway's) and how long it took.
pub fn upstream(name: &str, status: u16, elapsed: Duration) {
    record(|shard| observe(&mut lock(&shard.upstreams), name, status, elapsed));
}

/// Every thread's histograms summed, by their labels.
fn summed<K>(
    shards: &[Arc<Shard>],
    family: impl Fn(&Shard) -> &Mutex<Map<String, Map<K, Histogram>>>,
    labels: impl Fn(&str, &K) -> Labels,
) -> BTreeMap<Labels, Histogram> {
    let mut all: BTreeMap<Labels, Histogram> = BTreeMap::new();
    for shard in shards {
        for (name, by_key) in lock(family(shard)).iter() {
            for (key, histogram) in by_key {
                all.entry(labels(name, key)).or_default().add(histogram);
            }
        }
    }
    all
}

fn encode_family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    family: &BTreeMap<Labels, Histogram>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, histogram) in family {
        histogram.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// Registers a gauge family read at every scrape: `read` returns each series'
/// labels (`[("state", "idle".into())]`) and value. Registering a name again
/// replaces it (tests build several apps in one process).
pub fn gauge(
    name: &'static str,
    help: &'static str,
    read: impl Fn() -> Vec<(Labels, f64)> + Send + Sync + 'static,
) {
    let mut gauges = registry().gauges.write().unwrap_or_else(|e| e.into_inner());
    gauges.retain(|(n, _, _)| *n != name);
    gauges.push((name, help, Box::new(read)));
}

/// What the shards and the registered gauges hold, summed at each scrape.
#[derive(Debug)]
struct Recorded;

impl Collector for Recorded {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let r = registry();
        let shards = lock(&r.shards).clone();
        let requests = summed(
            &shards,
            |s| &s.requests,
            |route, (method, status)| {
                vec![
                    ("method", (*method).to_string()),
                    ("route", route.to_string()),
                    ("status", status.to_string()),
                ]
            },
        );
        encode_family(
            &mut encoder,
            "http_request_duration_seconds",
            "Requests answered, by method, route and status, and how long they took.",
            &requests,
        )?;
        let upstreams = summed(
            &shards,
            |s| &s.upstreams,
            |name, status| {
                vec![
                    ("upstream", name.to_string()),
                    ("status", status.to_string()),
                ]
            },
        );
        if !upstreams.is_empty() {
            encode_family(
                &mut encoder,
                "upstream_request_duration_seconds",
                "Calls forwarded to each upstream, by status (502/504: failed), and their duration.",
                &upstreams,
            )?;
        }
        for (name, help, read) in r.gauges.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, value) in read() {
                ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The whole registry in the Prometheus text format.
pub fn render() -> String {
    let mut encoded = Encoded::default();
    encoded.register_collector(Box::new(Recorded));
    let mut out = String::new();
    // Writing to a `String` does not fail.
    let _ = prometheus_text::encode(&mut out, &encoded);
    out
}

/// `GET /metrics`.
pub async fn metrics() -> impl IntoResponse {
    ([(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut family = BTreeMap::new();
        let mut histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(30));
        family.insert(vec![("route", "/x \"quoted\"".to_string())], histogram);
        #[derive(Debug)]
        struct One(BTreeMap<Labels, Histogram>);
        impl Collector for One {
            fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
                encode_family(&mut encoder, "t", "test", &self.0)
            }
        }
        let mut encoded = Encoded::default();
        encoded.register_collector(Box::new(One(family)));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &encoded).unwrap();
        let route = r#"route="/x \"quoted\"""#;
        for line in [
            "# TYPE t histogram\n".to_string(),
            format!("t_bucket{{{route},le=\"0.005\"}} 1\n"),
            format!("t_bucket{{{route},le=\"0.05\"}} 2\n"),
            format!("t_bucket{{{route},le=\"1\"}} 2\n"),
            format!("t_bucket{{{route},le=\"+Inf\"}} 2\n"),
            format!("t_sum{{{route}}} 0.033\n"),
            format!("t_count{{{route}}} 2\n"),
        ] {
            assert!(out.contains(&line), "{line} in {out}");
        }
    }

    #[test]
    fn gauges_are_read_at_each_scrape() {
        let name = "test_gauge_read";
        gauge(name, "A test's gauge.", || {
            vec![(vec![("state", "idle".to_string())], 2.0), (vec![], 1.5)]
        });
        let out = render();
        assert!(out.contains("# TYPE test_gauge_read gauge\n"), "{out}");
        assert!(out.contains("test_gauge_read{state=\"idle\"} 2"), "{out}");
        assert!(out.contains("test_gauge_read 1.5\n"), "{out}");
    }

    #[test]
    fn every_threads_counts_are_summed() {
        // A route no other test records, since the registry is the process's.
        let route = "/test/summed/{id}";
        let threads: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..2 {
                        observe_request(&Method::GET, route, 200, Duration::from_millis(1));
                    }
                    upstream("test-summed", 502, Duration::from_millis(1));
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let out = render();
        assert!(
            out.contains(
                "http_request_duration_seconds_count{method=\"GET\",route=\"/test/summed/{id}\",status=\"200\"} 6\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("upstream_request_duration_seconds_count{upstream=\"test-summed\",status=\"502\"} 3\n"),
            "{out}"
        );
    }
}
