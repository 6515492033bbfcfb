//! sqlx's offline query data for the service: what lets a crate with
//! compile-time checked queries (`query!`, `query_as!`, ...) build without a
//! database. The data of a query is keyed by its SQL text, which the cut never
//! changes, so the monolith's `.sqlx/query-*.json` for the service's queries
//! are valid for the service as they are.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{TokenStream, TokenTree};
use syn::spanned::Spanned as _;
use syn::visit::Visit;

/// The SQL of every checked query macro in `ast`, with its line.
pub fn checked_queries(ast: &syn::File) -> Vec<(usize, String)> {
    struct Find(Vec<(usize, String)>);
    impl<'ast> Visit<'ast> for Find {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            let name = m
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default();
            if !crate::macro_uses::QUERY_MACROS.contains(&name.as_str()) {
                return;
            }
            // The SQL is the first string literal (after the record type of `query_as!`).
            let first = m.tokens.clone().into_iter().find_map(|t| match t {
                TokenTree::Literal(l) => {
                    syn::parse2::<syn::LitStr>(TokenStream::from(TokenTree::Literal(l))).ok()
                }
                _ => None,
            });
            if let Some(sql) = first {
                self.0.push((m.span().start().line, sql.value()));
            }
        }
    }
    let mut f = Find(Vec::new());
    f.visit_file(ast);
    f.0
}

/// The `"query"` of one `.sqlx/query-*.json` file (a JSON string, decoded).
pub fn query_of(json: &str) -> Option<String> {
    let at = json.find("\"query\"")? + "\"query\"".len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut chars = rest.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let mut code = u32::from_str_radix(&hex, 16).ok()?;
                    if (0xD800..0xDC00).contains(&code) {
                        // A surrogate pair: `\uD83D\uDE00`.
                        let low: String = chars.by_ref().skip(2).take(4).collect();
                        let low = u32::from_str_radix(&low, 16).ok()?;
                        code = 0x10000 + ((code - 0xD800) << 10) + (low.checked_sub(0xDC00)?);
                    }
                    out.push(char::from_u32(code)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// What the service gets of the monolith's offline data, and what it lacks.
#[derive(Debug, Default)]
pub struct Offline {
    /// `.sqlx/<file>` → contents, for the service's checked queries.
    pub files: BTreeMap<String, String>,
    /// Checked queries (`file:line`) with no offline data in the monolith.
    pub missing: Vec<String>,
    /// How many checked queries the service has.
    pub checked: usize,
}

/// The offline data of `queries` (`file:line`, SQL) among the monolith's
/// `.sqlx` files (`name` → JSON).
pub fn for_queries(queries: &[(String, String)], data: &BTreeMap<String, String>) -> Offline {
    let by_query: BTreeMap<String, &String> = data
        .iter()
        .filter_map(|(name, json)| query_of(json).map(|q| (q, name)))
        .collect();
    let mut out = Offline {
        checked: queries.len(),
        ..Offline::default()
    };
    let mut seen = BTreeSet::new();
    for (at, sql) in queries {
        match by_query.get(sql) {
            Some(name) => {
                if seen.insert(*name) {
                    out.files
                        .insert(format!(".sqlx/{name}"), data[name.as_str()].clone());
                }
            }
            None => out.missing.push(at.clone()),
        }
    }
    out
}

/// The offline data the service gets for the checked queries of `kept` (its
/// files), with what the report says of them.
pub(super) fn copy_data<'a>(
    kept: impl Iterator<Item = &'a super::Parsed>,
    data: &BTreeMap<String, String>,
    service: &str,
    report: &mut super::CutReport,
) -> BTreeMap<String, String> {
    let queries: Vec<(String, String)> = kept
        .flat_map(|f| {
            checked_queries(&f.ast)
                .into_iter()
                .map(move |(line, sql)| (format!("{}:{line}", f.rel), sql))
        })
        .collect();
    let offline = for_queries(&queries, data);
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
    offline.files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_of_a_data_file_is_decoded() {
        let json = "{\n  \"db_name\": \"PostgreSQL\",\n  \"query\": \"SELECT \\\"a\\\"\\n FROM t -- \\u00e9\\ud83d\\ude00\",\n  \"describe\": {}\n}";
        assert_eq!(
            query_of(json).as_deref(),
            Some("SELECT \"a\"\n FROM t -- é😀")
        );
        assert_eq!(query_of("{\"db_name\": \"x\"}"), None);
    }

    #[test]
    fn checked_queries_are_found_and_matched_with_their_data() {
        let ast = syn::parse_file(
            "fn f() {\n    let _ = sqlx::query!(\"SELECT 1\");\n    let _ = query_as!(Row, r#\"SELECT \"a!\" FROM t\"#, x);\n    let _ = sqlx::query(\"SELECT 2\");\n}",
        )
        .unwrap();
        let found = checked_queries(&ast);
        assert_eq!(
            found,
            [
                (2, "SELECT 1".to_string()),
                (3, "SELECT \"a!\" FROM t".to_string())
            ]
        );
        let data = BTreeMap::from([
            (
                "query-1.json".to_string(),
                "{\"query\": \"SELECT 1\"}".to_string(),
            ),
            (
                "query-9.json".to_string(),
                "{\"query\": \"SELECT 9\"}".to_string(),
            ),
        ]);
        let queries: Vec<(String, String)> = found
            .into_iter()
            .map(|(line, sql)| (format!("src/a.rs:{line}"), sql))
            .collect();
        let offline = for_queries(&queries, &data);
        assert_eq!(
            offline.files.keys().collect::<Vec<_>>(),
            [".sqlx/query-1.json"]
        );
        assert_eq!(offline.missing, ["src/a.rs:3"]);
        assert_eq!(offline.checked, 2);
    }
}
