//! The manager's event log: every lifecycle transition an operator may act on.
//!
//! The supervisor calls [`EventLog::record`] for each transition (worker started, ready,
//! crashed, pool disabled, listener restarted…). Each event becomes one `tracing` line on the
//! manager's stderr and is kept in a bounded in-memory list, newest last, for the admin API
//! (`recent events`). Recording never blocks and never fails; the oldest events are dropped.

use std::collections::VecDeque;
use std::time::SystemTime;

/// How much an operator should care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: SystemTime,
    pub level: Level,
    /// The pool concerned, if any.
    pub pool: Option<String>,
    /// The full operator-facing line, e.g.
    /// `pool "api": worker 4121 (w3) exited with signal SIGKILL; restarting (crash 2 of 5 within 5m)`.
    pub message: String,
}

/// A bounded list of recent events.
#[derive(Debug)]
pub struct EventLog {
    entries: VecDeque<Event>,
    capacity: usize,
}

/// Events kept by default.
pub const DEFAULT_CAPACITY: usize = 1000;

impl Default for EventLog {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl EventLog {
    pub fn with_capacity(capacity: usize) -> Self {
        EventLog { entries: VecDeque::with_capacity(capacity.min(64)), capacity: capacity.max(1) }
    }

    /// Logs `message` at `level` and keeps it.
    pub fn record(&mut self, level: Level, pool: Option<&str>, message: String) {
        match (level, pool) {
            (Level::Info, Some(p)) => tracing::info!(target: "bulkhead::manager", pool = p, "{message}"),
            (Level::Info, None) => tracing::info!(target: "bulkhead::manager", "{message}"),
            (Level::Warn, Some(p)) => tracing::warn!(target: "bulkhead::manager", pool = p, "{message}"),
            (Level::Warn, None) => tracing::warn!(target: "bulkhead::manager", "{message}"),
            (Level::Error, Some(p)) => tracing::error!(target: "bulkhead::manager", pool = p, "{message}"),
            (Level::Error, None) => tracing::error!(target: "bulkhead::manager", "{message}"),
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(Event { at: SystemTime::now(), level, pool: pool.map(str::to_string), message });
    }

    pub fn info(&mut self, pool: Option<&str>, message: String) {
        self.record(Level::Info, pool, message);
    }

    pub fn warn(&mut self, pool: Option<&str>, message: String) {
        self.record(Level::Warn, pool, message);
    }

    pub fn error(&mut self, pool: Option<&str>, message: String) {
        self.record(Level::Error, pool, message);
    }

    /// Recent events, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Event> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest() {
        let mut log = EventLog::with_capacity(2);
        for i in 0..3 {
            log.info(Some("p"), format!("e{i}"));
        }
        let kept: Vec<&str> = log.recent().map(|e| e.message.as_str()).collect();
        assert_eq!(kept, ["e1", "e2"]);
    }
}
