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
//! `/api`, `/api/x`, but not `/apix`); routes come sorted longest first from the config crate.
//!
//! Must never do I/O on the request path (static roots are canonicalised when the table is
//! built, off the runtime threads). Layering: it imports only the leaf [`crate::bandwidth`] (each
//! site's bucket); the request path, static files, the shared state and the control task use it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bulkhead_config::{BindingHost, Config, Limits, RouteAction, Scheme, Site};
use bulkhead_proto::ListenSocket;

use crate::bandwidth::Bucket;

/// Everything the request path needs from one configuration.
#[derive(Debug)]
pub struct Table {
    pub limits: Limits,
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
    /// `redirect_http = true`: the port of the site's first https binding (the real one for
    /// port 0), to which its plain-HTTP requests are redirected with 308.
    pub redirect_https_port: Option<u16>,
    /// `hsts`: the `Strict-Transport-Security` value for its https responses.
    pub hsts: Option<http::HeaderValue>,
    /// `max_bandwidth`: the bucket its responses share (kept across reconfigurations by name
    /// while the rate is the same); `None` = unlimited.
    pub bandwidth: Option<Arc<Bucket>>,
}

/// One route of a site.
#[derive(Debug)]
pub struct RouteEntry {
    /// Normalised prefix: starts with `/`, no trailing `/` except for the root route.
    pub prefix: String,
    pub action: Action,
}

/// What a route does with a request.
#[derive(Debug)]
pub enum Action {
    Static(Arc<StaticRoot>),
    Pool(Arc<str>),
    Redirect { to: String, status: u16 },
}

/// A static route's directory.
#[derive(Debug)]
pub struct StaticRoot {
    /// As configured.
    pub root: PathBuf,
    /// Symlinks resolved, computed when the table was built; `None` if the directory is gone
    /// (every request is then a 404).
    pub canonical_root: Option<PathBuf>,
    pub default_documents: Vec<String>,
    pub directory_browsing: bool,
    /// URL path segments refused with 404.8 (compared ignoring ASCII case).
    pub hidden_segments: Vec<String>,
    /// Extension (lowercase, with the dot) → pool.
    pub handlers: BTreeMap<String, Arc<str>>,
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
        Table { limits: config.limits.clone(), spool_dir, sites, sockets: by_socket }
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
    /// The route for a request path, and the part of the path after the route's prefix (starts
    /// with `/` or is empty).
    pub fn route<'p>(&self, path: &'p str) -> Option<(&RouteEntry, &'p str)> {
        self.routes.iter().find_map(|r| prefix_match(&r.prefix, path).map(|rest| (r, rest)))
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
    let routes = site
        .routes
        .iter()
        .map(|r| RouteEntry {
            prefix: r.path.clone(),
            action: match &r.action {
                RouteAction::Static(s) => Action::Static(Arc::new(StaticRoot {
                    root: s.root.clone(),
                    canonical_root: std::fs::canonicalize(&s.root).ok(),
                    default_documents: s.default_documents.clone(),
                    directory_browsing: s.directory_browsing,
                    hidden_segments: s.hidden_segments.clone(),
                    handlers: s.handlers.iter().map(|(k, v)| (k.clone(), Arc::from(v.as_str()))).collect(),
                })),
                RouteAction::Pool(p) => Action::Pool(Arc::from(p.pool.as_str())),
                RouteAction::Redirect { to, status } => Action::Redirect { to: to.clone(), status: *status },
            },
        })
        .collect();
    SiteEntry {
        id,
        name: Arc::from(site.name.as_str()),
        max_connections: site.max_connections,
        connections,
        log_enabled: site.log.enabled,
        routes,
        redirect_https_port: None,
        hsts: site.hsts.as_deref().and_then(|h| http::HeaderValue::from_str(h).ok()),
        bandwidth: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        bulkhead_config::parse(text, "test.toml", Path::new("/")).unwrap()
    }

    const TWO_SITES: &str = r#"
        [[sites]]
        name = "default"
        bindings = ["http://*:8080"]
        routes = [{ path = "/", redirect = "/x" }]
        [[sites]]
        name = "shop"
        bindings = ["http://shop.example:8080"]
        routes = [{ path = "/", redirect = "/y" }, { path = "/api", pool = "api" }, { path = "/api/v2", pool = "v2" }]
        [pools.api]
        command = ["app"]
        [pools.v2]
        command = ["app"]
    "#;

    fn table() -> Table {
        let sockets = vec![ListenSocket {
            fd: 7,
            local_addr: "0.0.0.0:8080".parse().unwrap(),
            bindings: vec!["http://*:8080".into(), "http://shop.example:8080".into()],
        }];
        Table::build(&config(TWO_SITES), &sockets, None)
    }

    #[test]
    fn exact_host_beats_wildcard() {
        let t = table();
        assert_eq!(&*t.site_for(7, Some("shop.example")).unwrap().name, "shop");
        assert_eq!(&*t.site_for(7, Some("SHOP.example:8080")).unwrap().name, "shop");
        assert_eq!(&*t.site_for(7, Some("shop.example.")).unwrap().name, "shop");
        assert_eq!(&*t.site_for(7, Some("other.example")).unwrap().name, "default");
        assert_eq!(&*t.site_for(7, None).unwrap().name, "default");
        assert_eq!(&*t.site_for(7, Some("[::1]:8080")).unwrap().name, "default");
    }

    #[test]
    fn unknown_socket_has_no_site() {
        assert!(table().site_for(8, Some("shop.example")).is_none());
    }

    #[test]
    fn name_only_socket_refuses_other_hosts() {
        let sockets = vec![ListenSocket {
            fd: 3,
            local_addr: "0.0.0.0:8080".parse().unwrap(),
            bindings: vec!["http://shop.example:8080".into()],
        }];
        let t = Table::build(&config(TWO_SITES), &sockets, None);
        assert!(t.site_for(3, Some("other.example")).is_none());
        assert!(t.site_for(3, Some("shop.example")).is_some());
    }

    #[test]
    fn longest_prefix_on_segment_boundary() {
        let t = table();
        let shop = t.site_for(7, Some("shop.example")).unwrap();
        let pick = |p: &str| shop.route(p).map(|(r, rest)| (r.prefix.clone(), rest.to_string()));
        assert_eq!(pick("/api"), Some(("/api".into(), "".into())));
        assert_eq!(pick("/api/x"), Some(("/api".into(), "/x".into())));
        assert_eq!(pick("/apix"), Some(("/".into(), "/apix".into())));
        assert_eq!(pick("/api/v2/z"), Some(("/api/v2".into(), "/z".into())));
        assert_eq!(pick("/api/v22"), Some(("/api".into(), "/v22".into())));
        assert_eq!(pick("/"), Some(("/".into(), "/".into())));
    }

    #[test]
    fn host_name_strips_port_and_dot() {
        assert_eq!(host_name("a.example:80"), "a.example");
        assert_eq!(host_name("a.example"), "a.example");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("a.example.:80"), "a.example");
        assert_eq!(host_name("a.example:"), "a.example");
    }

    #[test]
    fn host_with_a_bad_port_gets_no_host_name_site() {
        // Found by fuzz/fuzz_targets/host_routing.rs: the text after the last `:` was cut off
        // whatever it was, so these picked the `shop` site by name.
        let t = table();
        for host in ["shop.example:abc", "shop.example:123456", "shop.example:8080:80", "shop.example: 80"] {
            assert_eq!(&*t.site_for(7, Some(host)).unwrap().name, "default", "{host}");
        }
    }

    #[test]
    fn connection_counters_survive_rebuild() {
        let t1 = table();
        t1.sites[1].connections.store(5, std::sync::atomic::Ordering::Relaxed);
        let t2 = Table::build(&config(TWO_SITES), &[], Some(&t1));
        assert_eq!(t2.sites[1].connections.load(std::sync::atomic::Ordering::Relaxed), 5);
    }
}
