//! The first two stages of `split --from`: reading the monolith's crate (its root,
//! its top-level modules, every file of the module tree parsed) and scanning it
//! for what ties code to modules: the paths that lead into a module, and the
//! router calls that mount one.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{TokenStream, TokenTree};
use syn::spanned::Spanned as _;
use syn::visit::Visit;

use super::manifest::Manifest;
use super::routes::{axum_pattern, join_paths};
use super::{offset, span_range, Refusal, Source};
use crate::model::ServiceName;

/// The crate as the cut reads it.
pub(super) struct Crate {
    pub(super) manifest: Manifest,
    /// The root is `src/lib.rs` (a library with a binary), not `src/main.rs`.
    pub(super) lib_root: bool,
    pub(super) root_rel: &'static str,
    /// The root's `mod x;` items: the bounded contexts and shared code.
    pub(super) modules: Vec<String>,
    /// Modules a library crate's `main.rs` declares: they stay with the binary.
    pub(super) bin_modules: Vec<String>,
    /// Every file of the module tree (root files and `src/bin/` included).
    pub(super) parsed: Vec<Parsed>,
}

impl Crate {
    /// Reads `src` and checks that `module` is one of its top-level modules; a
    /// file that does not parse refuses the whole read, every such file named.
    pub(super) fn read(src: &Source, module: &str) -> Result<Crate, Refusal> {
        let manifest = Manifest::read(&src.manifest)?;
        // syn drops a byte-order mark, which would shift every column of line 1.
        let text_of = |rel: &str| {
            src.files
                .get(rel)
                .map(|v| v.strip_prefix('\u{feff}').unwrap_or(v))
        };
        let lib_root = src.files.contains_key("src/lib.rs");
        let root_rel = if lib_root {
            "src/lib.rs"
        } else {
            "src/main.rs"
        };
        let Some(root_text) = text_of(root_rel) else {
            return Err(Refusal(vec![
                "no src/main.rs or src/lib.rs: split --from needs the crate of an axum application"
                    .into(),
            ]));
        };
        let modules = declared_modules(root_rel, &parse(root_rel, root_text)?)?;
        // A library crate's main.rs may declare modules of its own: they stay with it.
        let bin_modules = match (lib_root, text_of("src/main.rs")) {
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
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for rel in src.files.keys() {
            let Some((module_path, top)) = place(rel, &modules, &bin_modules) else {
                continue;
            };
            let text = text_of(rel).unwrap_or_default();
            match parse(rel, text) {
                Ok(ast) => parsed.push(Parsed {
                    rel: rel.clone(),
                    text: text.to_string(),
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
        Ok(Crate {
            manifest,
            lib_root,
            root_rel,
            modules,
            bin_modules,
            parsed,
        })
    }

    /// A file of the module tree, by its path.
    pub(super) fn file(&self, rel: &str) -> &Parsed {
        self.parsed
            .iter()
            .find(|f| f.rel == rel)
            .expect("every file the cut names was read")
    }

    /// The crate root (`src/main.rs` or `src/lib.rs`).
    pub(super) fn root(&self) -> &Parsed {
        self.file(self.root_rel)
    }

    /// Whether `f` belongs to the binary of a library crate, where the library's
    /// name means `crate`.
    fn in_bin(&self, f: &Parsed) -> bool {
        f.rel == "src/main.rs"
            || f.rel.starts_with("src/bin/")
            || f.module_path
                .first()
                .is_some_and(|m| self.bin_modules.contains(m))
    }
}

/// The files of services split out earlier (service, path, text), parsed; one
/// that does not parse is left out (its service is no longer the cut's to read).
pub(super) fn parse_earlier(
    earlier: &[(ServiceName, String, String)],
) -> Vec<(ServiceName, Parsed)> {
    earlier
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
        .collect()
}

/// Every path in one file of a crate (`rel`, as `src/blog/repo.rs`) that leads
/// into another of the crate's top-level `modules`, however it is written:
/// `crate::`, `super::`, `self::`, a `use` tree, a macro's arguments. Both split
/// paths ask this one question of the same resolver: `split --from` of every
/// file of an adopted crate, `split` of the files a generated module moves.
pub fn module_uses(
    rel: &str,
    text: &str,
    modules: &[String],
) -> Result<Vec<crate::rust_refs::ModuleRef>, String> {
    let ast = crate::rust_refs::parse_rust(text).map_err(|e| e.to_string())?;
    let (module_path, top) = place(rel, modules, &[]).unwrap_or_else(|| {
        // A module of the crate that is not one of `modules` (`src/config.rs`):
        // a plain path there names its own items, not a top-level module.
        let inner = rel
            .strip_prefix("src/")
            .unwrap_or(rel)
            .trim_end_matches(".rs");
        let mut parts: Vec<String> = inner.split('/').map(str::to_string).collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        (parts, None)
    });
    let file = Parsed {
        rel: rel.to_string(),
        text: text.to_string(),
        ast,
        module_path,
        top,
    };
    let mut v = Scan::new(&file, modules, &[]);
    v.visit_file(&file.ast);
    let mut out: Vec<crate::rust_refs::ModuleRef> = v
        .refs
        .into_iter()
        .map(|r| crate::rust_refs::ModuleRef {
            line: r.line,
            path: r.path,
            module: r.module,
        })
        .collect();
    out.sort_by(|a, b| (a.line, &a.path).cmp(&(b.line, &b.path)));
    out.dedup();
    Ok(out)
}

/// What the scan found in every file of the crate.
pub(super) struct Scanned {
    /// Every path that leads into a top-level module from outside it.
    pub(super) refs: Vec<Ref>,
    /// Every router call that mounts a module (the outermost of nested ones), its
    /// prefix including those of the helpers it is nested under.
    pub(super) mounts: Vec<Mount>,
    /// Route literals of the root files (`(path, exact)`).
    pub(super) root_routes: Vec<(String, bool)>,
    /// Route literals of each top-level module's files.
    pub(super) route_literals: BTreeMap<String, Vec<(String, bool)>>,
}

/// Scans every file of `c`; a mount msgen cannot read (a path that is not a
/// literal, a helper nested under several prefixes) refuses the cut.
pub(super) fn scan(c: &Crate) -> Result<Scanned, Refusal> {
    let root_aliases: Vec<String> = if c.lib_root {
        vec![c.manifest.lib_name.clone()]
    } else {
        Vec::new()
    };
    let mut out = Scanned {
        refs: Vec::new(),
        mounts: Vec::new(),
        root_routes: Vec::new(),
        route_literals: BTreeMap::new(),
    };
    let mut nested_calls: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    for f in &c.parsed {
        let aliases = if c.in_bin(f) {
            root_aliases.as_slice()
        } else {
            &[]
        };
        let mut v = Scan::new(f, &c.modules, aliases);
        v.visit_file(&f.ast);
        out.refs.extend(v.refs);
        out.mounts.extend(v.mounts);
        nested_calls.extend(v.nested_calls);
        errors.extend(v.problems);
        match &f.top {
            None => out.root_routes.extend(v.routes),
            Some(top) => out
                .route_literals
                .entry(top.clone())
                .or_default()
                .extend(v.routes),
        }
    }
    if !errors.is_empty() {
        return Err(Refusal(errors));
    }
    // A mount inside a helper (`fn api() -> Router`) nested elsewhere
    // (`.nest("/api", api())`) gets that prefix too.
    for m in &mut out.mounts {
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
    out.mounts = outermost(out.mounts);
    Ok(out)
}

impl Scanned {
    /// The bounded contexts: the modules some router call mounts (the rest is
    /// shared code).
    pub(super) fn contexts(&self) -> BTreeSet<&str> {
        self.mounts.iter().map(|m| m.module.as_str()).collect()
    }

    /// The mounts of `module`.
    pub(super) fn mounts_of<'a>(&'a self, module: &'a str) -> impl Iterator<Item = &'a Mount> {
        self.mounts.iter().filter(move |m| m.module == module)
    }

    /// The routes a mount serves, in axum 0.8's syntax, and whether each is an
    /// exact route (`.route`) rather than a prefix.
    pub(super) fn routes_of(&self, m: &Mount) -> Vec<(String, bool)> {
        let at = |base: &str, p: &str| axum_pattern(&join_paths(&[base.to_string()], p));
        let module_routes = |base: &str| -> Vec<(String, bool)> {
            self.route_literals
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
    }

    /// Every mounted module's routes, each once, in the order they were found.
    pub(super) fn module_routes(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &self.mounts {
            let entry = out.entry(m.module.clone()).or_default();
            for (r, _) in self.routes_of(m) {
                if !entry.contains(&r) {
                    entry.push(r);
                }
            }
        }
        out
    }
}

/// A reference from code to a top-level module of the crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ref {
    pub(super) file: String,
    pub(super) line: usize,
    /// Byte offset in the file, to tell whether a mount holds it.
    pub(super) at: usize,
    pub(super) module: String,
    pub(super) path: String,
}

/// A router call that mounts a module: removing `range` unmounts it.
#[derive(Debug, Clone)]
pub(super) struct Mount {
    pub(super) file: String,
    pub(super) line: usize,
    pub(super) module: String,
    pub(super) range: std::ops::Range<usize>,
    pub(super) text: String,
    /// Joined prefixes of the `.nest(...)` calls around it.
    pub(super) nest_prefix: String,
    /// Its own path (`.nest("/x", ..)`, `.route("/x", ..)`); `None` for `.merge(..)`,
    /// whose paths are the module's own routes.
    pub(super) own: Option<String>,
    /// The function the call is in.
    pub(super) in_fn: Option<String>,
    /// What replaces `range` to unmount it: nothing for a call on a router, an
    /// empty router for a module's router that is the receiver of a chain.
    pub(super) with: String,
    /// The router method (`nest`, `route`, ...); empty for a receiver.
    pub(super) method: String,
}

/// One parsed file with what the analysis needs.
pub(super) struct Parsed {
    pub(super) rel: String,
    pub(super) text: String,
    pub(super) ast: syn::File,
    /// Module path of the file: `[]` for root files, `["blog", "handlers"]`...
    pub(super) module_path: Vec<String>,
    /// Top-level module the file belongs to, if any.
    pub(super) top: Option<String>,
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

pub(super) fn parse(rel: &str, text: &str) -> Result<syn::File, Refusal> {
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

impl<'a> Scan<'a> {
    fn new(file: &'a Parsed, modules: &'a [String], aliases: &'a [String]) -> Self {
        Scan {
            file,
            modules,
            aliases,
            refs: Vec::new(),
            mounts: Vec::new(),
            nest_stack: Vec::new(),
            routes: Vec::new(),
            inline: Vec::new(),
            root_glob: false,
            current_fn: None,
            nested_calls: Vec::new(),
            problems: Vec::new(),
        }
    }
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

/// String literals of a file, in code and inside macro arguments, with lines.
pub(super) fn sql_literals(ast: &syn::File) -> Vec<(usize, String)> {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{refused, source, MAIN};
    use super::*;

    fn read(with: &[(&str, &str)]) -> Crate {
        Crate::read(&source(with), "blog").unwrap()
    }

    #[test]
    fn an_unknown_module_is_refused_with_the_modules_found() {
        let err = refused(Crate::read(&source(&[]), "blgo"));
        assert_eq!(
            err.0,
            ["no module `blgo` in src/main.rs; modules found: blog, error, users (did you mean `blog`?)"]
        );
    }

    #[test]
    fn every_file_that_does_not_parse_is_named() {
        let err = refused(Crate::read(
            &source(&[("src/users.rs", "fn ("), ("src/error.rs", "struct")]),
            "blog",
        ));
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].starts_with("src/error.rs:1:"), "{err}");
        assert!(err.0[1].starts_with("src/users.rs:1:"), "{err}");
    }

    #[test]
    fn files_are_placed_in_the_module_tree() {
        let c = read(&[
            ("src/blog/mod.rs", "pub mod api;\n"),
            ("src/blog/api.rs", "pub fn x() {}\n"),
            ("src/bin/tool.rs", "fn main() {}\n"),
            ("src/unrelated/x.rs", "fn f() {}\n"),
        ]);
        let places: Vec<(&str, &[String], Option<&str>)> = c
            .parsed
            .iter()
            .map(|f| (f.rel.as_str(), f.module_path.as_slice(), f.top.as_deref()))
            .collect();
        assert!(places.contains(&(
            "src/blog/api.rs",
            &["blog".into(), "api".into()],
            Some("blog")
        )));
        assert!(places.contains(&("src/bin/tool.rs", &[], None)));
        assert!(!places.iter().any(|p| p.0.starts_with("src/unrelated")));
        assert_eq!(c.root().rel, "src/main.rs");
    }

    #[test]
    fn a_byte_order_mark_does_not_shift_what_the_scan_cuts() {
        let c = read(&[("src/main.rs", &format!("\u{feff}{MAIN}"))]);
        let s = scan(&c).unwrap();
        let blog = s.mounts_of("blog").next().unwrap();
        assert_eq!(blog.text.trim(), r#".nest("/api/blog", blog::router())"#);
        assert_eq!(&c.root().text[blog.range.clone()], blog.text);
    }

    #[test]
    fn mounts_and_uses_are_found() {
        let c = read(&[]);
        let s = scan(&c).unwrap();
        let mounts: Vec<(&str, &str, Option<&str>, &str)> = s
            .mounts
            .iter()
            .map(|m| {
                (
                    m.module.as_str(),
                    m.method.as_str(),
                    m.own.as_deref(),
                    m.nest_prefix.as_str(),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                ("blog", "nest", Some("/api/blog"), "/"),
                ("users", "merge", None, "/")
            ]
        );
        let uses: Vec<(&str, usize, &str)> = s
            .refs
            .iter()
            .map(|r| (r.file.as_str(), r.line, r.path.as_str()))
            .collect();
        assert!(
            uses.contains(&("src/blog.rs", 3, "crate::error::AppError")),
            "{uses:?}"
        );
        assert!(
            uses.contains(&("src/main.rs", 9, "blog::router")),
            "{uses:?}"
        );
        assert_eq!(
            s.routes_of(s.mounts_of("blog").next().unwrap()),
            [
                ("/api/blog".to_string(), true),
                ("/api/blog/{id}".to_string(), true)
            ]
        );
        assert_eq!(s.module_routes()["users"], ["/api/users"]);
        // A nest literal of a root file is a prefix it serves.
        assert_eq!(s.root_routes, [("/api/blog".to_string(), false)]);
    }

    #[test]
    fn a_mount_in_a_helper_gets_the_prefix_the_helper_is_nested_under() {
        let main = MAIN.replace(
            r#".nest("/api/blog", blog::router())"#,
            r#".nest("/api", api())"#,
        )
            + "\nfn api() -> Router {\n    Router::new().nest(\"/blog\", blog::router())\n}\n";
        let s = scan(&read(&[("src/main.rs", &main)])).unwrap();
        let blog = s.mounts_of("blog").next().unwrap();
        assert_eq!(
            (blog.nest_prefix.as_str(), blog.in_fn.as_deref()),
            ("/api", Some("api"))
        );
        assert_eq!(s.routes_of(blog)[0].0, "/api/blog");

        let twice = main.replace(".merge(users::routes())", ".nest(\"/v2\", api())");
        let err = refused(scan(&read(&[("src/main.rs", &twice)])));
        assert!(
            err.0[0].contains("nested under several prefixes (/api, /v2)"),
            "{err}"
        );
    }

    #[test]
    fn a_mount_whose_path_is_not_a_literal_is_refused() {
        let main = MAIN.replace(r#""/api/blog""#, "PREFIX");
        let err = refused(scan(&read(&[("src/main.rs", &main)])));
        assert!(err.0[0].starts_with("src/main.rs:9:"), "{err}");
        assert!(err.0[0].contains("not a string literal"), "{err}");
    }

    #[test]
    fn uses_of_other_modules_are_found_however_they_are_written() {
        let modules: Vec<String> = ["blog", "user", "state"].map(String::from).into();
        let src = "use crate::user::repo::user;\nuse crate::{state::AppState, blog::models};\nuse super::user::Profile;\n\nfn f() {\n    let _ = crate::user::repo::user::get;\n    let _ = self::models::X;\n    tracing::info!(\"{}\", super::super::user::NAME);\n}\n";
        let uses = module_uses("src/blog/handlers/mod.rs", src, &modules).unwrap();
        let got: Vec<(usize, &str, &str)> = uses
            .iter()
            .map(|r| (r.line, r.path.as_str(), r.module.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "crate::user::repo::user", "user"),
                (2, "crate::state::AppState", "state"),
                (6, "crate::user::repo::user::get", "user"),
                (8, "super::super::user::NAME", "user"),
            ]
        );
        // `super::user` from `blog::handlers` is `blog::user`: the module's own.
        // In a root file a plain path names a module; in another module, its own.
        let root = module_uses("src/main.rs", "fn f() { blog::run(); }", &modules).unwrap();
        assert_eq!(root[0].path, "blog::run");
        let config = module_uses("src/config.rs", "fn f() { blog::run(); }", &modules).unwrap();
        assert!(config.is_empty(), "{config:?}");
        assert!(module_uses("src/blog.rs", "fn (", &modules).is_err());
    }
}
