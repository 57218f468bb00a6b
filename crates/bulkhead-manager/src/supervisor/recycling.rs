//! The supervisor's recycling (DESIGN §3, issue #4 item 3), resource sampling and CPU limit.
//!
//! Every tick, [`Supervisor::tick_recycle`] checks each ready worker against its pool's limits
//! ([`crate::recycle::due`]: age, requests, resident and virtual memory) and the pool's schedule;
//! operator commands ([`Supervisor::recycle_pool`]), config changes, the CPU limit and a worker's
//! own `RequestRecycle` mark workers too. A pool recycles **one worker at a time**:
//! - overlapped (default): the old worker is marked `retiring` and keeps serving; `reconcile`
//!   starts its replacement; when that one is ready (`WorkerUp` sent first), the old one gets
//!   `WorkerDraining`, then is stopped like any worker (`Drain`/SIGTERM once its connections
//!   are done, SIGKILL at `shutdown_time_limit`) — [`Supervisor::replace_retiring`];
//! - `overlapped = false`: the old worker is stopped first (requests wait in the listener's
//!   queue) and the replacement starts only after it exited.
//!
//! Resource use is sampled from `/proc` on a blocking-pool thread ([`Supervisor::tick_sampling`])
//! and comes back as an `Event::Usage`. Nothing here blocks the supervisor task.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bulkhead_config::units::format_duration;
use bulkhead_config::CpuAction;
use bulkhead_proto::WorkerId;

use super::{Event, Phase, Supervisor};
use crate::cgroup::{self, Cgroups};
use crate::identity::ListenerIdentity;
use crate::pool::Mode;
use crate::procfs::{self, Usage};
use crate::recycle::{self, Minute, Observed, Reason};
use crate::worker::{pool_log, Ending, WorkerState};

/// Sampling period when some pool has a memory or CPU limit.
const SAMPLE_FAST: Duration = Duration::from_secs(1);
/// Sampling period otherwise (for status displays).
const SAMPLE_SLOW: Duration = Duration::from_secs(5);

/// The supervisor's state for health, recycling, identity and cgroups.
#[derive(Debug)]
pub(crate) struct Upkeep {
    /// The listener's user, when it runs as another user than the manager.
    pub listener: Option<ListenerIdentity>,
    /// Bulkhead's cgroup subtree, when cgroup v2 is usable.
    pub cgroups: Option<Cgroups>,
    pub local_offset: Option<time::UtcOffset>,
    pub allow_root: bool,
    next_sample: Instant,
    sampling: bool,
    ticks_per_sec: u64,
    offset_warned: bool,
}

impl Upkeep {
    /// Resolves the listener's identity and looks for cgroup v2 (saying once if it is not
    /// usable and a pool asked for limits).
    pub(crate) fn new(
        config: &bulkhead_config::Config,
        local_offset: Option<time::UtcOffset>,
        allow_root: bool,
    ) -> Result<Upkeep, String> {
        let listener = ListenerIdentity::for_server(&config.server.listener_user)?;
        let cgroups = match Cgroups::detect(std::path::Path::new(cgroup::CGROUP_FS)) {
            Ok(c) => Some(c),
            Err(why) => {
                let asked: Vec<&str> =
                    config.pools.values().filter(|p| p.limits.is_some()).map(|p| p.name.as_str()).collect();
                if asked.is_empty() {
                    tracing::info!(target: "bulkhead::manager", "cgroups not used: {why}");
                } else {
                    tracing::warn!(
                        target: "bulkhead::manager",
                        "cgroups not used: {why}; the limits of pool(s) {} are not enforced",
                        asked.join(", ")
                    );
                }
                None
            }
        };
        Ok(Upkeep {
            listener,
            cgroups,
            local_offset,
            allow_root,
            next_sample: Instant::now(),
            sampling: false,
            ticks_per_sec: procfs::clock_ticks(),
            offset_warned: false,
        })
    }
}

impl Supervisor {
    /// Operator command (`bulkhead pool recycle NAME`), and what a change of the pool's config
    /// calls after replacing `pool.config` (with [`Reason::ConfigChange`]): every ready worker of
    /// the pool is replaced, one at a time, overlapped unless the pool says otherwise. Returns
    /// `false` for an unknown pool. A pool with no worker has nothing to recycle (its next
    /// worker starts with the current config anyway).
    #[allow(dead_code)] // called by the admin API (issue #5)
    pub(crate) fn recycle_pool(&mut self, name: &str, reason: Reason) -> bool {
        let Some(pool) = self.pools.get_mut(name) else { return false };
        let mut marked = 0;
        for w in pool.workers.values_mut().filter(|w| w.state == WorkerState::Ready && w.retiring.is_none()) {
            w.recycle_requested = Some(reason.clone());
            marked += 1;
        }
        let how = if pool.config.recycle.overlapped { "overlapped" } else { "not overlapped" };
        let line = if marked == 0 {
            format!("pool {name:?}: recycle requested ({reason}); no worker is running, nothing to do")
        } else {
            format!("pool {name:?}: recycle requested ({reason}); replacing {marked} worker(s) one at a time ({how})")
        };
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.info(Some(name), line);
        self.tick_recycle(name, Instant::now());
        true
    }

    /// One worker asks to be recycled (its control channel, or the CPU limit).
    pub(super) fn request_recycle(&mut self, name: &str, id: WorkerId, reason: Reason) {
        if let Some(w) = self.pools.get_mut(name).and_then(|p| p.workers.get_mut(&id)) {
            if w.state == WorkerState::Ready && w.retiring.is_none() && w.recycle_requested.is_none() {
                w.recycle_requested = Some(reason);
            }
        }
        self.tick_recycle(name, Instant::now());
    }

    /// Starts the next due recycle of the pool, if none is under way.
    pub(super) fn tick_recycle(&mut self, name: &str, now: Instant) {
        if self.phase != Phase::Serving {
            return;
        }
        self.check_schedule(name);
        let Some(pool) = self.pools.get(name) else { return };
        if pool.mode() != &Mode::Active || pool.recycling() {
            return;
        }
        let config = &pool.config.recycle;
        let next =
            pool.workers.values().filter(|w| w.state == WorkerState::Ready && w.retiring.is_none()).find_map(|w| {
                let seen = Observed {
                    age: w.ready_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
                    requests: w.requests,
                    rss: w.usage.map(|u| u.rss),
                    vsz: w.usage.map(|u| u.vsz),
                };
                w.recycle_requested.clone().or_else(|| recycle::due(config, w.limits, seen)).map(|r| (w.id, r))
            });
        if let Some((id, reason)) = next {
            self.begin_recycle(name, id, reason, now);
        }
    }

    /// Marks every ready worker for recycling when a `recycle.schedule` time has passed.
    fn check_schedule(&mut self, name: &str) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        if pool.config.recycle.schedule.is_empty() {
            return;
        }
        let offset = self.upkeep.local_offset.unwrap_or(time::UtcOffset::UTC);
        if self.upkeep.local_offset.is_none() && !self.upkeep.offset_warned {
            self.upkeep.offset_warned = true;
            self.events
                .warn(None, "the local time zone offset is unknown: recycle.schedule times are read as UTC".into());
        }
        let now = Minute::of(time::OffsetDateTime::now_utc(), offset);
        let passed = pool.schedule.passed(&pool.config.recycle.schedule, now);
        if let Some(t) = passed.last() {
            for w in pool.workers.values_mut().filter(|w| w.state == WorkerState::Ready && w.retiring.is_none()) {
                w.recycle_requested.get_or_insert(Reason::Schedule(*t));
            }
        }
    }

    fn begin_recycle(&mut self, name: &str, id: WorkerId, reason: Reason, now: Instant) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let overlapped = pool.config.recycle.overlapped;
        let Some(w) = pool.workers.get_mut(&id) else { return };
        w.recycle_requested = None;
        let pid = w.process.pid;
        self.admin.note_recycle(name, &reason);
        let line = if overlapped {
            w.retiring = Some(reason.clone());
            format!(
                "pool {name:?}: recycling worker {pid} ({id}): {reason}; starting its replacement first (overlapped)"
            )
        } else {
            w.end(Ending::Recycled);
            format!(
                "pool {name:?}: recycling worker {pid} ({id}): {reason}; stopping it before its replacement starts (overlapped = false: requests wait in the queue)"
            )
        };
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.info(Some(name), line);
        if !overlapped {
            self.stop_worker(name, id, now, Ending::Recycled);
        }
        self.reconcile(name);
    }

    /// A new worker of the pool is ready (and announced): the oldest retiring worker stops
    /// receiving requests, drains and stops.
    pub(super) fn replace_retiring(&mut self, name: &str, new: WorkerId) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let Some(old) = pool
            .workers
            .values_mut()
            .filter(|w| w.retiring.is_some() && w.state == WorkerState::Ready)
            .min_by_key(|w| w.id)
        else {
            return;
        };
        old.end(Ending::Recycled);
        let (old_id, old_pid) = (old.id, old.process.pid);
        let new_pid = pool.workers.get(&new).map(|w| w.process.pid.to_string()).unwrap_or_default();
        let line = format!(
            "pool {name:?}: worker {new_pid} ({new}) took over from worker {old_pid} ({old_id}), which now finishes its requests and stops"
        );
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.info(Some(name), line);
        self.stop_worker(name, old_id, Instant::now(), Ending::Recycled);
    }

    /// The listener dispatched `requests` to the pool: shared among its serving workers (the
    /// listener sends to the least loaded, so the shares are close; a worker's own `Pong`
    /// count replaces its share when it reports one).
    pub(super) fn count_requests(&mut self, name: &str, requests: u64) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let mut serving: Vec<_> =
            pool.workers.values_mut().filter(|w| w.state == WorkerState::Ready && w.retiring.is_none()).collect();
        let n = serving.len() as u64;
        if n == 0 {
            return;
        }
        for (i, w) in serving.iter_mut().enumerate() {
            w.requests += requests / n + u64::from((i as u64) < requests % n);
        }
    }

    /// Starts a `/proc` sample of every worker's process group when one is due.
    pub(super) fn tick_sampling(&mut self, now: Instant) {
        if self.upkeep.sampling || now < self.upkeep.next_sample {
            return;
        }
        let fast = self
            .pools
            .values()
            .any(|p| p.config.recycle.memory > 0 || p.config.recycle.virtual_memory > 0 || p.config.cpu.limit > 0);
        self.upkeep.next_sample = now + if fast { SAMPLE_FAST } else { SAMPLE_SLOW };
        let leaders: Vec<i32> =
            self.pools.values().flat_map(|p| p.workers.values().map(|w| w.process.pid.as_raw())).collect();
        if leaders.is_empty() {
            return;
        }
        self.upkeep.sampling = true;
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let _ = tx.send(Event::Usage { samples: procfs::sample_groups(&leaders) });
        });
    }

    /// A `/proc` sample arrived: keep it, and apply the CPU limit.
    pub(super) fn on_usage(&mut self, samples: HashMap<i32, Usage>) {
        self.upkeep.sampling = false;
        let now = Instant::now();
        let tps = self.upkeep.ticks_per_sec;
        let mut overruns = Vec::new();
        for pool in self.pools.values_mut() {
            let cpu = pool.config.cpu.clone();
            for w in pool.workers.values_mut() {
                let Some(u) = samples.get(&w.process.pid.as_raw()) else { continue };
                w.usage = Some(*u);
                if w.state != WorkerState::Ready {
                    continue;
                }
                if let Some(over) = w.cpu.observe(now, u.cpu_ticks, tps, cpu.limit, cpu.reset_interval) {
                    overruns.push((pool.config.name.clone(), w.id, w.process.pid, over, cpu.clone()));
                }
            }
        }
        for (name, id, pid, over, cpu) in overruns {
            let what = format!(
                "used {:.1}s of CPU in {:.1}s, over cpu.limit = {}% of one core per {} (cpu.reset_interval)",
                over.used.as_secs_f64(),
                over.within.as_secs_f64(),
                cpu.limit,
                format_duration(cpu.reset_interval)
            );
            match cpu.action {
                CpuAction::Log => {
                    let line = format!("pool {name:?}: worker {pid} ({id}) {what}; cpu.action = \"log\": nothing done");
                    pool_log(&self.state_dir.pool_log(&name), &line);
                    self.events.warn(Some(&name), line);
                }
                CpuAction::Recycle => self.request_recycle(&name, id, Reason::Cpu(format!("it {what}"))),
            }
        }
    }

    /// Prepares the pool's cgroup the first time it starts a worker; returns its directory.
    pub(super) fn pool_cgroup(&mut self, name: &str) -> Option<std::path::PathBuf> {
        let cgroups = self.upkeep.cgroups.as_ref()?;
        let pool = self.pools.get_mut(name)?;
        if !pool.cgroup_done {
            pool.cgroup_done = true;
            match cgroups.prepare_pool(name, pool.config.limits.as_ref()) {
                Ok(dir) => pool.cgroup = Some(dir),
                Err(e) => self.events.warn(Some(name), format!("pool {name:?}: runs without a cgroup: {e}")),
            }
        }
        self.pools.get(name)?.cgroup.clone()
    }
}
