//! The manager's Prometheus metrics (`GET /metrics` on the admin endpoint), kept with
//! `prometheus-client` and rendered in the OpenMetrics text format.
//!
//! Owned by the supervisor task: it adds the listener's `Stats` reports (requests by site and
//! status, the request-duration histogram, queue depths), counts lifecycle events as they
//! happen (recycles by reason, crashes, rapid-fail trips, config applies and refusals), and
//! sets the workers-by-state gauges just before rendering. Nothing here blocks or fails; it
//! never reads a process or a file.
//!
//! Metrics (all prefixed `bulkhead_`): `requests_total{site,status}`,
//! `request_duration_seconds{site}` (histogram, buckets of `bulkhead_proto::DURATION_BUCKETS`),
//! `queue_depth{pool}`, `requests_in_flight{pool}`, `workers{pool,state}`,
//! `recycles_total{pool,reason}`, `worker_crashes_total{pool}`, `rapid_fail_trips_total{pool}`,
//! `config_applies_total{source}`, `config_refusals_total{source}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bulkhead_proto::{PoolStats, SiteStats, DURATION_BUCKETS};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A histogram fed with bucket counts the listener already aggregated (prometheus-client's own
/// `Histogram` only takes single observations).
#[derive(Debug, Clone, Default)]
pub struct SummedHistogram {
    inner: Arc<Mutex<HistogramData>>,
}

#[derive(Debug, Default)]
struct HistogramData {
    /// Non-cumulative counts per `DURATION_BUCKETS` bucket, plus +Inf.
    buckets: Vec<u64>,
    sum_seconds: f64,
}

impl SummedHistogram {
    fn add(&self, buckets: &[u64], sum_seconds: f64) {
        let mut d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if d.buckets.len() < DURATION_BUCKETS.len() + 1 {
            d.buckets.resize(DURATION_BUCKETS.len() + 1, 0);
        }
        for (i, n) in buckets.iter().enumerate().take(DURATION_BUCKETS.len() + 1) {
            d.buckets[i] += n;
        }
        d.sum_seconds += sum_seconds;
    }
}

impl TypedMetric for SummedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SummedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let count: u64 = d.buckets.iter().sum();
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, upper)| (upper, d.buckets.get(i).copied().unwrap_or(0)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(d.sum_seconds, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Every metric the manager exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    durations: Family<Labels, SummedHistogram>,
    queue_depth: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    workers: Family<Labels, Gauge>,
    recycles: Family<Labels, Counter>,
    crashes: Family<Labels, Counter>,
    rapid_fail_trips: Family<Labels, Counter>,
    applies: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    tls_handshake_failures: Counter,
    log_lines_dropped: Counter,
    /// The response cache: counters by `event` (hit, miss, store, eviction), bytes answered
    /// from it, and the memory and entries it holds.
    cache_events: Family<Labels, Counter>,
    cache_hit_bytes: Counter,
    cache_memory: Gauge,
    cache_entries: Gauge,
    /// Requests counted since start, for the status page's per-second rate.
    total_requests: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bulkhead");
        let m = Metrics {
            requests: Family::default(),
            durations: Family::default(),
            queue_depth: Family::default(),
            in_flight: Family::default(),
            workers: Family::default(),
            recycles: Family::default(),
            crashes: Family::default(),
            rapid_fail_trips: Family::default(),
            applies: Family::default(),
            refusals: Family::default(),
            tls_handshake_failures: Counter::default(),
            log_lines_dropped: Counter::default(),
            cache_events: Family::default(),
            cache_hit_bytes: Counter::default(),
            cache_memory: Gauge::default(),
            cache_entries: Gauge::default(),
            total_requests: AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register("requests", "Requests answered, by site and status", m.requests.clone());
        registry.register("request_duration_seconds", "Time to answer a request, by site", m.durations.clone());
        registry.register("queue_depth", "Requests waiting in a pool's queue", m.queue_depth.clone());
        registry.register("requests_in_flight", "Requests dispatched to a pool's workers", m.in_flight.clone());
        registry.register("workers", "Worker processes by pool and state", m.workers.clone());
        registry.register("recycles", "Worker recycles by pool and reason", m.recycles.clone());
        registry.register("worker_crashes", "Unexpected exits of ready workers", m.crashes.clone());
        registry.register("rapid_fail_trips", "Pools disabled by rapid-fail protection", m.rapid_fail_trips.clone());
        registry.register("config_applies", "Configurations applied, by source", m.applies.clone());
        registry.register("config_refusals", "Configurations refused as invalid, by source", m.refusals.clone());
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed (bad client hello, no shared version or suite, timeout)",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Access and HTTPERR log lines dropped because the log writer fell behind (a stalled disk) or could not write a file",
            m.log_lines_dropped.clone(),
        );
        registry.register(
            "cache_events",
            "Response cache lookups and changes, by event: hit, miss, store, eviction",
            m.cache_events.clone(),
        );
        registry.register("cache_hit_bytes", "Body bytes answered from the response cache", m.cache_hit_bytes.clone());
        registry.register("cache_memory_bytes", "Bytes the response cache holds", m.cache_memory.clone());
        registry.register("cache_entries", "Entries the response cache holds", m.cache_entries.clone());
        Metrics { registry, ..m }
    }

    /// Adds one `Stats` report from the listener.
    pub fn add_stats(&self, sites: &[SiteStats], pools: &[PoolStats]) {
        for s in sites {
            let mut total = 0;
            for (status, n) in &s.responses {
                self.requests.get_or_create(&labels(&[("site", &s.site), ("status", &status.to_string())])).inc_by(*n);
                total += n;
            }
            self.total_requests.fetch_add(total, Ordering::Relaxed);
            let sum = s.duration_sum_us as f64 / 1e6;
            self.durations.get_or_create(&labels(&[("site", &s.site)])).add(&s.duration_buckets, sum);
        }
        for p in pools {
            let l = labels(&[("pool", &p.pool)]);
            self.queue_depth.get_or_create(&l).set(p.queue_depth as i64);
            self.in_flight.get_or_create(&l).set(p.in_flight as i64);
        }
    }

    /// Requests answered since the manager started (all sites).
    pub fn total_requests(&self) -> u64 {
        self.total_requests.load(Ordering::Relaxed)
    }

    pub fn recycle(&self, pool: &str, reason: &str) {
        self.recycles.get_or_create(&labels(&[("pool", pool), ("reason", reason)])).inc();
    }

    pub fn crash(&self, pool: &str) {
        self.crashes.get_or_create(&labels(&[("pool", pool)])).inc();
    }

    pub fn rapid_fail_trip(&self, pool: &str) {
        self.rapid_fail_trips.get_or_create(&labels(&[("pool", pool)])).inc();
    }

    pub fn config_applied(&self, source: &str) {
        self.applies.get_or_create(&labels(&[("source", source)])).inc();
    }

    /// Adds the listener's count of failed TLS handshakes since its previous report.
    pub fn add_tls_handshake_failures(&self, n: u64) {
        if n > 0 {
            self.tls_handshake_failures.inc_by(n);
        }
    }

    /// Adds one report of the listener's response cache.
    pub fn add_cache(&self, c: &bulkhead_proto::CacheStats) {
        for (event, n) in [("hit", c.hits), ("miss", c.misses), ("store", c.stores), ("eviction", c.evictions)] {
            if n > 0 {
                self.cache_events.get_or_create(&labels(&[("event", event)])).inc_by(n);
            }
        }
        if c.hit_bytes > 0 {
            self.cache_hit_bytes.inc_by(c.hit_bytes);
        }
        self.cache_memory.set(c.memory as i64);
        self.cache_entries.set(c.entries as i64);
    }

    /// Adds the listener's count of dropped log lines since its previous report.
    pub fn add_log_lines_dropped(&self, n: u64) {
        if n > 0 {
            self.log_lines_dropped.inc_by(n);
        }
    }

    /// Log lines dropped since the manager started (shown by the status API).
    pub fn log_lines_dropped(&self) -> u64 {
        self.log_lines_dropped.get()
    }

    pub fn config_refused(&self, source: &str) {
        self.refusals.get_or_create(&labels(&[("source", source)])).inc();
    }

    /// Sets the workers gauges: `(pool, state, count)` for every pool and state to show.
    pub fn set_workers(&self, counts: &[(String, &'static str, usize)]) {
        self.workers.clear();
        for (pool, state, n) in counts {
            self.workers.get_or_create(&labels(&[("pool", pool), ("state", state)])).set(*n as i64);
        }
    }

    /// Forgets the gauges of a pool that was removed.
    pub fn forget_pool(&self, pool: &str) {
        let l = labels(&[("pool", pool)]);
        self.queue_depth.remove(&l);
        self.in_flight.remove(&l);
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_listener_stats_and_events() {
        let m = Metrics::new();
        let mut buckets = vec![0; DURATION_BUCKETS.len() + 1];
        buckets[0] = 2;
        buckets[DURATION_BUCKETS.len()] = 1;
        let site = SiteStats {
            site: "shop".into(),
            responses: vec![(200, 2), (503, 1)],
            duration_buckets: buckets,
            duration_sum_us: 6_000_000,
        };
        m.add_stats(&[site], &[PoolStats { pool: "api".into(), queue_depth: 3, in_flight: 1 }]);
        m.recycle("api", "config");
        m.crash("api");
        m.config_refused("file");
        m.set_workers(&[("api".into(), "ready", 2)]);
        let text = m.render();
        for want in [
            "bulkhead_requests_total{site=\"shop\",status=\"200\"} 2",
            "bulkhead_requests_total{site=\"shop\",status=\"503\"} 1",
            "bulkhead_request_duration_seconds_count{site=\"shop\"} 3",
            "bulkhead_request_duration_seconds_bucket{le=\"0.001\",site=\"shop\"} 2",
            "bulkhead_queue_depth{pool=\"api\"} 3",
            "bulkhead_recycles_total{pool=\"api\",reason=\"config\"} 1",
            "bulkhead_worker_crashes_total{pool=\"api\"} 1",
            "bulkhead_config_refusals_total{source=\"file\"} 1",
            "bulkhead_workers{pool=\"api\",state=\"ready\"} 2",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert_eq!(m.total_requests(), 3);
    }
}
