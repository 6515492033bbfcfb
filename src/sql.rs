//! Just enough SQL for `msgen split --from`: split a migration into statements,
//! find the tables a statement names (and the ones it writes), and drop foreign
//! keys that would point across the cut. A small tokenizer handles comments
//! (`--`, `/* */`), strings (`'..'`, `E'..'`, `$tag$..$tag$`) and quoted names, so
//! that a `;` or a keyword inside them is never taken for SQL.

use std::collections::BTreeSet;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A keyword or name, lower-cased (quoted names keep their case, unquoted).
    Word(String),
    Str,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Tok {
    kind: Kind,
    range: Range<usize>,
}

fn tokens(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'\'' || ((c == b'e' || c == b'E') && b.get(i + 1) == Some(&b'\'')) {
            let escapes = c != b'\'';
            i += if escapes { 2 } else { 1 };
            while i < b.len() {
                if escapes && b[i] == b'\\' {
                    i += 2;
                } else if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(Tok {
                kind: Kind::Str,
                range: start..i.min(b.len()),
            });
        } else if c == b'$' && dollar_tag(&sql[i..]).is_some() {
            let tag = dollar_tag(&sql[i..]).expect("checked");
            i += tag.len();
            i = sql[i..]
                .find(tag)
                .map_or(b.len(), |end| i + end + tag.len());
            out.push(Tok {
                kind: Kind::Str,
                range: start..i,
            });
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            let name = sql[start + 1..i.min(b.len())].to_string();
            i = (i + 1).min(b.len());
            out.push(Tok {
                kind: Kind::Word(name),
                range: start..i,
            });
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Tok {
                kind: Kind::Word(sql[start..i].to_ascii_lowercase()),
                range: start..i,
            });
        } else {
            // Multi-byte characters outside words are skipped whole.
            let len = sql[i..].chars().next().map_or(1, char::len_utf8);
            if len == 1 {
                out.push(Tok {
                    kind: Kind::Punct(c as char),
                    range: start..i + 1,
                });
            }
            i += len;
        }
    }
    out
}

/// `$$` or `$tag$` at the start of `s`.
fn dollar_tag(s: &str) -> Option<&str> {
    let rest = &s[1..];
    let end = rest.find('$')?;
    let tag = &rest[..end];
    (tag.is_empty() || tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| &s[..end + 2])
}

fn word(t: &Tok) -> Option<&str> {
    match &t.kind {
        Kind::Word(w) => Some(w),
        _ => None,
    }
}

/// Words and punctuation of a statement (strings dropped), `schema.table` joined.
fn words(sql: &str) -> Vec<String> {
    let toks = tokens(sql);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].kind {
            Kind::Word(w) => {
                // `schema.table` → `table`: a table's own name decides its owner.
                if matches!(toks.get(i + 1).map(|t| &t.kind), Some(Kind::Punct('.'))) {
                    if let Some(Kind::Word(next)) = toks.get(i + 2).map(|t| &t.kind) {
                        out.push(next.clone());
                        i += 3;
                        continue;
                    }
                }
                out.push(w.clone());
            }
            Kind::Str => out.push("'".into()),
            Kind::Punct(c) => out.push(c.to_string()),
        }
        i += 1;
    }
    out
}

/// A token of a statement as the schema reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lexeme {
    /// A keyword or name: lower-cased, unless it was quoted.
    Word(String),
    /// A string literal (or dollar-quoted body) exactly as written, quotes included.
    Str(String),
    Punct(char),
}

/// Where each of [`lexemes`]' tokens is written in `sql`.
pub fn lexeme_ranges(sql: &str) -> Vec<Range<usize>> {
    tokens(sql).into_iter().map(|t| t.range).collect()
}

/// The tokens of `sql`, comments dropped.
pub fn lexemes(sql: &str) -> Vec<Lexeme> {
    tokens(sql)
        .into_iter()
        .map(|t| match t.kind {
            Kind::Word(w) => Lexeme::Word(w),
            Kind::Str => Lexeme::Str(sql[t.range].to_string()),
            Kind::Punct(c) => Lexeme::Punct(c),
        })
        .collect()
}

/// The words of `sql` (lower-cased unless quoted) with where each is written.
pub fn word_ranges(sql: &str) -> Vec<(Range<usize>, String)> {
    tokens(sql)
        .into_iter()
        .filter_map(|t| match t.kind {
            Kind::Word(w) => Some((t.range, w)),
            _ => None,
        })
        .collect()
}

/// The statements of a migration, split on `;` outside strings and comments, and
/// outside the `BEGIN .. END` body of a `CREATE TRIGGER` (SQLite) or of a
/// `CREATE FUNCTION|PROCEDURE .. BEGIN ATOMIC` (PostgreSQL), whose own statements
/// end with `;` too (a `CASE .. END` inside counts as nesting).
pub fn statements(sql: &str) -> Vec<String> {
    let toks = tokens(sql);
    // A keyword is a bare word: `"end"` is a column's name.
    let keyword = |t: &Tok| -> Option<String> {
        let w = word(t)?;
        (!sql[t.range.clone()].starts_with('"')).then(|| w.to_string())
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut words: Vec<String> = Vec::new();
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        if t.kind == Kind::Punct(';') {
            if depth > 0 {
                continue;
            }
            if !words.is_empty() {
                out.push(sql[start..t.range.start].trim().to_string());
            }
            start = t.range.end;
            words.clear();
            continue;
        }
        let w = keyword(t).unwrap_or_default();
        let created = |kinds: &[&str]| {
            words.first().is_some_and(|f| f == "create")
                && words.iter().take(6).any(|w| kinds.contains(&w.as_str()))
        };
        // SQLite's trigger body, or PostgreSQL's `BEGIN ATOMIC` (a parameter may
        // be called `begin`; only these open a body).
        let opens = w == "begin"
            && (created(&["trigger"])
                || (created(&["function", "procedure"])
                    && toks.get(i + 1).and_then(keyword).as_deref() == Some("atomic")));
        if opens || (depth > 0 && w == "case") {
            depth += 1;
        } else if depth > 0 && w == "end" {
            depth -= 1;
        }
        words.push(if t.kind == Kind::Str { "'".into() } else { w });
    }
    if !words.is_empty() {
        out.push(sql[start..].trim().to_string());
    }
    out
}

const NOT_TABLES: &[&str] = &[
    "select", "where", "set", "values", "only", "lateral", "if", "not", "exists", "(", "'",
    "cascade", "restrict", "no", "action", "default", "null", "on",
];

/// The table named after the keyword at `i`, past `IF NOT EXISTS`, `ONLY`, `TABLE`.
fn table_after(words: &[String], i: usize) -> Option<String> {
    let t = words[i + 1..]
        .iter()
        .find(|n| !matches!(n.as_str(), "if" | "not" | "exists" | "only" | "table"))?;
    let is_name = t.starts_with(|c: char| c.is_alphabetic() || c == '_');
    (is_name && !NOT_TABLES.contains(&t.as_str())).then(|| t.clone())
}

/// Tables a statement names after FROM, JOIN, INTO, UPDATE, TABLE, REFERENCES (and
/// ON, in CREATE INDEX, TRIGGER, POLICY or RULE, and in GRANT and REVOKE).
pub fn tables_in(sql: &str) -> Vec<String> {
    let words = words(sql);
    let created = |kinds: &[&str]| {
        words.first().is_some_and(|w| w == "create")
            && words.iter().take(6).any(|w| kinds.contains(&w.as_str()))
    };
    // GRANT .. ON t TO role, REVOKE .. ON t FROM role: roles are no tables.
    let grant = words.first().is_some_and(|w| w == "grant" || w == "revoke");
    let index = created(&["index", "trigger", "policy", "rule"]) || grant;
    let mut out: Vec<String> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let after_on = i > 0 && words[i - 1] == "on";
        let keyword = match w.as_str() {
            "from" => !grant,
            "join" | "into" | "table" | "references" => true,
            // `ON UPDATE CASCADE` is a foreign key's action, not a statement.
            "update" => !after_on,
            "on" => index,
            _ => false,
        };
        if !keyword {
            continue;
        }
        if let Some(t) = table_after(&words, i) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// Names written with the `public.` schema (`public.posts` → `posts`): a search
/// path does not follow such a name when its table moves to another schema.
pub fn public_names(sql: &str) -> Vec<String> {
    let toks = tokens(sql);
    let mut out: Vec<String> = Vec::new();
    for w in toks.windows(3) {
        if let (Kind::Word(schema), Kind::Punct('.'), Kind::Word(name)) =
            (&w[0].kind, &w[1].kind, &w[2].kind)
        {
            if schema == "public" && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

/// Tables a statement writes: INSERT INTO, UPDATE, DELETE FROM, TRUNCATE, DDL.
pub fn written_tables(sql: &str) -> Vec<String> {
    let words = words(sql);
    let ddl = words
        .first()
        .is_some_and(|w| matches!(w.as_str(), "create" | "alter" | "drop"));
    let mut out: Vec<String> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let prev = if i > 0 { words[i - 1].as_str() } else { "" };
        let write = match w.as_str() {
            "into" => true,
            "update" => prev != "on" && prev != "for",
            "from" => prev == "delete",
            "truncate" => true,
            "table" => ddl,
            _ => false,
        };
        if !write {
            continue;
        }
        if let Some(t) = table_after(&words, i) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The table and schema of `ALTER TABLE [IF EXISTS] t SET SCHEMA s` (what
/// `split --from` writes to move a service's tables), else `None`.
pub fn moved_table(stmt: &str) -> Option<(String, String)> {
    let words = words(stmt);
    let [alter, table, rest @ ..] = words.as_slice() else {
        return None;
    };
    if alter != "alter" || table != "table" {
        return None;
    }
    let rest: Vec<&String> = rest
        .iter()
        .skip_while(|w| matches!(w.as_str(), "if" | "exists" | "only"))
        .collect();
    match rest.as_slice() {
        [name, set, schema_kw, schema]
            if set.as_str() == "set" && schema_kw.as_str() == "schema" =>
        {
            Some(((*name).clone(), (*schema).clone()))
        }
        _ => None,
    }
}

/// A database object a migration statement defines or changes, and what it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// `CREATE [OR REPLACE] FUNCTION|PROCEDURE name`: the tables its body names.
    Function { name: String, tables: Vec<String> },
    /// `CREATE [OR REPLACE] [CONSTRAINT] TRIGGER .. ON table .. EXECUTE FUNCTION f()`.
    Trigger { table: String, function: String },
    /// Anything else: the tables it names (a table, an index, a view, a grant...).
    Other { tables: Vec<String> },
}

/// What a migration statement is, for deciding which context it belongs to:
/// function bodies (dollar-quoted or not) are read for the tables they use, and a
/// trigger ties its table to its function.
pub fn object(stmt: &str) -> Object {
    // Schema-qualified names joined to their last part, as tables are.
    let words = words(stmt);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let after_create = match words.as_slice() {
        ["create", "or", "replace", rest @ ..] => rest,
        ["create", rest @ ..] => rest,
        _ => &[][..],
    };
    match after_create {
        ["function" | "procedure", name, ..] => {
            let mut tables: Vec<String> = Vec::new();
            for t in tokens(stmt).iter().filter(|t| t.kind == Kind::Str) {
                for table in tables_in(string_body(&stmt[t.range.clone()])) {
                    if !tables.contains(&table) {
                        tables.push(table);
                    }
                }
            }
            Object::Function {
                name: name.to_string(),
                tables,
            }
        }
        ["trigger", ..] | ["constraint", "trigger", ..] => {
            let owned: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let table = words
                .iter()
                .position(|w| *w == "on")
                .and_then(|i| table_after(&owned, i));
            let function = words
                .iter()
                .position(|w| *w == "execute")
                .and_then(|i| words.get(i + 2))
                .map(|f| f.to_string());
            match (table, function) {
                (Some(table), Some(function)) => Object::Trigger { table, function },
                _ => Object::Other {
                    tables: tables_in(stmt),
                },
            }
        }
        _ => Object::Other {
            tables: tables_in(stmt),
        },
    }
}

/// The text inside a string literal: `$tag$..$tag$`, `'..'` or `E'..'`.
fn string_body(lit: &str) -> &str {
    if let Some(tag) = lit.strip_prefix('$').and_then(|_| dollar_tag(lit)) {
        let inner = &lit[tag.len()..];
        return inner.strip_suffix(tag).unwrap_or(inner);
    }
    let lit = lit.strip_prefix(['e', 'E']).unwrap_or(lit);
    lit.trim_matches('\'')
}

/// The first line of a statement that is code (not blank, not a comment), for
/// messages that point at it.
pub fn first_line(stmt: &str) -> &str {
    stmt.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--") && !l.starts_with("/*"))
        .unwrap_or_default()
}

/// Every table the migrations create (`CREATE TABLE`).
pub fn created_tables<'a>(migrations: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    migrations
        .into_iter()
        .flat_map(|sql| statements(sql))
        .filter_map(|s| created_table(&s))
        .collect()
}

/// The table a `CREATE TABLE` statement creates.
pub fn created_table(stmt: &str) -> Option<String> {
    let words = words(stmt);
    if words.first().map(String::as_str) != Some("create") {
        return None;
    }
    let t = words.iter().take(4).position(|w| w == "table")?;
    table_after(&words, t)
}

/// `sql` itself (at offset 0) and the bodies of its dollar-quoted strings: every
/// piece of SQL a migration holds, each with its byte offset in `sql`.
pub fn with_bodies(sql: &str) -> Vec<(usize, &str)> {
    let mut out = vec![(0, sql)];
    out.extend(dollar_bodies(sql));
    out
}

/// The bodies of the dollar-quoted strings of `sql` (`$$ .. $$`, `$fn$ .. $fn$`:
/// a function's or a `DO` block's SQL), with the byte offset of each in `sql`,
/// those nested inside them included.
pub fn dollar_bodies(sql: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for t in tokens(sql) {
        let text = &sql[t.range.clone()];
        if t.kind != Kind::Str || !text.starts_with('$') {
            continue;
        }
        let Some(tag) = dollar_tag(text) else {
            continue;
        };
        let end = if text.len() >= 2 * tag.len() && text.ends_with(tag) {
            text.len() - tag.len()
        } else {
            text.len()
        };
        let at = t.range.start + tag.len();
        let body = &sql[at..t.range.start + end];
        out.push((at, body));
        out.extend(dollar_bodies(body).into_iter().map(|(i, b)| (at + i, b)));
    }
    out
}

/// Every `REFERENCES <table>` in `sql` (a statement or a whole file): the byte
/// offset of the keyword and the table, its schema dropped. Comments and strings
/// are never taken for one.
pub fn references(sql: &str) -> Vec<(usize, String)> {
    let toks = tokens(sql);
    reference_targets(&toks)
        .into_iter()
        .map(|(i, table)| (toks[i].range.start, table))
        .collect()
}

/// The `REFERENCES` keywords of `toks` (by index) and the table each names, its
/// `schema.` skipped.
fn reference_targets(toks: &[Tok]) -> Vec<(usize, String)> {
    toks.iter()
        .enumerate()
        .filter(|(_, t)| word(t) == Some("references"))
        .filter_map(|(i, _)| {
            let mut j = i + 1;
            if matches!(toks.get(j + 1).map(|t| &t.kind), Some(Kind::Punct('.'))) {
                j += 2;
            }
            toks.get(j)
                .and_then(word)
                .map(|table| (i, table.to_string()))
        })
        .collect()
}

/// Foreign-key actions and options that follow `REFERENCES t (cols)`.
fn fk_tail_len(toks: &[Tok]) -> usize {
    let w = |i: usize| toks.get(i).and_then(word);
    let mut i = 0;
    loop {
        match (w(i), w(i + 1)) {
            (Some("on"), Some("delete" | "update")) => {
                i += 2;
                match (w(i), w(i + 1)) {
                    (Some("no"), Some("action")) | (Some("set"), Some("null" | "default")) => {
                        i += 2
                    }
                    (Some("cascade" | "restrict"), _) => i += 1,
                    _ => return i,
                }
            }
            (Some("match"), Some(_)) => i += 2,
            (Some("not"), Some("deferrable")) => i += 2,
            (Some("deferrable"), _) => i += 1,
            (Some("initially"), Some(_)) => i += 2,
            _ => return i,
        }
    }
}

/// Drops the foreign keys of a statement that point at tables outside `keep`:
/// `REFERENCES t (..) [ON DELETE ..]` in a column, `[CONSTRAINT c] FOREIGN KEY (..)
/// REFERENCES t (..)` in a table, and a whole `ALTER TABLE .. ADD .. FOREIGN KEY`
/// (returned as an empty statement). Returns the statement and the tables.
pub fn strip_foreign_keys(stmt: &str, keep: &BTreeSet<String>) -> (String, Vec<String>) {
    let toks = tokens(stmt);
    let refs: Vec<(usize, String)> = reference_targets(&toks)
        .into_iter()
        .filter(|(_, t)| !keep.contains(t))
        .collect();
    if refs.is_empty() {
        return (stmt.to_string(), Vec::new());
    }
    let dropped: Vec<String> = refs.iter().map(|(_, t)| t.clone()).collect();
    if toks.first().and_then(word) == Some("alter") {
        return (String::new(), dropped);
    }

    // The table's elements: the top-level `(...)` split at its commas.
    let Some(open) = toks.iter().position(|t| t.kind == Kind::Punct('(')) else {
        return (String::new(), dropped);
    };
    let mut depth = 0;
    let mut elements: Vec<Range<usize>> = Vec::new();
    let mut first = open + 1;
    let mut close = toks.len();
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Punct('(') => depth += 1,
            Kind::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    elements.push(first..i);
                    close = i;
                    break;
                }
            }
            Kind::Punct(',') if depth == 1 => {
                elements.push(first..i);
                first = i + 1;
            }
            _ => {}
        }
    }
    // Byte ranges to remove.
    let mut cuts: Vec<Range<usize>> = Vec::new();
    for (e, el) in elements.iter().enumerate() {
        let Some(&(r, _)) = refs.iter().find(|(r, _)| el.contains(r)) else {
            continue;
        };
        let head = toks.get(el.start).and_then(word);
        if matches!(head, Some("constraint" | "foreign")) {
            // A table constraint goes whole, with the comma before it (or after it,
            // when it comes first).
            let range = if e > 0 {
                toks[el.start - 1].range.start..toks[el.end - 1].range.end
            } else if el.end < close {
                toks[el.start].range.start..toks[el.end].range.end
            } else {
                toks[el.start].range.start..toks[el.end - 1].range.end
            };
            cuts.push(range);
            continue;
        }
        // A column constraint: [CONSTRAINT c] REFERENCES t [(cols)] [actions].
        let mut start = r;
        if r >= 2 && toks.get(r - 2).and_then(word) == Some("constraint") && r - 2 >= el.start {
            start = r - 2;
        }
        let mut end = r + 2;
        if matches!(toks.get(r + 2).map(|t| &t.kind), Some(Kind::Punct('.'))) {
            end += 2;
        }
        if toks.get(end).map(|t| &t.kind) == Some(&Kind::Punct('(')) {
            while end < el.end && toks[end].kind != Kind::Punct(')') {
                end += 1;
            }
            end += 1;
        }
        end += fk_tail_len(&toks[end.min(el.end)..el.end]);
        let from = stmt[..toks[start].range.start].trim_end().len();
        cuts.push(from..toks[end.min(el.end) - 1].range.end);
    }
    let mut out = String::new();
    let mut at = 0;
    cuts.sort_by_key(|r| r.start);
    for c in cuts {
        if c.start < at {
            continue;
        }
        out.push_str(&stmt[at..c.start]);
        at = c.end;
    }
    out.push_str(&stmt[at..]);
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_and_atomic_bodies_are_one_statement() {
        let sqlite = "CREATE TABLE a (id INTEGER);\nCREATE TRIGGER a_log AFTER INSERT ON a BEGIN\n  INSERT INTO log VALUES (CASE WHEN new.id > 0 THEN 'p' ELSE 'n' END);\n  UPDATE b SET n = n + 1;\nEND;\nCREATE INDEX a_id ON a (id);";
        let got = statements(sqlite);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got[1].starts_with("CREATE TRIGGER") && got[1].ends_with("END"),
            "{got:#?}"
        );
        let atomic = "CREATE FUNCTION two() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nSELECT two();";
        assert_eq!(statements(atomic).len(), 2);
        // A quoted column named `end`, a parameter named `begin`: not a body.
        let quoted = "CREATE TRIGGER t AFTER INSERT ON spans BEGIN UPDATE spans SET \"end\" = NEW.\"end\"; INSERT INTO log VALUES (1); END;\nSELECT 1;";
        assert_eq!(statements(quoted).len(), 2, "{:#?}", statements(quoted));
        let param = "CREATE FUNCTION in_period(begin date, finish date) RETURNS bool AS $$ SELECT true $$ LANGUAGE sql;\nCREATE TABLE x (id int);";
        assert_eq!(statements(param).len(), 2);
        // A transaction in a migration is statements of its own.
        assert_eq!(
            statements("BEGIN; CREATE TABLE x (id int); COMMIT;").len(),
            3
        );
    }

    #[test]
    fn functions_and_triggers_say_what_they_touch() {
        let f = "CREATE OR REPLACE FUNCTION public.log_entry() RETURNS trigger AS $body$\nBEGIN\n  INSERT INTO audit_log (what) VALUES ('x; y');\n  RETURN NEW;\nEND\n$body$ LANGUAGE plpgsql";
        assert_eq!(
            object(f),
            Object::Function {
                name: "log_entry".into(),
                tables: vec!["audit_log".into()]
            }
        );
        let quoted =
            "CREATE FUNCTION touch() RETURNS void AS 'UPDATE posts SET n = n' LANGUAGE sql";
        assert_eq!(
            object(quoted),
            Object::Function {
                name: "touch".into(),
                tables: vec!["posts".into()]
            }
        );
        let t = "CREATE TRIGGER entries_audit AFTER INSERT ON entries FOR EACH ROW EXECUTE FUNCTION log_entry()";
        assert_eq!(
            object(t),
            Object::Trigger {
                table: "entries".into(),
                function: "log_entry".into()
            }
        );
        assert_eq!(
            object("CREATE INDEX entries_account ON entries (account_id)"),
            Object::Other {
                tables: vec!["entries".into()]
            }
        );
        assert_eq!(
            object("GRANT SELECT ON TABLE accounts TO reader"),
            Object::Other {
                tables: vec!["accounts".into()]
            }
        );
    }

    #[test]
    fn a_move_to_a_schema_names_table_and_schema() {
        assert_eq!(
            moved_table("ALTER TABLE IF EXISTS \"notes\" SET SCHEMA \"notes_svc\""),
            Some(("notes".into(), "notes_svc".into()))
        );
        assert_eq!(
            moved_table("alter table public.Things set schema shelf"),
            Some(("things".into(), "shelf".into()))
        );
        assert_eq!(
            moved_table("ALTER TABLE notes ADD COLUMN schema text"),
            None
        );
        assert_eq!(moved_table("ALTER TABLE notes SET SCHEMA"), None);
    }

    fn keep(t: &[&str]) -> BTreeSet<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn statements_ignore_semicolons_in_strings_comments_and_bodies() {
        let sql = "/* The blog; its posts */\nCREATE TABLE posts (id INT, note TEXT DEFAULT 'a;b');\n-- done; really\nCREATE FUNCTION f() RETURNS trigger AS $$ BEGIN UPDATE posts SET id = 1; RETURN NEW; END $$ LANGUAGE plpgsql;\nINSERT INTO posts VALUES (1, E'it\\'s; here');";
        let st = statements(sql);
        assert_eq!(st.len(), 3, "{st:#?}");
        assert!(st[0].starts_with("/* The blog; its posts */\nCREATE TABLE posts"));
        assert!(st[1].ends_with("LANGUAGE plpgsql"), "{}", st[1]);
        assert_eq!(created_table(&st[0]).as_deref(), Some("posts"));
    }

    #[test]
    fn tables_and_writes() {
        assert_eq!(
            tables_in("SELECT u.name, count(p.id) FROM users u LEFT JOIN public.posts p ON p.author_id = u.id"),
            vec!["users", "posts"]
        );
        assert_eq!(
            tables_in("CREATE TABLE posts (parent_id INT REFERENCES posts (id) ON UPDATE CASCADE ON DELETE SET NULL)"),
            vec!["posts"]
        );
        assert_eq!(
            tables_in("CREATE INDEX posts_author ON posts (author_id)"),
            vec!["posts"]
        );
        assert_eq!(
            written_tables("INSERT INTO orders (product_id) SELECT id FROM products"),
            vec!["orders"]
        );
        assert_eq!(
            written_tables("DELETE FROM posts WHERE id = 1"),
            vec!["posts"]
        );
        assert!(written_tables("SELECT * FROM posts").is_empty());
    }

    #[test]
    fn names_pinned_to_the_public_schema() {
        assert_eq!(
            public_names(
                "SELECT p.id FROM public.posts p JOIN \"public\".\"Tags\" t ON true -- public.no"
            ),
            ["posts", "Tags"]
        );
        assert!(public_names("SELECT 'public.posts' FROM posts").is_empty());
    }

    #[test]
    fn column_foreign_keys_go_with_their_actions_only() {
        let (s, d) = strip_foreign_keys(
            "CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, title TEXT DEFAULT 'İİİ', preferences JSONB, author_id BIGINT REFERENCES users (id) ON DELETE CASCADE NOT NULL, parent_id BIGINT REFERENCES posts (id))",
            &keep(&["posts"]),
        );
        assert_eq!(d, vec!["users"]);
        assert_eq!(
            s,
            "CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, title TEXT DEFAULT 'İİİ', preferences JSONB, author_id BIGINT NOT NULL, parent_id BIGINT REFERENCES posts (id))"
        );
    }

    #[test]
    fn table_constraints_go_whole() {
        let (s, d) = strip_foreign_keys(
            "CREATE TABLE orders (id INT, product_id INT, org_id INT, CONSTRAINT fk FOREIGN KEY (product_id, org_id) REFERENCES products (id, org_id))",
            &keep(&["orders"]),
        );
        assert_eq!(d, vec!["products"]);
        assert_eq!(
            s,
            "CREATE TABLE orders (id INT, product_id INT, org_id INT)"
        );
        let (s, _) = strip_foreign_keys(
            "CREATE TABLE orders (FOREIGN KEY (product_id) REFERENCES products (id), id INT)",
            &keep(&["orders"]),
        );
        assert_eq!(s, "CREATE TABLE orders ( id INT)");
        let (s, d) = strip_foreign_keys(
            "ALTER TABLE posts ADD CONSTRAINT posts_author_fk FOREIGN KEY (author_id) REFERENCES users (id)",
            &keep(&["posts"]),
        );
        assert_eq!((s.as_str(), d), ("", vec!["users".to_string()]));
    }

    #[test]
    fn references_are_found_where_sql_has_them() {
        let sql = "-- REFERENCES ghosts (id)\nCREATE TABLE a (\n    b_id BIGINT REFERENCES \"b\" (id),\n    note TEXT DEFAULT 'references c',\n    d_id BIGINT REFERENCES public.d\n);\n";
        let got: Vec<(usize, String)> = references(sql)
            .into_iter()
            .map(|(at, t)| (sql[..at].matches('\n').count() + 1, t))
            .collect();
        assert_eq!(got, [(3, "b".to_string()), (5, "d".to_string())]);
    }

    /// SQL-ish text: keywords, names, quotes of every kind, comment openers and
    /// closers, dollar tags, `;`, multi-byte characters, cut anywhere.
    fn sqlish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("CREATE TABLE ".to_string()),
            Just("REFERENCES ".to_string()),
            Just("posts".to_string()),
            Just("\"Posts\"".to_string()),
            Just("'".to_string()),
            Just("E'\\'".to_string()),
            Just("E'\\".to_string()),
            Just("$$".to_string()),
            Just("$f$".to_string()),
            Just("--".to_string()),
            Just("/*".to_string()),
            Just("*/".to_string()),
            Just(";".to_string()),
            Just("\n".to_string()),
            Just("BEGIN ".to_string()),
            Just("END".to_string()),
            Just("é€".to_string()),
            "[ -~]{0,6}",
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// The tokenizer reads any text, SQL or not (a string literal of Rust code,
        /// a migration with psql's own commands), where a strict SQL tokenizer
        /// stops at the first thing it does not know: every token lies on
        /// character boundaries, in order, and every reader of it answers.
        #[test]
        fn any_text_is_read_without_a_panic(sql in sqlish()) {
            let ranges = lexeme_ranges(&sql);
            let mut at = 0;
            for r in &ranges {
                proptest::prop_assert!(r.start >= at && r.end > r.start && r.end <= sql.len(), "{r:?} in {sql:?}");
                proptest::prop_assert!(sql.is_char_boundary(r.start) && sql.is_char_boundary(r.end));
                at = r.end;
            }
            for stmt in statements(&sql) {
                proptest::prop_assert!(sql.contains(stmt.as_str()));
                let _ = (tables_in(&stmt), written_tables(&stmt), moved_table(&stmt), object(&stmt));
                let (kept, _) = strip_foreign_keys(&stmt, &BTreeSet::new());
                proptest::prop_assert!(kept.len() <= stmt.len());
            }
            for (at, _) in references(&sql) {
                proptest::prop_assert!(sql[at..].to_ascii_lowercase().starts_with("references"));
            }
        }
    }

    #[test]
    fn tables_in_triggers_policies_grants_and_dollar_quoted_bodies() {
        assert_eq!(
            tables_in("CREATE TRIGGER t AFTER INSERT ON posts FOR EACH ROW EXECUTE FUNCTION f()"),
            ["posts"]
        );
        assert_eq!(
            tables_in("CREATE TRIGGER t BEFORE UPDATE ON posts BEGIN SELECT 1; END"),
            ["posts"]
        );
        assert_eq!(tables_in("GRANT SELECT ON posts TO reader"), ["posts"]);
        assert_eq!(
            tables_in("REVOKE ALL ON TABLE posts FROM reader"),
            ["posts"]
        );
        assert_eq!(
            tables_in("CREATE POLICY mine ON posts USING (true)"),
            ["posts"]
        );
        assert_eq!(
            tables_in("ALTER TABLE a ADD FOREIGN KEY (b) REFERENCES b (id) ON UPDATE CASCADE"),
            ["a", "b"]
        );
        let sql = "DO $$ BEGIN\n  ALTER TABLE notes ADD CONSTRAINT fk FOREIGN KEY (post_id) REFERENCES posts (id);\nEXCEPTION WHEN duplicate_object THEN NULL; END $$;\nCREATE FUNCTION f() RETURNS void AS $fn$ UPDATE posts SET n = 1 $fn$ LANGUAGE sql;";
        let bodies = dollar_bodies(sql);
        assert_eq!(bodies.len(), 2);
        assert!(bodies.iter().all(|(at, b)| &sql[*at..*at + b.len()] == *b));
        let (at, body) = bodies[0];
        let refs = references(body);
        assert_eq!(refs.len(), 1);
        assert_eq!(sql[..at + refs[0].0].matches('\n').count() + 1, 2);
        assert_eq!(tables_in(bodies[1].1), ["posts"]);
        assert!(dollar_bodies("SELECT $1, 'x'").is_empty());
    }
}
