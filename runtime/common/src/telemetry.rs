//! Structured logs with `tracing`: human-readable by default, one JSON object per
//! line with `LOG_FORMAT=json`; the level comes from `RUST_LOG`. Colours only on a
//! terminal (never in a container's or a file's log) and never with `NO_COLOR`.
//! Where spans are exported, database queries become spans too (`query_spans.rs`).
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::io::IsTerminal as _;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
/// Calling it twice (as tests that spawn several apps do) keeps the first one.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        Box::new(fmt::layer().json().with_current_span(true))
    } else {
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Box::new(fmt::layer().with_ansi(colour))
    };
    // The filter is the log's own: the spans of queries read sqlx's reports
    // whatever level the log shows.
    let registry = tracing_subscriber::registry().with(logs.with_filter(filter));
    // Not an `Option` layer when spans are off: a `None` layer above a filtered
    // one would have every callsite the log leaves out checked again at each call.
    #[cfg(feature = "database")]
    if let Some(queries) = crate::query_spans::layer() {
        let _already_set = registry.with(queries).try_init();
        return;
    }
    let _already_set = registry.try_init();
}
