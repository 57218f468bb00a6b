//! The threads extensions run on: a fixed set per worker process, [`PER_CPU`] for each CPU this
//! process may run on (IIS 6 ran ISAPI extensions on a pool of `MaxPoolThreads`, 4 per CPU by
//! default), started at the first extension request and fed by one queue.
//!
//! Why not tokio's blocking pool: it starts a thread for every call that finds none idle, so
//! under load a host worker ran as many threads as requests in flight, each woken once per
//! request; `bench/extension` measured 0.56× of the async SDK worker that way, 0.72× with these
//! threads (30,097 → 39,769 req/s, runs minutes apart on the same machine). A fixed set keeps the threads busy: one that finishes a call takes the
//! next from the queue without sleeping. The price, stated in the header: at most that many
//! calls run at once per worker process, and the rest wait in the queue (an extension that
//! blocks for long needs more processes, `processes`, or to do less per call).
//!
//! Used by [`super::serve`] only. A job's panic (the host's own code; a library's is caught by
//! its SDK or is a crash) is caught so the thread goes on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// Threads per CPU.
pub const PER_CPU: usize = 4;

/// One call through an extension's hooks.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// The extension threads of a worker process.
#[derive(Debug, Default)]
pub(super) struct CallThreads {
    queue: OnceLock<Option<mpsc::Sender<Job>>>,
}

impl CallThreads {
    /// Queues `job` for the next free thread, starting the threads the first time; gives the
    /// job back when no thread could be started.
    pub(super) fn run(&self, job: Job) -> Result<(), Job> {
        match self.queue.get_or_init(start) {
            Some(queue) => queue.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }
}

/// Starts the threads; `None` when not even one could be.
fn start() -> Option<mpsc::Sender<Job>> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for n in 0..PER_CPU * cpus {
        let rx = Arc::clone(&rx);
        match std::thread::Builder::new().name(format!("extension-{n}")).spawn(move || serve_jobs(&rx)) {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!("extension host: cannot start extension thread {n}: {e}"),
        }
    }
    (started > 0).then_some(tx)
}

/// A thread's life: the next job, until the queue's sender is gone (the process is ending).
fn serve_jobs(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("extension host: a request's call failed in the host's own code (a panic; see above)");
        }
    }
}
