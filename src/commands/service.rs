//! `msgen add-service` and `msgen remove-service`: edit `services.toml`, then render.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::edit::{self, NewService};
use super::generate::{render_into, Mode};
use super::SchemaArgs;
use super::{files_under, load, parse_edited, Printer, CONFIG_FILE};
use crate::apply::{ConfigEdit, Staged};
use crate::cli::{DatabaseArg, TemplateArg};

pub struct AddArgs {
    pub name: String,
    pub port: Option<u16>,
    pub database: Option<DatabaseArg>,
    pub template: Option<TemplateArg>,
    pub depends_on: Vec<String>,
    pub resource: Option<String>,
    /// `NAME:TYPE` of the resource's fields.
    pub fields: Vec<String>,
}

/// `services.toml`'s text, and the edit of it to fill in (it remembers what was
/// read, so that a save made meanwhile is never overwritten).
fn read_config(root: &Path) -> Result<(String, ConfigEdit, std::path::PathBuf)> {
    let path = root.join(CONFIG_FILE);
    let (text, edit) = ConfigEdit::read(&path)?;
    Ok((text, edit, path))
}

pub fn add(root: &Path, args: AddArgs, dry_run: bool, out: Printer) -> Result<ExitCode> {
    let current = load(root)?;
    if current.service(&args.name).is_some() {
        bail!("service `{}` already exists in {CONFIG_FILE}", args.name);
    }
    // Check the names given on the command line against the project as it is, so
    // a typo is reported as such (not as a line of a file that was never written).
    let names: Vec<&str> = current.services.iter().map(|s| s.name.as_str()).collect();
    for dep in &args.depends_on {
        if dep == &args.name {
            bail!("--depends-on {dep}: a service cannot depend on itself");
        }
        if current.service(dep).is_none() {
            bail!(
                "--depends-on {dep}: no service `{dep}` in {CONFIG_FILE}; services: {}{}",
                super::none_or_list(&names),
                suggestion(dep, &names)
            );
        }
    }
    let (text, mut config, path) = read_config(root)?;
    let mut doc = edit::parse(&text)?;
    // `msgen add-service auth` means the auth template unless told otherwise.
    let template = match args.template {
        Some(TemplateArg::Auth) => Some("auth"),
        Some(TemplateArg::Crud) => None,
        None if args.name == "auth" && current.auth_service().is_none() => Some("auth"),
        None => None,
    };
    let port = args.port.unwrap_or_else(|| current.next_free_port());
    let mut fields = Vec::new();
    for f in &args.fields {
        match f.split_once(':') {
            Some((n, _)) if fields.iter().any(|(x, _): &(String, String)| x == n.trim()) => {
                return Err(crate::UsageError(format!(
                    "--field {f:?}: field `{}` is given twice",
                    n.trim()
                ))
                .into())
            }
            Some((n, t)) if !n.trim().is_empty() && !t.trim().is_empty() => {
                fields.push((n.trim().to_string(), t.trim().to_string()))
            }
            _ => {
                return Err(crate::UsageError(format!(
                    "--field {f:?}: expected NAME:TYPE, e.g. title:string or age:i32? (types: {})",
                    crate::model::FIELD_TYPES.join(", ")
                ))
                .into())
            }
        }
    }
    edit::add_service(
        &mut doc,
        &NewService {
            name: &args.name,
            port,
            database: args.database.map(DatabaseArg::as_str),
            template,
            depends_on: &args.depends_on,
            resource: args.resource.as_deref(),
            fields: &fields,
        },
    )?;
    let new_text = doc.to_string();
    // The edited file must validate before anything is written.
    let project = parse_edited(&new_text, &path, &format!("adding `{}`", args.name))?;
    edit::refresh_header(&mut doc, &project);
    let new_text = doc.to_string();
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    out.header("Adding", &format!("service `{}` on port {port}", args.name));
    config.text = new_text;
    let code = render_into(
        root,
        &project,
        Some(&config),
        &Staged::default(),
        mode,
        &SchemaArgs::default(),
        out,
    )?;
    if let Some(r) = args.resource.as_ref().filter(|_| fields.is_empty()) {
        out.note(&format!(
            "resource `{r}` starts with one field, `name` (string): give it its fields in {CONFIG_FILE}, then run `msgen generate`"
        ));
    }
    Ok(code)
}

pub fn remove(
    root: &Path,
    name: &str,
    allow_data_loss: bool,
    dry_run: bool,
    out: Printer,
) -> Result<ExitCode> {
    let current = load(root)?;
    if current.service(name).is_none() {
        let names: Vec<&str> = current.services.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no service `{name}` in {CONFIG_FILE}; services: {}{}",
            super::none_or_list(&names),
            suggestion(name, &names)
        );
    }
    let users: Vec<&str> = current
        .services
        .iter()
        .filter(|s| s.depends_on.iter().any(|d| d.as_str() == name))
        .map(|s| s.name.as_str())
        .collect();
    if !users.is_empty() {
        bail!(
            "cannot remove `{name}`: {} depend(s) on it; remove it from their depends_on first",
            users.join(", ")
        );
    }
    let (text, mut config, path) = read_config(root)?;
    let mut doc = edit::parse(&text)?;
    edit::remove_service(&mut doc, name)?;
    let new_text = doc.to_string();
    let project = parse_edited(&new_text, &path, &format!("removing `{name}`"))?;
    edit::refresh_header(&mut doc, &project);
    let new_text = doc.to_string();
    // Files in the service's directory that msgen never generated stay; say so.
    let dir = format!("services/{name}");
    let generated = crate::apply::recorded(root)?;
    let foreign: Vec<String> = files_under(&root.join(&dir))
        .into_iter()
        .filter(|rel| !generated.contains(&format!("{dir}/{rel}")))
        .collect();
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    out.header("Removing", &format!("service `{name}`"));
    let schema = SchemaArgs {
        allow_data_loss,
        ..Default::default()
    };
    config.text = new_text;
    let code = render_into(
        root,
        &project,
        Some(&config),
        &Staged::default(),
        mode,
        &schema,
        out,
    )?;
    if !foreign.is_empty() {
        const SHOWN: usize = 10;
        let mut listed = foreign
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if foreign.len() > SHOWN {
            listed.push_str(&format!(" and {} more", foreign.len() - SHOWN));
        }
        out.note(&format!(
            "{dir}/ keeps {} file(s) msgen did not generate: {listed}; delete them when you no longer need them",
            foreign.len(),
        ));
    }
    Ok(code)
}

/// A "did you mean" line when `name` is close to one of `names`, as diagnostics give.
fn suggestion(name: &str, names: &[&str]) -> String {
    crate::diagnostic::did_you_mean(name, names)
        .map(|m| format!("\n  help: did you mean `{m}`?"))
        .unwrap_or_default()
}
