//! From the schema the migrations produce to the one the model wants: the steps,
//! or the problems that stop them (data that would be lost, a default missing).

use std::collections::BTreeMap;
use std::fmt;

use super::{ColType, Column, Schema, Table, Wanted};

/// What the user confirmed on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `--allow-data-loss`: drop columns and tables, convert types that may not
    /// keep every value.
    pub allow_data_loss: bool,
}

/// One change to a column of a table that stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(Column),
    Drop(String),
    Rename {
        from: String,
        to: String,
    },
    Retype {
        column: String,
        from: ColType,
        to: ColType,
    },
    /// `fill`: the value rows with NULL get when the column becomes required.
    Nullable {
        column: String,
        nullable: bool,
        fill: Option<String>,
    },
    Default {
        column: String,
        default: Option<String>,
    },
    References {
        column: String,
        to: Option<String>,
    },
    Unique {
        column: String,
        unique: bool,
    },
}

impl Change {
    /// One line for the migration's header and the command's report.
    pub fn describe(&self) -> String {
        match self {
            Self::Add(c) => format!(
                "add column \"{}\" ({}{})",
                c.name,
                c.ty,
                if c.nullable { ", optional" } else { "" }
            ),
            Self::Drop(c) => format!("drop column \"{c}\""),
            Self::Rename { from, to } => format!("rename column \"{from}\" to \"{to}\""),
            Self::Retype { column, from, to } => {
                format!("change column \"{column}\" from {from} to {to}")
            }
            Self::Nullable {
                column,
                nullable: true,
                ..
            } => format!("make column \"{column}\" optional"),
            Self::Nullable { column, .. } => format!("make column \"{column}\" required"),
            Self::Default {
                column,
                default: Some(d),
            } => format!("set the default of \"{column}\" to {d}"),
            Self::Default { column, .. } => format!("drop the default of \"{column}\""),
            Self::References {
                column,
                to: Some(t),
            } => format!("make \"{column}\" a foreign key to \"{t}\""),
            Self::References { column, .. } => format!("drop the foreign key of \"{column}\""),
            Self::Unique {
                column,
                unique: true,
            } => format!("make \"{column}\" unique"),
            Self::Unique { column, .. } => format!("let \"{column}\" repeat"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create(Table),
    Alter {
        old: Table,
        new: Table,
        changes: Vec<Change>,
        /// The user's views that read the table (a SQLite rebuild makes them again).
        views: Vec<super::Named>,
    },
    Drop(Table),
}

impl Step {
    /// The table it changes, by its name after the step.
    pub fn table(&self) -> &str {
        match self {
            Self::Create(t) | Self::Drop(t) => &t.name,
            Self::Alter { new, .. } => &new.name,
        }
    }

    pub fn describe(&self) -> Vec<String> {
        match self {
            Self::Create(t) => vec![format!("create table \"{}\"", t.name)],
            Self::Drop(t) => vec![format!("drop table \"{}\"", t.name)],
            Self::Alter { new, changes, .. } => changes
                .iter()
                .map(|c| format!("table \"{}\": {}", new.name, c.describe()))
                .collect(),
        }
    }
}

/// Why a render cannot write the migration `services.toml` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The `services.toml` key (or table) it is about.
    pub key: String,
    pub message: String,
    pub help: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n  help: {}", self.key, self.message, self.help)
    }
}

/// The steps from a recorded schema to the wanted one, and the new schema.
#[derive(Debug, Clone, Default)]
pub struct Evolution {
    pub steps: Vec<Step>,
    pub problems: Vec<Problem>,
    /// What the schema is once the steps ran.
    pub schema: Schema,
}

/// Whether converting `from` to `to` keeps every value as the new type reads it.
fn keeps_values(from: &ColType, to: &ColType) -> bool {
    use ColType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (String | Text | Email, String | Text | Email) => true,
        (I32, I64 | F64) => true,
        (I32 | I64 | F64 | Bool | Datetime, String | Text) => true,
        _ => false,
    }
}

/// Whether both databases convert `from` to `to` with `CAST` at all (PostgreSQL has
/// no cast between booleans and bigint or floats, nor between timestamps and
/// numbers: such a migration could never run, even on an empty table).
fn castable(from: &ColType, to: &ColType) -> bool {
    use ColType::*;
    let text = |t: &ColType| matches!(t, String | Text | Email);
    let number = |t: &ColType| matches!(t, I32 | I64 | F64);
    keeps_values(from, to)
        || text(from) && !matches!(to, Id | Sql(_))
        || number(from) && number(to)
        || matches!((from, to), (I32, Bool) | (Bool, I32))
        || !matches!(from, Id) && matches!(to, String | Text)
}

const CONFIRM: &str = "to confirm, run the command again with --allow-data-loss";

/// Diffs `recorded` against `wanted`. Tables and columns the user made by hand
/// (not in `wanted` when they were read) are left alone.
pub fn evolve(recorded: &Schema, wanted: &[Wanted], opts: Options) -> Evolution {
    let mut out = Evolution::default();
    let mut tables = Vec::new();
    let mut views = recorded.views.clone();
    for w in wanted {
        match recorded.table(&w.table.name) {
            None => {
                out.steps.push(Step::Create(w.table.clone()));
                tables.push(w.table.clone());
            }
            Some(old) => {
                let (new, changes) = alter(old, w, opts, &mut out.problems);
                if !changes.is_empty() {
                    let reading = views_reading(&views, &old.name);
                    let renamed = renames(&changes);
                    // The views read renamed columns under their new names.
                    for v in views.iter_mut().filter(|v| reading.contains(&v.name)) {
                        v.sql = super::read::rename_words(&v.sql, &renamed);
                    }
                    out.steps.push(Step::Alter {
                        old: old.clone(),
                        new: new.clone(),
                        changes,
                        views: views
                            .iter()
                            .filter(|v| reading.contains(&v.name))
                            .cloned()
                            .collect(),
                    });
                }
                tables.push(new);
            }
        }
    }
    for old in &recorded.tables {
        if wanted.iter().any(|w| w.table.name == old.name) {
            continue;
        }
        if old.by_hand {
            tables.push(old.clone());
            continue;
        }
        if opts.allow_data_loss {
            out.steps.push(Step::Drop(old.clone()));
        } else {
            out.problems.push(Problem {
                key: format!("table `{}`", old.name),
                message: "is no longer in services.toml: dropping it would delete its rows"
                    .into(),
                help: format!(
                    "{CONFIRM}, or declare the resource again (a renamed resource keeps its table with `plural = \"{}\"`)",
                    old.name
                ),
            });
            tables.push(old.clone());
        }
    }
    // Creates first (a change may point a foreign key at a new table), a table
    // before the tables that refer to it; drops last.
    out.steps.sort_by_key(|s| match s {
        Step::Create(_) => 0,
        Step::Alter { .. } => 1,
        Step::Drop(_) => 2,
    });
    let creates = out
        .steps
        .iter()
        .take_while(|s| matches!(s, Step::Create(_)))
        .count();
    let (ordered, deferred) = creates_in_order(out.steps.drain(..creates).collect());
    let n = ordered.len();
    out.steps.splice(0..0, ordered);
    out.steps.splice(n..n, deferred);
    // Drops the other way round: a table that refers to another goes first.
    let first_drop = out
        .steps
        .iter()
        .position(|s| matches!(s, Step::Drop(_)))
        .unwrap_or(out.steps.len());
    let mut drops = referenced_first(out.steps.drain(first_drop..).collect());
    drops.reverse();
    out.steps.extend(drops);
    out.schema = Schema { tables, views };
    out
}

/// The views that read `table`, directly or through other views (in the order
/// they were made, which is an order they can be made again in).
fn views_reading(views: &[super::Named], table: &str) -> Vec<String> {
    let mut reading: Vec<String> = vec![table.to_string()];
    loop {
        let more: Vec<String> = views
            .iter()
            .filter(|v| !reading.contains(&v.name))
            .filter(|v| {
                crate::sql::tables_in(&v.sql)
                    .iter()
                    .any(|t| reading.contains(t))
            })
            .map(|v| v.name.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        reading.extend(more);
    }
    reading.remove(0);
    reading
}

fn renames(changes: &[Change]) -> BTreeMap<String, String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Rename { from, to } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

/// Tables ordered so that a table comes before the tables whose foreign keys point
/// at it (declaration order otherwise; a cycle keeps it).
fn referenced_first(mut pending: Vec<Step>) -> Vec<Step> {
    let mut out = Vec::new();
    while !pending.is_empty() {
        let names: Vec<String> = pending.iter().map(|s| s.table().to_string()).collect();
        let ready = pending.iter().position(|s| match s {
            Step::Create(t) | Step::Drop(t) => t.columns.iter().all(|c| match &c.references {
                Some(r) => r == &t.name || !names.contains(r),
                None => true,
            }),
            _ => true,
        });
        out.push(pending.remove(ready.unwrap_or(0)));
    }
    out
}

/// New tables in an order PostgreSQL accepts: a table before those that refer to
/// it. Tables that refer to each other are made without the foreign key that
/// closes the cycle, which a later step adds.
fn creates_in_order(mut pending: Vec<Step>) -> (Vec<Step>, Vec<Step>) {
    let mut deferred = Vec::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let names: Vec<String> = pending.iter().map(|s| s.table().to_string()).collect();
        let waits_for = |t: &Table, c: &Column| {
            c.references
                .as_ref()
                .is_some_and(|r| r != &t.name && names.contains(r))
        };
        let ready = pending.iter().position(|s| match s {
            Step::Create(t) => !t.columns.iter().any(|c| waits_for(t, c)),
            _ => true,
        });
        let next = match ready {
            Some(i) => pending.remove(i),
            None => match pending.remove(0) {
                // A cycle: the first table goes without its foreign keys to the
                // tables still to come, and gets them once they exist.
                Step::Create(full) => {
                    let mut bare = full.clone();
                    let mut changes = Vec::new();
                    for c in bare.columns.iter_mut().filter(|c| waits_for(&full, c)) {
                        changes.push(Change::References {
                            column: c.name.clone(),
                            to: c.references.take(),
                        });
                    }
                    deferred.push(Step::Alter {
                        old: bare.clone(),
                        new: full,
                        changes,
                        views: Vec::new(),
                    });
                    Step::Create(bare)
                }
                other => other,
            },
        };
        out.push(next);
    }
    (out, deferred)
}

/// The changes to one table; the table as it will be.
fn alter(
    old: &Table,
    w: &Wanted,
    opts: Options,
    problems: &mut Vec<Problem>,
) -> (Table, Vec<Change>) {
    let new = &w.table;
    let mut changes = Vec::new();
    // New name → old name, for the columns that stay.
    let mut source: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &new.columns {
        if old.column(&c.name).is_some() {
            source.insert(&c.name, &c.name);
        } else if let Some(from) = w
            .renamed
            .get(&c.name)
            .filter(|f| old.column(f).is_some() && new.column(f).is_none())
        {
            changes.push(Change::Rename {
                from: from.clone(),
                to: c.name.clone(),
            });
            source.insert(&c.name, from);
        }
    }
    let mut result = new.clone();
    for oc in &old.columns {
        if source.values().any(|s| *s == oc.name) {
            continue;
        }
        if oc.by_hand {
            // Added by a hand-written migration: the user's, kept as it is.
            result.columns.push(oc.clone());
            continue;
        }
        if opts.allow_data_loss {
            changes.push(Change::Drop(oc.name.clone()));
        } else {
            problems.push(Problem {
                key: w.key(&oc.name),
                message: format!(
                    "field `{}` ({}) is no longer declared: dropping column \"{}\" of table `{}` would delete its values",
                    oc.name, oc.ty, oc.name, old.name
                ),
                help: format!(
                    "{CONFIRM}, or declare the field again; to rename it, declare the new name with `renamed_from = \"{}\"`",
                    oc.name
                ),
            });
            result.columns.push(oc.clone());
        }
    }
    for c in &new.columns {
        let Some(from) = source.get(c.name.as_str()) else {
            if !c.nullable && c.default.is_none() && !c.primary_key {
                problems.push(Problem {
                    key: w.key(&c.name),
                    message: format!(
                        "a required field added to table `{}`, which may have rows: they need a value",
                        new.name
                    ),
                    help: format!(
                        "give it a default, e.g. {} = {{ type = \"{}\", default = {} }}, or make it optional (\"{}?\")",
                        c.name,
                        c.ty,
                        example_default(&c.ty),
                        c.ty
                    ),
                });
            }
            changes.push(Change::Add(c.clone()));
            continue;
        };
        let oc = old.column(from).expect("a column of the old table");
        let column = c.name.clone();
        if oc.primary_key != c.primary_key || (oc.ty == ColType::Id) != (c.ty == ColType::Id) {
            problems.push(Problem {
                key: w.key(&c.name),
                message: format!("the primary key of table `{}` cannot change", new.name),
                help: "write that migration by hand (`msgen add-migration ...`)".into(),
            });
            continue;
        }
        if oc.ty != c.ty {
            if !castable(&oc.ty, &c.ty) {
                problems.push(Problem {
                    key: w.key(&c.name),
                    message: format!(
                        "column \"{}\" of table `{}` cannot be converted from {} to {} by a cast",
                        c.name, new.name, oc.ty, c.ty
                    ),
                    help: format!(
                        "add the new field under another name and fill it in a migration of your own (`msgen add-migration {} ...`), then drop the old one",
                        w.owner
                    ),
                });
                continue;
            }
            if !keeps_values(&oc.ty, &c.ty) && !opts.allow_data_loss {
                problems.push(Problem {
                    key: w.key(&c.name),
                    message: format!(
                        "changing column \"{}\" of table `{}` from {} to {} may not keep every value",
                        c.name, new.name, oc.ty, c.ty
                    ),
                    help: format!(
                        "{CONFIRM}: each value is converted with CAST, PostgreSQL stops the migration at a value that does not convert, SQLite at a number beyond i32 and keeps what CAST gives otherwise; or keep the type and write the conversion as a migration of your own"
                    ),
                });
            }
            changes.push(Change::Retype {
                column: column.clone(),
                from: oc.ty.clone(),
                to: c.ty.clone(),
            });
        }
        if oc.nullable != c.nullable {
            let fill = if c.nullable { None } else { c.default.clone() };
            if !c.nullable && fill.is_none() {
                problems.push(Problem {
                    key: w.key(&c.name),
                    message: format!(
                        "field `{}` becomes required, but rows of table `{}` may hold no value",
                        c.name, new.name
                    ),
                    help: if c.references.is_some() {
                        // A default would have to be a row's id: `ref:` takes none.
                        format!(
                            "a reference takes no default: fill `{}` in every row and make it NOT NULL in a migration of your own (`msgen add-migration {} NAME`; msgen then reads that it is done), or keep it optional",
                            c.name, w.owner
                        )
                    } else {
                        format!(
                            "give it a default for those rows, e.g. {} = {{ type = \"{}\", default = {} }}, or keep it optional",
                            c.name,
                            c.ty,
                            example_default(&c.ty)
                        )
                    },
                });
            }
            changes.push(Change::Nullable {
                column: column.clone(),
                nullable: c.nullable,
                fill,
            });
        }
        if oc.default != c.default {
            changes.push(Change::Default {
                column: column.clone(),
                default: c.default.clone(),
            });
        }
        if oc.references != c.references {
            changes.push(Change::References {
                column: column.clone(),
                to: c.references.clone(),
            });
        }
        // A uniqueness msgen did not ask for is the user's: kept.
        if c.unique && !oc.unique {
            changes.push(Change::Unique {
                column,
                unique: true,
            });
        } else if oc.unique {
            if let Some(rc) = result.columns.iter_mut().find(|x| x.name == c.name) {
                rc.unique = true;
            }
        }
    }
    let renamed = renames(&changes);
    result.indexes = old
        .indexes
        .iter()
        .filter_map(|i| {
            let sql = surviving(&i.sql, &changes, &renamed)?;
            Some(super::Named {
                name: i.name.clone(),
                sql,
            })
        })
        .collect();
    result.constraints = old
        .constraints
        .iter()
        .filter_map(|c| surviving(c, &changes, &renamed))
        .collect();
    result.triggers = old.triggers.clone();
    result.unread = old.unread.clone();
    if !changes.is_empty() && !old.unread.is_empty() {
        problems.push(Problem {
            key: format!("table `{}`", old.name),
            message: format!(
                "migrations of yours changed it in ways msgen cannot read ({}), so msgen cannot tell whether services.toml's change is already made",
                old.unread.join("; ")
            ),
            help: format!(
                "write the change as a migration of your own, or once services.toml says what your migrations did, run `msgen generate --accept-schema {}`; msgen then takes the table as services.toml says",
                w.owner
            ),
        });
    }
    (result, changes)
}

/// An index or constraint of the old table after `changes`: gone with a dropped
/// column (PostgreSQL drops it; a SQLite rebuild does not make it again), renamed
/// columns renamed.
fn surviving(sql: &str, changes: &[Change], renamed: &BTreeMap<String, String>) -> Option<String> {
    let words = super::read::words_of(sql);
    if changes
        .iter()
        .any(|c| matches!(c, Change::Drop(col) if words.contains(col)))
    {
        return None;
    }
    Some(if renamed.is_empty() {
        sql.to_string()
    } else {
        super::read::rename_words(sql, renamed)
    })
}

/// A default of type `ty` that the API accepts too (a `string` is never blank).
fn example_default(ty: &ColType) -> &'static str {
    match ty {
        ColType::I32 | ColType::I64 | ColType::Id => "0",
        ColType::F64 => "0.0",
        ColType::Bool => "false",
        ColType::String => "\"unknown\"",
        ColType::Email => "\"nobody@example.com\"",
        ColType::Datetime => "\"1970-01-01T00:00:00Z\"",
        _ => "\"\"",
    }
}
