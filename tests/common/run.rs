//! Running built binaries in tests: free ports, processes stopped on drop, JSON
//! calls over HTTP, and waiting for `/health`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{cargo, CARGO_LOCK};

/// A loopback port nothing listens on, never the same twice in this process: the
/// tests run in parallel, and a port handed out but not yet bound must not be reused.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn start(bin: &Path, name: &str, env: &[(String, String)]) -> Self {
        Self::spawn(bin, name, env, None)
    }

    /// Like [`Proc::start`], with everything it prints appended to `log` (and the
    /// `RUST_LOG` of `env`, when it names one).
    pub fn start_logged(bin: &Path, name: &str, env: &[(String, String)], log: &Path) -> Self {
        Self::spawn(bin, name, env, Some(log))
    }

    fn spawn(bin: &Path, name: &str, env: &[(String, String)], log: Option<&Path>) -> Self {
        let mut cmd = Command::new(bin.join(name));
        cmd.env("RUST_LOG", "warn")
            // The gateway's metrics listener: one port per process, tests run at once.
            .env("METRICS_PORT", free_port().to_string())
            .envs(env.iter().cloned())
            .env("HOST", "127.0.0.1");
        match log {
            Some(path) => {
                let file = std::fs::File::create(path).unwrap();
                cmd.stdout(file.try_clone().unwrap()).stderr(file);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_string(),
            child,
        }
    }

    /// SIGTERM, then the exit status must be success within 10 seconds.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited with {status} after SIGTERM",
                    self.name
                );
                return;
            }
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP call; returns the status and the JSON body (Null when there is none).
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(20));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn wait_healthy(url: &str, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = ureq::get(&format!("{url}/health"))
            .timeout(Duration::from_secs(2))
            .call()
        {
            if r.status() == 200 {
                // Healthy, and still ours: a process that lost its port to another
                // exits at once, while the other one answers.
                std::thread::sleep(Duration::from_millis(300));
                if let Some(status) = proc.child.try_wait().unwrap() {
                    panic!("{} exited with {status} while {url} answered", proc.name);
                }
                return;
            }
        }
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!("{} exited early with {status}", proc.name);
        }
        assert!(
            Instant::now() < deadline,
            "{} never became healthy",
            proc.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Builds the workspace at `root` and copies its binaries `bins` into `bin`.
pub fn build_bins(root: &Path, bin: &Path, bins: &[&str]) {
    std::fs::create_dir_all(bin).unwrap();
    let _lock = CARGO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // The executables of *this* workspace, as cargo reports them: target/debug/<name>
    // is shared by every generated workspace and may hold another one's binary.
    let out = cargo(root, &["build", "--bins", "--message-format=json"]);
    let mut built = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(name), Some(exe)) =
            (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            built.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    for name in bins {
        let exe = built
            .get(*name)
            .unwrap_or_else(|| panic!("cargo built no binary {name}: {built:?}"));
        std::fs::copy(exe, bin.join(name)).unwrap();
    }
}
