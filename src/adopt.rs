//! Reading and cutting a monolith msgen did not generate (`msgen split M --from DIR`).
//!
//! The monolith is any axum + sqlx crate whose bounded contexts are top-level
//! modules (`src/<m>.rs` or `src/<m>/mod.rs`). Everything here is pure: the command
//! reads the crate into a [`Source`], [`plan`] works out every change with syn, and
//! only when the plan is complete does the command write anything.
//!
//! The cut, in two copies of the crate:
//! - **the monolith** loses only the module's files, its `mod` item and the router
//!   calls that mount it (`.nest(...)`, `.merge(...)`, `.route(...)`). Where the rest
//!   of the crate uses the module's items (a type, a function), the module stays as
//!   an unmounted copy so that the monolith still builds, each use reported; a use
//!   of the router a mount calls, outside a router call, is refused;
//! - **the new service** is the crate's root files (its `main`, state, pool set-up)
//!   with every *other* module's router calls removed, the module itself, and the
//!   modules it still needs (shared error types, extractors), copied unchanged. Its
//!   listener reads `HOST` and `PORT`, and it answers `GET /health`. Its tables
//!   and migrations are the `data` module's.
//!
//! Where a change cannot be made safely (a macro hiding a path, a statement mixing
//! tables), the plan refuses or reports; it never guesses.
//!
//! [`plan`] runs the stages in order, each in a module of its own with its unit
//! tests on in-memory crates (`testing`): `manifest` (what Cargo.toml allows),
//! `scan` (the crate read, its uses and mounts), `cut` (both sides' code),
//! `routes` (the gateway's paths), `listener` (HOST, PORT, `/health`, the
//! schema), `data` (tables and migrations), `offline` (sqlx's query data) and
//! `env` (what each side reads from its environment).

use std::collections::BTreeMap;
use std::fmt;

use proc_macro2::LineColumn;
use syn::spanned::Spanned as _;

use crate::model::ServiceName;
mod cut;
mod data;
mod env;
mod listener;
mod manifest;
mod offline;
pub mod own_db;
mod routes;
mod scan;
#[cfg(test)]
mod testing;

pub use data::moved_tables;
pub use scan::module_uses;
use scan::{parse, sql_literals, Parsed};

/// The monolith as read from disk: paths relative to its directory, `/`-separated.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub manifest: String,
    /// Every `.rs` file under `src/`.
    pub files: BTreeMap<String, String>,
    /// `<migrations_dir>/*.sql`, by file name.
    pub migrations: BTreeMap<String, String>,
    /// Where the migrations are, relative to the crate: `migrations`, or the
    /// directory `sqlx::migrate!("..")` names.
    pub migrations_dir: String,
    pub has_build_script: bool,
    /// The monolith has a `Dockerfile` (compose builds it from its directory).
    pub has_dockerfile: bool,
    /// The monolith has a `Cargo.lock`.
    pub has_lock: bool,
    /// The monolith has a `.dockerignore`.
    pub has_dockerignore: bool,
    /// Tables that services split out earlier own (table → service): they stay
    /// with those services, never copied into this one.
    pub owned_elsewhere: BTreeMap<String, ServiceName>,
    /// The `.rs` files of services split out earlier (service, path in the
    /// service, text): a table that moves now may be one they read.
    pub earlier_services: Vec<(ServiceName, String, String)>,
    /// sqlx's offline query data (`.sqlx/query-*.json`), by file name.
    pub offline_queries: BTreeMap<String, String>,
    /// The prefixes and routes the project's services serve already (services
    /// split out earlier): a prefix shared with one of them is routed by route.
    pub service_routes: Vec<String>,
    /// The schemas of the services split out earlier, in `services.toml`'s order.
    pub schemas: Vec<String>,
}

/// A problem that stops the split; nothing has been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub Vec<String>);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{line}")?;
        }
        Ok(())
    }
}

/// The database the monolith's sqlx talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// Everything `split --from` changes, worked out before anything is written.
#[derive(Debug, Clone, Default)]
pub struct Cut {
    /// Cargo package name of the monolith.
    pub package: String,
    pub database: Option<Db>,
    /// Majors of the monolith's axum and sqlx (`0.7`), as its Cargo.toml asks.
    pub axum_major: Option<String>,
    pub sqlx_major: Option<String>,
    /// The monolith's port, as its listener shows it (or 3000).
    pub monolith_port: u16,
    /// Monolith files rewritten in place (relative path → new text).
    pub monolith_edits: BTreeMap<String, String>,
    /// Monolith files removed (the module's).
    pub monolith_removals: Vec<String>,
    /// Files of the new service crate, relative to its directory.
    pub service_files: BTreeMap<String, String>,
    /// Gateway prefixes the new service now serves.
    pub paths: Vec<String>,
    /// Exact routes it serves, where it shares a prefix with another module.
    pub routes: Vec<String>,
    /// What the service's code reads from its environment (msgen's own variables
    /// aside), and what the monolith's does after the cut.
    pub service_env: Vec<crate::model::EnvVar>,
    pub monolith_env: Vec<crate::model::EnvVar>,
    pub report: CutReport,
}

#[derive(Debug, Clone, Default)]
pub struct CutReport {
    /// `file:line  .nest("/api/blog", blog::router())` removed from the monolith.
    pub unmounted: Vec<String>,
    /// Modules copied into the service besides the extracted one, with why.
    pub copied_modules: Vec<String>,
    pub tables: Vec<String>,
    /// Every query site that reads a table across the cut, with its owner.
    pub cross_reads: Vec<String>,
    /// The same, for each service split out earlier that reads a table that moves
    /// now: added to that service's own report.
    pub earlier_reads: BTreeMap<String, Vec<String>>,
    /// How the service's compile-time checked queries build without a database.
    pub offline: Vec<String>,
    /// Migration statements the service got, by file.
    pub migrations: Vec<String>,
    /// What a person must look at.
    pub human: Vec<String>,
}

/// Plans the extraction of `module` from `src` into a service called `service`
/// (crate `<service>-service`) listening on `port`, its tables in `schema` of the
/// monolith's PostgreSQL database (`None`: a database of its own).
///
/// The stages, each a function of what the ones before found: read the crate,
/// scan it, unmount the module from the monolith, work out the gateway's paths,
/// choose the service's modules, rewrite its listener, assemble its sources, cut
/// the data, then report.
pub fn plan(
    src: &Source,
    module: &str,
    service: &str,
    port: u16,
    schema: Option<&str>,
) -> Result<Cut, Refusal> {
    let c = scan::Crate::read(src, module)?;
    let scanned = scan::scan(&c)?;
    let mut monolith = cut::unmount(&c, &scanned, module, service)?;
    let routing = routes::routing(&scanned, module, &src.service_routes)?;
    let mut copy = cut::service_modules(&c, &scanned, module);
    let mut report = CutReport::default();
    cut::report_modules(
        &mut report,
        &monolith,
        &copy,
        module,
        service,
        &src.earlier_services,
    );
    let monolith_port =
        listener::listener(&c, &scanned, &mut copy, module, port, schema, &mut report)?;
    let mut service_files = cut::service_sources(&c, &copy, service)?;

    // ---- Tables and migrations, and the checked queries' offline data.
    let earlier = scan::parse_earlier(&src.earlier_services);
    let data = data::DataCut {
        migrations: &src.migrations,
        dir: &src.migrations_dir,
        owned_elsewhere: &src.owned_elsewhere,
        earlier: &earlier,
        parsed: &c.parsed,
        module,
        service,
        schema,
        earlier_schemas: &src.schemas,
        routes: &scanned.module_routes(),
    }
    .run(&mut report);
    service_files.extend(data.service_files);
    let kept = c.parsed.iter().filter(|f| copy.keeps(f));
    service_files.extend(offline::copy_data(
        kept,
        &src.offline_queries,
        service,
        &mut report,
    ));
    monolith.edited.extend(data.monolith_files);

    // ---- What else needs a person, and what each side reads from its
    // environment besides what msgen sets (services.toml's `env`, and from there
    // compose, Kubernetes and .env.example).
    let service_env = env::env_of(
        service_files
            .iter()
            .filter(|(p, _)| p.ends_with(".rs"))
            .map(|(_, t)| t.as_str()),
        // The listener msgen added reads HOST and PORT, with defaults that suit.
        &["DATABASE_URL", "HOST"],
    );
    let monolith_env = env::env_of(
        c.parsed
            .iter()
            .filter(|f| f.top.as_deref() != Some(module))
            .map(|f| monolith.edited.get(&f.rel).unwrap_or(&f.text).as_str()),
        &[],
    );
    if src.has_build_script {
        report.human.push(
            "the monolith has a build script (build.rs): the service was not given a copy, but one of msgen's that rebuilds it when its migrations change; merge what it needs of the monolith's".into(),
        );
    }
    service_files.insert(
        "build.rs".into(),
        migrations_build_script(&src.migrations_dir),
    );
    monolith_docker(
        src,
        &c.manifest.bin_name,
        monolith_port,
        &mut monolith.edited,
        &mut report,
    );
    for m in scanned.mounts_of(module) {
        report
            .unmounted
            .push(format!("{}:{}: {}", m.file, m.line, m.text.trim()));
    }

    Ok(Cut {
        package: c.manifest.package.clone(),
        database: c.manifest.database,
        axum_major: c.manifest.major("axum"),
        sqlx_major: c.manifest.major("sqlx"),
        monolith_port,
        monolith_removals: if monolith.keeps_module() {
            Vec::new()
        } else {
            monolith.module_files.clone()
        },
        monolith_edits: monolith.edited,
        service_env,
        monolith_env,
        service_files,
        paths: routing.paths,
        routes: routing.routes,
        report,
    })
}

/// compose builds the monolith from its directory: one that has no Dockerfile
/// gets one (and a `.dockerignore`), written once and the team's from then on.
fn monolith_docker(
    src: &Source,
    bin: &str,
    port: u16,
    edited: &mut BTreeMap<String, String>,
    report: &mut CutReport,
) {
    if src.has_dockerfile || edited.contains_key("Dockerfile") {
        return;
    }
    edited.insert(
        "Dockerfile".into(),
        monolith_dockerfile(bin, port, src.has_lock),
    );
    if !src.has_dockerignore {
        // The build context is the monolith's directory: not its local builds.
        edited.insert(".dockerignore".into(), "target\n.git\n.env\n".into());
    }
    report.human.push(format!(
        "the monolith had no Dockerfile: msgen wrote one (`Dockerfile` in its directory, which compose builds; `cargo build --release --bin {bin}`); it is yours to change"
    ));
}

/// A Dockerfile for a monolith that has none: its own workspace, built whole.
fn monolith_dockerfile(bin: &str, port: u16, locked: bool) -> String {
    format!(
        "# syntax=docker/dockerfile:1
# The monolith (binary `{bin}`), as `msgen split --from` found it without a Dockerfile:
# compose builds it from this directory. Written once by msgen; yours to change.

# Its dependencies decide the Rust it needs: the latest stable 1.x builds it.
FROM rust:1-slim-bookworm AS builder
WORKDIR /app
COPY . .
RUN cargo build --release{locked} --bin {bin}

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /app/target/release/{bin} /usr/local/bin/{bin}
USER 10001:10001
EXPOSE {port}
ENTRYPOINT [\"/usr/local/bin/{bin}\"]
",
        locked = if locked { " --locked" } else { "" }
    )
}

/// The service's `build.rs`: `sqlx::migrate!()` embeds the migrations when the
/// crate compiles, and cargo does not know to compile it again when one is added
/// (`split --own-database` adds one to a crate whose code did not change).
pub fn migrations_build_script(dir: &str) -> String {
    format!(
        "//! Added by `msgen split --from`: `sqlx::migrate!()` embeds the migrations at
//! compile time, so the crate is rebuilt whenever one is added or changed.

fn main() {{
    println!(\"cargo:rerun-if-changed={}\");
}}
",
        dir.replace(['\\', '"'], "")
    )
}

/// A change to a file: `range` replaced by `with` (empty: an insertion).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edit {
    range: std::ops::Range<usize>,
    with: String,
}

/// `main.rs` of a service whose library was renamed from `old` to `new`: an
/// `extern crate new as old;` after its inner attributes, so that every path the
/// monolith's binary wrote (`old::app::router`) still resolves, unchanged.
fn alias_library(main: &str, new: &str, old: &str) -> String {
    let at = syn::parse_file(main)
        .ok()
        .and_then(|ast| ast.attrs.last().map(|a| offset(main, a.span().end())))
        .map_or(0, |end| {
            main[end..].find('\n').map_or(main.len(), |i| end + i + 1)
        });
    let line = format!(
        "// The library is `{new}` in this service (a name of its own); the monolith's name still works here.\nextern crate {new} as {old};\n"
    );
    let mut out = String::with_capacity(main.len() + line.len() + 1);
    out.push_str(&main[..at]);
    if at > 0 {
        out.push('\n');
    }
    out.push_str(&line);
    if at == 0 {
        out.push('\n');
    }
    out.push_str(&main[at..]);
    out
}

/// Applies non-overlapping edits (an edit overlapping an earlier one is dropped).
fn apply_edits(text: &str, mut edits: Vec<Edit>) -> String {
    // Insertions at a point go before a removal starting there.
    edits.sort_by_key(|e| (e.range.start, e.range.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in edits {
        if e.range.start < at {
            continue;
        }
        out.push_str(&text[at..e.range.start]);
        out.push_str(&e.with);
        at = e.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Byte offset of a line/column (column in characters) in `text`.
fn offset(text: &str, lc: LineColumn) -> usize {
    let mut line_start = 0;
    for _ in 1..lc.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    text[line_start..]
        .char_indices()
        .nth(lc.column)
        .map_or(text.len(), |(i, _)| line_start + i)
}

fn span_range(text: &str, span: proc_macro2::Span) -> std::ops::Range<usize> {
    offset(text, span.start())..offset(text, span.end())
}

/// The whole `mod m;` item with its attributes and line, if it stands alone.
fn mod_item_range(text: &str, ast: &syn::File, m: &str) -> Option<std::ops::Range<usize>> {
    let item = ast.items.iter().find_map(|i| match i {
        syn::Item::Mod(x) if x.ident == m && x.content.is_none() => Some(x),
        _ => None,
    })?;
    let start = item
        .attrs
        .first()
        .map(|a| a.span().start())
        .unwrap_or_else(|| item.span().start());
    let mut range = offset(text, start)..offset(text, item.span().end());
    let line_start = text[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |i| range.end + i + 1);
    if text[line_start..range.start].trim().is_empty()
        && text[range.end..line_end].trim().is_empty()
    {
        range = line_start..line_end;
    }
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_library_keeps_its_old_name_in_main() {
        let main = "//! The shop.\n#![allow(dead_code)]\n\nuse shop::app;\nfn main() {}\n";
        let out = alias_library(main, "orders_service", "shop");
        assert!(
            out.starts_with("//! The shop.\n#![allow(dead_code)]\n\n// The library"),
            "{out}"
        );
        assert!(out.contains("extern crate orders_service as shop;\n"));
        syn::parse_file(&out).unwrap();
        let plain = alias_library("use shop::app;\n", "o", "shop");
        assert!(plain.starts_with("// The library"), "{plain}");
        assert!(plain.ends_with("extern crate o as shop;\n\nuse shop::app;\n"));
    }
}
