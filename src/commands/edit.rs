//! Edits of the user's `services.toml` with toml_edit, so comments, order and
//! formatting survive every command (as `cargo add` does for Cargo.toml).

use anyhow::{bail, Context as _, Result};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

pub fn parse(text: &str) -> Result<DocumentMut> {
    text.parse::<DocumentMut>()
        .context("services.toml is not valid TOML")
}

fn project_table(doc: &mut DocumentMut) -> Result<&mut Table> {
    doc.entry("project")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .context("`project` in services.toml must be a table")
}

pub fn set_project_name(doc: &mut DocumentMut, name: &str) -> Result<()> {
    project_table(doc)?["name"] = value(name);
    Ok(())
}

pub fn set_default_database(doc: &mut DocumentMut, kind: &str) -> Result<()> {
    project_table(doc)?["database"] = value(kind);
    Ok(())
}

pub struct NewService<'a> {
    pub name: &'a str,
    pub port: u16,
    pub database: Option<&'a str>,
    pub template: Option<&'a str>,
    pub depends_on: &'a [String],
    pub resource: Option<&'a str>,
}

pub fn add_service(doc: &mut DocumentMut, s: &NewService<'_>) -> Result<()> {
    let services = doc
        .entry("services")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(services) = services.as_array_of_tables_mut() else {
        bail!("`services` in services.toml must be written as [[services]] tables");
    };
    let mut t = Table::new();
    t["name"] = value(s.name);
    t["port"] = value(i64::from(s.port));
    if let Some(db) = s.database {
        t["database"] = value(db);
    }
    if let Some(tpl) = s.template {
        t["template"] = value(tpl);
    }
    if !s.depends_on.is_empty() {
        let mut a = Array::new();
        for d in s.depends_on {
            a.push(d.as_str());
        }
        t["depends_on"] = value(a);
    }
    if let Some(r) = s.resource {
        let mut res = Table::new();
        res["name"] = value(r);
        let mut fields = InlineTable::new();
        fields.insert("name", "string".into());
        res["fields"] = value(fields);
        let mut arr = ArrayOfTables::new();
        arr.push(res);
        t["resources"] = Item::ArrayOfTables(arr);
    }
    services.push(t);
    Ok(())
}

/// Removes the `[[services]]` entry named `name` and every `depends_on` reference to it.
pub fn remove_service(doc: &mut DocumentMut, name: &str) -> Result<bool> {
    let Some(services) = doc
        .get_mut("services")
        .and_then(Item::as_array_of_tables_mut)
    else {
        return Ok(false);
    };
    let before = services.len();
    services.retain(|t| t.get("name").and_then(Item::as_str) != Some(name));
    Ok(services.len() != before)
}
