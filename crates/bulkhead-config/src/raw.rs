//! The config file exactly as written: serde types whose defaults are DESIGN §5's (IIS 6's).
//!
//! Nothing here is checked beyond TOML types and unknown keys (by the schema walk, which must
//! list these fields exactly — a unit test holds the two together); validation turns a
//! [`RawConfig`] into a [`crate::Config`]. Every field's doc comment states its default.
//! Durations and sizes are strings here; the file may also write them as integers, which the
//! schema walk turns into text before serde sees them, so that `max_body = 30` is refused by
//! the unit parser ("has no unit") at its position; only `0` may be written bare.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub limits: RawLimits,
    pub acme: RawAcme,
    pub cache: RawCache,
    pub sites: Vec<RawSite>,
    pub pools: BTreeMap<String, RawPool>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Sockets, history, pid files. Default `"bulkhead-state"`, relative to the config file.
    pub state_dir: String,
    /// Logs. Default `"logs"`, relative to `state_dir`.
    pub log_dir: String,
    /// The admin API socket, mode 0600. Default `"admin.sock"`, relative to `state_dir`.
    pub admin_socket: String,
    /// The user the listener runs as when the server is started as root. Default `"nobody"`.
    pub listener_user: String,
    /// Applied config versions kept. Default `10`.
    pub max_history: u32,
    /// Also serve the admin API and dashboard on this loopback TCP address (`"127.0.0.1:9090"`,
    /// port 0 = any free port), protected by `admin_token`. Default `""` = unix socket only.
    pub admin_listen: String,
    /// The bearer token the TCP admin endpoint requires (`Authorization: Bearer TOKEN`, or the
    /// dashboard's login). Required when `admin_listen` is set. Default `""`.
    pub admin_token: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            state_dir: "bulkhead-state".into(),
            log_dir: "logs".into(),
            admin_socket: "admin.sock".into(),
            listener_user: "nobody".into(),
            max_history: 10,
            admin_listen: String::new(),
            admin_token: String::new(),
        }
    }
}

/// `[limits]`: HTTP.sys's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Open client connections, whole server. Default `100000`.
    pub max_connections: u64,
    /// Open client connections from one client address (nginx's `limit_conn`); `0` = no
    /// limit. Default `0`.
    pub max_connections_per_ip: u64,
    /// Idle keep-alive and request body stalls. Default `"120s"`.
    pub connection_timeout: String,
    /// The whole request head must arrive within this. Default `"30s"`.
    pub header_wait_timeout: String,
    /// A request body or response moving slower than this, in bytes a second, once it has had
    /// `min_bytes_grace`, is cut off (`Timer_MinBytesPerSecond`; IIS's `MinBytesPerSecond`).
    /// `0` = off. Default `240`.
    pub min_bytes_per_sec: u64,
    /// How long a slow body or response is measured before `min_bytes_per_sec` applies. Default
    /// `"10s"`.
    pub min_bytes_grace: String,
    /// A keep-alive connection whose client sent its last request within this of the answer
    /// before rests this long before its buffers are let go (parked); others are parked at
    /// once. Default `"250ms"`.
    pub keepalive_park_after: String,
    /// Request line plus headers. Default `16384`.
    pub max_request_bytes: u64,
    /// One header line. Default `16384`.
    pub max_field_length: u64,
    /// One URL path segment. Default `260`.
    pub max_url_segment_length: u64,
    /// URL path segments. Default `255`.
    pub max_url_segments: u64,
    /// Request body. Default `"30MiB"`.
    pub max_body: String,
    /// Longest wait in a pool queue, then 503 `AppPoolTimer`. Default `"120s"`.
    pub queue_timeout: String,
    /// HTTP/2: streams a client may have open at once on one connection (SETTINGS
    /// `MAX_CONCURRENT_STREAMS`; nginx's `http2_max_concurrent_streams`). Default `128`.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the flow-control window of each stream, i.e. how much request body a client may
    /// send ahead on one stream before the listener has passed it on. Default `"256KiB"`.
    pub http2_stream_window: String,
    /// HTTP/2: the flow-control window of a whole connection (all its streams' unread request
    /// body together). Default `"1MiB"`.
    pub http2_connection_window: String,
    /// HTTP/2: streams a client opened and reset before the listener took them up, beyond which
    /// the connection is closed with GOAWAY (the rapid-reset attack, CVE-2023-44487). Default `20`.
    pub http2_max_pending_accept_reset_streams: u32,
    /// HTTP/2: streams the listener had to reset because the client broke the protocol on them,
    /// beyond which the connection is closed with GOAWAY. Default `1024`.
    pub http2_max_local_error_reset_streams: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_connections: 100_000,
            max_connections_per_ip: 0,
            connection_timeout: "120s".into(),
            header_wait_timeout: "30s".into(),
            min_bytes_per_sec: 240,
            min_bytes_grace: "10s".into(),
            keepalive_park_after: "250ms".into(),
            max_request_bytes: 16384,
            max_field_length: 16384,
            max_url_segment_length: 260,
            max_url_segments: 255,
            max_body: "30MiB".into(),
            queue_timeout: "120s".into(),
            http2_max_concurrent_streams: 128,
            http2_stream_window: "256KiB".into(),
            http2_connection_window: "1MiB".into(),
            http2_max_pending_accept_reset_streams: 20,
            http2_max_local_error_reset_streams: 1024,
        }
    }
}

/// `[acme]`: the ACME server (RFC 8555) that issues certificates for `tls = { acme = … }` sites.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAcme {
    /// The ACME directory URL. Default Let's Encrypt's production directory,
    /// `"https://acme-v02.api.letsencrypt.org/directory"`.
    pub directory: String,
    /// Extra PEM roots to trust for the directory (a private or test CA), relative to the config
    /// file; `""` = only the system's roots. Default `""`.
    pub ca_file: String,
    /// Renew a certificate this long before it expires. Default `"30d"`.
    pub renew_before: String,
}

/// Let's Encrypt's production ACME directory, `[acme] directory`'s default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for RawAcme {
    fn default() -> Self {
        RawAcme { directory: LETS_ENCRYPT.into(), ca_file: String::new(), renew_before: "30d".into() }
    }
}

/// `[cache]`: the front-end response cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// Default `true`.
    pub enabled: bool,
    /// Default `"256MiB"`.
    pub max_memory: String,
    /// Largest cached response. Default `"256KiB"`.
    pub max_item: String,
    /// An entry not hit for this long is dropped. Default `"120s"`.
    pub scavenge_after: String,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            enabled: true,
            max_memory: "256MiB".into(),
            max_item: "256KiB".into(),
            scavenge_after: "120s".into(),
        }
    }
}

/// One `[[sites]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Unique; used in logs, metrics and the API. Required.
    pub name: String,
    /// `scheme://(*|IP|host-name):port`. Required, at least one.
    pub bindings: Vec<String>,
    /// Certificate and key files, or ACME, for https bindings. Default: none.
    #[serde(default)]
    pub tls: Option<RawTls>,
    /// Plain-HTTP requests to this site get 308 to its https binding. Default `false`.
    #[serde(default)]
    pub redirect_http: bool,
    /// `Strict-Transport-Security` value added to https responses, `""` = none. Default `""`.
    #[serde(default)]
    pub hsts: String,
    /// Open connections to this site. Default `10000`.
    #[serde(default = "default_site_connections")]
    pub max_connections: u64,
    /// Bytes per second to clients of this site, `"0"` = unlimited. Default `"0"`.
    #[serde(default = "default_zero")]
    pub max_bandwidth: String,
    /// Access log. Default `{ format = "w3c", rollover = "daily", enabled = true }`.
    #[serde(default)]
    pub log: RawSiteLog,
    /// Longest path prefix wins. Default: none (every request 404).
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Extension → media type, added to the built-in MIME map or replacing its entry, e.g.
    /// `{ ".log" = "text/plain" }`; `""` removes a built-in type (its files become 404.3).
    /// Default: none (the built-in map).
    #[serde(default)]
    pub mime_types: BTreeMap<String, String>,
    /// Status (400 to 599) → a file, relative to the config file, read at load and sent as the
    /// body of the errors the listener itself answers with, e.g. `{ 404 = "errors/404.html" }`.
    /// Default: none (a short plain-text body).
    #[serde(default)]
    pub error_pages: BTreeMap<String, String>,
}

fn default_site_connections() -> u64 {
    10_000
}
fn default_zero() -> String {
    "0".into()
}

/// `tls = { cert, key }` or `tls = { acme = "email" }`: exactly one of the two forms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain file, relative to the config file. Default: none.
    pub cert: Option<String>,
    /// PEM private key file, relative to the config file. Default: none.
    pub key: Option<String>,
    /// Obtain and renew the certificate from `[acme] directory`, with this contact email.
    /// Default: none.
    pub acme: Option<String>,
}

/// `log = { format, rollover, max_size, enabled }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSiteLog {
    /// `w3c`, `ncsa` or `json`. Default `"w3c"`.
    pub format: String,
    /// `daily`, `hourly` or `size`. Default `"daily"`.
    pub rollover: String,
    /// With `rollover = "size"`: a file that would grow past this is closed and the next one
    /// (`_1`, `_2`, … before `.log`) started; refused with any other rollover. Default
    /// `"64MiB"`.
    pub max_size: Option<String>,
    /// Whether the site writes an access log at all. Default `true`.
    pub enabled: bool,
}

impl Default for RawSiteLog {
    fn default() -> Self {
        RawSiteLog { format: "w3c".into(), rollover: "daily".into(), max_size: None, enabled: true }
    }
}

/// One route: exactly one of `root` (static), `pool`, `redirect`, `return` decides what it is;
/// a route with both `root` and `pool` runs `execute` programs from `root` in that pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Path prefix, starting with `/`. Required.
    pub path: String,
    /// Conditions a request must also meet for this route to take it (NGINX Unit's `match`).
    /// Default: none (every request under `path`).
    #[serde(rename = "match")]
    pub conditions: Option<RawMatch>,
    /// Answer every request with this status (200 to 999), from the listener. Default: none.
    #[serde(rename = "return")]
    pub return_status: Option<u16>,
    /// With `return`: the response body, sent as `text/plain; charset=utf-8`. Default: a short
    /// text naming the status.
    pub body: Option<String>,
    /// With a 3xx `return`: the `Location` header, as written. Default: none.
    pub location: Option<String>,
    /// With `pool`: send the path without the route's prefix (`/v2/a?x` → `/a?x`). Default
    /// `false`.
    pub strip_prefix: Option<bool>,
    /// Static directory. Default: none.
    pub root: Option<String>,
    /// Pool that serves the route. Default: none.
    pub pool: Option<String>,
    /// Redirect target. Default: none.
    pub redirect: Option<String>,
    /// Redirect status: 301, 302, 303, 307 or 308. Default `302`.
    pub status: Option<u16>,
    /// Tried in order for a directory. Default `["index.html", "index.htm"]`.
    pub default_documents: Option<Vec<String>>,
    /// List directories without a default document. Default `false`.
    #[serde(default)]
    pub directory_browsing: bool,
    /// Path segments refused with 404.8 (static routes), replacing the default list
    /// [`crate::model::DEFAULT_HIDDEN_SEGMENTS`]. Default: that list.
    pub hidden_segments: Option<Vec<String>>,
    /// Static routes: compress files of a compressible type on the fly (gzip or brotli, as the
    /// request's `Accept-Encoding` allows). Default `true`.
    pub compress: Option<bool>,
    /// Static routes: serve `FILE.br` / `FILE.gz` beside `FILE` when the client accepts that
    /// coding (nginx's `brotli_static` / `gzip_static`). Default `true`.
    pub precompressed: Option<bool>,
    /// Extension → pool, e.g. `{ ".php" = "shop-php" }`. Default: none.
    #[serde(default)]
    pub handlers: BTreeMap<String, String>,
    /// With `pool` of kind `host`: `cgi` (every file under `root` is a CGI program) or `extension`
    /// (not built yet: refused). Default: none; a route to a host pool must name one.
    pub execute: Option<String>,
    /// With `execute = "extension"`: the library. Default: none.
    pub library: Option<String>,
    /// With `execute = "extension"`: filter libraries (ISAPI's filters), run around the
    /// library's handler in this order, then the library's own filter hooks. Default: none.
    pub filters: Option<Vec<String>>,
    /// With `execute = "cgi"`: how long one CGI program may run, from its start to the end of
    /// its output; then its whole process group is killed (SIGKILL) and the client gets 504 if
    /// nothing was sent yet. More than `"0s"`. Default `"90s"` (IIS's CGI timeout is 15 min;
    /// nginx's fastcgi_read_timeout 60 s between reads).
    pub cgi_timeout: Option<String>,
    /// Response headers added to this route's 2xx and 3xx responses, replacing any of the same
    /// name (a worker's too), e.g. `{ "X-Frame-Options" = "DENY" }`. Not `match.headers`, which
    /// matches request headers. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A pattern, or a list of patterns (any of them; `!` negates one).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawPatterns {
    One(String),
    Many(Vec<String>),
}

impl RawPatterns {
    /// The patterns as a list, one or many.
    pub fn as_slice(&self) -> &[String] {
        match self {
            RawPatterns::One(p) => std::slice::from_ref(p),
            RawPatterns::Many(ps) => ps,
        }
    }
}

/// `match = { … }`: every condition written must hold. Each default: none (no condition).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Method patterns, e.g. `["GET", "HEAD"]` or `"!POST"`.
    pub method: Option<RawPatterns>,
    /// Host patterns, without port, e.g. `"*.shop.example"`.
    pub host: Option<RawPatterns>,
    /// Header name → value patterns; each named header must be present.
    pub headers: Option<BTreeMap<String, RawPatterns>>,
    /// Query argument name → value patterns (decoded); each named argument must be present.
    pub arguments: Option<BTreeMap<String, RawPatterns>>,
    /// Client addresses and CIDR blocks, e.g. `["10.0.0.0/8", "!10.0.0.5"]`.
    pub source: Option<RawPatterns>,
    /// `http` or `https`: the scheme of the binding the request came in on.
    pub scheme: Option<String>,
}

/// One `[pools.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPool {
    /// `process`, `fastcgi` or `host`. Default `"process"`.
    pub kind: String,
    /// Program and arguments. Required for `process`, and for `fastcgi` unless `connect`.
    pub command: Vec<String>,
    /// `fastcgi` only, instead of `command`: an existing FastCGI server's socket, a unix path
    /// (`"/run/php/php8.2-fpm.sock"`) or `"IP:PORT"` (`"127.0.0.1:9000"`). Default: none.
    pub connect: Option<String>,
    /// `http` or `native`. Default `"http"`.
    pub protocol: String,
    /// `inherit` (fd 3, `LISTEN_FDS`) or `port` (`PORT`, loopback TCP). Default `"inherit"`.
    pub socket: String,
    /// Working directory. Default: the config file's directory.
    pub directory: Option<String>,
    /// Extra environment. Default: none.
    pub env: BTreeMap<String, String>,
    /// User to run as, when started as root. Default: the user that started the server.
    pub user: Option<String>,
    /// Group to run as, when started as root. Default: the user's primary group.
    pub group: Option<String>,
    /// `on-demand` or `always`. Default `"on-demand"`.
    pub start: String,
    /// Worker processes (web garden). Default `1`.
    pub processes: u32,
    /// Requests in flight per worker process. Default `100`; `1` for `kind = "fastcgi"` (a
    /// php-cgi process serves one request at a time).
    pub concurrency: Option<u32>,
    /// Requests waiting for a worker. Default `1000`.
    pub queue_length: u32,
    /// Stop workers after this long without requests, `"0s"` = never. Default `"20m"`.
    pub idle_timeout: String,
    /// A worker not ready within this counts as a crash; more than `"0s"`. Default `"90s"`.
    pub startup_time_limit: String,
    /// A draining worker still busy after this is stopped (TERM, then KILL). Default `"90s"`.
    pub shutdown_time_limit: String,
    /// Longest wait for a worker's response head once a request has been sent to it; then the
    /// request is cancelled in the worker (native: a CANCEL frame; HTTP/1.1: its connection is
    /// closed) and the client gets 504. Streaming bodies are not limited by it. `"0s"` = no
    /// limit. Default `"0s"`.
    pub response_timeout: String,
    /// Read a request's whole body in the listener (memory, then a temporary file under
    /// `state_dir`) before it takes a worker slot, so slow uploads hold no worker (nginx's
    /// `proxy_request_buffering`). `false` streams the body to the worker as it comes. Default
    /// `true`.
    pub request_buffering: bool,
    pub recycle: RawRecycle,
    pub health: RawHealth,
    pub rapid_fail: RawRapidFail,
    pub orphan: RawOrphan,
    pub cpu: RawCpu,
    /// cgroup v2 limits. Default: none.
    pub limits: Option<RawCgroupLimits>,
}

impl Default for RawPool {
    fn default() -> Self {
        RawPool {
            kind: "process".into(),
            command: Vec::new(),
            connect: None,
            protocol: "http".into(),
            socket: "inherit".into(),
            directory: None,
            env: BTreeMap::new(),
            user: None,
            group: None,
            start: "on-demand".into(),
            processes: 1,
            concurrency: None,
            queue_length: 1000,
            idle_timeout: "20m".into(),
            startup_time_limit: "90s".into(),
            shutdown_time_limit: "90s".into(),
            response_timeout: "0s".into(),
            request_buffering: true,
            recycle: RawRecycle::default(),
            health: RawHealth::default(),
            rapid_fail: RawRapidFail::default(),
            orphan: RawOrphan::default(),
            cpu: RawCpu::default(),
            limits: None,
        }
    }
}

/// `recycle = { … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRecycle {
    /// Worker age. `"0s"` = never. Default `"29h"`.
    pub every: String,
    /// Requests served, `0` = never. Default `0`.
    pub requests: u64,
    /// Local times of day `"HH:MM"`. Default `[]`.
    pub schedule: Vec<String>,
    /// Resident memory, `"0"` = no limit. Default `"0"`.
    pub memory: String,
    /// Virtual memory, `"0"` = no limit. Default `"0"`.
    pub virtual_memory: String,
    /// Start the new worker before stopping the old. Default `true`.
    pub overlapped: bool,
}

impl Default for RawRecycle {
    fn default() -> Self {
        RawRecycle {
            every: "29h".into(),
            requests: 0,
            schedule: Vec::new(),
            memory: "0".into(),
            virtual_memory: "0".into(),
            overlapped: true,
        }
    }
}

/// `health = { … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHealth {
    /// How often the manager pings each worker; `"0s"` = no pings. Default `"30s"`.
    pub ping_interval: String,
    /// No answer within this = hung. May be shorter or longer than the interval (IIS allowed
    /// both); must be more than `"0s"` while pinging is on. Default `"90s"`.
    pub ping_timeout: String,
    /// HTTP path to GET; `""` = control channel or socket connect. Default `""`.
    pub path: String,
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth { ping_interval: "30s".into(), ping_timeout: "90s".into(), path: String::new() }
    }
}

/// `rapid_fail = { … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRapidFail {
    /// Default `true`.
    pub enabled: bool,
    /// Unexpected exits within `interval` that disable the pool; at least 1 while enabled.
    /// Default `5`.
    pub max_crashes: u32,
    /// Default `"5m"`.
    pub interval: String,
}

impl Default for RawRapidFail {
    fn default() -> Self {
        RawRapidFail { enabled: true, max_crashes: 5, interval: "5m".into() }
    }
}

/// `orphan = { … }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOrphan {
    /// Default `false`.
    pub enabled: bool,
    /// Command run for an orphaned worker; `%pid%`, `%pool%`, `%reason%` are replaced. Default `[]`.
    pub action: Vec<String>,
}

/// `cpu = { … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCpu {
    /// Percent of one core averaged over `reset_interval`, `0` = no limit. Default `0`.
    pub limit: u32,
    /// `log` or `recycle`. Default `"log"`.
    pub action: String,
    /// Default `"5m"`.
    pub reset_interval: String,
}

impl Default for RawCpu {
    fn default() -> Self {
        RawCpu { limit: 0, action: "log".into(), reset_interval: "5m".into() }
    }
}

/// `limits = { memory, cpu, pids }` (cgroup v2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCgroupLimits {
    /// e.g. `"1GiB"`.
    pub memory: Option<String>,
    /// e.g. `"150%"`.
    pub cpu: Option<String>,
    pub pids: Option<u64>,
}
