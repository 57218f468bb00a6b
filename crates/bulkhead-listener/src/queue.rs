//! `RequestQueue`: one pool's bounded FIFO of requests waiting for a worker slot (DESIGN §2.5).
//!
//! A request takes a slot at once when some ready worker has fewer than `concurrency` requests in
//! flight (the least loaded wins); otherwise it waits, at most `queue_length` deep (a full queue
//! answers [`QueueError::Full`] at once) and at most `limits.queue_timeout` long
//! ([`QueueError::Timeout`]). A released slot is handed straight to the next waiter — no wake-up
//! of every waiter, no thundering herd. A pool with no ready worker asks the manager for one
//! (`DemandStart`, once until a worker comes up or the pool is refused).
//!
//! Waiters that give up (client gone, timeout) are removed, and a slot granted to one in the
//! instant it gave up is released again, so slots never leak. The queue knows workers only as
//! [`Worker`] handles; it never performs I/O (dispatch does) and never blocks: its mutex guards
//! a few integers and a `VecDeque`, and is never held across an `.await`.
//!
//! Called by the request path ([`crate::request`]) and by the control task ([`crate::control`])
//! for `WorkerUp`, `WorkerDraining`, `WorkerGone`, `PoolRefused`, `PoolAvailable`. Layering: it
//! sits beside routing and static files, and uses only [`crate::dispatch`] (the [`Worker`]
//! handle), [`crate::error`] and [`crate::to_manager`] below it; a [`Slot`] is held by the
//! response body's lease layer ([`crate::response::Leased`]) until the response ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bulkhead_proto::{ListenerToManager, PoolRefusal, WorkerId};
use tokio::sync::oneshot;

use crate::dispatch::fastcgi::PoolShare;
use crate::dispatch::Worker;
use crate::error::QueueError;
use crate::to_manager::ControlTx;

/// One pool's queue and worker set.
pub struct RequestQueue {
    pool: Arc<str>,
    control: ControlTx,
    state: Mutex<State>,
    /// Requests given a slot since the last `Activity` report.
    dispatched: AtomicU64,
    response_timeout_ms: AtomicU64,
    /// The pool's `request_buffering`.
    request_buffering: AtomicBool,
    /// The pool is `kind = "fastcgi"`: requests carry their CGI facts.
    fastcgi: AtomicBool,
    /// What the pool's FastCGI workers share: kept connections, the way to the pool's log.
    share: Arc<PoolShare>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerState {
    Up,
    Draining,
    Dead,
}

struct Entry {
    worker: Arc<Worker>,
    in_flight: u32,
    state: WorkerState,
}

struct Waiter {
    id: u64,
    exclude: Option<WorkerId>,
    tx: oneshot::Sender<Result<Arc<Worker>, QueueError>>,
}

struct State {
    workers: Vec<Entry>,
    waiters: VecDeque<Waiter>,
    queue_length: usize,
    timeout: Duration,
    /// A refusal that also applies to new requests (AppOffline, Disabled, AppShutdown).
    refused: Option<PoolRefusal>,
    demand_sent: bool,
    next_waiter: u64,
}

/// A worker slot: one request in flight on one worker. Dropping it releases the slot (to the
/// next waiter, if any).
pub struct Slot {
    queue: Arc<RequestQueue>,
    worker: Arc<Worker>,
}

impl Slot {
    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    pub fn queue(&self) -> &Arc<RequestQueue> {
        &self.queue
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queue.release(self.worker.id);
    }
}

impl RequestQueue {
    pub fn new(pool: &str, queue_length: u32, timeout: Duration, control: ControlTx) -> Arc<Self> {
        let share_control = control.clone();
        Arc::new(RequestQueue {
            pool: Arc::from(pool),
            control,
            state: Mutex::new(State {
                workers: Vec::new(),
                waiters: VecDeque::new(),
                queue_length: queue_length as usize,
                timeout,
                refused: None,
                demand_sent: false,
                next_waiter: 0,
            }),
            dispatched: AtomicU64::new(0),
            response_timeout_ms: AtomicU64::new(0),
            request_buffering: AtomicBool::new(true),
            fastcgi: AtomicBool::new(false),
            share: Arc::new(PoolShare::new(pool, Some(share_control))),
        })
    }

    /// What the pool's FastCGI workers share: kept connections, the way to the pool's log
    /// ([`Worker::new`]).
    pub fn fastcgi_share(&self) -> &Arc<PoolShare> {
        &self.share
    }

    /// The pool's `response_timeout` (zero = none); read on every request, so kept outside the
    /// queue's lock.
    pub fn response_timeout(&self) -> Option<Duration> {
        match self.response_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn set_response_timeout(&self, timeout: Duration) {
        self.response_timeout_ms.store(timeout.as_millis().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Whether request bodies are read whole before they take a worker slot.
    pub fn request_buffering(&self) -> bool {
        self.request_buffering.load(Ordering::Relaxed)
    }

    pub fn set_request_buffering(&self, on: bool) {
        self.request_buffering.store(on, Ordering::Relaxed);
    }

    /// Whether the pool's workers are FastCGI responders.
    pub fn fastcgi(&self) -> bool {
        self.fastcgi.load(Ordering::Relaxed)
    }

    pub fn set_fastcgi(&self, on: bool) {
        self.fastcgi.store(on, Ordering::Relaxed);
    }

    pub fn pool(&self) -> &Arc<str> {
        &self.pool
    }

    /// Takes the count of requests dispatched since the last call (for `Activity`).
    pub fn take_dispatched(&self) -> u64 {
        self.dispatched.swap(0, Ordering::Relaxed)
    }

    /// Applies a new configuration's queue length and timeout.
    pub fn configure(&self, queue_length: u32, timeout: Duration) {
        let mut st = self.lock();
        st.queue_length = queue_length as usize;
        st.timeout = timeout;
    }

    /// Waits for a worker slot. `retry` puts the request at the front of the queue (and lets it
    /// in even when the queue is full); `exclude` keeps it off a worker that already failed it.
    pub async fn acquire(self: &Arc<Self>, exclude: Option<WorkerId>, retry: bool) -> Result<Slot, QueueError> {
        let (rx, id, timeout) = {
            let mut st = self.lock();
            if let Some(r) = st.refused {
                return Err(QueueError::Refused(r));
            }
            if let Some(i) = st.pick(exclude) {
                st.workers[i].in_flight += 1;
                let worker = st.workers[i].worker.clone();
                drop(st);
                return Ok(self.slot(worker));
            }
            if !retry && st.waiters.len() >= st.queue_length {
                return Err(QueueError::Full);
            }
            let (tx, rx) = oneshot::channel();
            let id = st.next_waiter;
            st.next_waiter += 1;
            let waiter = Waiter { id, exclude, tx };
            if retry {
                st.waiters.push_front(waiter);
            } else {
                st.waiters.push_back(waiter);
            }
            self.demand_if_needed(&mut st);
            (rx, id, st.timeout)
        };
        let mut wait = Wait { queue: self, id, rx: Some(rx) };
        let rx = wait.rx.as_mut().expect("set above");
        let outcome = tokio::time::timeout(timeout, rx).await;
        match outcome {
            Ok(Ok(granted)) => {
                wait.rx = None;
                granted.map(|w| self.slot(w))
            }
            Ok(Err(_)) => {
                wait.rx = None;
                Err(QueueError::Refused(PoolRefusal::AppShutdown))
            }
            Err(_) => {
                let removed = self.remove_waiter(id);
                let mut rx = wait.rx.take().expect("set above");
                if removed {
                    return Err(QueueError::Timeout);
                }
                // Granted (or refused) in the same instant the timer fired: honour it.
                match rx.try_recv() {
                    Ok(granted) => granted.map(|w| self.slot(w)),
                    Err(_) => Err(QueueError::Timeout),
                }
            }
        }
    }

    /// A worker became ready.
    pub fn worker_up(&self, worker: Arc<Worker>) {
        let mut st = self.lock();
        st.workers.retain(|e| e.worker.id != worker.id);
        st.workers.push(Entry { worker, in_flight: 0, state: WorkerState::Up });
        st.refused = None;
        st.demand_sent = false;
        st.fill();
    }

    /// The pool's external FastCGI server (`connect`), set on every configuration: replaced in
    /// place (its requests in flight still count), so a reload neither doubles its
    /// concurrency nor lifts an operator's stop.
    pub fn set_external(&self, worker: Worker) {
        let mut st = self.lock();
        match st.workers.iter_mut().find(|e| e.worker.id == worker.id) {
            Some(e) => {
                e.worker = Arc::new(worker);
                e.state = WorkerState::Up;
            }
            None => st.workers.push(Entry { worker: Arc::new(worker), in_flight: 0, state: WorkerState::Up }),
        }
        st.fill();
    }

    /// Send no new requests to this worker.
    /// Answered with `WorkerDrained` once nothing is in flight there (at once if nothing is, or
    /// the worker is not known), so the manager tells it to stop only then.
    pub fn worker_draining(&self, id: WorkerId) {
        self.set_state(id, WorkerState::Draining);
        let idle = self.lock().workers.iter().find(|e| e.worker.id == id).is_none_or(|e| e.in_flight == 0);
        if idle {
            self.drained(id);
        }
    }

    fn drained(&self, id: WorkerId) {
        let _ = self.control.send(ListenerToManager::WorkerDrained { pool: self.pool.to_string(), worker: id });
    }

    /// The worker is gone.
    pub fn worker_gone(&self, id: WorkerId) {
        self.set_state(id, WorkerState::Dead);
    }

    /// The listener could not reach this worker: stop using it and tell the manager (once).
    pub fn worker_unreachable(&self, id: WorkerId, error: &str) {
        let (was_alive, external) = {
            let st = self.lock();
            let entry = st.workers.iter().find(|e| e.worker.id == id && e.state != WorkerState::Dead);
            (entry.is_some(), entry.is_some_and(|e| e.worker.external))
        };
        if external {
            tracing::warn!("pool {:?}: its FastCGI server (not run by Bulkhead) is unreachable: {error}", &*self.pool);
            return;
        }
        if was_alive {
            tracing::warn!("pool {:?}: worker {id} unreachable: {error}; not sending it requests", &*self.pool);
            let _ = self.control.send(ListenerToManager::WorkerUnreachable {
                pool: self.pool.to_string(),
                worker: id,
                error: error.to_string(),
            });
        }
        self.set_state(id, WorkerState::Dead);
    }

    /// The manager refused the pool: answer every waiting request; for lasting refusals, new
    /// requests too until `available` or a worker comes up.
    pub fn refuse(&self, refusal: PoolRefusal) {
        let mut st = self.lock();
        while let Some(w) = st.waiters.pop_front() {
            let _ = w.tx.send(Err(QueueError::Refused(refusal)));
        }
        if refusal != PoolRefusal::AppStartFailed {
            st.refused = Some(refusal);
        }
        st.demand_sent = false;
    }

    /// The pool may take requests again.
    pub fn available(&self) {
        let mut st = self.lock();
        st.refused = None;
        st.demand_sent = false;
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Requests in flight on all workers now.
    pub fn in_flight(&self) -> u32 {
        self.lock().workers.iter().map(|e| e.in_flight).sum()
    }

    fn slot(self: &Arc<Self>, worker: Arc<Worker>) -> Slot {
        self.dispatched.fetch_add(1, Ordering::Relaxed);
        Slot { queue: self.clone(), worker }
    }

    fn release(&self, id: WorkerId) {
        let mut st = self.lock();
        let Some(i) = st.workers.iter().position(|e| e.worker.id == id) else { return };
        st.workers[i].in_flight = st.workers[i].in_flight.saturating_sub(1);
        match st.workers[i].state {
            WorkerState::Up => st.fill(),
            WorkerState::Dead if st.workers[i].in_flight == 0 => {
                st.workers.swap_remove(i);
            }
            WorkerState::Draining if st.workers[i].in_flight == 0 => {
                drop(st);
                self.drained(id);
            }
            _ => {}
        }
    }

    fn set_state(&self, id: WorkerId, state: WorkerState) {
        let mut st = self.lock();
        if let Some(i) = st.workers.iter().position(|e| e.worker.id == id) {
            st.workers[i].state = state;
            st.workers[i].worker.close_idle();
            if state == WorkerState::Dead && st.workers[i].in_flight == 0 {
                st.workers.swap_remove(i);
            }
        }
        if !st.waiters.is_empty() {
            self.demand_if_needed(&mut st);
        }
    }

    fn remove_waiter(&self, id: u64) -> bool {
        let mut st = self.lock();
        match st.waiters.iter().position(|w| w.id == id) {
            Some(i) => {
                st.waiters.remove(i);
                true
            }
            None => false,
        }
    }

    fn demand_if_needed(&self, st: &mut State) {
        if !st.demand_sent && !st.workers.iter().any(|e| e.state == WorkerState::Up) {
            st.demand_sent = true;
            tracing::debug!("pool {:?}: no ready worker; asking the manager to start one", &*self.pool);
            let _ = self.control.send(ListenerToManager::DemandStart { pool: self.pool.to_string() });
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters behind; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The least loaded ready worker with a free slot, other than `exclude`.
    fn pick(&self, exclude: Option<WorkerId>) -> Option<usize> {
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.state == WorkerState::Up && e.in_flight < e.worker.concurrency && Some(e.worker.id) != exclude
            })
            .min_by_key(|(_, e)| e.in_flight)
            .map(|(i, _)| i)
    }

    /// Hands free slots to waiters, oldest first. A waiter that must avoid the only free worker
    /// is skipped, not allowed to block those behind it.
    fn fill(&mut self) {
        let mut i = 0;
        while i < self.waiters.len() {
            let exclude = self.waiters[i].exclude;
            let Some(w) = self.pick(exclude) else {
                if exclude.is_some() {
                    i += 1;
                    continue;
                }
                break;
            };
            let waiter = self.waiters.remove(i).expect("index checked");
            self.workers[w].in_flight += 1;
            if waiter.tx.send(Ok(self.workers[w].worker.clone())).is_err() {
                // The waiter gave up in the meantime: the slot stays free for the next one.
                self.workers[w].in_flight -= 1;
            }
        }
    }
}

/// A registered waiter; dropping it (client gone) removes it from the queue and gives back a slot
/// it may have been granted in the meantime.
struct Wait<'a> {
    queue: &'a Arc<RequestQueue>,
    id: u64,
    rx: Option<oneshot::Receiver<Result<Arc<Worker>, QueueError>>>,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        if self.queue.remove_waiter(self.id) {
            return;
        }
        if let Ok(Ok(worker)) = rx.try_recv() {
            self.queue.release(worker.id);
        }
    }
}

#[cfg(test)]
mod tests;
