//! The code of `split --from`'s cut, on both sides: the monolith loses the
//! module's mounts and files (or keeps the module, unmounted, where the rest of
//! it uses its items); the service keeps the root files, the module and the
//! modules it still needs, with every other module's mounts removed.

use std::collections::{BTreeMap, BTreeSet};

use super::scan::{Crate, Mount, Parsed, Ref, Scanned};
use super::{alias_library, apply_edits, mod_item_range, parse, CutReport, Edit, Refusal};
use crate::model::ServiceName;

/// The monolith's side of the cut.
pub(super) struct MonolithCut {
    /// Files rewritten: the module unmounted, its `mod` item removed or marked.
    pub(super) edited: BTreeMap<String, String>,
    /// Uses of the module's items elsewhere in the monolith: while there is one,
    /// the module stays, unmounted.
    pub(super) kept_uses: Vec<Ref>,
    /// The module's own files.
    pub(super) module_files: Vec<String>,
}

impl MonolithCut {
    /// Whether the module stays in the monolith (unmounted).
    pub(super) fn keeps_module(&self) -> bool {
        !self.kept_uses.is_empty()
    }
}

/// Unmounts `module` from the monolith. A use of what a mount calls
/// (`blog::router()` in a helper) is a mount msgen cannot see: refused. Any other
/// use (a type, a function) keeps the module as an unmounted copy so that the
/// monolith still builds.
pub(super) fn unmount(
    c: &Crate,
    s: &Scanned,
    module: &str,
    service: &str,
) -> Result<MonolithCut, Refusal> {
    let target_mounts: Vec<&Mount> = s.mounts_of(module).collect();
    if target_mounts.is_empty() {
        return Err(Refusal(vec![format!(
            "module `{module}` is never mounted on a router (no `.nest`, `.merge` or `.route` call names it): there are no paths to move"
        )]));
    }
    let module_files: Vec<String> = c
        .parsed
        .iter()
        .filter(|f| f.top.as_deref() == Some(module))
        .map(|f| f.rel.clone())
        .collect();
    let mut edits: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    for m in &target_mounts {
        edits.entry(m.file.clone()).or_default().push(Edit {
            range: m.range.clone(),
            with: m.with.clone(),
        });
    }
    let relative = |path: &str| -> String {
        let segments: Vec<&str> = path.split("::").collect();
        match segments.iter().rposition(|s| *s == module) {
            Some(i) => segments[i + 1..].join("::"),
            None => path.to_string(),
        }
    };
    let in_target_mount = |r: &Ref| {
        target_mounts
            .iter()
            .any(|m| m.file == r.file && m.range.contains(&r.at))
    };
    let mounted: BTreeSet<String> = s
        .refs
        .iter()
        .filter(|r| r.module == module && in_target_mount(r))
        .map(|r| relative(&r.path))
        .collect();
    let mut hidden = Vec::new();
    let mut kept_uses: Vec<Ref> = Vec::new();
    for r in s.refs.iter().filter(|r| r.module == module) {
        if module_files.contains(&r.file) || in_target_mount(r) {
            continue;
        }
        if mounted.contains(&relative(&r.path)) {
            hidden.push(format!(
                "{}:{}: uses `{}` (module `{module}`) outside a router call",
                r.file, r.line, r.path
            ));
        } else {
            kept_uses.push(r.clone());
        }
    }
    if !hidden.is_empty() {
        hidden.insert(
            0,
            format!(
                "the rest of the monolith uses the router of module `{module}` where msgen cannot see it mounted; the monolith would keep serving the module's paths. Mount it with `.nest`, `.merge` or `.route` (or remove these uses) first:"
            ),
        );
        return Err(Refusal(hidden));
    }
    let root = c.root();
    let mod_item = mod_item_range(&root.text, &root.ast, module).expect("module is declared");
    edits
        .entry(root.rel.clone())
        .or_default()
        .push(if kept_uses.is_empty() {
            Edit {
                range: mod_item,
                with: String::new(),
            }
        } else {
            Edit {
                range: mod_item.start..mod_item.start,
                with: format!("// Kept by `msgen split {module} --from`, unmounted: the rest of the monolith\n// still uses it (docs/split-{service}.md); the `{service}` service serves its routes.\n#[allow(dead_code)]\n"),
            }
        });
    let mut edited: BTreeMap<String, String> = BTreeMap::new();
    for (file, edits) in edits {
        let new = apply_edits(&c.file(&file).text, edits);
        parse(&file, &new).map_err(|_| {
            Refusal(vec![format!(
                "{file}: unmounting `{module}` would leave code that does not parse; nothing was changed"
            )])
        })?;
        edited.insert(file, new);
    }
    Ok(MonolithCut {
        edited,
        kept_uses,
        module_files,
    })
}

/// The service's copy of the crate, before its listener is rewritten.
pub(super) struct ServiceCopy {
    /// The top-level modules it keeps: the module, every module no router mounts
    /// (error types, state, macros, trait impls, which may be used in ways a path
    /// does not show), then whatever kept code names, transitively.
    pub(super) needed: BTreeSet<String>,
    /// Why a module is kept, for each that kept code names: its first use.
    pub(super) why: BTreeMap<String, String>,
    /// Other bounded contexts, whose mounts the copy loses.
    pub(super) unmounted_others: BTreeSet<String>,
    /// Edits to the copied files, by path.
    pub(super) edits: BTreeMap<String, Vec<Edit>>,
}

impl ServiceCopy {
    /// Whether the service keeps file `f` (root files always).
    pub(super) fn keeps(&self, f: &Parsed) -> bool {
        f.top.as_ref().is_none_or(|t| self.needed.contains(t))
    }
}

/// Works out what the service keeps of the crate, and the edits that cut the
/// rest out: other modules' mounts, and the `mod` items of what it does not keep.
pub(super) fn service_modules(c: &Crate, s: &Scanned, module: &str) -> ServiceCopy {
    let mut edits: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    let mut unmounted_others: BTreeSet<String> = BTreeSet::new();
    for m in s.mounts.iter().filter(|m| m.module != module) {
        edits.entry(m.file.clone()).or_default().push(Edit {
            range: m.range.clone(),
            with: m.with.clone(),
        });
        unmounted_others.insert(m.module.clone());
    }
    let contexts = s.contexts();
    let mut needed: BTreeSet<String> = c
        .modules
        .iter()
        .filter(|m| *m == module || !contexts.contains(m.as_str()))
        .cloned()
        .collect();
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let before = needed.len();
        for r in &s.refs {
            let from_kept = c
                .file(&r.file)
                .top
                .as_ref()
                .is_none_or(|t| needed.contains(t));
            let in_removed_mount = s
                .mounts
                .iter()
                .any(|m| m.module != module && m.file == r.file && m.range.contains(&r.at));
            if from_kept && !in_removed_mount {
                needed.insert(r.module.clone());
                why.entry(r.module.clone())
                    .or_insert_with(|| format!("{}:{} uses `{}`", r.file, r.line, r.path));
            }
        }
        if needed.len() == before {
            break;
        }
    }
    let root = c.root();
    let root_edits = edits.entry(root.rel.clone()).or_default();
    for m in &c.modules {
        let range = mod_item_range(&root.text, &root.ast, m).expect("declared");
        if !needed.contains(m) {
            root_edits.push(Edit {
                range,
                with: String::new(),
            });
        } else if m != module && (unmounted_others.contains(m) || !why.contains_key(m)) {
            // Other contexts copied along, and shared modules nothing kept names,
            // may have code the service does not use.
            root_edits.push(Edit {
                range: range.start..range.start,
                with: "// Copied along by `msgen split --from`: the service may not use all of it.\n#[allow(dead_code)]\n".into(),
            });
        }
    }
    ServiceCopy {
        needed,
        why,
        unmounted_others,
        edits,
    }
}

/// What the report says of the modules on each side: the monolith's copy of the
/// module and its uses, and every module the service got besides its own.
pub(super) fn report_modules(
    report: &mut CutReport,
    monolith: &MonolithCut,
    copy: &ServiceCopy,
    module: &str,
    service: &str,
    earlier_services: &[(ServiceName, String, String)],
) {
    if monolith.keeps_module() {
        report.human.push(format!(
            "module `{module}` stays in the monolith too, unmounted and `#[allow(dead_code)]`, because the rest of the monolith uses it (below); the service has its own copy. Remove it from the monolith once these uses call the service's API"
        ));
    }
    for r in &monolith.kept_uses {
        report.human.push(format!(
            "{}:{}: uses `{}` of module `{module}`, kept on the monolith's copy (whose code runs against the tables the `{service}` service owns now): make it a call to the service's API",
            r.file, r.line, r.path
        ));
    }
    for (m, reason) in &copy.why {
        if m == module {
            continue;
        }
        let other_context = copy.unmounted_others.contains(m);
        let context = if other_context {
            format!("module `{m}` (a bounded context of its own: its routes are not mounted here, but its code runs in the service, against the service's database)")
        } else {
            format!("module `{m}`")
        };
        report
            .copied_modules
            .push(format!("{context}, because {reason}"));
        if other_context {
            report.human.push(format!(
                "{reason}: a call across the cut into `{m}`, kept in process on a copy of `{m}`; make it an HTTP call to the monolith if `{m}` reads its own tables"
            ));
        }
        // A module an earlier split made a service, still in the monolith for
        // the code that uses it.
        if let Some((svc, _, _)) = earlier_services.iter().find(|(s, _, _)| s.snake() == *m) {
            report.human.push(format!(
                "{reason}: a call into `{m}`, which is service `{}` since an earlier split, kept in process on a copy (against that service's tables); make it a call to its API ({}_SERVICE_URL)",
                svc.as_str(),
                svc.upper()
            ));
        }
    }
    for m in copy
        .needed
        .iter()
        .filter(|m| *m != module && !copy.why.contains_key(*m))
    {
        report.copied_modules.push(format!(
            "module `{m}` (no router mounts it: shared code, kept whole; remove it if the service does not need it)"
        ));
    }
}

/// The service crate's sources: every kept file with its edits applied (each
/// checked to parse), and its manifest. A library crate's library gets a name of
/// its own: two services adopted from one monolith with the same `[lib] name`
/// collide in the workspace's output files.
pub(super) fn service_sources(
    c: &Crate,
    copy: &ServiceCopy,
    service: &str,
) -> Result<BTreeMap<String, String>, Refusal> {
    let mut files = BTreeMap::new();
    for f in c.parsed.iter().filter(|f| copy.keeps(f)) {
        let text = match copy.edits.get(&f.rel).cloned() {
            Some(edits) => {
                let new = apply_edits(&f.text, edits);
                parse(&f.rel, &new).map_err(|_| {
                    Refusal(vec![format!(
                        "{}: cutting the other modules out of the service's copy would leave code that does not parse",
                        f.rel
                    )])
                })?;
                new
            }
            None => f.text.clone(),
        };
        files.insert(f.rel.clone(), text);
    }
    let service_lib = format!("{}_service", service.replace('-', "_"));
    files.insert(
        "Cargo.toml".into(),
        c.manifest
            .for_service(service, c.lib_root.then_some(service_lib.as_str()))?,
    );
    if c.lib_root {
        if let Some(main) = files.get_mut("src/main.rs") {
            *main = alias_library(main, &service_lib, &c.manifest.lib_name);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::super::scan::scan;
    use super::super::testing::{refused, source, BLOG, USERS};
    use super::*;

    fn read(with: &[(&str, &str)], module: &str) -> (Crate, Scanned) {
        let c = Crate::read(&source(with), module).unwrap();
        let s = scan(&c).unwrap();
        (c, s)
    }

    #[test]
    fn the_monolith_loses_the_modules_mount_item_and_files() {
        let (c, s) = read(&[], "blog");
        let cut = unmount(&c, &s, "blog", "blog").unwrap();
        assert!(!cut.keeps_module());
        assert_eq!(cut.module_files, ["src/blog.rs"]);
        let main = &cut.edited["src/main.rs"];
        assert!(!main.contains("blog"), "{main}");
        assert!(
            main.contains("Router::new()\n        .merge(users::routes())"),
            "{main}"
        );
        assert!(main.starts_with("mod error;\nmod users;\n"), "{main}");
        assert_eq!(cut.edited.len(), 1);
    }

    #[test]
    fn a_module_whose_items_the_rest_uses_stays_unmounted() {
        let users =
            format!("{USERS}\npub fn first() -> Option<crate::blog::Post> {{\n    None\n}}\n");
        let blog = format!("{BLOG}\npub struct Post;\n");
        let (c, s) = read(&[("src/users.rs", &users), ("src/blog.rs", &blog)], "blog");
        let cut = unmount(&c, &s, "blog", "posts").unwrap();
        assert!(cut.keeps_module());
        let uses: Vec<(&str, usize, &str)> = cut
            .kept_uses
            .iter()
            .map(|r| (r.file.as_str(), r.line, r.path.as_str()))
            .collect();
        assert_eq!(uses, [("src/users.rs", 11, "crate::blog::Post")]);
        let main = &cut.edited["src/main.rs"];
        assert!(
            main.starts_with("// Kept by `msgen split blog --from`, unmounted: the rest of the monolith\n// still uses it (docs/split-posts.md); the `posts` service serves its routes.\n#[allow(dead_code)]\nmod blog;\n"),
            "{main}"
        );
        assert!(!main.contains("blog::router()"), "{main}");
    }

    #[test]
    fn a_use_of_the_mounted_router_elsewhere_is_refused() {
        let users =
            format!("{USERS}\npub fn blog_too() -> Router {{\n    crate::blog::router()\n}}\n");
        let (c, s) = read(&[("src/users.rs", &users)], "blog");
        let err = refused(unmount(&c, &s, "blog", "blog"));
        assert_eq!(err.0.len(), 2, "{err}");
        assert_eq!(
            err.0[1],
            "src/users.rs:12: uses `crate::blog::router` (module `blog`) outside a router call"
        );
    }

    #[test]
    fn a_module_no_router_mounts_has_nothing_to_move() {
        let (c, s) = read(&[], "error");
        let err = refused(unmount(&c, &s, "error", "error"));
        assert!(
            err.0[0].starts_with("module `error` is never mounted"),
            "{err}"
        );
    }

    #[test]
    fn the_service_keeps_its_module_shared_code_and_what_kept_code_names() {
        let (c, s) = read(&[], "blog");
        let copy = service_modules(&c, &s, "blog");
        assert_eq!(copy.needed, ["blog", "error"].map(String::from).into());
        assert_eq!(
            copy.why,
            [
                ("blog", "src/main.rs:9 uses `blog::router`"),
                ("error", "src/blog.rs:3 uses `crate::error::AppError`")
            ]
            .map(|(m, why)| (m.to_string(), why.to_string()))
            .into()
        );
        assert_eq!(copy.unmounted_others, ["users".to_string()].into());
        let files = service_sources(&c, &copy, "blog").unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["Cargo.toml", "src/blog.rs", "src/error.rs", "src/main.rs"]
        );
        let main = &files["src/main.rs"];
        assert!(main.starts_with("mod blog;\nmod error;\n\n"), "{main}");
        assert!(!main.contains("users"), "{main}");
        assert!(
            files["Cargo.toml"].contains("name = \"blog-service\""),
            "{}",
            files["Cargo.toml"]
        );
    }

    #[test]
    fn a_call_into_another_context_copies_it_along_and_says_so() {
        let blog = BLOG.replace(
            "Ok(String::new())\n}\n\nasync fn one",
            "Ok(crate::users::name())\n}\n\nasync fn one",
        );
        let users = format!("{USERS}\npub fn name() -> String {{\n    String::new()\n}}\n");
        let (c, s) = read(&[("src/blog.rs", &blog), ("src/users.rs", &users)], "blog");
        let copy = service_modules(&c, &s, "blog");
        assert!(copy.needed.contains("users"));
        let files = service_sources(&c, &copy, "blog").unwrap();
        let main = &files["src/main.rs"];
        assert!(
            main.contains("// Copied along by `msgen split --from`: the service may not use all of it.\n#[allow(dead_code)]\nmod users;"),
            "{main}"
        );
        assert!(!main.contains(".merge(users::routes())"), "{main}");
        let monolith = unmount(&c, &s, "blog", "blog").unwrap();
        let mut report = CutReport::default();
        report_modules(&mut report, &monolith, &copy, "blog", "blog", &[]);
        assert_eq!(
            report.copied_modules,
            [
                "module `error`, because src/blog.rs:3 uses `crate::error::AppError`",
                "module `users` (a bounded context of its own: its routes are not mounted here, but its code runs in the service, against the service's database), because src/blog.rs:10 uses `crate::users::name`",
            ]
        );
        assert_eq!(report.human.len(), 1, "{:?}", report.human);
        assert!(report.human[0].contains("a call across the cut into `users`"));
    }

    #[test]
    fn a_library_crate_gives_its_service_a_library_name_of_its_own() {
        let manifest = super::super::testing::MANIFEST;
        let mut src = source(&[(
            "src/lib.rs",
            "pub mod blog;\npub mod error;\npub mod users;\n",
        )]);
        src.files.insert(
            "src/main.rs".into(),
            "use shop::blog;\n\nfn main() {\n    let _ = blog::router;\n}\n".into(),
        );
        src.manifest = manifest.to_string();
        let c = Crate::read(&src, "blog").unwrap();
        let s = scan(&c).unwrap();
        let copy = service_modules(&c, &s, "blog");
        let files = service_sources(&c, &copy, "blog").unwrap();
        assert!(files["src/main.rs"].contains("extern crate blog_service as shop;"));
        assert!(
            files["Cargo.toml"].contains("name = \"blog_service\""),
            "{}",
            files["Cargo.toml"]
        );
    }
}
