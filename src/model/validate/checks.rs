//! Checks across services, made once every service is read: calls and events
//! that point nowhere, dependency cycles, guarded resources without an auth
//! service.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::Validator;
use crate::model::*;

impl Validator<'_> {
    /// `owned` and `roles` mean something only where the service checks tokens:
    /// the project has an auth service, and the service is not public.
    pub(super) fn guarded_checks(&mut self, services: &[Service]) {
        let has_auth = services.iter().any(|s| s.template == Template::Auth);
        for s in services {
            for r in &s.resources {
                let Some((key, at)) = self.guarded.get(&r.name).cloned() else {
                    continue;
                };
                let problem = if !has_auth {
                    Some((
                        "no service of the project issues tokens".to_string(),
                        "add an auth service (`msgen add-service auth`), or drop `owned` and `roles`",
                    ))
                } else if s.public {
                    Some((
                        format!(
                            "service `{}` is public: no token is checked there",
                            s.name.as_str()
                        ),
                        "remove `public = true`, or drop `owned` and `roles`",
                    ))
                } else {
                    None
                };
                if let Some((why, help)) = problem {
                    self.err(
                        &at,
                        &key,
                        format!("`owned` and `roles` need a caller's token, and {why}"),
                        Some(help.into()),
                    );
                }
            }
        }
    }

    /// Checks across services: dependencies, references, routes, cycles.
    pub(super) fn cross_checks(
        &mut self,
        services: &[Service],
        spans: &BTreeMap<String, Spanned<String>>,
        all_valid: bool,
    ) {
        let at = |n: &str| spans.get(n).cloned();

        for s in services {
            let Some(span) = at(s.name.as_str()) else {
                continue;
            };
            for r in &s.resources {
                for f in &r.fields {
                    let FieldType::Ref(target) = &f.ty else {
                        continue;
                    };
                    let key = format!("{}.resources.{}.fields.{}", s.name.as_str(), r.name, f.name);
                    let field_at = (s.name.as_str().to_string(), r.name.clone(), f.name.clone());
                    let span = match self.field_spans.get(&field_at) {
                        Some(at) => Spanned::new(at.span(), span.get_ref().clone()),
                        None => span.clone(),
                    };
                    let owner = services
                        .iter()
                        .find(|o| o.resources.iter().any(|x| &x.name == target));
                    match owner {
                        None if !all_valid => {}
                        None => {
                            let all: Vec<&str> = services
                                .iter()
                                .flat_map(|o| o.resources.iter().map(|x| x.name.as_str()))
                                .collect();
                            let help = did_you_mean(target, &all)
                                .map(|c| format!("did you mean `ref:{c}`?"));
                            self.err(
                                &span,
                                &key,
                                format!(
                                    "refers to resource {target:?}, which no service declares; resources: {}",
                                    all.join(", ")
                                ),
                                help,
                            );
                        }
                        Some(o) if o.name != s.name && !s.depends_on.contains(&o.name) => {
                            self.err(
                                &span,
                                &key,
                                format!(
                                    "refers to `{target}` of service `{}`, which `{}` does not depend on",
                                    o.name.as_str(),
                                    s.name.as_str()
                                ),
                                Some(format!("add depends_on = [\"{}\"]", o.name.as_str())),
                            );
                        }
                        Some(_) => {}
                    }
                }
            }
        }

        // Route prefixes must be unique across the whole gateway.
        let mut routes: BTreeMap<String, String> = BTreeMap::new();
        let mut resource_names: BTreeMap<String, String> = BTreeMap::new();
        for s in services {
            let Some(span) = at(s.name.as_str()) else {
                continue;
            };
            for r in &s.resources {
                if let Some(other) = resource_names.insert(r.name.clone(), s.name.as_str().into()) {
                    self.err(
                        &span,
                        &format!("{}.resources.{}", s.name.as_str(), r.name),
                        format!("resource `{}` is also declared by service `{other}`; resource names are unique in a system", r.name),
                        None,
                    );
                }
            }
            for prefix in s.route_prefixes().into_iter().chain(s.legacy_prefixes()) {
                if let Some(other) = routes.insert(prefix.clone(), s.name.as_str().into()) {
                    self.err(
                        &span,
                        s.name.as_str(),
                        format!("route {prefix} is also served by `{other}`"),
                        Some("rename the service or the resource (or set `plural`)".into()),
                    );
                }
            }
        }
        if services
            .iter()
            .filter(|s| s.template == Template::Auth)
            .count()
            > 1
        {
            if let Some(span) = services
                .iter()
                .filter(|s| s.template == Template::Auth)
                .nth(1)
                .and_then(|s| at(s.name.as_str()))
            {
                self.err(
                    &span,
                    "template",
                    "only one service may use the auth template".into(),
                    None,
                );
            }
        }

        if let Some(cycle) = find_cycle(services) {
            if let Some(span) = at(&cycle[0]) {
                self.err(
                    &span,
                    "depends_on",
                    format!("dependency cycle: {}", cycle.join(" → ")),
                    Some("synchronous calls must form a tree; use events for the way back".into()),
                );
            }
        }
    }
}

/// A dependency cycle, as a list of names whose first and last are the same.
fn find_cycle(services: &[Service]) -> Option<Vec<String>> {
    fn visit<'a>(
        s: &'a str,
        services: &'a [Service],
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|x| *x == s) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|x| x.to_string()).collect();
            cycle.push(s.to_string());
            return Some(cycle);
        }
        if done.contains(s) {
            return None;
        }
        stack.push(s);
        if let Some(svc) = services.iter().find(|x| x.name.as_str() == s) {
            // Depending on itself is reported on its own, not as a cycle.
            for d in svc.depends_on.iter().filter(|d| d.as_str() != s) {
                if let Some(c) = visit(d.as_str(), services, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done.insert(s);
        None
    }
    let mut done = BTreeSet::new();
    for s in services {
        if let Some(c) = visit(s.name.as_str(), services, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}
