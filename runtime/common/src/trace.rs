//! W3C trace context (`traceparent`): every request continues the caller's trace or
//! starts one, is logged with its trace id, and passes it on to the services it
//! calls and the events it publishes, so one request can be followed through the
//! whole system in the logs.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// One hop of a trace: the trace it belongs to, this hop's own span id, and whether
/// the trace is recorded (the `sampled` flag, which every hop passes on unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a `traceparent` header (version 00); `None` when it is malformed.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if version != "00" || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(parent, 16).ok()?;
        let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// A new hop: the same trace as `parent` (or a new one) with a span id of its own.
    pub fn child_of(parent: Option<&TraceContext>) -> Self {
        Self {
            trace_id: parent.map_or_else(random_u128, |p| p.trace_id),
            span_id: random_u64(),
            sampled: parent.is_none_or(|p| p.sampled),
        }
    }

    /// This hop of a trace: the exported span's ids when spans are exported, else a
    /// new child of `parent` (or a new trace).
    pub fn hop(parent: Option<&TraceContext>, exported: Option<&crate::otel::Span>) -> Self {
        exported.map_or_else(|| Self::child_of(parent), crate::otel::Span::context)
    }

    pub fn trace_id_hex(&self) -> String {
        let mut hex = [0; 32];
        hex_into(&mut hex, self.trace_id);
        String::from_utf8_lossy(&hex).into_owned()
    }

    /// The `traceparent` value naming this hop as the parent.
    pub fn header(&self) -> String {
        String::from_utf8_lossy(&self.header_bytes()).into_owned()
    }

    /// [`header`](Self::header) without `format!`: it is written on every request.
    fn header_bytes(&self) -> [u8; 55] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut out[3..35], self.trace_id);
        hex_into(&mut out[36..52], u128::from(self.span_id));
        hex_into(&mut out[53..55], u128::from(self.sampled));
        out
    }
}

/// Writes the low `out.len()` hex digits of `value` into `out`.
fn hex_into(out: &mut [u8], mut value: u128) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The trace context of the request being handled, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// Runs `f` as part of `ctx` (an event consumer handling one message, say).
pub async fn scope<F: std::future::Future>(ctx: TraceContext, f: F) -> F::Output {
    CURRENT.scope(ctx, f).await
}

/// The `traceparent` to send on a call made now: it names this hop as the caller,
/// so the callee's span is a child of this one (also in an OpenTelemetry collector).
pub fn outgoing_header() -> Option<String> {
    current().map(|c| c.header())
}

/// Continues the caller's trace (or starts one) for an incoming request: replaces
/// its `traceparent` with this hop's. When
/// spans are exported, this hop is the exported span, returned to be finished with
/// the answer. The caller runs the rest of the request in [`scope`].
pub fn arrive(req: &mut Request) -> (TraceContext, Option<crate::otel::Span>) {
    let parent = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let span = crate::otel::server_span(req, parent.as_ref());
    let ctx = TraceContext::hop(parent.as_ref(), span.as_ref());
    if let Ok(v) = HeaderValue::from_bytes(&ctx.header_bytes()) {
        req.headers_mut().insert(TRACEPARENT, v);
    }
    (ctx, span)
}

thread_local! {
    /// Seeded once per thread from the process's random SipHash keys.
    static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish());
}

/// Ids need to be unique, not secret: SplitMix64 over a per-thread counter with a
/// random start (a bijection, so one thread never repeats an id; threads start far
/// apart). Hashing each id with SipHash cost a request more than its routing.
fn random_u64() -> u64 {
    let n = STATE.with(|s| {
        let n = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(n);
        n
    });
    let mut z = n;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}

fn random_u128() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_continues_a_trace() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceContext::parse(header).unwrap();
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = TraceContext::child_of(Some(&parent));
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        assert!(child
            .header()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_eq!(TraceContext::parse(&child.header()), Some(child));
        assert!(child.sampled);
    }

    #[test]
    fn a_trace_not_recorded_stays_so() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let parent = TraceContext::parse(header).unwrap();
        assert!(!parent.sampled);
        let child = TraceContext::child_of(Some(&parent));
        assert!(!child.sampled);
        assert!(child.header().ends_with("-00"));
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-zzf067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn new_traces_differ() {
        let a = TraceContext::child_of(None);
        let b = TraceContext::child_of(None);
        assert_ne!(a.trace_id, b.trace_id);
    }
}
