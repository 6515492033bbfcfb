//! `msgen dev` on a pseudo-terminal, against the machine's PostgreSQL and NATS:
//! it builds the built-in example, starts its services and gateway, shows them
//! ready, names a service that cannot start while the others run, rebuilds and
//! restarts only what a saved change affects (`generate` first when it is
//! `services.toml`), and leaves no process behind on Ctrl-C.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::run::free_port;
use common::{assert_ok, example, msgen, msgen_bin, require_nats, require_postgres, DropDb};
use rexpect::process::wait::WaitStatus;
use rexpect::session::spawn_command;

/// The first build of a generated workspace can take minutes on two cores.
const TIMEOUT_MS: u64 = 900_000;

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

#[test]
fn dev_runs_the_system_and_restarts_what_changed() {
    require_postgres();
    require_nats();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("devloop{}", std::process::id());
    let _dbs: Vec<DropDb> = ["auth", "user", "blog"]
        .iter()
        .map(|s| DropDb(format!("{name}_{s}")))
        .collect();
    // The example on ports of this test's own.
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let text = std::fs::read_to_string(example("blogsys"))
        .unwrap()
        .replace("port = 3001", &format!("port = {}", ports[0]))
        .replace("port = 3002", &format!("port = {}", ports[1]))
        .replace("port = 3003", &format!("port = {}", ports[2]))
        .replace("port = 8080", &format!("port = {}", ports[3]));
    let config = dir.path().join("services.toml");
    std::fs::write(&config, text).unwrap();
    assert_ok(&msgen(
        dir.path(),
        &["new", &name, "--yes", "--config", config.to_str().unwrap()],
    ));
    let root = dir.path().join(&name);
    let _lock = common::CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::claim_target(&root);

    // Something else holds the blog service's port: it cannot start.
    let squatter = TcpListener::bind(("127.0.0.1", ports[2])).unwrap();
    let mut cmd = Command::new(msgen_bin());
    cmd.current_dir(&root)
        .arg("dev")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("RUST_LOG", "info")
        .env("CARGO_TARGET_DIR", common::generated_target_dir())
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .env("CARGO_INCREMENTAL", "0")
        .env("SQLX_OFFLINE", "true")
        .env("METRICS_PORT", free_port().to_string())
        .env("NATS_SUBJECT_PREFIX", &name)
        .env_remove("DATABASE_URL");
    let mut p = spawn_command(cmd, Some(TIMEOUT_MS)).expect("msgen dev starts on a pty");

    // The services start; blog stops at once, named with its last lines.
    let (before, _) = p
        .exp_regex(r"blog stopped with status \d+; the others keep running")
        .expect("blog's failure is named");
    assert!(before.contains("Started auth on port"), "{before}");
    p.exp_regex(r"gateway +\d+ +ready")
        .expect("a readiness table");
    for port in [ports[0], ports[1], ports[3]] {
        assert!(listening(port), "port {port} does not answer");
    }
    // The system works through the gateway, against PostgreSQL.
    let gw = format!("http://127.0.0.1:{}", ports[3]);
    let registered = ureq::post(&format!("{gw}/api/v1/auth/register"))
        .send_json(
            serde_json::json!({"email": "ada@example.com", "password": "correct horse battery"}),
        )
        .expect("register through the gateway");
    assert_eq!(registered.status(), 201);

    // The port is free again and blog's code changes: only blog is built and
    // started again.
    drop(squatter);
    let handler = root.join("services/blog/src/handlers/post.rs");
    let mut code = std::fs::read_to_string(&handler).unwrap();
    code.push_str("\n// A saved change.\n");
    std::fs::write(&handler, code).unwrap();
    let (rebuilt, _) = p
        .exp_regex(r"blog +\d+ +ready")
        .expect("blog ready after the change");
    assert!(
        rebuilt.contains("Changed services/blog/src/handlers/post.rs"),
        "{rebuilt}"
    );
    assert!(rebuilt.contains("Compiling blog-service"), "{rebuilt}");
    assert!(!rebuilt.contains("Compiling user-service"), "{rebuilt}");
    assert!(rebuilt.contains("Started blog on port"), "{rebuilt}");
    assert!(!rebuilt.contains("Started user on port"), "{rebuilt}");
    assert!(
        listening(ports[2]),
        "blog does not answer after its restart"
    );

    // services.toml changes: generate runs first (a migration for the new
    // field), then the services it touched are built and started again.
    common::edit_config(&root, "age = \"i32?\"", "age = \"i32?\", bio = \"string?\"");
    let (regenerated, _) = p
        .exp_regex(r"user +\d+ +ready")
        .expect("user ready after services.toml changed");
    assert!(regenerated.contains("add column \"bio\""), "{regenerated}");
    assert!(
        regenerated.contains("Started user on port"),
        "{regenerated}"
    );
    assert!(
        !regenerated.contains("Started auth on port"),
        "{regenerated}"
    );
    let profile = ureq::get(&format!("http://127.0.0.1:{}/openapi.json", ports[1]))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        profile.contains("\"bio\""),
        "the restarted user service has no bio"
    );

    // Ctrl-C: every process stops, and msgen exits cleanly.
    p.send_control('c').unwrap();
    p.exp_string("stopped every process").expect("a clean stop");
    match p.process.wait() {
        Ok(WaitStatus::Exited(_, 0)) => {}
        other => panic!("msgen dev ended with {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while ports.iter().any(|p| listening(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for port in &ports {
        assert!(
            !listening(*port),
            "something still listens on {port} after Ctrl-C"
        );
    }
}

#[test]
fn dev_outside_a_project_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = msgen(dir.path(), &["dev"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("services.toml"));
}
