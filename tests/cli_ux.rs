//! What a person sees: summaries of what changed, colour only where it belongs,
//! `--quiet`, next steps, help with examples, shell completions, a man page, and
//! "did you mean" for misspelled service names.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{assert_ok, msgen, msgen_bin, stderr, stdout};

/// A fresh project from the built-in example, in `dir/app`.
fn project(dir: &Path) -> std::path::PathBuf {
    assert_ok(&msgen(dir, &["new", "app", "--yes", "--quiet"]));
    dir.join("app")
}

/// msgen with the given environment, stdout piped, colour settings untouched.
fn msgen_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(msgen_bin());
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("msgen runs")
}

/// `msgen new` writes `.env` with a fresh secret, so that the printed next step
/// (`docker compose up --build`) works as printed: compose resolves with it. The
/// secret is the user's: owner-only, never printed, not in msgen's records, new
/// each time, and an existing `.env` is kept.
#[test]
fn new_writes_a_dot_env_with_a_fresh_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = msgen(dir.path(), &["new", "app", "--yes"]);
    assert_ok(&out);
    let root = dir.path().join("app");
    let env = fs::read_to_string(root.join(".env")).unwrap();
    let secret = env
        .lines()
        .find_map(|l| l.strip_prefix("JWT_SECRET="))
        .expect("a JWT_SECRET line");
    assert!(
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );
    let example = fs::read_to_string(root.join(".env.example")).unwrap();
    assert_eq!(
        env,
        example.replace("JWT_SECRET=\n", &format!("JWT_SECRET={secret}\n"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(root.join(".env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    assert!(!stdout(&out).contains(secret) && !stderr(&out).contains(secret));
    let ignored = fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(ignored.lines().any(|l| l == ".env"), "{ignored}");
    for entry in walk(&root.join(".msgen")) {
        let bytes = fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{} holds the secret",
            entry.display()
        );
    }
    // Regeneration leaves it alone.
    assert_ok(&msgen(&root, &["generate"]));
    assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), env);
    // Another project, another secret.
    assert_ok(&msgen(dir.path(), &["new", "other", "--yes", "--quiet"]));
    let other = fs::read_to_string(dir.path().join("other/.env")).unwrap();
    assert!(!other.contains(secret));
    // The next step works as printed: compose resolves with this .env.
    let tool = common::require_tool("docker-compose");
    let config = common::compose_config(&tool, &root);
    assert!(config.status.success(), "{}", stderr(&config));
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn new_prints_a_summary_and_the_next_steps() {
    let dir = tempfile::tempdir().unwrap();
    let out = msgen(dir.path(), &["new", "app", "--yes"]);
    assert_ok(&out);
    let text = stdout(&out);
    let created = text
        .lines()
        .filter(|l| l.trim_start().starts_with("create "))
        .count();
    assert!(
        text.contains(&format!("\n{created} created\n")),
        "the count matches the files listed:\n{text}"
    );
    // Grouped under the top-level directories, root files first.
    let root = text.find("\n  ./\n").expect("root group");
    let common = text.find("\n  common/\n").expect("common/ group");
    let services = text.find("\n  services/\n").expect("services/ group");
    assert!(root < common && common < services, "{text}");
    assert!(text.contains("\n    create   services.toml\n"), "{text}");
    assert!(text.contains("\n    create   blog/src/main.rs\n"), "{text}");
    // Then what to do next.
    let steps = text.find("Next steps:").expect("next steps");
    let after = &text[steps..];
    for step in [
        "cd app",
        "cargo build",
        "cargo test",
        "docker compose up --build",
    ] {
        assert!(after.contains(step), "{step} missing:\n{after}");
    }
    assert!(services < steps);
}

#[test]
fn add_and_remove_service_summarise_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path());

    let out = msgen(&root, &["add-service", "billing", "--resource", "invoice"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with("Adding service `billing` on port 3004\n"),
        "{text}"
    );
    let counts = text.lines().nth(1).unwrap();
    assert!(
        counts.contains(" created") && counts.contains(" updated"),
        "{text}"
    );
    assert!(text.contains("\n    update   services.toml\n"), "{text}");
    let gateway = text.find("\n  gateway/\n").expect("gateway/ group");
    assert!(
        text[gateway..].contains("\n    update   src/routes.rs\n"),
        "{text}"
    );
    assert!(
        text.contains("\n    create   billing/src/handlers/invoice.rs\n"),
        "{text}"
    );

    // An edited file is kept on removal, and said so with its full path.
    let handler = root.join("services/billing/src/handlers/invoice.rs");
    fs::write(
        &handler,
        fs::read_to_string(&handler).unwrap() + "// mine\n",
    )
    .unwrap();
    let out = msgen(&root, &["remove-service", "billing"]);
    assert_ok(&out);
    let text = stdout(&out);
    let counts = text.lines().nth(1).unwrap();
    assert!(
        counts.contains(" removed") && counts.contains("1 kept"),
        "{text}"
    );
    assert!(
        text.contains("\n    remove   billing/Cargo.toml\n"),
        "{text}"
    );
    assert!(text.contains("\n    keep     billing/src/handlers/invoice.rs\n"));
    assert!(text.contains(
        "note: services/billing/src/handlers/invoice.rs is no longer generated but you edited it"
    ));
    // Its migration stays too (it may have run), and the summary says which.
    assert!(counts.contains("1 migration(s) kept"), "{text}");
    assert!(
        text.contains("\n    keep     billing/migrations/0001_create_invoices.sql\n"),
        "{text}"
    );
    assert!(
        text.contains("note: services/billing/migrations/0001_create_invoices.sql is no longer generated but was kept"),
        "{text}"
    );
    assert!(root
        .join("services/billing/migrations/0001_create_invoices.sql")
        .is_file());
}

#[test]
fn a_merge_is_counted_and_a_clean_tree_is_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path());
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "up to date\n");

    let compose = root.join("compose.yaml");
    fs::write(
        &compose,
        format!("# mine\n{}", fs::read_to_string(&compose).unwrap()),
    )
    .unwrap();
    let toml = root.join("services.toml");
    fs::write(
        &toml,
        fs::read_to_string(&toml)
            .unwrap()
            .replace("port = 3003", "port = 3013"),
    )
    .unwrap();
    let out = msgen(&root, &["generate"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.lines().next().unwrap().contains("1 merged"), "{text}");
    assert!(text.contains("\n  ./\n") && text.contains("    merge    compose.yaml\n"));
}

#[test]
fn quiet_prints_nothing_but_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = msgen(dir.path(), &["new", "app", "--yes", "--quiet"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");
    let root = dir.path().join("app");
    for args in [
        &["add-service", "billing", "-q"][..],
        &["generate", "--quiet"],
        &["generate", "--check", "-q"],
        &["validate", "-q"],
        &["remove-service", "billing", "-q"],
    ] {
        let out = msgen(&root, args);
        assert_ok(&out);
        assert_eq!(stdout(&out), "", "{args:?}");
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    // Errors still show.
    let out = msgen(&root, &["remove-service", "nope", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("no service `nope`"));
}

#[test]
fn colour_only_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path());
    // Piped: plain text.
    let out = msgen_env(&root, &["add-service", "billing"], &[]);
    assert_ok(&out);
    assert!(!stdout(&out).contains('\u{1b}'), "{}", stdout(&out));
    assert_ok(&msgen(&root, &["remove-service", "billing"]));

    // Colour forced on: escape codes; NO_COLOR wins over it.
    let out = msgen_env(
        &root,
        &["add-service", "billing"],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert_ok(&out);
    assert!(stdout(&out).contains("\u{1b}["), "{}", stdout(&out));
    let out = msgen_env(
        &root,
        &["remove-service", "billing"],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    assert_ok(&out);
    assert!(!stdout(&out).contains('\u{1b}'), "{}", stdout(&out));
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    use rexpect::session::spawn_command;
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, no_color: bool| -> String {
        let mut cmd = Command::new(msgen_bin());
        cmd.current_dir(dir.path())
            .args(["new", name, "--yes"])
            .env("TERM", "xterm")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE");
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let mut p = spawn_command(cmd, Some(60_000)).unwrap();
        p.exp_eof().unwrap()
    };
    let coloured = run("tty", false);
    assert!(coloured.contains("\u{1b}["), "{coloured}");
    assert!(coloured.contains("Next steps"), "{coloured}");
    let plain = run("plain", true);
    assert!(plain.contains("Next steps"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "{plain}");
}

#[test]
fn help_lists_the_commands_with_examples() {
    let out = Command::new(msgen_bin()).arg("--help").output().unwrap();
    assert_ok(&out);
    let text = stdout(&out);
    for (cmd, about) in [
        ("new", "Create directory NAME"),
        ("generate", "Render the project"),
        ("validate", "Check services.toml"),
        ("graph", "Print the architecture"),
        ("add-service", "Add a service"),
        ("remove-service", "Remove a service"),
        ("split", "Extract a module"),
        ("completions", "shell completion"),
        ("man", "man page"),
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("{cmd} not listed:\n{text}"));
        assert!(line.contains(about), "{line}");
    }
    assert!(text.contains("Examples:\n  msgen new blogsys"), "{text}");
    // Every command has examples in its own help.
    for cmd in [
        "new",
        "generate",
        "validate",
        "graph",
        "add-service",
        "remove-service",
        "split",
        "completions",
        "man",
    ] {
        let out = Command::new(msgen_bin())
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert_ok(&out);
        assert!(
            stdout(&out).contains("Examples:\n  msgen "),
            "{cmd}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn completions_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(msgen_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_ok(&out);
        let script = stdout(&out);
        for word in [
            "add-service",
            "remove-service",
            "generate",
            "split",
            "dry-run",
            "postgres",
        ] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let out = Command::new(msgen_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bash_completion_script_loads() {
    let out = Command::new(msgen_bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_ok(&out);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("msgen.bash");
    fs::write(&script, &out.stdout).unwrap();
    // Load it and ask for the completions of `msgen add-`.
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && COMP_WORDS=(msgen add-) COMP_CWORD=1 COMP_LINE='msgen add-' COMP_POINT=10 && _msgen msgen add- msgen && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert_ok(&check);
    assert_eq!(stdout(&check).trim(), "add-migration\nadd-service");
}

#[test]
fn man_page_renders() {
    let out = Command::new(msgen_bin()).arg("man").output().unwrap();
    assert_ok(&out);
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH msgen"),
        "{page}"
    );
    assert!(page.contains("add\\-service"), "{page}");
    // The synopsis names every option's value, and roff's preamble comes once.
    assert!(
        page.contains(".SH SYNOPSIS\n\\fBmsgen\\fR [\\fB\\-C\\fR \\fIDIR\\fR] [\\fB\\-q\\fR|\\fB\\-\\-quiet\\fR]"),
        "{page}"
    );
    assert_eq!(page.matches(".el .ds Aq").count(), 1, "{page}");
    // The pages the main one refers to (msgen-split(1), ...) exist too.
    let out = Command::new(msgen_bin())
        .args(["man", "split"])
        .output()
        .unwrap();
    assert_ok(&out);
    let page = stdout(&out);
    assert!(page.contains(".TH msgen-split 1"), "{page}");
    assert!(
        page.contains("\\fBmsgen split\\fR [\\fB\\-\\-from\\fR \\fIDIR\\fR]")
            && page.contains("<\\fIMODULE\\fR>"),
        "{page}"
    );
    let out = Command::new(msgen_bin())
        .args(["man", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn misspelled_service_names_get_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path());
    let before = fs::read_to_string(root.join("services.toml")).unwrap();

    let out = msgen(&root, &["add-service", "billing", "--depends-on", "usr"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("--depends-on usr: no service `usr`") && err.contains("did you mean `user`?"),
        "{err}"
    );
    assert!(!root.join("services/billing").exists());

    let out = msgen(&root, &["remove-service", "blgo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no service `blgo`") && err.contains("did you mean `blog`?"),
        "{err}"
    );

    // Nothing close: the list, no guess.
    let out = msgen(&root, &["remove-service", "inventory"]);
    let err = stderr(&out);
    assert!(
        err.contains("services: auth, user, blog") && !err.contains("did you mean"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(root.join("services.toml")).unwrap(),
        before
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let config = common::example("platform");
    common::assert_ok(&common::msgen(
        dir.path(),
        &[
            "new",
            "pipe",
            "--yes",
            "--quiet",
            "--config",
            config.to_str().unwrap(),
        ],
    ));
    let root = dir.path().join("pipe");
    // Nothing generated left: --dry-run prints every file, far more than a pipe holds.
    std::fs::remove_dir_all(root.join("services")).unwrap();
    let mut child = Command::new(common::msgen_bin())
        .arg("-C")
        .arg(&root)
        .args(["generate", "--dry-run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then hang up, as `| head -c1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// A usage error (exit 2) that names the options and the file they would break,
/// and writes nothing; its stderr.
#[track_caller]
fn refused_option(out: Output, options: &str, file: &str) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{options} would make "))
            && err.contains(&format!("{file} invalid; nothing was written")),
        "{err}"
    );
    err
}

#[test]
fn options_that_break_the_file_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in example's auth service stores users: --database none cannot fit.
    let err = refused_option(
        msgen(dir.path(), &["new", "x", "--yes", "--database", "none"]),
        "--database none",
        "<built-in example>",
    );
    assert!(err.contains("the auth template stores users"), "{err}");
    assert!(
        !err.contains("<built-in example>:"),
        "no line of a file never written: {err}"
    );
    assert!(!dir.path().join("x").exists());

    // add-service on the gateway's port: told as the option's doing.
    let root = project(dir.path());
    let before = fs::read_to_string(root.join("services.toml")).unwrap();
    let err = refused_option(
        msgen(&root, &["add-service", "shop", "--port", "8080"]),
        "adding `shop`",
        "services.toml",
    );
    assert!(err.contains("8080"), "{err}");
    assert_eq!(
        fs::read_to_string(root.join("services.toml")).unwrap(),
        before
    );

    // A file of the user's own in a removed service's directory is named.
    assert_ok(&msgen(&root, &["add-service", "billing"]));
    fs::write(root.join("services/billing/src/mine.rs"), "// mine\n").unwrap();
    let out = msgen(&root, &["remove-service", "billing"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("services/billing/ keeps 1 file(s) msgen did not generate: src/mine.rs"),
        "{text}"
    );
    assert!(root.join("services/billing/src/mine.rs").is_file());

    // The auth service cannot go while resources are owned: who would own them?
    let err = refused_option(
        msgen(&root, &["remove-service", "auth"]),
        "removing `auth`",
        "services.toml",
    );
    assert!(
        err.contains("no service of the project issues tokens"),
        "{err}"
    );
    assert!(root.join("services/auth/src/main.rs").is_file());
}

#[test]
fn a_monolith_says_which_events_it_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = msgen(dir.path(), &["new", "mono", "--monolith", "--yes"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("note: the modules of a monolith call each other in process: the events of `user`, `blog` are left out"),
        "{text}"
    );
    let out = msgen(dir.path(), &["new", "."]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`.` cannot name a project"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_config_of_split_services_makes_a_monolith_of_modules_again() {
    // A project split all the way: each service says where it came from. As the
    // base of a new monolith, each is a module again.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("split.toml");
    std::fs::write(
        &config,
        "[project]\nname = \"shop\"\n\n[[services]]\nname = \"user\"\nport = 3001\nsplit_from = \"monolith\"\n\n[[services]]\nname = \"blog\"\nport = 3002\nsplit_from = \"monolith\"\n",
    )
    .unwrap();
    let out = msgen(
        dir.path(),
        &[
            "new",
            "shop",
            "--monolith",
            "--yes",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    let written = std::fs::read_to_string(dir.path().join("shop/services.toml")).unwrap();
    assert!(!written.contains("split_from"), "{written}");
    assert!(dir.path().join("shop/monolith/src/blog").is_dir());
}
