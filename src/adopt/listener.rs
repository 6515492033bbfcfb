//! The service's listener after `split --from`: it listens on `HOST` and `PORT`
//! instead of the monolith's address, answers `GET /health` when it does not
//! already, and creates its schema before its migrations run.

use syn::spanned::Spanned as _;
use syn::visit::Visit;

use super::cut::ServiceCopy;
use super::scan::{Crate, Parsed, Scanned};
use super::{span_range, CutReport, Edit, Refusal};

/// Adds to `copy` the edits that give the service its listener, health check and
/// schema; returns the monolith's port, as its listener shows it (or 3000).
pub(super) fn listener(
    c: &Crate,
    s: &Scanned,
    copy: &mut ServiceCopy,
    module: &str,
    port: u16,
    schema: Option<&str>,
    report: &mut CutReport,
) -> Result<u16, Refusal> {
    let found = find_listener(c, copy);
    // A `/health` the service already serves (a second one would make axum panic):
    // one in its root files or shared modules, or the module's own when it is
    // merged at the root.
    let merged_at_root = s
        .mounts_of(module)
        .any(|m| m.own.is_none() && m.nest_prefix == "/");
    let serves_health = |m: &str| {
        s.route_literals
            .get(m)
            .is_some_and(|r| r.iter().any(|(p, _)| p == "/health"))
    };
    let contexts = s.contexts();
    let has_health = s.root_routes.iter().any(|(r, _)| r == "/health")
        || copy
            .needed
            .iter()
            .any(|m| m != module && !contexts.contains(m.as_str()) && serves_health(m))
        || (merged_at_root && serves_health(module));
    let Some((bind_file, bind_range)) = found.bind else {
        return Err(Refusal(vec![
            "no `TcpListener::bind(...)` in the code the service keeps: split --from supports axum 0.7+ applications that listen with tokio's TcpListener and `axum::serve`".into(),
        ]));
    };
    let bind = c.file(&bind_file);
    let monolith_port = literal_port(&bind.text[bind_range.clone()]).unwrap_or(3000);
    let end = bind.text.len();
    let edits = copy.edits.entry(bind_file.clone()).or_default();
    edits.push(Edit {
        range: bind_range,
        with: "msgen_listen_address()".into(),
    });
    edits.push(Edit {
        range: end..end,
        with: LISTEN_FN.replace("@PORT@", &port.to_string()),
    });
    if !has_health {
        let Some((serve_file, (app_span, into_make))) = found.serve else {
            return Err(Refusal(vec![
                "no `axum::serve(listener, app)` in the code the service keeps: split --from supports axum 0.7+ applications".into(),
            ]));
        };
        let text = &c.file(&serve_file).text;
        // An insertion after the router, so edits inside it still apply.
        let end = span_range(text, into_make.unwrap_or(app_span)).end;
        let edits = copy.edits.entry(serve_file).or_default();
        edits.push(Edit {
            range: end..end,
            with: ".route(\"/health\", axum::routing::get(msgen_health))".into(),
        });
        edits.push(Edit {
            range: text.len()..text.len(),
            with: HEALTH_FN.into(),
        });
    }
    // The service's schema exists before sqlx looks for its migration history
    // there (the first schema of its search path), whichever starts first.
    if let (Some(schema), Some((file, range))) = (schema, found.migrate_run) {
        let text = &c.file(&file).text;
        let arg = text[range.clone()].to_string();
        if arg.trim_start().starts_with("&mut") {
            report.human.push(format!(
                "{file}: the migrations run on a connection msgen cannot pass on: create schema `{schema}` before they run (`CREATE SCHEMA IF NOT EXISTS \"{schema}\"`), or the service's migration history lands in another schema"
            ));
        } else {
            let end = text.len();
            let edits = copy.edits.entry(file).or_default();
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
    Ok(monolith_port)
}

/// Where the kept code listens, serves and migrates: the first of each, root
/// files first and `main.rs` before them (its listener is the one that serves).
struct Found {
    bind: Option<(String, std::ops::Range<usize>)>,
    serve: Option<(String, (proc_macro2::Span, Option<proc_macro2::Span>))>,
    migrate_run: Option<(String, std::ops::Range<usize>)>,
}

fn find_listener(c: &Crate, copy: &ServiceCopy) -> Found {
    let mut found = Found {
        bind: None,
        serve: None,
        migrate_run: None,
    };
    let mut kept: Vec<&Parsed> = c.parsed.iter().filter(|f| copy.keeps(f)).collect();
    kept.sort_by_key(|f| (f.top.is_some(), f.rel != "src/main.rs"));
    for f in kept {
        let mut v = Listen::default();
        v.visit_file(&f.ast);
        if let Some(arg) = v.bind_arg {
            found
                .bind
                .get_or_insert((f.rel.clone(), span_range(&f.text, arg)));
        }
        if let Some(arg) = v.serve_app {
            found.serve.get_or_insert((f.rel.clone(), arg));
        }
        if let Some(arg) = v.migrate_run {
            found
                .migrate_run
                .get_or_insert((f.rel.clone(), span_range(&f.text, arg)));
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::super::cut::service_modules;
    use super::super::scan::scan;
    use super::super::testing::{refused, source, MAIN};
    use super::*;

    /// The service's `main.rs` after the listener stage, the monolith's port and
    /// what the report says.
    fn listen(main: &str, schema: Option<&str>) -> Result<(String, u16, Vec<String>), Refusal> {
        let c = Crate::read(&source(&[("src/main.rs", main)]), "blog").unwrap();
        let s = scan(&c).unwrap();
        let mut copy = service_modules(&c, &s, "blog");
        let mut report = CutReport::default();
        let port = listener(&c, &s, &mut copy, "blog", 8010, schema, &mut report)?;
        let edits = copy.edits.remove("src/main.rs").unwrap_or_default();
        Ok((
            super::super::apply_edits(&c.root().text, edits),
            port,
            report.human,
        ))
    }

    #[test]
    fn the_port_of_a_literal_address() {
        assert_eq!(literal_port("\"0.0.0.0:3000\""), Some(3000));
        assert_eq!(literal_port("(\"127.0.0.1\", 8080)"), Some(8080));
        assert_eq!(literal_port("addr"), None);
    }

    #[test]
    fn the_service_listens_on_host_and_port_and_answers_health() {
        let (main, port, human) = listen(MAIN, None).unwrap();
        assert_eq!(port, 3000);
        assert!(human.is_empty());
        assert!(
            main.contains("tokio::net::TcpListener::bind(msgen_listen_address())"),
            "{main}"
        );
        assert!(main.contains(".unwrap_or(8010)"), "{main}");
        assert!(
            main.contains(
                "axum::serve(listener, app().route(\"/health\", axum::routing::get(msgen_health)))"
            ),
            "{main}"
        );
        assert_eq!(main.matches("async fn msgen_health()").count(), 1);
        syn::parse_file(&main).unwrap();
    }

    #[test]
    fn a_health_route_the_service_has_is_not_added_twice() {
        let main = MAIN.replace(
            ".merge(users::routes())",
            ".merge(users::routes())\n        .route(\"/health\", axum::routing::get(|| async { \"ok\" }))",
        );
        let (main, _, _) = listen(&main, None).unwrap();
        assert!(!main.contains("msgen_health"), "{main}");
        assert!(main.contains("msgen_listen_address()"), "{main}");
    }

    #[test]
    fn a_listener_in_a_test_is_not_the_one_that_serves() {
        let main = MAIN.replace("\"0.0.0.0:3000\"", "addr()")
            + "\nfn addr() -> &'static str {\n    \"0.0.0.0:4000\"\n}\n\n#[cfg(test)]\nmod tests {\n    #[tokio::test]\n    async fn binds() {\n        let _ = tokio::net::TcpListener::bind(\"127.0.0.1:3999\").await;\n    }\n}\n";
        let (main, port, _) = listen(&main, None).unwrap();
        // Not a literal: the monolith's port is the default.
        assert_eq!(port, 3000);
        assert!(main.contains("bind(\"127.0.0.1:3999\")"), "{main}");
        assert!(
            main.contains("TcpListener::bind(msgen_listen_address())"),
            "{main}"
        );
    }

    #[test]
    fn an_application_without_a_tokio_listener_is_refused() {
        let main = MAIN.replace(
            "tokio::net::TcpListener::bind",
            "std::net::TcpListener::bind_to",
        );
        let err = refused(listen(&main, None));
        assert!(err.0[0].starts_with("no `TcpListener::bind(...)`"), "{err}");
    }

    #[test]
    fn the_schema_is_created_before_the_migrations_run() {
        let with_pool = MAIN.replace(
            "    let listener",
            "    let pool = sqlx::PgPool::connect_lazy(\"\").unwrap();\n    sqlx::migrate!().run(&pool).await.unwrap();\n    let listener",
        );
        let (main, _, human) = listen(&with_pool, Some("blog")).unwrap();
        assert!(human.is_empty(), "{human:?}");
        assert!(
            main.contains("sqlx::migrate!().run(msgen_schema(&pool).await)"),
            "{main}"
        );
        assert!(
            main.contains(r#"CREATE SCHEMA IF NOT EXISTS "blog""#),
            "{main}"
        );

        let on_conn = with_pool.replace("run(&pool)", "run(&mut conn)");
        let (main, _, human) = listen(&on_conn, Some("blog")).unwrap();
        assert!(!main.contains("msgen_schema"), "{main}");
        assert_eq!(human.len(), 1);
        assert!(human[0]
            .starts_with("src/main.rs: the migrations run on a connection msgen cannot pass on"));
    }
}
