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

/// Sets `[gateway] port`, keeping the table's comments.
pub fn set_gateway_port(doc: &mut DocumentMut, port: u16) -> Result<()> {
    let gateway = doc
        .entry("gateway")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .context("`gateway` in services.toml must be a table")?;
    gateway["port"] = value(i64::from(port));
    Ok(())
}

/// Turns every service into a module of a modular monolith on `port`, as the
/// article's advice goes: start with a monolith, split it at natural boundaries.
pub fn make_monolith(doc: &mut DocumentMut, port: u16) -> Result<()> {
    let mut m = Table::new();
    m["port"] = value(i64::from(port));
    m.decor_mut().set_prefix(
        "\n# One axum crate, one module per bounded context, one shared database.\n# `msgen split <module>` moves a module into a service of its own.\n",
    );
    doc["monolith"] = Item::Table(m);
    if let Some(services) = doc
        .get_mut("services")
        .and_then(Item::as_array_of_tables_mut)
    {
        for s in services.iter_mut() {
            s.remove("database");
            // Modules call each other in process; events come back with `split`
            // (declare them again on the extracted service).
            s.remove("publishes");
            s.remove("consumes");
            s["monolith"] = value(true);
        }
    }
    Ok(())
}

/// Marks module `name` as a service split out of the monolith, on `port`.
pub fn split_out(doc: &mut DocumentMut, name: &str, port: u16) -> Result<()> {
    let Some(services) = doc
        .get_mut("services")
        .and_then(Item::as_array_of_tables_mut)
    else {
        bail!("services.toml has no [[services]]");
    };
    let Some(s) = services
        .iter_mut()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
    else {
        bail!("no service named {name:?} in services.toml");
    };
    s.remove("monolith");
    if s.get("port").is_none() {
        s["port"] = value(i64::from(port));
    }
    s["split_from"] = value("monolith");
    Ok(())
}

pub struct NewService<'a> {
    pub name: &'a str,
    pub port: u16,
    pub database: Option<&'a str>,
    pub template: Option<&'a str>,
    pub depends_on: &'a [String],
    pub resource: Option<&'a str>,
    /// The resource's fields (name, type); one `name` string field when empty.
    pub fields: &'a [(String, String)],
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
        if s.fields.is_empty() {
            fields.insert("name", "string".into());
        }
        for (n, t) in s.fields {
            fields.insert(n, t.as_str().into());
        }
        res["fields"] = value(fields);
        // Indented under its service, as in msgen's examples.
        res.decor_mut().set_prefix("\n  ");
        for key in ["name", "fields"] {
            if let Some(mut k) = res.key_mut(key) {
                k.leaf_decor_mut().set_prefix("  ");
            }
        }
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
