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

/// Its other function-like macros.
const OTHER_MACROS: &[&str] = &[
    "query_file",
    "query_file_as",
    "query_file_scalar",
    "query_file_unchecked",
    "query_file_as_unchecked",
    "query_file_scalar_unchecked",
    "migrate",
];

/// sqlx's derives.
const DERIVES: &[&str] = &["FromRow", "Type", "Encode", "Decode"];

fn is_macro(name: &str) -> bool {
    QUERY_MACROS.contains(&name) || OTHER_MACROS.contains(&name)
}

fn is_derive(name: &str) -> bool {
    DERIVES.contains(&name)
}

/// Whether code under `root` that builds against the workspace's sqlx uses sqlx's
/// macros: any Rust file of the project's tree (crates of the user's too), but for
/// adopted services and an adopted monolith, which keep a sqlx of their own.
///
/// Only the user's uses count: a file counts where it has a use that msgen's copy
/// of what it last wrote there (`.msgen/base/`) has not, so the `migrate!` and
/// `#[derive(sqlx::FromRow)]` of a project generated before msgen did without them,
/// which this render replaces, do not keep the feature on.
pub fn used_under(root: &Path, project: &Project) -> bool {
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
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            let skipped = e.depth() > 0 && name.starts_with('.')
                || e.depth() == 1 && name == "target"
                || theirs.iter().any(|t| t == e.path());
            !skipped
        })
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file() && e.path().extension().is_some_and(|x| x == "rs"))
        .any(|e| {
            let mut uses = uses_of(e.path());
            if uses.is_empty() {
                return false;
            }
            if let Ok(rel) = e.path().strip_prefix(root) {
                for msgens in uses_of(&root.join(".msgen/base").join(rel)) {
                    if let Some(at) = uses.iter().position(|u| *u == msgens) {
                        uses.swap_remove(at);
                    }
                }
            }
            !uses.is_empty()
        })
}

/// The uses of sqlx's macros in the file at `path`, by name. A file that may use
/// them but does not parse (newer syntax, conflict markers) counts as one.
fn uses_of(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if may_use(&text) => match syn::parse_file(&text) {
            Ok(ast) => uses_in(&ast),
            Err(_) => vec!["unparsed".to_string()],
        },
        _ => Vec::new(),
    }
}

/// Whether `text` can use sqlx's macros at all: most files of a project cannot,
/// and reading text is much cheaper than parsing it.
fn may_use(text: &str) -> bool {
    let word_before = |at: usize| {
        let before = text[..at].trim_end();
        let head = before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        &before[head.len()..]
    };
    text.match_indices('!')
        .any(|(at, _)| is_macro(word_before(at)))
        || text.match_indices("derive").any(|(at, _)| {
            let list = &text[at..];
            let list = &list[..list.find(')').unwrap_or(list.len())];
            DERIVES.iter().any(|d| list.contains(d))
        })
        || ["sqlx(", "sqlx (", "sqlx::test", "sqlx :: test"]
            .iter()
            .any(|a| text.contains(a))
}

/// The uses of sqlx's macros in the file, by name. A derive or macro of one of
/// sqlx's names without a `sqlx::` path counts too (it may be imported): keeping
/// the feature for nothing costs build time, dropping it for code that needs it
/// breaks the build.
fn uses_in(ast: &syn::File) -> Vec<String> {
    struct Find(Vec<String>);
    impl<'ast> Visit<'ast> for Find {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            if is_sqlx_item(&m.path, is_macro) {
                self.0
                    .extend(m.path.segments.last().map(|s| s.ident.to_string()));
            }
            // syn leaves a macro's arguments as tokens: `vec![sqlx::query!(..)]`.
            invoked_in(m.tokens.clone(), &mut self.0);
        }
        fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
            attribute_uses(&attr.meta, &mut self.0);
        }
    }
    let mut find = Find(Vec::new());
    find.visit_file(ast);
    find.0
}

/// The uses in one attribute: `#[sqlx::test]`, `#[sqlx(..)]`, a derive of sqlx's,
/// or any of these under `#[cfg_attr(condition, ..)]`.
fn attribute_uses(meta: &syn::Meta, uses: &mut Vec<String>) {
    let path = meta.path();
    if path.is_ident("sqlx") || is_path(path, &["sqlx", "test"]) {
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
                    .filter(|p| is_sqlx_item(p, is_derive))
                    .map(quote_path),
            );
        }
    } else if path.is_ident("cfg_attr") {
        if let Ok(metas) =
            list.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
        {
            // The first is the condition.
            for meta in metas.iter().skip(1) {
                attribute_uses(meta, uses);
            }
        }
    }
}

fn quote_path(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

/// The invocations of sqlx's macros in `tokens` (`sqlx::NAME!` or `NAME!`), at any
/// depth, and the attributes of its there (`#[derive(sqlx::FromRow)]` in a
/// `macro_rules!`).
fn invoked_in(tokens: proc_macro2::TokenStream, uses: &mut Vec<String>) {
    use proc_macro2::{Delimiter, TokenTree};

    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize, c: char| matches!(&tokens[i], TokenTree::Punct(p) if p.as_char() == c);
    for (i, t) in tokens.iter().enumerate() {
        match t {
            TokenTree::Group(g)
                if g.delimiter() == Delimiter::Bracket && i > 0 && punct(i - 1, '#') =>
            {
                if let Ok(meta) = syn::parse2::<syn::Meta>(g.stream()) {
                    attribute_uses(&meta, uses);
                }
                invoked_in(g.stream(), uses);
            }
            TokenTree::Group(g) => invoked_in(g.stream(), uses),
            TokenTree::Ident(name)
                if i + 1 < tokens.len() && punct(i + 1, '!') && is_macro(&name.to_string()) =>
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
                if first.is_none_or(|f| f == "sqlx") {
                    uses.push(name.to_string());
                }
            }
            _ => {}
        }
    }
}

/// `sqlx::NAME` or a bare `NAME`, for a `NAME` that is `named`.
fn is_sqlx_item(path: &syn::Path, named: fn(&str) -> bool) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [name] => named(name),
        [first, .., name] => first == "sqlx" && named(name),
        [] => false,
    }
}

fn is_path(path: &syn::Path, want: &[&str]) -> bool {
    path.segments.len() == want.len() && path.segments.iter().zip(want).all(|(s, w)| s.ident == w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(code: &str) -> bool {
        !uses_in(&syn::parse_file(code).unwrap()).is_empty()
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
}
