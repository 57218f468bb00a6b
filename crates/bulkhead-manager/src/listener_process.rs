//! The listener process (HTTP.sys's role): spawning `bulkhead listener` and talking to it.
//!
//! Called by the supervisor at start-up and whenever the listener died and must be restarted.
//! The child gets fd 3 = its end of a control socketpair and the public sockets at fds 4, 5, …
//! (the manager keeps its own copies open, so a restart never closes a port), stdin
//! `/dev/null`, the manager's stdout/stderr, its own process group and
//! `PR_SET_PDEATHSIG(SIGKILL)`; when the manager runs as root it runs as
//! `server.listener_user` (switched before `exec`, so it never runs a line as root). The first
//! message it receives is `Configure`. Messages to it go through an unbounded queue drained by a writer task, so the supervisor never waits on
//! the socket; messages from it come back as supervisor events tagged with a generation
//! number, so a dead listener's late messages are ignored.
//!
//! The listener also inherits an *fd channel* (a second socketpair, at the fd after the public
//! sockets): sockets bound for a config change while it runs are passed there with
//! `SCM_RIGHTS` ([`ListenerProcess::pass_sockets`], then `AddSockets`), so it is never
//! restarted for a new binding.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Instant;

use bulkhead_proto::{env, Channel, ListenSocket, ListenerToManager, ManagerToListener};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::event::{Event, EventSender};
use crate::process::Process;
use crate::sockets::PublicSockets;
use crate::spawn::{self, Credentials, SpawnError, SpawnSpec};

/// Why the listener could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ListenerStartError {
    #[error("cannot start the listener process: {0}")]
    Spawn(#[from] SpawnError),
    #[error("cannot create the listener's control channel: {0}")]
    Control(io::Error),
}

/// A running listener process.
#[derive(Debug)]
pub struct ListenerProcess {
    /// Its pid, start time and stop timer ([`crate::process`]).
    pub process: Process,
    pub generation: u64,
    /// `Ready` received for this process.
    pub ready: bool,
    outbox: Option<mpsc::UnboundedSender<ManagerToListener>>,
    tasks: Vec<AbortHandle>,
    /// Our end of the fd channel, and the fd number of its other end in the listener.
    fd_channel: Option<std::os::unix::net::UnixStream>,
    fd_channel_fd: i32,
    /// The sockets it inherited at start, with their fd numbers there.
    initial: Vec<ListenSocket>,
}

impl ListenerProcess {
    /// Queues a message; silently dropped if the listener is gone (its exit is handled
    /// separately).
    pub fn send(&self, message: ManagerToListener) {
        if let Some(o) = &self.outbox {
            let _ = o.send(message);
        }
    }

    /// Closes the control channel once queued messages are written: the listener exits when it
    /// sees the channel close.
    pub fn close(&mut self) {
        self.outbox = None;
    }

    /// Writes `sockets` on the fd channel, in order, and returns the fd number the listener
    /// knows that channel by (for `AddSockets`). Call before queueing `AddSockets`.
    pub fn pass_sockets<'a>(&self, sockets: impl Iterator<Item = std::os::fd::BorrowedFd<'a>>) -> io::Result<i32> {
        let channel = self.fd_channel.as_ref().ok_or_else(|| io::Error::other("the listener has no fd channel"))?;
        for fd in sockets {
            bulkhead_proto::fdpass::send_fd(channel, &fd)?;
        }
        Ok(self.fd_channel_fd)
    }

    /// The `sockets` list of a `Configure` for this listener: the inherited fd for a socket it
    /// got at start, `-1` (meaning "the one received for this address") otherwise.
    pub fn socket_list(&self, public: &PublicSockets) -> Vec<ListenSocket> {
        public
            .sockets
            .iter()
            .map(|s| ListenSocket {
                fd: self.initial.iter().find(|i| i.local_addr == s.local_addr).map_or(-1, |i| i.fd),
                local_addr: s.local_addr,
                bindings: s.bindings.clone(),
            })
            .collect()
    }

    /// Sockets the manager closed: their inherited fd numbers no longer mean them.
    pub fn forget_sockets(&mut self, addrs: impl Iterator<Item = std::net::SocketAddr>) {
        for a in addrs {
            self.initial.retain(|i| i.local_addr != a);
        }
    }

    /// Stops the helper tasks (after the process exited).
    pub fn release(&mut self) {
        self.outbox = None;
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// The fds the listener gets its public sockets at, in `public.sockets` order.
pub fn listen_sockets(public: &PublicSockets) -> Vec<ListenSocket> {
    public
        .sockets
        .iter()
        .enumerate()
        .map(|(i, s)| ListenSocket {
            fd: env::LISTENER_CONTROL_FD + 1 + i as i32,
            local_addr: s.local_addr,
            bindings: s.bindings.clone(),
        })
        .collect()
}

/// Spawns `self_exe listener` and queues `configure` as its first message.
/// The listener's environment: the children's, and mimalloc told not to ask for transparent
/// huge pages. mimalloc madvises its arena `MADV_HUGEPAGE`, so on a kernel whose THP mode is
/// `madvise` (Debian's default) every 2 MiB region the listener touches became resident whole:
/// 14 MiB of its 25 MiB idle RSS, measured. An operator's own `MIMALLOC_ALLOW_THP` is kept.
fn listener_env(child_env: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    let mut env = child_env.to_vec();
    if !env.iter().any(|(k, _)| k == "MIMALLOC_ALLOW_THP") {
        env.push(("MIMALLOC_ALLOW_THP".into(), "0".into()));
    }
    env
}

pub fn start(
    self_exe: &Path,
    child_env: &[(OsString, OsString)],
    public: &PublicSockets,
    generation: u64,
    configure: ManagerToListener,
    events: &EventSender,
    credentials: Option<Credentials>,
) -> Result<ListenerProcess, ListenerStartError> {
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().map_err(ListenerStartError::Control)?;
    let stdin = File::open("/dev/null").map_err(ListenerStartError::Control)?;
    let mut fds = vec![(stdin.as_raw_fd(), 0), (theirs.as_raw_fd(), env::LISTENER_CONTROL_FD)];
    let initial = listen_sockets(public);
    for (s, ls) in public.sockets.iter().zip(&initial) {
        fds.push((s.socket.as_raw_fd(), ls.fd));
    }
    let (fd_mine, fd_theirs) = std::os::unix::net::UnixStream::pair().map_err(ListenerStartError::Control)?;
    let fd_channel_fd = env::LISTENER_CONTROL_FD + 1 + public.sockets.len() as i32;
    fds.push((fd_theirs.as_raw_fd(), fd_channel_fd));
    let spec = SpawnSpec {
        program: self_exe.to_path_buf(),
        argv: vec![self_exe.as_os_str().to_os_string(), "listener".into()],
        env: listener_env(child_env),
        listen_pid: false,
        directory: None,
        // Only when it changes user: then it may not reach the binary by its path.
        exec_via_fd: credentials.is_some(),
        fds,
        credentials,
    };
    let exit_events = events.clone();
    let spawned = spawn::spawn(&spec, move |pid| {
        let _ = exit_events.send(Event::Exited { pid });
    })?;
    drop((theirs, stdin, fd_theirs));
    // The exec report is not needed: a listener that cannot exec exits before `Ready`, which
    // the supervisor reports with its exit status.
    drop(spawned.exec_report);

    let channel: Channel<ManagerToListener, ListenerToManager> =
        Channel::from_std(mine).map_err(ListenerStartError::Control)?;
    let (mut tx, mut rx) = channel.into_split();
    let (outbox, mut queue) = mpsc::unbounded_channel::<ManagerToListener>();
    let _ = outbox.send(configure);
    let writer = tokio::spawn(async move {
        while let Some(m) = queue.recv().await {
            if let Err(e) = tx.send(&m).await {
                tracing::debug!("listener control channel write failed: {e}");
                break;
            }
        }
        // Dropping `tx` here shuts our write side: the listener sees the channel close.
    });
    let events = events.clone();
    let reader = tokio::spawn(async move {
        let error = loop {
            match rx.recv().await {
                Ok(Some(message)) => {
                    if events.send(Event::Listener { generation, message }).is_err() {
                        return;
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        let _ = events.send(Event::ListenerChannelClosed { generation, error });
    });
    Ok(ListenerProcess {
        process: Process::new(spawned.pid, Instant::now()),
        generation,
        ready: false,
        outbox: Some(outbox),
        tasks: vec![writer.abort_handle(), reader.abort_handle()],
        fd_channel: Some(fd_mine),
        fd_channel_fd,
        initial,
    })
}
