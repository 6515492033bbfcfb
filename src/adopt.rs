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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proc_macro2::{LineColumn, TokenStream, TokenTree};
use syn::spanned::Spanned as _;
use syn::visit::Visit;

use crate::model::ServiceName;
mod data;
mod offline;
pub mod own_db;

pub use data::moved_tables;

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

/// A reference from code to a top-level module of the crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ref {
    file: String,
    line: usize,
    /// Byte offset in the file, to tell whether a mount holds it.
    at: usize,
    module: String,
    path: String,
}

/// A router call that mounts a module: removing `range` unmounts it.
#[derive(Debug, Clone)]
struct Mount {
    file: String,
    line: usize,
    module: String,
    range: std::ops::Range<usize>,
    text: String,
    /// Joined prefixes of the `.nest(...)` calls around it.
    nest_prefix: String,
    /// Its own path (`.nest("/x", ..)`, `.route("/x", ..)`); `None` for `.merge(..)`,
    /// whose paths are the module's own routes.
    own: Option<String>,
    /// The function the call is in.
    in_fn: Option<String>,
    /// What replaces `range` to unmount it: nothing for a call on a router, an
    /// empty router for a module's router that is the receiver of a chain.
    with: String,
    /// The router method (`nest`, `route`, ...); empty for a receiver.
    method: String,
}

/// One parsed file with what the analysis needs.
struct Parsed {
    rel: String,
    text: String,
    ast: syn::File,
    /// Module path of the file: `[]` for root files, `["blog", "handlers"]`...
    module_path: Vec<String>,
    /// Top-level module the file belongs to, if any.
    top: Option<String>,
}

const ROUTER_METHODS: &[&str] = &["nest", "nest_service", "merge", "route", "route_service"];
/// Methods only a router has: a module's router as their receiver is mounted by
/// the chain (`blog::router().with_state(pool)`). `layer` is not one of them:
/// tower's builders have it too.
const ROUTER_ONLY_METHODS: &[&str] = &[
    "with_state",
    "route_layer",
    "fallback",
    "fallback_service",
    "into_make_service",
    "into_make_service_with_connect_info",
];

/// Plans the extraction of `module` from `src` into a service called `service`
/// (crate `<service>-service`) listening on `port`, its tables in `schema` of the
/// monolith's PostgreSQL database (`None`: a database of its own).
pub fn plan(
    src: &Source,
    module: &str,
    service: &str,
    port: u16,
    schema: Option<&str>,
) -> Result<Cut, Refusal> {
    let manifest = Manifest::read(&src.manifest)?;
    let crate_name = manifest.lib_name.clone();
    // syn drops a byte-order mark, which would shift every column of line 1.
    let files: BTreeMap<String, String> = src
        .files
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.strip_prefix('\u{feff}').unwrap_or(v).to_string(),
            )
        })
        .collect();
    let src = &Source {
        files,
        ..src.clone()
    };
    let lib_root = src.files.contains_key("src/lib.rs");
    let root_rel = if lib_root {
        "src/lib.rs"
    } else {
        "src/main.rs"
    };
    let Some(root_text) = src.files.get(root_rel) else {
        return Err(Refusal(vec![
            "no src/main.rs or src/lib.rs: split --from needs the crate of an axum application"
                .into(),
        ]));
    };
    let root_ast = parse(root_rel, root_text)?;
    let modules = declared_modules(root_rel, &root_ast)?;
    // A library crate's main.rs may declare modules of its own: they stay with it.
    let bin_modules = match (lib_root, src.files.get("src/main.rs")) {
        (true, Some(main)) => declared_modules("src/main.rs", &parse("src/main.rs", main)?)?,
        _ => Vec::new(),
    };
    if !modules.iter().any(|m| m == module) {
        let names: Vec<&str> = modules.iter().map(String::as_str).collect();
        let hint = crate::diagnostic::did_you_mean(module, &names)
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        return Err(Refusal(vec![format!(
            "no module `{module}` in {root_rel}; modules found: {}{hint}",
            if modules.is_empty() {
                "none".into()
            } else {
                modules.join(", ")
            }
        )]));
    }

    // Every file, with its place in the module tree.
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for (rel, text) in &src.files {
        let Some((module_path, top)) = place(rel, &modules, &bin_modules) else {
            continue;
        };
        match parse(rel, text) {
            Ok(ast) => parsed.push(Parsed {
                rel: rel.clone(),
                text: text.clone(),
                ast,
                module_path,
                top,
            }),
            Err(Refusal(e)) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(Refusal(errors));
    }
    let root_aliases: Vec<String> = if lib_root {
        vec![crate_name.clone()]
    } else {
        Vec::new()
    };

    let mut refs: Vec<Ref> = Vec::new();
    let mut mounts: Vec<Mount> = Vec::new();
    let mut nested_calls: Vec<(String, String)> = Vec::new();
    let mut root_routes: Vec<(String, bool)> = Vec::new();
    let mut route_literals: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for f in &parsed {
        let in_bin = f.rel == "src/main.rs"
            || f.rel.starts_with("src/bin/")
            || f.module_path
                .first()
                .is_some_and(|m| bin_modules.contains(m));
        let aliases = if in_bin {
            root_aliases.clone()
        } else {
            Vec::new()
        };
        let mut v = Scan {
            file: f,
            modules: &modules,
            aliases: &aliases,
            refs: Vec::new(),
            mounts: Vec::new(),
            nest_stack: Vec::new(),
            routes: Vec::new(),
            inline: Vec::new(),
            root_glob: false,
            current_fn: None,
            nested_calls: Vec::new(),
            problems: Vec::new(),
        };
        v.visit_file(&f.ast);
        refs.extend(v.refs);
        mounts.extend(v.mounts);
        nested_calls.extend(v.nested_calls);
        errors.extend(v.problems);
        if f.top.is_none() {
            root_routes.extend(v.routes.iter().cloned());
        }
        if let Some(top) = &f.top {
            route_literals
                .entry(top.clone())
                .or_default()
                .extend(v.routes);
        }
    }
    if !errors.is_empty() {
        return Err(Refusal(errors));
    }
    // A mount inside a helper (`fn api() -> Router`) nested elsewhere
    // (`.nest("/api", api())`) gets that prefix too.
    for m in &mut mounts {
        let Some(f) = &m.in_fn else { continue };
        let mut prefixes: Vec<&String> = nested_calls
            .iter()
            .filter(|(name, _)| name == f)
            .map(|(_, p)| p)
            .collect();
        prefixes.sort();
        prefixes.dedup();
        match prefixes.as_slice() {
            [] => {}
            [p] => m.nest_prefix = join_paths(&[(*p).clone()], &m.nest_prefix),
            _ => {
                return Err(Refusal(vec![format!(
                    "{}:{}: `{f}` mounts module `{}` and is nested under several prefixes ({}); split --from cannot tell the module's paths",
                    m.file,
                    m.line,
                    m.module,
                    prefixes.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
                )]))
            }
        }
    }
    // Nested mounts (`.merge(Router::new().nest("/x", m::r()))`) go with the outer one.
    mounts = outermost(mounts);

    let target_files: Vec<&Parsed> = parsed
        .iter()
        .filter(|f| f.top.as_deref() == Some(module))
        .collect();
    let target_mounts: Vec<&Mount> = mounts.iter().filter(|m| m.module == module).collect();
    if target_mounts.is_empty() {
        return Err(Refusal(vec![format!(
            "module `{module}` is never mounted on a router (no `.nest`, `.merge` or `.route` call names it): there are no paths to move"
        )]));
    }

    // ---- The monolith: unmount the module and drop its files.
    let mut monolith_edits: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    for m in &target_mounts {
        monolith_edits
            .entry(m.file.clone())
            .or_default()
            .push(Edit {
                range: m.range.clone(),
                with: m.with.clone(),
            });
    }
    // What else of the monolith names the module. A use of what a mount calls
    // (`blog::router()` in a helper) is a mount msgen cannot see: refused. Any other
    // use (a type, a function) keeps the module in the monolith as an unmounted
    // copy, so that the monolith still builds; the report lists each use.
    let relative = |path: &str| -> String {
        let segments: Vec<&str> = path.split("::").collect();
        match segments.iter().rposition(|s| *s == module) {
            Some(i) => segments[i + 1..].join("::"),
            None => path.to_string(),
        }
    };
    let in_target_mount = |r: &Ref| {
        target_mounts
            .iter()
            .any(|m| m.file == r.file && m.range.contains(&r.at))
    };
    let mounted: BTreeSet<String> = refs
        .iter()
        .filter(|r| r.module == module && in_target_mount(r))
        .map(|r| relative(&r.path))
        .collect();
    let mut hidden = Vec::new();
    let mut kept_uses: Vec<&Ref> = Vec::new();
    for r in refs.iter().filter(|r| r.module == module) {
        let in_target = target_files.iter().any(|f| f.rel == r.file);
        if in_target || in_target_mount(r) {
            continue;
        }
        if mounted.contains(&relative(&r.path)) {
            hidden.push(format!(
                "{}:{}: uses `{}` (module `{module}`) outside a router call",
                r.file, r.line, r.path
            ));
        } else {
            kept_uses.push(r);
        }
    }
    if !hidden.is_empty() {
        hidden.insert(
            0,
            format!(
                "the rest of the monolith uses the router of module `{module}` where msgen cannot see it mounted; the monolith would keep serving the module's paths. Mount it with `.nest`, `.merge` or `.route` (or remove these uses) first:"
            ),
        );
        return Err(Refusal(hidden));
    }
    let mod_item = mod_item_range(root_text, &root_ast, module).expect("module is declared");
    let keep_module = !kept_uses.is_empty();
    monolith_edits
        .entry(root_rel.to_string())
        .or_default()
        .push(if keep_module {
            Edit {
                range: mod_item.start..mod_item.start,
                with: format!("// Kept by `msgen split {module} --from`, unmounted: the rest of the monolith\n// still uses it (docs/split-{}.md); the `{service}` service serves its routes.\n#[allow(dead_code)]\n", service),
            }
        } else {
            Edit {
                range: mod_item,
                with: String::new(),
            }
        });
    let mut edited: BTreeMap<String, String> = BTreeMap::new();
    for (file, edits) in monolith_edits {
        let text = &parsed.iter().find(|f| f.rel == file).expect("scanned").text;
        let new = apply_edits(text, edits);
        parse(&file, &new).map_err(|_| {
            Refusal(vec![format!(
                "{file}: unmounting `{module}` would leave code that does not parse; nothing was changed"
            )])
        })?;
        edited.insert(file, new);
    }

    // ---- Paths the service takes over, and that must not be the monolith's.
    let routes_of = |m: &Mount| -> Vec<(String, bool)> {
        let at = |base: &str, p: &str| axum_pattern(&join_paths(&[base.to_string()], p));
        let module_routes = |base: &str| -> Vec<(String, bool)> {
            route_literals
                .get(&m.module)
                .map(|r| r.iter().map(|(p, exact)| (at(base, p), *exact)).collect())
                .unwrap_or_default()
        };
        match (m.method.as_str(), &m.own) {
            ("nest", Some(own)) => {
                let base = at(&m.nest_prefix, own);
                let routes = module_routes(&base);
                if routes.is_empty() {
                    vec![(base, false)]
                } else {
                    routes
                }
            }
            ("route" | "route_service", Some(own)) => vec![(at(&m.nest_prefix, own), true)],
            (_, Some(own)) => vec![(at(&m.nest_prefix, own), false)],
            (_, None) => module_routes(&m.nest_prefix),
        }
    };
    let mine: Vec<(String, bool)> = target_mounts.iter().flat_map(|m| routes_of(m)).collect();
    let theirs: Vec<(&Mount, String)> = mounts
        .iter()
        .filter(|m| m.module != module)
        .flat_map(|m| routes_of(m).into_iter().map(move |(r, _)| (m, r)))
        .collect();
    // A nested module's prefix is its own (every path below it, read or not);
    // other mounts are known by their routes' fixed beginnings.
    let mut paths: BTreeSet<String> = BTreeSet::new();
    let mut nested: BTreeSet<String> = BTreeSet::new();
    for m in &target_mounts {
        match (m.method.as_str(), &m.own) {
            ("nest", Some(own)) => {
                let p = static_prefix(&join_paths(std::slice::from_ref(&m.nest_prefix), own));
                nested.insert(p.clone());
                paths.insert(p);
            }
            _ => paths.extend(routes_of(m).iter().map(|(r, _)| static_prefix(r))),
        }
    }
    let mut problems = Vec::new();
    if paths.is_empty() || paths.iter().any(|p| p.is_empty() || p == "/") {
        problems.push(format!(
            "module `{module}` serves the root path `/` (or paths msgen could not read from its router calls): the gateway could not tell its requests from the monolith's"
        ));
    }
    // A prefix another module also serves under is routed by the module's own
    // routes instead (`/api/things/{id}/children` while `/api/things/{id}` stays).
    let mut exact: BTreeSet<String> = BTreeSet::new();
    for p in paths.clone() {
        // A service split earlier is routed most specific first, so it shares
        // only a prefix read off routes, never the module's own nest prefix.
        let shared = theirs.iter().any(|(_, o)| under(o, &p))
            || (!nested.contains(&p) && src.service_routes.iter().any(|o| under(o, &p)));
        if p.is_empty() || !shared {
            continue;
        }
        paths.remove(&p);
        for (r, is_exact) in mine.iter().filter(|(r, _)| under(r, &p)) {
            if *is_exact {
                exact.insert(r.clone());
            } else {
                paths.insert(r.clone());
            }
        }
    }
    let entries = paths
        .iter()
        .map(|p| (p, false))
        .chain(exact.iter().map(|r| (r, true)));
    for (mine, is_exact) in entries {
        for (m, other) in &theirs {
            if captures(mine, is_exact, other) {
                problems.push(format!(
                    "{}:{}: module `{}` serves {other}, which `{module}`'s {} {mine} would take from it: split --from cannot send these to different services",
                    m.file,
                    m.line,
                    m.module,
                    if is_exact { "route" } else { "prefix" }
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Refusal(problems));
    }
    let mut paths: Vec<String> = paths.into_iter().collect();
    // A prefix covered by a shorter one adds nothing; nor does a route below one.
    let all = paths.clone();
    paths.retain(|p| !all.iter().any(|q| q != p && under(p, q)));
    let routes: Vec<String> = exact
        .into_iter()
        .filter(|r| !paths.iter().any(|p| under(r, p)))
        .collect();

    // ---- The service: root files and the modules it needs.
    let mut svc_edits: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    let mut unmounted_others: BTreeSet<String> = BTreeSet::new();
    for m in mounts.iter().filter(|m| m.module != module) {
        svc_edits.entry(m.file.clone()).or_default().push(Edit {
            range: m.range.clone(),
            with: m.with.clone(),
        });
        unmounted_others.insert(m.module.clone());
    }
    // The modules it needs: the target and every module that is not a bounded
    // context of its own (no router mounts it: error types, state, macros, trait
    // impls, which may be used in ways a path does not show), then whatever kept
    // code names, transitively.
    let contexts: BTreeSet<&String> = mounts.iter().map(|m| &m.module).collect();
    let mut needed: BTreeSet<String> = modules
        .iter()
        .filter(|m| *m == module || !contexts.contains(m))
        .cloned()
        .collect();
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let before = needed.len();
        for r in &refs {
            let f = parsed.iter().find(|f| f.rel == r.file).expect("scanned");
            let from_kept = match &f.top {
                None => true,
                Some(t) => needed.contains(t),
            };
            let in_removed_mount = mounts
                .iter()
                .any(|m| m.module != module && m.file == r.file && m.range.contains(&r.at));
            if from_kept && !in_removed_mount {
                needed.insert(r.module.clone());
                why.entry(r.module.clone())
                    .or_insert_with(|| format!("{}:{} uses `{}`", r.file, r.line, r.path));
            }
        }
        if needed.len() == before {
            break;
        }
    }
    for m in &modules {
        if !needed.contains(m) {
            let range = mod_item_range(root_text, &root_ast, m).expect("declared");
            svc_edits
                .entry(root_rel.to_string())
                .or_default()
                .push(Edit {
                    range,
                    with: String::new(),
                });
        }
    }
    // Other contexts copied along, and shared modules nothing kept names, are
    // allowed to have unused code.
    for m in needed
        .iter()
        .filter(|m| *m != module && (unmounted_others.contains(*m) || !why.contains_key(*m)))
    {
        let at = mod_item_range(root_text, &root_ast, m)
            .expect("declared")
            .start;
        svc_edits
            .entry(root_rel.to_string())
            .or_default()
            .push(Edit {
                range: at..at,
                with: "// Copied along by `msgen split --from`: the service may not use all of it.\n#[allow(dead_code)]\n".into(),
            });
    }
    let mut report = CutReport::default();
    if keep_module {
        report.human.push(format!(
            "module `{module}` stays in the monolith too, unmounted and `#[allow(dead_code)]`, because the rest of the monolith uses it (below); the service has its own copy. Remove it from the monolith once these uses call the service's API"
        ));
    }
    for r in &kept_uses {
        report.human.push(format!(
            "{}:{}: uses `{}` of module `{module}`, kept on the monolith's copy (whose code runs against the tables the `{service}` service owns now): make it a call to the service's API",
            r.file, r.line, r.path
        ));
    }
    for (m, reason) in &why {
        if m == module {
            continue;
        }
        let context = if unmounted_others.contains(m) {
            format!("module `{m}` (a bounded context of its own: its routes are not mounted here, but its code runs in the service, against the service's database)")
        } else {
            format!("module `{m}`")
        };
        report
            .copied_modules
            .push(format!("{context}, because {reason}"));
        if unmounted_others.contains(m) {
            report.human.push(format!(
                "{reason}: a call across the cut into `{m}`, kept in process on a copy of `{m}`; make it an HTTP call to the monolith if `{m}` reads its own tables"
            ));
        }
        // A module an earlier split made a service, still in the monolith for
        // the code that uses it.
        if let Some((svc, _, _)) = src
            .earlier_services
            .iter()
            .find(|(s, _, _)| s.snake() == *m)
        {
            report.human.push(format!(
                "{reason}: a call into `{m}`, which is service `{}` since an earlier split, kept in process on a copy (against that service's tables); make it a call to its API ({}_SERVICE_URL)",
                svc.as_str(),
                svc.upper()
            ));
        }
    }
    for m in needed
        .iter()
        .filter(|m| *m != module && !why.contains_key(*m))
    {
        report.copied_modules.push(format!(
            "module `{m}` (no router mounts it: shared code, kept whole; remove it if the service does not need it)"
        ));
    }

    // Listener, health check: the service must not take the monolith's port.
    let mut listener = None;
    let mut serve = None;
    let mut migrate_run = None;
    // Root files first: main's listener is the one that serves.
    let mut kept_files: Vec<&Parsed> = parsed
        .iter()
        .filter(|f| match &f.top {
            None => true,
            Some(t) => needed.contains(t),
        })
        .collect();
    kept_files.sort_by_key(|f| (f.top.is_some(), f.rel != "src/main.rs"));
    for f in kept_files {
        let mut v = Listen::default();
        v.visit_file(&f.ast);
        if let Some(arg) = v.bind_arg {
            listener.get_or_insert((f.rel.clone(), span_range(&f.text, arg)));
        }
        if let Some(arg) = v.serve_app {
            serve.get_or_insert((f.rel.clone(), arg));
        }
        if let Some(arg) = v.migrate_run {
            migrate_run.get_or_insert((f.rel.clone(), span_range(&f.text, arg)));
        }
    }
    // A `/health` the service already serves (a second one would make axum panic):
    // one in its root files or shared modules, or the module's own when it is
    // merged at the root.
    let merged_at_root = target_mounts
        .iter()
        .any(|m| m.own.is_none() && m.nest_prefix == "/");
    let serves_health = |m: &String| {
        route_literals
            .get(m)
            .is_some_and(|r| r.iter().any(|(p, _)| p == "/health"))
    };
    let has_health = root_routes.iter().any(|(r, _)| r == "/health")
        || needed
            .iter()
            .any(|m| m != module && !contexts.contains(m) && serves_health(m))
        || (merged_at_root && serves_health(&module.to_string()));
    let Some((bind_file, bind_range)) = listener else {
        return Err(Refusal(vec![
            "no `TcpListener::bind(...)` in the code the service keeps: split --from supports axum 0.7+ applications that listen with tokio's TcpListener and `axum::serve`".into(),
        ]));
    };
    let bind_text = parsed
        .iter()
        .find(|f| f.rel == bind_file)
        .map(|f| f.text[bind_range.clone()].to_string())
        .unwrap_or_default();
    let monolith_port = literal_port(&bind_text).unwrap_or(3000);
    let bind_len = parsed
        .iter()
        .find(|f| f.rel == bind_file)
        .map_or(0, |f| f.text.len());
    let edits = svc_edits.entry(bind_file.clone()).or_default();
    edits.push(Edit {
        range: bind_range,
        with: "msgen_listen_address()".into(),
    });
    edits.push(Edit {
        range: bind_len..bind_len,
        with: LISTEN_FN.replace("@PORT@", &port.to_string()),
    });
    if !has_health {
        let Some((serve_file, (app_span, into_make))) = serve else {
            return Err(Refusal(vec![
                "no `axum::serve(listener, app)` in the code the service keeps: split --from supports axum 0.7+ applications".into(),
            ]));
        };
        let text = &parsed
            .iter()
            .find(|f| f.rel == serve_file)
            .expect("scanned")
            .text;
        // An insertion after the router, so edits inside it still apply.
        let end = span_range(text, into_make.unwrap_or(app_span)).end;
        svc_edits.entry(serve_file.clone()).or_default().push(Edit {
            range: end..end,
            with: ".route(\"/health\", axum::routing::get(msgen_health))".into(),
        });
        svc_edits.entry(serve_file).or_default().push(Edit {
            range: text.len()..text.len(),
            with: HEALTH_FN.into(),
        });
    }

    // The service's schema exists before sqlx looks for its migration history
    // there (the first schema of its search path), whichever starts first.
    if let (Some(schema), Some((file, range))) = (schema, migrate_run) {
        let text = &parsed.iter().find(|f| f.rel == file).expect("scanned").text;
        let arg = text[range.clone()].to_string();
        if arg.trim_start().starts_with("&mut") {
            report.human.push(format!(
                "{file}: the migrations run on a connection msgen cannot pass on: create schema `{schema}` before they run (`CREATE SCHEMA IF NOT EXISTS \"{schema}\"`), or the service's migration history lands in another schema"
            ));
        } else {
            let end = text.len();
            let edits = svc_edits.entry(file).or_default();
            edits.push(Edit {
                range,
                with: format!("msgen_schema({arg}).await"),
            });
            edits.push(Edit {
                range: end..end,
                with: SCHEMA_FN.replace("@SCHEMA@", &schema.replace('"', "")),
            });
        }
    }

    let mut service_files = BTreeMap::new();
    for f in &parsed {
        let keep = match &f.top {
            None => true,
            Some(t) => needed.contains(t),
        };
        if !keep {
            continue;
        }
        let text = match svc_edits.remove(&f.rel) {
            Some(edits) => {
                let new = apply_edits(&f.text, edits);
                parse(&f.rel, &new).map_err(|_| {
                    Refusal(vec![format!(
                        "{}: cutting the other modules out of the service's copy would leave code that does not parse",
                        f.rel
                    )])
                })?;
                new
            }
            None => f.text.clone(),
        };
        service_files.insert(f.rel.clone(), text);
    }
    // The service's library gets a name of its own: two services adopted from one
    // monolith with the same `[lib] name` collide in the workspace's output files.
    let service_lib = format!("{}_service", service.replace('-', "_"));
    service_files.insert(
        "Cargo.toml".into(),
        manifest.for_service(service, lib_root.then_some(service_lib.as_str()))?,
    );
    if lib_root {
        if let Some(main) = service_files.get_mut("src/main.rs") {
            *main = alias_library(main, &service_lib, &crate_name);
        }
    }

    // ---- Tables and migrations.
    let mut module_routes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &mounts {
        let entry = module_routes.entry(m.module.clone()).or_default();
        for (r, _) in routes_of(m) {
            if !entry.contains(&r) {
                entry.push(r);
            }
        }
    }
    let earlier: Vec<(ServiceName, Parsed)> = src
        .earlier_services
        .iter()
        .filter_map(|(svc, rel, text)| {
            Some((
                svc.clone(),
                Parsed {
                    rel: rel.clone(),
                    text: text.clone(),
                    ast: syn::parse_file(text).ok()?,
                    module_path: Vec::new(),
                    top: None,
                },
            ))
        })
        .collect();
    let data = data::DataCut {
        migrations: &src.migrations,
        dir: &src.migrations_dir,
        owned_elsewhere: &src.owned_elsewhere,
        earlier: &earlier,
        parsed: &parsed,
        module,
        service,
        schema,
        earlier_schemas: &src.schemas,
        routes: &module_routes,
    }
    .run(&mut report);
    service_files.extend(data.service_files);
    let queries: Vec<(String, String)> = parsed
        .iter()
        .filter(|f| f.top.as_ref().is_none_or(|t| needed.contains(t)))
        .flat_map(|f| {
            offline::checked_queries(&f.ast)
                .into_iter()
                .map(move |(line, sql)| (format!("{}:{line}", f.rel), sql))
        })
        .collect();
    let offline = offline::for_queries(&queries, &src.offline_queries);
    if offline.checked > 0 {
        report.offline.push(format!(
            "{} compile-time checked quer{} (sqlx's `query!` macros): the offline data of {} copied from the monolith's `.sqlx/` into `services/{service}/.sqlx/`, so the service builds without a database (as it would with `SQLX_OFFLINE=true`)",
            offline.checked,
            if offline.checked == 1 { "y" } else { "ies" },
            offline.files.len()
        ));
    }
    for at in &offline.missing {
        report.offline.push(format!(
            "{at}: a checked query the monolith's `.sqlx/` has no data for: the service builds only with DATABASE_URL set (the monolith's database, with the service's search path) until you run `cargo sqlx prepare` in services/{service} and commit its `.sqlx/`"
        ));
    }
    service_files.extend(offline.files);
    for (p, text) in data.monolith_files {
        edited.insert(p, text);
    }

    // ---- What else needs a person.
    // What each side reads from its environment, besides what msgen sets, goes to
    // services.toml (`env`) and from there to compose, Kubernetes and .env.example.
    let service_env = env_of(
        service_files
            .iter()
            .filter(|(p, _)| p.ends_with(".rs"))
            .map(|(_, t)| t.as_str()),
        // The listener msgen added reads HOST and PORT, with defaults that suit.
        &["DATABASE_URL", "HOST"],
    );
    let monolith_env = env_of(
        parsed
            .iter()
            .filter(|f| f.top.as_deref() != Some(module))
            .map(|f| edited.get(&f.rel).unwrap_or(&f.text).as_str()),
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
    // compose builds the monolith from its directory: one that has no Dockerfile
    // gets one, written once and the team's from then on.
    if !src.has_dockerfile && !edited.contains_key("Dockerfile") {
        edited.insert(
            "Dockerfile".into(),
            monolith_dockerfile(&manifest.bin_name, monolith_port, src.has_lock),
        );
        if !src.has_dockerignore {
            // The build context is the monolith's directory: not its local builds.
            edited.insert(".dockerignore".into(), "target\n.git\n.env\n".into());
        }
        report.human.push(format!(
            "the monolith had no Dockerfile: msgen wrote one (`Dockerfile` in its directory, which compose builds; `cargo build --release --bin {}`); it is yours to change",
            manifest.bin_name
        ));
    }
    for m in &target_mounts {
        report
            .unmounted
            .push(format!("{}:{}: {}", m.file, m.line, m.text.trim()));
    }

    Ok(Cut {
        package: manifest.package.clone(),
        database: manifest.database,
        axum_major: manifest.major("axum"),
        sqlx_major: manifest.major("sqlx"),
        monolith_port,
        monolith_edits: edited,
        service_env,
        monolith_env,
        monolith_removals: if keep_module {
            Vec::new()
        } else {
            target_files.iter().map(|f| f.rel.clone()).collect()
        },
        service_files,
        paths,
        routes,
        report,
    })
}

const SCHEMA_FN: &str = r##"
/// Added by `msgen split --from`: the service's tables and migration history live
/// in schema `@SCHEMA@` of the monolith's database, the first of its search path;
/// sqlx looks for its history there only if the schema exists when it starts.
async fn msgen_schema<'a, E>(db: E) -> E
where
    E: sqlx::Executor<'a, Database = sqlx::Postgres> + Copy,
{
    let create = r#"CREATE SCHEMA IF NOT EXISTS "@SCHEMA@""#;
    if let Err(e) = sqlx::query(create).execute(db).await {
        eprintln!("cannot create schema @SCHEMA@: {e}");
    }
    db
}
"##;

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

const LISTEN_FN: &str = "
/// Added by `msgen split --from`: the service listens on HOST (default 0.0.0.0) and
/// PORT (default @PORT@), which compose and Kubernetes set, as msgen's generated
/// services do, instead of on the monolith's address.
fn msgen_listen_address() -> String {
    let host = std::env::var(\"HOST\").unwrap_or_else(|_| \"0.0.0.0\".into());
    let port = std::env::var(\"PORT\")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(@PORT@);
    // An IPv6 address is bracketed in an address with a port.
    if host.contains(':') {
        format!(\"[{host}]:{port}\")
    } else {
        format!(\"{host}:{port}\")
    }
}
";

const HEALTH_FN: &str = "
/// Added by `msgen split --from`: the liveness probe of the deployment files.
async fn msgen_health() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, \"application/json\")],
        r#\"{\"status\":\"ok\"}\"#,
    )
}
";

fn parse(rel: &str, text: &str) -> Result<syn::File, Refusal> {
    crate::rust_refs::parse_rust(text).map_err(|e| {
        Refusal(vec![format!(
            "{rel}:{}:{}: cannot parse this Rust file ({}); split --from reads every file before changing any",
            e.line, e.column, e.message
        )])
    })
}

/// The `mod x;` items of a crate root; `#[path]` modules are refused, since their
/// files are not where the module tree says.
fn declared_modules(rel: &str, ast: &syn::File) -> Result<Vec<String>, Refusal> {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for item in &ast.items {
        let syn::Item::Mod(m) = item else { continue };
        if m.attrs.iter().any(|a| a.path().is_ident("path")) {
            refused.push(format!(
                "{rel}:{}: `mod {}` has a #[path] attribute; split --from reads modules from src/<name>.rs or src/<name>/mod.rs",
                m.ident.span().start().line,
                m.ident
            ));
        }
        if m.content.is_none() {
            out.push(m.ident.to_string());
        }
    }
    if refused.is_empty() {
        Ok(out)
    } else {
        Err(Refusal(refused))
    }
}

/// Module path and top-level module of `rel`, or `None` for files outside the
/// module tree (`src/bin/` files count as root files).
fn place(
    rel: &str,
    modules: &[String],
    bin_modules: &[String],
) -> Option<(Vec<String>, Option<String>)> {
    let inner = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    if inner == "main" || inner == "lib" || inner.starts_with("bin/") {
        return Some((Vec::new(), None));
    }
    let mut parts: Vec<String> = inner.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    let top = parts.first()?.clone();
    if bin_modules.contains(&top) {
        return Some((parts, None));
    }
    modules.contains(&top).then_some((parts, Some(top)))
}

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

fn outermost(mut mounts: Vec<Mount>) -> Vec<Mount> {
    let all = mounts.clone();
    mounts.retain(|m| {
        !all.iter().any(|o| {
            o.file == m.file
                && o.range != m.range
                && o.range.start <= m.range.start
                && m.range.end <= o.range.end
        })
    });
    mounts
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

/// The paths of a visited file that lead into top-level modules, and its mounts.
struct Scan<'a> {
    file: &'a Parsed,
    modules: &'a [String],
    /// Names that mean `crate` in this file (the library's name, in `main.rs`).
    aliases: &'a [String],
    refs: Vec<Ref>,
    mounts: Vec<Mount>,
    /// Path prefixes of the `.nest(...)` calls we are inside of.
    nest_stack: Vec<String>,
    /// Route and nest literals of this file, joined with the enclosing nests, and
    /// whether each is an exact route (`.route`) rather than a prefix (`.nest`).
    routes: Vec<(String, bool)>,
    /// Inline `mod x { .. }` blocks we are inside of.
    inline: Vec<String>,
    /// `use super::*` (or `crate::*`) brought the root's modules into scope.
    root_glob: bool,
    /// The function being visited, for mounts made inside helpers.
    current_fn: Option<String>,
    /// `(function, prefix)`: a function called inside `.nest(prefix, ..)`.
    nested_calls: Vec<(String, String)>,
    problems: Vec<String>,
}

impl Scan<'_> {
    /// The module path of the code being visited.
    fn here(&self) -> Vec<String> {
        let mut p = self.file.module_path.clone();
        p.extend(self.inline.iter().cloned());
        p
    }

    /// The top-level module an absolute-or-relative path leads into.
    fn resolve(&self, segments: &[String]) -> Option<String> {
        let first = segments.first()?;
        let (base, rest): (Vec<String>, &[String]) =
            if first == "crate" || self.aliases.contains(first) {
                (Vec::new(), &segments[1..])
            } else if first == "self" {
                (self.here(), &segments[1..])
            } else if first == "super" {
                let mut base = self.here();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                (base, rest)
            } else if self.here().is_empty() || self.root_glob {
                // In a root file a plain path may start with a module it declares, as
                // after `use super::*` in a top-level module (elsewhere it names the
                // module's own items or another crate).
                (Vec::new(), segments)
            } else {
                return None;
            };
        let full: Vec<&String> = base.iter().chain(rest).collect();
        let top = full.first()?;
        // A module named alone (`blog`) is not a use of it; `use` trees add `*`.
        (full.len() >= 2 && self.modules.contains(top)).then(|| (*top).clone())
    }

    fn note(&mut self, segments: Vec<String>, span: proc_macro2::Span) {
        if let Some(module) = self.resolve(&segments) {
            if self.file.top.as_deref() != Some(module.as_str()) {
                self.refs.push(Ref {
                    file: self.file.rel.clone(),
                    line: span.start().line,
                    at: offset(&self.file.text, span.start()),
                    module,
                    // `use` trees mark a module named alone with `*`, or
                    // name it `self` (`use crate::m::{self, T}`).
                    path: segments
                        .iter()
                        .filter(|s| *s != "*" && *s != "self")
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("::"),
                });
            }
        }
    }

    /// Paths hidden in macro arguments: `crate :: x`, `super :: x`, `m :: x`.
    fn macro_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => self.macro_tokens(g.stream()),
                TokenTree::Ident(id) => {
                    let mut segs = vec![id.to_string()];
                    let line = id.span();
                    let mut j = i + 1;
                    while j + 2 < trees.len() + 1 {
                        let colons = matches!((&trees.get(j), &trees.get(j + 1)),
                            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                        match (colons, trees.get(j + 2)) {
                            (true, Some(TokenTree::Ident(next))) => {
                                segs.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segs.len() >= 2 {
                        self.note(segs, line);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Scan<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.note(segments, path.span());
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        for (mut path, glob) in crate::rust_refs::use_paths(&item.tree) {
            if glob {
                // `use super::*` in a top-level module (or `use crate::*`) brings the
                // root's modules into scope under their plain names.
                self.root_glob |= match path.as_slice() {
                    [c] if c == "crate" || self.aliases.contains(c) => true,
                    [s] if s == "super" => self.here().len() == 1,
                    _ => false,
                };
            }
            // A module named alone (`use crate::blog;`) counts as a path into it.
            path.push("*".into());
            self.note(path, item.use_token.span);
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.macro_tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.inline.push(item.ident.to_string());
            let glob = self.root_glob;
            syn::visit::visit_item_mod(self, item);
            self.root_glob = glob;
            self.inline.pop();
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        let outer = self.current_fn.replace(item.sig.ident.to_string());
        syn::visit::visit_item_fn(self, item);
        self.current_fn = outer;
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        let outer = self.current_fn.replace(item.sig.ident.to_string());
        syn::visit::visit_impl_item_fn(self, item);
        self.current_fn = outer;
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if !self.nest_stack.is_empty() {
            if let syn::Expr::Path(p) = &*call.func {
                if let Some(last) = p.path.segments.last() {
                    self.nested_calls
                        .push((last.ident.to_string(), join_paths(&self.nest_stack, "")));
                }
            }
        }
        syn::visit::visit_expr_call(self, call);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let method = call.method.to_string();
        let mounts_args = ROUTER_METHODS.contains(&method.as_str());
        if !mounts_args && !ROUTER_ONLY_METHODS.contains(&method.as_str()) {
            return syn::visit::visit_expr_method_call(self, call);
        }
        // Which module the receiver names: `blog::router().with_state(pool)`.
        let before_receiver = self.refs.len();
        self.visit_expr(&call.receiver);
        let after_receiver = self.refs.len();
        self.receiver_mount(call, before_receiver..after_receiver);
        if !mounts_args {
            for a in &call.args {
                self.visit_expr(a);
            }
            return;
        }
        let literal = call.args.first().and_then(|a| match a {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        });
        // Which modules the arguments name: a call naming exactly one mounts it.
        let nested = matches!(method.as_str(), "nest" | "nest_service");
        let nest_prefix = join_paths(&self.nest_stack, "");
        if let (true, Some(p)) = (nested, &literal) {
            self.nest_stack.push(p.clone());
        }
        for a in &call.args {
            self.visit_expr(a);
        }
        if let (true, Some(_)) = (nested, &literal) {
            self.nest_stack.pop();
        }
        let own = literal.filter(|_| method != "merge");
        if let Some(p) = &own {
            let exact = matches!(method.as_str(), "route" | "route_service");
            self.routes
                .push((join_paths(std::slice::from_ref(&nest_prefix), p), exact));
        }
        let mut mounted: Vec<String> = self.refs[after_receiver..]
            .iter()
            .map(|r| r.module.clone())
            .collect();
        mounted.sort();
        mounted.dedup();
        if let [module] = mounted.as_slice() {
            if own.is_none() && method != "merge" {
                self.problems.push(format!(
                    "{}:{}: `.{method}(..)` mounts module `{module}` under a path that is not a string literal; split --from cannot tell its paths",
                    self.file.rel,
                    call.method.span().start().line
                ));
            }
            let text = &self.file.text;
            let start = offset(text, call.receiver.span().end());
            let end = offset(text, call.paren_token.span.close().end());
            self.mounts.push(Mount {
                file: self.file.rel.clone(),
                line: call.method.span().start().line,
                module: module.clone(),
                range: start..end,
                text: text[start..end].to_string(),
                nest_prefix,
                own,
                in_fn: self.current_fn.clone(),
                with: String::new(),
                method: method.clone(),
            });
        }
    }
}

impl Scan<'_> {
    /// `a::router().merge(b::router())`: a module's router as the receiver of a
    /// router call mounts that module too (all its own routes, under the nests
    /// around the call). Unmounting it leaves an empty router in its place, so the
    /// rest of the chain stays as it was.
    fn receiver_mount(&mut self, call: &syn::ExprMethodCall, refs: std::ops::Range<usize>) {
        let syn::Expr::Call(receiver) = &*call.receiver else {
            return;
        };
        if !matches!(&*receiver.func, syn::Expr::Path(_)) {
            return;
        }
        let mut named: Vec<&String> = self.refs[refs].iter().map(|r| &r.module).collect();
        named.sort();
        named.dedup();
        let [module] = named.as_slice() else {
            return;
        };
        let module = (*module).clone();
        let text = &self.file.text;
        let range = span_range(text, call.receiver.span());
        self.mounts.push(Mount {
            file: self.file.rel.clone(),
            line: call.receiver.span().start().line,
            module,
            text: text[range.clone()].to_string(),
            range,
            nest_prefix: join_paths(&self.nest_stack, ""),
            own: None,
            in_fn: self.current_fn.clone(),
            with: "axum::Router::new()".into(),
            method: String::new(),
        });
    }
}

/// Where the application listens and what it serves.
#[derive(Default)]
struct Listen {
    bind_arg: Option<proc_macro2::Span>,
    /// The app argument of `axum::serve`, and the receiver of its
    /// `.into_make_service*()` call when there is one.
    serve_app: Option<(proc_macro2::Span, Option<proc_macro2::Span>)>,
    /// The argument of `sqlx::migrate!(..).run(ARG)`.
    migrate_run: Option<proc_macro2::Span>,
}

/// `#[test]`, `#[tokio::test]`, `#[cfg(test)]`: code that never serves.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let p = a.path();
        p.is_ident("test")
            || p.segments.last().is_some_and(|s| s.ident == "test")
            || (p.is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

impl<'ast> Visit<'ast> for Listen {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*call.func {
            let segs: Vec<String> = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let tail: Vec<&str> = segs.iter().rev().take(2).map(String::as_str).collect();
            if tail == ["bind", "TcpListener"] && call.args.len() == 1 && self.bind_arg.is_none() {
                self.bind_arg = Some(call.args[0].span());
            }
            if segs.last().is_some_and(|s| s == "serve")
                && call.args.len() == 2
                && self.serve_app.is_none()
            {
                let app = &call.args[1];
                let inner = match app {
                    syn::Expr::MethodCall(m)
                        if m.method.to_string().starts_with("into_make_service") =>
                    {
                        Some(m.receiver.span())
                    }
                    _ => None,
                };
                self.serve_app = Some((app.span(), inner));
            }
        }
        syn::visit::visit_expr_call(self, call);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let migrator = matches!(&*call.receiver, syn::Expr::Macro(m)
            if m.mac.path.segments.last().is_some_and(|s| s.ident == "migrate"));
        if migrator && call.method == "run" && call.args.len() == 1 && self.migrate_run.is_none() {
            self.migrate_run = Some(call.args[0].span());
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

fn join_paths(stack: &[String], last: &str) -> String {
    let mut out = String::new();
    for part in stack.iter().map(String::as_str).chain([last]) {
        let part = part.trim_end_matches('/');
        if part.is_empty() {
            continue;
        }
        if !part.starts_with('/') {
            out.push('/');
        }
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `/api/posts/:id` or `/api/posts/{id}` → `/api/posts`.
fn static_prefix(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg.starts_with(':') || seg.starts_with('{') || seg.starts_with('*') {
            break;
        }
        out.push('/');
        out.push_str(seg);
    }
    out
}

/// A route in axum 0.8's syntax: `:id` → `{id}`, `*rest` → `{*rest}`.
fn axum_pattern(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if let Some(p) = s.strip_prefix(':') {
                format!("{{{p}}}")
            } else if let Some(p) = s.strip_prefix('*') {
                format!("{{*{p}}}")
            } else {
                s.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the gateway entry `entry` (exact route, or prefix) takes every request
/// of the route `other`: each of its segments is the same literal or one of
/// `entry`'s parameters, and (for an exact entry) there are as many.
fn captures(entry: &str, exact: bool, other: &str) -> bool {
    let e: Vec<&str> = entry.split('/').filter(|s| !s.is_empty()).collect();
    let o: Vec<&str> = other.split('/').filter(|s| !s.is_empty()).collect();
    for (i, want) in e.iter().enumerate() {
        if want.starts_with("{*") {
            return o.len() > i;
        }
        match o.get(i) {
            None => return false,
            Some(got) if want.starts_with('{') || want == got => {}
            Some(_) => return false,
        }
    }
    !exact || o.len() == e.len()
}

/// `path` is `prefix` or below it, on a segment boundary.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The port of a listen address written as a literal: the digits after the last
/// `:` (`"0.0.0.0:3000"`), or a number alone (`(.., 3000)`).
fn literal_port(text: &str) -> Option<u16> {
    let tail = text.rsplit(':').next().unwrap_or(text);
    let digits: String = tail
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if let Ok(p) = digits.parse::<u16>() {
        if p > 0 && text.contains(':') {
            return Some(p);
        }
    }
    literal_port_number(text)
}

fn literal_port_number(text: &str) -> Option<u16> {
    let digits: String = text
        .rsplit(|c: char| !c.is_ascii_digit())
        .find(|d| d.len() >= 2)?
        .to_string();
    digits.parse().ok()
}

/// String literals of a file, in code and inside macro arguments, with lines.
fn sql_literals(ast: &syn::File) -> Vec<(usize, String)> {
    struct Lits(Vec<(usize, String)>);
    impl<'ast> Visit<'ast> for Lits {
        fn visit_lit_str(&mut self, s: &'ast syn::LitStr) {
            self.0.push((s.span().start().line, s.value()));
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            fn walk(out: &mut Vec<(usize, String)>, ts: TokenStream) {
                for t in ts {
                    match t {
                        TokenTree::Group(g) => walk(out, g.stream()),
                        TokenTree::Literal(l) => {
                            if let Ok(s) =
                                syn::parse2::<syn::LitStr>(TokenTree::Literal(l.clone()).into())
                            {
                                out.push((l.span().start().line, s.value()));
                            }
                        }
                        _ => {}
                    }
                }
            }
            walk(&mut self.0, m.tokens.clone());
        }
    }
    let mut v = Lits(Vec::new());
    v.visit_file(ast);
    v.0
}

/// Variables msgen sets itself wherever it runs adopted code.
const MSGEN_ENV: &[&str] = &[
    "PORT",
    "RUST_LOG",
    "LOG_FORMAT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The environment variables `files` read, each once, with the default the code
/// gives when one is written next to the read; without msgen's own and `also`.
fn env_of<'a>(files: impl Iterator<Item = &'a str>, also: &[&str]) -> Vec<crate::model::EnvVar> {
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    for text in files {
        for (name, default) in env_reads(text) {
            if MSGEN_ENV.contains(&name.as_str()) || also.contains(&name.as_str()) {
                continue;
            }
            let slot = out.entry(name).or_default();
            if slot.is_none() {
                *slot = default;
            }
        }
    }
    out.into_iter()
        .map(|(name, default)| crate::model::EnvVar { name, default })
        .collect()
}

/// `var("X")` / `var_os("X")` (std's, dotenvy's) and clap's `env = "X"` in a Rust
/// file, with the literal default that follows in the same statement or attribute
/// (`.unwrap_or_else(|_| "x".into())`, `.unwrap_or("x")`, `default_value = "x"`).
fn env_reads(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for pattern in ["var(\"", "var_os(\"", "env = \""] {
        for (i, _) in text.match_indices(pattern) {
            let rest = &text[i + pattern.len()..];
            let Some(end) = rest.find('"') else { continue };
            let name = &rest[..end];
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                continue;
            }
            let after = &rest[end + 1..];
            let mut stop = after
                .find(if pattern.starts_with("env") {
                    ")]"
                } else {
                    ";"
                })
                .unwrap_or(after.len())
                .min(300);
            while !after.is_char_boundary(stop) {
                stop -= 1;
            }
            let scope = &after[..stop];
            let default = [
                "unwrap_or_else(|_| \"",
                "unwrap_or(\"",
                "default_value = \"",
            ]
            .iter()
            .find_map(|m| {
                let from = scope.find(m)? + m.len();
                let lit = &scope[from..];
                let close = lit.find('"')?;
                let value = &lit[..close];
                (!value.contains('\\')).then(|| value.to_string())
            });
            out.push((name.to_string(), default));
        }
    }
    out
}

/// What `split --from` needs of the monolith's Cargo.toml.
struct Manifest {
    doc: toml_edit::DocumentMut,
    package: String,
    /// The library's crate name (`[lib] name`, or the package's).
    lib_name: String,
    /// The binary built from `src/main.rs` (a `[[bin]]` naming it, or the package).
    bin_name: String,
    database: Option<Db>,
}

impl Manifest {
    /// The major of a dependency's version requirement (`0.7`), if it has one.
    fn major(&self, name: &str) -> Option<String> {
        crate::model::dependency_major(&self.doc, name)
    }

    fn read(text: &str) -> Result<Self, Refusal> {
        let doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e| Refusal(vec![format!("Cargo.toml: {e}")]))?;
        let package = doc
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| {
                Refusal(vec![
                    "Cargo.toml: no [package] name (a workspace root is not a monolith crate: pass its crate's directory)".into(),
                ])
            })?
            .to_string();
        let mut problems = Vec::new();
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = doc.get(table).and_then(|d| d.as_table_like()) else {
                continue;
            };
            for (name, dep) in deps.iter() {
                if dep.get("workspace").is_some() || dep.get("path").is_some() {
                    problems.push(format!(
                        "Cargo.toml: [{table}] {name} comes from its workspace or a path; the service's copy of the crate could not find it (give it a version)"
                    ));
                }
            }
        }
        let axum = doc
            .get("dependencies")
            .and_then(|d| d.get("axum"))
            .and_then(|a| {
                a.as_str()
                    .or_else(|| a.get("version").and_then(|v| v.as_str()))
            });
        match axum {
            Some(v)
                if v.trim_start_matches(['^', '=', '~']).starts_with("0.7")
                    || v.trim_start_matches(['^', '=', '~']).starts_with("0.8") => {}
            Some(v) => problems.push(format!(
                "Cargo.toml: axum {v:?}; split --from supports axum 0.7 and 0.8 (`axum::serve`)"
            )),
            None => problems.push(
                "Cargo.toml: no axum dependency; split --from adopts axum applications".into(),
            ),
        }
        let features: Vec<String> = doc
            .get("dependencies")
            .and_then(|d| d.get("sqlx"))
            .and_then(|s| s.get("features"))
            .and_then(|f| f.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let database = if features.iter().any(|f| f == "postgres") {
            Some(Db::Postgres)
        } else if features.iter().any(|f| f == "sqlite") {
            Some(Db::Sqlite)
        } else {
            None
        };
        if !problems.is_empty() {
            return Err(Refusal(problems));
        }
        let lib_name = doc
            .get("lib")
            .and_then(|l| l.get("name"))
            .and_then(|n| n.as_str())
            .map_or_else(|| package.replace('-', "_"), str::to_string);
        let bin_name = doc
            .get("bin")
            .and_then(|b| b.as_array_of_tables())
            .and_then(|bins| {
                bins.iter().find(|b| {
                    b.get("path")
                        .and_then(|p| p.as_str())
                        .unwrap_or("src/main.rs")
                        == "src/main.rs"
                })
            })
            .and_then(|b| b.get("name"))
            .and_then(|n| n.as_str())
            .map_or_else(|| package.clone(), str::to_string);
        Ok(Self {
            doc,
            package,
            lib_name,
            bin_name,
            database,
        })
    }

    /// The monolith's manifest as the new service's: same dependencies, its own
    /// name, nothing that only makes sense at a workspace root.
    fn for_service(&self, service: &str, lib_name: Option<&str>) -> Result<String, Refusal> {
        let mut doc = self.doc.clone();
        for key in [
            "workspace",
            "profile",
            "bin",
            "test",
            "bench",
            "example",
            "patch",
            "replace",
        ] {
            doc.remove(key);
        }
        let package = doc["package"]
            .as_table_like_mut()
            .ok_or_else(|| Refusal(vec!["Cargo.toml: [package] is not a table".into()]))?;
        package.insert("name", toml_edit::value(format!("{service}-service")));
        for key in ["default-run", "build", "workspace", "autobins", "autotests"] {
            package.remove(key);
        }
        package.insert("publish", toml_edit::value(false));
        if let Some(lib) = lib_name {
            // main.rs names the library as the monolith did.
            let mut t = toml_edit::Table::new();
            t.insert("name", toml_edit::value(lib));
            t.insert("path", toml_edit::value("src/lib.rs"));
            doc.insert("lib", toml_edit::Item::Table(t));
            let mut bin = toml_edit::Table::new();
            bin.insert("name", toml_edit::value(format!("{service}-service")));
            bin.insert("path", toml_edit::value("src/main.rs"));
            let mut bins = toml_edit::ArrayOfTables::new();
            bins.push(bin);
            doc.insert("bin", toml_edit::Item::ArrayOfTables(bins));
        }
        let mut text = doc.to_string();
        text.insert_str(
            0,
            "# Moved out of the monolith by `msgen split --from`: the monolith's manifest,\n# renamed. This crate's code is yours; msgen only renders its deployment files.\n",
        );
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(static_prefix("/api/posts/:id"), "/api/posts");
        assert_eq!(static_prefix("/api/posts/{id}/x"), "/api/posts");
        assert_eq!(join_paths(&["/api".into()], "/posts"), "/api/posts");
        assert_eq!(join_paths(&["/api/".into()], "/"), "/api");
        assert!(under("/api/posts/1", "/api/posts"));
        assert!(!under("/api/postsx", "/api/posts"));
        assert_eq!(literal_port("\"0.0.0.0:3000\""), Some(3000));
        assert_eq!(axum_pattern("/a/:id/*rest"), "/a/{id}/{*rest}");
    }

    #[test]
    fn an_entry_captures_the_routes_it_would_take() {
        assert!(captures("/a/{id}", true, "/a/new"));
        assert!(captures("/a/{id}", true, "/a/{x}"));
        assert!(!captures("/a/new", true, "/a/{id}"));
        assert!(!captures("/a/{id}", true, "/a/{id}/children"));
        assert!(captures("/a/{id}", false, "/a/{id}/children"));
        assert!(!captures("/a/{id}/children", true, "/a/{id}"));
        assert!(captures("/a/{*rest}", true, "/a/b/c"));
        assert!(!captures("/a/b", false, "/a"));
    }

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
