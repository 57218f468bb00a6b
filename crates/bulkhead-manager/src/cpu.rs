//! The CPU limit (IIS's "CPU monitoring"): `cpu.limit` percent of one core over each
//! `cpu.reset_interval`, measured from the CPU time `/proc` reports for a worker's process group.
//!
//! The supervisor keeps one [`CpuWindow`] per worker, opened when the worker is spawned
//! ([`CpuWindow::opened_at`], the process's CPU time then being zero), and feeds it every
//! resource sample ([`crate::procfs::Usage::cpu_ticks`]). A window lasts `reset_interval`; as
//! soon as the CPU time used inside it exceeds `limit`% of the interval, the window reports an
//! [`Overrun`] once, and the supervisor takes the pool's action (`log` or `recycle`).
//!
//! Windows are contiguous: the next one starts at the last sample of the one before, so every
//! tick of CPU time counts in exactly one window — none is lost before the first sample after
//! spawn or between two windows (losing them let a burst that straddled a boundary, or came
//! right after the worker started, go unseen). Pure arithmetic on values passed in.

use std::time::{Duration, Instant};

/// One worker's current measuring window.
#[derive(Debug, Clone)]
pub struct CpuWindow {
    /// When the window opened and the group's CPU ticks then.
    start: (Instant, u64),
    /// The last sample observed.
    last: (Instant, u64),
    fired: bool,
}

/// The limit was exceeded in the current window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overrun {
    /// CPU time used since the window opened.
    pub used: Duration,
    /// How long the window has been open.
    pub within: Duration,
}

impl CpuWindow {
    /// The first window of a worker spawned at `started` (its CPU time then is zero).
    pub fn opened_at(started: Instant) -> CpuWindow {
        CpuWindow { start: (started, 0), last: (started, 0), fired: false }
    }

    /// Records a sample of `ticks` (at `ticks_per_sec`) taken at `now`; `Some` the first time
    /// the window's use goes over `limit_percent` of `interval`.
    pub fn observe(
        &mut self,
        now: Instant,
        ticks: u64,
        ticks_per_sec: u64,
        limit_percent: u32,
        interval: Duration,
    ) -> Option<Overrun> {
        if limit_percent == 0 || interval.is_zero() {
            return None;
        }
        if ticks < self.last.1 || now < self.last.0 {
            // A process of the group exited (its time no longer counts): measure from here.
            self.start = (now, ticks);
            self.last = (now, ticks);
            self.fired = false;
            return None;
        }
        if now.duration_since(self.start.0) >= interval {
            // The next window takes over where the last sample left off.
            self.start = self.last;
            self.fired = false;
        }
        self.last = (now, ticks);
        let (start, start_ticks) = self.start;
        let within = now.duration_since(start);
        let used = Duration::from_secs_f64((ticks - start_ticks) as f64 / ticks_per_sec.max(1) as f64);
        // Samples further apart than the interval make a longer window: allow in proportion.
        let allowed = interval.max(within).mul_f64(f64::from(limit_percent) / 100.0);
        if used > allowed && !self.fired {
            self.fired = true;
            return Some(Overrun { used, within });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_window_when_over_the_limit() {
        let t = Instant::now();
        let mut w = CpuWindow::opened_at(t);
        let secs = Duration::from_secs;
        // 50% of one core over 10 s = 5 s of CPU allowed.
        assert_eq!(w.observe(t + secs(1), 0, 100, 50, secs(10)), None);
        assert_eq!(w.observe(t + secs(2), 400, 100, 50, secs(10)), None);
        let over = w.observe(t + secs(3), 600, 100, 50, secs(10)).unwrap();
        assert_eq!(over.used, secs(6));
        assert_eq!(over.within, secs(3));
        assert_eq!(w.observe(t + secs(4), 700, 100, 50, secs(10)), None, "once per window");
        // The next window starts at the last sample before the interval ended (t+4, 700).
        assert_eq!(w.observe(t + secs(11), 800, 100, 50, secs(10)), None);
        assert_eq!(w.observe(t + secs(12), 1300, 100, 50, secs(10)).map(|o| o.used), Some(secs(6)));
    }

    /// CPU used before the first sample after spawn counts (it was lost, so a burst right
    /// after the worker became ready went unseen).
    #[test]
    fn time_used_before_the_first_sample_counts() {
        let t = Instant::now();
        let mut w = CpuWindow::opened_at(t);
        // 10% of 3 s = 0.3 s allowed; 0.8 s used by the first sample.
        let over = w.observe(t + Duration::from_secs(1), 80, 100, 10, Duration::from_secs(3));
        assert_eq!(over.map(|o| o.used), Some(Duration::from_millis(800)));
    }

    /// A burst straddling a window boundary is counted whole in the window that follows
    /// (the time between the last sample of a window and the first after it was lost).
    #[test]
    fn a_burst_across_a_window_boundary_is_not_lost() {
        let t = Instant::now();
        let secs = Duration::from_secs;
        let mut w = CpuWindow::opened_at(t);
        assert_eq!(w.observe(t + secs(1), 0, 100, 10, secs(3)), None);
        assert_eq!(w.observe(t + secs(2), 5, 100, 10, secs(3)), None);
        // 0.9 s used between t+2 and t+3, when the first window ends.
        let over = w.observe(t + secs(3), 95, 100, 10, secs(3)).unwrap();
        assert_eq!((over.used, over.within), (Duration::from_millis(900), secs(1)));
    }

    #[test]
    fn sparse_samples_are_judged_over_their_whole_span() {
        let t = Instant::now();
        let mut w = CpuWindow::opened_at(t);
        // 10% of 1 s, but 10 s between samples with 0.5 s used: 5%, under the limit.
        assert_eq!(w.observe(t + Duration::from_secs(10), 50, 100, 10, Duration::from_secs(1)), None);
    }

    #[test]
    fn no_limit_never_fires() {
        let t = Instant::now();
        let mut w = CpuWindow::opened_at(t);
        assert_eq!(w.observe(t, 0, 100, 0, Duration::from_secs(1)), None);
        assert_eq!(w.observe(t + Duration::from_millis(500), 10_000, 100, 0, Duration::from_secs(1)), None);
    }
}
