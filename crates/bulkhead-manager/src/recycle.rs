//! Recycling (IIS's worker process recycling, DESIGN §3): when a worker must be replaced, and
//! in which order.
//!
//! The supervisor asks [`due`] on every tick for each ready worker, with what it knows (age,
//! requests served, last resource sample); time-of-day recycling is decided per pool by
//! [`Schedule`], operator commands, config changes, the CPU limit and a worker's own
//! `RequestRecycle` arrive as plain reasons. How a recycle runs (overlapped or not, one worker
//! of a web garden at a time) is the supervisor's job (`supervisor/recycling.rs`); this module
//! holds the decisions that can be tested without processes.
//!
//! **Staggering.** In a web garden, workers started together would reach their age or request
//! limits together. A worker started to fill slot `i` of `N` (at boot or demand start, not as a
//! replacement) gets limits shortened by `i/N` of the configured value ([`Limits::staggered`]),
//! so the first recycles are spread evenly; replacements get the full limits, which keeps the
//! spread. No worker ever exceeds the configured limit.
//!
//! **Schedule times** are local wall-clock times. The local UTC offset is taken once at
//! start-up by the binary (the `time` crate cannot read it safely in a multi-threaded process);
//! when it is unknown, times are read as UTC and the manager says so once. A daylight-saving
//! change during the manager's life is not followed until it restarts.

use std::fmt;
use std::time::Duration;

use bulkhead_config::units::format_duration;
use bulkhead_config::TimeOfDay;

/// Why a worker is recycled; the text an operator reads in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `recycle.every` reached.
    Age { limit: Duration },
    /// `recycle.requests` reached.
    Requests { served: u64, limit: u64 },
    /// A `recycle.schedule` time passed.
    Schedule(TimeOfDay),
    /// `recycle.memory` exceeded.
    Memory { rss: u64, limit: u64 },
    /// `recycle.virtual_memory` exceeded.
    VirtualMemory { vsz: u64, limit: u64 },
    /// `cpu.limit` exceeded with `cpu.action = "recycle"`.
    Cpu(String),
    /// The pool's configuration changed.
    ConfigChange,
    /// An operator asked (`bulkhead pool recycle NAME`).
    Operator,
    /// The worker asked on its control channel.
    WorkerAsked(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Age { limit } => write!(f, "it is {} old (recycle.every)", format_duration(*limit)),
            Reason::Requests { served, limit } => {
                write!(f, "it served {served} requests (recycle.requests = {limit})")
            }
            Reason::Schedule(t) => write!(f, "scheduled recycle at {:02}:{:02} (recycle.schedule)", t.hour, t.minute),
            Reason::Memory { rss, limit } => {
                write!(f, "it uses {} of resident memory (recycle.memory = {})", size(*rss), size(*limit))
            }
            Reason::VirtualMemory { vsz, limit } => {
                write!(f, "it uses {} of virtual memory (recycle.virtual_memory = {})", size(*vsz), size(*limit))
            }
            Reason::Cpu(s) => f.write_str(s),
            Reason::ConfigChange => f.write_str("the pool's configuration changed"),
            Reason::Operator => f.write_str("an operator asked"),
            Reason::WorkerAsked(why) => write!(f, "it asked to be recycled ({why})"),
        }
    }
}

/// `"130.0MiB"`, `"2.0GiB"`, `"512KiB"`: sizes in an operator's units.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1}GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1}MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.0}KiB", b / KIB)
    } else {
        format!("{bytes}B")
    }
}

/// One worker's age and request limits (zero = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub age: Duration,
    pub requests: u64,
}

impl Limits {
    /// The pool's limits for a worker filling `slot` of `processes`: shortened by
    /// `slot / processes` (see the module doc). `slot` 0 gets the configured limits.
    pub fn staggered(config: &bulkhead_config::Recycle, slot: u32, processes: u32) -> Limits {
        let n = processes.max(1);
        let slot = slot.min(n - 1);
        let keep = |v: u128| v - v * u128::from(slot) / u128::from(n);
        Limits {
            age: Duration::from_nanos(keep(config.every.as_nanos()).min(u64::MAX as u128) as u64),
            requests: keep(u128::from(config.requests)) as u64,
        }
    }
}

/// What the supervisor knows about one ready worker when it asks whether it is due.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    pub age: Duration,
    pub requests: u64,
    /// Last resource sample, if any.
    pub rss: Option<u64>,
    pub vsz: Option<u64>,
}

/// The first limit the worker has reached, if any: age, requests, memory, virtual memory.
pub fn due(config: &bulkhead_config::Recycle, limits: Limits, seen: Observed) -> Option<Reason> {
    if !limits.age.is_zero() && seen.age >= limits.age {
        return Some(Reason::Age { limit: limits.age });
    }
    if limits.requests > 0 && seen.requests >= limits.requests {
        return Some(Reason::Requests { served: seen.requests, limit: limits.requests });
    }
    if let Some(rss) = seen.rss.filter(|r| config.memory > 0 && *r > config.memory) {
        return Some(Reason::Memory { rss, limit: config.memory });
    }
    if let Some(vsz) = seen.vsz.filter(|v| config.virtual_memory > 0 && *v > config.virtual_memory) {
        return Some(Reason::VirtualMemory { vsz, limit: config.virtual_memory });
    }
    None
}

/// A local wall-clock minute: days since an epoch and minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Minute {
    pub day: i64,
    pub minute: u16,
}

impl Minute {
    /// The local minute of `now` at `offset`.
    pub fn of(now: time::OffsetDateTime, offset: time::UtcOffset) -> Minute {
        let local = now.to_offset(offset);
        Minute {
            day: i64::from(local.date().to_julian_day()),
            minute: u16::from(local.hour()) * 60 + u16::from(local.minute()),
        }
    }
}

/// A pool's `recycle.schedule`, remembering the last minute it looked at so each time fires
/// once, when the clock passes it.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    last: Option<Minute>,
}

impl Schedule {
    /// The times passed since the last call (none on the first call, and none when the clock
    /// went backwards). More than a day between two calls fires each time once.
    pub fn passed(&mut self, times: &[TimeOfDay], now: Minute) -> Vec<TimeOfDay> {
        let Some(last) = self.last.replace(now) else { return Vec::new() };
        if now <= last {
            if now < last {
                self.last = Some(last);
            }
            return Vec::new();
        }
        times
            .iter()
            .copied()
            .filter(|t| {
                let m = u16::from(t.hour) * 60 + u16::from(t.minute);
                if now.day == last.day {
                    last.minute < m && m <= now.minute
                } else {
                    m > last.minute || m <= now.minute || now.day - last.day > 1
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(every: u64, requests: u64, memory: u64) -> bulkhead_config::Recycle {
        bulkhead_config::Recycle {
            every: Duration::from_secs(every),
            requests,
            schedule: vec![],
            memory,
            virtual_memory: 0,
            overlapped: true,
        }
    }

    #[test]
    fn web_garden_slots_are_spread_and_never_longer() {
        let c = cfg(120, 1000, 0);
        assert_eq!(Limits::staggered(&c, 0, 3), Limits { age: Duration::from_secs(120), requests: 1000 });
        assert_eq!(Limits::staggered(&c, 1, 3), Limits { age: Duration::from_secs(80), requests: 667 });
        assert_eq!(Limits::staggered(&c, 2, 3), Limits { age: Duration::from_secs(40), requests: 334 });
        assert_eq!(Limits::staggered(&c, 9, 3), Limits::staggered(&c, 2, 3));
        assert_eq!(Limits::staggered(&cfg(0, 0, 0), 1, 2), Limits::default());
    }

    #[test]
    fn first_reached_limit_is_the_reason() {
        let c = cfg(60, 100, 1 << 20);
        let limits = Limits::staggered(&c, 0, 1);
        let seen = Observed { age: Duration::from_secs(1), requests: 5, rss: Some(1000), vsz: Some(1 << 30) };
        assert_eq!(due(&c, limits, seen), None);
        assert_eq!(
            due(&c, limits, Observed { requests: 100, ..seen }),
            Some(Reason::Requests { served: 100, limit: 100 })
        );
        let big = Observed { rss: Some(3 << 20), ..seen };
        assert_eq!(
            due(&c, limits, big).unwrap().to_string(),
            "it uses 3.0MiB of resident memory (recycle.memory = 1.0MiB)"
        );
        assert_eq!(
            due(&c, limits, Observed { age: Duration::from_secs(60), ..big }).unwrap().to_string(),
            "it is 1m old (recycle.every)"
        );
    }

    #[test]
    fn schedule_fires_each_time_once_when_passed() {
        let t = |h, m| TimeOfDay { hour: h, minute: m };
        let times = [t(3, 30), t(23, 59)];
        let at = |day, h: u16, m: u16| Minute { day, minute: h * 60 + m };
        let mut s = Schedule::default();
        assert!(s.passed(&times, at(1, 3, 29)).is_empty(), "first look only remembers");
        assert_eq!(s.passed(&times, at(1, 3, 30)), vec![t(3, 30)]);
        assert!(s.passed(&times, at(1, 3, 30)).is_empty());
        assert!(s.passed(&times, at(1, 3, 31)).is_empty());
        assert!(s.passed(&times, at(1, 3, 0)).is_empty(), "clock went back: nothing");
        assert!(s.passed(&times, at(1, 3, 31)).is_empty());
        // Across midnight.
        assert_eq!(s.passed(&times, at(2, 0, 5)), vec![t(23, 59)]);
        assert_eq!(s.passed(&times, at(4, 0, 0)), vec![t(3, 30), t(23, 59)]);
    }

    #[test]
    fn minute_uses_the_offset() {
        let now = time::macros::datetime!(2024-03-01 23:30 UTC);
        let m = Minute::of(now, time::macros::offset!(+2));
        assert_eq!(m.minute, 90);
        assert_eq!(m.day, Minute::of(now, time::UtcOffset::UTC).day + 1);
    }
}
