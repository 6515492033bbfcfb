//! End to end: render the built-in example, build it, start its services and
//! gateway on free loopback ports against the machine's PostgreSQL (then again with
//! SQLite), and walk the article's flows through the gateway only.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::run::{build_bins, call, free_port, wait_healthy, Proc};
use common::{assert_ok, cargo, msgen, require_postgres, CARGO_LOCK};

const JWT_SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-e2e-secret";
/// The built-in example's services, plus one grown with `msgen add-service`.
const SERVICES: [&str; 4] = ["auth", "user", "blog", "billing"];

/// Renders and builds the built-in example; returns the directory holding its binaries.
fn build(dir: &Path, database: &str) -> PathBuf {
    assert_ok(&msgen(
        dir,
        &["new", "blogsys", "--yes", "--database", database],
    ));
    let root = dir.join("blogsys");
    assert_ok(&msgen(
        &root,
        &["add-service", "billing", "--resource", "invoice"],
    ));
    // The added service hears about new posts too: a second consumer to stop and start.
    let toml = std::fs::read_to_string(root.join("services.toml")).unwrap();
    let toml = toml.replace(
        "name = \"billing\"\nport = 3004\n",
        "name = \"billing\"\nport = 3004\nconsumes = [\"post.created\"]\n",
    );
    std::fs::write(root.join("services.toml"), toml).unwrap();
    assert_ok(&msgen(&root, &["generate"]));
    let bin = dir.join("bin");
    build_bins(
        &root,
        &bin,
        &[
            "gateway",
            "auth-service",
            "user-service",
            "blog-service",
            "billing-service",
        ],
    );
    bin
}

/// Registers `email` through the gateway and logs in: the bearer token.
fn register_and_login(gw: &str, email: &str) -> String {
    register_and_login_at(gw, "/api/v1/auth", email)
}

/// As [`register_and_login`], under `auth` (`/api/auth`: the monolith's old paths).
fn register_and_login_at(gw: &str, auth: &str, email: &str) -> String {
    let creds = json!({"email": email, "password": "correct horse battery"});
    let (status, body) = call(
        "POST",
        &format!("{gw}{auth}/register"),
        None,
        Some(creds.clone()),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], json!(true));
    let (status, body) = call("POST", &format!("{gw}{auth}/login"), None, Some(creds));
    assert_eq!(status, 200, "{body}");
    body["data"]["token"].as_str().expect("a token").to_string()
}

/// Environment of service `s` of the built-in example on `port`, in run `run_id`.
fn service_env(
    database: &str,
    dir: &Path,
    run_id: &str,
    s: &str,
    port: u16,
    user_url: &str,
) -> Vec<(String, String)> {
    let database_url = match database {
        "postgres" => format!("postgres://postgres@127.0.0.1:5432/e2e_{run_id}_{s}"),
        _ => format!("sqlite://{}/data/{s}.db", dir.display()),
    };
    let mut env = vec![
        ("PORT".to_string(), port.to_string()),
        ("DATABASE_URL".to_string(), database_url),
        ("NATS_URL".to_string(), "nats://127.0.0.1:4222".to_string()),
        // Runs share the machine's NATS: each gets subjects of its own.
        (
            "NATS_SUBJECT_PREFIX".to_string(),
            format!("e2e{run_id}{database}"),
        ),
    ];
    // The auth service signs tokens, user and blog check them (and blog signs its
    // calls to user).
    env.push(("JWT_SECRET".into(), JWT_SECRET.into()));
    if s == "blog" {
        env.push(("USER_SERVICE_URL".into(), user_url.into()));
    }
    env
}

fn run_system(database: &str) {
    if database == "postgres" {
        require_postgres();
    }
    common::require_nats();
    let dir = tempfile::tempdir().unwrap();
    let bin = build(dir.path(), database);
    let run_id = format!("{}_{}", std::process::id(), free_port());
    let ports: Vec<(&str, u16)> = SERVICES.iter().map(|s| (*s, free_port())).collect();
    let url_of = |s: &str| {
        let port = ports.iter().find(|(n, _)| *n == s).unwrap().1;
        format!("http://127.0.0.1:{port}")
    };

    let service_env =
        |s: &str, port: u16| service_env(database, dir.path(), &run_id, s, port, &url_of("user"));

    // The auth service refuses to start without a JWT_SECRET, or with a short one.
    for secret in [None, Some("too-short")] {
        let mut cmd = Command::new(bin.join("auth-service"));
        cmd.envs(service_env("auth", free_port()))
            .env_remove("JWT_SECRET");
        if let Some(s) = secret {
            cmd.env("JWT_SECRET", s);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "auth started with JWT_SECRET={secret:?}"
        );
        assert!(err.contains("JWT_SECRET"), "{err}");
    }

    let mut procs = Vec::new();
    for (s, port) in &ports {
        let mut p = Proc::start(&bin, &format!("{s}-service"), &service_env(s, *port));
        wait_healthy(&url_of(s), &mut p);
        procs.push(p);
    }
    let gw_port = free_port();
    let mut gw_env = vec![
        ("PORT".to_string(), gw_port.to_string()),
        ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
        ("UPSTREAM_TIMEOUT_SECS".to_string(), "10".to_string()),
    ];
    for s in SERVICES {
        gw_env.push((format!("{}_SERVICE_URL", s.to_uppercase()), url_of(s)));
    }
    let mut gateway = Proc::start(&bin, "gateway", &gw_env);
    let gw = format!("http://127.0.0.1:{gw_port}");
    wait_healthy(&gw, &mut gateway);

    // Health of the gateway and, through it, of each service.
    assert_eq!(
        call("GET", &format!("{gw}/health"), None, None),
        (200, json!({"status": "ok"}))
    );
    for s in SERVICES {
        let (status, body) = call("GET", &format!("{gw}/health/{s}"), None, None);
        assert_eq!((status, body), (200, json!({"status": "ok"})), "{s}");
        let (status, body) = call("GET", &format!("{}/health/ready", url_of(s)), None, None);
        assert_eq!(status, 200, "{s}: {body}");
    }

    // register → login → token
    let token = register_and_login(&gw, "ada@example.com");
    let t = Some(token.as_str());

    // 401 without the token, in the envelope.
    let (status, body) = call("GET", &format!("{gw}/api/v1/users"), None, None);
    assert_eq!(status, 401);
    assert_eq!(body["success"], json!(false));
    let (status, _) = call(
        "GET",
        &format!("{gw}/api/v1/users"),
        Some("forged.token.here"),
        None,
    );
    assert_eq!(status, 401);
    // The services check tokens themselves: the gateway is not the only door.
    for (s, resources) in [("user", "users"), ("blog", "posts")] {
        let direct = format!("{}/api/v1/{resources}", url_of(s));
        let (status, body) = call("GET", &direct, None, None);
        assert_eq!(
            (status, &body["success"]),
            (401, &json!(false)),
            "{direct}: {body}"
        );
        let (status, _) = call("POST", &direct, None, Some(json!({})));
        assert_eq!(status, 401, "{direct}");
        let (status, _) = call("GET", &direct, Some("forged.token.here"), None);
        assert_eq!(status, 401, "{direct}");
        let (status, body) = call("GET", &direct, t, None);
        assert_eq!(status, 200, "{direct}: {body}");
        let (status, _) = call("GET", &format!("{}/health/ready", url_of(s)), None, None);
        assert_eq!(status, 200);
    }

    // Users: create, read, update, list.
    let user = json!({"email": "ada@example.com", "display_name": "Ada", "age": 36});
    let (status, body) = call("POST", &format!("{gw}/api/v1/users"), t, Some(user));
    assert_eq!(status, 201, "{body}");
    let user_id = body["data"]["id"].as_i64().unwrap();
    let (status, body) = call("GET", &format!("{gw}/api/v1/users/{user_id}"), t, None);
    assert_eq!(
        (status, &body["data"]["display_name"]),
        (200, &json!("Ada")),
        "{body}"
    );
    let update = json!({"email": "ada@example.com", "display_name": "Ada Lovelace", "age": null});
    let (status, body) = call(
        "PUT",
        &format!("{gw}/api/v1/users/{user_id}"),
        t,
        Some(update),
    );
    assert_eq!(
        (status, &body["data"]["display_name"]),
        (200, &json!("Ada Lovelace")),
        "{body}"
    );
    let (status, body) = call(
        "GET",
        &format!("{gw}/api/v1/users?page=1&per_page=10"),
        t,
        None,
    );
    assert_eq!((status, &body["data"]["total"]), (200, &json!(1)), "{body}");
    let bad = json!({"email": "nope", "display_name": " "});
    let (status, body) = call("POST", &format!("{gw}/api/v1/users"), t, Some(bad));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"].as_array().map(Vec::len), Some(2), "{body}");

    // A blog post whose author is checked through the user service.
    let post =
        json!({"title": "Hello", "body": "First post", "author_id": user_id, "published": true});
    let (status, body) = call("POST", &format!("{gw}/api/v1/posts"), t, Some(post.clone()));
    assert_eq!(status, 201, "{body}");
    let post_id = body["data"]["id"].as_i64().unwrap();
    let ada_id = body["data"]["owner_id"].clone();
    assert!(ada_id.as_str().is_some_and(|id| !id.is_empty()), "{body}");
    let admin = authorization(
        &gw,
        &bin,
        &service_env("auth", 0),
        &url_of,
        AuthzFixture {
            t: token.as_str(),
            post_id,
            user_id,
            post: &post,
            owner_id: &ada_id,
        },
    );
    let admin = Some(admin.as_str());
    let orphan = json!({"title": "Orphan", "body": "", "author_id": 999_999, "published": false});
    let (status, body) = call("POST", &format!("{gw}/api/v1/posts"), t, Some(orphan));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("user 999999 does not exist"),
        "{body}"
    );
    let mut edited = post.clone();
    edited["title"] = json!("Hello, world");
    let (status, body) = call(
        "PUT",
        &format!("{gw}/api/v1/posts/{post_id}"),
        t,
        Some(edited),
    );
    assert_eq!(
        (status, &body["data"]["title"]),
        (200, &json!("Hello, world")),
        "{body}"
    );
    let (status, body) = call("GET", &format!("{gw}/api/v1/posts"), t, None);
    assert_eq!(
        (status, &body["data"]["items"][0]["id"]),
        (200, &json!(post_id)),
        "{body}"
    );
    let (status, _) = call("DELETE", &format!("{gw}/api/v1/posts/{post_id}"), t, None);
    assert_eq!(status, 200);
    let (status, body) = call("GET", &format!("{gw}/api/v1/posts/{post_id}"), t, None);
    assert_eq!((status, &body["success"]), (404, &json!(false)));

    // Stop the user service: the gateway answers 502 in the envelope, and the blog
    // service maps its failed call into the envelope too.
    let user_index = SERVICES.iter().position(|s| *s == "user").unwrap();
    let user_proc = procs.remove(user_index);
    user_proc.terminate();
    let (status, body) = call("GET", &format!("{gw}/api/v1/users/{user_id}"), t, None);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["success"], json!(false));
    let (status, body) = call("POST", &format!("{gw}/api/v1/posts"), t, Some(post.clone()));
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["success"], json!(false));

    // Start it again: served again, without restarting the gateway.
    let port = ports[user_index].1;
    let mut again = Proc::start(&bin, "user-service", &service_env("user", port));
    wait_healthy(&url_of("user"), &mut again);
    let (status, body) = call("GET", &format!("{gw}/api/v1/users/{user_id}"), t, None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = call("POST", &format!("{gw}/api/v1/posts"), t, Some(post));
    assert_eq!(status, 201, "{body}");
    procs.push(again);

    // The service added with `msgen add-service` is routed and guarded like the others.
    let (status, body) = call(
        "POST",
        &format!("{gw}/api/v1/invoices"),
        None,
        Some(json!({"name": "x"})),
    );
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(
        "POST",
        &format!("{gw}/api/v1/invoices"),
        t,
        Some(json!({"name": "March"})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = call("GET", &format!("{gw}/api/v1/billing"), t, None);
    assert_eq!(
        (status, &body["data"]["service"]),
        (200, &json!("billing")),
        "{body}"
    );

    // Events over NATS: both consumers heard about the two posts created so far.
    let handled = |svc: &str| -> i64 {
        let (_, body) = call("GET", &format!("{gw}/api/v1/{svc}"), t, None);
        body["data"]["events_handled"].as_i64().unwrap_or(-1)
    };
    let wait_handled = |svc: &str, want: i64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while handled(svc) != want {
            assert!(
                Instant::now() < deadline,
                "{svc} handled {} events, not {want}",
                handled(svc)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_handled("user", 2);
    wait_handled("billing", 2);

    // Stop a consumer, publish more, start it again: no event lost, none handled twice.
    let billing_index = procs
        .iter()
        .position(|p| p.name == "billing-service")
        .unwrap();
    procs.remove(billing_index).terminate();
    for i in 0..3 {
        let post = json!({"title": format!("While billing sleeps {i}"), "body": "", "author_id": user_id, "published": true});
        let (status, body) = call("POST", &format!("{gw}/api/v1/posts"), t, Some(post));
        assert_eq!(status, 201, "{body}");
    }
    let billing_port = ports.iter().find(|(n, _)| *n == "billing").unwrap().1;
    let mut billing = Proc::start(
        &bin,
        "billing-service",
        &service_env("billing", billing_port),
    );
    wait_healthy(&url_of("billing"), &mut billing);
    wait_handled("billing", 5);
    wait_handled("user", 5);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(handled("billing"), 5, "an event was handled twice");
    procs.push(billing);

    // Only an admin deletes a profile, even its owner's.
    let profile = format!("{gw}/api/v1/users/{user_id}");
    assert_eq!(call("DELETE", &profile, t, None).0, 403);
    let (status, body) = call("DELETE", &profile, admin, None);
    assert_eq!(status, 200, "{body}");

    // SIGTERM: every binary exits cleanly.
    gateway.terminate();
    for p in procs {
        p.terminate();
    }
}

/// What the authorization walk needs of the run so far: Ada's token, her
/// profile and her post (as created).
struct AuthzFixture<'a> {
    t: &'a str,
    post_id: i64,
    user_id: i64,
    post: &'a Value,
    /// Ada's user id, as her post's `owner_id`.
    owner_id: &'a Value,
}

/// Two users and an admin, through the gateway and on the services' own ports:
/// ownership of posts and profiles, the admin's override, `owner=me`, PATCH,
/// unknown parameters, `alg=none`, and the login limit. Returns the admin's token.
fn authorization(
    gw: &str,
    bin: &Path,
    auth_env: &[(String, String)],
    url_of: &dyn Fn(&str) -> String,
    ada: AuthzFixture<'_>,
) -> String {
    let t = Some(ada.t);
    let bob = register_and_login(gw, "bob@example.com");
    let b = Some(bob.as_str());

    // The first admin: an account registered as usual, granted the role by the
    // auth binary against its database (no default password, no HTTP route).
    register_and_login(gw, "root@example.com");
    let out = Command::new(bin.join("auth-service"))
        .args(["grant-admin", "Root@Example.com"])
        .envs(auth_env.iter().cloned())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin.join("auth-service"))
        .args(["grant-admin", "nobody@example.com"])
        .envs(auth_env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "granted to an account that does not exist"
    );
    let creds = json!({"email": "root@example.com", "password": "correct horse battery"});
    let (_, body) = call(
        "POST",
        &format!("{gw}/api/v1/auth/login"),
        None,
        Some(creds),
    );
    let admin = body["data"]["token"].as_str().expect("a token").to_string();
    let a = Some(admin.as_str());
    let (_, me) = call("GET", &format!("{gw}/api/v1/auth/me"), a, None);
    assert_eq!(me["data"]["roles"], json!(["user", "admin"]), "{me}");
    let (_, me) = call("GET", &format!("{gw}/api/v1/auth/me"), b, None);
    assert_eq!(me["data"]["roles"], json!(["user"]), "{me}");

    // Bob reads Ada's post and profile but changes neither: 403 in the envelope,
    // from the gateway's route and from each service on its own port.
    for (base, post_of) in [(gw.to_string(), "posts"), (url_of("blog"), "posts")] {
        let path = format!("{base}/api/v1/{post_of}/{}", ada.post_id);
        assert_eq!(call("GET", &path, b, None).0, 200, "{path}");
        let (status, body) = call("PUT", &path, b, Some(ada.post.clone()));
        assert_eq!(
            (status, &body["success"]),
            (403, &json!(false)),
            "{path}: {body}"
        );
        let patch = Some(json!({"title": "Bob's now"}));
        assert_eq!(call("PATCH", &path, b, patch).0, 403, "{path}");
        assert_eq!(call("DELETE", &path, b, None).0, 403, "{path}");
    }
    for base in [gw.to_string(), url_of("user")] {
        let path = format!("{base}/api/v1/users/{}", ada.user_id);
        let patch = Some(json!({"display_name": "Bob"}));
        assert_eq!(call("PATCH", &path, b, patch).0, 403, "{path}");
    }

    // `owner=me` keeps one's own; any other parameter is refused, naming these.
    let mine = format!("{gw}/api/v1/posts?owner=me");
    assert_eq!(call("GET", &mine, b, None).1["data"]["total"], json!(0));
    assert_eq!(call("GET", &mine, t, None).1["data"]["total"], json!(1));
    let (status, body) = call("GET", &format!("{gw}/api/v1/posts?limit=5"), t, None);
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("limit") && error.contains("owner"), "{body}");

    // PATCH changes what it is given, for the author and for an admin, who
    // does not become the owner.
    let path = format!("{gw}/api/v1/posts/{}", ada.post_id);
    let (status, body) = call("PATCH", &path, t, Some(json!({"published": false})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["published"], json!(false));
    assert_eq!(body["data"]["title"], ada.post["title"]);
    let (status, body) = call("PATCH", &path, a, Some(json!({"published": true})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(&body["data"]["owner_id"], ada.owner_id);
    let (status, body) = call("PATCH", &path, t, Some(json!({"title": null})));
    assert_eq!(status, 422, "a required field cannot be cleared: {body}");

    // `alg=none`: Ada's claims, unsigned, refused at the edge and by the service.
    let claims = ada.t.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.");
    for base in [gw.to_string(), url_of("blog")] {
        let (status, _) = call("GET", &format!("{base}/api/v1/posts"), Some(&none), None);
        assert_eq!(status, 401, "{base}");
    }

    // The login limit: past five failures an account waits, even with its
    // password; 429 in the envelope with Retry-After.
    let login = format!("{gw}/api/v1/auth/login");
    let wrong = json!({"email": "bob@example.com", "password": "not the password"});
    for _ in 0..5 {
        assert_eq!(call("POST", &login, None, Some(wrong.clone())).0, 401);
    }
    let right = json!({"email": "bob@example.com", "password": "correct horse battery"});
    match ureq::post(&login).send_json(right) {
        Err(ureq::Error::Status(429, response)) => {
            let wait: u64 = response
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .expect("a Retry-After in seconds");
            assert!(wait > 0);
            let body: Value = response.into_json().unwrap();
            assert_eq!(body["success"], json!(false), "{body}");
        }
        other => panic!("the sixth login was not refused: {other:?}"),
    }
    admin
}

#[test]
fn the_article_system_runs_on_postgres() {
    run_system("postgres");
}

#[test]
fn the_article_system_runs_on_sqlite() {
    run_system("sqlite");
}

/// Builds the workspace at `root` and copies `bins` out of the shared target dir.
/// A client's view of the API through the gateway, using only the monolith's old
/// (unversioned) paths: the status of every call, in order.
fn api_suite(gw: &str, tag: &str) -> Vec<(String, u16)> {
    let mut seen = Vec::new();
    let mut record = |what: &str, (status, body): (u16, Value)| {
        seen.push((what.to_string(), status));
        body
    };
    let creds = json!({"email": format!("{tag}@example.com"), "password": "correct horse battery"});
    record(
        "register",
        call(
            "POST",
            &format!("{gw}/api/auth/register"),
            None,
            Some(creds.clone()),
        ),
    );
    let body = record(
        "login",
        call("POST", &format!("{gw}/api/auth/login"), None, Some(creds)),
    );
    let token = body["data"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let t = Some(token.as_str());
    record(
        "users without a token",
        call("GET", &format!("{gw}/api/users"), None, None),
    );
    let user = json!({"email": format!("{tag}@example.com"), "display_name": "Ada"});
    let body = record(
        "create user",
        call("POST", &format!("{gw}/api/users"), t, Some(user)),
    );
    let user_id = body["data"]["id"].as_i64().unwrap_or(0);
    let post = json!({"title": "Hello", "body": "text", "author_id": user_id, "published": true});
    let body = record(
        "create post",
        call("POST", &format!("{gw}/api/posts"), t, Some(post.clone())),
    );
    let post_id = body["data"]["id"].as_i64().unwrap_or(0);
    record(
        "read post",
        call("GET", &format!("{gw}/api/posts/{post_id}"), t, None),
    );
    record(
        "list posts",
        call("GET", &format!("{gw}/api/posts?page=1"), t, None),
    );
    record(
        "update post",
        call("PUT", &format!("{gw}/api/posts/{post_id}"), t, Some(post)),
    );
    let orphan = json!({"title": "x", "body": "", "author_id": 999_999, "published": false});
    record(
        "post by a missing author",
        call("POST", &format!("{gw}/api/posts"), t, Some(orphan)),
    );
    record(
        "invalid post",
        call(
            "POST",
            &format!("{gw}/api/posts"),
            t,
            Some(json!({"title": 1})),
        ),
    );
    record(
        "missing post",
        call("GET", &format!("{gw}/api/posts/999999"), t, None),
    );
    record(
        "posts without a token",
        call("GET", &format!("{gw}/api/posts"), None, None),
    );
    record(
        "read user",
        call("GET", &format!("{gw}/api/users/{user_id}"), t, None),
    );
    let other = register_and_login_at(gw, "/api/auth", &format!("{tag}-other@example.com"));
    record(
        "another user patches the post",
        call(
            "PATCH",
            &format!("{gw}/api/posts/{post_id}"),
            Some(other.as_str()),
            Some(json!({"title": "Mine"})),
        ),
    );
    record(
        "the author patches the post",
        call(
            "PATCH",
            &format!("{gw}/api/posts/{post_id}"),
            t,
            Some(json!({"title": "Mine"})),
        ),
    );
    record(
        "delete post",
        call("DELETE", &format!("{gw}/api/posts/{post_id}"), t, None),
    );
    seen
}

#[test]
fn a_split_monolith_answers_clients_as_before() {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&msgen(dir.path(), &["new", "shop", "--yes", "--monolith"]));
    let root = dir.path().join("shop");
    let run_id = format!("{}_{}", std::process::id(), free_port());
    let monolith_db = format!("postgres://postgres@127.0.0.1:5432/e2e_{run_id}_monolith");

    let start_gateway = |bin: &Path, upstreams: &[(&str, String)]| {
        let port = free_port();
        let mut env = vec![
            ("PORT".to_string(), port.to_string()),
            ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
        ];
        for (k, v) in upstreams {
            env.push((k.to_string(), v.clone()));
        }
        let mut p = Proc::start(bin, "gateway", &env);
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&url, &mut p);
        (p, url)
    };
    let start_monolith = |bin: &Path| {
        let port = free_port();
        let env = vec![
            ("PORT".to_string(), port.to_string()),
            ("DATABASE_URL".to_string(), monolith_db.clone()),
            ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
        ];
        let mut p = Proc::start(bin, "monolith", &env);
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&url, &mut p);
        (p, url)
    };

    // The untouched monolith behind the gateway.
    let before_bin = dir.path().join("bin-before");
    build_bins(&root, &before_bin, &["gateway", "monolith"]);
    let (mono, mono_url) = start_monolith(&before_bin);
    let (gateway, gw) = start_gateway(&before_bin, &[("MONOLITH_URL", mono_url.clone())]);
    let before = api_suite(&gw, "before");
    gateway.terminate();
    mono.terminate();
    assert!(
        before.iter().any(|(w, s)| w == "create post" && *s == 201),
        "{before:?}"
    );
    assert!(
        before
            .iter()
            .any(|(w, s)| w == "another user patches the post" && *s == 403),
        "{before:?}"
    );

    // Split the blog module out; both crates build and pass their own tests.
    assert_ok(&msgen(&root, &["split", "blog"]));
    {
        let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cargo(&root, &["test", "-p", "monolith", "-p", "blog-service"]);
    }
    let after_bin = dir.path().join("bin-after");
    build_bins(&root, &after_bin, &["gateway", "monolith", "blog-service"]);
    let (mono, mono_url) = start_monolith(&after_bin);
    let blog_port = free_port();
    let blog_url = format!("http://127.0.0.1:{blog_port}");
    let blog_env = vec![
        ("PORT".to_string(), blog_port.to_string()),
        (
            "DATABASE_URL".to_string(),
            format!("postgres://postgres@127.0.0.1:5432/e2e_{run_id}_blog"),
        ),
        ("USER_SERVICE_URL".to_string(), mono_url.clone()),
        ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
    ];
    let mut blog = Proc::start(&after_bin, "blog-service", &blog_env);
    wait_healthy(&blog_url, &mut blog);
    let (gateway, gw) = start_gateway(
        &after_bin,
        &[
            ("MONOLITH_URL", mono_url.clone()),
            ("BLOG_SERVICE_URL", blog_url.clone()),
        ],
    );

    // Clients do not notice the cut.
    let after = api_suite(&gw, "after");
    assert_eq!(before, after);

    // But the posts now live in the blog service and its own database...
    let token = register_and_login_at(&gw, "/api/auth", "check@example.com");
    let t = Some(token.as_str());
    let (_, body) = call(
        "POST",
        &format!("{gw}/api/users"),
        t,
        Some(json!({"email": "c@example.com", "display_name": "C"})),
    );
    let user_id = body["data"]["id"].as_i64().unwrap();
    let post = json!({"title": "Moved", "body": "", "author_id": user_id, "published": true});
    let (status, body) = call("POST", &format!("{gw}/api/posts"), t, Some(post));
    assert_eq!(status, 201, "{body}");
    let post_id = body["data"]["id"].as_i64().unwrap();
    // On its own port, the service checks the token itself.
    let direct = format!("{blog_url}/api/v1/posts/{post_id}");
    assert_eq!(call("GET", &direct, None, None).0, 401);
    let (status, _) = call("GET", &direct, t, None);
    assert_eq!(status, 200, "the post is not in the blog service");
    let (status, _) = call(
        "GET",
        &format!("{mono_url}/api/posts/{post_id}"),
        None,
        None,
    );
    assert_eq!(status, 404, "the monolith still serves posts");
    let (_, body) = call("GET", &format!("{gw}/api/v1/blog"), t, None);
    assert_eq!(body["data"]["service"], json!("blog"));
    // ...while users are still served by the monolith.
    let (status, _) = call("GET", &format!("{mono_url}/api/users/{user_id}"), t, None);
    assert_eq!(status, 200);

    gateway.terminate();
    blog.terminate();
    mono.terminate();

    // A second split works too.
    assert_ok(&msgen(&root, &["split", "user"]));
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cargo(&root, &["build"]);
}

/// Resident memory of a process, in KiB.
fn rss_kib(p: &Proc) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs wrk against `url` with the token; returns its report.
fn wrk(url: &str, token: &str, seconds: u64) -> std::thread::JoinHandle<String> {
    let (url, header) = (url.to_string(), format!("Authorization: Bearer {token}"));
    std::thread::spawn(move || {
        let out = Command::new(common::require_tool("wrk"))
            .args(["-t2", "-c100", "--latency", "--timeout", "10s"])
            .arg(format!("-d{seconds}s"))
            .args(["-H", &header, &url])
            .output()
            .expect("wrk runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// `(requests, non-2xx responses, socket errors)` of a wrk report.
fn wrk_counts(report: &str) -> (u64, u64, bool) {
    let requests = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    let non_2xx = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (requests, non_2xx, report.contains("Socket errors"))
}

/// Every one of `n` calls answers 200: the system is serving again.
fn all_ok(url: &str, token: &str, n: usize) {
    for i in 0..n {
        let (status, body) = call("GET", url, Some(token), None);
        assert_eq!(status, 200, "call {i} after the fault: {body}");
    }
}

/// The spans of `trace_id` the collector received, as one chain: the gateway's
/// server span (child of `caller`), blog's server span under it, and under blog's,
/// its query inserting the post, its call to user (a client span, with user's
/// server span under it) and its publishing of the event (a producer span, with
/// user's consumer span under it). Waits for the batches to come.
fn exported_trace(
    collector: &common::otlp::Collector,
    trace_id: &str,
    caller: &str,
) -> [common::otlp::Span; 7] {
    const SERVER: u64 = 2;
    const CLIENT: u64 = 3;
    const PRODUCER: u64 = 4;
    const CONSUMER: u64 = 5;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans: Vec<_> = collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        let child = |service: &str, kind: u64, parent: &str| {
            spans
                .iter()
                .find(|s| s.service == service && s.kind == kind && s.parent == parent)
                .cloned()
        };
        let gateway = child("gateway", SERVER, caller);
        let blog = gateway
            .as_ref()
            .and_then(|g| child("blog-service", SERVER, &g.span_id));
        // Blog's client spans: its query and its call to user.
        let blog_client = |named: &dyn Fn(&str) -> bool| {
            let blog = blog.as_ref()?;
            spans
                .iter()
                .find(|s| {
                    s.service == "blog-service"
                        && s.kind == CLIENT
                        && s.parent == blog.span_id
                        && named(&s.name)
                })
                .cloned()
        };
        let query = blog_client(&|name| name.starts_with("INSERT "));
        let call = blog_client(&|name| name == "GET");
        let user = call
            .as_ref()
            .and_then(|c| child("user-service", SERVER, &c.span_id));
        let producer = blog
            .as_ref()
            .and_then(|b| child("blog-service", PRODUCER, &b.span_id));
        let consumer = producer
            .as_ref()
            .and_then(|p| child("user-service", CONSUMER, &p.span_id));
        if let (Some(g), Some(b), Some(q), Some(c), Some(u), Some(p), Some(e)) =
            (gateway, blog, query, call, user, producer, consumer)
        {
            return [g, b, q, c, u, p, e];
        }
        assert!(
            Instant::now() < deadline,
            "the spans of trace {trace_id} do not all reach the collector as one chain: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Observability first: one request with a `traceparent` followed through the
/// gateway into blog and the user service it calls (the same trace id in the three
/// logs, and as one tree of exported OpenTelemetry spans), and counted by each
/// binary's `/metrics`. Then load and faults: 60 s of
/// wrk (100 connections) through the gateway
/// with no error and flat memory; a service killed during load and started again is
/// served without restarting the gateway; its database connections dropped during
/// load (what a PostgreSQL restart does to them, without stopping the machine's
/// server under the other tests), the service recovers on its own.
#[test]
fn the_system_is_traced_holds_load_and_recovers_from_faults() {
    require_postgres();
    common::require_nats();
    common::require_tool("wrk");
    let dir = tempfile::tempdir().unwrap();
    let bin = build(dir.path(), "postgres");
    let run_id = format!("load_{}_{}", std::process::id(), free_port());
    let names = ["auth", "user", "blog"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let env = |i: usize| service_env("postgres", dir.path(), &run_id, names[i], ports[i], &url(1));
    let gw_port = free_port();
    let gw = format!("http://127.0.0.1:{gw_port}");
    let collector = common::otlp::Collector::start();
    // Starts the three services and the gateway; with `logs`, each logs every
    // request (with its trace id) into `logs/<name>.log` and exports its spans to
    // `collector`.
    let start = |logs: Option<&Path>, metrics_port: u16| -> (Vec<Proc>, Proc) {
        let launch = |name: &str, mut env: Vec<(String, String)>| match logs {
            Some(dir) => {
                env.push(("RUST_LOG".into(), "info".into()));
                // The default batch delay (5 s): the spans of the last requests
                // before SIGTERM reach the collector only if shutdown flushes them.
                env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.endpoint()));
                Proc::start_logged(&bin, name, &env, &dir.join(format!("{name}.log")))
            }
            None => Proc::start(&bin, name, &env),
        };
        let mut procs: Vec<Proc> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut p = launch(&format!("{name}-service"), env(i));
            wait_healthy(&url(i), &mut p);
            procs.push(p);
        }
        let mut gw_env = vec![
            ("PORT".to_string(), gw_port.to_string()),
            ("METRICS_PORT".to_string(), metrics_port.to_string()),
            ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
        ];
        for (i, name) in names.iter().enumerate() {
            gw_env.push((format!("{}_SERVICE_URL", name.to_uppercase()), url(i)));
        }
        let mut gateway = launch("gateway", gw_env);
        wait_healthy(&gw, &mut gateway);
        (procs, gateway)
    };

    // One request followed through the gateway into blog, which calls user: the
    // same trace id in the three logs, and every binary's /metrics counted it.
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let metrics_port = free_port();
    let (procs, gateway) = start(Some(logs.as_path()), metrics_port);
    let token = register_and_login(&gw, "load@example.com");
    let (status, body) = call(
        "POST",
        &format!("{gw}/api/v1/users"),
        Some(&token),
        Some(json!({"email": "ada@example.com", "display_name": "Ada", "age": 36})),
    );
    assert_eq!(status, 201, "{body}");
    let author = body["data"]["id"].as_i64().unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = ureq::post(&format!("{gw}/api/v1/posts"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send_json(
            json!({"title": "Load", "body": "under load", "author_id": author, "published": true}),
        )
        .expect("the post is created");
    assert_eq!(response.status(), 201);
    let metrics = |url: &str| -> String {
        ureq::get(&format!("{url}/metrics"))
            .call()
            .expect("/metrics answers")
            .into_string()
            .unwrap()
    };
    let blog_metrics = metrics(&url(2));
    assert!(
        blog_metrics.contains("http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/posts\",status=\"201\"} 1\n"),
        "{blog_metrics}"
    );
    assert!(
        blog_metrics.contains("db_pool_connections{state=\"idle\"}"),
        "{blog_metrics}"
    );
    let user_metrics = metrics(&url(1));
    assert!(
        user_metrics.contains("route=\"/api/v1/users/{id}\",status=\"200\"}"),
        "{user_metrics}"
    );
    let gw_metrics = metrics(&format!("http://127.0.0.1:{metrics_port}"));
    assert!(
        gw_metrics.contains(
            "upstream_request_duration_seconds_count{upstream=\"blog\",status=\"201\"} 1\n"
        ),
        "{gw_metrics}"
    );
    // The gateway counts proxied requests under the services.toml route.
    assert!(
        gw_metrics.contains(
            "http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/posts\",status=\"201\"} 1\n"
        ),
        "{gw_metrics}"
    );
    // The metrics stay inside: the gateway's public port does not serve them.
    let (status, _) = call("GET", &format!("{gw}/metrics"), None, None);
    assert_eq!(status, 404);

    // The same request as OpenTelemetry spans: one tree, from the caller's span
    // through the gateway into blog, its query, then into user by REST (through
    // blog's span of the call) and by the event (through blog's span of publishing).
    let [_, blog_span, query_span, _, user_span, producer_span, consumer_span] =
        exported_trace(&collector, trace_id, "00f067aa0ba902b7");
    assert_eq!(producer_span.name, "post.created publish");
    assert_eq!(blog_span.name, "POST /api/v1/posts");
    assert_eq!(query_span.name, "INSERT posts");
    assert_eq!(user_span.name, "GET /api/v1/users/{id}");
    assert_eq!(consumer_span.name, "post.created process");
    // Probes are not traced.
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| !s.name.contains("/health")),
        "{:#?}",
        collector.spans()
    );

    // OpenAPI: every service's document and the gateway's merged one are valid.
    for (what, base) in [
        ("auth", url(0)),
        ("user", url(1)),
        ("blog", url(2)),
        ("gateway", gw.clone()),
    ] {
        let doc = ureq::get(&format!("{base}/openapi.json"))
            .call()
            .expect("/openapi.json answers")
            .into_string()
            .unwrap();
        let file = logs.join(format!("{what}.openapi.json"));
        std::fs::write(&file, &doc).unwrap();
        let out = Command::new(common::require_tool("openapi-spec-validator"))
            .arg(&file)
            .output()
            .expect("openapi-spec-validator runs");
        assert!(
            out.status.success(),
            "{what}'s OpenAPI document is not valid:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if what == "gateway" {
            let doc: Value = serde_json::from_str(&doc).unwrap();
            for path in ["/api/v1/auth/login", "/api/v1/users/{id}", "/api/v1/posts"] {
                assert!(
                    doc["paths"][path].is_object(),
                    "{path} is not in the gateway's document"
                );
            }
            assert!(
                doc["paths"]["/health/ready"].is_null(),
                "the gateway does not route /health/ready"
            );
            // The gateway checks tokens on posts, not on login: the document says so.
            assert_eq!(
                doc["paths"]["/api/v1/posts"]["post"]["security"],
                json!([{ "bearerAuth": [] }])
            );
            assert!(doc["paths"]["/api/v1/posts"]["post"]["responses"]["401"].is_object());
            assert!(doc["paths"]["/api/v1/auth/login"]["post"]["security"].is_null());
            assert_eq!(
                doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
                "bearer"
            );
            // billing is not running here: named, not fatal.
            assert_eq!(doc["x-unavailable"], json!(["billing"]));
        }
    }
    // A request just before SIGTERM: its spans are still in the batch, and
    // shutting down sends them.
    let last_trace = "5e3c2f1a9b8d7c6e5f4a3b2c1d0e9f8a";
    let response = ureq::get(&format!("{gw}/api/v1/users/{author}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set(
            "traceparent",
            &format!("00-{last_trace}-00f067aa0ba902b7-01"),
        )
        .call()
        .expect("the author is read");
    assert_eq!(response.status(), 200);
    gateway.terminate();
    for p in procs {
        p.terminate();
    }
    let flushed = collector.spans();
    for service in ["gateway", "user-service"] {
        assert!(
            flushed
                .iter()
                .any(|s| s.trace_id == last_trace && s.service == service),
            "{service} did not send its last span on SIGTERM: {flushed:#?}"
        );
    }
    for name in ["gateway", "blog-service", "user-service"] {
        let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap();
        assert!(
            log.contains(trace_id),
            "trace {trace_id} is not in the log of {name}:\n{log}"
        );
    }

    // The same system, quiet, under load.
    let (mut procs, gateway) = start(None, free_port());
    let posts = format!("{gw}/api/v1/posts");
    all_ok(&posts, &token, 200);

    // Sustained load: no error of any kind, and memory that does not grow.
    let (gw_before, blog_before) = (rss_kib(&gateway), rss_kib(&procs[2]));
    let report = wrk(&posts, &token, 60).join().unwrap();
    let (gw_after, blog_after) = (rss_kib(&gateway), rss_kib(&procs[2]));
    println!("wrk, 60 s, 100 connections, GET /api/v1/posts through the gateway:\n{report}");
    println!("resident memory (KiB): gateway {gw_before} -> {gw_after}, blog {blog_before} -> {blog_after}");
    let (requests, errors, socket_errors) = wrk_counts(&report);
    assert!(requests > 1000, "{report}");
    assert_eq!(errors, 0, "non-2xx answers under load:\n{report}");
    assert!(!socket_errors, "socket errors under load:\n{report}");
    for (what, before, after) in [
        ("gateway", gw_before, gw_after),
        ("blog", blog_before, blog_after),
    ] {
        assert!(
            after < before * 2 + 32 * 1024,
            "{what}'s memory grew from {before} KiB to {after} KiB under load"
        );
    }

    // The blog service killed under load, then started again: served again through
    // the same gateway.
    let load = wrk(&posts, &token, 12);
    std::thread::sleep(Duration::from_secs(3));
    let blog = procs.remove(2);
    drop(blog); // SIGKILL
    std::thread::sleep(Duration::from_secs(2));
    let mut again = Proc::start(&bin, "blog-service", &env(2));
    wait_healthy(&url(2), &mut again);
    procs.push(again);
    let report = load.join().unwrap();
    println!("wrk while blog-service was killed and restarted:\n{report}");
    all_ok(&posts, &token, 100);

    // Its database connections dropped under load: the pool reconnects by itself.
    let load = wrk(&posts, &token, 10);
    std::thread::sleep(Duration::from_secs(3));
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc"])
        .arg(format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'e2e_{run_id}_blog'"
        ))
        .output()
        .expect("psql runs");
    let dropped = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && dropped != "0",
        "no connection dropped: {dropped:?}"
    );
    let report = load.join().unwrap();
    println!("wrk while {dropped} database connection(s) of blog-service were dropped:\n{report}");
    all_ok(&posts, &token, 100);
    assert!(
        procs[2].child.try_wait().unwrap().is_none(),
        "blog-service exited"
    );
    gateway.terminate();
}
