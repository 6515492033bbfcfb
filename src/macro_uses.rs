//! Whether a project's own code uses sqlx's macros (`query!`, `migrate!`,
//! `#[derive(sqlx::FromRow)]`, `#[sqlx::test]`, ...).
//!
//! Generated code does without them, so a workspace leaves sqlx's `macros` feature
//! off: it compiles sqlx a second time, for the compiler, and costs a cold build a
//! fifth of its time. Code a user wrote against the workspace's sqlx may need
//! them, and a regeneration must not break its build: where such code is found,
//! the feature stays on.

use std::path::Path;

use syn::punctuated::Punctuated;
use syn::visit::Visit;

use crate::model::Project;

/// sqlx's checked query macros whose SQL is a string literal argument.
pub const QUERY_MACROS: &[&str] = &[
    "query",
    "query_as",
    "query_scalar",
    "query_unchecked",
    "query_as_unchecked",
    "query_scalar_unchecked",
];

/// One crate's macros, as code names them: with the crate's path
/// (`sqlx::query!`) or bare, as a `use` may have imported them. A bare name counts
/// too: keeping a feature for nothing costs build time, dropping it for code that
/// needs it breaks the build.
#[derive(Debug)]
pub struct Macros {
    /// The crate's name in paths.
    krate: &'static str,
    /// Function-like macros, in groups.
    bang: &'static [&'static [&'static str]],
    derives: &'static [&'static str],
    /// Attributes that only the crate's macros give, by path.
    attributes: &'static [&'static [&'static str]],
    /// Text without any of these (nor a macro or derive of the crate's) cannot use
    /// the macros: reading text is much cheaper than parsing it.
    hints: &'static [&'static str],
}

/// sqlx's other function-like macros.
const OTHER_SQLX_MACROS: &[&str] = &[
    "query_file",
    "query_file_as",
    "query_file_scalar",
    "query_file_unchecked",
    "query_file_as_unchecked",
    "query_file_scalar_unchecked",
    "migrate",
];

pub const SQLX: Macros = Macros {
    krate: "sqlx",
    bang: &[QUERY_MACROS, OTHER_SQLX_MACROS],
    derives: &["FromRow", "Type", "Encode", "Decode"],
    // `#[sqlx(rename = ..)]` (a derive's helper) and `#[sqlx::test]`, never a bare
    // `#[test]`.
    attributes: &[&["sqlx"], &["sqlx", "test"]],
    hints: &["sqlx(", "sqlx (", "sqlx::test", "sqlx :: test"],
};

pub const AXUM: Macros = Macros {
    krate: "axum",
    bang: &[],
    derives: &["FromRequest", "FromRequestParts", "FromRef"],
    attributes: &[
        &["debug_handler"],
        &["axum", "debug_handler"],
        &["debug_middleware"],
        &["axum", "debug_middleware"],
    ],
    hints: &["debug_handler", "debug_middleware"],
};

/// Which crates' macros code of the user's uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    pub sqlx: bool,
    pub axum: bool,
}

impl Macros {
    fn is_macro(&self, name: &str) -> bool {
        self.bang.iter().any(|group| group.contains(&name))
    }

    fn is_derive(&self, name: &str) -> bool {
        self.derives.contains(&name)
    }

    /// `KRATE::NAME` (at any depth) or a bare `NAME`, for a `NAME` that is `named`.
    fn is_item(&self, path: &syn::Path, named: impl Fn(&str) -> bool) -> bool {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        match segments.as_slice() {
            [name] => named(name),
            [first, .., name] => first == self.krate && named(name),
            [] => false,
        }
    }

    fn is_attribute(&self, path: &syn::Path) -> bool {
        self.attributes.iter().any(|want| is_path(path, want))
    }
}

/// Which crates' macros code under `root` that builds against the workspace's
/// crates uses: any Rust file of the project's tree (crates of the user's too), but
/// for adopted services and an adopted monolith, which keep crates of their own.
///
/// Only the user's uses count: a file counts where it has a use that msgen's copy
/// of what it last wrote there (`.msgen/base/`) has not, so the `migrate!` and
/// `#[derive(sqlx::FromRow)]` of a project generated before msgen did without them
/// (or the `#[derive(FromRequest)]` of an older runtime), which this render
/// replaces, do not keep a feature on.
pub fn used_under(root: &Path, project: &Project) -> Uses {
    let mut theirs: Vec<std::path::PathBuf> = project
        .services
        .iter()
        .filter(|s| s.adopted())
        .map(|s| root.join("services").join(s.name.as_str()))
        .collect();
    theirs.extend(
        project
            .monolith
            .iter()
            .filter_map(|m| m.external.as_ref())
            .map(|e| root.join(&e.path)),
    );
    let files = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            let skipped = e.depth() > 0 && name.starts_with('.')
                || e.depth() == 1 && name == "target"
                || theirs.iter().any(|t| t == e.path());
            !skipped
        })
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file() && e.path().extension().is_some_and(|x| x == "rs"));
    let mut found = Uses::default();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file.path()) else {
            continue;
        };
        // msgen's copy is read only for a file with a use, which few have.
        let base = std::cell::OnceCell::new();
        let base = || {
            base.get_or_init(|| {
                let rel = file.path().strip_prefix(root).ok()?;
                std::fs::read_to_string(root.join(".msgen/base").join(rel)).ok()
            })
        };
        let users = |macros: &Macros| {
            let mut uses = uses_of(&text, macros);
            if uses.is_empty() {
                return false;
            }
            for msgens in base()
                .as_deref()
                .map_or_else(Vec::new, |b| uses_of(b, macros))
            {
                if let Some(at) = uses.iter().position(|u| *u == msgens) {
                    uses.swap_remove(at);
                }
            }
            !uses.is_empty()
        };
        found.sqlx = found.sqlx || users(&SQLX);
        found.axum = found.axum || users(&AXUM);
        if found.sqlx && found.axum {
            break;
        }
    }
    found
}

/// The uses of the macros in `text`, by name. Text that may use them but does
/// not parse (newer syntax, conflict markers) counts as one.
fn uses_of(text: &str, macros: &Macros) -> Vec<String> {
    if !may_use(text, macros) {
        return Vec::new();
    }
    match syn::parse_file(text) {
        Ok(ast) => uses_in(&ast, macros),
        Err(_) => vec!["unparsed".to_string()],
    }
}

/// Whether `text` can use the macros at all: most files of a project cannot, and
/// reading text is much cheaper than parsing it.
fn may_use(text: &str, macros: &Macros) -> bool {
    let word_before = |at: usize| {
        let before = text[..at].trim_end();
        let head = before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        &before[head.len()..]
    };
    text.match_indices('!')
        .any(|(at, _)| macros.is_macro(word_before(at)))
        || text.match_indices("derive").any(|(at, _)| {
            let list = &text[at..];
            let list = &list[..list.find(')').unwrap_or(list.len())];
            macros.derives.iter().any(|d| list.contains(d))
        })
        || macros.hints.iter().any(|a| text.contains(a))
}

/// The uses of the macros in the file, by name.
fn uses_in(ast: &syn::File, macros: &Macros) -> Vec<String> {
    struct Find<'m>(&'m Macros, Vec<String>);
    impl<'ast> Visit<'ast> for Find<'_> {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            if self.0.is_item(&m.path, |n| self.0.is_macro(n)) {
                self.1
                    .extend(m.path.segments.last().map(|s| s.ident.to_string()));
            }
            // syn leaves a macro's arguments as tokens: `vec![sqlx::query!(..)]`.
            invoked_in(m.tokens.clone(), self.0, &mut self.1);
        }
        fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
            attribute_uses(&attr.meta, self.0, &mut self.1);
        }
    }
    let mut find = Find(macros, Vec::new());
    find.visit_file(ast);
    find.1
}

/// The uses in one attribute: one of the crate's attributes (`#[sqlx::test]`,
/// `#[sqlx(..)]`, `#[debug_handler]`), a derive of its, or any of these under
/// `#[cfg_attr(condition, ..)]`.
fn attribute_uses(meta: &syn::Meta, macros: &Macros, uses: &mut Vec<String>) {
    let path = meta.path();
    if macros.is_attribute(path) {
        uses.push(quote_path(path));
        return;
    }
    let syn::Meta::List(list) = meta else {
        return;
    };
    if path.is_ident("derive") {
        if let Ok(paths) =
            list.parse_args_with(Punctuated::<syn::Path, syn::Token![,]>::parse_terminated)
        {
            uses.extend(
                paths
                    .iter()
                    .filter(|p| macros.is_item(p, |n| macros.is_derive(n)))
                    .map(quote_path),
            );
        }
    } else if path.is_ident("cfg_attr") {
        if let Ok(metas) =
            list.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
        {
            // The first is the condition.
            for meta in metas.iter().skip(1) {
                attribute_uses(meta, macros, uses);
            }
        }
    }
}

fn quote_path(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

/// The invocations of the crate's macros in `tokens` (`KRATE::NAME!` or `NAME!`),
/// at any depth, and the attributes of its there (`#[derive(sqlx::FromRow)]` in a
/// `macro_rules!`).
fn invoked_in(tokens: proc_macro2::TokenStream, macros: &Macros, uses: &mut Vec<String>) {
    use proc_macro2::{Delimiter, TokenTree};

    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize, c: char| matches!(&tokens[i], TokenTree::Punct(p) if p.as_char() == c);
    for (i, t) in tokens.iter().enumerate() {
        match t {
            TokenTree::Group(g)
                if g.delimiter() == Delimiter::Bracket && i > 0 && punct(i - 1, '#') =>
            {
                if let Ok(meta) = syn::parse2::<syn::Meta>(g.stream()) {
                    attribute_uses(&meta, macros, uses);
                }
                invoked_in(g.stream(), macros, uses);
            }
            TokenTree::Group(g) => invoked_in(g.stream(), macros, uses),
            TokenTree::Ident(name)
                if i + 1 < tokens.len()
                    && punct(i + 1, '!')
                    && macros.is_macro(&name.to_string()) =>
            {
                // Back over the path before it (`a::b::NAME`) to its first segment.
                let mut at = i;
                let mut first = None;
                while at >= 3 && punct(at - 1, ':') && punct(at - 2, ':') {
                    match &tokens[at - 3] {
                        TokenTree::Ident(segment) => {
                            first = Some(segment.to_string());
                            at -= 3;
                        }
                        _ => break,
                    }
                }
                if first.is_none_or(|f| f == macros.krate) {
                    uses.push(name.to_string());
                }
            }
            _ => {}
        }
    }
}

fn is_path(path: &syn::Path, want: &[&str]) -> bool {
    path.segments.len() == want.len() && path.segments.iter().zip(want).all(|(s, w)| s.ident == w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(code: &str) -> bool {
        uses_of_crate(code, &SQLX)
    }

    fn may_use(code: &str) -> bool {
        super::may_use(code, &SQLX)
    }

    fn uses_of_crate(code: &str, macros: &Macros) -> bool {
        !uses_in(&syn::parse_file(code).unwrap(), macros).is_empty()
    }

    #[test]
    fn sqlx_macros_and_derives_are_found() {
        for code in [
            "fn f() { let q = sqlx::query!(\"SELECT 1\"); }",
            "fn f() { let q = query_as!(Row, \"SELECT 1\"); }",
            "static M: sqlx::migrate::Migrator = sqlx::migrate!(\"./migrations\");",
            "#[derive(Debug, sqlx::FromRow)] struct Row { id: i64 }",
            "use sqlx::FromRow; #[derive(FromRow)] struct Row { id: i64 }",
            "#[derive(sqlx::Type)] #[sqlx(type_name = \"mood\")] enum Mood { Happy }",
            "#[derive(sqlx::FromRow)] struct R { #[sqlx(rename = \"x\")] y: i64 }",
            "#[sqlx::test] async fn t(pool: sqlx::PgPool) {}",
            "mod m { fn f() { let v = vec![sqlx::query_scalar!(\"SELECT 1\")]; } }",
            "async fn f() { tokio::try_join!(query!(\"SELECT 1\").fetch_one(db)); }",
            "macro_rules! m { () => { ::sqlx::query_as!(R, \"SELECT 1\") }; }",
            "#[cfg_attr(feature = \"db\", derive(sqlx::FromRow))] struct R { id: i64 }",
            "#[cfg_attr(test, sqlx::test)] async fn t(pool: sqlx::PgPool) {}",
            "macro_rules! m { () => { #[derive(sqlx::FromRow)] struct R { id: i64 } }; }",
            "fn f() { let q = sqlx::query !(\"SELECT 1\"); }",
            "#[derive (Debug, sqlx::FromRow)] struct Row { id: i64 }",
        ] {
            assert!(uses(code) && may_use(code), "{code}");
        }
    }

    #[test]
    fn what_generated_code_does_without_them_is_not_a_use() {
        for code in [
            // A model's own FromRow, a migrator built at run time, query functions.
            "impl sqlx::FromRow<'_, crate::db::Row> for Post { fn from_row(row: &crate::db::Row) -> Result<Self, sqlx::Error> { use sqlx::Row as _; Ok(Self { id: row.try_get(\"id\")? }) } }",
            "async fn m() -> anyhow::Result<sqlx::migrate::Migrator> { common::db::migrator(include!(concat!(env!(\"OUT_DIR\"), \"/migrations.rs\"))).await }",
            "async fn f(db: &Db) { sqlx::query(\"SELECT 1\").execute(db).await; sqlx::query_as::<_, Post>(SQL); }",
            "#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)] struct Post { id: i64 }",
            "#[derive(other::Type)] struct T;",
            "fn f() { println!(\"query!\"); let v = vec![1]; }",
            "fn f() { let v = vec![other::query!(\"x\")]; assert!(query(1)); }",
        ] {
            assert!(!uses(code), "{code}");
        }
    }

    #[test]
    fn axum_macros_are_found_and_only_they() {
        for code in [
            "#[axum::debug_handler] async fn h() {}",
            "use axum::debug_handler; #[debug_handler] async fn h() {}",
            "#[cfg_attr(debug_assertions, axum::debug_handler)] async fn h() {}",
            "#[axum::debug_middleware] async fn m(req: Request, next: Next) -> Response { next.run(req).await }",
            "#[derive(Clone, axum::extract::FromRef)] struct S { db: Db }",
            "use axum::extract::FromRef; #[derive(Clone, FromRef)] struct S { db: Db }",
            "#[derive(FromRequestParts)] #[from_request(via(Path))] struct Id(i64);",
            "#[derive(axum::extract::FromRequest)] #[from_request(via(axum::Json), rejection(E))] struct J<T>(T);",
            "macro_rules! m { () => { #[axum::debug_handler] async fn h() {} }; }",
        ] {
            assert!(
                uses_of_crate(code, &AXUM) && super::may_use(code, &AXUM),
                "{code}"
            );
            assert!(!uses(code), "not sqlx's: {code}");
        }
        for code in [
            // The runtime's extractors, by hand; sqlx's derive; a handler.
            "impl<T, S> FromRequest<S> for Json<T> where axum::Json<T>: FromRequest<S, Rejection = JsonRejection>, S: Send + Sync { type Rejection = ApiError; }",
            "#[derive(sqlx::FromRow)] struct Row { id: i64 }",
            "#[utoipa::path(get, path = \"/health\")] pub async fn health() -> Json<Value> { todo!() }",
            "#[derive(other::FromRef)] struct S;",
        ] {
            assert!(!uses_of_crate(code, &AXUM), "{code}");
        }
    }
}
