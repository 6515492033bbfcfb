//! `msgen dev`: the whole system on this machine in one command. Renders the
//! project if `services.toml` moved on, builds it, starts every service and the
//! gateway pointed at each other on 127.0.0.1 (each creates its database and
//! applies its migrations), prints their logs behind coloured names and a table
//! once they answer, and on every saved change rebuilds and restarts the binaries
//! cargo rebuilt. Ctrl-C stops every process it started.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use anyhow::{Context as _, Result};
use notify::{RecursiveMode, Watcher as _};

use super::{Printer, SchemaArgs, CONFIG_FILE};
use crate::dev::{self, Built, Proc};

/// Lines of each process kept to show when it stops on its own.
const LAST_LINES: usize = 20;
/// How long a change must be followed by quiet before the rebuild starts: an
/// editor's save, or `generate`, writes several files.
const SETTLE: Duration = Duration::from_millis(300);
/// How long a process is given to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const PALETTE: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Yellow,
    AnsiColor::Green,
    AnsiColor::Blue,
    AnsiColor::Red,
];

enum Event {
    Changed(Vec<String>),
    Interrupt,
}

/// One started process.
struct Running {
    proc: Proc,
    child: Child,
    /// The binary it runs, as cargo last built it.
    executable: Option<String>,
    last: Arc<Mutex<VecDeque<String>>>,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Starting(Instant),
    Ready,
    Exited(String),
}

pub fn run(root: &Path, out: Printer) -> Result<ExitCode> {
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot open {}", root.display()))?;
    // Read first: a project that does not load is said before anything starts.
    super::load(&root)?;
    let (tx, rx) = mpsc::channel();
    let interrupt = tx.clone();
    ctrlc::set_handler(move || {
        let _ = interrupt.send(Event::Interrupt);
    })
    .context("cannot catch Ctrl-C")?;
    let _watcher = watch(&root, tx)?;

    let mut sup = Supervisor::new(root.clone(), out);
    if !sup.generate(true)? {
        return Ok(ExitCode::FAILURE);
    }
    let mut next = sup.rebuild_and_restart(&rx);
    out.line("watching for changes; Ctrl-C stops everything");
    loop {
        let event = match std::mem::replace(&mut next, After::Done) {
            After::Interrupted => break,
            After::Changed(paths) => Ok(Event::Changed(paths)),
            After::Done => rx.recv_timeout(Duration::from_millis(250)),
        };
        match event {
            Ok(Event::Interrupt) => break,
            Ok(Event::Changed(first)) => {
                let Some(changed) = settle(&root, &rx, first) else {
                    break;
                };
                if changed.is_empty() {
                    continue;
                }
                let shown: Vec<&str> = changed.iter().take(3).map(String::as_str).collect();
                out.header(
                    "Changed",
                    &format!(
                        "{}{}",
                        shown.join(", "),
                        if changed.len() > 3 { ", ..." } else { "" }
                    ),
                );
                if changed.iter().any(|p| p == CONFIG_FILE) {
                    if !sup.generate(false)? {
                        continue;
                    }
                    // What generate wrote is built next anyway.
                    if settle(&root, &rx, Vec::new()).is_none() {
                        break;
                    }
                }
                next = sup.rebuild_and_restart(&rx);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        sup.tick();
    }
    sup.stop_all();
    out.line("stopped every process; bye");
    Ok(ExitCode::SUCCESS)
}

/// What came while a build ran.
enum After {
    Done,
    Interrupted,
    /// Saved during the build: maybe after cargo read it, so built again.
    Changed(Vec<String>),
}

/// The events waiting in `rx`, without waiting.
fn waiting(rx: &Receiver<Event>) -> After {
    let mut changed = Vec::new();
    for e in rx.try_iter() {
        match e {
            Event::Interrupt => return After::Interrupted,
            Event::Changed(p) => changed.extend(p),
        }
    }
    if changed.is_empty() {
        After::Done
    } else {
        After::Changed(changed)
    }
}

/// Gathers the changes that follow `first` until [`SETTLE`] passes quietly;
/// `None` on Ctrl-C.
fn settle(root: &Path, rx: &Receiver<Event>, first: Vec<String>) -> Option<Vec<String>> {
    let mut changed = first;
    loop {
        match rx.recv_timeout(SETTLE) {
            Ok(Event::Changed(more)) => changed.extend(more),
            Ok(Event::Interrupt) => return None,
            Err(_) => break,
        }
    }
    changed.retain(|p| real_change(root, p));
    changed.sort();
    changed.dedup();
    Some(changed)
}

/// A change worth a build: to a file that is still there, or to a source that
/// was removed (an editor's or a tool's scratch file comes and goes).
fn real_change(root: &Path, rel: &str) -> bool {
    let source = Path::new(rel)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "rs" | "toml" | "sql" | "json" | "lock"));
    source || root.join(rel).exists()
}

/// Watches the project's sources: its top level, and each directory in it but
/// build output and records (a recursive watch of `target/` alone can exhaust
/// the system's inotify watches).
fn watch(root: &Path, tx: Sender<Event>) -> Result<notify::RecommendedWatcher> {
    let base = root.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.kind.is_access() || event.kind.is_other() {
            return;
        }
        let paths: Vec<String> = event
            .paths
            .iter()
            .filter_map(|p| p.strip_prefix(&base).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .filter(|p| !p.is_empty() && dev::matters(p))
            .collect();
        if !paths.is_empty() {
            let _ = tx.send(Event::Changed(paths));
        }
    })
    .context("cannot watch the project for changes")?;
    watcher
        .watch(root, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", root.display()))?;
    for entry in std::fs::read_dir(root)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && dev::matters(&format!("{name}/x")) {
            watcher
                .watch(&entry.path(), RecursiveMode::Recursive)
                .with_context(|| format!("cannot watch {}", entry.path().display()))?;
        }
    }
    Ok(watcher)
}

struct Supervisor {
    root: PathBuf,
    out: Printer,
    running: Vec<Running>,
    /// Owed once every process has answered or stopped.
    table_owed: bool,
}

impl Supervisor {
    fn new(root: PathBuf, out: Printer) -> Self {
        Self {
            root,
            out,
            running: Vec::new(),
            table_owed: false,
        }
    }

    /// Renders the project when `services.toml` asks for changes. Returns whether
    /// the tree is ready to build; a problem is said, and at start-up ends the run.
    fn generate(&self, starting: bool) -> Result<bool> {
        let result = (|| -> Result<ExitCode> {
            let _lock = crate::lock::ProjectLock::acquire(&self.root)?;
            super::generate::run(&self.root, false, false, &SchemaArgs::default(), self.out)
        })();
        match result {
            Ok(code) if code == ExitCode::SUCCESS => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if starting => Err(e),
            Err(e) => {
                crate::report_error(&e);
                eprintln!("the processes keep running as they were; fix it and save again");
                Ok(false)
            }
        }
    }

    /// `cargo build`, then (re)starts what it rebuilt and what is not running.
    /// Says what came meanwhile.
    fn rebuild_and_restart(&mut self, rx: &Receiver<Event>) -> After {
        self.out
            .header("Building", "cargo build --workspace --bins");
        let built = match build(&self.root) {
            Ok(b) => b,
            Err(e) => {
                say(&format!(
                    "{e:#}\nfix it and save: msgen dev builds again{}",
                    if self.running.is_empty() {
                        ""
                    } else {
                        "; the processes keep running as they were"
                    }
                ));
                return waiting(rx);
            }
        };
        let after = waiting(rx);
        if matches!(after, After::Interrupted) {
            return after;
        }
        let plan = match super::load(&self.root) {
            Ok(project) => dev::processes(&project, &dotenv(&self.root)),
            Err(e) => {
                crate::report_error(&e);
                return after;
            }
        };
        // Processes services.toml no longer has, or whose environment changed.
        let mut keep = Vec::new();
        for mut r in std::mem::take(&mut self.running) {
            let same = plan.contains(&r.proc);
            let rebuilt = r
                .proc
                .package
                .as_ref()
                .and_then(|p| built.get(p))
                .is_some_and(|b| !b.fresh || Some(&b.executable) != r.executable.as_ref());
            if !same || rebuilt || matches!(r.state, State::Exited(_)) {
                stop(&mut r);
            } else {
                keep.push(r);
            }
        }
        self.running = keep;
        for (i, proc) in plan.iter().enumerate() {
            if self.running.iter().any(|r| r.proc == *proc) {
                continue;
            }
            let exe = proc.package.as_ref().and_then(|p| built.get(p));
            if proc.package.is_some() && exe.is_none() {
                say(&format!(
                    "cargo built no binary for `{}`; not started",
                    proc.name
                ));
                continue;
            }
            match self.start(proc, exe, i) {
                Ok(r) => {
                    self.table_owed = true;
                    self.out
                        .header("Started", &format!("{} on port {}", proc.name, proc.port));
                    self.running.push(r);
                }
                Err(e) => say(&format!("{}: {e:#}", proc.name)),
            }
        }
        // Start order is plan order, so the table reads the same every time.
        self.running
            .sort_by_key(|r| plan.iter().position(|p| *p == r.proc));
        self.table_owed = true;
        after
    }

    fn start(&self, proc: &Proc, exe: Option<&Built>, index: usize) -> Result<Running> {
        let mut cmd = match (exe, &proc.dir) {
            (Some(b), _) => Command::new(&b.executable),
            (None, dir) => {
                let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
                c.args(["run", "--quiet"]);
                if let Some(d) = dir {
                    c.current_dir(self.root.join(d));
                }
                c
            }
        };
        if exe.is_some() {
            cmd.current_dir(&self.root);
        }
        cmd.envs(&proc.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        own_group(&mut cmd);
        let mut child = cmd.spawn().context("cannot start it")?;
        let last = Arc::new(Mutex::new(VecDeque::new()));
        let style = PALETTE[index % PALETTE.len()].on_default().bold();
        let prefix = format!("{:>10} |", proc.name);
        if let Some(o) = child.stdout.take() {
            relay(o, style, prefix.clone(), Arc::clone(&last));
        }
        if let Some(e) = child.stderr.take() {
            relay(e, style, prefix, Arc::clone(&last));
        }
        Ok(Running {
            proc: proc.clone(),
            child,
            executable: exe.map(|b| b.executable.clone()),
            last,
            state: State::Starting(Instant::now()),
        })
    }

    /// Notices processes that stopped and ones that now answer; prints the
    /// table once none is starting.
    fn tick(&mut self) {
        for r in &mut self.running {
            if matches!(r.state, State::Exited(_)) {
                continue;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                let how = status
                    .code()
                    .map_or_else(|| "by a signal".to_string(), |c| format!("with status {c}"));
                let last = r.last.lock().unwrap_or_else(|e| e.into_inner());
                let mut msg = format!(
                    "{} stopped {how}; the others keep running. Its last lines:",
                    r.proc.name
                );
                for l in last.iter() {
                    msg.push_str(&format!("\n  {l}"));
                }
                drop(last);
                say(&msg);
                r.state = State::Exited(how);
                continue;
            }
            if let State::Starting(since) = r.state {
                if answers(r.proc.port, r.proc.ready_path) {
                    r.state = State::Ready;
                } else if since.elapsed() > Duration::from_secs(60) {
                    r.state = State::Exited("no answer after 60 s".into());
                }
            }
        }
        if self.table_owed
            && !self
                .running
                .iter()
                .any(|r| matches!(r.state, State::Starting(_)))
        {
            self.table_owed = false;
            self.print_table();
        }
    }

    fn print_table(&self) {
        if self.out.quiet {
            return;
        }
        let width = self
            .running
            .iter()
            .map(|r| r.proc.name.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let mut text = format!(
            "\n  {:<width$}  {:>5}  {:<7}  address\n",
            "process", "port", "state"
        );
        for r in &self.running {
            let state = match &r.state {
                State::Ready => "ready".to_string(),
                State::Starting(_) => "starting".to_string(),
                State::Exited(how) => format!("stopped ({how})"),
            };
            let style = if r.state == State::Ready {
                AnsiColor::Green.on_default()
            } else {
                AnsiColor::Red.on_default().bold()
            };
            text.push_str(&format!(
                "  {:<width$}  {:>5}  {style}{state:<7}{style:#}  http://127.0.0.1:{}\n",
                r.proc.name, r.proc.port, r.proc.port
            ));
        }
        crate::emit(&text);
    }

    fn stop_all(&mut self) {
        // The gateway first, then the services it calls.
        for mut r in self.running.drain(..).rev() {
            stop(&mut r);
        }
    }
}

/// A problem of one process or one build, on stderr; the run goes on.
fn say(msg: &str) {
    eprintln!("error: {msg}");
}

/// `.env` of the project, if it has one.
fn dotenv(root: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(root.join(".env"))
        .map(|t| dev::parse_dotenv(&t))
        .unwrap_or_default()
}

/// `cargo build --workspace --bins`: its progress and errors on the terminal,
/// the binaries it built (and whether each was rebuilt) from its JSON messages.
fn build(root: &Path) -> Result<BTreeMap<String, Built>> {
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--workspace",
            "--bins",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo")?;
    let mut json = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut json)
            .context("reading cargo's output")?;
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        anyhow::bail!("cargo build failed ({status})");
    }
    Ok(dev::built_binaries(&json))
}

/// Prints `from`'s lines behind `prefix`, keeping the last [`LAST_LINES`].
fn relay(
    from: impl std::io::Read + Send + 'static,
    style: Style,
    prefix: String,
    last: Arc<Mutex<VecDeque<String>>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            buf.clear();
            {
                let mut stdout = anstream::stdout().lock();
                let _ = writeln!(stdout, "{style}{prefix}{style:#} {line}");
            }
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.len() == LAST_LINES {
                last.pop_front();
            }
            last.push_back(line);
        }
    });
}

/// Whether `GET path` on the port answers 200.
fn answers(port: u16, path: &str) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Puts the process in a process group of its own, so that a Ctrl-C on the
/// terminal reaches msgen alone (which then stops each process in order), and
/// on Linux has it sent SIGTERM if msgen itself dies: no orphan keeps a port.
fn own_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// SIGTERM to the process's group, then SIGKILL after [`STOP_GRACE`].
fn stop(r: &mut Running) {
    if matches!(r.child.try_wait(), Ok(Some(_))) {
        return;
    }
    let group = -(r.child.id() as i32);
    // SAFETY: kill(2) with a process group id; no memory is involved.
    unsafe {
        libc::kill(group, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(r.child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(group, libc::SIGKILL);
    }
    let _ = r.child.wait();
}
