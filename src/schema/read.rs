//! Replays migration files onto a [`Schema`]: msgen's own (to recover from a run
//! killed between writing a migration and recording it, and to learn the schema of
//! a project made before msgen kept a record) and the user's hand-written ones, so
//! that a column the user added by hand is known and never added twice.
//!
//! It reads the statements that shape tables: `CREATE TABLE`, `ALTER TABLE` (add,
//! drop, rename, retype, nullability, defaults, foreign keys, unique), `DROP
//! TABLE`, and msgen's own `DO` block that drops a foreign key. Everything else
//! (indexes, data, functions, pragmas) leaves the tables' shape alone and is
//! skipped; an `ALTER TABLE` it cannot read on a known table is reported.

use crate::sql::{lexemes, statements, Lexeme};

use super::{ColType, Column, Dialect, Schema, Table, Wanted};

/// What replaying one file did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Tables its statements changed, as named after them.
    pub tables: Vec<String>,
    /// Statements about tables that msgen could not read (first line each).
    pub unread: Vec<String>,
}

/// Replays `sql` onto `schema`. `wanted` tells which columns `services.toml`
/// declares (anything else is the user's, `by_hand`, unless `ours`: msgen wrote
/// the file) and their logical types where the SQL type is ambiguous (SQLite's
/// `INTEGER` is i32 and i64).
pub fn replay(
    schema: &mut Schema,
    sql: &str,
    dialect: Dialect,
    wanted: &[Wanted],
    ours: bool,
) -> Replayed {
    let mut out = Replayed::default();
    for stmt in statements(sql) {
        let lx = lexemes(&stmt);
        let ranges = crate::sql::lexeme_ranges(&stmt);
        let ctx = Ctx {
            dialect,
            wanted,
            ours,
            stmt: &stmt,
            lx: &lx,
            ranges: &ranges,
        };
        let touched = match words(&lx, 3).as_slice() {
            ["create", "table", ..] | ["create", "temp" | "temporary", "table"] => {
                ctx.create(schema, &lx)
            }
            ["alter", "table", ..] => ctx.alter(schema, &lx),
            ["drop", "table", ..] => ctx.drop(schema, &lx),
            ["create", "index" | "unique", ..] => Ok(create_index(schema, &stmt, &lx)),
            ["drop", "index", ..] => Ok(drop_index(schema, &lx)),
            ["create", "view", ..] | ["create", "temp" | "temporary", "view"] => {
                Ok(create_view(schema, &stmt, &lx))
            }
            ["drop", "view", ..] => Ok(drop_view(schema, &lx)),
            ["create", "trigger", ..] | ["create", "temp" | "temporary", "trigger"] => {
                Ok(create_trigger(schema, &lx))
            }
            ["drop", "trigger", ..] => Ok(drop_trigger(schema, &lx)),
            ["do", ..] => ctx.msgen_do(schema, &lx),
            _ => Ok(None),
        };
        match touched {
            Ok(Some(t)) => {
                // A table being rebuilt, or the guard of a retype: the table's.
                let t = t
                    .strip_prefix(super::ddl::REBUILD_PREFIX)
                    .or_else(|| t.strip_prefix(super::ddl::GUARD_PREFIX))
                    .map_or(t.clone(), str::to_string);
                if !out.tables.contains(&t) {
                    out.tables.push(t);
                }
            }
            Ok(None) => {}
            Err(()) => {
                let first = stmt
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with("--"))
                    .unwrap_or_default()
                    .to_string();
                // An ALTER of a known table msgen cannot read: that table's shape
                // is no longer certain, so no change is made to it until the user
                // says what it is (`--accept-schema`).
                if let ["alter", "table", ..] = words(&lx, 2).as_slice() {
                    let at = skip_if_exists(&lx, 2);
                    if let Some(t) = name_at(&lx, at).and_then(|(n, _)| schema.table_mut(&n)) {
                        t.unread.push(first.clone());
                    }
                }
                out.unread.push(first);
            }
        }
    }
    out
}

/// The first `n` words of a statement (punctuation ends them).
fn words(lx: &[Lexeme], n: usize) -> Vec<&str> {
    lx.iter()
        .take(n)
        .map_while(|l| match l {
            Lexeme::Word(w) => Some(w.as_str()),
            _ => None,
        })
        .collect()
}

fn is_word(l: Option<&Lexeme>, w: &str) -> bool {
    matches!(l, Some(Lexeme::Word(x)) if x == w)
}

/// A default as msgen writes and compares it: tokens joined, words lower-cased,
/// string literals as written.
pub fn literal(lx: &[Lexeme]) -> String {
    let mut out = String::new();
    for (i, l) in lx.iter().enumerate() {
        let text = match l {
            Lexeme::Word(w) => w.clone(),
            Lexeme::Str(s) => s.clone(),
            Lexeme::Punct(c) => c.to_string(),
        };
        let prev_word = i > 0 && matches!(lx[i - 1], Lexeme::Word(_));
        if prev_word && matches!(l, Lexeme::Word(_)) {
            out.push(' ');
        }
        out.push_str(&text);
    }
    out
}

/// Splits at commas outside parentheses.
fn split_top(lx: &[Lexeme]) -> Vec<&[Lexeme]> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, l) in lx.iter().enumerate() {
        match l {
            Lexeme::Punct('(') => depth += 1,
            Lexeme::Punct(')') => depth -= 1,
            Lexeme::Punct(',') if depth == 0 => {
                out.push(&lx[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&lx[start..]);
    out.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Index past the parenthesised group starting at `i` (which is `(`).
fn past_group(lx: &[Lexeme], i: usize) -> usize {
    let mut depth = 0;
    for (j, l) in lx.iter().enumerate().skip(i) {
        match l {
            Lexeme::Punct('(') => depth += 1,
            Lexeme::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    lx.len()
}

/// A (possibly schema-qualified) name at `i`: the name and the index after it.
/// A name in the default schema (`public`, SQLite's `main`) is the bare name; one
/// in another schema keeps it (`archive.posts`), so it is never taken for a
/// table of the service's.
fn name_at(lx: &[Lexeme], i: usize) -> Option<(String, usize)> {
    let Some(Lexeme::Word(w)) = lx.get(i) else {
        return None;
    };
    if matches!(lx.get(i + 1), Some(Lexeme::Punct('.'))) {
        if let Some(Lexeme::Word(n)) = lx.get(i + 2) {
            let name = if matches!(w.as_str(), "public" | "main") {
                n.clone()
            } else {
                format!("{w}.{n}")
            };
            return Some((name, i + 3));
        }
    }
    Some((w.clone(), i + 1))
}

/// Skips `IF [NOT] EXISTS` and `ONLY` at `i`.
fn skip_if_exists(lx: &[Lexeme], mut i: usize) -> usize {
    loop {
        match lx.get(i) {
            Some(Lexeme::Word(w)) if matches!(w.as_str(), "if" | "not" | "exists" | "only") => {
                i += 1
            }
            _ => return i,
        }
    }
}

const COLUMN_KEYWORDS: &[&str] = &[
    "as",
    "primary",
    "not",
    "null",
    "unique",
    "default",
    "references",
    "check",
    "constraint",
    "generated",
    "collate",
    "autoincrement",
];

struct Ctx<'a> {
    dialect: Dialect,
    wanted: &'a [Wanted],
    ours: bool,
    /// The statement being read, its tokens and where each is written.
    stmt: &'a str,
    lx: &'a [Lexeme],
    ranges: &'a [std::ops::Range<usize>],
}

impl Ctx<'_> {
    /// The model's column; a table being rebuilt (`_msgen_new_<t>`, or the
    /// user's own way) is typed as the table it becomes once renamed.
    fn wanted_column(&self, table: &str, column: &str) -> Option<&Column> {
        let table = table
            .strip_prefix(super::ddl::REBUILD_PREFIX)
            .unwrap_or(table);
        self.wanted
            .iter()
            .find(|w| w.table.name == table)
            .and_then(|w| w.table.column(column))
    }

    fn is_wanted_table(&self, table: &str) -> bool {
        self.wanted.iter().any(|w| w.table.name == table)
    }

    /// The text `part` (a run of this statement's tokens) is written as.
    fn source(&self, part: &[Lexeme]) -> Option<String> {
        let (first, last) = (part.first()?, part.last()?);
        let at = |l: &Lexeme| {
            let size = std::mem::size_of::<Lexeme>();
            let offset = (l as *const Lexeme as usize).checked_sub(self.lx.as_ptr() as usize)?;
            self.ranges.get(offset / size)
        };
        let (start, end) = (at(first)?.start, at(last)?.end);
        self.stmt.get(start..end).map(str::to_string)
    }

    /// Whether something msgen did not write and `services.toml` does not declare.
    fn by_hand(&self, table: &str, column: Option<&str>) -> bool {
        !self.ours
            && match column {
                Some(c) => self.wanted_column(table, c).is_none(),
                None => !self.is_wanted_table(table),
            }
    }

    /// The logical type of an SQL type, preferring the model's where the SQL is
    /// the same (TEXT is string, text or email; SQLite's INTEGER is i32 or i64).
    fn col_type(&self, table: &str, column: &str, sql: &str) -> ColType {
        let base = sql.split(['(', ' ']).next().unwrap_or_default();
        let pg = self.dialect == Dialect::Postgres;
        let ty = match (base, sql) {
            (_, "double precision") => ColType::F64,
            (_, "timestamp with time zone") => ColType::Datetime,
            ("text" | "varchar" | "character" | "char" | "citext", _) => ColType::String,
            ("integer" | "int" | "int4", _) if pg => ColType::I32,
            ("integer" | "int" | "int4" | "bigint" | "int8", _) => ColType::I64,
            ("real" | "float8" | "float" | "double" | "float4", _) => ColType::F64,
            ("boolean" | "bool", _) => ColType::Bool,
            ("timestamptz", _) => ColType::Datetime,
            _ => ColType::Sql(sql.to_string()),
        };
        match self.wanted_column(table, column) {
            Some(w) if w.ty.sql(self.dialect) == ty.sql(self.dialect) => w.ty.clone(),
            _ => ty,
        }
    }

    /// A column definition: `name type [constraints]`.
    fn column(&self, table: &str, lx: &[Lexeme]) -> Option<Column> {
        let Some(Lexeme::Word(name)) = lx.first() else {
            return None;
        };
        let (sql_type, i) = column_type(lx)?;
        let mut c = Column::new(name, ColType::Sql(sql_type.clone()));
        c.primary_key = false;
        c.nullable = true;
        let identity = column_constraints(&mut c, lx, i)? || sql_type.ends_with("serial");
        let integer = [
            "integer",
            "int",
            "int4",
            "bigint",
            "int8",
            "bigserial",
            "serial",
        ]
        .contains(&sql_type.as_str());
        let sqlite_rowid = self.dialect == Dialect::Sqlite && sql_type == "integer";
        c.ty = if c.primary_key && integer && (identity || sqlite_rowid) {
            ColType::Id
        } else {
            self.col_type(table, name, &sql_type)
        };
        c.by_hand = self.by_hand(table, Some(name));
        if c.by_hand {
            // The user's column, exactly as they wrote it after its name.
            c.raw = Some(self.source(&lx[1..]).unwrap_or_else(|| literal(&lx[1..])));
        }
        Some(c)
    }

    fn create(&self, schema: &mut Schema, lx: &[Lexeme]) -> Result<Option<String>, ()> {
        let t = lx
            .iter()
            .position(|l| is_word(Some(l), "table"))
            .ok_or(())?;
        let i = skip_if_exists(lx, t + 1);
        let (name, i) = name_at(lx, i).ok_or(())?;
        if is_word(lx.get(i), "as") {
            return Err(());
        }
        if !matches!(lx.get(i), Some(Lexeme::Punct('('))) {
            return Err(());
        }
        if schema.table(&name).is_some() {
            // IF NOT EXISTS on a table that exists: nothing happens.
            return Ok(None);
        }
        let end = past_group(lx, i);
        let body = &lx[i + 1..end.saturating_sub(1)];
        let mut table = Table {
            name: name.clone(),
            columns: Vec::new(),
            by_hand: self.by_hand(&name, None),
            indexes: Vec::new(),
            constraints: Vec::new(),
            triggers: Vec::new(),
            unread: Vec::new(),
        };
        let mut constraints = Vec::new();
        for item in split_top(body) {
            let first = match item.first() {
                Some(Lexeme::Word(w)) => w.as_str(),
                _ => return Err(()),
            };
            if matches!(
                first,
                "constraint" | "primary" | "foreign" | "unique" | "check"
            ) {
                constraints.push(item);
            } else {
                table.columns.push(self.column(&name, item).ok_or(())?);
            }
        }
        for item in constraints {
            if !table_constraint(&mut table, item) {
                table
                    .constraints
                    .push(self.source(item).unwrap_or_else(|| literal(item)));
            }
        }
        // A rebuild's new table (msgen's, or the user's done the same way): the
        // user's columns of the table it replaces stay the user's.
        if let Some(prev) = name
            .strip_prefix(super::ddl::REBUILD_PREFIX)
            .and_then(|base| schema.table(base))
        {
            for c in &mut table.columns {
                if let Some(pc) = prev.column(&c.name).filter(|pc| pc.by_hand) {
                    c.by_hand = true;
                    c.raw = pc.raw.clone();
                    c.ty = pc.ty.clone();
                }
            }
        }
        schema.tables.push(table);
        Ok(Some(name))
    }

    fn drop(&self, schema: &mut Schema, lx: &[Lexeme]) -> Result<Option<String>, ()> {
        let i = skip_if_exists(lx, 2);
        let mut last = None;
        for part in split_top(&lx[i..]) {
            let (name, _) = name_at(part, 0).ok_or(())?;
            schema.tables.retain(|t| t.name != name);
            last = Some(name);
        }
        Ok(last)
    }

    fn alter(&self, schema: &mut Schema, lx: &[Lexeme]) -> Result<Option<String>, ()> {
        let i = skip_if_exists(lx, 2);
        let (mut name, i) = name_at(lx, i).ok_or(())?;
        if schema.table(&name).is_none() {
            // A table msgen does not know (made some other way): not its business.
            return Ok(None);
        }
        for action in split_top(&lx[i..]) {
            let w: Vec<&str> = action
                .iter()
                .map(|l| match l {
                    Lexeme::Word(w) => w.as_str(),
                    _ => "",
                })
                .collect();
            let table = schema.table_mut(&name).ok_or(())?;
            match w.as_slice() {
                ["rename", "to", ..] => {
                    let (new, _) = name_at(action, 2).ok_or(())?;
                    self.rename_table(table, &new);
                    name = new;
                }
                ["rename", rest @ ..] => {
                    let off = usize::from(rest.first() == Some(&"column"));
                    let (from, to) = (w.get(1 + off).ok_or(())?, w.get(3 + off).ok_or(())?);
                    if w.get(2 + off) != Some(&"to") {
                        return Err(());
                    }
                    let c = table
                        .columns
                        .iter_mut()
                        .find(|c| c.name == *from)
                        .ok_or(())?;
                    c.name = to.to_string();
                    c.by_hand = c.by_hand && self.by_hand(&name, Some(to));
                }
                ["add", "constraint", ..]
                | ["add", "foreign" | "unique" | "primary" | "check", ..] => {
                    if !table_constraint(table, &action[1..]) {
                        let text = self.source(&action[1..]);
                        table
                            .constraints
                            .push(text.unwrap_or_else(|| literal(&action[1..])));
                    }
                }
                ["add", ..] => {
                    let j = skip_if_exists(action, if w.get(1) == Some(&"column") { 2 } else { 1 });
                    let col = self.column(&name, &action[j..]).ok_or(())?;
                    if table.column(&col.name).is_none() {
                        table.columns.push(col);
                    }
                }
                ["drop", "constraint", ..] => {
                    let j = skip_if_exists(action, 2);
                    let (constraint, _) = name_at(action, j).ok_or(())?;
                    drop_constraint(table, &constraint)?;
                }
                ["drop", ..] => {
                    let j = skip_if_exists(action, if w.get(1) == Some(&"column") { 2 } else { 1 });
                    let (col, _) = name_at(action, j).ok_or(())?;
                    table.columns.retain(|c| c.name != col);
                }
                ["alter", rest @ ..] => {
                    let j = if rest.first() == Some(&"column") {
                        2
                    } else {
                        1
                    };
                    self.alter_column(table, action, &w, j)?;
                }
                _ => return Err(()),
            }
        }
        Ok(Some(name))
    }

    /// `RENAME TO new`: what the table is now decides what its columns are (the
    /// last step of a rebuild renames the new table to the old name).
    fn rename_table(&self, table: &mut Table, new: &str) {
        table.name = new.to_string();
        table.by_hand = table.by_hand && self.by_hand(new, None);
        for c in &mut table.columns {
            if let Some(w) = self.wanted_column(new, &c.name) {
                if w.ty.sql(self.dialect) == c.ty.sql(self.dialect) {
                    c.ty = w.ty.clone();
                }
                c.by_hand = false;
                c.raw = None;
            }
        }
    }

    /// `ALTER [COLUMN] c ...` (`w`: the action's words; `j`: where the name is).
    fn alter_column(
        &self,
        table: &mut Table,
        action: &[Lexeme],
        w: &[&str],
        j: usize,
    ) -> Result<(), ()> {
        let col = w.get(j).ok_or(())?.to_string();
        let op = &w[j + 1..];
        let ty = match op {
            ["type", ..] | ["set", "data", "type", ..] => {
                let start = j + 1 + if op[0] == "type" { 1 } else { 3 };
                let end = action[start..]
                    .iter()
                    .position(|l| is_word(Some(l), "using") || is_word(Some(l), "collate"))
                    .map_or(action.len(), |p| start + p);
                Some(self.col_type(&table.name, &col, &literal(&action[start..end])))
            }
            _ => None,
        };
        let c = table.columns.iter_mut().find(|c| c.name == col).ok_or(())?;
        match op {
            ["set", "not", "null", ..] => c.nullable = false,
            ["drop", "not", "null", ..] => c.nullable = true,
            ["drop", "default", ..] => c.default = None,
            ["set", "default", ..] => c.default = Some(literal(&action[j + 3..])),
            _ => c.ty = ty.ok_or(())?,
        }
        Ok(())
    }

    /// msgen's `DO` block that drops a column's foreign key.
    fn msgen_do(&self, schema: &mut Schema, lx: &[Lexeme]) -> Result<Option<String>, ()> {
        let marker = "-- msgen: drop foreign key ";
        for l in lx {
            let Lexeme::Str(body) = l else { continue };
            let Some(at) = body.find(marker) else {
                continue;
            };
            let rest = &body[at + marker.len()..];
            let line = rest.lines().next().unwrap_or_default();
            let names: Vec<String> = lexemes(line)
                .into_iter()
                .filter_map(|l| match l {
                    Lexeme::Word(w) => Some(w),
                    _ => None,
                })
                .collect();
            let [table, column] = names.as_slice() else {
                return Err(());
            };
            let t = schema.table_mut(table).ok_or(())?;
            let c = t.columns.iter_mut().find(|c| &c.name == column).ok_or(())?;
            c.references = None;
            return Ok(Some(table.clone()));
        }
        // The user's own block: msgen cannot tell what it does.
        Err(())
    }
}

/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table ...`, kept with its table.
fn create_index(schema: &mut Schema, stmt: &str, lx: &[Lexeme]) -> Option<String> {
    let at = lx.iter().position(|l| is_word(Some(l), "index"))?;
    let (name, _) = name_at(lx, skip_if_exists(lx, at + 1))?;
    let on = lx.iter().position(|l| is_word(Some(l), "on"))?;
    let (table, _) = name_at(lx, skip_if_exists(lx, on + 1))?;
    let t = schema.table_mut(&table)?;
    t.indexes.retain(|i| i.name != name);
    t.indexes.push(super::Named {
        name,
        sql: stmt.trim().to_string(),
    });
    Some(table)
}

fn drop_index(schema: &mut Schema, lx: &[Lexeme]) -> Option<String> {
    let (name, _) = name_at(lx, skip_if_exists(lx, 2))?;
    let t = schema
        .tables
        .iter_mut()
        .find(|t| t.indexes.iter().any(|i| i.name == name))?;
    t.indexes.retain(|i| i.name != name);
    Some(t.name.clone())
}

/// A column definition's type (`varchar(20)`, `double precision`), lower-cased,
/// and where its constraints start.
fn column_type(lx: &[Lexeme]) -> Option<(String, usize)> {
    let mut i = 1;
    let mut ty_words: Vec<String> = Vec::new();
    while let Some(l) = lx.get(i) {
        match l {
            Lexeme::Word(w) if COLUMN_KEYWORDS.contains(&w.as_str()) => break,
            Lexeme::Word(w) => ty_words.push(w.clone()),
            Lexeme::Punct('(') => {
                let end = past_group(lx, i);
                if let Some(last) = ty_words.last_mut() {
                    last.push_str(&literal(&lx[i..end]));
                }
                i = end;
                continue;
            }
            _ => return None,
        }
        i += 1;
    }
    Some((ty_words.join(" "), i))
}

/// Reads a column's constraints from `i` into `c`; whether it is an identity
/// (`AUTOINCREMENT`, `GENERATED ... AS IDENTITY`).
fn column_constraints(c: &mut Column, lx: &[Lexeme], mut i: usize) -> Option<bool> {
    let mut identity = false;
    while i < lx.len() {
        let w = match &lx[i] {
            Lexeme::Word(w) => w.as_str(),
            _ => return None,
        };
        match w {
            "primary" => {
                c.primary_key = true;
                c.nullable = false;
                i += 2;
                while matches!(lx.get(i), Some(Lexeme::Word(w)) if w == "asc" || w == "desc") {
                    i += 1;
                }
            }
            "autoincrement" => {
                identity = true;
                i += 1;
            }
            "not" if is_word(lx.get(i + 1), "null") => {
                c.nullable = false;
                i += 2;
            }
            "null" => i += 1,
            "unique" => {
                c.unique = true;
                i += 1;
            }
            "constraint" => i += 2,
            "default" => {
                let start = i + 1;
                let mut end = start;
                while end < lx.len() {
                    match &lx[end] {
                        Lexeme::Word(w) if COLUMN_KEYWORDS.contains(&w.as_str()) => break,
                        Lexeme::Punct('(') => end = past_group(lx, end),
                        _ => end += 1,
                    }
                }
                c.default = Some(literal(&lx[start..end]));
                i = end;
            }
            "references" => {
                let (t, next) = name_at(lx, i + 1)?;
                c.references = Some(t);
                i = next;
                if matches!(lx.get(i), Some(Lexeme::Punct('('))) {
                    i = past_group(lx, i);
                }
                // ON DELETE / ON UPDATE actions, MATCH, DEFERRABLE...
                while let Some(Lexeme::Word(w)) = lx.get(i) {
                    if COLUMN_KEYWORDS.contains(&w.as_str()) && w != "not" && w != "null" {
                        break;
                    }
                    if w == "not" && !is_word(lx.get(i + 1), "deferrable") {
                        break;
                    }
                    i += 1;
                }
            }
            "generated" => {
                // GENERATED { ALWAYS | BY DEFAULT } AS IDENTITY [( ... )]; a
                // generated column (GENERATED ALWAYS AS (expr)) is not read.
                i += 1;
                while let Some(Lexeme::Word(w)) = lx.get(i) {
                    if w == "identity" {
                        identity = true;
                    }
                    if COLUMN_KEYWORDS.contains(&w.as_str()) && w != "as" {
                        break;
                    }
                    i += 1;
                }
                if !identity {
                    return None;
                }
                if matches!(lx.get(i), Some(Lexeme::Punct('('))) {
                    i = past_group(lx, i);
                }
            }
            "check" => {
                i += 1;
                if matches!(lx.get(i), Some(Lexeme::Punct('('))) {
                    i = past_group(lx, i);
                }
            }
            "collate" => i += 2,
            _ => return None,
        }
    }
    Some(identity)
}

/// `DROP CONSTRAINT name`, for the names PostgreSQL gives a column's foreign key
/// (`<table>_<column>_fkey`) and unique constraint (`<table>_<column>_key`).
fn drop_constraint(table: &mut Table, constraint: &str) -> Result<(), ()> {
    let name = table.name.clone();
    let c = table
        .columns
        .iter_mut()
        .find(|c| {
            let base = format!("{name}_{}", c.name);
            constraint == format!("{base}_fkey") || constraint == format!("{base}_key")
        })
        .ok_or(())?;
    if constraint.ends_with("_fkey") {
        c.references = None;
    } else {
        c.unique = false;
    }
    Ok(())
}

/// `CREATE VIEW name ...`: kept whole, made again around SQLite rebuilds.
fn create_view(schema: &mut Schema, stmt: &str, lx: &[Lexeme]) -> Option<String> {
    let at = lx.iter().position(|l| is_word(Some(l), "view"))?;
    let (name, _) = name_at(lx, skip_if_exists(lx, at + 1))?;
    schema.views.retain(|v| v.name != name);
    schema.views.push(super::Named {
        name,
        sql: stmt.trim().to_string(),
    });
    None
}

fn drop_view(schema: &mut Schema, lx: &[Lexeme]) -> Option<String> {
    let (name, _) = name_at(lx, skip_if_exists(lx, 2))?;
    schema.views.retain(|v| v.name != name);
    None
}

/// `CREATE TRIGGER name ... ON table`: only its name and table (the statement
/// splitter cuts a trigger's body at its inner `;`).
fn create_trigger(schema: &mut Schema, lx: &[Lexeme]) -> Option<String> {
    let at = lx.iter().position(|l| is_word(Some(l), "trigger"))?;
    let (name, _) = name_at(lx, skip_if_exists(lx, at + 1))?;
    let on = lx.iter().position(|l| is_word(Some(l), "on"))?;
    let (table, _) = name_at(lx, on + 1)?;
    let t = schema.table_mut(&table)?;
    if !t.triggers.contains(&name) {
        t.triggers.push(name);
    }
    Some(table)
}

fn drop_trigger(schema: &mut Schema, lx: &[Lexeme]) -> Option<String> {
    let (name, _) = name_at(lx, skip_if_exists(lx, 2))?;
    let t = schema
        .tables
        .iter_mut()
        .find(|t| t.triggers.contains(&name))?;
    t.triggers.retain(|x| x != &name);
    Some(t.name.clone())
}

/// `PRIMARY KEY (c)`, `UNIQUE (c)`, `FOREIGN KEY (c) REFERENCES t`, `CHECK (...)`,
/// after an optional `CONSTRAINT name`: one column's flags. False when it is not
/// one column's (several columns, `CHECK`, ...): the caller keeps it as written.
fn table_constraint(table: &mut Table, lx: &[Lexeme]) -> bool {
    let lx = if is_word(lx.first(), "constraint") {
        lx.get(2..).unwrap_or_default()
    } else {
        lx
    };
    let cols = |from: usize| -> Vec<String> {
        let Some(open) = lx[from..]
            .iter()
            .position(|l| matches!(l, Lexeme::Punct('(')))
        else {
            return Vec::new();
        };
        let end = past_group(lx, from + open);
        lx[from + open..end]
            .iter()
            .filter_map(|l| match l {
                Lexeme::Word(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    };
    let one = |v: Vec<String>| {
        if v.len() == 1 {
            v.into_iter().next()
        } else {
            None
        }
    };
    let kind = match lx.first() {
        Some(Lexeme::Word(w)) => w.as_str(),
        _ => return false,
    };
    let Some(c) = one(cols(0)) else {
        return false;
    };
    let target = match kind {
        "foreign" => {
            let Some(r) = lx.iter().position(|l| is_word(Some(l), "references")) else {
                return false;
            };
            // Only the plain form msgen writes: REFERENCES t ("id") ON DELETE CASCADE.
            let tail = literal(&lx[r..]);
            match name_at(lx, r + 1) {
                Some((t, _)) if tail.ends_with("(id)on delete cascade") => Some(t),
                _ => return false,
            }
        }
        "primary" | "unique" => None,
        _ => return false,
    };
    let Some(col) = table.columns.iter_mut().find(|x| x.name == c) else {
        return false;
    };
    match kind {
        "primary" => {
            col.primary_key = true;
            col.nullable = false;
        }
        "unique" => col.unique = true,
        _ => col.references = target,
    }
    true
}

/// The words (names and keywords) of a statement.
pub fn words_of(sql: &str) -> Vec<String> {
    lexemes(sql)
        .into_iter()
        .filter_map(|l| match l {
            Lexeme::Word(w) => Some(w),
            _ => None,
        })
        .collect()
}

/// `sql` with the names in `renamed` replaced (quoted); every other byte as written.
pub fn rename_words(sql: &str, renamed: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (range, word) in crate::sql::word_ranges(sql) {
        if let Some(new) = renamed.get(&word) {
            out.push_str(&sql[at..range.start]);
            out.push_str(&super::ddl::q(new));
            at = range.end;
        }
    }
    out.push_str(&sql[at..]);
    out
}
