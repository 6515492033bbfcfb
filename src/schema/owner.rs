//! One owner of a database (a service, or the monolith): from its record and its
//! `migrations/` folder to the new migration files and the new record.

use std::collections::{BTreeMap, BTreeSet};

use super::diff::{evolve, Options, Problem, Step};
use super::read::replay;
use super::record::{checksum, Recorded};
use super::{ddl, Dialect, Record, Schema, Wanted};

/// What is on disk for one owner.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// `.msgen/schema/<owner>.toml`, if there is one.
    pub record: Option<Record>,
    /// `migrations/*.sql` with a version, name → contents.
    pub files: BTreeMap<String, String>,
    /// The files msgen wrote: `.msgen/base` holds the same contents.
    pub ours: BTreeSet<String>,
}

impl Disk {
    /// The highest version this owner has used: of its files, or the record's
    /// (which remembers files a split moved away).
    pub fn highest_version(&self) -> u64 {
        self.files
            .keys()
            .filter_map(|f| version_of(f))
            .chain(self.record.as_ref().map(|r| r.last_version))
            .max()
            .unwrap_or(0)
    }
}

/// What a render does for one owner.
#[derive(Debug, Clone, Default)]
pub struct OwnerPlan {
    /// New migration files, name → SQL.
    pub new_files: Vec<(String, String)>,
    /// Files the record accounts for that are still there.
    pub kept: Vec<String>,
    /// Files the record accounts for that someone deleted.
    pub missing: Vec<String>,
    /// Files edited since msgen recorded them (every migration was read again).
    pub changed: Vec<String>,
    pub record: Record,
    /// One line per change, for the command's report.
    pub changes: Vec<String>,
    /// Statements of hand-written migrations msgen could not read.
    pub unread: Vec<String>,
}

/// The version sqlx reads from a migration's file name (`<VERSION>_<DESCRIPTION>.sql`).
pub fn version_of(file: &str) -> Option<u64> {
    if !file.ends_with(".sql") || file.ends_with(".down.sql") {
        return None;
    }
    let (v, _) = file.split_once('_')?;
    // sqlx reads versions as i64.
    let v: i64 = v.parse().ok()?;
    u64::try_from(v).ok()
}

/// The version after `last`, if sqlx can still read it.
pub fn next_version(last: u64) -> Option<u64> {
    last.checked_add(1).filter(|v| i64::try_from(*v).is_ok())
}

/// Plans one owner. `accept`: the user's word that their own migrations already
/// took the database where `wanted` says (`--accept-schema`).
pub fn plan(
    wanted: &[Wanted],
    dialect: Dialect,
    disk: &Disk,
    opts: Options,
    accept: bool,
) -> Result<OwnerPlan, Vec<Problem>> {
    let (mut schema, mut accounted) = match &disk.record {
        Some(r) => (r.schema.clone(), r.migrations.clone()),
        None => (Schema::default(), BTreeMap::new()),
    };
    // A migration edited since msgen recorded it (a migration of the user's, written
    // after `add-migration`; or one of msgen's, changed by hand): what the record
    // says may no longer be what the files do, so every file is read again.
    let mut out = OwnerPlan {
        changed: accounted
            .iter()
            .filter(|(f, r)| disk.files.get(*f).is_some_and(|c| checksum(c) != r.fnv1a))
            .map(|(f, _)| f.clone())
            .collect(),
        ..Default::default()
    };
    if !out.changed.is_empty() {
        schema = Schema::default();
        accounted.retain(|f, _| !disk.files.contains_key(f));
    }
    for f in accounted.keys() {
        if disk.files.contains_key(f) {
            out.kept.push(f.clone());
        } else {
            out.missing.push(f.clone());
        }
    }
    // Files the record does not account for, in the order sqlx applies them: the
    // user's own, a project's history from before the record, or msgen's own
    // migration from a run killed before it recorded it.
    let mut unaccounted: Vec<(u64, &String, &String)> = disk
        .files
        .iter()
        .filter(|(f, _)| !accounted.contains_key(*f))
        .filter_map(|(f, sql)| Some((version_of(f)?, f, sql)))
        .collect();
    unaccounted.sort();
    for (_, file, sql) in &unaccounted {
        let r = replay(&mut schema, sql, dialect, wanted, disk.ours.contains(*file));
        out.unread
            .extend(r.unread.iter().map(|s| format!("{file}: {s}")));
        accounted.insert((*file).clone(), Recorded::new(r.tables, sql));
        out.kept.push((*file).clone());
    }
    let mut next = disk.highest_version();
    if accept {
        // The user's migrations did it: the schema is what services.toml says,
        // with the tables and columns they made of their own kept.
        let all = Options {
            allow_data_loss: true,
        };
        schema = evolve(&schema, wanted, all).schema;
        for t in &mut schema.tables {
            t.unread.clear();
        }
        // The user's word covers the files they deleted too.
        for f in std::mem::take(&mut out.missing) {
            accounted.remove(&f);
        }
    } else {
        let mut evo = evolve(&schema, wanted, opts);
        if dialect == Dialect::Sqlite {
            for step in &evo.steps {
                if let Step::Alter { old, changes, .. } = step {
                    if ddl::sqlite_rebuilds(changes) && !old.triggers.is_empty() {
                        evo.problems.push(Problem {
                            key: format!("table `{}`", old.name),
                            message: format!(
                                "SQLite can only make this change by rebuilding the table, which would drop its trigger(s) {}",
                                old.triggers.join(", ")
                            ),
                            help: "drop the triggers in a migration of your own (`msgen add-migration`), run `msgen generate`, then make them again in another".into(),
                        });
                    }
                }
            }
        }
        if !evo.problems.is_empty() {
            return Err(evo.problems);
        }
        for step in &evo.steps {
            let (what, sql) = ddl::migration(step, dialect);
            out.changes.extend(step.describe());
            if crate::sql::statements(&sql).is_empty() {
                // Only msgen's idea of the column changed (SQLite's INTEGER is i32
                // and i64 alike): recorded, with no migration to run.
                continue;
            }
            next = next_version(next).ok_or_else(|| {
                vec![Problem {
                    key: format!("table `{}`", step.table()),
                    message: format!(
                        "no migration version is left after {next} (sqlx reads versions as i64)"
                    ),
                    help: "renumber the migrations of this service".into(),
                }]
            })?;
            let file = format!("{next:04}_{what}.sql");
            accounted.insert(
                file.clone(),
                Recorded::new(vec![step.table().to_string()], &sql),
            );
            out.new_files.push((file, sql));
        }
        schema = evo.schema;
    }
    // A deleted migration stays in the record: the schema still holds what it
    // did, and `generate --check` keeps saying so until it is back.
    out.kept.sort();
    out.record = Record {
        dialect: Some(dialect),
        last_version: next,
        migrations: accounted,
        schema,
    };
    Ok(out)
}
