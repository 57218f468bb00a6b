//! The route table: which site a request belongs to, and which route of that site.
//!
//! Built from a validated [`Config`] and the listening sockets the manager passed, once per
//! `Configure`, then swapped in whole (see [`crate::state`]); a request holds the `Arc<Table>` it
//! started with, so in-flight requests finish on the old table. Lookups are allocation-free.
//!
//! Site choice (DESIGN §2.2): the socket a connection was accepted on serves some bindings; among
//! the sites bound there, a host-name binding equal to the request's host wins, else the site with a
//! wildcard (`*`) or IP binding on that socket. No site → the caller answers **404** with HTTPERR
//! reason `NoSite` (IIS answers 400 "Invalid Hostname"; a 404 says "nothing here" more plainly and
//! does not suggest the client's request was malformed).
//!
//! Route choice: the longest route prefix that matches on a segment boundary (`/api` matches
//! `/api`, `/api/x`, but not `/apix`); among routes with that prefix, the first (in file order)
//! whose `match` conditions all hold ([`conditions`]); when none holds, the next shorter prefix
//! is tried, and so on; no route left → the caller's 404. Routes come sorted longest first, same
//! paths in file order, from the config crate, so this is one pass down the list. A site whose
//! routes have no conditions never looks at the request beyond its path.
//!
//! Content ([`content`]): the site's MIME map and error pages and each route's response headers,
//! converted to header values once here.
//!
//! Actions: a static directory, a pool (with `strip_prefix`, the pool is sent the path after the
//! prefix), a redirect, a fixed answer (`return`, its body and `Location` built once here), or
//! an `execute` route for the built-in host (its programs' directory canonicalised here, like
//! a static root).
//!
//! Must never do I/O on the request path (static roots are canonicalised when the table is
//! built, off the runtime threads). Layering: it imports only the leaf [`crate::bandwidth`] (each
//! site's bucket); the request path, static files, the shared state and the control task use it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_config::{BindingHost, Config, Execute, Limits, ReturnRoute, RouteAction, Scheme, Site};
use bulkhead_proto::ListenSocket;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use crate::bandwidth::Bucket;
use crate::open_files::OpenFiles;

mod conditions;
pub mod content;

pub use conditions::{Conditions, RequestFacts};
pub use content::{ErrorPage, MimeMap};

/// Everything the request path needs from one configuration.
#[derive(Debug)]
pub struct Table {
    pub limits: Limits,
    /// `[cache]`: applied to [`crate::cache`] when the table is installed.
    pub cache: bulkhead_config::Cache,
    /// Where spooled request bodies too large for memory go (`Server::body_temp_dir`).
    pub spool_dir: Arc<Path>,
    pub sites: Vec<SiteEntry>,
    /// Listening socket (its fd number) → the sites it serves.
    sockets: HashMap<i32, SocketSites>,
}

/// One site, ready for routing.
#[derive(Debug)]
pub struct SiteEntry {
    /// 1-based, in config order: IIS's site id, written to HTTPERR.
    pub id: u32,
    pub name: Arc<str>,
    pub max_connections: u64,
    /// Connections attributed to this site right now (kept across reconfigurations by name).
    pub connections: Arc<AtomicU64>,
    pub log_enabled: bool,
    pub routes: Vec<RouteEntry>,
    /// Some route has `match` conditions (else [`SiteEntry::route`] never reads the request).
    conditional: bool,
    /// `redirect_http = true`: the port of the site's first https binding (the real one for
    /// port 0), to which its plain-HTTP requests are redirected with 308.
    pub redirect_https_port: Option<u16>,
    /// `hsts`: the `Strict-Transport-Security` value for its https responses.
    pub hsts: Option<http::HeaderValue>,
    /// `max_bandwidth`: the bucket its responses share (kept across reconfigurations by name
    /// while the rate is the same); `None` = unlimited.
    pub bandwidth: Option<Arc<Bucket>>,
    /// `error_pages`: the bodies of the errors the listener answers for this site.
    pub error_pages: HashMap<u16, ErrorPage>,
}

/// One route of a site.
#[derive(Debug)]
pub struct RouteEntry {
    /// Normalised prefix: starts with `/`, no trailing `/` except for the root route.
    pub prefix: String,
    /// `match`: `None` = any request under the prefix.
    pub conditions: Option<Box<Conditions>>,
    pub action: Action,
    /// `headers`: set on the route's 2xx and 3xx answers; `None` = none.
    pub headers: Option<Arc<[(http::HeaderName, HeaderValue)]>>,
}

/// What a route does with a request.
#[derive(Debug)]
pub enum Action {
    Static(Arc<StaticRoot>),
    /// `strip_prefix`: the pool is sent the path after the route's prefix.
    Pool {
        pool: Arc<str>,
        strip_prefix: bool,
    },
    Redirect {
        to: String,
        status: u16,
    },
    Return(FixedAnswer),
    /// A route with `execute`: its program runs in a `host` pool (`bulkhead worker`).
    Execute(Arc<ExecuteRoute>),
}

/// An `execute` route, for the built-in host.
#[derive(Debug)]
pub struct ExecuteRoute {
    pub pool: Arc<str>,
    pub kind: Execute,
    /// `execute = "cgi"`: the directory whose files are the programs, checked as a static
    /// root is (canonical root, the default hidden segments); `None` for kinds without one.
    pub root: Option<Arc<StaticRoot>>,
    /// `cgi_timeout`.
    pub timeout: Duration,
    /// `execute = "extension"`: the `library` and the `filters`, as the
    /// [`bulkhead_proto::host`] header values the host reads (percent-encoded once, here).
    pub library: Option<HeaderValue>,
    pub filters: Vec<HeaderValue>,
}

/// A `return` route's answer, ready to send.
#[derive(Debug)]
pub struct FixedAnswer {
    pub status: StatusCode,
    /// `None`: the status's short text (`403 Forbidden`); empty for 204 and 304.
    pub body: Option<Bytes>,
    pub location: Option<HeaderValue>,
}

/// A static root with symlinks resolved; `Err(true)` when the listener's user may not reach it,
/// `Err(false)` when it is gone.
fn canonical_root(root: &std::path::Path) -> Result<PathBuf, bool> {
    std::fs::canonicalize(root).map_err(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// A static route's directory.
#[derive(Debug)]
pub struct StaticRoot {
    /// As configured.
    pub root: PathBuf,
    /// Symlinks resolved, computed when the table was built; `None` if the directory is gone
    /// (every request is then a 404) or the listener's user may not reach it (`root_denied`).
    pub canonical_root: Option<PathBuf>,
    /// The listener's user may not search a directory on the way to `root` (or `root` itself):
    /// every request is then a 403, and the path is named once in the log.
    pub root_denied: bool,
    pub default_documents: Vec<String>,
    pub directory_browsing: bool,
    /// URL path segments refused with 404.8 (compared ignoring ASCII case).
    pub hidden_segments: Vec<String>,
    /// Extension (lowercase, with the dot) → pool.
    pub handlers: BTreeMap<String, Arc<str>>,
    /// The site's MIME map (shared by its static routes).
    pub mime: Arc<MimeMap>,
    /// Compress compressible files on the fly (`compress`).
    pub compress: bool,
    /// Serve `.br` / `.gz` files found beside the requested one (`precompressed`).
    pub precompressed: bool,
    /// Files this route served lately, kept open ([`crate::open_files`]).
    pub files: OpenFiles,
}

#[derive(Debug, Default)]
struct SocketSites {
    scheme: Option<Scheme>,
    /// Host name (lowercase) → index into `sites`.
    by_name: HashMap<String, usize>,
    /// The site with a `*` or IP binding on this socket.
    any: Option<usize>,
}

impl Table {
    /// Builds the table. Does blocking filesystem calls (canonicalising static roots): call it
    /// off the runtime threads. `old` passes per-site connection counters on by site name.
    pub fn build(config: &Config, sockets: &[ListenSocket], old: Option<&Table>) -> Table {
        let mut sites = Vec::with_capacity(config.sites.len());
        for (i, site) in config.sites.iter().enumerate() {
            let connections = old
                .and_then(|t| t.sites.iter().find(|s| *s.name == *site.name))
                .map(|s| s.connections.clone())
                .unwrap_or_default();
            let mut entry = site_entry(i as u32 + 1, site, connections);
            entry.bandwidth = (site.max_bandwidth > 0).then(|| {
                old.and_then(|t| t.sites.iter().find(|s| *s.name == *site.name))
                    .and_then(|s| s.bandwidth.clone())
                    .filter(|b| b.rate() == site.max_bandwidth)
                    .unwrap_or_else(|| Arc::new(Bucket::new(site.max_bandwidth)))
            });
            if site.redirect_http {
                entry.redirect_https_port = https_port(site, sockets);
            }
            sites.push(entry);
        }
        let mut by_socket = HashMap::new();
        for socket in sockets {
            let mut entry = SocketSites::default();
            for text in &socket.bindings {
                for (i, site) in config.sites.iter().enumerate() {
                    for binding in site.bindings.iter().filter(|b| &b.text == text) {
                        entry.scheme.get_or_insert(binding.scheme);
                        match &binding.host {
                            BindingHost::Name(name) => {
                                entry.by_name.entry(name.clone()).or_insert(i);
                            }
                            BindingHost::Any | BindingHost::Ip(_) => {
                                entry.any.get_or_insert(i);
                            }
                        }
                    }
                }
            }
            by_socket.insert(socket.fd, entry);
        }
        let spool_dir: Arc<Path> = config.server.body_temp_dir().into();
        // The manager makes it (owned by the listener's user); a listener run on its own makes
        // its own. If neither can, bodies past memory stream instead (crate::body).
        let _ = std::fs::create_dir_all(&spool_dir);
        Table { limits: config.limits.clone(), cache: config.cache.clone(), spool_dir, sites, sockets: by_socket }
    }

    /// The site for a request that arrived on `socket` with this host (from the `Host` header
    /// or the absolute URI; port and trailing dot allowed, any case).
    pub fn site_for(&self, socket: i32, host: Option<&str>) -> Option<&SiteEntry> {
        let entry = self.sockets.get(&socket)?;
        if !entry.by_name.is_empty() {
            if let Some(name) = host.map(host_name) {
                let found = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                    entry.by_name.get(&name.to_ascii_lowercase())
                } else {
                    entry.by_name.get(name)
                };
                if let Some(&i) = found {
                    return self.sites.get(i);
                }
            }
        }
        entry.any.and_then(|i| self.sites.get(i))
    }

    /// The scheme of the bindings served on this socket (for `X-Forwarded-Proto`).
    pub fn scheme_of(&self, socket: i32) -> Scheme {
        self.sockets.get(&socket).and_then(|s| s.scheme).unwrap_or(Scheme::Http)
    }
}

impl SiteEntry {
    /// The route for a request, and the part of its path after the route's prefix (starts with
    /// `/` or is empty): the first route, longest prefix first, whose prefix matches `path` and
    /// whose conditions hold for `facts`.
    pub fn route<'p>(&self, path: &'p str, facts: &RequestFacts<'_>) -> Option<(&RouteEntry, &'p str)> {
        if !self.conditional {
            return self.routes.iter().find_map(|r| prefix_match(&r.prefix, path).map(|rest| (r, rest)));
        }
        self.routes.iter().find_map(|r| {
            let rest = prefix_match(&r.prefix, path)?;
            r.conditions.as_ref().is_none_or(|c| c.hold(facts)).then_some((r, rest))
        })
    }
}

/// `Some(rest)` when `prefix` matches `path` on a segment boundary.
pub fn prefix_match<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    if prefix == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The host part of a `Host` value: no port, no trailing dot, brackets kept for IPv6. Only a
/// real port (`:` and at most five digits) is cut off: `shop.example:abc` is not `shop.example`
/// (the `host_routing` fuzz target found it; HTTP/1 refuses such a `Host` before routing, in
/// [`crate::conformance`], but the table must not depend on that).
pub fn host_name(host: &str) -> &str {
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// The port of `site`'s first https binding, as bound.
fn https_port(site: &Site, sockets: &[ListenSocket]) -> Option<u16> {
    let b = site.bindings.iter().find(|b| b.scheme == Scheme::Https)?;
    let bound = sockets.iter().find(|s| s.bindings.contains(&b.text)).map(|s| s.local_addr.port());
    Some(bound.filter(|p| *p != 0).unwrap_or(b.port))
}

fn site_entry(id: u32, site: &Site, connections: Arc<AtomicU64>) -> SiteEntry {
    let mime = Arc::new(MimeMap::new(site));
    let routes = site
        .routes
        .iter()
        .map(|r| RouteEntry {
            prefix: r.path.clone(),
            conditions: r.conditions.as_ref().map(|m| Box::new(Conditions::new(m))),
            action: match &r.action {
                RouteAction::Static(s) => {
                    let canonical = canonical_root(&s.root);
                    Action::Static(Arc::new(StaticRoot {
                        root: s.root.clone(),
                        root_denied: canonical == Err(true),
                        canonical_root: canonical.ok(),
                        default_documents: s.default_documents.clone(),
                        directory_browsing: s.directory_browsing,
                        hidden_segments: s.hidden_segments.clone(),
                        handlers: s.handlers.iter().map(|(k, v)| (k.clone(), Arc::from(v.as_str()))).collect(),
                        mime: mime.clone(),
                        compress: s.compress,
                        precompressed: s.precompressed,
                        files: OpenFiles::default(),
                    }))
                }
                RouteAction::Pool(p) => match p.execute {
                    None => Action::Pool { pool: Arc::from(p.pool.as_str()), strip_prefix: p.strip_prefix },
                    Some(kind) => Action::Execute(Arc::new(ExecuteRoute {
                        pool: Arc::from(p.pool.as_str()),
                        kind,
                        root: p
                            .root
                            .as_deref()
                            .filter(|_| kind == Execute::Cgi)
                            .map(|root| Arc::new(program_root(root, &mime))),
                        timeout: p.cgi_timeout,
                        library: p.library.as_deref().filter(|_| kind == Execute::Extension).and_then(host_path),
                        filters: p.filters.iter().filter_map(|f| host_path(f)).collect(),
                    })),
                },
                RouteAction::Redirect { to, status } => Action::Redirect { to: to.clone(), status: *status },
                RouteAction::Return(fixed) => Action::Return(build_answer(fixed)),
            },
            headers: content::response_headers(&r.headers),
        })
        .collect::<Vec<_>>();
    SiteEntry {
        id,
        name: Arc::from(site.name.as_str()),
        max_connections: site.max_connections,
        connections,
        log_enabled: site.log.enabled,
        conditional: routes.iter().any(|r| r.conditions.is_some()),
        routes,
        redirect_https_port: None,
        hsts: site.hsts.as_deref().and_then(|h| http::HeaderValue::from_str(h).ok()),
        bandwidth: None,
        error_pages: content::error_pages(site),
    }
}

/// A path as the host reads it from a [`bulkhead_proto::host`] header.
fn host_path(path: &std::path::Path) -> Option<HeaderValue> {
    HeaderValue::try_from(bulkhead_proto::host::encode(path.as_os_str().as_encoded_bytes())).ok()
}

/// The directory of an `execute = "cgi"` route's programs: a static root that serves nothing
/// itself (no default documents, listing, handlers or codings), so the request path resolves a
/// program with the static routes' checks — traversal, symlinks leaving the root, the default
/// hidden segments.
fn program_root(root: &Path, mime: &Arc<MimeMap>) -> StaticRoot {
    let canonical = canonical_root(root);
    StaticRoot {
        root: root.to_path_buf(),
        root_denied: canonical == Err(true),
        canonical_root: canonical.ok(),
        default_documents: Vec::new(),
        directory_browsing: false,
        hidden_segments: bulkhead_config::DEFAULT_HIDDEN_SEGMENTS.iter().map(|s| s.to_string()).collect(),
        handlers: BTreeMap::new(),
        mime: mime.clone(),
        compress: false,
        precompressed: false,
        files: OpenFiles::default(),
    }
}

/// A `return` route's answer from its validated config (status 200 to 999, a `location` without
/// control characters, so neither conversion fails in practice; a failure is logged).
fn build_answer(r: &ReturnRoute) -> FixedAnswer {
    let status = StatusCode::from_u16(r.status).unwrap_or_else(|_| {
        tracing::error!("return = {} is not a status; answering 500", r.status);
        StatusCode::INTERNAL_SERVER_ERROR
    });
    let location = r.location.as_deref().and_then(|l| {
        HeaderValue::from_str(l).map_err(|_| tracing::error!("location {l:?} is not a header value; not sent")).ok()
    });
    FixedAnswer { status, body: r.body.clone().map(Bytes::from), location }
}

#[cfg(test)]
mod tests;
