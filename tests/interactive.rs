//! `msgen new NAME` on a terminal: its questions answered through a real
//! pseudo-terminal, and the services.toml they give compared with what the
//! equivalent flags and commands write. Without a terminal it never asks.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, msgen, msgen_bin, stderr};
use rexpect::process::wait::WaitStatus;
use rexpect::session::{spawn_command, PtySession};

/// Every expectation fails after this long instead of hanging the suite.
const TIMEOUT_MS: u64 = 60_000;

/// Runs `msgen args...` in `dir` on a new pseudo-terminal.
fn spawn(dir: &Path, args: &[&str]) -> PtySession {
    let mut cmd = Command::new(msgen_bin());
    cmd.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    spawn_command(cmd, Some(TIMEOUT_MS)).expect("msgen starts on a pty")
}

/// Waits for a prompt that contains `prompt`.
#[track_caller]
fn expect(p: &mut PtySession, prompt: &str) {
    if let Err(e) = p.exp_string(prompt) {
        panic!("no prompt {prompt:?}: {e}");
    }
}

/// Types `keys` one at a time, as a person would.
fn keys(p: &mut PtySession, keys: &str) {
    for c in keys.chars() {
        p.send(&c.to_string()).unwrap();
        p.flush().unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
}

/// Waits for the end and returns the exit status and what was printed last.
fn finish(mut p: PtySession) -> (i32, String) {
    let rest = p.exp_eof().expect("msgen exits");
    let code = match p.process().wait() {
        Ok(WaitStatus::Exited(_, code)) => code,
        // Already reaped while reading to the end.
        Ok(_) | Err(_) => match p.process().status() {
            Some(WaitStatus::Exited(_, code)) => code,
            other => panic!("msgen did not exit normally: {other:?}\n{rest}"),
        },
    };
    (code, rest)
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

#[test]
fn answers_give_the_same_file_as_the_equivalent_commands() {
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(asked.path(), &["new", "app"]);
    expect(&mut p, "Services");
    // auth, user and blog are all chosen: space drops auth, the first.
    keys(&mut p, " \r");
    expect(&mut p, "Other services");
    keys(&mut p, "billing\r");
    expect(&mut p, "Layout");
    keys(&mut p, "\r");
    expect(&mut p, "Database");
    keys(&mut p, "j\r");
    expect(&mut p, "Gateway port");
    keys(&mut p, "8090\r");
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("Next steps"), "{rest}");
    let got = read(asked.path().join("app/services.toml"));

    // The same project through flags and commands. Without the auth service, `new`
    // leaves out ownership and roles (no token would say who calls); on an existing
    // project `remove-service auth` refuses while they are declared.
    let flags = tempfile::tempdir().unwrap();
    let builtin = read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/blogsys.toml"
    ));
    let open: String = builtin
        .lines()
        .filter(|l| !l.starts_with("  owned = ") && !l.starts_with("  roles = "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(open, builtin);
    let config = flags.path().join("open.toml");
    fs::write(&config, open).unwrap();
    assert_ok(&msgen(
        flags.path(),
        &[
            "new",
            "app",
            "--yes",
            "--database",
            "sqlite",
            "--config",
            config.to_str().unwrap(),
        ],
    ));
    let root = flags.path().join("app");
    let refused = msgen(flags.path(), &["new", "guarded", "--yes"]);
    assert_ok(&refused);
    let refused = msgen(&flags.path().join("guarded"), &["remove-service", "auth"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert_ok(&msgen(&root, &["remove-service", "auth"]));
    assert_ok(&msgen(&root, &["add-service", "billing"]));
    let want = read(root.join("services.toml")).replace("port = 8080", "port = 8090");
    // The same file but its opening comment: the built-in example's words, taken
    // through --config as a file of the user's own, against a description of the
    // project the answers made.
    let body = |text: &str| text.split_once("\n\n").unwrap().1.to_string();
    assert_eq!(body(&got), body(&want));
    assert!(
        got.starts_with("# app: an API gateway in front of the user, blog and billing services, each with a\n# database of its own.\n"),
        "{got}"
    );
    // billing takes the port auth left.
    assert!(got.contains("name = \"billing\"\nport = 3001"), "{got}");
    assert!(!got.contains("name = \"auth\""), "{got}");

    // And the rendered project agrees with it.
    assert_ok(&msgen(&asked.path().join("app"), &["generate", "--check"]));
}

#[test]
fn enter_everywhere_gives_the_built_in_example() {
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(asked.path(), &["new", "app"]);
    for prompt in [
        "Services",
        "Other services",
        "Layout",
        "Database",
        "Gateway port",
    ] {
        expect(&mut p, prompt);
        keys(&mut p, "\r");
    }
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");

    let flags = tempfile::tempdir().unwrap();
    assert_ok(&msgen(flags.path(), &["new", "app", "--yes"]));
    assert_eq!(
        read(asked.path().join("app/services.toml")),
        read(flags.path().join("app/services.toml"))
    );
}

#[test]
fn flags_answer_their_questions() {
    // --database and --monolith are given: only the services and the port are asked
    // (another prompt would stop the keys below from reaching the end).
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(
        asked.path(),
        &["new", "app", "--database", "sqlite", "--monolith"],
    );
    expect(&mut p, "Services");
    // Keep auth only.
    keys(&mut p, "j j \r");
    expect(&mut p, "Other services");
    keys(&mut p, "cart, pricing\r");
    expect(&mut p, "Gateway port");
    keys(&mut p, "\r");
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");
    let got = read(asked.path().join("app/services.toml"));
    assert!(got.contains("[monolith]\nport = 3000"), "{got}");
    assert!(got.contains("database = \"sqlite\""), "{got}");
    for (name, port) in [("auth", 3001), ("cart", 3002), ("pricing", 3003)] {
        assert!(
            got.contains(&format!("name = \"{name}\"\nport = {port}")),
            "{name} on {port}: {got}"
        );
    }
    assert_eq!(got.matches("monolith = true").count(), 3, "{got}");
    assert!(!got.contains("\"blog\""), "{got}");
    assert_ok(&msgen(&asked.path().join("app"), &["validate"]));
}

#[test]
fn a_bad_answer_is_asked_again() {
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(asked.path(), &["new", "app", "--database", "sqlite"]);
    expect(&mut p, "Services");
    // Dropping user while blog calls it is refused and the question comes again.
    keys(&mut p, "j \r");
    expect(&mut p, "choose again");
    expect(&mut p, "Services");
    keys(&mut p, "j \r");
    expect(&mut p, "Other services");
    keys(&mut p, "Bad_Name\r");
    expect(&mut p, "is not a valid name");
    keys(&mut p, "\r");
    expect(&mut p, "Layout");
    keys(&mut p, "\r");
    expect(&mut p, "Gateway port");
    // The auth service has 3001.
    keys(&mut p, "3001\r");
    expect(&mut p, "port 3001 is taken by service `auth`");
    keys(&mut p, "9000\r");
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");
    let got = read(asked.path().join("app/services.toml"));
    assert!(got.contains("port = 9000") && got.contains("database = \"sqlite\""));
}

#[test]
fn a_database_the_services_cannot_use_is_asked_again() {
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(asked.path(), &["new", "app"]);
    expect(&mut p, "Services");
    keys(&mut p, "\r");
    expect(&mut p, "Other services");
    keys(&mut p, "\r");
    expect(&mut p, "Layout");
    keys(&mut p, "\r");
    expect(&mut p, "Database");
    // "none": the auth template and the resources need a database.
    keys(&mut p, "jj\r");
    expect(&mut p, "auth template stores users");
    expect(&mut p, "choose again");
    expect(&mut p, "Database");
    keys(&mut p, "k\r");
    expect(&mut p, "Gateway port");
    keys(&mut p, "\r");
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");
    let got = read(asked.path().join("app/services.toml"));
    assert!(got.contains("database = \"sqlite\""), "{got}");
}

#[test]
fn quitting_a_question_writes_nothing() {
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(asked.path(), &["new", "app"]);
    expect(&mut p, "Services");
    keys(&mut p, "q");
    let (code, rest) = finish(p);
    assert_eq!(code, 2, "{rest}");
    assert!(rest.contains("cancelled"), "{rest}");
    assert!(!asked.path().join("app").exists());
}

/// Runs `cmd` and kills it if it has not finished within `limit`.
fn run_with_limit(mut cmd: Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "msgen was still running after {limit:?}: it waited for input\nstderr:\n{}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn without_a_terminal_it_never_asks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(msgen_bin());
    cmd.current_dir(dir.path())
        .args(["new", "app"])
        .stdin(Stdio::null());
    let out = run_with_limit(cmd, Duration::from_secs(60));
    assert_ok(&out);

    let flags = tempfile::tempdir().unwrap();
    assert_ok(&msgen(flags.path(), &["new", "app", "--yes"]));
    assert_eq!(
        read(dir.path().join("app/services.toml")),
        read(flags.path().join("app/services.toml"))
    );
}

#[test]
fn a_terminal_on_stdin_only_is_not_enough() {
    // stdin is the pty, stderr a file: no prompt could be seen, so none is shown.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir.path())
        .arg("-c")
        .arg(format!("exec '{}' new app 2>err.txt", msgen_bin()))
        .env("TERM", "xterm");
    let p = spawn_command(cmd, Some(TIMEOUT_MS)).unwrap();
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert!(dir.path().join("app/services.toml").is_file());
    assert!(!read(dir.path().join("err.txt")).contains("Services"));
}

#[test]
fn yes_on_a_terminal_asks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn(dir.path(), &["new", "app", "--yes", "--quiet"]);
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert!(rest.trim().is_empty(), "--quiet printed: {rest}");
    assert!(dir.path().join("app/services.toml").is_file());
}

#[test]
fn a_large_render_shows_its_progress_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::from("[project]\nname = \"big\"\ndatabase = \"none\"\n");
    for i in 0..40 {
        toml.push_str(&format!(
            "\n[[services]]\nname = \"svc{i}\"\nport = {}\n",
            4000 + i
        ));
    }
    fs::write(dir.path().join("big.toml"), &toml).unwrap();
    let mut p = spawn(dir.path(), &["new", "big", "--config", "big.toml", "--yes"]);
    expect(&mut p, "writing files 0/");
    // The counter is cleared before the summary is printed.
    expect(&mut p, "\r\x1b[2K");
    let (code, rest) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("Next steps"), "{rest}");
    assert!(dir.path().join("big/services/svc39/Cargo.toml").is_file());
    // Piped (CI, logs): no counter.
    let out = msgen(
        dir.path(),
        &["new", "big2", "--config", "big.toml", "--yes"],
    );
    assert_ok(&out);
    assert!(!stderr(&out).contains("writing files"), "{}", stderr(&out));
}

#[test]
fn ctrl_c_restores_the_cursor_and_writes_nothing() {
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(asked.path(), &["new", "app"]);
    expect(&mut p, "Services");
    p.send_control('c').unwrap();
    let (code, rest) = finish(p);
    assert_eq!(code, 2, "{rest}");
    assert!(rest.contains("cancelled; nothing was written"), "{rest}");
    // The list hid the cursor; it is shown again before msgen ends.
    assert!(rest.contains("\x1b[?25h"), "{rest:?}");
    assert!(!asked.path().join("app").exists());
}

#[test]
fn the_services_say_what_keeps_them_and_refusals_fit_the_terminal() {
    let asked = tempfile::tempdir().unwrap();
    let mut p = spawn(asked.path(), &["new", "app"]);
    // Before any choice: who calls whom and who hears whose events.
    expect(&mut p, "hears post.created from blog");
    // Dropping user while blog calls it: refused, the reason in lines that fit.
    keys(&mut p, "j \r");
    let (said, _) = p.exp_regex("choose again").expect("a refusal");
    let message: Vec<&str> = said
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("  ") && !l.contains('\x1b'))
        .collect();
    assert!(
        message.len() > 1,
        "a long reason is broken into lines: {said:?}"
    );
    for line in &message {
        assert!(line.chars().count() <= 120, "{line:?}");
    }
    p.send_control('c').unwrap();
    let (code, _) = finish(p);
    assert_eq!(code, 2);
}
