//! Validation of `[monolith]` and of services adopted from a monolith: the
//! monolith's path and package, adopted paths, routes and schemas, and `env`.

use toml::Spanned;

use super::{Reported, Validator};
use crate::model::*;
use crate::raw::{RawMonolith, RawService};

impl Validator<'_> {
    /// `[monolith] path/package`: `Ok(None)` for a monolith msgen generates.
    pub(super) fn external_monolith(
        &mut self,
        m: &RawMonolith,
    ) -> Result<Option<ExternalMonolith>, Reported> {
        let path_ok = m.path.as_ref().is_none_or(|path| {
            let p = path.get_ref();
            let ok = !p.is_empty()
                && !p.starts_with('/')
                && p.split('/').all(|c| {
                    !c.is_empty()
                        && c != "."
                        && c != ".."
                        && c.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
                });
            if !ok {
                self.err(
                    path,
                    "monolith.path",
                    format!("{p:?} is not a directory inside the project; accepted: a relative path of letters, digits, `_`, `-`, `.`, without `..`"),
                    None,
                );
            }
            ok
        });
        let package_ok = m.package.as_ref().is_none_or(|package| {
            let k = package.get_ref();
            let ok = !k.is_empty()
                && k.len() <= 64
                && k.starts_with(|c: char| c.is_ascii_alphabetic())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.err(
                    package,
                    "monolith.package",
                    format!("{k:?} is not a Cargo package name; accepted: letters, digits, `_` and `-`, starting with a letter"),
                    None,
                );
            }
            ok
        });
        if m.path.is_none() {
            if let Some(e) = m.env.first() {
                self.err(
                    e,
                    "monolith.env",
                    "`env` is only for an adopted monolith (`path` and `package`): msgen sets what a monolith it generates reads".into(),
                    None,
                );
            }
        }
        match (&m.path, &m.package) {
            (None, None) => Ok(None),
            (Some(path), Some(package)) => {
                let env = self.env_list(&m.env, "monolith.env");
                if !(path_ok && package_ok) {
                    return Err(Reported);
                }
                Ok(Some(ExternalMonolith {
                    path: path.get_ref().clone(),
                    package: package.get_ref().clone(),
                    env,
                }))
            }
            (Some(path), None) => {
                self.err(
                    path,
                    "monolith.package",
                    "`path` names an adopted monolith, which also needs `package` (its Cargo package name)".into(),
                    None,
                );
                Err(Reported)
            }
            (None, Some(package)) => {
                self.err(
                    package,
                    "monolith.path",
                    "`package` is only for an adopted monolith, which also needs `path` (its directory)".into(),
                    None,
                );
                Err(Reported)
            }
        }
    }

    /// `env` of adopted code: `NAME` (required) or `NAME=default`, each name once.
    pub(super) fn env_list(&mut self, list: &[Spanned<String>], key: &str) -> Vec<EnvVar> {
        let mut out: Vec<EnvVar> = Vec::new();
        for (j, e) in list.iter().enumerate() {
            let v = e.get_ref();
            let (name, default) = match v.split_once('=') {
                Some((n, d)) => (n, Some(d)),
                None => (v.as_str(), None),
            };
            let name_ok = !name.is_empty()
                && name.len() <= 64
                && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let default_ok =
                default.is_none_or(|d| d.len() <= 200 && !d.chars().any(char::is_control));
            if !name_ok || !default_ok {
                self.err(
                    e,
                    &format!("{key}[{j}]"),
                    format!("{v:?} is not an environment variable; accepted: `NAME` (required) or `NAME=default`, NAME of capitals, digits and `_`, a default of at most 200 characters on one line"),
                    None,
                );
            } else if out.iter().any(|o| o.name == name) {
                self.err(
                    e,
                    &format!("{key}[{j}]"),
                    format!("`{name}` is listed twice"),
                    None,
                );
            } else {
                out.push(EnvVar {
                    name: name.to_string(),
                    default: default.map(str::to_string),
                });
            }
        }
        out
    }

    /// The valid, distinct entries of an adopted service's `paths` (prefixes) or
    /// `routes` (exact routes, with `{param}` segments).
    pub(super) fn path_list(
        &mut self,
        list: &[Spanned<String>],
        field: &str,
        key: &dyn Fn(&str) -> String,
    ) -> Vec<String> {
        let routes = field == "routes";
        let mut out = Vec::new();
        for (j, p) in list.iter().enumerate() {
            let v = p.get_ref();
            let segments: Vec<&str> = v.split('/').skip(1).collect();
            let literal = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~'))
            };
            let param = |s: &str, last: bool| {
                let inner = s.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
                let inner = match inner {
                    Some(i) if last => i.strip_prefix('*').unwrap_or(i),
                    Some(i) => i,
                    None => return false,
                };
                !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            let ok = v.len() > 1
                && v.len() <= 200
                && v.starts_with('/')
                && segments.iter().enumerate().all(|(k, s)| {
                    !s.is_empty() && (literal(s) || param(s, k + 1 == segments.len()))
                });
            if !ok {
                let what = if routes {
                    "is not a route; accepted: `/` then segments of letters, digits, `_`, `-`, `.`, `~` or a `{name}` parameter (`{*name}` last), no trailing `/`, not `/` alone"
                } else {
                    "is not a path prefix; accepted: `/` then segments of letters, digits, `_`, `-`, `.`, `~` or a `{name}` parameter (`{*name}` last), no trailing `/`, not `/` alone"
                };
                self.err(
                    p,
                    &key(&format!("{field}[{j}]")),
                    format!("{v:?} {what}"),
                    None,
                );
            } else if out.contains(v) {
                self.err(
                    p,
                    &key(&format!("{field}[{j}]")),
                    format!("{v:?} is listed twice"),
                    None,
                );
            } else {
                out.push(v.clone());
            }
        }
        out
    }

    /// `adopted` and `paths` of a service: only together, and then without anything
    /// msgen would have to render into the service's code.
    pub(super) fn adopted(
        &mut self,
        rs: &RawService,
        key: &dyn Fn(&str) -> String,
    ) -> (bool, Vec<String>, Vec<String>) {
        let adopted = rs.adopted.as_ref().is_some_and(|a| *a.get_ref());
        let paths = self.path_list(&rs.paths, "paths", key);
        let routes = self.path_list(&rs.routes, "routes", key);
        if !adopted {
            for (field, list) in [("paths", &rs.paths), ("routes", &rs.routes)] {
                if let Some(p) = list.first() {
                    self.err(
                        p,
                        &key(field),
                        format!("`{field}` is only for adopted services (`adopted = true`); msgen derives the others' paths"),
                        None,
                    );
                }
            }
            return (false, paths, routes);
        }
        let at = rs.adopted.as_ref().expect("adopted is set");
        if rs.paths.is_empty() && rs.routes.is_empty() {
            self.err(
                at,
                &key("paths"),
                "an adopted service needs `paths` (the prefixes the gateway sends to it) or `routes` (exact routes)".into(),
                Some("e.g. paths = [\"/api/posts\"]".into()),
            );
        }
        let renders_code = [
            ("resources", !rs.resources.is_empty()),
            ("template", rs.template.is_some()),
            ("depends_on", !rs.depends_on.is_empty()),
            ("publishes", !rs.publishes.is_empty()),
            ("consumes", !rs.consumes.is_empty()),
            (
                "monolith",
                rs.monolith.as_ref().is_some_and(|m| *m.get_ref()),
            ),
            ("split_from", rs.split_from.is_some()),
        ];
        for (k, set) in renders_code {
            if set {
                self.err(
                    at,
                    &key(k),
                    format!(
                        "an adopted service's code is its own: msgen cannot render `{k}` into it"
                    ),
                    Some(format!("remove `{k}`")),
                );
            }
        }
        (true, paths, routes)
    }

    /// `schema` of an adopted PostgreSQL service: a plain PostgreSQL identifier
    /// that is not one of the server's own schemas.
    pub(super) fn schema(
        &mut self,
        rs: &RawService,
        adopted: bool,
        database: Option<DatabaseKind>,
        key: &dyn Fn(&str) -> String,
    ) -> Option<String> {
        let v = rs.schema.as_ref()?;
        let name = v.get_ref();
        if !adopted {
            let msg = "`schema` is only for services adopted from a monolith (`adopted = true`, and `[monolith] path`): the schema is one of the monolith's database; a service msgen generates has a database of its own".into();
            self.err(v, &key("schema"), msg, Some("remove `schema`".into()));
            return None;
        }
        if database.is_some_and(|d| d != DatabaseKind::Postgres) {
            let msg = "`schema` needs `database = \"postgres\"`: SQLite has no schemas".into();
            self.err(v, &key("schema"), msg, None);
            return None;
        }
        let plain = name.len() <= MAX_IDENTIFIER_BYTES
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let reserved = name == "public" || name == "information_schema" || name.starts_with("pg_");
        if !plain || reserved {
            let msg = format!(
                "`{name}` cannot be the service's schema; accepted: lower-case letters, digits and `_`, at most {MAX_IDENTIFIER_BYTES} bytes, not starting with a digit, and not `public`, `information_schema` or `pg_*`"
            );
            self.err(v, &key("schema"), msg, None);
            return None;
        }
        if let Some(other) = self.schemas.insert(name.clone(), rs.name.get_ref().clone()) {
            let msg = format!("service `{other}` has schema `{name}` already; each service's tables need a schema of their own");
            self.err(v, &key("schema"), msg, None);
            return None;
        }
        Some(name.clone())
    }
}
