//! Property tests of loading and rendering `services.toml` with hostile input:
//! nothing panics, every error has a location, and whatever validates renders into
//! files that stay inside the project and still parse (Rust with syn, TOML with toml).

use std::path::{Component, Path};

use msgen::model::Project;
use msgen::render::Renderer;
use proptest::prelude::*;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Table};

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["user", "blog", "auth", "post", "shop"])
            .prop_map(str::to_string),
        2 => prop::sample::select(vec![
            "user",
            "blog",
            "auth",
            "a-b",
            "x1",
            "gateway",
            "self",
            "type",
            "../up",
            "a/b",
            "{{ x }}",
            "{% if %}",
            "quote\"d",
            "back\\slash",
            "new\nline",
            "ünï",
            "",
            "A",
            "9lives",
            "a--b",
            "post.created",
            "ref:user",
            "string",
            "i32?",
        ])
        .prop_map(str::to_string),
        1 => "[a-z0-9_\\-./\"\\\\{}% \n]{0,12}",
    ]
}

#[derive(Debug, Clone)]
struct Svc {
    name: String,
    port: Option<i64>,
    database: Option<String>,
    template: Option<String>,
    depends_on: Vec<String>,
    publishes: Vec<String>,
    consumes: Vec<String>,
    resources: Vec<(String, Vec<(String, String)>)>,
}

fn rarely<T: std::fmt::Debug + Clone + 'static>(
    usual: impl Strategy<Value = T> + 'static,
    odd: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![5 => usual, 1 => odd].boxed()
}

fn svc() -> impl Strategy<Value = Svc> {
    let field_name = rarely(
        prop::sample::select(vec!["title", "body", "age", "email", "author_id"])
            .prop_map(str::to_string),
        hostile_string(),
    );
    let field_type = rarely(
        prop::sample::select(vec![
            "string",
            "text",
            "email",
            "i32",
            "i64?",
            "f64",
            "bool",
            "datetime?",
        ])
        .prop_map(str::to_string),
        prop_oneof![
            prop::sample::select(vec!["ref:user", "ref:post", "strng", ""])
                .prop_map(str::to_string),
            hostile_string()
        ],
    );
    let list = || {
        rarely(
            Just(Vec::new()),
            prop::collection::vec(hostile_string(), 0..2),
        )
    };
    (
        hostile_string(),
        rarely(
            prop_oneof![Just(None), (3001i64..3100).prop_map(Some)],
            any::<i64>().prop_map(Some),
        ),
        rarely(
            prop::option::of(
                prop::sample::select(vec!["postgres", "sqlite"]).prop_map(str::to_string),
            ),
            prop::sample::select(vec!["none", "mysql"]).prop_map(|s| Some(s.to_string())),
        ),
        rarely(
            Just(None),
            prop::sample::select(vec!["auth", "cqrs"]).prop_map(|s| Some(s.to_string())),
        ),
        list(),
        list(),
        list(),
        prop::collection::vec(
            (
                rarely(
                    prop::sample::select(vec!["post", "comment", "tag"]).prop_map(str::to_string),
                    hostile_string(),
                ),
                prop::collection::vec((field_name, field_type), 1..3),
            ),
            0..2,
        ),
    )
        .prop_map(
            |(name, port, database, template, depends_on, publishes, consumes, resources)| Svc {
                name,
                port,
                database,
                template,
                depends_on,
                publishes,
                consumes,
                resources,
            },
        )
}

fn document(project: &str, gateway_port: Option<i64>, services: &[Svc]) -> String {
    let mut doc = DocumentMut::new();
    let mut p = Table::new();
    p["name"] = value(project);
    doc["project"] = toml_edit::Item::Table(p);
    if let Some(port) = gateway_port {
        let mut g = Table::new();
        g["port"] = value(port);
        doc["gateway"] = toml_edit::Item::Table(g);
    }
    let mut list = ArrayOfTables::new();
    for s in services {
        let mut t = Table::new();
        t["name"] = value(s.name.as_str());
        if let Some(port) = s.port {
            t["port"] = value(port);
        }
        if let Some(d) = &s.database {
            t["database"] = value(d.as_str());
        }
        if let Some(tpl) = &s.template {
            t["template"] = value(tpl.as_str());
        }
        for (key, items) in [
            ("depends_on", &s.depends_on),
            ("publishes", &s.publishes),
            ("consumes", &s.consumes),
        ] {
            if !items.is_empty() {
                let mut a = Array::new();
                for i in items {
                    a.push(i.as_str());
                }
                t[key] = value(a);
            }
        }
        if !s.resources.is_empty() {
            let mut rs = ArrayOfTables::new();
            for (name, fields) in &s.resources {
                let mut r = Table::new();
                r["name"] = value(name.as_str());
                let mut f = InlineTable::new();
                for (k, v) in fields {
                    f.insert(k, v.as_str().into());
                }
                r["fields"] = value(f);
                rs.push(r);
            }
            t["resources"] = toml_edit::Item::ArrayOfTables(rs);
        }
        list.push(t);
    }
    doc["services"] = toml_edit::Item::ArrayOfTables(list);
    doc.to_string()
}

/// Loads `text`; on failure every diagnostic must have a place and a message.
fn check_load(text: &[u8]) -> Option<Project> {
    match Project::parse_bytes(text, Path::new("services.toml")) {
        Ok(p) => Some(p),
        Err(e) => {
            let diags = e.diagnostics();
            assert!(!diags.is_empty(), "an error without diagnostics: {e}");
            for d in diags {
                assert!(d.location.is_some(), "no location: {d}");
                assert!(!d.message.is_empty());
            }
            None
        }
    }
}

fn check_render(project: &Project) {
    let plan = Renderer::new()
        .unwrap()
        .plan(project, &Default::default())
        .expect("a valid project renders");
    for (path, file) in &plan.files {
        let p = Path::new(path);
        assert!(
            p.components().all(|c| matches!(c, Component::Normal(_))),
            "{path} is not a plain relative path"
        );
        if path.ends_with(".rs") {
            syn::parse_file(&file.contents).unwrap_or_else(|e| panic!("{path} is not Rust: {e}"));
        }
        if path.ends_with(".toml") {
            file.contents
                .parse::<toml::Table>()
                .unwrap_or_else(|e| panic!("{path} is not TOML: {e}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_load(&bytes);
    }

    #[test]
    fn structured_hostile_input_is_refused_or_renders_cleanly(
        project in hostile_string(),
        gateway_port in prop::option::of(prop_oneof![1000i64..70000, any::<i64>()]),
        services in prop::collection::vec(svc(), 0..3),
    ) {
        let text = document(&project, gateway_port, &services);
        if let Some(p) = check_load(text.as_bytes()) {
            check_render(&p);
        }
    }
}

#[test]
fn every_example_renders_into_parseable_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let project = Project::load(&path).unwrap();
        check_render(&project);
    }
}

#[test]
fn the_generator_reaches_valid_projects() {
    // Guard against a generator so hostile that rendering is never exercised.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (hostile_string(), prop::collection::vec(svc(), 1..3));
    let valid = (0..300)
        .filter(|_| {
            let (name, services) = strategy.new_tree(&mut runner).unwrap().current();
            check_load(document(&name, None, &services).as_bytes()).is_some()
        })
        .count();
    assert!(
        valid >= 10,
        "only {valid} of 300 generated projects were valid"
    );
}
