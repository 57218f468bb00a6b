//! Health pings (IIS's "Ping enabled / ping period / ping maximum response time", DESIGN §3):
//! is a ready worker still answering?
//!
//! Every `health.ping_interval` (`"0s"` = off) the supervisor starts one ping per ready worker
//! and remembers it in the worker's [`PingState`]; if the answer has not come within
//! `health.ping_timeout` the worker is hung. How a worker is pinged ([`Method`]):
//! - over its control channel (`Ping{seq}` → `Pong{seq}`), once it has spoken the control
//!   protocol — the answer also carries its request counters;
//! - else, when `health.path` is set, `GET <path>` on its socket; any HTTP answer counts, a
//!   refused or silent socket is retried until the timeout;
//! - else a plain connect to its socket. A connect is accepted by the kernel even when the
//!   process is frozen (`SIGSTOP`) or deadlocked, so this only catches a worker that closed
//!   its socket; set `health.path` to catch hangs in plain HTTP apps.
//!
//! The probes run as small tasks that report [`crate::event`]s to the supervisor; nothing here blocks
//! the supervisor or decides what happens to a hung worker.

use std::time::{Duration, Instant};

use bulkhead_proto::{WorkerAddress, WorkerId};
use tokio::task::AbortHandle;

use crate::event::{Event, EventSender};
use crate::readiness;

/// How a worker is pinged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Control,
    HttpGet(String),
    Connect,
}

impl Method {
    /// The method for a worker: control channel if it speaks it, else the pool's health path,
    /// else a connect.
    pub fn choose(speaks_control: bool, health_path: &str) -> Method {
        if speaks_control {
            Method::Control
        } else if !health_path.is_empty() {
            Method::HttpGet(health_path.to_string())
        } else {
            Method::Connect
        }
    }

    /// How an operator reads it: `"control-channel ping"`, `"GET /health"`, `"connect"`.
    pub fn describe(&self) -> String {
        match self {
            Method::Control => "control-channel ping".into(),
            Method::HttpGet(p) => format!("GET {p}"),
            Method::Connect => "socket connect".into(),
        }
    }
}

/// One worker's ping bookkeeping.
#[derive(Debug)]
pub struct PingState {
    /// When the next ping starts.
    pub next_at: Instant,
    /// The ping in progress: its number, when it started, how, and its probe task.
    pub outstanding: Option<Outstanding>,
    seq: u64,
}

/// A ping waiting for its answer.
#[derive(Debug)]
pub struct Outstanding {
    pub seq: u64,
    pub sent: Instant,
    pub method: Method,
    pub task: Option<AbortHandle>,
}

impl PingState {
    /// The first ping of a worker that became ready at `now` comes one interval later.
    pub fn new(now: Instant, interval: Duration) -> PingState {
        PingState { next_at: now + interval, outstanding: None, seq: 0 }
    }

    /// Starts a ping if one is due: returns its sequence number (the caller sends it or starts
    /// the probe with [`spawn_probe`]).
    pub fn start(&mut self, now: Instant, interval: Duration, method: Method) -> Option<u64> {
        if interval.is_zero() || self.outstanding.is_some() || now < self.next_at {
            return None;
        }
        self.seq += 1;
        self.next_at = now + interval;
        self.outstanding = Some(Outstanding { seq: self.seq, sent: now, method, task: None });
        Some(self.seq)
    }

    /// An answer arrived: `true` when it answers the ping in progress.
    pub fn answered(&mut self, seq: u64) -> bool {
        match &self.outstanding {
            Some(o) if o.seq == seq => {
                self.cancel();
                true
            }
            _ => false,
        }
    }

    /// The ping in progress when it has waited `timeout` or more.
    pub fn expired(&self, now: Instant, timeout: Duration) -> Option<&Outstanding> {
        self.outstanding.as_ref().filter(|o| now.saturating_duration_since(o.sent) >= timeout)
    }

    /// Forgets the ping in progress (and stops its probe).
    pub fn cancel(&mut self) {
        if let Some(task) = self.outstanding.take().and_then(|o| o.task) {
            task.abort();
        }
    }
}

/// Pause between two probe attempts within one ping.
const RETRY: Duration = Duration::from_millis(200);

/// Starts the probe task of an HTTP or connect ping; it sends `HealthAnswered` once the worker
/// answers and otherwise keeps trying until aborted (the supervisor judges the timeout).
pub(crate) fn spawn_probe(
    method: &Method,
    address: WorkerAddress,
    pool: String,
    worker: WorkerId,
    seq: u64,
    events: &EventSender,
) -> Option<AbortHandle> {
    let path = match method {
        Method::Control => return None,
        Method::HttpGet(p) => Some(p.clone()),
        Method::Connect => None,
    };
    let events = events.clone();
    let task = tokio::spawn(async move {
        loop {
            let ok = match &path {
                Some(p) => matches!(readiness::probe_once(&address, p).await, Ok(true)),
                None => connects(&address).await,
            };
            if ok {
                let _ = events.send(Event::HealthAnswered { pool, worker, seq });
                return;
            }
            tokio::time::sleep(RETRY).await;
        }
    });
    Some(task.abort_handle())
}

async fn connects(address: &WorkerAddress) -> bool {
    match address {
        WorkerAddress::Unix(p) => tokio::net::UnixStream::connect(p).await.is_ok(),
        WorkerAddress::Tcp(a) => tokio::net::TcpStream::connect(a).await.is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ping_at_a_time_every_interval() {
        let t = Instant::now();
        let secs = Duration::from_secs;
        let mut p = PingState::new(t, secs(10));
        assert_eq!(p.start(t, secs(10), Method::Connect), None, "not before one interval");
        assert_eq!(p.start(t + secs(10), secs(10), Method::Connect), Some(1));
        assert_eq!(p.start(t + secs(25), secs(10), Method::Connect), None, "one outstanding at a time");
        assert!(p.expired(t + secs(12), secs(5)).is_none());
        assert_eq!(p.expired(t + secs(15), secs(5)).map(|o| o.seq), Some(1));
        assert!(!p.answered(7));
        assert!(p.answered(1));
        assert!(p.expired(t + secs(99), secs(5)).is_none());
        assert_eq!(p.start(t + secs(20), secs(10), Method::Control), Some(2));
        assert_eq!(p.start(t, Duration::ZERO, Method::Control), None, "0s turns pinging off");
    }

    #[test]
    fn method_follows_what_the_worker_speaks() {
        assert_eq!(Method::choose(true, "/health"), Method::Control);
        assert_eq!(Method::choose(false, "/health"), Method::HttpGet("/health".into()));
        assert_eq!(Method::choose(false, ""), Method::Connect);
    }
}
