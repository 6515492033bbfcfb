//! `msgen split SERVICE --own-database`: the second step after `split --from`.
//! The adopted service leaves its schema of the monolith's database for a
//! database of its own, once nothing reads across the cut any more (the
//! analysis is [`crate::adopt::own_db`]; this reads the files and writes through
//! one transaction with the render).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use super::split::{
    apply_with_report, read_monolith, report_path_for, sources_of_adopted_services,
};
use super::{edit, files_under, load, Printer, CONFIG_FILE};
use crate::adopt;
use crate::apply::{ConfigEdit, Staged};
use crate::model::Project;

/// The service's first migration on its own database: version 0 runs before any
/// migration the team added since the split.
const FIRST: &str = "0_msgen_tables.sql";

pub fn run(root: &Path, name: &str, dry_run: bool, out: Printer) -> Result<ExitCode> {
    let project = load(root)?;
    let Some(service) = project.service(name) else {
        bail!("no service `{name}` in {CONFIG_FILE}");
    };
    let Some(schema) = &service.schema else {
        bail!(
            "service `{name}` has no `schema` in {CONFIG_FILE}: `--own-database` moves a service split out of an adopted monolith (`msgen split MODULE --from DIR`) out of its schema of the monolith's database; this one has a database of its own already"
        );
    };
    let Some(monolith) = project.monolith.as_ref().and_then(|m| m.external.as_ref()) else {
        bail!("{CONFIG_FILE} has no adopted monolith (`[monolith] path`)");
    };
    let src = read_monolith(&root.join(&monolith.path))?;
    let moved = adopt::moved_tables(&src.migrations);
    let owners: BTreeMap<String, String> = project
        .services
        .iter()
        .filter_map(|s| Some((s.schema.clone()?, s.name.as_str().to_string())))
        .collect();
    let mut service_files = BTreeMap::new();
    let mut other_files: BTreeMap<String, String> = src
        .files
        .iter()
        .map(|(rel, text)| (format!("{}/{rel}", monolith.path), text.clone()))
        .collect();
    for (svc, rel, text) in sources_of_adopted_services(root, &project)? {
        let path = format!("services/{}/{rel}", svc.as_str());
        if svc.as_str() == name {
            service_files.insert(path, text);
        } else {
            other_files.insert(path, text);
        }
    }
    let dir = src.migrations_dir.clone();
    let migrations_dir = root.join("services").join(name).join(&dir);
    if let Some(taken) = files_under(&migrations_dir).into_iter().find(|f| {
        let digits: String = f.chars().take_while(char::is_ascii_digit).collect();
        f.ends_with(".sql") && digits.parse::<u128>() == Ok(0)
    }) {
        bail!(
            "services/{name}/{dir}/{taken} has version 0, which the service's first migration on its own database needs; renumber it first"
        );
    }
    let own = adopt::own_db::plan(&adopt::own_db::Input {
        service: name,
        schema,
        migrations: &src.migrations,
        moved: &moved,
        owners: &owners,
        service_files: &service_files,
        other_files: &other_files,
    })
    .map_err(|r| {
        crate::CheckFailed(format!(
            "cannot give `{name}` a database of its own (nothing was changed):\n{}",
            r.0.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    })?;

    // services.toml without the service's `schema`: a database of its own.
    let config_path = root.join(CONFIG_FILE);
    let (text, mut config) = ConfigEdit::read(&config_path)?;
    let mut doc = edit::parse(&text)?;
    let table = doc
        .get_mut("services")
        .and_then(|s| s.as_array_of_tables_mut())
        .and_then(|a| {
            a.iter_mut()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
        })
        .with_context(|| format!("no [[services]] table named `{name}` in {CONFIG_FILE}"))?;
    table.remove("schema");
    config.text = doc.to_string();
    let new_project = Project::parse(&config.text, &config_path)?;

    let report = render_report(name, schema, &new_project, &own);
    let report_path = report_path_for(root, &format!("own-database-{name}"));
    let mut staged = Staged::default();
    staged.write(
        format!("services/{name}/{dir}/{FIRST}"),
        own.migration.clone().into_bytes(),
        None,
    );
    staged.write(
        format!("services/{name}/db/copy-rows.sh"),
        own.copy_script.clone().into_bytes(),
        None,
    );
    staged.write(report_path.clone(), report.clone().into_bytes(), None);
    // Services split before msgen wrote one: without it, cargo would keep the
    // binary built without the new migration.
    let build_script = format!("services/{name}/build.rs");
    if !root.join(&build_script).exists() {
        staged.write(
            build_script,
            adopt::migrations_build_script(&dir).into_bytes(),
            None,
        );
    }
    out.line(format!(
        "{} service `{name}` a database of its own:",
        if dry_run { "Would give" } else { "Giving" }
    ));
    for p in [
        format!("services/{name}/{dir}/{FIRST}"),
        format!("services/{name}/db/copy-rows.sh"),
    ] {
        out.line(format!("  {:<14} {p}", "create"));
    }
    apply_with_report(
        root,
        &new_project,
        &config,
        &staged,
        dry_run,
        (&report, &report_path),
        out,
    )
}

fn render_report(
    name: &str,
    schema: &str,
    project: &Project,
    own: &adopt::own_db::OwnDb,
) -> String {
    let db = project
        .service(name)
        .map(|s| project.database_name(s))
        .unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(s, "# `{name}`: a database of its own\n");
    let _ = writeln!(
        s,
        "Nothing reads across the cut any more, so the `{name}` service leaves schema `{schema}` of the monolith's database for its own PostgreSQL database `{db}` (compose runs `{name}-db`; Kubernetes gets `databases/{name}.yaml`)."
    );
    let _ = writeln!(s, "\n## Steps\n");
    let _ = writeln!(
        s,
        "1. Stop the service (what writes its tables), make its new database and apply its migrations there without serving traffic (`sqlx migrate run --source services/{name}/migrations`, or start it once where the gateway does not reach it): the first, `services/{name}/migrations/{FIRST}`, creates {} as the monolith's migrations made them; its later migrations follow.",
        if own.tables.is_empty() {
            "nothing (it had no table)".to_string()
        } else {
            own.tables.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        }
    );
    let _ = writeln!(
        s,
        "2. Copy the rows and the sequences' positions: `MONOLITH_DATABASE_URL=... SERVICE_DATABASE_URL=... sh services/{name}/db/copy-rows.sh`. Then start the service on its new database (its DATABASE_URL as compose, Kubernetes and the README now give it)."
    );
    let _ = writeln!(
        s,
        "3. When the service answers from its own database, drop schema `{schema}` from the monolith's database (`DROP SCHEMA \"{schema}\" CASCADE`, after a backup): msgen never drops data."
    );
    let _ = writeln!(s, "\n## Left behind in the monolith's migrations\n");
    if own.left_behind.is_empty() {
        let _ = writeln!(s, "- none");
    }
    for l in &own.left_behind {
        let _ = writeln!(s, "- {l}");
    }
    s
}
