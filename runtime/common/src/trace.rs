//! W3C trace context (`traceparent` and `tracestate`): every request continues the
//! caller's trace or starts one, is logged with its trace id, and passes it on (with
//! the caller's `tracestate` entries, unchanged) to the services it calls and the
//! events it publishes, so one request can be followed through the whole system in
//! the logs.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use opentelemetry::context::FutureExt as _;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Most `tracestate` entries a trace carries (W3C Trace Context, section 3.3.1).
pub const MAX_STATE_ENTRIES: usize = 32;

/// One hop of a trace: the trace it belongs to, this hop's own span id, and whether
/// the trace is recorded (the `sampled` flag, which every hop passes on unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a `traceparent` header; `None` when it is malformed. Version 00 is
    /// exactly four fields; a later version (not `ff`, which is invalid) is read by
    /// its first four, whatever it appends after a `-` (W3C Trace Context, 4.3).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim_matches(|c| c == ' ' || c == '\t');
        let (fields, rest) = header.split_at_checked(55)?;
        let mut parts = fields.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Lowercase hex only, as the standard writes it (HEXDIGLC).
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex(version, 2) || version == "ff" {
            return None;
        }
        let rest_ok = match version {
            "00" => rest.is_empty(),
            _ => rest.is_empty() || rest.starts_with('-'),
        };
        if !rest_ok || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
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

/// The vendors' entries of a trace (`tracestate`), passed on unchanged: a
/// comma-separated list of at most [`MAX_STATE_ENTRIES`] `key=value` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceState(HeaderValue);

impl TraceState {
    /// The entries of every `tracestate` field of a message, in order, as one list;
    /// `None` when there are none, or when the list is malformed, names a key twice
    /// or is too long (the standard's choice is then to drop it whole, not to pass
    /// on part of it).
    pub fn parse<'a>(fields: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut list = String::new();
        let mut keys: Vec<&str> = Vec::new();
        for field in fields {
            for entry in field.split(',').map(|e| e.trim_matches([' ', '\t'])) {
                if entry.is_empty() {
                    continue;
                }
                let key = valid_entry(entry)?;
                if keys.len() == MAX_STATE_ENTRIES || keys.contains(&key) {
                    return None;
                }
                keys.push(key);
                if !list.is_empty() {
                    list.push(',');
                }
                list.push_str(entry);
            }
        }
        HeaderValue::from_str(&list)
            .ok()
            .filter(|_| !keys.is_empty())
            .map(Self)
    }

    /// The `tracestate` fields of `headers` as one list, as [`parse`](Self::parse)
    /// reads them; a field that is not even text spoils the list too.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<Self> {
        let fields: Option<Vec<&str>> = headers
            .get_all(TRACESTATE)
            .iter()
            .map(|v| v.to_str().ok())
            .collect();
        Self::parse(fields?)
    }

    /// The list of entries, as sent in `tracestate`.
    pub fn as_str(&self) -> &str {
        // Built from a `&str` of visible ASCII only.
        self.0.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// The key of one `key=value` entry, `None` when the entry is malformed (W3C
/// Trace Context, Level 1, 3.3.1.3). A key is lowercase letters, digits and `_-*/`:
/// a simple key starts with a letter, at most 256 characters; a tenant's key is
/// `tenant@system`, the tenant starting with a letter or digit (at most 241), the
/// system with a letter (at most 14). A value is at most 256 printable characters
/// other than `,` and `=`, not ending in a space.
fn valid_entry(entry: &str) -> Option<&str> {
    let (key, value) = entry.split_once('=')?;
    let key_char = |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    let key_part = |part: &str, max: usize, digit_first: bool| {
        part.len() <= max
            && part
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || (digit_first && b.is_ascii_digit()))
            && part.bytes().all(key_char)
    };
    let key_ok = match key.split_once('@') {
        None => key_part(key, 256, false),
        Some((tenant, system)) => key_part(tenant, 241, true) && key_part(system, 14, false),
    };
    let valid = key_ok
        && !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| matches!(b, b' '..=b'~') && b != b',' && b != b'=');
    valid.then_some(key)
}

/// A hop of a trace with the entries that travel with it: what the handling of
/// one request or event runs in.
#[derive(Debug, Clone)]
pub struct Hop {
    pub ctx: TraceContext,
    pub state: Option<TraceState>,
    /// Whether this hop is an exported span (health probes and scrapes are not):
    /// only then is the work done in it (queries) exported as its children.
    pub exported: bool,
}

tokio::task_local! {
    static CURRENT: Hop;
}

/// The trace context of the request being handled, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|hop| hop.ctx).ok()
}

/// `f` of the hop being handled, if any.
pub(crate) fn with_current<T>(f: impl FnOnce(&Hop) -> T) -> Option<T> {
    CURRENT.try_with(f).ok()
}

/// Runs `f` as part of `hop` (an event consumer handling one message, say). An
/// exported hop is also OpenTelemetry's current context while `f` runs, so the
/// spans of your own code in it (tracing-opentelemetry's) are its children.
pub async fn scope<F: std::future::Future>(hop: Hop, f: F) -> F::Output {
    if hop.exported {
        let cx = crate::otel::hop_parent(&hop);
        CURRENT.scope(hop, f.with_context(cx)).await
    } else {
        CURRENT.scope(hop, f).await
    }
}

/// Spawns `f` on the runtime as part of the work being done now: its log lines are
/// in the current log span (the request's ids), its calls pass on the request's
/// `traceparent` and `tracestate`, and its spans, calls and queries stay in the
/// current trace, under the current span. A bare `tokio::spawn` loses all of that;
/// `.in_current_span()` alone keeps the log span but not the request's hop, and
/// outside a span of yours not the trace either.
///
/// The task runs in the current span, so a span of yours that spawns it lasts (and
/// is exported as lasting) until the task ends: spawn long-lived work from the
/// handler itself, outside your spans. Like `tokio::spawn`, it panics outside a
/// tokio runtime.
#[track_caller]
pub fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let f = tracing::Instrument::in_current_span(f).with_current_context();
    match CURRENT.try_with(Clone::clone) {
        Ok(hop) => tokio::spawn(CURRENT.scope(hop, f)),
        Err(_) => tokio::spawn(f),
    }
}

/// The `traceparent` to send on a call made now: it names the call's own exported
/// span as the caller, or else this hop, so the callee's span is a child of it (also
/// in an OpenTelemetry collector).
pub fn outgoing_header(call: Option<&crate::otel::Span>) -> Option<String> {
    call.map(crate::otel::Span::context)
        .or_else(current)
        .map(|c| c.header())
}

/// The `tracestate` to send on a call made now: the caller's, unchanged.
pub fn outgoing_state() -> Option<TraceState> {
    CURRENT.try_with(|hop| hop.state.clone()).ok().flatten()
}

/// Continues the caller's trace (or starts one) for an incoming request: replaces
/// its `traceparent` with this hop's, and its `tracestate` with the caller's entries
/// when they are valid and continue a trace, or with none (a gateway passes the
/// request on as it leaves here). When spans are exported, this hop is the exported
/// span, returned to be finished with the answer. The caller runs the rest of the
/// request in [`scope`].
pub fn arrive(req: &mut Request) -> (Hop, Option<crate::otel::Span>) {
    let parent = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    // Entries without a valid parent belong to no trace (W3C Trace Context, 3.3).
    let state = parent.and_then(|_| TraceState::from_headers(req.headers()));
    // One list, or none: never entries of no trace, or a list dropped in part.
    match &state {
        Some(state) => {
            req.headers_mut()
                .insert(TRACESTATE, state.header_value().clone());
        }
        None => {
            req.headers_mut().remove(TRACESTATE);
        }
    }
    let span = crate::otel::server_span(req, parent.as_ref(), state.as_ref());
    let ctx = TraceContext::hop(parent.as_ref(), span.as_ref());
    if let Ok(v) = HeaderValue::from_bytes(&ctx.header_bytes()) {
        req.headers_mut().insert(TRACEPARENT, v);
    }
    let exported = span.is_some();
    (
        Hop {
            ctx,
            state,
            exported,
        },
        span,
    )
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

pub(crate) fn random_u128() -> u128 {
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
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-zzf067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let parent = TraceContext::parse(later).unwrap();
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parent.sampled);
        // Passed on as the version this hop knows.
        assert!(TraceContext::child_of(Some(&parent))
            .header()
            .starts_with("00-"));
    }

    #[test]
    fn trace_state_is_kept_whole_or_dropped_whole() {
        let state =
            TraceState::parse(["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", "acme@tenant=x"]);
        assert_eq!(
            state.map(|s| s.as_str().to_string()).as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,acme@tenant=x")
        );
        assert_eq!(TraceState::parse([" , "]), None);
        for bad in [
            "rojo",
            "1rojo=x",
            "t@1sys=x",
            "rojo=1,rojo=2",
            "Rojo=1",
            "rojo=a,b=",
            "rojo=a=b",
            "rojo=caf\u{e9}",
            "@x=1",
        ] {
            assert_eq!(TraceState::parse([bad]), None, "{bad}");
        }
        let entries: Vec<String> = (0..=MAX_STATE_ENTRIES).map(|i| format!("k{i}=v")).collect();
        assert_eq!(TraceState::parse([entries.join(",").as_str()]), None);
        assert!(TraceState::parse([entries[1..].join(",").as_str()]).is_some());
    }

    #[tokio::test]
    async fn the_callers_trace_state_goes_out_with_its_calls() {
        let mut req = Request::new(axum::body::Body::empty());
        req.headers_mut().insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        req.headers_mut()
            .append(TRACESTATE, HeaderValue::from_static("rojo=1"));
        req.headers_mut()
            .append(TRACESTATE, HeaderValue::from_static("congo=2"));
        let (hop, _) = arrive(&mut req);
        let sent = scope(hop, async { outgoing_state() }).await;
        assert_eq!(
            sent.as_ref().map(TraceState::as_str),
            Some("rojo=1,congo=2")
        );
        assert_eq!(outgoing_state(), None);

        // Without a parent the entries belong to no trace.
        let mut req = Request::new(axum::body::Body::empty());
        req.headers_mut()
            .insert(TRACESTATE, HeaderValue::from_static("rojo=1"));
        assert_eq!(arrive(&mut req).0.state, None);
        // ... and do not go on with the request (a gateway passes it on).
        assert_eq!(req.headers().get(TRACESTATE), None);
    }

    #[test]
    fn new_traces_differ() {
        let a = TraceContext::child_of(None);
        let b = TraceContext::child_of(None);
        assert_ne!(a.trace_id, b.trace_id);
    }
}
