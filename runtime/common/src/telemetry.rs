//! Structured logs with `tracing`: human-readable by default, one JSON object per
//! line with `LOG_FORMAT=json`; the level comes from `RUST_LOG`. Colours only on a
//! terminal (never in a container's or a file's log) and never with `NO_COLOR`.
//! Where spans are exported (`otel.rs`), the spans of your own code are exported
//! with them, and database queries become spans too (`query_spans.rs`).
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::io::IsTerminal as _;

use tracing::{Dispatch, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
/// Calling it twice (as tests that spawn several apps do) keeps the first one.
pub fn init(default_filter: &str) {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let export = crate::otel::configured();
    let _already_set = subscriber(filter, json, std::io::stdout, export).try_init();
}

/// What [`init`] installs, logging to `writer` what `filter` lets through; with
/// `export`, the spans of your own code are exported too, and so are database
/// queries (where the project has a database).
fn subscriber<W>(filter: impl Fn() -> EnvFilter, json: bool, writer: W, export: bool) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // With spans exported, each layer has a filter of its own: the spans of queries
    // read sqlx's reports whatever level the log shows, and your spans are exported
    // at the levels the log shows.
    if export {
        let layers = tracing_subscriber::registry()
            .with(logs(json, writer).with_filter(filter()))
            .with(crate::otel::layer(filter()));
        #[cfg(feature = "database")]
        return layers.with(crate::query_spans::layer()).into();
        #[cfg(not(feature = "database"))]
        return layers.into();
    }
    // Without, one filter for the whole subscriber: a filter of the log layer's own
    // would keep its answer to a question no event followed (sqlx asks whether a
    // query is to be logged) and drop the next line.
    tracing_subscriber::registry()
        .with(filter())
        .with(logs(json, writer))
        .into()
}

/// The log layer: JSON lines, or text in colour on a terminal.
fn logs<S, W>(json: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    if json {
        Box::new(
            fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(writer),
        )
    } else {
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Box::new(fmt::layer().with_ansi(colour).with_writer(writer))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_question_the_filter_says_no_to_does_not_silence_the_next_line() {
        for export in [false, true] {
            let out = Shared::default();
            let writer = out.clone();
            let dispatch = subscriber(
                || EnvFilter::new("info,msgen_runtime_common=debug"),
                false,
                move || writer.clone(),
                export,
            );
            question_then_line(&dispatch);
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            assert!(
                text.contains("the line after the question"),
                "export {export}: {text:?}"
            );
        }
    }

    fn question_then_line(dispatch: &Dispatch) {
        tracing::dispatcher::with_default(dispatch, || {
            // What sqlx asks (through the `log` bridge) after each query.
            let question = tracing::callsite!(
                name: "query",
                kind: tracing::metadata::Kind::EVENT,
                target: "sqlx::query",
                level: tracing::Level::DEBUG,
                fields: []
            );
            let _ = dispatch.enabled(tracing::callsite::Callsite::metadata(question));
            tracing::info!("the line after the question");
        });
    }
}
