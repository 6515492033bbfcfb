//! Where each path goes: the routes of `services.toml` (the project's
//! `routes.rs` lists them, most specific first) and the rule that matches a path
//! to the first route that takes it.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

/// A service behind the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Upstream {
    pub name: &'static str,
    /// Environment variable holding its base URL.
    pub env: &'static str,
    pub default_url: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The path this route serves, and (unless `exact`) every path below it.
    /// `{name}` stands for any one segment, `{*name}` for the rest of the path;
    /// `/` (not exact) takes every path, so it goes last (an adopted monolith's
    /// catch-all, after every service's routes).
    pub prefix: &'static str,
    pub exact: bool,
    /// Has `{param}` segments: matched segment by segment.
    pub pattern: bool,
    /// What the prefix becomes upstream: an extracted service serves the
    /// monolith's old `/api/x` paths as `/api/v1/x`.
    pub rewrite: Option<&'static str>,
    pub upstream: &'static str,
    /// Requests need a valid JWT (`Authorization: Bearer ...`).
    pub protected: bool,
}

/// The route of `routes` serving `path`: the first whose path is `path` or,
/// unless it is exact, a whole-segment prefix of it.
pub fn find(routes: &'static [Route], path: &str) -> Option<&'static Route> {
    routes.iter().find(|r| matches(r, path))
}

fn matches(route: &Route, path: &str) -> bool {
    if !route.pattern {
        if route.prefix == "/" {
            return !route.exact || path == "/";
        }
        return path
            .strip_prefix(route.prefix)
            .is_some_and(|rest| rest.is_empty() || (!route.exact && rest.starts_with('/')));
    }
    let mut segments = path.split('/');
    for want in route.prefix.split('/') {
        let Some(got) = segments.next() else {
            return false;
        };
        if want.starts_with("{*") {
            return !got.is_empty();
        }
        let param = want.starts_with('{');
        if (param && got.is_empty()) || (!param && want != got) {
            return false;
        }
    }
    // Nothing left, or (for a prefix) only segments below it.
    match segments.next() {
        None => true,
        Some(_) => !route.exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn route(prefix: &'static str, exact: bool, upstream: &'static str) -> Route {
        let bytes = prefix.as_bytes();
        let mut pattern = false;
        let mut i = 0;
        while i < bytes.len() {
            pattern |= bytes[i] == b'{';
            i += 1;
        }
        Route {
            prefix,
            exact,
            pattern,
            rewrite: None,
            upstream,
            protected: false,
        }
    }

    const ROUTES: &[Route] = &[
        route("/api/v1/posts/{id}/comments", false, "comments"),
        route("/api/v1/posts/{id}", true, "blog"),
        route("/api/v1/files/{*rest}", true, "files"),
        route("/api/v1/posts", false, "blog"),
        route("/", false, "monolith"),
    ];

    fn upstream(path: &str) -> Option<&'static str> {
        find(ROUTES, path).map(|r| r.upstream)
    }

    #[test]
    fn the_first_route_that_takes_a_path_serves_it() {
        assert_eq!(upstream("/api/v1/posts"), Some("blog"));
        assert_eq!(upstream("/api/v1/posts/7"), Some("blog"));
        assert_eq!(upstream("/api/v1/posts/7/comments"), Some("comments"));
        assert_eq!(upstream("/api/v1/posts/7/comments/3"), Some("comments"));
        // An exact pattern takes nothing below it: the prefix behind it does.
        assert_eq!(upstream("/api/v1/posts/7/likes"), Some("blog"));
        assert_eq!(upstream("/api/v1/files/a/b/c"), Some("files"));
        // A prefix matches on whole segments; `/` takes the rest.
        assert_eq!(upstream("/api/v1/postsx"), Some("monolith"));
        assert_eq!(upstream("/"), Some("monolith"));
        assert_eq!(upstream("/anything/else"), Some("monolith"));
    }

    #[test]
    fn without_a_catch_all_an_unknown_path_has_no_route() {
        let routes = &ROUTES[..4];
        assert!(find(routes, "/nowhere").is_none());
        assert!(find(routes, "/api/v1/postsx").is_none());
        // An empty segment is no parameter.
        assert!(find(routes, "/api/v1/posts//comments").is_some_and(|r| r.upstream == "blog"));
        assert!(find(routes, "/api/v1/files/").is_none());
        let exact_root = [route("/", true, "home")];
        let exact_root: &'static [Route] = Box::leak(Box::new(exact_root));
        assert!(find(exact_root, "/").is_some());
        assert!(find(exact_root, "/x").is_none());
    }
}
