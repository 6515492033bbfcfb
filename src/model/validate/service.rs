//! Validation of one `[[services]]` entry: its name, port, kind, database,
//! calls and events.

use std::collections::BTreeMap;

use toml::Spanned;

use super::{Reported, Validator};
use crate::model::*;
use crate::raw::RawService;

impl Validator<'_> {
    /// One service, in stages that each report their own problems, in the order a
    /// reader meets the keys; `None` when a problem leaves no service to build.
    pub(super) fn service(
        &mut self,
        i: usize,
        mut rs: RawService,
        default_database: DatabaseKind,
        monolith: Option<&Result<Monolith, Reported>>,
        ports: &mut BTreeMap<u16, String>,
    ) -> Option<Service> {
        let key = |k: &str| format!("services[{i}].{k}");
        let place = Placement::of(&rs, monolith);
        let (adopted, paths, routes) = self.adopted(&rs, &key);
        let env = self.env_list(&rs.env, &key("env"));
        if !adopted {
            if let Some(e) = rs.env.first() {
                self.err(
                    e,
                    &key("env"),
                    "`env` is only for adopted services (`adopted = true`): msgen sets what the services it generates read".into(),
                    None,
                );
            }
        }
        let name = ServiceName::parse(rs.name.get_ref())
            .map_err(|m| self.err(&rs.name, &key("name"), m, None))
            .ok();
        let port = self.service_port(&rs, &key, ports);
        let database = match &rs.database {
            Some(d) => self.database(d, &key("database")),
            None => Some(default_database),
        };
        let schema = self.schema(&rs, adopted && place.external_monolith, database, &key);
        if !place.in_monolith && schema.is_none() {
            self.database_name_fits(&rs, name.as_ref(), database, &key);
        }
        let template = self.template(&rs, &key);
        let depends_on = self.depends_on(&rs, &key);
        let mut resources: Vec<Resource> = Vec::new();
        for (j, rr) in std::mem::take(&mut rs.resources).into_iter().enumerate() {
            let raw = rr.get_ref();
            let at = Spanned::new(
                raw.plural.as_ref().map_or(raw.name.span(), |p| p.span()),
                (),
            );
            for (field, spanned) in &raw.fields {
                let place = (
                    rs.name.get_ref().clone(),
                    raw.name.get_ref().clone(),
                    field.clone(),
                );
                self.field_spans
                    .insert(place, Spanned::new(spanned.span(), ()));
            }
            let rkey = key(&format!("resources[{j}]"));
            let Some(resource) = self.resource(&rkey, rr) else {
                continue;
            };
            // One table and one path each: a second would overlap the first's
            // routes and migrations.
            if let Some(other) = resources.iter().find(|r| r.plural == resource.plural) {
                self.err(
                    &at,
                    &format!("{rkey}.plural"),
                    format!(
                        "resource `{}` would have the table and path `{}` of resource `{}` too",
                        resource.name, resource.plural, other.name
                    ),
                    Some("set a `plural` of its own on one of them".into()),
                );
            }
            resources.push(resource);
        }
        self.storage(&rs, database, template, &resources, &key);
        // The cross checks point at the `depends_on` entry itself.
        for (n, span) in &depends_on {
            self.dep_spans.insert(
                (rs.name.get_ref().clone(), n.as_str().to_string()),
                span.clone(),
            );
        }
        let (publishes, consumes) = self.events(&rs, place.in_monolith, database, &key);
        let kind = self.kind(&rs, adopted, place, default_database, database, &key);
        Some(Service {
            name: name?,
            port: port?,
            database: database?,
            template: template?,
            depends_on: depends_on.into_iter().map(|(n, _)| n).collect(),
            public: rs.public.map(|p| p.into_inner()).unwrap_or(false),
            kind,
            paths,
            routes,
            env,
            schema,
            publishes,
            consumes,
            resources,
        })
    }

    /// The declared port, or the first one no earlier service took.
    fn service_port(
        &mut self,
        rs: &RawService,
        key: &dyn Fn(&str) -> String,
        ports: &mut BTreeMap<u16, String>,
    ) -> Option<Port> {
        match &rs.port {
            Some(p) => Port::parse(*p.get_ref())
                .map_err(|m| self.err(p, &key("port"), m, None))
                .ok(),
            None => {
                let free = Port::first_free(|p| ports.contains_key(&p));
                if let Some(p) = free {
                    ports.insert(p.get(), format!("service `{}`", rs.name.get_ref()));
                }
                free
            }
        }
    }

    /// A service's own PostgreSQL database is `<project>_<service>`, which must fit
    /// PostgreSQL's identifier limit.
    fn database_name_fits(
        &mut self,
        rs: &RawService,
        name: Option<&ServiceName>,
        database: Option<DatabaseKind>,
        key: &dyn Fn(&str) -> String,
    ) {
        let (Some(project), Some(service), Some(DatabaseKind::Postgres)) =
            (&self.project, name, database)
        else {
            return;
        };
        let db = database_name(project, service);
        if db.len() > MAX_IDENTIFIER_BYTES {
            let msg = format!(
                "its database would be named `{db}`, {} bytes; accepted: at most {MAX_IDENTIFIER_BYTES} bytes for `<project>_<service>` (PostgreSQL's limit)",
                db.len()
            );
            let help = Some("shorten the service's or the project's name".into());
            self.err(&rs.name, &key("name"), msg, help);
        }
    }

    fn template(&mut self, rs: &RawService, key: &dyn Fn(&str) -> String) -> Option<Template> {
        let Some(t) = &rs.template else {
            return Some(Template::Crud);
        };
        let parsed = Template::parse(t.get_ref());
        if parsed.is_none() {
            let help = did_you_mean(t.get_ref(), TEMPLATES).map(|c| format!("did you mean `{c}`?"));
            self.err(
                t,
                &key("template"),
                format!(
                    "unknown template {:?}; accepted: {}",
                    t.get_ref(),
                    TEMPLATES.join(", ")
                ),
                help,
            );
        }
        parsed
    }

    /// The services this one calls, each once, with where it was written.
    fn depends_on(
        &mut self,
        rs: &RawService,
        key: &dyn Fn(&str) -> String,
    ) -> Vec<(ServiceName, Spanned<String>)> {
        let mut depends_on: Vec<(ServiceName, Spanned<String>)> = Vec::new();
        for (j, d) in rs.depends_on.iter().enumerate() {
            match ServiceName::parse(d.get_ref()) {
                Ok(n) if depends_on.iter().any(|(x, _)| x == &n) => self.err(
                    d,
                    &key(&format!("depends_on[{j}]")),
                    format!("{:?} is listed twice", d.get_ref()),
                    None,
                ),
                Ok(n) => depends_on.push((n, d.clone())),
                Err(m) => self.err(d, &key(&format!("depends_on[{j}]")), m, None),
            }
        }
        depends_on
    }

    /// What the service stores needs a database, and the auth template stores
    /// only its users.
    fn storage(
        &mut self,
        rs: &RawService,
        database: Option<DatabaseKind>,
        template: Option<Template>,
        resources: &[Resource],
        key: &dyn Fn(&str) -> String,
    ) {
        let (Some(db), Some(tpl)) = (database, template) else {
            return;
        };
        if db == DatabaseKind::None && (tpl == Template::Auth || !resources.is_empty()) {
            let what = if tpl == Template::Auth {
                "the auth template stores users"
            } else {
                "resources are stored in the service's database"
            };
            let at = rs.database.as_ref().unwrap_or(&rs.name);
            self.err(
                at,
                &key("database"),
                format!("database = \"none\" but {what}"),
                Some("use \"postgres\" or \"sqlite\"".into()),
            );
        }
        if tpl == Template::Auth && !resources.is_empty() {
            self.err(
                &rs.name,
                &key("resources"),
                "the auth template takes no resources".into(),
                Some(
                    "keep profile data in a separate crud service (as the article's user service)"
                        .into(),
                ),
            );
        }
    }

    /// The subjects the service publishes and consumes; every consumed subject is
    /// kept for the cross checks, which need a publisher for it.
    fn events(
        &mut self,
        rs: &RawService,
        in_monolith: bool,
        database: Option<DatabaseKind>,
        key: &dyn Fn(&str) -> String,
    ) -> (Vec<String>, Vec<String>) {
        let publishes = self.subjects(&rs.publishes, &key("publishes"));
        let consumes = self.subjects(&rs.consumes, &key("consumes"));
        for (list, what) in [(&rs.publishes, "publishes"), (&rs.consumes, "consumes")] {
            if in_monolith && !list.is_empty() {
                self.err(
                    &list[0],
                    &key(what),
                    "modules of the monolith do not take events yet; split the module out first"
                        .into(),
                    None,
                );
            }
        }
        if !rs.consumes.is_empty() && database == Some(DatabaseKind::None) {
            self.err(
                &rs.consumes[0],
                &key("consumes"),
                "consuming events needs a database, to remember which events were handled".into(),
                Some("use database = \"postgres\" or \"sqlite\"".into()),
            );
        }
        for c in &rs.consumes {
            self.consumed.push((rs.name.get_ref().clone(), c.clone()));
        }
        for p in &publishes {
            if !self.published.contains(p) {
                self.published.push(p.clone());
            }
        }
        (publishes, consumes)
    }

    /// Where the service's code lives (`adopted`, a module of the monolith, split
    /// from it, its own), and what each place forbids.
    fn kind(
        &mut self,
        rs: &RawService,
        adopted: bool,
        place: Placement,
        default_database: DatabaseKind,
        database: Option<DatabaseKind>,
        key: &dyn Fn(&str) -> String,
    ) -> ServiceKind {
        let in_monolith = place.in_monolith;
        if let Some(m) = &rs.monolith {
            if in_monolith && !place.has_monolith {
                self.err(
                    m,
                    &key("monolith"),
                    "`monolith = true` but there is no [monolith] section".into(),
                    Some("add `[monolith]` with `port = 3000`".into()),
                );
            }
            if in_monolith && place.external_monolith {
                self.err(
                    m,
                    &key("monolith"),
                    "the monolith is adopted (`[monolith] path`): msgen does not render modules into it"
                        .into(),
                    Some("remove `monolith = true`".into()),
                );
            }
        }
        if let (true, Some(d), Some(kind)) = (in_monolith, &rs.database, database) {
            if kind != default_database {
                self.err(
                    d,
                    &key("database"),
                    format!(
                        "modules of the monolith share its database ({}); {:?} is only possible once the service is split out",
                        default_database.as_str(),
                        d.get_ref()
                    ),
                    Some("remove the key, or set project.database".into()),
                );
            }
        }
        let split_from_monolith = match &rs.split_from {
            Some(v) if v.get_ref() == "monolith" => true,
            Some(v) => {
                self.err(
                    v,
                    &key("split_from"),
                    format!("unknown value {:?}; accepted: \"monolith\"", v.get_ref()),
                    None,
                );
                false
            }
            None => false,
        };
        if let (true, true, Some(split)) = (in_monolith, split_from_monolith, &rs.split_from) {
            self.err(
                split,
                &key("split_from"),
                "a module of the monolith (`monolith = true`) is not split from it yet".into(),
                Some("keep `monolith = true` while it is a module, `split_from` once it is a service".into()),
            );
        }
        if adopted {
            ServiceKind::Adopted
        } else if in_monolith {
            ServiceKind::Module
        } else if split_from_monolith {
            ServiceKind::SplitFromMonolith
        } else {
            ServiceKind::Service
        }
    }

    /// Event subjects: dot-separated lower-case tokens (`post.created`), no wildcards.
    pub(super) fn subjects(&mut self, raw: &[Spanned<String>], key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let v = s.get_ref();
            let ok = v.len() <= 64
                && v.split('.').count() >= 2
                && v.split('.').all(|t| {
                    t.starts_with(|c: char| c.is_ascii_lowercase())
                        && t.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if !ok {
                self.err(
                    s,
                    &format!("{key}[{i}]"),
                    format!("{v:?} is not a valid event subject; accepted: two or more dot-separated lower-case tokens, e.g. \"post.created\" (no wildcards, at most 64 characters)"),
                    None,
                );
            } else if out.contains(v) {
                self.err(
                    s,
                    &format!("{key}[{i}]"),
                    format!("{v:?} is listed twice"),
                    None,
                );
            } else if let Some(other) = self
                .subject_names
                .insert(v.replace('.', "_"), v.clone())
                .filter(|other| other != v)
            {
                // The stream, the payload type and the publish function are named
                // after the subject with dots as underscores.
                self.err(
                    s,
                    &format!("{key}[{i}]"),
                    format!("{v:?} and {other:?} clash: both give the stream `{}`; accepted: subjects that differ in more than '.' and '_'", v.replace('.', "_").to_uppercase()),
                    None,
                );
            } else {
                out.push(v.clone());
            }
        }
        out
    }
}

/// Where a service sits relative to the project's monolith.
#[derive(Clone, Copy)]
struct Placement {
    /// The project has a `[monolith]`.
    has_monolith: bool,
    /// That monolith is adopted code (`[monolith] path`), not rendered by msgen.
    external_monolith: bool,
    /// The service is a module of it (`monolith = true`).
    in_monolith: bool,
}

impl Placement {
    fn of(rs: &RawService, monolith: Option<&Result<Monolith, Reported>>) -> Self {
        Placement {
            has_monolith: monolith.is_some(),
            external_monolith: monolith
                .is_some_and(|m| m.as_ref().is_ok_and(Monolith::is_external)),
            in_monolith: rs.monolith.as_ref().is_some_and(|m| *m.get_ref()),
        }
    }
}
