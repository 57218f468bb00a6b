//! Hidden subcommands the manager runs as child processes: `bulkhead listener` (the front end)
//! and `bulkhead worker` (the built-in host of `kind = "host"` pools, [`bulkhead_host`]: the
//! worker contract is read from the environment here, and the `PATH` its CGI programs get).
//!
//! The listener finds its control channel at fd 3 (`bulkhead_proto::env::LISTENER_CONTROL_FD`)
//! — the only fd this binary adopts by number, hence this file's one `unsafe`
//! block (the other in the binary restores SIGPIPE for CLI commands, in `main.rs`). It ignores SIGINT
//! (a terminal's Ctrl-C is for the manager, which coordinates shutdown) and ends when the
//! manager says `Shutdown` or its control channel closes.

use std::os::fd::FromRawFd;
use std::process::ExitCode;

use bulkhead_proto::env::LISTENER_CONTROL_FD;
use tokio::signal::unix::{signal, SignalKind};

/// Threads of the listener's blocking pool (static-file system calls; tokio's default is 512).
/// Under HTTP/2's many streams or a thousand slow readers the pool grew to hundreds of threads
/// on one core, and a normal client's file read waited behind their switching; with a few
/// threads it waits in the pool's queue instead, behind reads that each take microseconds.
const BLOCKING_THREADS: usize = 8;

pub fn listener() -> anyhow::Result<ExitCode> {
    // Confined to one CPU (taskset, a cpuset), the work-stealing scheduler only adds cost: every
    // wake-up pays for cross-thread bookkeeping no other thread will use. Then the listener runs
    // on a current-thread runtime; with more CPUs, on one worker thread per CPU.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().max_blocking_threads(BLOCKING_THREADS).build()?;
    runtime.block_on(async {
        // Catching SIGINT (and never acting on it) keeps a terminal's Ctrl-C from killing us.
        let _sigint = signal(SignalKind::interrupt())?;
        let control = control_stream()?;
        bulkhead_listener::run(control).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

#[allow(unsafe_code)]
fn control_stream() -> std::io::Result<tokio::net::UnixStream> {
    // SAFETY: the manager starts `bulkhead listener` with one end of the control socketpair at
    // fd 3; nothing else in this process owns that fd, and it is adopted exactly once here.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(LISTENER_CONTROL_FD) };
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

/// `bulkhead worker`: the built-in host, on a multi-threaded runtime (its CGI programs' parent-death
/// signal is tied to the runtime thread that spawned each; worker threads live as long as the
/// runtime). SIGTERM keeps its default action: the manager drains the host on its control
/// channel before it signals.
pub fn worker() -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let env = bulkhead_host::WorkerEnv::from_process_env()?;
    let program_path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    runtime.block_on(bulkhead_host::serve(env, bulkhead_host::Host { program_path }))?;
    Ok(ExitCode::SUCCESS)
}
