//! Access and HTTPERR logs: records built on the request path, written by one background thread.
//!
//! The request path only fills an [`AccessRecord`] or [`HttpErrRecord`] (cheap clones of the
//! method, URI and header values it already has) and hands it to [`LogSender::access`] or
//! [`LogSender::http_err`], which never block: the channel is bounded and, when it is full, the
//! record is counted and dropped. All formatting, date arithmetic, file opening and writing
//! happen in the writer thread started by [`start`]. Formats, per site: [`w3c`] (IIS's W3C
//! extended), [`ncsa`] (Apache's combined), [`json`] (JSON Lines); and [`httperr`] (IIS's
//! HTTPERR) for the server.
//!
//! Files: `<log_dir>/sites/<site>/u_exYYMMDD.log` (`u_nc…` for NCSA, `u_js…` for JSON;
//! `u_exYYMMDDHH.log` with `rollover = "hourly"`; with `rollover = "size"` daily files and,
//! whenever the next line would take a file past `max_size`, `u_exYYMMDD_1.log`, `_2`, …) and
//! `<log_dir>/HTTPERR/httperr_YYMMDD.log`, UTC dates. [`LogSender::reopen`] closes every file so
//! the next line opens its path again (SIGUSR1 to the manager, for logrotate).
//!
//! Lines the writer could not take (channel full: the disk stalls or the writer fell behind) or
//! could not write (the file cannot be opened) are counted in [`LogSender::dropped`], which the
//! control task reports to the manager with the request statistics.
//!
//! A leaf of the crate's layering: it uses only [`crate::stats`] (every access record is also
//! counted there), and is used by the response layers, the connection and the control task.

pub mod httperr;
pub mod json;
pub mod ncsa;
pub mod w3c;

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulkhead_config::{Config, LogFormat, Rollover, SiteLog};
use http::{HeaderValue, Method, Uri, Version};
use time::OffsetDateTime;

use crate::stats::RequestStats;

/// Records that may wait for the writer before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 8192;

/// How long the writer lets records gather before it takes them. Waking the writer thread for
/// every request cost a context switch per request (measured: the writer thread's wake-ups were
/// a sixth of the listener's CPU under load); gathering them bounds wake-ups to 500 a second.
/// It was 25 ms, but on one core (taskset, a cpuset of one CPU) the writer's turn then formatted
/// ~3,000 lines in one go, about 3 ms in which the runtime thread could not run: that was the
/// p99 (measured, wrk -c50 on a cached small file: p99 2.97 ms at 25 ms, 1.24 ms at 2 ms, the
/// same req/s). Lines reach their files at most this late; at the channel's capacity that is
/// 4M lines/s.
const BATCH_INTERVAL: Duration = Duration::from_millis(2);

/// One line of a site's access log.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub site: Arc<str>,
    /// When the response finished (or the client went away).
    pub when: SystemTime,
    pub server: SocketAddr,
    pub client: SocketAddr,
    pub method: Method,
    pub uri: Uri,
    /// The protocol the request came in (`cs-version`: `HTTP/1.1`, `HTTP/2`).
    pub version: Version,
    pub user_agent: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
    pub status: u16,
    pub substatus: u16,
    /// 0 when the response was sent whole; 64 (IIS: "network name no longer available") when the
    /// client went away or the response was aborted.
    pub win32_status: u32,
    pub time_taken: Duration,
    pub sc_bytes: u64,
    pub cs_bytes: u64,
    /// Answered from the response cache ([`crate::cache`]): W3C `x-cache` `HIT`, NCSA's last
    /// field `HIT`, JSON `"cache":"HIT"` (`-`/`-`/`null` otherwise).
    pub cache_hit: bool,
}

/// One line of the HTTPERR log: a request or connection refused before any worker saw it.
#[derive(Debug, Clone)]
pub struct HttpErrRecord {
    pub when: SystemTime,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub version: Option<Version>,
    pub method: Option<Method>,
    pub uri: Option<Uri>,
    pub status: Option<u16>,
    pub site_id: Option<u32>,
    /// IIS's reason word: `QueueFull`, `Timer_ConnectionIdle`, `ConnLimit`, ...
    pub reason: &'static str,
    pub queue: Option<Arc<str>>,
}

/// Where and how each site logs.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    pub dir: PathBuf,
    /// Site name → format, rollover and size, for sites with logging enabled.
    pub sites: HashMap<String, SiteLog>,
}

impl LogConfig {
    pub fn from_config(config: &Config) -> LogConfig {
        LogConfig {
            dir: config.server.log_dir.clone(),
            sites: config.sites.iter().filter(|s| s.log.enabled).map(|s| (s.name.clone(), s.log.clone())).collect(),
        }
    }
}

enum LogEvent {
    Access(AccessRecord),
    HttpErr(HttpErrRecord),
    Configure(LogConfig),
    Reopen,
    Flush(SyncSender<()>),
}

/// The request path's handle on the writer; cheap to clone.
#[derive(Clone)]
pub struct LogSender {
    tx: SyncSender<LogEvent>,
    dropped: Arc<AtomicU64>,
    /// Every access record is also counted here (requests by site and status, durations).
    stats: Arc<RequestStats>,
}

impl LogSender {
    /// Queues an access-log line; never blocks.
    pub fn access(&self, record: AccessRecord) {
        self.stats.record(&record.site, record.status, record.time_taken);
        self.send(LogEvent::Access(record));
    }

    /// The request counters fed by [`LogSender::access`].
    pub fn stats(&self) -> &Arc<RequestStats> {
        &self.stats
    }

    /// Queues an HTTPERR line; never blocks.
    pub fn http_err(&self, record: HttpErrRecord) {
        self.send(LogEvent::HttpErr(record));
    }

    /// Lines dropped so far: the writer fell behind (the channel was full) or a file could not
    /// be opened or written.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Switches to a new configuration (log directory, sites); never blocks.
    pub fn configure(&self, config: LogConfig) {
        // A configuration must not be lost to a full channel: block briefly if needed.
        let _ = self.tx.send(LogEvent::Configure(config));
    }

    /// Closes every open log file; the next line for each opens its path anew (after logrotate
    /// moved the file away). Never lost to a full channel: may block briefly, like `configure`.
    pub fn reopen(&self) {
        let _ = self.tx.send(LogEvent::Reopen);
    }

    /// Waits (blocking the calling thread) until everything queued so far is written and
    /// flushed; call it from `spawn_blocking`.
    pub fn flush_blocking(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(LogEvent::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }

    fn send(&self, event: LogEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Starts the writer thread. It ends when every [`LogSender`] is dropped.
pub fn start(config: LogConfig) -> std::io::Result<(LogSender, std::thread::JoinHandle<()>)> {
    let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = dropped.clone();
    let handle = std::thread::Builder::new().name("bulkhead-log".into()).spawn(move || {
        Writer {
            config,
            files: HashMap::new(),
            line: String::new(),
            dropped: counter,
            reported: 0,
            unopenable: HashSet::new(),
        }
        .run(rx)
    })?;
    Ok((LogSender { tx, dropped, stats: Arc::default() }, handle))
}

/// An open log file: the period it covers (its file name without the `_N` of a size rollover
/// and `.log`), its number within the period, and what it holds so far.
struct OpenLog {
    period: String,
    seq: u32,
    name: String,
    out: BufWriter<File>,
    /// Bytes in the file (including what is still buffered).
    written: u64,
    /// Lines written since it was opened.
    lines: u64,
}

/// Appends one formatted access-log line.
type LineWriter = fn(&AccessRecord, &mut String);
/// The directives at the top of a file (empty for NCSA and JSON).
type HeaderWriter = fn(OffsetDateTime) -> String;

/// How a file is named and begins.
struct FileKind {
    /// The name without `_N` and `.log`: `u_ex231114`, `httperr_231114`.
    period: String,
    /// With `rollover = "size"`: the most a file may hold.
    max_size: Option<u64>,
    header: HeaderWriter,
}

/// Which file a record goes to.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Target {
    Site(Arc<str>),
    HttpErr,
}

struct Writer {
    config: LogConfig,
    files: HashMap<Target, OpenLog>,
    line: String,
    dropped: Arc<AtomicU64>,
    reported: u64,
    /// Files that failed to open, warned about once each.
    unopenable: HashSet<PathBuf>,
}

impl Writer {
    fn run(mut self, rx: Receiver<LogEvent>) {
        while let Ok(event) = rx.recv() {
            let mut flushes = Vec::new();
            self.handle(event, &mut flushes);
            while let Ok(event) = rx.try_recv() {
                self.handle(event, &mut flushes);
            }
            for f in self.files.values_mut() {
                if let Err(e) = f.out.flush() {
                    tracing::warn!("log file {}: {e}", f.name);
                }
            }
            for done in flushes {
                let _ = done.send(());
            }
            let dropped = self.dropped.load(Ordering::Relaxed);
            if dropped > self.reported {
                tracing::warn!(
                    "{dropped} log lines dropped so far (the log writer fell behind, or a file could not be written)"
                );
                self.reported = dropped;
            }
            std::thread::sleep(BATCH_INTERVAL);
        }
    }

    fn handle(&mut self, event: LogEvent, flushes: &mut Vec<SyncSender<()>>) {
        match event {
            LogEvent::Access(rec) => {
                let Some(site) = self.config.sites.get(&*rec.site) else { return };
                let when = OffsetDateTime::from(rec.when);
                self.line.clear();
                let (write_line, header): (LineWriter, HeaderWriter) = match site.format {
                    LogFormat::W3c => (w3c::write_line, w3c::header),
                    LogFormat::Ncsa => (ncsa::write_line, ncsa::header),
                    LogFormat::Json => (json::write_line, json::header),
                };
                write_line(&rec, &mut self.line);
                let kind = FileKind {
                    period: access_period(site.format, when, site.rollover),
                    max_size: (site.rollover == Rollover::Size).then_some(site.max_size),
                    header,
                };
                // Lent out for the call (no copy per line): `write` does not read the config.
                let log_dir = std::mem::take(&mut self.config.dir);
                let dir = || log_dir.join("sites").join(&*rec.site);
                self.write(Target::Site(rec.site.clone()), &dir, kind, when);
                self.config.dir = log_dir;
            }
            LogEvent::HttpErr(rec) => {
                let when = OffsetDateTime::from(rec.when);
                self.line.clear();
                httperr::write_line(&rec, &mut self.line);
                let kind = FileKind { period: httperr::period(when), max_size: None, header: httperr::header };
                let log_dir = std::mem::take(&mut self.config.dir);
                let dir = || log_dir.join("HTTPERR");
                self.write(Target::HttpErr, &dir, kind, when);
                self.config.dir = log_dir;
            }
            LogEvent::Configure(config) => {
                if config.dir != self.config.dir {
                    self.files.clear();
                }
                self.config = config;
            }
            LogEvent::Reopen => self.close_all(),
            LogEvent::Flush(done) => flushes.push(done),
        }
    }

    /// Flushes and closes every file.
    fn close_all(&mut self) {
        for (_, mut f) in self.files.drain() {
            if let Err(e) = f.out.flush() {
                tracing::warn!("log file {}: {e}", f.name);
            }
        }
    }

    /// Writes `self.line` to the target's file, opening (and writing the header into) a new
    /// file when the period changed or, with a size limit, when the line would not fit.
    /// `dir` makes the file's directory, needed only when a file is opened.
    fn write(&mut self, target: Target, dir: &dyn Fn() -> PathBuf, kind: FileKind, when: OffsetDateTime) {
        let line_len = self.line.len() as u64;
        let next_seq = match self.files.get(&target) {
            Some(f) if f.period == kind.period => {
                let full = kind.max_size.is_some_and(|max| f.lines > 0 && f.written + line_len > max);
                full.then_some(f.seq + 1)
            }
            _ => Some(0),
        };
        if let Some(seq) = next_seq {
            if let Some(mut old) = self.files.remove(&target) {
                let _ = old.out.flush();
            }
            let dir = dir();
            match open(&dir, &kind, seq, line_len, when) {
                Ok(f) => {
                    self.unopenable.remove(&dir.join(&f.name));
                    self.files.insert(target.clone(), f);
                }
                Err((name, e)) => {
                    // Once per file until it opens: every line after it is counted, not logged.
                    let path = dir.join(name);
                    if self.unopenable.insert(path.clone()) {
                        tracing::warn!(
                            "cannot open log file {}: {e}; its lines are dropped (and counted)",
                            path.display()
                        );
                    }
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        if let Some(f) = self.files.get_mut(&target) {
            match f.out.write_all(self.line.as_bytes()) {
                Ok(()) => {
                    f.written += line_len;
                    f.lines += 1;
                }
                Err(e) => {
                    tracing::warn!("log file {}: {e}; line dropped", f.name);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The period part of an access log's name: `u_exYYMMDD` (`u_nc`, `u_js` for NCSA and JSON),
/// `u_exYYMMDDHH` with hourly rollover. Size rollover starts from daily files.
pub fn access_period(format: LogFormat, t: OffsetDateTime, rollover: Rollover) -> String {
    let prefix = match format {
        LogFormat::W3c => "u_ex",
        LogFormat::Ncsa => "u_nc",
        LogFormat::Json => "u_js",
    };
    let yy = t.year().rem_euclid(100);
    match rollover {
        Rollover::Hourly => format!("{prefix}{yy:02}{:02}{:02}{:02}", t.month() as u8, t.day(), t.hour()),
        Rollover::Daily | Rollover::Size => format!("{prefix}{yy:02}{:02}{:02}", t.month() as u8, t.day()),
    }
}

/// The file name of number `seq` in a period: `u_ex231114.log`, then `u_ex231114_1.log`, ….
fn file_name(period: &str, seq: u32) -> String {
    if seq == 0 {
        format!("{period}.log")
    } else {
        format!("{period}_{seq}.log")
    }
}

/// Opens (appending) file `seq` of the period, or with a size limit the first from `seq` on
/// that has room for its header and a line of `line_len` bytes (an existing file left by an
/// earlier run, or one that was never full, is continued). Writes the header.
fn open(
    dir: &Path,
    kind: &FileKind,
    mut seq: u32,
    line_len: u64,
    when: OffsetDateTime,
) -> Result<OpenLog, (String, std::io::Error)> {
    let header = (kind.header)(when);
    let fail = |seq, e| (file_name(&kind.period, seq), e);
    std::fs::create_dir_all(dir).map_err(|e| fail(seq, e))?;
    if let Some(max) = kind.max_size {
        // Bounded: each step skips an existing, non-empty file.
        while let Ok(meta) = std::fs::metadata(dir.join(file_name(&kind.period, seq))) {
            if meta.len() == 0 || meta.len() + header.len() as u64 + line_len <= max || seq == u32::MAX {
                break;
            }
            seq += 1;
        }
    }
    let name = file_name(&kind.period, seq);
    let file = OpenOptions::new().create(true).append(true).open(dir.join(&name)).map_err(|e| fail(seq, e))?;
    let existing = file.metadata().map_or(0, |m| m.len());
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    // Like IIS, the directives are written whenever a file is (re)opened, so a restarted
    // listener's lines are preceded by a fresh `#Date:` even in an existing file.
    out.write_all(header.as_bytes()).map_err(|e| fail(seq, e))?;
    Ok(OpenLog { period: kind.period.clone(), seq, name, out, written: existing + header.len() as u64, lines: 0 })
}

/// `yyyy-mm-dd` and `hh:mm:ss` of a UTC time.
pub(crate) fn push_date_time(out: &mut String, t: OffsetDateTime) {
    // By hand, not `write!`: the writer formats every access line, on the listener's core.
    let year = t.year().clamp(0, 9999) as u32;
    push2(out, (year / 100) as u8);
    push2(out, (year % 100) as u8);
    out.push('-');
    push2(out, t.month() as u8);
    out.push('-');
    push2(out, t.day());
    out.push(' ');
    push2(out, t.hour());
    out.push(':');
    push2(out, t.minute());
    out.push(':');
    push2(out, t.second());
}

/// Two decimal digits (`n` < 100).
fn push2(out: &mut String, n: u8) {
    out.push(char::from(b'0' + n / 10 % 10));
    out.push(char::from(b'0' + n % 10));
}

/// A number in decimal, without `fmt`.
pub(crate) fn push_num(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// An address as IIS logs it: IPv4 (also an IPv4-mapped IPv6 address) dotted, IPv6 as Rust
/// prints it.
pub(crate) fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_num(out, octet);
            }
        }
        v6 => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// `cs-version` as IIS writes it: `HTTP/1.1`, `HTTP/2`.
pub(crate) fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/3",
    }
}

/// Appends a field: `-` when empty; spaces become `+` (as IIS writes the User-Agent); other
/// control characters become `+` too so a line can never be split or forged.
pub(crate) fn push_field(out: &mut String, bytes: &[u8]) {
    if bytes.is_empty() {
        out.push('-');
        return;
    }
    // The common case, printable ASCII with no space: as it is.
    if bytes.iter().all(|&b| b > b' ' && b < 0x7f) {
        if let Ok(s) = std::str::from_utf8(bytes) {
            out.push_str(s);
            return;
        }
    }
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c == ' ' || c.is_control() { '+' } else { c });
        }
        if !chunk.invalid().is_empty() {
            out.push('?');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_escaped() {
        let mut s = String::new();
        push_field(&mut s, b"Mozilla/5.0 (X11; Linux)");
        assert_eq!(s, "Mozilla/5.0+(X11;+Linux)");
        s.clear();
        push_field(&mut s, b"");
        assert_eq!(s, "-");
        s.clear();
        push_field(&mut s, b"a\r\nb\tc\xff");
        assert_eq!(s, "a++b+c?");
    }

    const T0: u64 = 1_700_000_000;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bulkhead-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn config(dir: &Path, format: LogFormat, rollover: Rollover, max_size: u64) -> LogConfig {
        let mut config = LogConfig { dir: dir.to_path_buf(), sites: HashMap::new() };
        config.sites.insert("shop".into(), SiteLog { enabled: true, format, rollover, max_size });
        config
    }

    fn record(when: SystemTime) -> AccessRecord {
        AccessRecord {
            site: Arc::from("shop"),
            when,
            server: "127.0.0.1:8080".parse().unwrap(),
            client: "127.0.0.1:50000".parse().unwrap(),
            method: Method::GET,
            uri: "/a?b=1".parse().unwrap(),
            version: http::Version::HTTP_11,
            user_agent: None,
            referer: None,
            status: 200,
            substatus: 0,
            win32_status: 0,
            time_taken: Duration::from_millis(3),
            sc_bytes: 10,
            cs_bytes: 20,
            cache_hit: false,
        }
    }

    fn files(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn access_file_names() {
        let t = OffsetDateTime::from(SystemTime::UNIX_EPOCH + Duration::from_secs(T0));
        assert_eq!(access_period(LogFormat::W3c, t, Rollover::Daily), "u_ex231114");
        assert_eq!(access_period(LogFormat::W3c, t, Rollover::Hourly), "u_ex23111422");
        assert_eq!(access_period(LogFormat::Ncsa, t, Rollover::Size), "u_nc231114");
        assert_eq!(access_period(LogFormat::Json, t, Rollover::Daily), "u_js231114");
        assert_eq!(file_name("u_ex231114", 0), "u_ex231114.log");
        assert_eq!(file_name("u_ex231114", 2), "u_ex231114_2.log");
    }

    #[test]
    fn size_rollover_starts_the_next_file_before_one_would_pass_max_size() {
        let dir = temp_dir("size");
        let max = 1024;
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
        let (log, thread) = start(config(&dir, LogFormat::W3c, Rollover::Size, max)).unwrap();
        for _ in 0..40 {
            log.access(record(when));
        }
        log.flush_blocking();
        drop(log);
        thread.join().unwrap();
        let site = dir.join("sites/shop");
        let found = files(&site);
        assert!(found.len() >= 3, "{found:?}");
        for (i, (name, len)) in found.iter().enumerate() {
            let want = if i == 0 { "u_ex231114.log".to_string() } else { format!("u_ex231114_{i}.log") };
            assert_eq!(name, &want, "{found:?}");
            assert!(*len <= max, "{name} is {len} bytes, over {max}");
        }
        let lines: usize = found
            .iter()
            .map(|(n, _)| std::fs::read_to_string(site.join(n)).unwrap())
            .map(|t| t.lines().filter(|l| !l.starts_with('#')).count())
            .sum();
        assert_eq!(lines, 40);
        // A restart continues in the last file that has room, not over the full ones.
        let (log, thread) = start(config(&dir, LogFormat::W3c, Rollover::Size, max)).unwrap();
        log.access(record(when));
        log.flush_blocking();
        drop(log);
        thread.join().unwrap();
        let again = files(&site);
        assert!(again.iter().all(|(_, len)| *len <= max), "{again:?}");
        assert_eq!(&again[..found.len() - 1], &found[..found.len() - 1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopen_starts_a_new_file_at_the_old_path() {
        let dir = temp_dir("reopen");
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
        let (log, thread) = start(config(&dir, LogFormat::Ncsa, Rollover::Daily, 0)).unwrap();
        log.access(record(when));
        log.flush_blocking();
        let path = dir.join("sites/shop/u_nc231114.log");
        let moved = dir.join("sites/shop/u_nc231114.log.1");
        std::fs::rename(&path, &moved).unwrap();
        log.access(record(when));
        log.reopen();
        log.access(record(when));
        log.flush_blocking();
        drop(log);
        thread.join().unwrap();
        // The line queued before the reopen still went to the file it was opened on.
        assert_eq!(std::fs::read_to_string(&moved).unwrap().lines().count(), 2);
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(new.lines().count(), 1, "{new}");
        assert!(new.starts_with("127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET /a?b=1 HTTP/1.1\" 200 10"), "{new}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_channel_drops_and_counts_without_blocking() {
        // The writer is stalled (nobody reads the channel), as when the disk hangs.
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let log = LogSender { tx, dropped: Arc::default(), stats: Arc::default() };
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
        for _ in 0..CHANNEL_CAPACITY + 25 {
            log.access(record(when));
        }
        assert_eq!(log.dropped(), 25);
        // Every request was still counted in the statistics.
        let counted: u64 = log.stats().take().iter().flat_map(|s| s.responses.iter().map(|(_, n)| n)).sum();
        assert_eq!(counted, CHANNEL_CAPACITY as u64 + 25);
        drop(rx);
    }

    #[test]
    fn writer_writes_headers_and_lines() {
        let dir = temp_dir("w3c");
        let _ = std::fs::remove_dir_all(&dir);
        let (log, thread) = start(config(&dir, LogFormat::W3c, Rollover::Daily, 0)).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        log.access(record(when));
        log.http_err(HttpErrRecord {
            when,
            client: "127.0.0.1:50000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            version: None,
            method: None,
            uri: None,
            status: None,
            site_id: None,
            reason: "Timer_ConnectionIdle",
            queue: None,
        });
        log.flush_blocking();
        drop(log);
        thread.join().unwrap();
        let access = std::fs::read_to_string(dir.join("sites/shop/u_ex231114.log")).unwrap();
        assert!(access.starts_with("#Software: Bulkhead "), "{access}");
        assert!(access
            .contains("\n2023-11-14 22:13:20 127.0.0.1 GET /a b=1 8080 - 127.0.0.1 HTTP/1.1 - - 200 0 0 3 10 20 -\n"));
        let err = std::fs::read_to_string(dir.join("HTTPERR/httperr_231114.log")).unwrap();
        assert!(err.contains("Timer_ConnectionIdle"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
