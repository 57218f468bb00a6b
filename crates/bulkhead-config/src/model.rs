//! The validated configuration: what the manager, listener and workers act on.
//!
//! Every value here has been checked and every relative path made absolute; code that holds a
//! [`Config`] never re-validates. Produced only by [`crate::parse`] / [`crate::check`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use bulkhead_proto::Protocol;

use crate::pattern::{PatternSet, SourceSet};

/// A whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: Server,
    pub limits: Limits,
    pub acme: Acme,
    pub cache: Cache,
    pub sites: Vec<Site>,
    pub pools: BTreeMap<String, Pool>,
}

/// `[acme]`: where `tls = { acme = … }` sites get their certificates (see `RawAcme`).
#[derive(Debug, Clone, PartialEq)]
pub struct Acme {
    /// The ACME directory URL (https, or http only for a loopback test server).
    pub directory: String,
    /// Extra PEM roots trusted for the directory, absolute; `None` = the system's roots only.
    /// The manager checks at preflight that it can be read.
    pub ca_file: Option<PathBuf>,
    /// A certificate is renewed once less than this is left before its `not_after`.
    pub renew_before: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub admin_socket: PathBuf,
    pub listener_user: String,
    pub max_history: u32,
    /// The optional loopback TCP admin endpoint (`server.admin_listen`).
    pub admin_listen: Option<SocketAddr>,
    /// Its bearer token (`server.admin_token`); never empty when `admin_listen` is set.
    pub admin_token: String,
}

impl Server {
    /// `<state_dir>/body-temp`: where the listener spools request bodies too large for memory
    /// (the manager creates it, mode 0700, for the listener's user).
    pub fn body_temp_dir(&self) -> PathBuf {
        self.state_dir.join("body-temp")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: u64,
    /// Zero = no limit.
    pub max_connections_per_ip: u64,
    pub connection_timeout: Duration,
    pub header_wait_timeout: Duration,
    /// Zero = off.
    pub min_bytes_per_sec: u64,
    pub min_bytes_grace: Duration,
    /// Zero = park as soon as a connection is at rest.
    pub keepalive_park_after: Duration,
    pub max_request_bytes: u64,
    pub max_field_length: u64,
    pub max_url_segment_length: u64,
    pub max_url_segments: u64,
    pub max_body: u64,
    pub queue_timeout: Duration,
    /// HTTP/2's own limits (see `RawLimits` for each key's meaning and default).
    pub http2: Http2Limits,
}

/// HTTP/2's limits per connection, from `[limits]`'s `http2_*` keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Http2Limits {
    pub max_concurrent_streams: u32,
    /// Bytes, at most 2^31 - 1 (HTTP/2's largest window).
    pub stream_window: u32,
    /// Bytes, from 65535 (where HTTP/2 starts it) to 2^31 - 1.
    pub connection_window: u32,
    pub max_pending_accept_reset_streams: u32,
    pub max_local_error_reset_streams: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    pub enabled: bool,
    pub max_memory: u64,
    pub max_item: u64,
    pub scavenge_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    pub bindings: Vec<Binding>,
    /// Certificate and key files for the https bindings (relative paths resolved against the
    /// config file's directory).
    pub tls: Option<Tls>,
    /// `tls = { acme = "email" }`: the contact email of the ACME account that obtains this
    /// site's certificate (for the names of its https bindings, all host names). Never set
    /// together with `tls`.
    pub acme: Option<String>,
    /// Plain-HTTP requests get 308 to the site's first https binding.
    pub redirect_http: bool,
    /// `Strict-Transport-Security` value for https responses.
    pub hsts: Option<String>,
    pub max_connections: u64,
    /// Bytes per second, 0 = unlimited.
    pub max_bandwidth: u64,
    pub log: SiteLog,
    /// Sorted longest path first, routes with the same path in file order, so the first route
    /// whose prefix matches and whose conditions hold wins.
    pub routes: Vec<Route>,
    /// `mime_types`: extension (lowercase, without the dot) → media type, or `None` where the
    /// site removes a built-in type. Consulted before [`crate::mime::builtin`].
    pub mime_types: BTreeMap<String, Option<String>>,
    /// `error_pages`: status (400 to 599) → the page, read when the config was loaded.
    pub error_pages: BTreeMap<u16, ErrorPage>,
}

impl Site {
    /// The content type of a file extension (without the dot, any case) on this site: its
    /// `mime_types` first, then the built-in map; `None` = not served (404.3).
    pub fn content_type(&self, ext: &str) -> Option<&str> {
        if !self.mime_types.is_empty() {
            if let Some(t) = self.mime_types.get(&ext.to_ascii_lowercase()) {
                return t.as_deref();
            }
        }
        crate::mime::builtin(ext)
    }
}

/// The largest `error_pages` file: pages are held in memory, one copy per site and status.
pub const MAX_ERROR_PAGE: u64 = 1024 * 1024;

/// One custom error page, read into memory at load (so a reload re-reads it).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorPage {
    /// Absolute.
    pub path: std::path::PathBuf,
    /// From the site's MIME map, by the file's extension.
    pub content_type: String,
    /// At most [`MAX_ERROR_PAGE`] bytes.
    pub body: bytes::Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// Which requests a binding takes by their `Host` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindingHost {
    /// `*`: any address, any host name.
    Any,
    /// An IP address: bind that address only; any host name.
    Ip(IpAddr),
    /// A host name: any address, only requests whose `Host` is this name (lowercase).
    Name(String),
}

/// One `scheme://host:port` binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    pub scheme: Scheme,
    pub host: BindingHost,
    pub port: u16,
    /// As written in the file; the key the manager and listener use for the socket.
    pub text: String,
}

impl Binding {
    /// The socket address to bind: the IP for an IP binding, else all IPv4 addresses.
    pub fn listen_addr(&self) -> SocketAddr {
        match self.host {
            BindingHost::Ip(ip) => SocketAddr::new(ip, self.port),
            _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.port),
        }
    }

    /// The key of the socket this binding needs; bindings with equal keys share one socket.
    pub fn socket_key(&self) -> String {
        format!("{}", self.listen_addr())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a site's access log lines look like (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// IIS's W3C extended format, `u_exYYMMDD.log`. The default.
    W3c,
    /// NCSA combined (Apache's `combined`), `u_ncYYMMDD.log`.
    Ncsa,
    /// One JSON object per line, `u_jsYYMMDD.log`.
    Json,
}

/// When a site's access log starts a new file (`log.rollover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rollover {
    /// One file per UTC day. The default.
    Daily,
    /// One file per UTC hour (`u_exYYMMDDHH.log`).
    Hourly,
    /// One file per UTC day, and a further one (`u_exYYMMDD_1.log`, `_2`, …) whenever a file
    /// would grow past `log.max_size`.
    Size,
}

/// Default `log.max_size`: 64 MiB.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SiteLog {
    /// Whether the site writes an access log. Default `true`.
    pub enabled: bool,
    /// Default W3C.
    pub format: LogFormat,
    /// Default daily.
    pub rollover: Rollover,
    /// Largest file with `rollover = "size"`, in bytes (unused otherwise, where the key is
    /// refused). Default [`DEFAULT_LOG_MAX_SIZE`].
    pub max_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Normalised prefix: starts with `/`, no trailing `/` except for the root route.
    pub path: String,
    /// `match = { … }`: what else a request must be for this route to take it; `None` = any
    /// request under the prefix.
    pub conditions: Option<RouteMatch>,
    pub action: RouteAction,
    /// `headers`: response headers added to the route's 2xx and 3xx answers, replacing any of
    /// the same name; names as written, each a token, none hop-by-hop or framing, values of
    /// visible ASCII, spaces and tabs (not at either end).
    pub headers: Vec<(String, String)>,
}

/// A route's `match`: every condition given must hold (NGINX Unit's `match`). Each list holds
/// by [`PatternSet::matches`]' rule; `headers` and `arguments` name fields the request must
/// have, each with the patterns one of its values must satisfy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    /// Request method, case-insensitive.
    pub method: Option<PatternSet>,
    /// Host (`Host` header or absolute URI) without port or trailing dot, case-insensitive.
    pub host: Option<PatternSet>,
    /// Header name (lowercase) → patterns for its value, case-insensitive.
    pub headers: Vec<(String, PatternSet)>,
    /// Query argument name → patterns for its value, both percent-decoded (`+` = space),
    /// case-sensitive.
    pub arguments: Vec<(String, PatternSet)>,
    /// Client address: addresses and CIDR blocks.
    pub source: Option<SourceSet>,
    /// The scheme of the binding the request arrived on.
    pub scheme: Option<Scheme>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Static(StaticRoute),
    Pool(PoolRoute),
    Redirect {
        to: String,
        status: u16,
    },
    /// `return = STATUS`: the listener answers by itself.
    Return(ReturnRoute),
}

/// `return = STATUS` with its optional `body` or `location`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnRoute {
    /// 200 to 999.
    pub status: u16,
    /// Sent as `text/plain; charset=utf-8`; `None` = a short text naming the status (none for
    /// 204 and 304, which have no body).
    pub body: Option<String>,
    /// The `Location` header, exactly as written (3xx only).
    pub location: Option<String>,
}

/// The `hidden_segments` of a static route that does not set it: version-control metadata,
/// per-directory server configs and secrets files that are often left in a content directory
/// (IIS's request filtering hides `web.config`, `bin`, `App_Data`…, nginx hides nothing by
/// default; these are the ones that leak on real sites).
pub const DEFAULT_HIDDEN_SEGMENTS: &[&str] =
    &[".git", ".svn", ".hg", ".bzr", ".env", ".htaccess", ".htpasswd", ".DS_Store"];

#[derive(Debug, Clone, PartialEq)]
pub struct StaticRoute {
    pub root: PathBuf,
    pub default_documents: Vec<String>,
    /// List a directory without a default document (else 403.14). Default `false`.
    pub directory_browsing: bool,
    /// URL path segments answered 404.8, compared without regard to ASCII case. Default
    /// [`DEFAULT_HIDDEN_SEGMENTS`].
    pub hidden_segments: Vec<String>,
    /// Extension (lowercase, with the dot) → pool name.
    pub handlers: BTreeMap<String, String>,
    /// Compress files of a compressible type on the fly when the client accepts gzip or br.
    /// Default `true`.
    pub compress: bool,
    /// Serve a `.br` / `.gz` file found beside the requested one (not older than it) to a
    /// client that accepts that coding. Default `true`.
    pub precompressed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolRoute {
    pub pool: String,
    /// `strip_prefix = true`: the pool gets the path without the route's prefix (`/v2/a?x` →
    /// `/a?x`; the prefix itself → `/`).
    pub strip_prefix: bool,
    pub root: Option<PathBuf>,
    pub execute: Option<Execute>,
    pub library: Option<PathBuf>,
    /// `execute = "extension"` routes: the filter libraries, in the order their hooks run
    /// (before the library's own). Empty otherwise.
    pub filters: Vec<PathBuf>,
    /// `execute = "cgi"`: a CGI program's time limit, after which its process group is killed.
    /// Default [`DEFAULT_CGI_TIMEOUT`].
    pub cgi_timeout: Duration,
}

/// `cgi_timeout` when a route does not set it.
pub const DEFAULT_CGI_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execute {
    Cgi,
    Extension,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Process,
    Fastcgi,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketMode {
    Inherit,
    Port,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    OnDemand,
    Always,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub kind: PoolKind,
    pub command: Vec<String>,
    pub protocol: Protocol,
    pub socket: SocketMode,
    pub directory: PathBuf,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub start: StartMode,
    pub processes: u32,
    pub concurrency: u32,
    pub queue_length: u32,
    /// Zero = never.
    pub idle_timeout: Duration,
    pub startup_time_limit: Duration,
    pub shutdown_time_limit: Duration,
    /// Zero = no limit.
    pub response_timeout: Duration,
    pub request_buffering: bool,
    pub recycle: Recycle,
    pub health: Health,
    pub rapid_fail: RapidFail,
    pub orphan: Orphan,
    pub cpu: Cpu,
    pub limits: Option<CgroupLimits>,
    /// `kind = "fastcgi"` only: the socket of a FastCGI server Bulkhead does not run (an
    /// existing php-fpm); then nothing is spawned and the listener routes and queues to it.
    pub connect: Option<bulkhead_proto::WorkerAddress>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recycle {
    /// Zero = never.
    pub every: Duration,
    /// Zero = never.
    pub requests: u64,
    pub schedule: Vec<TimeOfDay>,
    /// Resident bytes, zero = no limit.
    pub memory: u64,
    /// Virtual bytes, zero = no limit.
    pub virtual_memory: u64,
    pub overlapped: bool,
}

/// A local time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Empty = control channel, else socket connect.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RapidFail {
    pub enabled: bool,
    pub max_crashes: u32,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub enabled: bool,
    pub action: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuAction {
    Log,
    Recycle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cpu {
    /// Percent of one core, 0 = no limit.
    pub limit: u32,
    pub action: CpuAction,
    pub reset_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CgroupLimits {
    pub memory: Option<u64>,
    /// Percent of one core.
    pub cpu_percent: Option<u32>,
    pub pids: Option<u64>,
}
