//! The gateway's side of `split --from`: which paths the new service takes over
//! (a nested module's prefix, or exact routes where it shares a prefix), checked
//! against every path the rest of the monolith and earlier services serve.

use std::collections::BTreeSet;

use super::scan::{Mount, Scanned};
use super::Refusal;

/// What the gateway sends to the new service.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Routing {
    /// Prefixes: every path below them.
    pub(super) paths: Vec<String>,
    /// Exact routes, where a prefix is shared with another module.
    pub(super) routes: Vec<String>,
}

/// The paths `module` takes with it; refused when one would take another
/// module's path, or when the module serves `/` itself. `service_routes` are the
/// prefixes and routes of services split out earlier.
pub(super) fn routing(
    s: &Scanned,
    module: &str,
    service_routes: &[String],
) -> Result<Routing, Refusal> {
    let target_mounts: Vec<&Mount> = s.mounts_of(module).collect();
    let mine: Vec<(String, bool)> = target_mounts.iter().flat_map(|m| s.routes_of(m)).collect();
    let theirs: Vec<(&Mount, String)> = s
        .mounts
        .iter()
        .filter(|m| m.module != module)
        .flat_map(|m| s.routes_of(m).into_iter().map(move |(r, _)| (m, r)))
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
            _ => paths.extend(s.routes_of(m).iter().map(|(r, _)| static_prefix(r))),
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
            || (!nested.contains(&p) && service_routes.iter().any(|o| under(o, &p)));
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
    Ok(Routing { paths, routes })
}

pub(super) fn join_paths(stack: &[String], last: &str) -> String {
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
pub(super) fn axum_pattern(path: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::super::scan::{scan, Crate};
    use super::super::testing::{refused, source, MAIN, USERS};
    use super::*;

    fn routing_of(
        with: &[(&str, &str)],
        module: &str,
        earlier: &[&str],
    ) -> Result<Routing, Refusal> {
        let c = Crate::read(&source(with), module).unwrap();
        let earlier: Vec<String> = earlier.iter().map(|s| s.to_string()).collect();
        routing(&scan(&c).unwrap(), module, &earlier)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths() {
        assert_eq!(static_prefix("/api/posts/:id"), "/api/posts");
        assert_eq!(static_prefix("/api/posts/{id}/x"), "/api/posts");
        assert_eq!(join_paths(&["/api".into()], "/posts"), "/api/posts");
        assert_eq!(join_paths(&["/api/".into()], "/"), "/api");
        assert!(under("/api/posts/1", "/api/posts"));
        assert!(!under("/api/postsx", "/api/posts"));
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
    fn a_nested_module_takes_its_prefix_and_a_merged_one_its_routes_beginnings() {
        let blog = routing_of(&[], "blog", &[]).unwrap();
        assert_eq!(
            blog,
            Routing {
                paths: strings(&["/api/blog"]),
                routes: vec![]
            }
        );
        let users = routing_of(&[], "users", &[]).unwrap();
        assert_eq!(
            users,
            Routing {
                paths: strings(&["/api/users"]),
                routes: vec![]
            }
        );
    }

    #[test]
    fn a_prefix_shared_with_another_module_becomes_the_modules_routes() {
        let users = USERS.replace("\"/api/users\"", "\"/api/blog/{id}/likes\"");
        let blog = routing_of(&[("src/users.rs", &users)], "blog", &[]).unwrap();
        assert_eq!(
            blog,
            Routing {
                paths: vec![],
                routes: strings(&["/api/blog", "/api/blog/{id}"])
            }
        );
    }

    #[test]
    fn a_route_that_would_take_another_modules_path_is_refused() {
        let users = USERS.replace("\"/api/users\"", "\"/api/blog/stats\"");
        let err = refused(routing_of(&[("src/users.rs", &users)], "blog", &[]));
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(
            err.0[0].contains("module `users` serves /api/blog/stats, which `blog`'s route /api/blog/{id} would take from it"),
            "{err}"
        );
    }

    #[test]
    fn a_module_at_the_root_path_is_refused() {
        let main = MAIN.replace("\"/api/blog\"", "\"/\"");
        let err = refused(routing_of(&[("src/main.rs", &main)], "blog", &[]));
        assert!(err.0[0].contains("serves the root path `/`"), "{err}");
    }

    #[test]
    fn an_earlier_services_routes_make_a_read_prefix_exact_but_not_a_nest_prefix() {
        // users' prefix is read off its routes: shared with an earlier service, it
        // becomes the route itself.
        let users = USERS.replace("\"/api/users\"", "\"/api/users/{id}\"");
        let got = routing_of(&[("src/users.rs", &users)], "users", &["/api/users/export"]).unwrap();
        assert_eq!(
            got,
            Routing {
                paths: vec![],
                routes: strings(&["/api/users/{id}"])
            }
        );
        // blog's nest prefix stays its own.
        let blog = routing_of(&[], "blog", &["/api/blog/archive"]).unwrap();
        assert_eq!(blog.paths, strings(&["/api/blog"]));
    }
}
