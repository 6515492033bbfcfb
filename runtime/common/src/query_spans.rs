//! OpenTelemetry spans of the database queries run in an exported span (while a
//! request or an event is handled, or in a span of yours), your own queries as well
//! as the generated ones. sqlx reports each query when it is done (a `sqlx::query`
//! event with its text, rows and time); the layer here turns that report into a
//! client span under the span it ran in.
//!
//! The span is named like `SELECT posts` and carries `db.system.name`,
//! `db.operation.name`, `db.collection.name`, `db.query.text` (string literals
//! replaced by `?`: the generated queries bind their values, yours may not) and
//! `db.response.returned_rows`. Queries outside any exported span (migrations at
//! start-up) get none.
//!
//! Installed by `telemetry::init` only when spans are exported: otherwise sqlx's
//! reports stay as cheap as before (off unless `RUST_LOG` asks for them).
//! Requests that are not traced (health probes, metrics scrapes) export no query
//! spans either.
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
/// only those (and the spans they may run in) reach it.
pub fn layer<S>() -> Filtered<QuerySpans, Queries, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    QuerySpans.with_filter(Queries)
}

/// Turns each query sqlx reports into a span; see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct QuerySpans;

/// Lets through sqlx's query reports made while a request or event is handled,
/// and the spans such a report may be made in (a handler's own `#[instrument]`
/// span, say: SQLite's thread finds the request through them).
#[derive(Debug, Clone, Copy)]
pub struct Queries;

impl<S> Filter<S> for Queries
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if !crate::otel::enabled() {
            return false;
        }
        crate::otel::is_hop(meta)
            || ((meta.is_span() || is_query_report(meta)) && parent(cx.lookup_current()).is_some())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_query_report(meta) || meta.is_span() {
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

/// Notes `hop`, when it is an exported span, on `span` (the log span of a request or
/// an event): sqlx runs SQLite's queries on a thread of its own, inside the caller's
/// log span but out of reach of the task's trace context.
pub fn attach(span: &tracing::Span, hop: &crate::trace::Hop) {
    if !hop.exported {
        return;
    }
    let ctx = crate::otel::hop_parent(hop);
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        {
            span.extensions_mut().insert(ctx);
        }
    });
}

/// The exported span a query runs in: the innermost of your own spans it runs in
/// (`#[instrument]`), the task's hop, or the hop noted on a log span it runs in.
fn parent<R: for<'a> LookupSpan<'a>>(
    current: Option<tracing_subscriber::registry::SpanRef<'_, R>>,
) -> Option<opentelemetry::Context> {
    crate::otel::current_span()
        .or_else(crate::otel::exported_hop_parent)
        .or_else(|| {
            current?
                .scope()
                .find_map(|span| span.extensions().get::<opentelemetry::Context>().cloned())
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

/// `sql` with its literals replaced by `?` (strings, `E'...'` strings with
/// backslash escapes, dollar-quoted strings, numbers) and its comments dropped:
/// values a query did not bind stay out of the exported span. Quoted identifiers
/// and bind parameters (`$1`, `?`) are kept.
fn redact(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_word = i > 0 && (word(chars[i - 1]) || chars[i - 1] == '$');
        match c {
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
                out.push(' ');
                continue;
            }
            '"' | '`' => {
                // A quoted identifier, kept whole (a doubled quote stays inside).
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    i += 1;
                    if chars[i - 1] == c {
                        if chars.get(i) == Some(&c) {
                            out.push(c);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
                continue;
            }
            '\'' => {
                // E'...' takes backslash escapes: its prefix goes with the literal.
                let escapes =
                    out.ends_with(['E', 'e']) && !out[..out.len() - 1].ends_with(|p: char| word(p));
                if escapes {
                    out.pop();
                }
                i += 1;
                while i < chars.len() {
                    match chars[i] {
                        '\\' if escapes => i += 2,
                        '\'' if chars.get(i + 1) == Some(&'\'') => i += 2,
                        '\'' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                out.push('?');
                continue;
            }
            '$' if !after_word && !next.is_some_and(|n| n.is_ascii_digit()) => {
                // $tag$...$tag$ (the tag may be empty).
                let tag_end = (i + 1..chars.len()).find(|&j| !word(chars[j]));
                if let Some(end) = tag_end.filter(|&j| chars[j] == '$') {
                    let tag: String = chars[i..=end].iter().collect();
                    let body: String = chars[end + 1..].iter().collect();
                    let close = body.find(&tag).map_or(chars.len(), |at| {
                        end + 1 + body[..at].chars().count() + tag.chars().count()
                    });
                    out.push('?');
                    i = close;
                    continue;
                }
            }
            c if c.is_ascii_digit() && !after_word => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push('?');
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
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
        let cases = [
            (
                "SELECT * FROM users WHERE email = 'a@b.c' AND id = $1",
                "SELECT * FROM users WHERE email = ? AND id = $1",
            ),
            ("SELECT 'it''s', 'x'", "SELECT ?, ?"),
            ("SELECT 'unterminated", "SELECT ?"),
            ("SELECT 'é'", "SELECT ?"),
            // A quote in a comment or an identifier starts no literal.
            (
                "SELECT 1 -- don't\nFROM t WHERE email = 'a@b.c'",
                "SELECT ? \nFROM t WHERE email = ?",
            ),
            (
                "SELECT /* it's */ x FROM t WHERE y = 'secret'",
                "SELECT   x FROM t WHERE y = ?",
            ),
            (
                r#"SELECT "o'neil", "a""b" FROM t WHERE x = 'secret'"#,
                r#"SELECT "o'neil", "a""b" FROM t WHERE x = ?"#,
            ),
            // Backslash escapes only in E'...'.
            (r"SELECT E'it\'s secret' FROM t", "SELECT ? FROM t"),
            (r"SELECT 'a\', 'b'", "SELECT ?, ?"),
            ("SELECT $$secret$$, $tag$it's$tag$, $1", "SELECT ?, ?, $1"),
            ("SELECT $x$never closed", "SELECT ?"),
            (
                "SELECT t1.a FROM t1 LIMIT 10 OFFSET 2.5",
                "SELECT t1.a FROM t1 LIMIT ? OFFSET ?",
            ),
            (
                "INSERT INTO t (a) VALUES (?, 42)",
                "INSERT INTO t (a) VALUES (?, ?)",
            ),
        ];
        for (sql, redacted) in cases {
            assert_eq!(redact(sql), redacted, "{sql}");
        }
    }

    #[test]
    fn redacting_never_panics() {
        // Every string of up to five of the characters the reading turns on.
        let alphabet: Vec<char> = "'\"$-/*\\E1a é\n".chars().collect();
        let mut sql = Vec::new();
        fn each(alphabet: &[char], sql: &mut Vec<char>, left: usize) {
            let _ = redact(&sql.iter().collect::<String>());
            if left > 0 {
                for &c in alphabet {
                    sql.push(c);
                    each(alphabet, sql, left - 1);
                    sql.pop();
                }
            }
        }
        each(&alphabet, &mut sql, 5);
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
            summary: "SELECT now()".into(),
            ..Report::default()
        };
        assert_eq!(short.text(), "SELECT now()");
    }
}
