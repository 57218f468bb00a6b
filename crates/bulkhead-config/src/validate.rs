//! [`RawConfig`] → [`Config`]: every check that can be made without running anything.
//!
//! Called by [`crate::check`] once the file has the right shape (see `schema`). Collects every
//! error instead of stopping at the first, so `bulkhead config check` can print them all;
//! each names its key path, and [`crate::check`] turns that into a line and column. Errors
//! are for what cannot work; what works but is probably a mistake is a warning. Keys this
//! version parses but does not build are never taken silently: refused when they would
//! promise security or could never work (https without `tls`, a `fastcgi` pool speaking `native`,
//! `execute = "extension"`), warned about when written but without effect. Paths are
//! resolved against the config file's directory (DESIGN §5). Touches the filesystem only to
//! see that referenced directories and files exist and can be read; never creates anything.
//!
//! - `site`: sites, bindings, TLS files, and which routes of a site can be reached;
//! - `route`: one route: its action and its `match` conditions;
//! - `content`: a site's `mime_types` and `error_pages`, a route's response `headers`;
//! - `pool`: application pools.

mod content;
mod pool;
mod route;
mod site;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::keypath::quote_key;
use crate::model::*;
use crate::raw::*;
use crate::schema::closest;
use crate::units::{format_duration, parse_duration, parse_size};

pub use site::parse_binding;

/// The longest path a unix socket address holds on Linux (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One error or warning, at a key path, before it is given a position.
#[derive(Debug)]
pub(crate) struct Found {
    pub key: String,
    pub message: String,
    /// A warning that only applies when the key is written in the file (a default that the
    /// server does not act on is documented, not warned about).
    pub only_if_written: bool,
}

/// Collects errors and warnings with their key paths while values are converted.
pub(crate) struct Checker<'a> {
    pub errors: Vec<Found>,
    pub warnings: Vec<Found>,
    pub base_dir: &'a Path,
    /// The text was checked whole by a process that could see the files (the manager, for the
    /// listener's copy): the file-system checks are not repeated, since the listener runs as
    /// its own, unprivileged user, which may not reach what root could (a static root under a
    /// home directory of mode 0700). What it cannot reach it reports per request.
    pub trusted: bool,
}

impl<'a> Checker<'a> {
    pub fn new(base_dir: &'a Path, trusted: bool) -> Self {
        Checker { errors: Vec::new(), warnings: Vec::new(), base_dir, trusted }
    }

    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Found { key: key.into(), message: message.into(), only_if_written: false });
    }

    fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Found { key: key.into(), message: message.into(), only_if_written: false });
    }

    /// A warning about a key that is parsed but not acted on yet, given only when the file
    /// writes that key (see [`Found::only_if_written`]).
    fn not_acted_on(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Found { key: key.into(), message: message.into(), only_if_written: true });
    }

    fn duration(&mut self, key: &str, text: &str) -> Duration {
        parse_duration(text).unwrap_or_else(|e| {
            self.err(key, e);
            Duration::ZERO
        })
    }

    /// A duration that must not be zero because nothing could ever finish within it.
    fn nonzero_duration(&mut self, key: &str, text: &str, why: &str) -> Duration {
        let d = self.duration(key, text);
        if d.is_zero() && parse_duration(text).is_ok() {
            self.err(key, format!("must be more than 0s: {why}"));
        }
        d
    }

    fn size(&mut self, key: &str, text: &str) -> u64 {
        parse_size(text).unwrap_or_else(|e| {
            self.err(key, e);
            0
        })
    }

    /// An HTTP/2 flow-control window: a size from `min` bytes to 2^31 - 1 (RFC 9113 §6.9.1).
    fn window(&mut self, key: &str, text: &str, min: u32) -> u32 {
        const MAX: u64 = (1 << 31) - 1;
        let Ok(size) = parse_size(text) else {
            self.size(key, text);
            return min;
        };
        if size < u64::from(min) || size > MAX {
            self.err(key, format!("{text:?} is out of range: an HTTP/2 window is {min} to {MAX} bytes (2GiB - 1)"));
            return min;
        }
        size as u32
    }

    fn at_least_one(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.err(key, "must be at least 1");
        }
    }

    fn path(&self, text: &str) -> PathBuf {
        absolute(self.base_dir, text)
    }

    fn one_of<T: Copy>(&mut self, key: &str, text: &str, choices: &[(&str, T)]) -> Option<T> {
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*v);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        let hint = closest(text, choices.iter().map(|(n, _)| *n)).map(|n| format!("; did you mean \"{n}\"?"));
        self.err(
            key,
            format!("{text:?} is not allowed; expected one of {}{}", names.join(", "), hint.unwrap_or_default()),
        );
        None
    }

    /// An existing directory, for `root` and `directory`.
    fn directory(&mut self, key: &str, text: &str) -> PathBuf {
        let path = self.path(text);
        if self.trusted {
            return path;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => self.err(key, format!("{} is not a directory; expected an existing directory", path.display())),
            Err(e) => self.err(key, format!("{} {}; expected an existing directory", path.display(), io_problem(&e))),
        }
        path
    }

    /// A file this process can open for reading, for TLS files and extension libraries.
    fn readable_file(&mut self, key: &str, text: &str, what: &str) -> PathBuf {
        let path = self.path(text);
        if self.trusted {
            return path;
        }
        match std::fs::File::open(&path).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() => {}
            Ok(_) => self.err(key, format!("{} is not a file; expected {what}", path.display())),
            Err(e) => self.err(key, format!("{} {}; expected {what}", path.display(), io_problem(&e))),
        }
        path
    }

    /// A program and its arguments: a non-empty program name, no NUL bytes.
    fn command(&mut self, key: &str, words: &[String]) {
        if words.first().is_some_and(|p| p.is_empty()) {
            self.err(format!("{key}[0]"), "the program name is empty");
        }
        for (i, w) in words.iter().enumerate() {
            if w.contains('\0') {
                self.err(format!("{key}[{i}]"), "contains a NUL byte, which no command line can carry");
            }
        }
    }

    /// A name used in file and socket names: pool and site names.
    fn file_name(&mut self, key: &str, name: &str, what: &str) -> bool {
        let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']);
        if bad {
            self.err(key, format!("{name:?} cannot be a {what} name: it is used in file names; expected a non-empty name without \"/\", like \"shop\""));
        }
        !bad
    }
}

/// What went wrong with a file, as the end of a sentence that starts with its path.
fn io_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "cannot be read by this user (permission denied)".into(),
        _ => format!("cannot be read: {e}"),
    }
}

/// `base` joined with `text` unless `text` is absolute.
pub fn absolute(base: &Path, text: &str) -> PathBuf {
    let p = Path::new(text);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub(crate) fn validate(raw: RawConfig, c: &mut Checker<'_>) -> Config {
    let server = server(c, &raw.server);
    let limits = limits(c, &raw.limits);
    let acme = acme(c, &raw.acme);
    let cache = cache(c, &raw.cache);
    let pools: BTreeMap<String, Pool> =
        raw.pools.iter().map(|(name, p)| (name.clone(), pool::pool(c, name, p, &server))).collect();
    let sites = site::sites(c, &raw.sites, &pools);
    Config { server, limits, acme, cache, sites, pools }
}

/// `[acme]`: only shapes here; the manager's preflight reads `ca_file`.
fn acme(c: &mut Checker<'_>, a: &RawAcme) -> Acme {
    let loopback_http = a.directory.strip_prefix("http://").is_some_and(|rest| {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        host == "localhost" || host == "127.0.0.1" || rest.starts_with("[::1]")
    });
    let https = a.directory.strip_prefix("https://").is_some_and(|rest| !rest.is_empty());
    if !https && !loopback_http {
        c.err(
            "acme.directory",
            format!(
                "{:?} is not an ACME directory URL; expected \"https://…/directory\" (default {LETS_ENCRYPT:?})",
                a.directory
            ),
        );
    }
    let renew_before =
        c.nonzero_duration("acme.renew_before", &a.renew_before, "a certificate would be renewed only once expired");
    Acme { directory: a.directory.clone(), ca_file: (!a.ca_file.is_empty()).then(|| c.path(&a.ca_file)), renew_before }
}

fn server(c: &mut Checker<'_>, s: &RawServer) -> Server {
    let state_dir = c.path(&s.state_dir);
    let server = Server {
        log_dir: absolute(&state_dir, &s.log_dir),
        admin_socket: absolute(&state_dir, &s.admin_socket),
        state_dir,
        listener_user: s.listener_user.clone(),
        max_history: s.max_history,
        admin_listen: None,
        admin_token: s.admin_token.clone(),
    };
    let mut server = server;
    if !s.admin_listen.is_empty() {
        match s.admin_listen.parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() => server.admin_listen = Some(addr),
            Ok(addr) => c.err(
                "server.admin_listen",
                format!("{addr} is not a loopback address; the admin endpoint may only listen on 127.0.0.0/8 or [::1] (put a proxy in front to reach it from elsewhere)"),
            ),
            Err(_) => c.err(
                "server.admin_listen",
                format!("expected a loopback address and port like \"127.0.0.1:9090\", found {:?}", s.admin_listen),
            ),
        }
        if s.admin_token.trim().len() < 16 {
            c.err(
                "server.admin_token",
                "admin_listen is set, so a token of at least 16 characters is required (e.g. the output of `openssl rand -hex 16`)",
            );
        }
    }
    let len = server.admin_socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        let key = if s.admin_socket.starts_with('/') { "server.admin_socket" } else { "server.state_dir" };
        c.err(
            key,
            format!(
                "the admin socket path {} is {len} bytes; unix sockets allow {MAX_SOCKET_PATH}: use a shorter state_dir or admin_socket",
                server.admin_socket.display()
            ),
        );
    }
    server
}

fn limits(c: &mut Checker<'_>, l: &RawLimits) -> Limits {
    let limits = Limits {
        max_connections: l.max_connections,
        max_connections_per_ip: l.max_connections_per_ip,
        connection_timeout: c.nonzero_duration(
            "limits.connection_timeout",
            &l.connection_timeout,
            "every connection would be closed at once",
        ),
        header_wait_timeout: c.nonzero_duration(
            "limits.header_wait_timeout",
            &l.header_wait_timeout,
            "no request head could ever arrive in time",
        ),
        min_bytes_per_sec: l.min_bytes_per_sec,
        min_bytes_grace: c.duration("limits.min_bytes_grace", &l.min_bytes_grace),
        keepalive_park_after: c.duration("limits.keepalive_park_after", &l.keepalive_park_after),
        max_request_bytes: l.max_request_bytes,
        max_field_length: l.max_field_length,
        max_url_segment_length: l.max_url_segment_length,
        max_url_segments: l.max_url_segments,
        max_body: c.size("limits.max_body", &l.max_body),
        queue_timeout: c.duration("limits.queue_timeout", &l.queue_timeout),
        http2: Http2Limits {
            max_concurrent_streams: l.http2_max_concurrent_streams,
            stream_window: c.window("limits.http2_stream_window", &l.http2_stream_window, 1),
            connection_window: c.window("limits.http2_connection_window", &l.http2_connection_window, 65_535),
            max_pending_accept_reset_streams: l.http2_max_pending_accept_reset_streams,
            max_local_error_reset_streams: l.http2_max_local_error_reset_streams,
        },
    };
    c.at_least_one("limits.max_connections", limits.max_connections);
    c.at_least_one("limits.max_field_length", limits.max_field_length);
    c.at_least_one("limits.max_url_segment_length", limits.max_url_segment_length);
    c.at_least_one("limits.max_url_segments", limits.max_url_segments);
    c.at_least_one("limits.http2_max_concurrent_streams", limits.http2.max_concurrent_streams.into());
    if limits.max_request_bytes < 1024 {
        c.err("limits.max_request_bytes", "must be at least 1024 bytes");
    }
    limits
}

fn cache(c: &mut Checker<'_>, raw: &RawCache) -> Cache {
    let cache = Cache {
        enabled: raw.enabled,
        max_memory: c.size("cache.max_memory", &raw.max_memory),
        max_item: c.size("cache.max_item", &raw.max_item),
        scavenge_after: c.duration("cache.scavenge_after", &raw.scavenge_after),
    };
    if cache.enabled && cache.max_item > cache.max_memory {
        c.warn(
            "cache.max_item",
            format!("is larger than cache.max_memory ({}); no response that large can be cached", raw.max_memory),
        );
    }
    if cache.enabled && cache.scavenge_after.is_zero() {
        c.warn(
            "cache.scavenge_after",
            format!("is {}: every entry is dropped at once, so nothing is cached", format_duration(Duration::ZERO)),
        );
    }
    cache
}

/// The key of a pool's table: `pools.NAME`, quoted when the name is not a bare key.
fn pool_key(name: &str) -> String {
    format!("pools.{}", quote_key(name))
}
