//! Edits of the user's `services.toml` with toml_edit, so comments, order and
//! formatting survive every command (as `cargo add` does for Cargo.toml).

use anyhow::{bail, Context as _, Result};
use toml_edit::{
    value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value,
};

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

/// Puts `comment` (`# ...` lines, then a blank one) at the top of the file in
/// place of the comment that was there: the decor before its first table.
pub fn set_header(doc: &mut DocumentMut, comment: &str) {
    let first = first_table(doc);
    if let Some(table) = first.and_then(|key| doc.get_mut(&key)?.as_table_mut()) {
        table
            .decor_mut()
            .set_prefix(format!("{}\n\n", comment.trim_end()));
    }
}

/// The key of the table written first in the file: its decor holds the file's
/// opening comment.
fn first_table(doc: &DocumentMut) -> Option<String> {
    doc.iter()
        .filter_map(|(key, item)| Some((item.as_table()?.position()?, key.to_string())))
        .min()
        .map(|(_, key)| key)
}

/// The last line of the opening comment msgen writes: a file whose opening
/// comment ends with it has msgen's, kept current by [`refresh_header`].
const HEADER_END: &str =
    "# Edit this file, then run `msgen generate`; `msgen validate` checks it.\n";

/// The opening comment of a `services.toml` msgen wrote for a project: what it is.
pub fn header(project: &crate::model::Project) -> String {
    let fronted = crate::context::fronted_of(project);
    let text = format!(
        "{}: an API gateway in front of {fronted}.",
        project.name.as_str()
    );
    let mut header: String = textwrap::wrap(&text, 84)
        .iter()
        .map(|line| format!("# {line}\n"))
        .collect();
    header.push_str(HEADER_END);
    header
}

/// Rewrites the opening comment for `project` if it is one msgen wrote (a
/// comment of the user's own stays as it is).
pub fn refresh_header(doc: &mut DocumentMut, project: &crate::model::Project) {
    let ours = first_table(doc)
        .and_then(|key| doc.get(&key)?.as_table()?.decor().prefix()?.as_str())
        .is_some_and(|p| p.trim_end().ends_with(HEADER_END.trim_end()));
    if ours {
        set_header(doc, &header(project));
    }
}

/// Every service entry, whichever TOML form `services` takes: `[[services]]`
/// tables or an array of inline tables (`services = [{ name = "a" }, ..]`).
fn services_mut(doc: &mut DocumentMut) -> Vec<&mut dyn TableLike> {
    tables_mut(doc.get_mut("services"))
}

/// The tables of `item`: `[[x]]` tables or an array of inline tables.
fn tables_mut(item: Option<&mut Item>) -> Vec<&mut dyn TableLike> {
    match item {
        Some(Item::ArrayOfTables(a)) => a.iter_mut().map(|t| t as &mut dyn TableLike).collect(),
        Some(Item::Value(Value::Array(a))) => a
            .iter_mut()
            .filter_map(Value::as_inline_table_mut)
            .map(|t| t as &mut dyn TableLike)
            .collect(),
        _ => Vec::new(),
    }
}

fn name_of(t: &dyn TableLike) -> Option<&str> {
    t.get("name").and_then(Item::as_str)
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
    for s in services_mut(doc) {
        s.remove("database");
        // Modules call each other in process; events come back with `split`
        // (declare them again on the extracted service).
        s.remove("publishes");
        s.remove("consumes");
        // A service split out earlier is a module again.
        s.remove("split_from");
        s.insert("monolith", value(true));
    }
    Ok(())
}

/// Marks module `name` as a service split out of the monolith, on `port`.
pub fn split_out(doc: &mut DocumentMut, name: &str, port: u16) -> Result<()> {
    let Some(s) = services_mut(doc)
        .into_iter()
        .find(|t| name_of(&**t) == Some(name))
    else {
        bail!("no service named {name:?} in services.toml");
    };
    s.remove("monolith");
    if s.get("port").is_none() {
        s.insert("port", value(i64::from(port)));
    }
    s.insert("split_from", value("monolith"));
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
    if let Some(Item::Value(Value::Array(services))) = doc.get_mut("services") {
        // Written inline: the new service is an inline table too, on a line of its
        // own when the others are.
        let mut t = service_table(s).into_inline_table();
        if let Some(res) = t.get_mut("resources") {
            *res = inline_resources(s);
        }
        let prefix = services
            .iter()
            .last()
            .and_then(|v| v.decor().prefix())
            .and_then(|p| p.as_str())
            .unwrap_or(" ")
            .to_string();
        t.decor_mut().set_prefix(prefix);
        t.decor_mut().set_suffix("");
        services.push_formatted(Value::InlineTable(t));
        return Ok(());
    }
    let services = doc
        .entry("services")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(services) = services.as_array_of_tables_mut() else {
        bail!(
            "`services` in services.toml must be [[services]] tables or an array of inline tables"
        );
    };
    let mut t = service_table(s);
    if let Some(res) = resource_table(s) {
        let mut arr = ArrayOfTables::new();
        arr.push(res);
        t["resources"] = Item::ArrayOfTables(arr);
    }
    services.push(t);
    Ok(())
}

/// The service's keys, resources aside.
fn service_table(s: &NewService<'_>) -> Table {
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
    if s.resource.is_some() {
        // Filled in by the caller, in the form the file uses.
        t["resources"] = value(Array::new());
    }
    t
}

fn resource_fields(s: &NewService<'_>) -> InlineTable {
    let mut fields = InlineTable::new();
    if s.fields.is_empty() {
        fields.insert("name", "string".into());
    }
    for (n, t) in s.fields {
        fields.insert(n, t.as_str().into());
    }
    fields
}

/// `[[services.resources]]` of the new service, indented under it as in msgen's
/// examples.
fn resource_table(s: &NewService<'_>) -> Option<Table> {
    let r = s.resource?;
    let mut res = Table::new();
    res["name"] = value(r);
    res["fields"] = value(resource_fields(s));
    res.decor_mut().set_prefix("\n  ");
    for key in ["name", "fields"] {
        if let Some(mut k) = res.key_mut(key) {
            k.leaf_decor_mut().set_prefix("  ");
        }
    }
    Some(res)
}

/// `resources = [{ name = .., fields = {..} }]`, for a service written inline.
fn inline_resources(s: &NewService<'_>) -> Value {
    let mut arr = Array::new();
    if let Some(r) = s.resource {
        let mut res = InlineTable::new();
        res.insert("name", r.into());
        res.insert("fields", Value::InlineTable(resource_fields(s)));
        arr.push(res);
    }
    Value::Array(arr)
}

/// Whether a service of `doc` has `template = "auth"`.
pub fn has_auth_service(doc: &mut DocumentMut) -> bool {
    services_mut(doc)
        .iter()
        .any(|t| t.get("template").and_then(Item::as_str) == Some("auth"))
}

/// Removes `owned` and `roles` from every resource, whichever TOML form the
/// services and their resources take: what a project without an auth service
/// cannot have (no token says who calls).
pub fn drop_access_rules(doc: &mut DocumentMut) {
    for service in services_mut(doc) {
        let resources = tables_mut(service.get_mut("resources"));
        for resource in resources {
            resource.remove("owned");
            resource.remove("roles");
        }
    }
}

/// Removes the service named `name`, whichever form `services` takes.
pub fn remove_service(doc: &mut DocumentMut, name: &str) -> Result<bool> {
    match doc.get_mut("services") {
        Some(Item::ArrayOfTables(services)) => {
            let before = services.len();
            services.retain(|t| t.get("name").and_then(Item::as_str) != Some(name));
            Ok(services.len() != before)
        }
        Some(Item::Value(Value::Array(services))) => {
            let before = services.len();
            services.retain(|v| {
                v.as_inline_table()
                    .and_then(|t| t.get("name"))
                    .and_then(Value::as_str)
                    != Some(name)
            });
            Ok(services.len() != before)
        }
        _ => Ok(false),
    }
}
