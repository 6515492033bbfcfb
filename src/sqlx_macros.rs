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

/// sqlx's function-like macros.
const MACROS: &[&str] = &[
    "query",
    "query_as",
    "query_scalar",
    "query_unchecked",
    "query_as_unchecked",
    "query_scalar_unchecked",
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

/// Whether code under `root` that builds against the workspace's sqlx (`common`,
/// the gateway, the monolith msgen generated and the services it generated, not
/// adopted ones, which keep a sqlx of their own) uses sqlx's macros.
///
/// Only the user's uses count: a file counts where it has more of them than msgen's
/// copy of what it last wrote there (`.msgen/base/`), so the `migrate!` and
/// `#[derive(sqlx::FromRow)]` of a project generated before msgen did without them,
/// which this render replaces, do not keep the feature on.
pub fn used_under(root: &Path, project: &Project) -> bool {
    let mut dirs = vec!["common".to_string(), "gateway".to_string()];
    if project.monolith.as_ref().is_none_or(|m| !m.is_external()) {
        // Also when the project has no monolith any more: `split` renders the
        // project without the module whose code is still there.
        dirs.push("monolith".into());
    }
    dirs.extend(
        project
            .services
            .iter()
            .filter(|s| !s.adopted() && !s.in_monolith())
            .map(|s| format!("services/{}", s.name.as_str())),
    );
    let uses = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .filter(|text| may_use(text))
            .and_then(|text| syn::parse_file(&text).ok())
            .map_or(0, |ast| uses_in(&ast))
    };
    dirs.iter().any(|dir| {
        walkdir::WalkDir::new(root.join(dir))
            .into_iter()
            .filter_entry(|e| e.file_name() != "target")
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "rs"))
            .any(|e| {
                let base = e
                    .path()
                    .strip_prefix(root)
                    .map(|rel| root.join(".msgen/base").join(rel));
                let here = uses(e.path());
                here > 0 && here > base.map_or(0, |b| uses(&b))
            })
    })
}

/// Whether `text` can use sqlx's macros at all: most files of a project cannot,
/// and reading text is much cheaper than parsing it.
fn may_use(text: &str) -> bool {
    let word_before = |at: usize| {
        let head = text[..at].trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        &text[head.len()..at]
    };
    text.match_indices('!')
        .any(|(at, _)| MACROS.contains(&word_before(at)))
        || text.match_indices("derive(").any(|(at, _)| {
            let list = &text[at..];
            let list = &list[..list.find(')').unwrap_or(list.len())];
            DERIVES.iter().any(|d| list.contains(d))
        })
        || text.contains("#[sqlx")
}

/// Whether the file uses one of sqlx's macros.
pub fn used_in(ast: &syn::File) -> bool {
    uses_in(ast) > 0
}

/// How many of sqlx's macros the file uses. A derive or macro of one of sqlx's
/// names without a `sqlx::` path counts too (it may be imported): keeping the
/// feature for nothing costs build time, dropping it for code that needs it
/// breaks the build.
fn uses_in(ast: &syn::File) -> usize {
    struct Count(usize);
    impl<'ast> Visit<'ast> for Count {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            // syn leaves a macro's arguments as tokens: `vec![sqlx::query!(..)]`.
            self.0 += usize::from(is_sqlx_item(&m.path, MACROS)) + invoked_in(m.tokens.clone());
        }
        fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
            let path = attr.path();
            if path.is_ident("sqlx") || is_path(path, &["sqlx", "test"]) {
                self.0 += 1;
            } else if path.is_ident("derive") {
                let derived =
                    attr.parse_args_with(Punctuated::<syn::Path, syn::Token![,]>::parse_terminated);
                self.0 += derived.map_or(0, |paths| {
                    paths.iter().filter(|p| is_sqlx_item(p, DERIVES)).count()
                });
            }
        }
    }
    let mut count = Count(0);
    count.visit_file(ast);
    count.0
}

/// How many times `tokens` invoke one of sqlx's macros (`sqlx::NAME!` or
/// `NAME!`), at any depth.
fn invoked_in(tokens: proc_macro2::TokenStream) -> usize {
    use proc_macro2::TokenTree;

    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize, c: char| matches!(&tokens[i], TokenTree::Punct(p) if p.as_char() == c);
    let invoked = |i: usize, t: &TokenTree| match t {
        TokenTree::Group(g) => invoked_in(g.stream()),
        TokenTree::Ident(name) if i + 1 < tokens.len() && punct(i + 1, '!') => {
            if !MACROS.iter().any(|m| name == m) {
                return 0;
            }
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
            usize::from(first.is_none_or(|f| f == "sqlx"))
        }
        _ => 0,
    };
    tokens.iter().enumerate().map(|(i, t)| invoked(i, t)).sum()
}

/// `sqlx::NAME` or a bare `NAME`, for one of `names`.
fn is_sqlx_item(path: &syn::Path, names: &[&str]) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [name] => names.contains(&name.as_str()),
        [first, .., name] => first == "sqlx" && names.contains(&name.as_str()),
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
        used_in(&syn::parse_file(code).unwrap())
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
