//! OpenTelemetry spans of the database queries run while a request or an event is
//! handled, your own queries as well as the generated ones. sqlx reports each query
//! when it is done (a `sqlx::query` event with its text, rows and time); the layer
//! here turns that report into a client span under the request's (or event's) span.
//!
//! The span is named like `SELECT posts` and carries `db.system.name`,
//! `db.operation.name`, `db.collection.name`, `db.query.text` (string literals
//! replaced by `?`: the generated queries bind their values, yours may not) and
//! `db.response.returned_rows`. Queries outside a request (migrations at start-up)
//! get none.
//!
//! Installed by `telemetry::init` only when spans are exported: otherwise sqlx's
//! reports stay as cheap as before (off unless `RUST_LOG` asks for them).
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Registry;

use crate::trace::TraceContext;

/// The target of sqlx's report of a finished query.
const TARGET: &str = "sqlx::query";

/// The most of a query's text a span carries.
const MAX_TEXT: usize = 2048;

/// The database this process queries (`postgresql`, `sqlite`), named by `db.rs`
/// when it opens the pool.
static SYSTEM: OnceLock<&'static str> = OnceLock::new();

/// Names the database this process queries, for the spans' `db.system.name`.
pub fn database(system: &'static str) {
    let _ = SYSTEM.set(system);
}

/// The layer turning sqlx's query reports into spans, with the filter that lets
/// only those reach it; `None` (nothing installed) when spans are not exported.
pub fn layer<S>() -> Option<Filtered<QuerySpans, Queries, S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    crate::otel::configured().then(|| QuerySpans.with_filter(Queries))
}

/// Turns each query sqlx reports into a span; see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct QuerySpans;

/// Lets through sqlx's query reports made while a request or event is handled, and
/// nothing else (so every other log line costs what it did).
#[derive(Debug, Clone, Copy)]
pub struct Queries;

impl<S> Filter<S> for Queries
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if is_hop(meta) {
            return crate::otel::enabled();
        }
        is_query_report(meta) && crate::otel::enabled() && parent(cx.lookup_current()).is_some()
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_query_report(meta) || is_hop(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    // sqlx reports queries at DEBUG (slow ones at WARN) unless the pool says otherwise.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

/// sqlx's report, or its question whether a report is wanted (`enabled!`, whose
/// metadata is neither event nor span).
fn is_query_report(meta: &Metadata<'_>) -> bool {
    !meta.is_span() && meta.target() == TARGET
}

/// A span of a request or an event being handled (they carry its `trace_id`).
fn is_hop(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.fields().field("trace_id").is_some()
}

/// Notes `hop` on `span` (the log span of a request or an event): sqlx runs SQLite's
/// queries on a thread of its own, inside the caller's log span but out of reach of
/// the task's trace context.
pub fn attach(span: &tracing::Span, hop: TraceContext) {
    if !crate::otel::enabled() {
        return;
    }
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        {
            span.extensions_mut().insert(hop);
        }
    });
}

/// The hop a query runs in: the task's, or the one noted on a log span it runs in.
fn parent<R: for<'a> LookupSpan<'a>>(
    current: Option<tracing_subscriber::registry::SpanRef<'_, R>>,
) -> Option<TraceContext> {
    crate::trace::current().or_else(|| {
        current?
            .scope()
            .find_map(|span| span.extensions().get::<TraceContext>().copied())
    })
}

impl<S> Layer<S> for QuerySpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let Some(parent) = parent(cx.event_span(event)) else {
            return;
        };
        let mut report = Report::default();
        event.record(&mut report);
        let text = report.text();
        let (operation, collection) = summarize(&text);
        let mut attributes = vec![KeyValue::new(
            "db.system.name",
            SYSTEM.get().copied().unwrap_or("other_sql"),
        )];
        let mut name = operation.clone().unwrap_or_else(|| "query".into());
        if let Some(op) = operation {
            attributes.push(KeyValue::new("db.operation.name", op));
        }
        if let Some(table) = collection {
            name = format!("{name} {table}");
            attributes.push(KeyValue::new("db.collection.name", table));
        }
        attributes.push(KeyValue::new("db.query.text", text));
        if let Some(rows) = report.rows_returned.and_then(|n| i64::try_from(n).ok()) {
            attributes.push(KeyValue::new("db.response.returned_rows", rows));
        }
        let took = Duration::try_from_secs_f64(report.elapsed_secs).unwrap_or_default();
        let ended = SystemTime::now();
        let started = ended.checked_sub(took).unwrap_or(ended);
        crate::otel::record(SpanKind::Client, name, &parent, attributes, started, ended);
    }
}

/// The fields of one sqlx query report.
#[derive(Debug, Default)]
struct Report {
    summary: String,
    statement: String,
    rows_returned: Option<u64>,
    elapsed_secs: f64,
}

impl Report {
    /// The query's text, literals replaced: sqlx gives the whole text only when it
    /// is longer than its summary (the first four words).
    fn text(&self) -> String {
        let text = match self.statement.trim() {
            "" => self.summary.as_str(),
            whole => whole,
        };
        let mut text = redact(text);
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    }
}

impl Visit for Report {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows_returned = Some(value);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// `sql` with each string literal (`'...'`, quotes doubled inside) replaced by `?`:
/// values a query did not bind stay out of the exported span.
fn redact(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            out.push(c);
            continue;
        }
        // Skip to the closing quote; `''` is a quote inside the literal.
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                }
                Some('\'') | None => break,
                Some(_) => {}
            }
        }
        out.push('?');
    }
    out
}

/// The operation (`SELECT`, `INSERT`, ...) and the table of a query, where a
/// plain reading finds them: the word after `FROM` (a `SELECT` or `DELETE`),
/// `INTO` (an `INSERT`) or `UPDATE`, quotes removed.
fn summarize(sql: &str) -> (Option<String>, Option<String>) {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let operation = words
        .first()
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|w| w.to_ascii_uppercase());
    let after = match operation.as_deref() {
        Some("SELECT" | "DELETE") => "FROM",
        Some("INSERT") => "INTO",
        Some("UPDATE") => "UPDATE",
        _ => return (operation, None),
    };
    let table = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case(after))
        .and_then(|i| words.get(i + 1))
        .map(|w| {
            w.trim_end_matches([',', ';', ')'])
                .split('(')
                .next()
                .unwrap_or_default()
                .replace(['"', '`'], "")
        })
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        });
    (operation, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_replaced_and_bound_values_stay_placeholders() {
        assert_eq!(
            redact("SELECT * FROM users WHERE email = 'a@b.c' AND id = $1"),
            "SELECT * FROM users WHERE email = ? AND id = $1"
        );
        assert_eq!(redact("SELECT 'it''s', 'x'"), "SELECT ?, ?");
        assert_eq!(redact("SELECT 'unterminated"), "SELECT ?");
        assert_eq!(redact("SELECT 'é'"), "SELECT ?");
    }

    #[test]
    fn a_query_is_named_by_its_operation_and_table() {
        let cases = [
            (
                r#"SELECT "id", "title" FROM "posts" WHERE "id" = $1"#,
                "SELECT",
                Some("posts"),
            ),
            (
                r#"INSERT INTO "posts" ("title") VALUES ($1)"#,
                "INSERT",
                Some("posts"),
            ),
            (
                r#"update blog.posts set title = $1"#,
                "UPDATE",
                Some("blog.posts"),
            ),
            (
                r#"DELETE FROM "posts" WHERE "id" = $1"#,
                "DELETE",
                Some("posts"),
            ),
            ("SELECT COUNT(*) FROM posts;", "SELECT", Some("posts")),
            ("INSERT INTO t(a) VALUES (1)", "INSERT", Some("t")),
            ("SELECT 1", "SELECT", None),
            ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH", None),
            ("SELECT * FROM (SELECT 1) s", "SELECT", None),
        ];
        for (sql, operation, table) in cases {
            let (op, t) = summarize(sql);
            assert_eq!(op.as_deref(), Some(operation), "{sql}");
            assert_eq!(t.as_deref(), table, "{sql}");
        }
        assert_eq!(summarize(""), (None, None));
    }

    #[test]
    fn a_long_text_is_cut_at_a_character() {
        let report = Report {
            statement: format!("SELECT {} FROM t", "é".repeat(MAX_TEXT)),
            ..Report::default()
        };
        let text = report.text();
        assert!(text.len() <= MAX_TEXT + '…'.len_utf8(), "{}", text.len());
        assert!(text.ends_with('…'));
        let short = Report {
            summary: "SELECT 1".into(),
            ..Report::default()
        };
        assert_eq!(short.text(), "SELECT 1");
    }
}
