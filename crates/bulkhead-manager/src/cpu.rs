//! The CPU limit (IIS's "CPU monitoring"): `cpu.limit` percent of one core over each
//! `cpu.reset_interval`, measured from the CPU time `/proc` reports for a worker's process group.
//!
//! The supervisor keeps one [`CpuWindow`] per worker and feeds it every resource sample
//! ([`crate::procfs::Usage::cpu_ticks`]). A window opens at the first sample and lasts
//! `reset_interval`; as soon as the CPU time used inside it exceeds `limit`% of the window's
//! length, the window reports an [`Overrun`] once, and the supervisor takes the pool's action
//! (`log` or `recycle`). Then the window waits for the next interval. Pure arithmetic on values
//! passed in.

use std::time::{Duration, Instant};

/// One worker's current measuring window.
#[derive(Debug, Clone, Default)]
pub struct CpuWindow {
    start: Option<(Instant, u64)>,
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
        let (start, start_ticks) = match self.start {
            Some((s, t)) if now.duration_since(s) < interval && ticks >= t => (s, t),
            _ => {
                self.start = Some((now, ticks));
                self.fired = false;
                return None;
            }
        };
        let used = Duration::from_secs_f64((ticks - start_ticks) as f64 / ticks_per_sec.max(1) as f64);
        let allowed = interval.mul_f64(f64::from(limit_percent) / 100.0);
        if used > allowed && !self.fired {
            self.fired = true;
            return Some(Overrun { used, within: now.duration_since(start) });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_window_when_over_the_limit() {
        let mut w = CpuWindow::default();
        let t = Instant::now();
        let secs = Duration::from_secs;
        // 50% of one core over 10 s = 5 s of CPU allowed.
        assert_eq!(w.observe(t, 0, 100, 50, secs(10)), None);
        assert_eq!(w.observe(t + secs(2), 400, 100, 50, secs(10)), None);
        let over = w.observe(t + secs(3), 600, 100, 50, secs(10)).unwrap();
        assert_eq!(over.used, secs(6));
        assert_eq!(over.within, secs(3));
        assert_eq!(w.observe(t + secs(4), 700, 100, 50, secs(10)), None, "once per window");
        // A new window starts at the next sample after the interval.
        assert_eq!(w.observe(t + secs(11), 800, 100, 50, secs(10)), None);
        assert_eq!(w.observe(t + secs(12), 1400, 100, 50, secs(10)).map(|o| o.used), Some(secs(6)));
    }

    #[test]
    fn no_limit_never_fires() {
        let mut w = CpuWindow::default();
        let t = Instant::now();
        assert_eq!(w.observe(t, 0, 100, 0, Duration::from_secs(1)), None);
        assert_eq!(w.observe(t + Duration::from_millis(500), 10_000, 100, 0, Duration::from_secs(1)), None);
    }
}
