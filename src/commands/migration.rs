//! `msgen add-migration SERVICE NAME`: an empty, numbered migration for SQL of the
//! user's own, like `sqlx migrate add` or loco's migration generator, numbered
//! after every migration the service has had (its record remembers the ones a
//! split moved away).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::{load, owner_named, schema_inputs, Printer, SchemaArgs};
use crate::apply;
use crate::plan::{Ownership, Plan};
use crate::schema::owner::next_version;
use crate::UsageError;

pub fn add(
    root: &Path,
    service: &str,
    name: &str,
    dry_run: bool,
    out: Printer,
) -> Result<ExitCode> {
    let project = load(root)?;
    let dir = owner_named(&project, service, "")?.dir;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(UsageError(format!(
            "migration name {name:?}: use lower-case letters, digits and '_', starting with a letter (at most 64), e.g. add_search_index"
        ))
        .into());
    }
    let inputs = schema_inputs(root, &project, &SchemaArgs::default())?;
    let disk = inputs.owners.get(service).cloned().unwrap_or_default();
    let highest = disk.highest_version();
    let Some(next) = next_version(highest) else {
        anyhow::bail!("{dir}/migrations: no version is left after {highest} (sqlx reads versions as i64); renumber the migrations");
    };
    let rel = format!("{dir}/migrations/{next:04}_{name}.sql");
    let body = format!(
        "-- A migration of your own for {service} (`msgen add-migration`); msgen never edits it.\n\
         -- msgen reads CREATE TABLE, ALTER TABLE and DROP TABLE on the tables it knows and\n\
         -- records what they do. If this changes a table services.toml declares in a way\n\
         -- msgen cannot read, run `msgen generate --accept-schema {service}` once\n\
         -- services.toml says the same.\n\n"
    );
    let mut plan = Plan::default();
    plan.add(rel.clone(), body, Ownership::CreateOnly);
    let outcome = apply::diff_additions(root, &plan)?;
    if dry_run {
        out.line(format!("would create {rel}"));
        return Ok(ExitCode::SUCCESS);
    }
    apply::apply(root, &outcome)?;
    out.line(format!("created {rel}"));
    Ok(ExitCode::SUCCESS)
}
