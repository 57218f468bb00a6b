//! One worker process of a pool (IIS's w3wp): how it is launched, and what the manager tracks
//! about it while it lives.
//!
//! The supervisor calls [`launch`] to start a worker for a pool and keeps the returned
//! [`Worker`] in that pool until the process's exit is observed. Launching prepares the
//! worker's serving socket (a unix socket bound by the manager at
//! `<state_dir>/sockets/<pool>.<id>.sock`, mode 0600, handed over as fd 3 — or a free loopback
//! port in `PORT`; for a `fastcgi` pool, the pool's one [`SharedSocket`] as fd 0,
//! `FCGI_LISTENSOCK_FILENO`, so every process of the pool accepts from the same backlog and a
//! connection made while one php-cgi exits is served by the next), its control channel (a socketpair, fd 4, `BULKHEAD_CONTROL_FD=4`), its
//! environment and credentials ([`crate::identity`]), finds its program on its `PATH` as its
//! user would ([`crate::command`]), then calls [`crate::spawn`], hands the
//! socket file to the listener's user and moves the process into its pool's cgroup. It never
//! waits for the worker: readiness and exits come back to the supervisor as events. The
//! health, recycling and resource fields of [`Worker`] are kept by the supervisor
//! (`supervisor/recycling.rs`, `supervisor/health_checks.rs`).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bulkhead_config::{PoolKind, SocketMode};
use bulkhead_proto::{
    env, Channel, ManagerToListener, ManagerToWorker, Protocol, WorkerAddress, WorkerId, WorkerInfo, WorkerToManager,
};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::cgroup::Cgroups;
use crate::command;
use crate::cpu::CpuWindow;
use crate::event::{Event, EventSender};
use crate::health::PingState;
use crate::identity::{self, ListenerIdentity};
use crate::pool_output::PoolOutput;
use crate::process::{Process, Stop};
use crate::procfs::Usage;
use crate::recycle;
use crate::spawn::{self, SpawnError, SpawnSpec};

/// Why a worker could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Spawn(#[from] SpawnError),
    #[error("{0}")]
    Command(#[from] command::CommandError),
    #[error("cannot create its socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error("cannot find a free loopback port: {0}")]
    Port(io::Error),
    #[error("cannot create its control channel: {0}")]
    Control(io::Error),
    #[error("cannot open its log {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Credentials(String),
    #[error("the pool has no command to run")]
    NoCommand,
}

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Launched, not ready yet; killed (a failed start) if not ready by `deadline`.
    Starting { deadline: Instant },
    /// Taking requests (the listener was sent `WorkerUp`).
    Ready,
    /// Asked to stop: its [`Process::stop`] timer sends SIGTERM, then SIGKILL at
    /// `shutdown_time_limit`.
    Stopping,
    /// Failed its ping and was left alive for debugging (`orphan.enabled`): not routed, not
    /// pinged, not counted as one of the pool's workers; killed when the pool or server stops.
    Orphaned,
}

/// Why the manager ended (or is ending) a worker. Set once, by [`Worker::end`], at the moment
/// the decision is taken; a worker that exits with none set died by itself (a crash, or a
/// failed start if it was never ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Killed for misbehaving — hung, not ready within `startup_time_limit`, refusing
    /// connections — for the reason given: counts as a crash (or a failed start).
    Killed(String),
    /// Replaced by a recycle.
    Recycled,
    /// Stopped on purpose; not a crash.
    Stopped(StopCause),
    /// Failed its ping and left alive, unrouted, for debugging (`orphan.enabled`).
    Orphaned,
}

/// Why a worker was stopped on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The pool had no requests for `idle_timeout`.
    IdleTimeout,
    /// The pool was stopped, disabled or removed.
    PoolOffline,
    /// `processes` was lowered.
    FewerProcesses,
    /// The server is shutting down.
    Shutdown,
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopCause::IdleTimeout => "idle timeout",
            StopCause::PoolOffline => "the pool is offline",
            StopCause::FewerProcesses => "fewer processes configured",
            StopCause::Shutdown => "server shutdown",
        })
    }
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Killed(reason) => f.write_str(reason),
            Ending::Recycled => f.write_str("recycled"),
            Ending::Stopped(cause) => cause.fmt(f),
            Ending::Orphaned => f.write_str("orphaned"),
        }
    }
}

/// A live worker process.
#[derive(Debug)]
pub struct Worker {
    pub id: WorkerId,
    /// Its pid, start time and stop timer ([`crate::process`]).
    pub process: Process,
    pub state: WorkerState,
    pub address: WorkerAddress,
    /// The unix socket file to unlink when it is gone.
    pub socket_path: Option<PathBuf>,
    /// Messages to the worker's control channel.
    pub control: mpsc::UnboundedSender<ManagerToWorker>,
    /// The worker has said something on its control channel, so it understands `Drain`.
    pub speaks_control: bool,
    /// Stopping, and the listener has said it sends the worker nothing more and has nothing
    /// in flight there (`WorkerDrained`), or was never told of it: only then is the worker
    /// told to stop (`Drain`, or SIGTERM once quiet), so no request races its stop.
    pub listener_done: bool,
    /// Read when it exits, to tell a failed exec from a crash.
    pub exec_report: OwnedFd,
    /// Tasks to abort when it is gone (control reader/writer).
    pub tasks: Vec<AbortHandle>,
    /// The readiness probe, while it runs.
    pub probe: Option<AbortHandle>,
    /// Why the manager ends it, once decided (see [`Ending`]); set only through [`Worker::end`].
    ending: Option<Ending>,
    /// Being recycled: still serving while its replacement starts (overlapped recycle).
    pub retiring: Option<recycle::Reason>,
    /// An operator, a config change or the schedule asked for a recycle that waits its turn
    /// (a web garden recycles one worker at a time).
    pub recycle_requested: Option<recycle::Reason>,
    /// Its age and request limits (staggered in a web garden).
    pub limits: recycle::Limits,
    /// When it became ready (`Some` once it was ready at all).
    pub ready_at: Option<Instant>,
    /// Requests it served: its own count from `Pong`, else its share of the listener's
    /// `Activity` reports.
    pub requests: u64,
    /// Health pings, once ready.
    pub ping: Option<PingState>,
    /// The listener was told it is gone (it no longer routes to it).
    gone_sent: bool,
    /// Last resource sample of its process group.
    pub usage: Option<Usage>,
    /// CPU limit window.
    pub cpu: CpuWindow,
}

impl Worker {
    /// Aborts its helper tasks and removes its socket file.
    pub fn release(&mut self) {
        for t in self.tasks.drain(..).chain(self.probe.take()) {
            t.abort();
        }
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }

    // ---- transitions: each returns the message it owes the listener --------------------

    /// `Starting → Ready`, unless the manager already decided to end it. Returns the
    /// `WorkerUp` the listener must get.
    #[must_use = "the listener must be told"]
    pub fn become_ready(&mut self, pool: &bulkhead_config::Pool, now: Instant) -> Option<ManagerToListener> {
        if !matches!(self.state, WorkerState::Starting { .. }) || self.ending.is_some() {
            return None;
        }
        self.state = WorkerState::Ready;
        self.ready_at = Some(now);
        if let Some(p) = self.probe.take() {
            p.abort();
        }
        Some(ManagerToListener::WorkerUp(self.info(pool)))
    }

    /// `→ Stopping` for `why` on the timer `stop` (no-op if already stopping). Returns the
    /// `WorkerDraining` the listener must get while it still routes to the worker.
    #[must_use = "the listener must be told"]
    pub fn begin_stop(&mut self, pool: &str, why: Ending, stop: Stop) -> Option<ManagerToListener> {
        if self.is_stopping() {
            return None;
        }
        self.end(why);
        let routed = self.state == WorkerState::Ready && !self.gone_sent;
        self.state = WorkerState::Stopping;
        self.process.begin_stop(stop);
        routed.then(|| ManagerToListener::WorkerDraining { pool: pool.to_string(), worker: self.id })
    }

    /// Out of routing at once, without draining (a hung worker would never finish): the
    /// `WorkerGone` the listener must get, once. With `orphan`, `Ready → Orphaned`.
    #[must_use = "the listener must be told"]
    pub fn unroute(&mut self, pool: &str, reason: String, orphan: bool) -> Option<ManagerToListener> {
        if orphan {
            self.state = WorkerState::Orphaned;
            self.end(Ending::Orphaned);
        }
        self.retiring = None;
        self.gone(pool, reason)
    }

    /// Its process exited: the `WorkerGone` the listener must get if it still routes to it.
    #[must_use = "the listener must be told"]
    pub fn exited(&mut self, pool: &str, status: &spawn::ExitStatus) -> Option<ManagerToListener> {
        if self.was_ready() {
            self.gone(pool, status.to_string())
        } else {
            None
        }
    }

    fn gone(&mut self, pool: &str, reason: String) -> Option<ManagerToListener> {
        if self.gone_sent {
            return None;
        }
        self.gone_sent = true;
        Some(ManagerToListener::WorkerGone { pool: pool.to_string(), worker: self.id, reason })
    }

    /// The `WorkerUp` payload for this worker of `pool`.
    pub fn info(&self, pool: &bulkhead_config::Pool) -> WorkerInfo {
        WorkerInfo {
            pool: pool.name.clone(),
            worker: self.id,
            pid: self.process.pid.as_raw() as u32,
            address: self.address.clone(),
            protocol: pool.protocol,
            concurrency: pool.concurrency,
        }
    }

    /// Records why the manager ends this worker. The first decision stands: a worker already
    /// killed for hanging is not re-labelled "stopped" by the pool stopping afterwards.
    pub fn end(&mut self, why: Ending) {
        if self.ending.is_none() {
            self.ending = Some(why);
        }
    }

    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Takes the recorded ending when the exit is handled.
    pub fn take_ending(&mut self) -> Option<Ending> {
        self.ending.take()
    }

    /// It was stopped to be replaced (its exit is not a crash; `overlapped = false` waits).
    pub fn is_recycled(&self) -> bool {
        self.ending == Some(Ending::Recycled)
    }

    pub fn was_ready(&self) -> bool {
        self.ready_at.is_some()
    }

    pub fn is_stopping(&self) -> bool {
        self.state == WorkerState::Stopping
    }

    /// Counts as one of the pool's `processes`: starting or ready, and not being replaced.
    pub fn is_live(&self) -> bool {
        matches!(self.state, WorkerState::Starting { .. } | WorkerState::Ready) && self.retiring.is_none()
    }

    pub fn is_orphaned(&self) -> bool {
        self.state == WorkerState::Orphaned
    }
}

/// The listening unix socket every process of a `fastcgi` pool accepts on (fd 0). The manager
/// keeps it open for the pool's life, so a connection queued while a php-cgi exits (after
/// `PHP_FCGI_MAX_REQUESTS`) waits in the backlog for its replacement instead of being refused.
/// Mode 0600, owned by the listener's user; the file is removed when it is dropped.
#[derive(Debug)]
pub struct SharedSocket {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

impl SharedSocket {
    pub fn bind(path: PathBuf, listener: Option<&ListenerIdentity>) -> Result<SharedSocket, LaunchError> {
        let _ = std::fs::remove_file(&path);
        let err = |source| LaunchError::Socket { path: path.clone(), source };
        let bound = std::os::unix::net::UnixListener::bind(&path).map_err(err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        if let Some(l) = listener {
            l.chown(&path).map_err(LaunchError::Credentials)?;
        }
        Ok(SharedSocket { fd: OwnedFd::from(bound), path })
    }
}

impl Drop for SharedSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What every launch needs from the manager.
pub struct LaunchContext<'a> {
    pub self_exe: &'a Path,
    /// The environment workers inherit (from the binary).
    pub env: &'a [(OsString, OsString)],
    pub socket_path: PathBuf,
    pub log_path: PathBuf,
    /// The pool's output pipe, which copies into `log_path` and can reopen it; `None`: the
    /// worker gets the file itself (when the pipe could not be made).
    pub output: Option<&'a PoolOutput>,
    pub events: &'a EventSender,
    /// The binary allows pools without `user` to run as root (see [`identity::check_pool`]).
    pub allow_root: bool,
    /// The listener's identity when it runs as another user: the socket file is given to it.
    pub listener: Option<&'a ListenerIdentity>,
    /// The pool's cgroup, when cgroups are in use.
    pub cgroup: Option<&'a Path>,
    /// The worker's recycling limits.
    pub limits: recycle::Limits,
    /// A `fastcgi` pool's shared socket (used instead of a socket of the worker's own).
    pub shared_socket: Option<&'a SharedSocket>,
}

/// How the manager decides that a pool's worker is ready (besides a `Ready` on its control
/// channel, which always counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Plain HTTP apps: the first HTTP answer to `GET <path>` on its socket.
    HttpProbe(String),
    /// Native-protocol workers and the built-in host: only their control-channel `Ready`.
    ControlOnly,
    /// FastCGI responders: as soon as the program runs (they speak no HTTP and no control).
    Immediate,
}

/// How readiness is decided for `pool`'s workers.
pub fn readiness(pool: &bulkhead_config::Pool) -> Readiness {
    match (pool.kind, pool.protocol) {
        (PoolKind::Fastcgi, _) => Readiness::Immediate,
        (PoolKind::Process, Protocol::Http) => {
            Readiness::HttpProbe(if pool.health.path.is_empty() { "/".to_string() } else { pool.health.path.clone() })
        }
        _ => Readiness::ControlOnly,
    }
}

/// `argv` of a pool's worker: a bare `bulkhead` program is this executable; a `host` pool
/// without a command runs `bulkhead worker`.
pub fn command_line(pool: &bulkhead_config::Pool, self_exe: &Path) -> Result<(String, Vec<String>), LaunchError> {
    command::command_line(pool, self_exe).ok_or(LaunchError::NoCommand)
}

/// Starts one worker of `pool`. Returns at once; the worker is `Starting`.
pub fn launch(pool: &bulkhead_config::Pool, id: WorkerId, ctx: &LaunchContext<'_>) -> Result<Worker, LaunchError> {
    let (program, argv) = command_line(pool, ctx.self_exe)?;
    // The Bulkhead binary itself (the demo app, the built-in host): exec'd through an fd so a
    // pool user that cannot search the checkout's directory still runs it.
    let is_self = Path::new(&program) == ctx.self_exe;
    let mut envs: BTreeMap<OsString, OsString> = ctx.env.iter().cloned().collect();
    for name in [env::LISTEN_FDS, env::LISTEN_PID, env::LISTEN_FDNAMES, env::PORT, env::CONTROL_FD] {
        envs.remove(&OsString::from(name));
    }
    for (k, v) in &pool.env {
        envs.insert(k.into(), v.into());
    }
    // Found as the worker's user on the worker's PATH (the Bulkhead binary is exec'd by fd).
    let credentials = identity::pool_credentials(pool, ctx.allow_root).map_err(LaunchError::Credentials)?;
    let program = if is_self {
        PathBuf::from(program)
    } else {
        let path = envs.get(&OsString::from("PATH")).map_or(OsStr::new(command::DEFAULT_PATH), |p| p.as_os_str());
        let who = identity::Account::of_worker(pool, credentials.as_ref());
        command::resolve(&program, path, &pool.directory, &who)?
    };

    let log: OwnedFd = match ctx.output {
        Some(output) => output.write_end().try_clone_to_owned(),
        None => OpenOptions::new().create(true).append(true).open(&ctx.log_path).map(OwnedFd::from),
    }
    .map_err(|source| LaunchError::Log { path: ctx.log_path.clone(), source })?;
    let stdin = File::open("/dev/null").map_err(|source| LaunchError::Log { path: "/dev/null".into(), source })?;

    // The serving socket.
    let mut socket_fd: Option<OwnedFd> = None;
    let mut socket_path = None;
    let address = match (pool.socket, ctx.shared_socket) {
        (SocketMode::Inherit, Some(shared)) => {
            let err = |source| LaunchError::Socket { path: shared.path.clone(), source };
            socket_fd = Some(shared.fd.try_clone().map_err(err)?);
            WorkerAddress::Unix(shared.path.clone())
        }
        (SocketMode::Inherit, None) => {
            let path = ctx.socket_path.clone();
            let _ = std::fs::remove_file(&path);
            let err = |source| LaunchError::Socket { path: path.clone(), source };
            let listener = std::os::unix::net::UnixListener::bind(&path).map_err(err)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
            if let Some(l) = ctx.listener {
                l.chown(&path).map_err(LaunchError::Credentials)?;
            }
            socket_fd = Some(OwnedFd::from(listener));
            socket_path = Some(path.clone());
            WorkerAddress::Unix(path)
        }
        (SocketMode::Port, _) => {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(LaunchError::Port)?;
            let addr = probe.local_addr().map_err(LaunchError::Port)?;
            drop(probe);
            envs.insert(env::PORT.into(), addr.port().to_string().into());
            WorkerAddress::Tcp(addr)
        }
    };
    let fastcgi = pool.kind == PoolKind::Fastcgi;
    if socket_fd.is_some() && !fastcgi {
        envs.insert(env::LISTEN_FDS.into(), "1".into());
        envs.insert(env::LISTEN_FDNAMES.into(), "bulkhead".into());
    }
    envs.insert(env::CONTROL_FD.into(), "4".into());
    envs.insert(env::PROTOCOL.into(), pool.protocol.as_str().into());
    envs.insert(env::POOL.into(), pool.name.clone().into());
    envs.insert(env::WORKER_ID.into(), id.to_string().into());

    let (mine, theirs) = std::os::unix::net::UnixStream::pair().map_err(LaunchError::Control)?;
    let mut fds = vec![(log.as_raw_fd(), 1), (log.as_raw_fd(), 2), (theirs.as_raw_fd(), 4)];
    match &socket_fd {
        Some(s) if fastcgi => fds.push((s.as_raw_fd(), 0)),
        Some(s) => {
            fds.push((stdin.as_raw_fd(), 0));
            fds.push((s.as_raw_fd(), env::LISTEN_FDS_START));
        }
        None => fds.push((stdin.as_raw_fd(), 0)),
    }
    let spec = SpawnSpec {
        program,
        argv: argv.iter().map(OsString::from).collect(),
        env: envs.into_iter().collect(),
        listen_pid: socket_fd.is_some() && !fastcgi,
        directory: Some(pool.directory.clone()),
        fds,
        exec_via_fd: is_self && credentials.is_some(),
        credentials,
    };
    let events = ctx.events.clone();
    let spawned = spawn::spawn(&spec, move |pid| {
        let _ = events.send(Event::Exited { pid });
    })?;
    drop((socket_fd, theirs, log, stdin));
    if let Some(dir) = ctx.cgroup {
        if let Err(e) = Cgroups::add(dir, spawned.pid.as_raw()) {
            pool_log(&ctx.log_path, &format!("worker {} ({id}) runs outside its cgroup: {e}", spawned.pid));
        }
    }

    let (control, tasks) = control_channel(mine, &pool.name, id, ctx.events).map_err(LaunchError::Control)?;
    Ok(Worker {
        id,
        process: Process::new(spawned.pid, Instant::now()),
        state: WorkerState::Starting { deadline: Instant::now() + pool.startup_time_limit },
        address,
        socket_path,
        control,
        speaks_control: false,
        listener_done: false,
        exec_report: spawned.exec_report,
        tasks,
        probe: None,
        ending: None,
        retiring: None,
        recycle_requested: None,
        limits: ctx.limits,
        ready_at: None,
        requests: 0,
        ping: None,
        gone_sent: false,
        usage: None,
        cpu: CpuWindow::opened_at(Instant::now()),
    })
}

/// Wires the manager's end of a worker's control socketpair: a writer task fed by the returned
/// sender, and a reader task turning messages into supervisor events.
fn control_channel(
    mine: std::os::unix::net::UnixStream,
    pool: &str,
    id: WorkerId,
    events: &EventSender,
) -> io::Result<(mpsc::UnboundedSender<ManagerToWorker>, Vec<AbortHandle>)> {
    let channel: Channel<ManagerToWorker, WorkerToManager> = Channel::from_std(mine)?;
    let (mut tx, mut rx) = channel.into_split();
    let (control, mut outbox) = mpsc::unbounded_channel::<ManagerToWorker>();
    let writer = tokio::spawn(async move {
        while let Some(m) = outbox.recv().await {
            if tx.send(&m).await.is_err() {
                break;
            }
        }
    });
    let events = events.clone();
    let pool = pool.to_string();
    let reader = tokio::spawn(async move {
        // A worker that never speaks the control protocol just leaves this waiting.
        while let Ok(Some(message)) = rx.recv().await {
            if events.send(Event::WorkerControl { pool: pool.clone(), worker: id, message }).is_err() {
                break;
            }
        }
    });
    Ok((control, vec![writer.abort_handle(), reader.abort_handle()]))
}

/// Appends one line to a pool's log (the file its workers' stdout/stderr go to), so an operator
/// reading it sees why workers came and went. Failures are ignored: logging must not stop the
/// supervisor.
pub fn pool_log(path: &Path, message: &str) {
    append_pool_log(path, &format!("{} [bulkhead] {message}\n", pool_log_stamp()));
}

/// The time at the start of a pool log line (RFC 3339, UTC).
pub fn pool_log_stamp() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Appends `text` (whole lines) to a pool's log file.
pub fn append_pool_log(path: &Path, text: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool(command: &[&str], kind: PoolKind) -> bulkhead_config::Pool {
        let text = "[pools.p]\ncommand = [\"x\"]\n";
        let mut p = bulkhead_config::parse(text, "t.toml", Path::new("/tmp")).unwrap().pools.remove("p").unwrap();
        p.command = command.iter().map(|s| s.to_string()).collect();
        p.kind = kind;
        p
    }

    /// Launches a real `sh` worker and checks the whole contract it sees: fd 3 a listening
    /// unix socket, fd 4 the control channel, its own pid in `LISTEN_PID`, the Bulkhead
    /// variables, the pool's env and directory, and stdout into the pool log.
    #[tokio::test]
    async fn a_launched_worker_sees_the_worker_contract() {
        let dir = std::env::temp_dir().join(format!("bulkhead-launch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = "echo \"fds=$LISTEN_FDS pid=$LISTEN_PID self=$$ names=$LISTEN_FDNAMES ctl=$BULKHEAD_CONTROL_FD \
                      proto=$BULKHEAD_PROTOCOL pool=$BULKHEAD_POOL id=$BULKHEAD_WORKER_ID extra=$EXTRA cwd=$(pwd)\"; \
                      test -S /proc/self/fd/3 && echo fd3-socket; test -S /proc/self/fd/4 && echo fd4-socket";
        let mut p = pool(&["sh", "-c", script], PoolKind::Process);
        p.directory = dir.clone();
        p.env.insert("EXTRA".into(), "yes".into());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let env = vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
        let ctx = LaunchContext {
            self_exe: Path::new("/nonexistent/bulkhead"),
            env: &env,
            socket_path: dir.join("p.w7.sock"),
            log_path: dir.join("p.log"),
            output: None,
            events: &tx,
            allow_root: true,
            listener: None,
            cgroup: None,
            limits: recycle::Limits::default(),
            shared_socket: None,
        };
        let mut w = launch(&p, WorkerId(7), &ctx).unwrap();
        assert_eq!(w.address, WorkerAddress::Unix(dir.join("p.w7.sock")));
        let mode = std::fs::metadata(dir.join("p.w7.sock")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        match tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv()).await.unwrap() {
            Some(Event::Exited { pid }) => assert_eq!(pid, w.process.pid),
            other => panic!("expected the exit, got {other:?}"),
        }
        assert_eq!(spawn::reap(w.process.pid), spawn::ExitStatus::Code(0));
        assert!(spawn::exec_failure(&w.exec_report).is_none());
        w.release();
        let log = std::fs::read_to_string(dir.join("p.log")).unwrap();
        let pid = w.process.pid.as_raw();
        let expected = format!(
            "fds=1 pid={pid} self={pid} names=bulkhead ctl=4 proto=http pool=p id=w7 extra=yes cwd={}",
            dir.display()
        );
        assert!(log.contains(&expected), "{log}");
        assert!(log.contains("fd3-socket") && log.contains("fd4-socket"), "{log}");
        assert!(!dir.join("p.w7.sock").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The worker state machine's messages to the listener: `WorkerUp` once ready,
    /// `WorkerDraining` when a routed worker stops, `WorkerGone` exactly once (at unrouting or
    /// at exit), and nothing for a worker the manager already decided to end.
    #[tokio::test]
    async fn each_worker_transition_owes_the_listener_one_message() {
        let dir = std::env::temp_dir().join(format!("bulkhead-transitions-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = pool(&["sh", "-c", "exec sleep 30"], PoolKind::Process);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let env = vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
        let ctx = |n: u64| LaunchContext {
            self_exe: Path::new("/nonexistent/bulkhead"),
            env: &env,
            socket_path: dir.join(format!("p.w{n}.sock")),
            log_path: dir.join("p.log"),
            output: None,
            events: &tx,
            allow_root: true,
            listener: None,
            cgroup: None,
            limits: recycle::Limits::default(),
            shared_socket: None,
        };
        let now = Instant::now();
        let mut a = launch(&p, WorkerId(1), &ctx(1)).unwrap();
        let mut b = launch(&p, WorkerId(2), &ctx(2)).unwrap();
        let mut c = launch(&p, WorkerId(3), &ctx(3)).unwrap();

        assert!(matches!(a.become_ready(&p, now), Some(ManagerToListener::WorkerUp(i)) if i.worker == WorkerId(1)));
        assert_eq!(a.become_ready(&p, now), None, "ready once");
        let draining =
            a.begin_stop("p", Ending::Stopped(StopCause::IdleTimeout), Stop::graceful(now, Duration::from_secs(9)));
        assert!(matches!(draining, Some(ManagerToListener::WorkerDraining { .. })), "{draining:?}");
        assert_eq!(a.begin_stop("p", Ending::Recycled, Stop::immediate(now)), None, "stopping once");
        assert_eq!(a.ending(), Some(&Ending::Stopped(StopCause::IdleTimeout)), "the first decision stands");

        assert!(b.become_ready(&p, now).is_some());
        assert!(matches!(b.unroute("p", "hung".into(), true), Some(ManagerToListener::WorkerGone { .. })));
        assert!(b.is_orphaned() && b.ending() == Some(&Ending::Orphaned));
        assert_eq!(b.begin_stop("p", Ending::Stopped(StopCause::Shutdown), Stop::immediate(now)), None);

        c.end(Ending::Killed("did not become ready".into()));
        assert_eq!(c.become_ready(&p, now), None, "a worker being killed is never announced");

        let mut pending = vec![a.process.pid, b.process.pid, c.process.pid];
        for w in [&a, &b, &c] {
            spawn::signal_group(w.process.pid, nix::sys::signal::Signal::SIGKILL);
        }
        while !pending.is_empty() {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap() {
                Some(Event::Exited { pid }) => {
                    spawn::reap(pid);
                    pending.retain(|p| *p != pid);
                }
                other => panic!("expected exits, got {other:?}"),
            }
        }
        let status = spawn::ExitStatus::Signal("SIGKILL".into());
        assert!(matches!(a.exited("p", &status), Some(ManagerToListener::WorkerGone { .. })), "drained, then gone");
        assert_eq!(b.exited("p", &status), None, "already unrouted");
        assert_eq!(c.exited("p", &status), None, "never announced");
        for w in [&mut a, &mut b, &mut c] {
            w.release();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn readiness_by_probe_only_for_plain_http_apps() {
        let mut p = pool(&["app"], PoolKind::Process);
        assert_eq!(readiness(&p), Readiness::HttpProbe("/".into()));
        p.health.path = "/healthz".into();
        assert_eq!(readiness(&p), Readiness::HttpProbe("/healthz".into()));
        p.protocol = Protocol::Native;
        assert_eq!(readiness(&p), Readiness::ControlOnly);
    }
}
