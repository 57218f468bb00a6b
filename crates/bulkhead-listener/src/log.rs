//! Access and HTTPERR logs: records built on the request path, written by one background thread.
//!
//! The request path only fills an [`AccessRecord`] or [`HttpErrRecord`] (cheap clones of the
//! method, URI and header values it already has) and hands it to [`LogSender::access`] or
//! [`LogSender::http_err`], which never block: the channel is bounded and, when it is full, the
//! record is counted and dropped. All formatting, date arithmetic, file opening and writing
//! happen in the writer thread started by [`start`]. Formats: [`w3c`] (per site, IIS's W3C extended) and [`httperr`] (IIS's HTTPERR).
//!
//! Files (common brief): `<log_dir>/sites/<site>/u_exYYMMDD.log` (`u_exYYMMDDHH.log` with
//! `rollover = "hourly"`; `size` rolls daily for now) and `<log_dir>/HTTPERR/httperr_YYMMDD.log`,
//! UTC dates. Only the W3C format is written so far; sites configured `ncsa`/`json` get W3C too.
//!
//! A leaf of the crate's layering: it uses only [`crate::stats`] (every access record is also
//! counted there), and is used by the response layers, the connection and the control task.

pub mod httperr;
pub mod w3c;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulkhead_config::{Config, Rollover};
use http::{HeaderValue, Method, Uri, Version};
use time::OffsetDateTime;

use crate::stats::RequestStats;

/// Records that may wait for the writer before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 8192;

/// How long the writer lets records gather before it takes them. Waking the writer thread for
/// every request cost a context switch per request (measured: the writer thread's wake-ups were
/// a sixth of the listener's CPU under load); gathering them bounds wake-ups to 40 a second.
/// Lines reach their files at most this late; at the channel's capacity that is 300k lines/s.
const BATCH_INTERVAL: Duration = Duration::from_millis(25);

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
    /// Site name → rollover, for sites with logging enabled.
    pub sites: HashMap<String, Rollover>,
}

impl LogConfig {
    pub fn from_config(config: &Config) -> LogConfig {
        LogConfig {
            dir: config.server.log_dir.clone(),
            sites: config.sites.iter().filter(|s| s.log.enabled).map(|s| (s.name.clone(), s.log.rollover)).collect(),
        }
    }
}

enum LogEvent {
    Access(AccessRecord),
    HttpErr(HttpErrRecord),
    Configure(LogConfig),
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

    /// Records dropped so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Switches to a new configuration (log directory, sites); never blocks.
    pub fn configure(&self, config: LogConfig) {
        // A configuration must not be lost to a full channel: block briefly if needed.
        let _ = self.tx.send(LogEvent::Configure(config));
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
        Writer { config, files: HashMap::new(), line: String::new(), dropped: counter, reported: 0 }.run(rx)
    })?;
    Ok((LogSender { tx, dropped, stats: Arc::default() }, handle))
}

/// An open log file and the period (its file name) it covers.
struct OpenLog {
    name: String,
    out: BufWriter<File>,
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
                tracing::warn!("log writer fell behind: {} log lines dropped so far", dropped);
                self.reported = dropped;
            }
            std::thread::sleep(BATCH_INTERVAL);
        }
    }

    fn handle(&mut self, event: LogEvent, flushes: &mut Vec<SyncSender<()>>) {
        match event {
            LogEvent::Access(rec) => {
                let Some(&rollover) = self.config.sites.get(&*rec.site) else { return };
                let when = OffsetDateTime::from(rec.when);
                let name = w3c::file_name(when, rollover);
                self.line.clear();
                w3c::write_line(&rec, &mut self.line);
                let dir = self.config.dir.join("sites").join(&*rec.site);
                self.write(Target::Site(rec.site.clone()), &dir, name, when, w3c::header);
            }
            LogEvent::HttpErr(rec) => {
                let when = OffsetDateTime::from(rec.when);
                let name = httperr::file_name(when);
                self.line.clear();
                httperr::write_line(&rec, &mut self.line);
                let dir = self.config.dir.join("HTTPERR");
                self.write(Target::HttpErr, &dir, name, when, httperr::header);
            }
            LogEvent::Configure(config) => {
                if config.dir != self.config.dir {
                    self.files.clear();
                }
                self.config = config;
            }
            LogEvent::Flush(done) => flushes.push(done),
        }
    }

    /// Writes `self.line` to the target's file for period `name`, opening (and writing the
    /// header into) a new file when the period changed.
    fn write(
        &mut self,
        target: Target,
        dir: &Path,
        name: String,
        when: OffsetDateTime,
        header: fn(OffsetDateTime) -> String,
    ) {
        let current = self.files.get(&target).is_some_and(|f| f.name == name);
        if !current {
            self.files.remove(&target);
            match open(dir, &name, when, header) {
                Ok(out) => {
                    self.files.insert(target.clone(), OpenLog { name, out });
                }
                Err(e) => {
                    tracing::warn!("cannot open log file {}: {e}; line dropped", dir.join(&name).display());
                    return;
                }
            }
        }
        if let Some(f) = self.files.get_mut(&target) {
            if let Err(e) = f.out.write_all(self.line.as_bytes()) {
                tracing::warn!("log file {}: {e}", f.name);
            }
        }
    }
}

/// Opens (appending) a log file, writing the header when the file is new or empty.
fn open(
    dir: &Path,
    name: &str,
    when: OffsetDateTime,
    header: fn(OffsetDateTime) -> String,
) -> std::io::Result<BufWriter<File>> {
    std::fs::create_dir_all(dir)?;
    let file = OpenOptions::new().create(true).append(true).open(dir.join(name))?;
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    // Like IIS, the directives are written whenever a file is (re)opened, so a restarted
    // listener's lines are preceded by a fresh `#Date:` even in an existing file.
    out.write_all(header(when).as_bytes())?;
    Ok(out)
}

/// `yyyy-mm-dd` and `hh:mm:ss` of a UTC time.
pub(crate) fn push_date_time(out: &mut String, t: OffsetDateTime) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
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

    #[test]
    fn writer_writes_headers_and_lines() {
        let dir = std::env::temp_dir().join(format!("bulkhead-log-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = LogConfig { dir: dir.clone(), sites: HashMap::new() };
        config.sites.insert("shop".into(), Rollover::Daily);
        let (log, thread) = start(config).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        log.access(AccessRecord {
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
        });
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
            .contains("\n2023-11-14 22:13:20 127.0.0.1 GET /a b=1 8080 - 127.0.0.1 HTTP/1.1 - - 200 0 0 3 10 20\n"));
        let err = std::fs::read_to_string(dir.join("HTTPERR/httperr_231114.log")).unwrap();
        assert!(err.contains("Timer_ConnectionIdle"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
