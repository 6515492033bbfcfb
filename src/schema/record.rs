//! `.msgen/schema/<owner>.toml`: what an owner's migrations produce.
//!
//! ```toml
//! last_version = 3
//!
//! [migrations]
//! "0001_create_posts.sql" = { tables = ["posts"], fnv1a = "..." }
//! "0003_alter_posts.sql" = { tables = ["posts"], fnv1a = "..." }
//!
//! [[tables]]
//! name = "posts"
//! columns = [
//!     { name = "id", type = "id" },
//!     { name = "summary", type = "string", nullable = true },
//! ]
//! ```
//!
//! Written with a fixed layout (one column a line) so that it diffs well in review.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ColType, Column, Dialect, Named, Schema, Table};

/// Where an owner's record lives, relative to the project root.
pub fn path(owner: &str) -> String {
    format!(".msgen/schema/{owner}.toml")
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The dialect the migrations are written in.
    pub dialect: Option<Dialect>,
    /// The highest migration version this owner has used: never used again, even
    /// when a file was moved away (`split`), since its database remembers it.
    pub last_version: u64,
    /// The migration files the schema accounts for.
    pub migrations: BTreeMap<String, Recorded>,
    pub schema: Schema,
}

/// One migration file the record accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// The tables it touched (by their names after it).
    pub tables: Vec<String>,
    /// Its contents' FNV-1a hash when msgen read or wrote it: an edit after that
    /// makes msgen read the migrations again.
    pub fnv1a: String,
}

impl Recorded {
    pub fn new(tables: Vec<String>, contents: &str) -> Self {
        Self {
            tables,
            fnv1a: checksum(contents),
        }
    }
}

/// FNV-1a (64 bits) of `text`, in hex: enough to notice an edit, not a signature.
pub fn checksum(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    last_version: u64,
    #[serde(default)]
    migrations: BTreeMap<String, Recorded>,
    #[serde(default)]
    tables: Vec<RawTable>,
    #[serde(default)]
    views: Vec<RawNamed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: String,
    #[serde(default)]
    by_hand: bool,
    columns: Vec<RawColumn>,
    #[serde(default)]
    indexes: Vec<RawNamed>,
    #[serde(default)]
    constraints: Vec<String>,
    #[serde(default)]
    triggers: Vec<String>,
    #[serde(default)]
    unread: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamed {
    name: String,
    sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    nullable: bool,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    primary_key: bool,
    #[serde(default)]
    references: Option<String>,
    #[serde(default)]
    by_hand: bool,
    #[serde(default)]
    sql: Option<String>,
}

fn s(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

impl Record {
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawRecord = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut tables = Vec::new();
        for t in raw.tables {
            let mut columns = Vec::new();
            for c in t.columns {
                let ty = ColType::parse(&c.ty).ok_or_else(|| {
                    format!(
                        "table `{}`, column `{}`: unknown type {:?}",
                        t.name, c.name, c.ty
                    )
                })?;
                columns.push(Column {
                    primary_key: c.primary_key || ty == ColType::Id,
                    name: c.name,
                    ty,
                    nullable: c.nullable,
                    default: c.default,
                    unique: c.unique,
                    references: c.references,
                    by_hand: c.by_hand,
                    raw: c.sql,
                });
            }
            tables.push(Table {
                name: t.name,
                columns,
                by_hand: t.by_hand,
                indexes: t.indexes.into_iter().map(named).collect(),
                constraints: t.constraints,
                triggers: t.triggers,
                unread: t.unread,
            });
        }
        let dialect = match raw.database.as_deref() {
            None => None,
            Some("postgres") => Some(Dialect::Postgres),
            Some("sqlite") => Some(Dialect::Sqlite),
            Some(other) => return Err(format!("database {other:?}: accepted: postgres, sqlite")),
        };
        Ok(Self {
            dialect,
            last_version: raw.last_version,
            migrations: raw.migrations,
            schema: Schema {
                tables,
                views: raw.views.into_iter().map(named).collect(),
            },
        })
    }

    pub fn to_toml(&self, owner_dir: &str) -> String {
        let mut out = format!(
            "# What the migrations in {owner_dir}/migrations produce, as msgen last saw them.\n# msgen compares it with services.toml to write the next migration: edit\n# services.toml, not this file (`msgen generate --accept-schema` records by hand).\nlast_version = {}\n",
            self.last_version
        );
        if let Some(d) = self.dialect {
            out.push_str(&format!("database = {}\n", s(super::dialect_name(d))));
        }
        // Top-level keys before the first table header.
        named_list(&mut out, "views", &self.schema.views);
        if !self.migrations.is_empty() {
            out.push_str("\n[migrations]\n");
            for (file, r) in &self.migrations {
                let list: Vec<String> = r.tables.iter().map(|t| s(t)).collect();
                out.push_str(&format!(
                    "{} = {{ tables = [{}], fnv1a = {} }}\n",
                    s(file),
                    list.join(", "),
                    s(&r.fnv1a)
                ));
            }
        }
        for t in &self.schema.tables {
            out.push_str(&format!("\n[[tables]]\nname = {}\n", s(&t.name)));
            if t.by_hand {
                out.push_str("by_hand = true\n");
            }
            out.push_str("columns = [\n");
            for c in &t.columns {
                let mut parts = vec![
                    format!("name = {}", s(&c.name)),
                    format!("type = {}", s(&c.ty.name())),
                ];
                if c.nullable {
                    parts.push("nullable = true".into());
                }
                if let Some(d) = &c.default {
                    parts.push(format!("default = {}", s(d)));
                }
                if c.unique {
                    parts.push("unique = true".into());
                }
                if c.primary_key && c.ty != ColType::Id {
                    parts.push("primary_key = true".into());
                }
                if let Some(r) = &c.references {
                    parts.push(format!("references = {}", s(r)));
                }
                if c.by_hand {
                    parts.push("by_hand = true".into());
                }
                if let Some(raw) = &c.raw {
                    parts.push(format!("sql = {}", s(raw)));
                }
                out.push_str(&format!("    {{ {} }},\n", parts.join(", ")));
            }
            out.push_str("]\n");
            named_list(&mut out, "indexes", &t.indexes);
            string_list(&mut out, "constraints", &t.constraints);
            string_list(&mut out, "triggers", &t.triggers);
            string_list(&mut out, "unread", &t.unread);
        }
        out
    }
}

fn named(i: RawNamed) -> Named {
    Named {
        name: i.name,
        sql: i.sql,
    }
}

fn named_list(out: &mut String, key: &str, items: &[Named]) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("{key} = [\n"));
    for i in items {
        out.push_str(&format!(
            "    {{ name = {}, sql = {} }},\n",
            s(&i.name),
            s(&i.sql)
        ));
    }
    out.push_str("]\n");
}

fn string_list(out: &mut String, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let list: Vec<String> = items.iter().map(|i| s(i)).collect();
    out.push_str(&format!("{key} = [{}]\n", list.join(", ")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_what_it_wrote() {
        let mut summary = Column::new("summary", ColType::String);
        summary.nullable = true;
        summary.default = Some("'it''s'".into());
        let mut author = Column::new("author_id", ColType::I64);
        author.references = Some("users".into());
        let mut extra = Column::new("search", ColType::Sql("tsvector".into()));
        extra.by_hand = true;
        extra.raw = Some("tsvector collate \"C\"".into());
        let record = Record {
            dialect: Some(Dialect::Sqlite),
            last_version: 7,
            migrations: [(
                "0001_create_posts.sql".to_string(),
                Recorded::new(vec!["posts".to_string()], "CREATE TABLE posts ();"),
            )]
            .into(),
            schema: Schema {
                tables: vec![Table {
                    name: "posts".into(),
                    columns: vec![Column::new("id", ColType::Id), summary, author, extra],
                    by_hand: false,
                    indexes: vec![Named {
                        name: "posts_by_title".into(),
                        sql: "CREATE INDEX posts_by_title ON posts (\"title\")".into(),
                    }],
                    constraints: vec!["unique(summary,author_id)".into()],
                    triggers: vec!["posts_touch".into()],
                    unread: vec!["ALTER TABLE posts ALTER COLUMN x SET STATISTICS 10".into()],
                }],
                views: vec![Named {
                    name: "recent".into(),
                    sql: "CREATE VIEW recent AS SELECT * FROM posts".into(),
                }],
            },
        };
        let text = record.to_toml("services/blog");
        assert_eq!(Record::parse(&text), Ok(record));
    }
}
