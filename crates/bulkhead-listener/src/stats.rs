//! [`RequestStats`]: the per-site request counters the listener reports to the manager (for its
//! admin API and metrics) — status counts and a duration histogram.
//!
//! A leaf of the crate's layering: it imports nothing of the listener. Fed by the access-log
//! sender ([`crate::log::LogSender::access`], one short lock per finished request), drained once
//! a second by the control ticker ([`crate::control`]) into a `Stats` message. Never does I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_proto::DURATION_BUCKETS;

/// Requests answered per site since the last report: status counts and a duration histogram
/// (`bulkhead_proto::DURATION_BUCKETS`).
#[derive(Default)]
pub struct RequestStats {
    sites: Mutex<HashMap<Arc<str>, SiteCounts>>,
}

#[derive(Default)]
struct SiteCounts {
    responses: HashMap<u16, u64>,
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum_us: u64,
}

impl RequestStats {
    /// Counts one finished request.
    pub fn record(&self, site: &Arc<str>, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = DURATION_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(DURATION_BUCKETS.len());
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let c = sites.entry(site.clone()).or_default();
        *c.responses.entry(status).or_default() += 1;
        c.buckets[bucket] += 1;
        c.sum_us = c.sum_us.saturating_add(took.as_micros() as u64);
    }

    /// Everything counted since the previous call, and resets.
    pub fn take(&self) -> Vec<bulkhead_proto::SiteStats> {
        let taken = std::mem::take(&mut *self.sites.lock().unwrap_or_else(|e| e.into_inner()));
        taken
            .into_iter()
            .map(|(site, c)| bulkhead_proto::SiteStats {
                site: site.to_string(),
                responses: c.responses.into_iter().collect(),
                duration_buckets: c.buckets.to_vec(),
                duration_sum_us: c.sum_us,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_stats_count_and_reset() {
        let stats = RequestStats::default();
        let site: Arc<str> = Arc::from("s");
        stats.record(&site, 200, Duration::from_micros(500));
        stats.record(&site, 200, Duration::from_secs(10));
        stats.record(&site, 404, Duration::from_millis(3));
        let taken = stats.take();
        assert_eq!(taken.len(), 1);
        let mut responses = taken[0].responses.clone();
        responses.sort();
        assert_eq!(responses, vec![(200, 2), (404, 1)]);
        assert_eq!(taken[0].duration_buckets[0], 1);
        assert_eq!(taken[0].duration_buckets[2], 1);
        assert_eq!(*taken[0].duration_buckets.last().unwrap(), 1);
        assert!(stats.take().is_empty());
    }
}
