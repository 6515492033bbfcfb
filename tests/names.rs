//! Every name msgen accepts compiles. Names are drawn from Rust's prelude and std,
//! SQL's reserved words (PostgreSQL's and SQLite's, and PostgreSQL's system
//! columns) and, so that the list follows the templates, every identifier the
//! generated code itself declares or imports (read from rendered examples). Each
//! name is tried as a resource, a table (`plural`), a field and a service; msgen
//! must either refuse it with a message that names it, or accept it, and then the
//! accepted names, packed into a few workspaces, must pass clippy and fmt; the
//! fields and tables are also built and run against the real PostgreSQL and SQLite
//! (their CRUD tests send every column through SQL).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{assert_ok, cargo, example, msgen, require_postgres, CARGO_LOCK};
use msgen::model::{Project, MAX_FIELDS};

/// Rust's prelude, std's modules and common types and traits, in snake case.
const RUST: &[&str] = &[
    "option",
    "some",
    "none",
    "result",
    "ok",
    "err",
    "string",
    "vec",
    "boxed",
    "copy",
    "clone",
    "debug",
    "default",
    "drop",
    "iterator",
    "into",
    "from",
    "send",
    "sync",
    "sized",
    "eq",
    "partial_eq",
    "ord",
    "hash",
    "display",
    "error",
    "errors",
    "io",
    "fmt",
    "env",
    "path",
    "time",
    "thread",
    "process",
    "net",
    "mem",
    "ptr",
    "cell",
    "rc",
    "arc",
    "mutex",
    "prelude",
    "usize",
    "isize",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "f32",
    "f64",
    "bool",
    "char",
    "str",
    "to_string",
    "to_owned",
    "as_ref",
    "deref",
    "fn_once",
    "future",
    "pin",
    "poll",
    "task",
    "marker",
    "phantom_data",
    "any",
    "ops",
    "cmp",
    "convert",
    "borrow",
    "collections",
    "hash_map",
    "btree_map",
    "duration",
    "instant",
    "system_time",
    "format",
    "println",
    "panic",
    "assert",
    "matches",
    "todo",
    "unimplemented",
    "vec_deque",
    "cow",
    "api_error",
    "serialize",
    "deserialize",
    "serializer",
    "deserializer",
    "utc",
    "date_time",
    "naive_date",
    "uuid",
    "json",
    "value",
    "map",
    "number",
    "tokio",
    "axum",
    "serde",
    "serde_json",
    "sqlx",
    "chrono",
    "tracing",
    "anyhow",
    "thiserror",
    "reqwest",
    "futures",
    "utoipa",
    "hyper",
    "tower",
    "http",
    "bytes",
    "async_nats",
    "opentelemetry",
    "jsonwebtoken",
    "argon2",
];

/// SQL's reserved words and PostgreSQL's system columns.
const SQL: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "end",
    "except",
    "fetch",
    "foreign",
    "freeze",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "window",
    "with",
    "abort",
    "action",
    "add",
    "after",
    "alter",
    "attach",
    "autoincrement",
    "before",
    "begin",
    "by",
    "cascade",
    "commit",
    "conflict",
    "database",
    "deferred",
    "delete",
    "detach",
    "drop",
    "each",
    "escape",
    "exclusive",
    "exists",
    "explain",
    "fail",
    "filter",
    "following",
    "generated",
    "glob",
    "groups",
    "ignore",
    "immediate",
    "index",
    "indexed",
    "insert",
    "instead",
    "key",
    "last",
    "match",
    "materialized",
    "no",
    "nothing",
    "nulls",
    "of",
    "others",
    "over",
    "partition",
    "plan",
    "pragma",
    "preceding",
    "query",
    "raise",
    "range",
    "recursive",
    "regexp",
    "reindex",
    "release",
    "rename",
    "replace",
    "restrict",
    "rollback",
    "row",
    "rows",
    "savepoint",
    "set",
    "temp",
    "temporary",
    "ties",
    "transaction",
    "trigger",
    "unbounded",
    "update",
    "vacuum",
    "values",
    "view",
    "virtual",
    "without",
    "rowid",
    "oid",
    "tableoid",
    "xmin",
    "xmax",
    "cmin",
    "cmax",
    "ctid",
    "count",
    "sum",
    "min",
    "max",
];

/// `FooBar` → `foo_bar`, `CONTENT_TYPE` → `content_type`.
fn snake(ident: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in ident.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Names as long as msgen allows (40), so that every line holding one is tried at
/// its widest.
const LONG: &[&str] = &[
    "a_resource_name_that_is_forty_chars_long",
    "another_name_that_is_also_forty_chars_xy",
];

/// The identifiers every rendered example declares as types or modules or imports
/// (`use`), in snake case.
fn generated_identifiers() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut names = BTreeSet::new();
    for ex in ["blogsys", "mixed", "monolith"] {
        let config = example(ex);
        assert_ok(&msgen(
            dir.path(),
            &["new", ex, "--yes", "--config", config.to_str().unwrap()],
        ));
        for (path, bytes) in common::tree(&dir.path().join(ex)) {
            if !path.ends_with(".rs") {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes).lines() {
                let code = line.split("//").next().unwrap_or("").trim();
                let tokens: Vec<&str> = code
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|t| !t.is_empty())
                    .collect();
                // The type namespace (and modules), where a resource's module and
                // types live; functions and constants cannot clash with them.
                let declares = ["mod", "struct", "enum", "trait", "type"];
                if code.starts_with("use ") || code.starts_with("pub use ") {
                    names.extend(tokens.iter().map(|t| snake(t)));
                } else if let Some(i) = tokens.iter().position(|t| declares.contains(t)) {
                    if let Some(t) = tokens.get(i + 1) {
                        names.insert(snake(t));
                    }
                }
            }
        }
    }
    names
}

/// Names msgen's rules can even spell (snake case, a letter first, at most 40).
fn spellable(n: &str) -> bool {
    n.len() <= 40
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !n.ends_with('_')
        && !n.contains("__")
}

fn all_names() -> Vec<String> {
    let mut names: BTreeSet<String> = RUST
        .iter()
        .chain(SQL)
        .chain(LONG)
        .map(|s| s.to_string())
        .collect();
    names.extend(generated_identifiers());
    names.into_iter().filter(|n| spellable(n)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Resource,
    Plural,
    Field,
    Service,
}

/// A `services.toml` with `names` in `role`, on a database of `database`.
fn config(project: &str, role: Role, names: &[String], database: &str) -> String {
    let mut t = format!("[project]\nname = \"{project}\"\ndatabase = \"{database}\"\n\n");
    let kinds = [
        "string", "text", "email", "i32", "i64", "f64", "bool", "datetime", "string?", "i64?",
    ];
    match role {
        Role::Resource => {
            t.push_str("[[services]]\nname = \"zoo\"\n");
            for n in names {
                t.push_str(&format!("  [[services.resources]]\n  name = \"{n}\"\n  fields = {{ label = \"string\", note = \"text?\", at = \"datetime?\" }}\n"));
            }
            // A service calling zoo: every resource's type and getter in its client.
            t.push_str("\n[[services]]\nname = \"zoo-user\"\ndatabase = \"none\"\ndepends_on = [\"zoo\"]\n");
        }
        Role::Plural => {
            t.push_str("[[services]]\nname = \"zoo\"\n");
            for (i, n) in names.iter().enumerate() {
                t.push_str(&format!("  [[services.resources]]\n  name = \"thing{i}\"\n  plural = \"{n}\"\n  fields = {{ label = \"string\" }}\n"));
            }
        }
        Role::Field => {
            t.push_str("[[services]]\nname = \"zoo\"\n  [[services.resources]]\n  name = \"thing\"\n  fields = { ");
            let fields: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} = \"{}\"", kinds[i % kinds.len()]))
                .collect();
            t.push_str(&fields.join(", "));
            t.push_str(" }\n");
        }
        Role::Service => {
            let kebab: Vec<String> = names.iter().map(|n| n.replace('_', "-")).collect();
            for n in &kebab {
                t.push_str(&format!(
                    "[[services]]\nname = \"{n}\"\ndatabase = \"none\"\n\n"
                ));
            }
            let deps: Vec<String> = kebab.iter().map(|n| format!("\"{n}\"")).collect();
            t.push_str(&format!(
                "[[services]]\nname = \"hub\"\ndatabase = \"none\"\ndepends_on = [{}]\n",
                deps.join(", ")
            ));
        }
    }
    t
}

fn validate(text: &str) -> Result<(), String> {
    Project::parse(text, Path::new("services.toml"))
        .map(|_| ())
        .map_err(|e| {
            e.diagnostics()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
}

/// The names of `candidates` msgen accepts in `role`; every refusal must name the
/// name and say why.
fn accepted(role: Role, candidates: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for n in candidates {
        let one = std::slice::from_ref(n);
        match validate(&config("names", role, one, "postgres")) {
            Ok(()) => out.push(n.clone()),
            Err(msg) => {
                let shown = if role == Role::Service {
                    n.replace('_', "-")
                } else {
                    n.clone()
                };
                assert!(
                    msg.contains(&shown)
                        && (msg.contains("accepted")
                            || msg.contains("reserved")
                            || msg.contains("keyword")
                            || msg.contains("clash")),
                    "{role:?} {n:?} is refused without saying why:\n{msg}"
                );
            }
        }
    }
    out
}

/// Splits `names` into as few lists as possible that msgen accepts together.
fn packs(role: Role, names: &[String]) -> Vec<Vec<String>> {
    let mut packs: Vec<Vec<String>> = Vec::new();
    for n in names {
        let fits = packs.iter_mut().find(|p| {
            let mut with = p.to_vec();
            with.push(n.clone());
            validate(&config("names", role, &with, "postgres")).is_ok()
        });
        match fits {
            Some(p) => p.push(n.clone()),
            None => packs.push(vec![n.clone()]),
        }
    }
    packs
}

/// A temporary directory; kept (and printed) when `MSGEN_KEEP` is set, to look
/// into a failure.
fn workdir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix("msgen-names-");
    if std::env::var_os("MSGEN_KEEP").is_some() {
        builder.disable_cleanup(true);
    }
    let dir = builder.tempdir().unwrap();
    eprintln!("workspaces in {}", dir.path().display());
    dir
}

fn render(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    assert_ok(&msgen(
        dir,
        &["new", name, "--yes", "--config", file.to_str().unwrap()],
    ));
    dir.join(name)
}

fn check(root: &Path, run_tests: bool) {
    let t = Instant::now();
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Both, so that one run shows every problem.
    let fmt = std::panic::catch_unwind(|| cargo(root, &["fmt", "--all", "--", "--check"]));
    cargo(root, &["clippy", "--all-targets", "--", "-D", "warnings"]);
    if let Err(e) = fmt {
        std::panic::resume_unwind(e);
    }
    if run_tests {
        common::cargo_test_ran(root, 5);
    }
    eprintln!(
        "{}: checked{} in {:.1} s",
        root.display(),
        if run_tests { " and tested" } else { "" },
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn every_name_is_refused_with_a_reason_or_accepted() {
    let names = all_names();
    assert!(names.len() > 300, "only {} names drawn", names.len());
    for role in [Role::Resource, Role::Plural, Role::Field, Role::Service] {
        let ok = accepted(role, &names);
        // Refusing everything would pass the compile tests trivially.
        assert!(
            ok.len() * 2 > names.len(),
            "{role:?}: only {} of {} accepted",
            ok.len(),
            names.len()
        );
    }
}

#[test]
fn every_accepted_resource_name_compiles() {
    let names = accepted(Role::Resource, &all_names());
    let dir = workdir();
    for (i, pack) in packs(Role::Resource, &names).iter().enumerate() {
        let name = format!("resources{i}");
        let root = render(
            dir.path(),
            &name,
            &config(&name, Role::Resource, pack, "postgres"),
        );
        check(&root, false);
    } // The same as modules of a monolith, called in process: a sample (the long
      // names and those of the in-process client's own imports), to keep it quick.
    let sample: Vec<String> = LONG
        .iter()
        .chain(&[
            "record",
            "input",
            "db",
            "api_error",
            "utc",
            "state",
            "serialize",
            "duration",
        ])
        .map(|n| n.to_string())
        .filter(|n| names.contains(n))
        .collect();
    let text = config("modules", Role::Resource, &sample, "postgres")
        .replace("name = \"zoo\"\n", "name = \"zoo\"\nmonolith = true\n")
        .replace("database = \"none\"\n", "monolith = true\n")
        + "\n[monolith]\nport = 3000\n";
    let root = render(dir.path(), "modules", &text);
    check(&root, false);
}

/// Table names tried against the databases: every identifier reaches SQL through
/// the same quoting, so PostgreSQL's reserved words (the strictest), a few of
/// SQLite's own and the longest names stand for all.
const TABLES: &[&str] = &[
    "all",
    "analyse",
    "and",
    "array",
    "case",
    "check",
    "column",
    "constraint",
    "create",
    "current_user",
    "default",
    "desc",
    "distinct",
    "end",
    "fetch",
    "for_update",
    "from_table",
    "grant",
    "group",
    "having",
    "limit",
    "offset",
    "only",
    "order",
    "primary",
    "references",
    "returning",
    "select",
    "table",
    "union_all",
    "user",
    "where_clause",
    "window",
    "with",
    "autoincrement",
    "glob",
    "pragma",
    "rowid",
    "vacuum",
];

/// One service on `database`: resources holding every accepted field name (of
/// every type in turn), each at the limit of fields a resource may have, and one
/// resource for each table name of `tables`.
fn sql_config(project: &str, database: &str, fields: &[String], tables: &[String]) -> String {
    let kinds = [
        "string", "text", "email", "i32", "i64", "f64", "bool", "datetime", "string?", "i64?",
    ];
    let mut fields = fields.to_vec();
    let mut pad = 0;
    while !fields.len().is_multiple_of(MAX_FIELDS) {
        fields.push(format!("pad{pad}"));
        pad += 1;
    }
    let mut t = format!("[project]\nname = \"{project}\"\ndatabase = \"{database}\"\n\n[[services]]\nname = \"zoo\"\n");
    for (i, chunk) in fields.chunks(MAX_FIELDS).enumerate() {
        let list: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(j, n)| format!("{n} = \"{}\"", kinds[j % kinds.len()]))
            .collect();
        t.push_str(&format!(
            "  [[services.resources]]\n  name = \"thing{i}\"\n  fields = {{ {} }}\n",
            list.join(", ")
        ));
    }
    for (i, n) in tables.iter().enumerate() {
        t.push_str(&format!("  [[services.resources]]\n  name = \"table{i}\"\n  plural = \"{n}\"\n  fields = {{ label = \"string\", note = \"text?\" }}\n"));
    }
    t
}

#[test]
fn every_accepted_field_and_table_name_compiles_and_round_trips_through_sql() {
    require_postgres();
    let all = all_names();
    let fields = accepted(Role::Field, &all);
    let mut tables: Vec<String> = TABLES.iter().chain(LONG).map(|s| s.to_string()).collect();
    tables.retain(|t| {
        validate(&config(
            "names",
            Role::Plural,
            std::slice::from_ref(t),
            "postgres",
        ))
        .is_ok()
    });
    assert!(
        tables.len() + 3 > TABLES.len() + LONG.len(),
        "tables refused: {tables:?}"
    );
    let dir = workdir();
    for database in ["postgres", "sqlite"] {
        let name = format!("sql-{database}");
        let text = sql_config(&name, database, &fields, &tables);
        if let Err(e) = validate(&text) {
            panic!("the accepted names together are refused:\n{e}");
        }
        let root = render(dir.path(), &name, &text);
        check(&root, true);
    }
}

/// Crates of the generated code's dependency graph: a service named like one gets a
/// package `<name>-service` whose library must not hide it.
const CRATE_NAMES: &[&str] = &[
    "tokio",
    "axum",
    "serde",
    "serde-json",
    "sqlx",
    "chrono",
    "tracing",
    "anyhow",
    "uuid",
    "reqwest",
    "futures",
    "utoipa",
    "hyper",
    "http",
    "bytes",
    "common",
    "gateway",
];

#[test]
fn every_accepted_service_and_module_name_compiles() {
    let names = accepted(Role::Service, &all_names());
    let dir = workdir();
    // All of them as services that `hub` calls: the names become modules, fields and
    // environment variables of hub, the gateway and compose. Every crate but hub's
    // has the same code whatever its name, apart from its package and library name:
    // those are built for the names of crates the system depends on, and checked
    // against Cargo.lock below.
    let text = config("services", Role::Service, &names, "none");
    let root = render(dir.path(), "services", &text);
    let mut packages: Vec<String> = vec!["hub-service".into(), "gateway".into(), "common".into()];
    packages.extend(
        CRATE_NAMES
            .iter()
            .chain(LONG)
            .map(|n| n.replace('_', "-"))
            .filter(|n| names.iter().any(|m| m.replace('_', "-") == *n))
            .map(|n| format!("{n}-service")),
    );
    {
        let t = Instant::now();
        let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cargo(&root, &["fmt", "--all", "--", "--check"]);
        let mut args = vec!["clippy", "--all-targets"];
        for p in &packages {
            args.extend(["-p", p.as_str()]);
        }
        args.extend(["--", "-D", "warnings"]);
        cargo(&root, &args);
        eprintln!(
            "{} services: checked in {:.1} s",
            names.len(),
            t.elapsed().as_secs_f64()
        );
    }
    // No package of the workspace shares its name with one of its dependencies.
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&lock).unwrap();
    for p in lock["package"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if p.get("source").is_some() {
            if let Some(service) = name.strip_suffix("-service") {
                assert!(
                    Project::parse(
                        &config("x", Role::Service, &[service.to_string()], "none"),
                        Path::new("services.toml")
                    )
                    .is_err(),
                    "a service `{service}` would be a package named like the dependency `{name}`"
                );
            }
        }
    }
    // The same names as modules of a monolith, calling each other in process.
    let text = config("modules", Role::Service, &names, "postgres")
        .replace("database = \"none\"\n", "monolith = true\n")
        + "\n[monolith]\nport = 3000\n";
    let root = render(dir.path(), "modules", &text);
    check(&root, false);
}

#[test]
fn event_subjects_of_every_length_are_laid_out_as_rustfmt_does() {
    // Subjects name constants, payload types, handlers and durable consumers:
    // lines whose width follows the subject's. From the shortest (3) to the
    // longest msgen accepts (64), with the longest service names, alone and among
    // other subjects.
    let dir = workdir();
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    for len in [3, 8, 12, 20, 30, 40, 48, 56, 64] {
        for others in ["", "\"p.q\", \"thing.created\""] {
            let subject = if len == 3 {
                "o.a".to_string()
            } else {
                format!("o.{}", "a".repeat(len - 2))
            };
            let name = format!("ev{len}{}", others.len());
            let text = format!(
                "[project]\nname = \"{name}\"\n\n[[services]]\nname = \"{a}\"\npublishes = [\"{subject}\"]\n  [[services.resources]]\n  name = \"thing\"\n  fields = {{ x = \"string\" }}\n\n[[services]]\nname = \"{b}\"\nconsumes = [\"{subject}\"]\npublishes = [{others}]\n  [[services.resources]]\n  name = \"other\"\n  fields = {{ y = \"string\" }}\n"
            );
            let root = render(dir.path(), &name, &text);
            // fmt needs no build: every length is checked, quickly.
            cargo(&root, &["fmt", "--all", "--", "--check"]);
        }
    }
}

#[test]
fn the_smallest_projects_are_laid_out_as_rustfmt_does() {
    // One service, one route, one upstream: the lists rustfmt writes on one line
    // when they hold one element.
    let dir = workdir();
    for (name, services) in [
        ("lone", "[[services]]\nname = \"echo\"\ndatabase = \"none\"\n"),
        (
            "single",
            "[[services]]\nname = \"notes\"\n  [[services.resources]]\n  name = \"note\"\n  fields = { text = \"string\" }\n",
        ),
        (
            "onemodule",
            "[monolith]\nport = 3000\n\n[[services]]\nname = \"notes\"\nmonolith = true\n  [[services.resources]]\n  name = \"note\"\n  fields = { text = \"string\" }\n",
        ),
    ] {
        let text = format!("[project]\nname = \"{name}\"\n\n{services}");
        let root = render(dir.path(), name, &text);
        cargo(&root, &["fmt", "--all", "--", "--check"]);
    }
}
