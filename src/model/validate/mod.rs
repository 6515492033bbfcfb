//! Validation of a raw `services.toml` into the [`Project`] model: each concern
//! in a module of its own (`service`, `resource`, `monolith`, `checks`), every
//! problem collected as a [`Diagnostic`] with its line, so one run lists them all.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use crate::diagnostic::{Diagnostic, LineIndex};
use crate::model::*;
use crate::raw::{RawConfig, RawGateway, RawMonolith, RawService};

mod checks;
mod monolith;
mod resource;
mod service;

/// A problem already reported in the validator's diagnostics: the value it would
/// have made is missing, and there is nothing more to say.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reported;

/// Validates `raw`, read from `text` at `path`; `diags` are the problems found
/// while reading it, reported with the rest.
pub(super) fn validate(
    raw: RawConfig,
    text: &str,
    path: &Path,
    diags: Vec<Diagnostic>,
) -> Result<Project, Vec<Diagnostic>> {
    let mut v = Validator {
        diags,
        index: LineIndex::new(text),
        path,
        dep_spans: BTreeMap::new(),
        field_spans: BTreeMap::new(),
        published: Vec::new(),
        consumed: Vec::new(),
        project: None,
        subject_names: BTreeMap::new(),
        schemas: BTreeMap::new(),
        guarded: BTreeMap::new(),
    };
    match v.project(raw) {
        Some(p) if v.diags.is_empty() => Ok(p),
        _ => Err(v.diags),
    }
}

struct Validator<'a> {
    diags: Vec<Diagnostic>,
    index: LineIndex<'a>,
    path: &'a Path,
    /// (service, dependency) → where the dependency is written.
    dep_spans: BTreeMap<(String, String), Spanned<String>>,
    /// (service, resource, field) → where the field is written, for the checks of
    /// its reference, which need every service.
    field_spans: BTreeMap<(String, String, String), Spanned<()>>,
    /// Every subject some service publishes, and (service, subject) consumed.
    published: Vec<String>,
    consumed: Vec<(String, Spanned<String>)>,
    /// The project's name once valid: databases are named after it.
    project: Option<ProjectName>,
    /// Every subject seen, by its name with dots as underscores.
    subject_names: BTreeMap<String, String>,
    /// Adopted services' schemas, with the service that has each.
    schemas: BTreeMap<String, String>,
    /// Resources that declare `owned` or `roles`, with where: they need a service
    /// that checks tokens, known only once every service is read.
    guarded: BTreeMap<String, (String, Spanned<()>)>,
}

impl Validator<'_> {
    pub(super) fn err<T>(
        &mut self,
        at: &Spanned<T>,
        key: &str,
        message: String,
        help: Option<String>,
    ) {
        let location = Some(self.index.locate(at.span().start));
        self.diags.push(Diagnostic {
            file: self.path.to_path_buf(),
            location,
            key: key.to_string(),
            message,
            help,
        });
    }

    pub(super) fn database(&mut self, v: &Spanned<String>, key: &str) -> Option<DatabaseKind> {
        let kind = DatabaseKind::parse(v.get_ref());
        if kind.is_none() {
            let help =
                did_you_mean(v.get_ref(), DATABASE_KINDS).map(|c| format!("did you mean `{c}`?"));
            self.err(
                v,
                key,
                format!(
                    "unknown database kind {:?}; accepted: {}",
                    v.get_ref(),
                    DATABASE_KINDS.join(", ")
                ),
                help,
            );
        }
        kind
    }

    /// `project.axum` / `project.sqlx`: `None` when unset or (reported) invalid.
    pub(super) fn major<T>(
        &mut self,
        raw: &Option<Spanned<String>>,
        key: &str,
        accepted: &[&str],
        parse: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let v = raw.as_ref()?;
        let parsed = parse(v.get_ref());
        if parsed.is_none() {
            let list: Vec<String> = accepted.iter().map(|a| format!("\"{a}\"")).collect();
            self.err(
                v,
                key,
                format!(
                    "{:?} is not a supported major version; accepted: {}",
                    v.get_ref(),
                    list.join(", ")
                ),
                None,
            );
        }
        parsed
    }

    /// The whole project, in stages: its own keys, the gateway, the monolith, the
    /// ports, each service, then the checks that need every service read.
    fn project(&mut self, raw: RawConfig) -> Option<Project> {
        let rp = raw.project.into_inner();
        let name = match ProjectName::parse(rp.name.get_ref()) {
            Ok(n) => {
                self.project = Some(n.clone());
                Some(n)
            }
            Err(m) => {
                self.err(&rp.name, "project.name", m, None);
                None
            }
        };
        let default_database = match &rp.database {
            Some(d) => self
                .database(d, "project.database")
                .unwrap_or(DatabaseKind::Postgres),
            None => DatabaseKind::Postgres,
        };
        let majors = Majors {
            axum: self
                .major(&rp.axum, "project.axum", AXUM_MAJORS, AxumMajor::parse)
                .unwrap_or_default(),
            sqlx: self
                .major(&rp.sqlx, "project.sqlx", SQLX_MAJORS, SqlxMajor::parse)
                .unwrap_or_default(),
        };
        let (gateway_port, timeout_secs) = self.gateway(raw.gateway.map(Spanned::into_inner));

        // Ports taken so far, with who took them, for collision messages.
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        if let Some(p) = gateway_port {
            ports.insert(p.get(), "the gateway".into());
        }
        let monolith = raw
            .monolith
            .as_ref()
            .map(|m| self.monolith(m.get_ref(), &mut ports));
        self.explicit_ports(&raw.services, &mut ports);

        let declared_services = raw.services.len();
        let mut services = Vec::new();
        let mut seen_names: BTreeMap<String, Spanned<String>> = BTreeMap::new();
        for (i, rs) in raw.services.into_iter().enumerate() {
            let rs = rs.into_inner();
            if let Some(first) = seen_names.get(rs.name.get_ref()) {
                let (line, _) = self.index.locate(first.span().start);
                self.err(
                    &rs.name,
                    &format!("services[{i}].name"),
                    format!(
                        "duplicate service name {:?} (first declared on line {line})",
                        rs.name.get_ref()
                    ),
                    None,
                );
            } else {
                seen_names.insert(rs.name.get_ref().clone(), rs.name.clone());
            }
            if let Some(s) = self.service(i, rs, default_database, monolith.as_ref(), &mut ports) {
                services.push(s);
            }
        }

        self.dependencies_declared(&seen_names);
        self.consumed_published();
        // A service that failed validation is missing from `services`: references to
        // its resources would be reported again, wrongly.
        let all_valid = services.len() == declared_services;
        self.cross_checks(&services, &seen_names, all_valid);
        self.guarded_checks(&services);
        self.diags.sort_by_key(|d| d.location);

        let monolith = match monolith {
            Some(m) => Some(m.ok()?),
            None => None,
        };
        Some(Project {
            name: name?,
            default_database,
            majors,
            gateway: Gateway {
                port: gateway_port?,
                timeout_secs,
            },
            monolith,
            services,
        })
    }

    /// `[gateway]`: its port and its upstream time limit, defaults where unset.
    fn gateway(&mut self, raw: Option<RawGateway>) -> (Option<Port>, u64) {
        let Some(g) = raw else {
            return (
                Some(Port(DEFAULT_GATEWAY_PORT)),
                DEFAULT_GATEWAY_TIMEOUT_SECS,
            );
        };
        let port = match &g.port {
            Some(p) => Port::parse(*p.get_ref())
                .map_err(|m| self.err(p, "gateway.port", m, None))
                .ok(),
            None => Some(Port(DEFAULT_GATEWAY_PORT)),
        };
        let timeout = match &g.timeout_secs {
            Some(t) if !(1..=3600).contains(t.get_ref()) => {
                self.err(
                    t,
                    "gateway.timeout_secs",
                    format!("{} is out of range; accepted: 1..=3600", t.get_ref()),
                    None,
                );
                DEFAULT_GATEWAY_TIMEOUT_SECS
            }
            Some(t) => *t.get_ref() as u64,
            None => DEFAULT_GATEWAY_TIMEOUT_SECS,
        };
        (port, timeout)
    }

    /// `[monolith]`: its port (taken in `ports`) and, when adopted, its code.
    fn monolith(
        &mut self,
        m: &RawMonolith,
        ports: &mut BTreeMap<u16, String>,
    ) -> Result<Monolith, Reported> {
        let port = match &m.port {
            Some(p) => Port::parse(*p.get_ref())
                .map_err(|msg| self.err(p, "monolith.port", msg, None))
                .ok(),
            None => Some(Port(DEFAULT_MONOLITH_PORT)),
        };
        if let Some(port) = port {
            if let Some(owner) = ports.get(&port.get()) {
                let at = m.port.clone().unwrap_or_else(|| Spanned::new(0..0, 0));
                let msg = format!("port {} is already used by {owner}", port.get());
                self.err(&at, "monolith.port", msg, None);
            } else {
                ports.insert(port.get(), "the monolith".into());
            }
        }
        let external = self.external_monolith(m);
        Ok(Monolith {
            port: port.ok_or(Reported)?,
            external: external?,
        })
    }

    /// Takes the services' explicit ports before any default is given, so that
    /// defaults fill the gaps around them; a port taken twice is reported with a
    /// free one to use instead.
    fn explicit_ports(
        &mut self,
        services: &[Spanned<RawService>],
        ports: &mut BTreeMap<u16, String>,
    ) {
        let mut collisions = Vec::new();
        for (i, rs) in services.iter().enumerate() {
            let rs = rs.get_ref();
            if let Some(p) = &rs.port {
                if let Ok(port) = Port::parse(*p.get_ref()) {
                    match ports.get(&port.get()) {
                        Some(owner) => collisions.push((i, p, owner.clone())),
                        None => {
                            ports.insert(port.get(), format!("service `{}`", rs.name.get_ref()));
                        }
                    }
                }
            }
        }
        // Each colliding service is offered a port of its own, clear of every
        // explicit port (also those declared after it) and of the other offers.
        let mut offered = BTreeSet::new();
        for (i, p, owner) in collisions {
            let free = free_port(|p| ports.contains_key(&p) || offered.contains(&p));
            offered.insert(free);
            let msg = format!("port {} is already used by {owner}", p.get_ref());
            let key = format!("services[{i}].port");
            self.err(p, &key, msg, Some(format!("the next free port is {free}")));
        }
    }

    /// Every `depends_on` names another declared service. Checked against every
    /// declared name, even of services that failed validation, so that one bad
    /// service hides no other problem.
    fn dependencies_declared(&mut self, seen_names: &BTreeMap<String, Spanned<String>>) {
        let declared: Vec<&str> = seen_names.keys().map(String::as_str).collect();
        let deps: Vec<_> = self
            .dep_spans
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((svc, dep), span) in deps {
            let key = format!("{svc}.depends_on");
            if dep == svc {
                self.err(
                    &span,
                    &key,
                    "a service cannot depend on itself".into(),
                    None,
                );
            } else if !declared.contains(&dep.as_str()) {
                let help = did_you_mean(&dep, &declared).map(|c| format!("did you mean `{c}`?"));
                let msg = format!(
                    "depends on {dep:?}, which is not a service; services: {}",
                    declared.join(", ")
                );
                self.err(&span, &key, msg, help);
            }
        }
    }

    /// Every consumed subject is published by some service.
    fn consumed_published(&mut self) {
        let consumed = std::mem::take(&mut self.consumed);
        let published = self.published.clone();
        let all: Vec<&str> = published.iter().map(String::as_str).collect();
        for (svc, subject) in consumed {
            if !published.contains(subject.get_ref()) {
                let help =
                    did_you_mean(subject.get_ref(), &all).map(|c| format!("did you mean `{c}`?"));
                let msg = format!(
                    "consumes {:?}, which no service publishes; published: {}",
                    subject.get_ref(),
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.join(", ")
                    }
                );
                self.err(&subject, &format!("{svc}.consumes"), msg, help);
            }
        }
    }
}
