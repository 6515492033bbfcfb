//! Structured logs with `tracing`: human-readable by default, one JSON object per
//! line with `LOG_FORMAT=json`; the level comes from `RUST_LOG`. Colours only on a
//! terminal (never in a container's or a file's log) and never with `NO_COLOR`.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::io::IsTerminal as _;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
/// Calling it twice (as tests that spawn several apps do) keeps the first one.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let _already_set = if json {
        registry
            .with(fmt::layer().json().with_current_span(true))
            .try_init()
    } else {
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        registry.with(fmt::layer().with_ansi(colour)).try_init()
    };
}
