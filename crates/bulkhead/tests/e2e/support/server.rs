//! [`Server`]: one real `bulkhead serve` process for one test, in its own temp dir.
//!
//! It writes the test's config (with `state_dir` inside the temp dir), runs the binary Cargo
//! built for these tests with stdout+stderr to `server.log`, waits (bounded) for
//! `<state_dir>/bindings.json` and exposes the bound addresses, the pids the tests need and
//! the log files. Dropping it stops the manager by pid (SIGTERM, then SIGKILL after a bound),
//! then kills any worker or listener pid it learned that is still alive, and prints the
//! server's output when the test failed. It never signals a process it did not learn by pid.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::dirs::TestDir;
use super::poll;
use super::procs::{self, ProcId};
use super::skip;

/// How long the server may take to write `bindings.json`.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a stopped manager may take to exit before it is killed.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);
/// How long the processes a stopped manager leaves may take to exit before they count as
/// having outlived the test.
pub const SURVIVOR_LIMIT: Duration = Duration::from_secs(10);

/// The binary under test.
pub fn bulkhead_exe() -> &'static str {
    env!("CARGO_BIN_EXE_bulkhead")
}

/// The tests' own Python worker (`tests/apps/app.py`).
pub fn python_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/app.py")
}

/// Whether `python3` can be run; when it cannot, the calling test's skip is recorded
/// ([`super::skip`], kind `missing`) and the test returns.
pub fn python3_available() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip::record(&skip::test_name("python3_available"), &skip::Reason::Missing("python3 is not installed".into()));
    }
    ok
}

/// Starts `bulkhead ARGS` in `dir` with its output to `out`.
fn spawn_manager(args: &[String], dir: &Path, out: File) -> Child {
    let err = out.try_clone().expect("clone server.log handle");
    Command::new(bulkhead_exe())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        // The suite runs as root in CI; its pools set no `user` (the health tests cover that).
        .env("BULKHEAD_ALLOW_ROOT_WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn the bulkhead binary")
}

/// The TOML value for a pool command running the Python app.
pub fn python_command() -> String {
    format!("[\"python3\", \"-u\", {:?}]", python_app().display().to_string())
}

/// The common Python-app config: `before` (e.g. a `[limits]` table), then a site "app" on an
/// ephemeral loopback port routing "/" to the pool "py", which runs the Python app; `pool_extra`
/// holds more keys of `[pools.py]`.
pub fn python_site(before: &str, pool_extra: &str) -> String {
    python_site_routes(before, r#"{ path = "/", pool = "py" }"#, pool_extra)
}

/// [`python_site`] with the site's own `routes` (the entries between `[` and `]`), which may
/// name the pool "py".
pub fn python_site_routes(before: &str, routes: &str, pool_extra: &str) -> String {
    format!(
        r#"{before}
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {routes} ]

[pools.py]
command = {}
{pool_extra}
"#,
        python_command()
    )
}

/// A running `bulkhead serve`.
pub struct Server {
    child: Option<Child>,
    pub manager_pid: u32,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub config_path: Option<PathBuf>,
    output_path: PathBuf,
    /// The `bulkhead` arguments it was started with, for [`Server::restart`].
    args: Vec<String>,
    bindings: Vec<(String, SocketAddr)>,
    seen: Mutex<Vec<ProcId>>,
    /// Declared last: dropped after the processes are gone.
    pub dir: TestDir,
}

impl Server {
    /// Writes `config` (prefixed with a `[server]` table putting `state_dir` at `<dir>/state`)
    /// to `<dir>/bulkhead.toml` and serves it.
    pub fn start(dir: TestDir, config: &str) -> Server {
        assert!(!config.contains("[server]"), "tests let the harness write [server]");
        let text = format!("[server]\nstate_dir = \"state\"\n\n{config}");
        let path = dir.write("bulkhead.toml", text);
        let state_dir = dir.join("state");
        let args = vec!["serve".to_string(), "--config".into(), path.display().to_string()];
        Server::launch(dir, args, state_dir, Some(path))
    }

    /// Runs `bulkhead serve` with no `--config` (the embedded default) with `dir` as its cwd.
    /// `Err(output)` if the manager exited before serving (e.g. its fixed port was taken).
    pub fn try_start_default(dir: TestDir) -> Result<Server, String> {
        let state_dir = dir.join("bulkhead-state");
        let mut server = Server::spawn(dir, vec!["serve".into()], state_dir, None);
        match server.wait_ready() {
            Ok(()) => Ok(server),
            Err(e) => Err(format!("{e}\n{}", server.output())),
        }
    }

    fn launch(dir: TestDir, args: Vec<String>, state_dir: PathBuf, config_path: Option<PathBuf>) -> Server {
        let mut server = Server::spawn(dir, args, state_dir, config_path);
        if let Err(e) = server.wait_ready() {
            panic!("{e}");
        }
        server
    }

    fn spawn(dir: TestDir, args: Vec<String>, state_dir: PathBuf, config_path: Option<PathBuf>) -> Server {
        let output_path = dir.join("server.log");
        let out = File::create(&output_path).expect("create server.log");
        let child = spawn_manager(&args, dir.path(), out);
        let manager_pid = child.id();
        let server = Server {
            child: Some(child),
            manager_pid,
            log_dir: state_dir.join("logs"),
            state_dir,
            config_path,
            output_path,
            args,
            bindings: Vec::new(),
            seen: Mutex::new(Vec::new()),
            dir,
        };
        server.remember(manager_pid);
        server
    }

    /// Waits for `bindings.json` (every entry with an address); an error at once if the
    /// manager exits first, or after [`START_LIMIT`].
    fn wait_ready(&mut self) -> Result<(), String> {
        let path = self.state_dir.join("bindings.json");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(b) = read_bindings(&path) {
                self.bindings = b;
                break;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("bulkhead serve exited with {status} before writing {}", path.display()));
            }
            if Instant::now() >= deadline {
                return Err(format!("no {} within {START_LIMIT:?}", path.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = self.try_listener_pid(Duration::from_secs(10)) {
            self.remember(pid);
        }
        Ok(())
    }

    /// The address of the first binding.
    pub fn addr(&self) -> SocketAddr {
        self.bindings.first().map(|(_, a)| *a).expect("the server reported no binding")
    }

    /// The address bound for the binding written exactly as `binding` in the config.
    pub fn addr_of(&self, binding: &str) -> SocketAddr {
        self.bindings
            .iter()
            .find(|(b, _)| b == binding)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no binding {binding:?} in bindings.json: {:?}", self.bindings))
    }

    /// Every (binding, address) pair of `bindings.json`.
    pub fn bindings(&self) -> &[(String, SocketAddr)] {
        &self.bindings
    }

    /// The listener's pid from `<state_dir>/listener.pid` (waits up to 10 s for it).
    pub fn listener_pid(&self) -> u32 {
        self.try_listener_pid(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no readable {}", self.state_dir.join("listener.pid").display()))
    }

    fn try_listener_pid(&self, limit: Duration) -> Option<u32> {
        let path = self.state_dir.join("listener.pid");
        let mut pid = None;
        poll(limit, || {
            pid = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok());
            pid.is_some()
        });
        pid
    }

    /// Live descendants of the manager other than the listener: the workers (and anything
    /// they started). Each is remembered so it is killed at the end if it survives.
    pub fn worker_pids(&self) -> Vec<u32> {
        let listener = self.try_listener_pid(Duration::ZERO);
        let pids: Vec<u32> =
            procs::descendants_of(self.manager_pid).into_iter().filter(|p| Some(*p) != listener).collect();
        for p in &pids {
            self.remember(*p);
        }
        pids
    }

    /// Remembers a pid to be killed at the end if it is still this same process.
    pub fn remember(&self, pid: u32) {
        if let Some(id) = ProcId::of(pid) {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
    }

    /// Every pid remembered so far (manager, listener, workers).
    pub fn remembered(&self) -> Vec<ProcId> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The manager's stdout+stderr so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.output_path).unwrap_or_default()
    }

    /// `<log_dir>/pools/<pool>.log`, or "" if absent.
    pub fn pool_log(&self, pool: &str) -> String {
        fs::read_to_string(self.log_dir.join("pools").join(format!("{pool}.log"))).unwrap_or_default()
    }

    /// Every file of `<log_dir>/HTTPERR/`, concatenated in name order.
    pub fn httperr_log(&self) -> String {
        concat_dir(&self.log_dir.join("HTTPERR"))
    }

    /// The access-log files of `site` (`<log_dir>/sites/<site>/`), by file name.
    pub fn access_logs(&self, site: &str) -> BTreeMap<String, String> {
        read_dir_files(&self.log_dir.join("sites").join(site))
    }

    /// Sends `sig` to the manager.
    pub fn signal_manager(&self, sig: i32) {
        assert!(procs::signal(self.manager_pid, sig), "could not signal manager {}", self.manager_pid);
    }

    /// Waits up to `limit` for the manager to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the manager (SIGTERM) if it runs and starts it again with the same arguments,
    /// directory and state_dir (its output is appended to the same log), until it serves.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        let _ = fs::remove_file(self.state_dir.join("bindings.json"));
        let out = fs::OpenOptions::new().append(true).open(&self.output_path).expect("open server.log");
        let child = spawn_manager(&self.args, self.dir.path(), out);
        self.manager_pid = child.id();
        self.child = Some(child);
        self.remember(self.manager_pid);
        if let Err(e) = self.wait_ready() {
            panic!("{e}");
        }
    }

    /// SIGTERM, then waits up to [`STOP_LIMIT`]; panics (after SIGKILL) if it does not exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.worker_pids();
        self.signal_manager(libc::SIGTERM);
        match self.wait_exit(STOP_LIMIT) {
            Some(status) => status,
            None => panic!("manager {} did not exit within {STOP_LIMIT:?} of SIGTERM", self.manager_pid),
        }
    }

    fn print_diagnostics(&self) {
        eprintln!("===== bulkhead serve output ({}) =====\n{}", self.output_path.display(), self.output());
        for (name, text) in read_dir_files(&self.log_dir.join("pools")) {
            eprintln!("===== pool log {name} =====\n{}", tail(&text, 8000));
        }
        let httperr = self.httperr_log();
        if !httperr.is_empty() {
            eprintln!("===== HTTPERR =====\n{}", tail(&httperr, 4000));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.worker_pids();
            procs::signal(self.manager_pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                eprintln!("manager {} ignored SIGTERM for 15 s; killing it", self.manager_pid);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let remembered = self.remembered();
        let survivors = procs::reap_survivors(&remembered, SURVIVOR_LIMIT);
        if std::thread::panicking() || !survivors.is_empty() {
            self.print_diagnostics();
        }
        procs::fail_on_survivors(&format!("the test's server (manager {})", self.manager_pid), &survivors);
    }
}

/// Parses `bindings.json`; `None` until it is complete and valid.
fn read_bindings(path: &Path) -> Option<Vec<(String, SocketAddr)>> {
    let text = fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut out = Vec::new();
    for entry in value.as_array()? {
        let binding = entry.get("binding")?.as_str()?.to_string();
        let address: SocketAddr = entry.get("address")?.as_str()?.parse().ok()?;
        out.push((binding, address));
    }
    (!out.is_empty()).then_some(out)
}

fn read_dir_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(text) = fs::read_to_string(e.path()) {
                out.insert(e.file_name().to_string_lossy().into_owned(), text);
            }
        }
    }
    out
}

fn concat_dir(dir: &Path) -> String {
    read_dir_files(dir).into_values().collect::<Vec<_>>().join("")
}

/// The last `n` bytes of `text` (on a char boundary).
pub fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
