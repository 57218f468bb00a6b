//! The front-end response cache (issue 11 item 1; IIS's kernel cache in HTTP.sys): full `200`
//! answers to `GET` held in memory and answered without touching the file system or a worker.
//!
//! **Key**: site id, host (compared without case), path and query (the query always: the
//! simplest correct choice), and — when the answer has `Vary: Accept-Encoding` — the request's
//! `Accept-Encoding` value byte for byte, so each coding is its own entry.
//!
//! **Admission** ([`static_admits`], [`worker_lifetime`]): a static file is stored on its second
//! `GET` within 10 s (IIS's rule: the first only counts), a worker answer when it opts in with
//! `Cache-Control: public` and `s-maxage` or `max-age` (`s-maxage` wins). Both only for status
//! 200, a body of at most `max_item` bytes, no `Set-Cookie`, no `no-store`/`private`/`no-cache`
//! and no `Vary` other than `Accept-Encoding`. A request with `Authorization` is never answered
//! from nor stored in the cache. A request with `Cookie` is answered from the cache (an entry is
//! public by construction) but its answer is never stored: a worker that personalises on a
//! cookie without saying `private` must not leak one user's page to the next.
//!
//! **Hits** ([`ResponseCache::lookup`], [`Entry::answer`]): `GET` and `HEAD`; `If-None-Match`
//! and `If-Modified-Since` give a 304 with only `ETag` (and `Cache-Control`/`Vary`), a `Range`
//! a 206 or 416 from the stored body ([`crate::static_files::conditional`],
//! [`crate::static_files::range`]) — except a static file's coded variant, which leaves a
//! `Range` to the static module (it answers ranges with identity bytes when it compresses on
//! the fly); worker entries carry `Age`. Request directives (`Cache-Control: no-cache` from a
//! client) are not honoured: as in IIS's kernel cache, the origin's word decides. The stored head is a prepared
//! `HeaderMap`: a hit clones it (one allocation for the map, the values are shared `Bytes`) —
//! the one per-hit allocation left besides hyper's own, and the `Arc` of the entry.
//!
//! **Bounds and eviction**: an entry is at most `max_item` bytes; when the total passes
//! `max_memory`, the least recently hit entries are evicted (a scan of all entries, done only on
//! an insert that overflows: O(entries), off the hit path). The scavenger ([`scavenge`]) — one
//! task for the whole cache, every `scavenge_after / 4` (at least 1 s) — drops entries not hit
//! for `scavenge_after` and expired worker entries.
//!
//! **Invalidation**: worker entries at the end of their lifetime; static entries when a
//! directory their file was found through changes ([`crate::watch`]'s inotify stamp, the one the
//! route's open-file cache took for the file: a hit checks a few atomics, no system call), or —
//! when the file could not be watched — by a check of the file's (mtime, size, inode) at most
//! once a second per entry; every entry of a site or a path prefix by
//! [`ResponseCache::purge`], and everything when the route table changes.
//!
//! **One fill per key** ([`ResponseCache::begin_fill`]): the first `GET` that misses a key
//! whose answer a worker would give becomes its filler; concurrent misses for that key wait
//! for it (at most [`FILL_WAIT`]) and then look again — a hit if the filler's answer was
//! stored, else they go to the worker themselves. Static files are not coordinated: their fill
//! is an inline read. A waiter's two lookups are both counted (a miss, then a hit or a miss).
//!
//! **Structure**: 16 shards of `Mutex<HashMap<hash, Vec<Arc<Entry>>>>`: a lookup hashes the key
//! parts in place (no key is built), holds one shard's lock for a map probe and an `Arc` clone.
//!
//! Layering: above [`crate::static_files`] (whose validator and range rules it reuses) and
//! [`crate::response`]; used by [`crate::request`] and held in [`crate::state::Shared`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bulkhead_proto::CacheStats;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use tokio::sync::Notify;

use crate::response::ResponseBody;
use crate::static_files::conditional::{self, Precondition, Validators};
use crate::static_files::range::{self, Ranges};

const SHARDS: usize = 16;
/// IIS's admission window: a static file is stored on its second request within this time.
const SEEN_WINDOW: Duration = Duration::from_secs(10);
/// A static entry's file is checked at most this often.
const REVALIDATE_EVERY_MS: u64 = 1000;
/// How long a concurrent miss waits for the key's filler before going to the worker itself.
pub const FILL_WAIT: Duration = Duration::from_secs(5);
/// First requests remembered for admission, at most (older ones are forgotten first).
const SEEN_MAX: usize = 65_536;

/// The `[cache]` settings the cache applies (from the current route table).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub enabled: bool,
    pub max_memory: u64,
    pub max_item: u64,
    pub scavenge_after: Duration,
}

impl From<&bulkhead_config::Cache> for Limits {
    fn from(c: &bulkhead_config::Cache) -> Self {
        Limits { enabled: c.enabled, max_memory: c.max_memory, max_item: c.max_item, scavenge_after: c.scavenge_after }
    }
}

/// What a lookup is for: borrowed from the request.
#[derive(Clone, Copy)]
pub struct Lookup<'a> {
    pub site: u32,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub accept_encoding: Option<&'a HeaderValue>,
    /// The request has `Range`: a static entry with a `Content-Encoding` does not answer it
    /// (static files never compress a ranged answer on the fly, so the origin's answer could be
    /// the identity bytes).
    pub ranged: bool,
}

impl Lookup<'_> {
    fn hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.site.hash(&mut h);
        for b in self.host.bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
        self.path.hash(&mut h);
        self.query.hash(&mut h);
        h.finish()
    }
}

/// Where an entry came from, and how it goes stale.
pub enum Origin {
    /// A static file: its directories' watch stamp when it was looked up (`watch`), else its
    /// path and (mtime, size, inode) when stored, checked at most once a second.
    Static { path: PathBuf, stamp: FileStamp, checked_ms: AtomicU64, watch: Option<crate::watch::Stamp> },
    /// A worker answer: when stored and when it expires.
    Worker { stored: Instant, expires: Instant },
}

/// What says a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    mtime_ns: i128,
    size: u64,
    ino: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            size: m.size(),
            ino: m.ino(),
        })
    }
}

/// One stored answer.
pub struct Entry {
    site: u32,
    host: Box<str>,
    path: Box<str>,
    query: Option<Box<str>>,
    /// The request's `Accept-Encoding` when the answer varies on it (`None` in both: matches).
    varies: bool,
    accept_encoding: Option<HeaderValue>,
    /// The 200's head, prepared at admission (hop-by-hop fields gone, `Content-Length` set).
    headers: HeaderMap,
    body: Bytes,
    etag: Option<HeaderValue>,
    modified: Option<u64>,
    origin: Origin,
    /// Milliseconds since the cache's epoch of the last hit (or the store).
    last_hit_ms: AtomicU64,
    /// A static file's coded variant: answers no `Range` ([`Lookup::ranged`]).
    static_coded: bool,
}

impl Entry {
    fn size(&self) -> u64 {
        let head: usize = self.headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        (self.body.len() + head + self.path.len() + self.host.len() + 128) as u64
    }

    fn matches(&self, l: &Lookup<'_>) -> bool {
        self.site == l.site
            && self.host.eq_ignore_ascii_case(l.host)
            && *self.path == *l.path
            && self.query.as_deref() == l.query
            && (!self.varies || self.accept_encoding.as_ref() == l.accept_encoding)
    }

    /// The answer to a `GET` or `HEAD` from this entry: 200, 304, 412, 206 or 416.
    pub fn answer(&self, method: &Method, req: &HeaderMap) -> Response<ResponseBody> {
        let etag = self.etag.as_ref().and_then(|v| v.to_str().ok());
        // No validator of a kind: a value that never matches (an ETag never `""`-equal; a date
        // of u64::MAX is never "not modified since").
        let v = Validators { etag: etag.unwrap_or("\u{0}"), modified: self.modified.unwrap_or(u64::MAX) };
        let mut resp = Response::new(ResponseBody::empty());
        match conditional::evaluate(req, method, v) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                *resp.status_mut() = StatusCode::NOT_MODIFIED;
                let h = resp.headers_mut();
                for name in [header::ETAG, header::CACHE_CONTROL, header::VARY, header::EXPIRES] {
                    if let Some(value) = self.headers.get(&name) {
                        h.insert(name, value.clone());
                    }
                }
                self.age(h);
                return resp;
            }
            Precondition::Failed => return crate::response::plain(StatusCode::PRECONDITION_FAILED),
        }
        let len = self.body.len() as u64;
        let ranges = match req.get(header::RANGE) {
            Some(r) if *method == Method::GET => {
                let applies = req
                    .get(header::IF_RANGE)
                    .is_none_or(|ir| etag.is_some() && ir.to_str().is_ok_and(|ir| conditional::if_range_holds(ir, v)));
                match r.to_str() {
                    Ok(r) if applies => range::parse(r, len),
                    _ => Ranges::Whole,
                }
            }
            _ => Ranges::Whole,
        };
        *resp.headers_mut() = self.headers.clone();
        let body = match ranges {
            Ranges::Whole => self.body.clone(),
            Ranges::One { start, end } => {
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                let h = resp.headers_mut();
                if let Ok(v) = HeaderValue::try_from(format!("bytes {start}-{end}/{len}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
                self.body.slice(start as usize..=end as usize)
            }
            Ranges::Many(parts) => {
                let source = crate::response::PartSource::Buffer(self.body.clone());
                let content_type = self.headers.get(header::CONTENT_TYPE);
                let (multipart, total, body) = crate::response::byteranges(source, &parts, len, content_type);
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, multipart);
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
                self.age(h);
                *resp.body_mut() = body;
                return resp;
            }
            Ranges::Unsatisfiable => {
                let mut resp = crate::response::plain(StatusCode::RANGE_NOT_SATISFIABLE);
                if let Ok(v) = HeaderValue::try_from(format!("bytes */{len}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return resp;
            }
        };
        self.age(resp.headers_mut());
        if *method == Method::GET {
            *resp.body_mut() = ResponseBody::full(body);
        }
        resp
    }

    /// `Age` (RFC 9111 §5.1) on a worker entry's answer.
    fn age(&self, h: &mut HeaderMap) {
        if let Origin::Worker { stored, .. } = &self.origin {
            h.insert(header::AGE, HeaderValue::from(stored.elapsed().as_secs()));
        }
    }
}

/// Counters since start; reported to the manager as deltas ([`ResponseCache::counters`], in the
/// message's own [`CacheStats`]: totals here, the difference of two in the report).
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    evictions: AtomicU64,
    hit_bytes: AtomicU64,
}

type Shard = HashMap<u64, Vec<Arc<Entry>>>;

/// The cache: see the module docs.
pub struct ResponseCache {
    shards: [Mutex<Shard>; SHARDS],
    /// First `GET`s of static files (key hash → when), for the two-requests rule.
    seen: Mutex<HashMap<u64, Instant>>,
    memory: AtomicU64,
    entries: AtomicU64,
    counters: Counters,
    limits: Mutex<Limits>,
    /// Worker fills in progress, sharded as the entries are: key hash → what the filler's
    /// [`FillGuard`] wakes when it is done, made only when a second request waits.
    filling: [Mutex<HashMap<u64, Option<Arc<Notify>>>>; SHARDS],
    /// `limits.enabled`, read without the lock on every request.
    enabled: AtomicBool,
    epoch: Instant,
}

impl Default for ResponseCache {
    fn default() -> Self {
        ResponseCache {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            seen: Mutex::new(HashMap::new()),
            memory: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            counters: Counters::default(),
            limits: Mutex::new(Limits { enabled: false, max_memory: 0, max_item: 0, scavenge_after: Duration::MAX }),
            filling: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            enabled: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ResponseCache {
    /// New settings (a new route table): everything stored is dropped, since routes, roots and
    /// limits may have changed under it.
    pub fn configure(&self, limits: Limits) {
        *lock(&self.limits) = limits;
        self.enabled.store(limits.enabled, Ordering::Relaxed);
        self.retain(|_| false);
        lock(&self.seen).clear();
    }

    /// `[cache] enabled`.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn limits(&self) -> Limits {
        *lock(&self.limits)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The entry answering `l`, if a fresh one is stored (a stale one is removed). Counts a hit
    /// or a miss.
    pub fn lookup(&self, l: &Lookup<'_>) -> Option<Arc<Entry>> {
        let hash = l.hash();
        let found = {
            let shard = lock(&self.shards[hash as usize % SHARDS]);
            shard.get(&hash).and_then(|v| v.iter().find(|e| e.matches(l)).cloned())
        };
        let found = found.filter(|e| !(l.ranged && e.static_coded));
        let Some(entry) = found else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let now = self.now_ms();
        let fresh = match &entry.origin {
            Origin::Worker { expires, .. } => Instant::now() < *expires,
            Origin::Static { watch: Some(watch), .. } => crate::watch::Watches::get().is_some_and(|w| w.fresh(watch)),
            Origin::Static { path, stamp, checked_ms, watch: None } => {
                let last = checked_ms.load(Ordering::Relaxed);
                if now.saturating_sub(last) < REVALIDATE_EVERY_MS {
                    true
                } else {
                    checked_ms.store(now, Ordering::Relaxed);
                    FileStamp::of(path) == Some(*stamp)
                }
            }
        };
        if !fresh {
            self.remove(hash, &entry);
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        entry.last_hit_ms.store(now, Ordering::Relaxed);
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        self.counters.hit_bytes.fetch_add(entry.body.len() as u64, Ordering::Relaxed);
        Some(entry)
    }

    /// IIS's rule for static files: `true` on the second request for `l` within 10 s (the
    /// first is remembered and `false`).
    pub fn static_admits(&self, l: &Lookup<'_>) -> bool {
        let hash = l.hash();
        let now = Instant::now();
        let mut seen = lock(&self.seen);
        match seen.get(&hash) {
            Some(first) if now.duration_since(*first) <= SEEN_WINDOW => {
                seen.remove(&hash);
                true
            }
            _ => {
                if seen.len() >= SEEN_MAX {
                    seen.retain(|_, t| now.duration_since(*t) <= SEEN_WINDOW);
                    if seen.len() >= SEEN_MAX {
                        seen.clear();
                    }
                }
                seen.insert(hash, now);
                false
            }
        }
    }

    /// Stores a 200's head and body for `l` (the request's `Accept-Encoding` is kept when the
    /// head has `Vary: Accept-Encoding`). Refused (returns `false`) past `max_item`, or when the
    /// cache is off. Evicts the least recently hit entries past `max_memory`.
    pub fn store(&self, l: &Lookup<'_>, mut headers: HeaderMap, body: Bytes, origin: Origin) -> bool {
        let limits = self.limits();
        if !limits.enabled || body.len() as u64 > limits.max_item {
            return false;
        }
        for name in [header::CONNECTION, header::TRANSFER_ENCODING, header::DATE, header::AGE] {
            headers.remove(name);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let varies =
            headers.get_all(header::VARY).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"accept-encoding"));
        let modified = headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let static_coded = matches!(origin, Origin::Static { .. }) && headers.contains_key(header::CONTENT_ENCODING);
        let entry = Arc::new(Entry {
            site: l.site,
            host: l.host.to_ascii_lowercase().into(),
            path: l.path.into(),
            query: l.query.map(Into::into),
            varies,
            accept_encoding: if varies { l.accept_encoding.cloned() } else { None },
            etag: headers.get(header::ETAG).cloned(),
            modified,
            headers,
            body,
            origin,
            last_hit_ms: AtomicU64::new(self.now_ms()),
            static_coded,
        });
        let size = entry.size();
        if size > limits.max_memory {
            return false;
        }
        let hash = l.hash();
        {
            let mut shard = lock(&self.shards[hash as usize % SHARDS]);
            let list = shard.entry(hash).or_default();
            if let Some(old) = list.iter().position(|e| e.matches(l)) {
                let old = list.swap_remove(old);
                self.memory.fetch_sub(old.size(), Ordering::Relaxed);
                self.entries.fetch_sub(1, Ordering::Relaxed);
            }
            list.push(entry);
        }
        self.memory.fetch_add(size, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.counters.stores.fetch_add(1, Ordering::Relaxed);
        while self.memory.load(Ordering::Relaxed) > limits.max_memory {
            if !self.evict_least_recent() {
                break;
            }
        }
        true
    }

    /// Evicts the entry hit longest ago; `false` if there is none.
    fn evict_least_recent(&self) -> bool {
        let mut oldest: Option<(u64, u64, Arc<Entry>)> = None;
        for shard in &self.shards {
            for (hash, list) in lock(shard).iter() {
                for e in list {
                    let t = e.last_hit_ms.load(Ordering::Relaxed);
                    if oldest.as_ref().is_none_or(|(o, _, _)| t < *o) {
                        oldest = Some((t, *hash, e.clone()));
                    }
                }
            }
        }
        let Some((_, hash, entry)) = oldest else { return false };
        if self.remove(hash, &entry) {
            self.counters.evictions.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Removes this very entry (if still stored).
    fn remove(&self, hash: u64, entry: &Arc<Entry>) -> bool {
        let mut shard = lock(&self.shards[hash as usize % SHARDS]);
        let Some(list) = shard.get_mut(&hash) else { return false };
        let Some(i) = list.iter().position(|e| Arc::ptr_eq(e, entry)) else { return false };
        list.swap_remove(i);
        if list.is_empty() {
            shard.remove(&hash);
        }
        self.memory.fetch_sub(entry.size(), Ordering::Relaxed);
        self.entries.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Keeps only the entries `keep` holds for; returns how many were dropped.
    fn retain(&self, keep: impl Fn(&Entry) -> bool) -> u64 {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|_, list| {
                list.retain(|e| {
                    let k = keep(e);
                    if !k {
                        self.memory.fetch_sub(e.size(), Ordering::Relaxed);
                        self.entries.fetch_sub(1, Ordering::Relaxed);
                        dropped += 1;
                    }
                    k
                });
                !list.is_empty()
            });
        }
        dropped
    }

    /// Drops the entries of site `site` (by id; every site when `None`) whose path starts with
    /// `prefix` (every path when `None`). Returns how many were dropped.
    pub fn purge(&self, site: Option<u32>, prefix: Option<&str>) -> u64 {
        self.retain(|e| !(site.is_none_or(|s| s == e.site) && prefix.is_none_or(|p| e.path.starts_with(p))))
    }

    /// Drops expired worker entries and entries not hit for `scavenge_after`; counted as
    /// evictions.
    pub fn scavenge(&self) -> u64 {
        let idle = self.limits().scavenge_after;
        let now_ms = self.now_ms();
        let now = Instant::now();
        let idle_ms = idle.as_millis().min(u64::MAX as u128) as u64;
        let dropped = self.retain(|e| {
            let expired = matches!(&e.origin, Origin::Worker { expires, .. } if now >= *expires);
            !expired && now_ms.saturating_sub(e.last_hit_ms.load(Ordering::Relaxed)) < idle_ms
        });
        self.counters.evictions.fetch_add(dropped, Ordering::Relaxed);
        dropped
    }

    /// The counters since start, and the memory and entries held now.
    pub fn counters(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stores: c.stores.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            hit_bytes: c.hit_bytes.load(Ordering::Relaxed),
            memory: self.memory.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
        }
    }
}

/// What a miss does about the key's fill.
pub enum Fill {
    /// Fill it: concurrent misses wait until the guard is dropped (after the store, or when
    /// the answer turned out not to be storable).
    Leader(FillGuard),
    /// Another request is filling it: [`Fill::wait`], then look again.
    Wait(FillWait),
}

/// The filler's mark for its key; dropping it wakes the waiters.
pub struct FillGuard {
    cache: Arc<ResponseCache>,
    hash: u64,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        // Only the leader inserts while the key is absent, so the key's mark is this guard's.
        let waiters = lock(&self.cache.filling[self.hash as usize % SHARDS]).remove(&self.hash).flatten();
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
    }
}

/// A wait for another request's fill of the same key.
pub struct FillWait {
    cache: Arc<ResponseCache>,
    hash: u64,
    done: Arc<Notify>,
}

impl FillWait {
    /// Until the filler is done, or `limit` passed.
    pub async fn wait(self, limit: Duration) {
        let notified = self.done.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the mark is checked again: a filler finishing in between either
        // finds this waiter registered or has removed its mark already.
        notified.as_mut().enable();
        let still = lock(&self.cache.filling[self.hash as usize % SHARDS])
            .get(&self.hash)
            .is_some_and(|w| w.as_ref().is_some_and(|w| Arc::ptr_eq(w, &self.done)));
        if still {
            let _ = tokio::time::timeout(limit, notified).await;
        }
    }
}

impl ResponseCache {
    /// Claims the fill of `l`'s key, or says who has it. The leader's cost is a mark in a
    /// sharded map (no allocation); the notification is made by the first waiter.
    pub fn begin_fill(self: &Arc<Self>, l: &Lookup<'_>) -> Fill {
        let hash = l.hash();
        let mut filling = lock(&self.filling[hash as usize % SHARDS]);
        match filling.get_mut(&hash) {
            Some(waiters) => {
                let done = waiters.get_or_insert_with(|| Arc::new(Notify::new())).clone();
                Fill::Wait(FillWait { cache: self.clone(), hash, done })
            }
            None => {
                filling.insert(hash, None);
                Fill::Leader(FillGuard { cache: self.clone(), hash })
            }
        }
    }
}

/// The scavenger: one task for the whole cache, sweeping every `scavenge_after / 4` (1 s at
/// least, 60 s at most).
pub async fn scavenger(cache: Arc<ResponseCache>) {
    loop {
        let every = (cache.limits().scavenge_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::time::sleep(every).await;
        cache.scavenge();
    }
}

/// How long a worker's 200 may be stored: `Cache-Control: public` with `s-maxage` (preferred)
/// or `max-age` above 0, and nothing that forbids storing (module docs). `None`: not stored.
pub fn worker_lifetime(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::OK || headers.contains_key(header::SET_COOKIE) || !vary_allowed(headers) {
        return None;
    }
    let (mut public, mut max_age, mut s_maxage) = (false, None, None);
    for value in headers.get_all(header::CACHE_CONTROL) {
        let value = value.to_str().ok()?;
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            match name.to_ascii_lowercase().as_str() {
                "public" => public = true,
                "no-store" | "private" | "no-cache" => return None,
                "max-age" => max_age = Some(arg?.parse::<u64>().ok()?),
                "s-maxage" => s_maxage = Some(arg?.parse::<u64>().ok()?),
                _ => {}
            }
        }
    }
    let secs = s_maxage.or(max_age)?;
    (public && secs > 0).then(|| Duration::from_secs(secs))
}

/// Static answers may be stored: 200, no `Set-Cookie`, and a `Vary` of at most `Accept-Encoding`
/// (route `headers` are added after, so they are checked on the hit's way out, not here).
pub fn static_storable(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::OK && !headers.contains_key(header::SET_COOKIE) && vary_allowed(headers)
}

/// `Vary` absent or naming only `Accept-Encoding`.
fn vary_allowed(headers: &HeaderMap) -> bool {
    headers.get_all(header::VARY).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').map(str::trim).all(|f| f.is_empty() || f.eq_ignore_ascii_case("accept-encoding"))
        })
    })
}

/// The request may use the cache at all: `GET` or `HEAD`, no `Authorization`.
pub fn request_may_hit(method: &Method, headers: &HeaderMap) -> bool {
    (*method == Method::GET || *method == Method::HEAD) && !headers.contains_key(header::AUTHORIZATION)
}

/// The request's answer may be stored: a `GET` without `Authorization` or `Cookie`.
pub fn request_may_store(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::GET && !headers.contains_key(header::AUTHORIZATION) && !headers.contains_key(header::COOKIE)
}

#[cfg(test)]
mod tests;
