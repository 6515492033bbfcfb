//! Every mistake of SPEC §2 is caught before anything is written, with file, line,
//! column, key, value and what is accepted, and a non-zero exit status.

mod common;

use common::{assert_ok, msgen, stderr};
use std::path::Path;

const GOOD: &str = r#"[project]
name = "shop"

[[services]]
name = "user"
port = 3002

  [[services.resources]]
  name = "user"
  fields = { email = "email" }
"#;

/// Writes `text` as services.toml in a fresh directory and runs `msgen validate`.
fn validate(text: &[u8]) -> (i32, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.toml"), text).unwrap();
    let out = msgen(dir.path(), &["validate"]);
    (out.status.code().unwrap_or(-1), stderr(&out), dir)
}

#[track_caller]
fn fails_with(text: &str, expected: &[&str]) {
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 1, "expected a failed check, stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    for e in expected {
        assert!(err.contains(e), "missing {e:?} in:\n{err}");
    }
}

#[test]
fn a_good_file_validates() {
    let (code, err, _dir) = validate(GOOD.as_bytes());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn toml_syntax_errors_have_a_location() {
    fails_with(
        "[project]\nname = \"shop\"\n[[services]\n",
        &["services.toml:3:", "error:"],
    );
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    let text = GOOD.replace("port = 3002", "port = 3002\ndatabse = \"postgres\"");
    fails_with(
        &text,
        &[
            "services.toml:7:1",
            "`services[0].databse`",
            "did you mean `database`?",
        ],
    );
}

#[test]
fn duplicate_service_names() {
    let text = format!("{GOOD}\n[[services]]\nname = \"user\"\nport = 3009\n");
    fails_with(
        &text,
        &[
            "services.toml:13:8",
            "duplicate service name \"user\"",
            "line 5",
        ],
    );
}

#[test]
fn colliding_ports_name_the_owner_and_the_next_free_port() {
    let text = format!("{GOOD}\n[[services]]\nname = \"blog\"\nport = 3002\n");
    fails_with(
        &text,
        &[
            "services.toml:14:8",
            "services[1].port",
            "already used by service `user`",
            "next free port is 3001",
        ],
    );
    let text = GOOD.replace("port = 3002", "port = 8080");
    fails_with(&text, &["services[0].port", "already used by the gateway"]);
}

#[test]
fn ports_out_of_range() {
    for bad in ["0", "80", "70000", "-1"] {
        let text = GOOD.replace("port = 3002", &format!("port = {bad}"));
        fails_with(
            &text,
            &[
                "services.toml:6:8",
                "services[0].port",
                "out of range",
                "1024..=65535",
            ],
        );
    }
}

#[test]
fn names_that_are_not_identifiers_or_escape_the_project() {
    for bad in [
        "../evil", "a/b", "User", "9lives", "a--b", "x y", "", "gateway", "self",
    ] {
        let text = GOOD.replace("name = \"user\"\nport", &format!("name = {bad:?}\nport"));
        fails_with(&text, &["services.toml:5:8", "services[0].name"]);
    }
    fails_with(
        &GOOD.replace("name = \"shop\"", "name = \"../../etc\""),
        &["project.name", "lower-case"],
    );
}

#[test]
fn unknown_database_kinds_and_field_types_list_what_is_accepted() {
    let text = GOOD.replace("port = 3002", "port = 3002\ndatabase = \"mysql\"");
    fails_with(
        &text,
        &[
            "services.toml:7:12",
            "unknown database kind \"mysql\"",
            "postgres, sqlite, none",
        ],
    );
    let text = GOOD
        .replace("database = \"mysql\"", "")
        .replace("\"email\" }", "\"strng\" }");
    fails_with(
        &text,
        &[
            "fields.email",
            "unknown field type \"strng\"",
            "did you mean `string`?",
        ],
    );
}

#[test]
fn dependencies_on_missing_services() {
    let text = GOOD.replace(
        "port = 3002",
        "port = 3002\ndepends_on = [\"usr\", \"billing\"]",
    );
    fails_with(
        &text,
        &[
            "depends on \"usr\"",
            "did you mean `user`?",
            "depends on \"billing\"",
            "services.toml:7:15",
        ],
    );
}

#[test]
fn references_need_a_dependency() {
    let text = format!(
        "{GOOD}\n[[services]]\nname = \"blog\"\n  [[services.resources]]\n  name = \"post\"\n  fields = {{ author_id = \"ref:user\" }}\n"
    );
    fails_with(
        &text,
        &["does not depend on", "add depends_on = [\"user\"]"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"[project]
name = "Bad Name"

[gateway]
port = 99999

[[services]]
name = "a"
port = 3001
database = "oracle"
depends_on = ["ghost"]

[[services]]
name = "a"
port = 3001
"#;
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 1);
    for e in [
        "project.name",
        "gateway.port",
        "oracle",
        "ghost",
        "duplicate service name",
        "already used",
    ] {
        assert!(err.contains(e), "missing {e:?} in:\n{err}");
    }
    assert!(err.contains("problems found"), "{err}");
}

#[test]
fn non_utf8_input_is_an_error_not_a_panic() {
    let mut bytes = b"[project]\nname = \"sh".to_vec();
    bytes.extend([0xff, 0xfe]);
    bytes.extend(b"op\"\n");
    let (code, err, _dir) = validate(&bytes);
    assert_eq!(code, 1);
    assert!(
        err.contains("services.toml:2:11") && err.contains("not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn hostile_inputs_never_panic() {
    let inputs: &[&[u8]] = &[
        b"",
        b"\0\0\0",
        b"[project]",
        b"project = 1",
        b"[project]\nname = 1",
        b"[[services]]\nname = \"x\"",
        b"[project]\nname = \"p\"\n[[services]]\nname = \"a\"\nport = 9223372036854775807",
        b"[project]\nname = \"p\"\n[[services]]\nname = \"a\"\n[[services.resources]]\nname = \"r\"\nfields = { \"\" = \"string\" }",
        b"[project]\nname = \"p\"\n[[services]]\nname = \"a\"\n[[services.resources]]\nname = \"r\"\nfields = { x = \"ref:\" }",
        "[project]\nname = \"p\u{202e}\"".as_bytes(),
    ];
    for input in inputs {
        let (code, err, _dir) = validate(input);
        assert_eq!(code, 1, "{input:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.starts_with("error: "), "{err}");
    }
}

#[test]
fn nothing_is_written_when_the_input_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, GOOD.replace("3002", "80")).unwrap();
    let out = msgen(
        dir.path(),
        &["new", "shop", "--config", "bad.toml", "--yes"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.toml:6:8"), "{}", stderr(&out));
    assert!(!dir.path().join("shop").exists());

    // generate on a project whose services.toml went bad leaves the tree alone.
    let out = msgen(dir.path(), &["new", "ok", "--config", "../ok.toml"]);
    assert_ne!(out.status.code(), Some(0));
    std::fs::write(dir.path().join("good.toml"), GOOD).unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", "shop", "--config", "good.toml", "--yes"],
    ));
    let root = dir.path().join("shop");
    let before = common::tree(&root);
    std::fs::write(
        root.join("services.toml"),
        GOOD.replace("email\" }", "nope\" }"),
    )
    .unwrap();
    let out = msgen(&root, &["generate"]);
    assert_eq!(out.status.code(), Some(1));
    let mut after = common::tree(&root);
    after.retain(|(p, _)| p != "services.toml");
    let mut before = before;
    before.retain(|(p, _)| p != "services.toml");
    assert_eq!(before, after);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = msgen(dir.path(), &["generate", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = msgen(Path::new("/definitely/not/here"), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = msgen(dir.path(), &["new", "Bad_Name", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn events_must_be_published_and_well_formed() {
    let text = GOOD.replace(
        "port = 3002\n",
        "port = 3002\npublishes = [\"user.created\", \"Bad Subject\", \"user.created\"]\nconsumes = [\"user.craeted\"]\n",
    );
    fails_with(
        &text,
        &[
            "services.toml:7:30",
            "\"Bad Subject\" is not a valid event subject",
            "services.toml:7:45",
            "is listed twice",
            "services.toml:8:13",
            "consumes \"user.craeted\", which no service publishes; published: user.created\n",
            "did you mean `user.created`?",
        ],
    );
}

#[test]
fn consumers_need_a_database() {
    let text = format!(
        "{GOOD}\n[[services]]\nname = \"mailer\"\ndatabase = \"none\"\nconsumes = [\"user.created\"]\n"
    )
    .replace("port = 3002\n", "port = 3002\npublishes = [\"user.created\"]\n");
    fails_with(&text, &["consumes", "needs a database"]);
}

#[test]
fn names_that_collide_with_generated_code_are_refused() {
    let text = GOOD.replace(
        "  name = \"user\"\n  fields",
        "  name = \"health\"\n  fields",
    );
    fails_with(&text, &["resources[0].name", "`health` is reserved"]);
    let text = GOOD.replace(
        "  name = \"user\"\n  fields",
        "  name = \"processed_event\"\n  fields",
    );
    fails_with(&text, &["table `processed_events` is reserved"]);
    let text = GOOD.replace("name = \"user\"\nport", "name = \"main\"\nport");
    fails_with(&text, &["services[0].name", "reserved"]);
}

#[test]
fn adopted_monoliths_and_services_are_checked() {
    let adopted = r#"[project]
name = "shop"

[monolith]
path = "../legacy"

[[services]]
name = "catalog"
adopted = true
paths = ["/", "catalog"]
resources = [{ name = "product" }]

[[services]]
name = "orders"
paths = ["/orders"]
"#;
    fails_with(
        adopted,
        &[
            "services.toml:5:8: `monolith.path`",
            "\"../legacy\" is not a directory inside the project",
            "monolith.package",
            "which also needs `package`",
            "services[0].paths[0]",
            "\"/\" is not a path prefix",
            "services[0].paths[1]",
            "services[0].resources",
            "an adopted service's code is its own: msgen cannot render `resources` into it",
            "services[1].paths",
            "`paths` is only for adopted services",
        ],
    );
    let good = r#"[project]
name = "shop"

[monolith]
path = "legacy"
package = "shop"

[[services]]
name = "catalog"
adopted = true
paths = ["/catalog"]
"#;
    let (code, err, _dir) = validate(good.as_bytes());
    assert_eq!(code, 0, "{err}");
    fails_with(
        &good.replace(
            "paths = [\"/catalog\"]\n",
            "paths = [\"/catalog\"]\nmonolith = true\n",
        ),
        &["msgen does not render modules into it"],
    );
    // Exact routes, with parameters: checked like paths, each mistake named.
    let routes = good.replace(
        "paths = [\"/catalog\"]\n",
        "routes = [\"/catalog/{id}/items\", \"/catalog/{*rest}\"]\n",
    );
    let (code, err, _dir) = validate(routes.as_bytes());
    assert_eq!(code, 0, "{err}");
    fails_with(
        &good.replace(
            "paths = [\"/catalog\"]\n",
            "routes = [\"/catalog/{}\", \"/catalog/{*rest}/x\", \"/catalog/{id\"]\n",
        ),
        &[
            "services[0].routes[0]",
            "\"/catalog/{}\" is not a route",
            "services[0].routes[1]",
            "services[0].routes[2]",
            "`{name}` parameter (`{*name}` last)",
        ],
    );
    fails_with(
        &good.replace("paths = [\"/catalog\"]\n", ""),
        &[
            "an adopted service needs `paths`",
            "or `routes` (exact routes)",
        ],
    );
    // What adopted code reads from its environment: `NAME` or `NAME=default`.
    let env = good
        .replace(
            "paths = [\"/catalog\"]\n",
            "paths = [\"/catalog\"]\nenv = [\"API_KEY\", \"HOST=0.0.0.0\"]\n",
        )
        .replace(
            "package = \"shop\"\n",
            "package = \"shop\"\nenv = [\"SHOP_ADDR=0.0.0.0:3000\"]\n",
        );
    let (code, err, _dir) = validate(env.as_bytes());
    assert_eq!(code, 0, "{err}");
    fails_with(
        &good.replace(
            "paths = [\"/catalog\"]\n",
            "paths = [\"/catalog\"]\nenv = [\"api-key\", \"X\", \"X=1\"]\n",
        ),
        &[
            "services[0].env[0]",
            "\"api-key\" is not an environment variable",
            "services[0].env[2]",
            "`X` is listed twice",
        ],
    );
    // A schema of the monolith's database: a plain name, one per service.
    let two =
        format!("{good}\n[[services]]\nname = \"orders\"\nadopted = true\npaths = [\"/orders\"]\n");
    let schemas = two
        .replace(
            "paths = [\"/catalog\"]\n",
            "paths = [\"/catalog\"]\nschema = \"catalog\"\n",
        )
        .replace(
            "paths = [\"/orders\"]\n",
            "paths = [\"/orders\"]\nschema = \"orders\"\n",
        );
    let (code, err, _dir) = validate(schemas.as_bytes());
    assert_eq!(code, 0, "{err}");
    fails_with(
        &two.replace(
            "paths = [\"/catalog\"]\n",
            "paths = [\"/catalog\"]\nschema = \"public\"\n",
        )
        .replace(
            "paths = [\"/orders\"]\n",
            "paths = [\"/orders\"]\nschema = \"Orders-1\"\n",
        ),
        &[
            "services[0].schema",
            "`public` cannot be the service's schema",
            "services[1].schema",
            "`Orders-1` cannot be the service's schema; accepted: lower-case letters",
        ],
    );
    fails_with(
        &schemas.replace("schema = \"orders\"", "schema = \"catalog\""),
        &[
            "services[1].schema",
            "service `catalog` has schema `catalog` already",
        ],
    );
    fails_with(
        &schemas.replace(
            "[[services]]\nname = \"catalog\"",
            "[[services]]\nname = \"catalog\"\ndatabase = \"sqlite\"",
        ),
        &["`schema` needs `database = \"postgres\"`: SQLite has no schemas"],
    );
    fails_with(
        &GOOD.replace("port = 3002\n", "port = 3002\nschema = \"user\"\n"),
        &[
            "services[0].schema",
            "`schema` is only for services adopted from a monolith",
        ],
    );
}

#[test]
fn every_misspelled_key_and_wrong_type_is_reported_in_one_run() {
    fails_with(
        "[project]\nname = \"shop\"\n\n[gatway]\nport = 8080\n\n[[services]]\nname = \"user\"\nprot = 3002\ndepend_on = [\"x\"]\n\n[[services]]\nname = \"blog\"\nport = \"3003\"\n",
        &[
            "services.toml:4:2: `gatway`",
            "did you mean `gateway`?",
            "services.toml:9:1: `services[0].prot`",
            "did you mean `port`?",
            "services.toml:10:1: `services[0].depend_on`",
            "did you mean `depends_on`?",
            "services.toml:14:8: `services[1].port`: invalid type: string \"3003\", expected a whole number",
            "write a whole number without quotes, e.g. 3001",
            "4 problems found",
        ],
    );
}

#[test]
fn a_broken_service_does_not_make_references_to_it_fail_too() {
    let text = "[project]\nname = \"shop\"\n\n[[services]]\nname = \"user\"\nport = -5\n\n  [[services.resources]]\n  name = \"user\"\n  fields = { email = \"email\" }\n\n[[services]]\nname = \"blog\"\ndepends_on = [\"user\"]\n\n  [[services.resources]]\n  name = \"post\"\n  fields = { author_id = \"ref:user\" }\n";
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 1);
    assert!(err.contains("-5 is out of range"), "{err}");
    assert!(!err.contains("which no service declares"), "{err}");
}

#[test]
fn each_problem_is_reported_once() {
    // A file without [project]: one problem, not the same one twice.
    let (code, err, _dir) = validate(b"# nothing yet\n");
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("missing field `project`").count(), 1, "{err}");
    // Depending on itself is not also a cycle.
    let text = GOOD.replace("port = 3002", "port = 3002\ndepends_on = [\"user\"]");
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot depend on itself"), "{err}");
    assert!(!err.contains("dependency cycle"), "{err}");
}

#[test]
fn field_tables_are_checked_key_by_key() {
    let with = |fields: &str| {
        GOOD.replace(
            "fields = { email = \"email\" }",
            &format!("fields = {fields}"),
        )
    };
    fails_with(
        &with(r#"{ email = "email", age = { type = "i32", default = "old" } }"#),
        &[
            "services.toml:10:",
            "`services[0].resources[0].fields.age.default`",
            "expected an integer",
        ],
    );
    fails_with(
        &with(r#"{ email = "email", tiny = { type = "i32", default = 3000000000 } }"#),
        &["between -2147483648 and 2147483647"],
    );
    fails_with(
        &with(r#"{ email = "email", at = { type = "datetime", default = "yesterday" } }"#),
        &["RFC 3339"],
    );
    fails_with(
        &with(
            r#"{ email = "email", a = { type = "string", renamed_from = "name" }, b = { type = "string", renamed_from = "name" } }"#,
        ),
        &[
            "fields.b.renamed_from",
            "field `a` is already renamed from `name`",
        ],
    );
    fails_with(
        &with(r#"{ email = { type = "email", renamed_from = "email" } }"#),
        &["fields.email.renamed_from", "the field's own name"],
    );
    fails_with(
        &with(r#"{ email = "email", x = { type = "string", renamed_from = "email" } }"#),
        &["`email` is still a field of this resource"],
    );
    fails_with(
        &with(r#"{ email = { type = "email", size = 3 } }"#),
        &["unknown key `size` in a field; accepted: type, default, renamed_from"],
    );
    fails_with(&with(r#"{ email = { default = "x" } }"#), &["needs `type`"]);
    // A default the database could not hold is refused; one the API would not
    // take as input (a blank string) is the user's choice, as it always was.
    fails_with(
        &with(r#"{ email = "email", note = { type = "text", default = "a\u0000b" } }"#),
        &[
            "`services[0].resources[0].fields.note.default`",
            "cannot hold a NUL character",
        ],
    );
    fails_with(
        &with(&format!(
            r#"{{ email = "email", name = {{ type = "string", default = "{}" }} }}"#,
            "x".repeat(256)
        )),
        &["fields.name.default", "a string of at most 255 characters"],
    );
    let (code, err, _dir) = validate(
        with(r#"{ email = "email", n = { type = "f64", default = 1 }, on = { type = "bool?", default = true }, at = { type = "datetime", default = "2024-01-02T03:04:05Z" }, note = { type = "text", default = "" }, name = { type = "string", default = "" }, backup = { type = "email", default = "" } }"#)
            .as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn ports_the_running_system_needs_are_refused() {
    // 9464: the gateway's metrics; 5432 and 4222: PostgreSQL and NATS of the local run.
    for (port, what) in [(9464, "METRICS_PORT"), (5432, "PostgreSQL"), (4222, "NATS")] {
        let text = GOOD.replace("port = 3002", &format!("port = {port}"));
        fails_with(
            &text,
            &[
                "services.toml:6:8",
                "services[0].port",
                what,
                "except 4222, 5432, 9464",
            ],
        );
        let text = format!("{GOOD}\n[gateway]\nport = {port}\n");
        fails_with(&text, &["gateway.port", what]);
    }
}

#[test]
fn database_limits_are_checked() {
    // At most 250 fields (PostgreSQL allows 1600 columns; the generated code less).
    let fields = |n: usize| {
        (0..n)
            .map(|i| format!("f{i} = \"i32\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = GOOD.replace("email = \"email\"", &fields(250));
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 0, "{err}");
    let text = GOOD.replace("email = \"email\"", &fields(251));
    fails_with(
        &text,
        &[
            "services[0].resources[0].fields",
            "251 fields",
            "at most 250",
        ],
    );
    // Database names `<project>_<service>` fit PostgreSQL's 63 bytes.
    let text = GOOD
        .replace("name = \"shop\"", &format!("name = \"{}\"", "a".repeat(30)))
        .replace(
            "name = \"user\"\nport",
            &format!("name = \"{}\"\nport", "b".repeat(33)),
        );
    fails_with(&text, &["services[0].name", "64 bytes", "at most 63"]);
    // The same name on SQLite is a file name: no limit there.
    let text = text.replace("port = 3002", "port = 3002\ndatabase = \"sqlite\"");
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_service_may_be_named_like_its_resources_plural() {
    let text = GOOD
        .replace("name = \"user\"\nport", "name = \"users\"\nport")
        .replace("email = \"email\"", "email = \"email\", name = \"string\"");
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 0, "{err}");
    // Another service serving the same path is still a clash.
    let text = format!("{text}\n[[services]]\nname = \"user\"\ndatabase = \"none\"\n");
    let text = text.replace(
        "name = \"user\"\ndatabase = \"none\"\n",
        "name = \"accounts\"\ndatabase = \"none\"\n\n  [[services.resources]]\n  name = \"x\"\n  plural = \"users\"\n  fields = { a = \"string\" }\n",
    );
    fails_with(&text, &["route /api/v1/users is also served by `users`"]);
}

#[test]
fn names_the_generated_code_cannot_take() {
    // `tower-service` is a crate every generated service depends on.
    let text = GOOD.replace("name = \"user\"\nport", "name = \"tower\"\nport");
    fails_with(&text, &["services[0].name", "tower-service"]);
    // Two subjects that differ only in '.' and '_' would share a stream.
    let text = GOOD.replace(
        "port = 3002\n",
        "port = 3002\npublishes = [\"user.signed_up\", \"user.signed.up\"]\n",
    );
    fails_with(&text, &["publishes[1]", "clash", "USER_SIGNED_UP"]);
}

#[test]
fn echoed_input_is_safe_for_a_terminal_and_short() {
    // An escape sequence in a key would retitle (or clear) the terminal.
    let (code, err, _dir) = validate(b"[project]\nname = \"x\"\n\"\\u001b]0;PWNED\\u0007\" = 1\n");
    assert_eq!(code, 1);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("\\u{1b}]0;PWNED\\u{7}"), "{err}");
    // A 10 MB value is not echoed whole.
    let long = format!("[project]\nname = \"{}\"\n", "a".repeat(10_000_000));
    let (code, err, _dir) = validate(long.as_bytes());
    assert_eq!(code, 1);
    assert!(err.len() < 1000, "{} bytes of error", err.len());
    assert!(
        err.contains("more characters") && err.contains("accepted:"),
        "{err}"
    );
}

#[test]
fn nul_bytes_and_huge_numbers_are_named() {
    let (code, err, _dir) = validate(b"[project]\nname = \"x\"\n# a comment \0 with NUL\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("services.toml:3:") && err.contains("control character \\u{0}"),
        "{err}"
    );
    fails_with(
        "[project]\nname = \"x\"\n\n[gateway]\nport = 99999999999999999999\n",
        &[
            "services.toml:5:8",
            "`gateway.port`",
            "too large",
            "1024..=65535",
        ],
    );
}

#[test]
fn the_majors_of_generated_code_are_checked() {
    let text = GOOD.replace(
        "name = \"shop\"\n",
        "name = \"shop\"\naxum = \"0.6\"\nsqlx = \"1\"\n",
    );
    fails_with(
        &text,
        &[
            "services.toml:3:8",
            "`project.axum`",
            "\"0.6\" is not a supported major version; accepted: \"0.7\", \"0.8\"",
            "services.toml:4:8",
            "`project.sqlx`",
            "accepted: \"0.8\", \"0.9\"",
        ],
    );
    let text = GOOD.replace(
        "name = \"shop\"\n",
        "name = \"shop\"\naxum = \"0.7\"\nsqlx = \"0.9\"\n",
    );
    let (code, err, _dir) = validate(text.as_bytes());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn ownership_and_roles_are_checked() {
    let auth = "\n[[services]]\nname = \"auth\"\nport = 3001\ntemplate = \"auth\"\n";
    let owned = GOOD.replace(
        "fields = { email = \"email\" }",
        "fields = { email = \"email\" }\n  owned = true\n  roles = { delete = \"admin\" }",
    );
    let (code, err, _dir) = validate(format!("{owned}{auth}").as_bytes());
    assert_eq!(code, 0, "{err}");

    // No auth service: nobody's token to read an owner or a role from.
    fails_with(
        &owned,
        &[
            "services.toml:11:11",
            "`services[0].resources[0].owned`",
            "no service of the project issues tokens",
            "msgen add-service auth",
        ],
    );
    // A public service checks no token.
    let public = owned.replace("port = 3002", "port = 3002\npublic = true");
    fails_with(
        &format!("{public}{auth}"),
        &["service `user` is public", "remove `public = true`"],
    );
    // Unknown operations and roles list what is accepted; a field may not take
    // the owner's column.
    let bad = owned
        .replace("delete = \"admin\"", "remove = \"admin\", read = \"root\"")
        .replace(
            "{ email = \"email\" }",
            "{ email = \"email\", owner_id = \"string\" }",
        );
    fails_with(
        &format!("{bad}{auth}"),
        &[
            "unknown operation \"remove\"; accepted: read, create, update, delete",
            "unknown role \"root\"; accepted: user, admin",
            "`services[0].resources[0].owned`",
            "a field has that name",
        ],
    );
}

/// Two resources of one service with one plural would overlap in routes and in
/// their table's migrations: refused, at the second one's `plural` (or name).
#[test]
fn resources_of_one_service_with_one_plural() {
    let two = |first: &str, second: &str| {
        format!(
            "[project]\nname = \"x\"\n\n[[services]]\nname = \"a\"\n\n  [[services.resources]]\n  {first}\n  fields = {{ a = \"string\" }}\n\n  [[services.resources]]\n  {second}\n  fields = {{ b = \"string\" }}\n"
        )
    };
    fails_with(
        &two(
            "name = \"item\"\n  plural = \"stuff\"",
            "name = \"thing\"\n  plural = \"stuff\"",
        ),
        &[
            "services.toml:14:12:",
            "`services[0].resources[1].plural`",
            "`stuff` of resource `item`",
            "set a `plural` of its own",
        ],
    );
    // `fox` and `foxe` are both `foxes`.
    fails_with(
        &two("name = \"fox\"", "name = \"foxe\""),
        &["services.toml:12:", "`foxes` of resource `fox`"],
    );
    let (code, err, _dir) =
        validate(two("name = \"fox\"", "name = \"foxe\"\n  plural = \"foxen\"").as_bytes());
    assert_eq!(code, 0, "{err}");
}
