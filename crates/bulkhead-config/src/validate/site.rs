//! `[[sites]]` → [`Site`]: names, bindings (and which site claims which address and host),
//! TLS files or ACME, access-log settings, routes (each checked by `route`; here, that
//! none is hidden behind an earlier one with the same path), and `mime_types` and
//! `error_pages` (checked and read by `content`).
//!
//! `tls` takes exactly one of two forms: `{ cert, key }` (files the manager reads) or
//! `{ acme = "email" }` (the manager obtains the certificate). An ACME site's https bindings
//! must all be host names (no CA issues a certificate for `*` or an IP address), and the site
//! needs an http:// binding, where the listener answers the CA's HTTP-01 challenges; a warning
//! says when no http binding is on port 80, the port the CA connects to.
//!
//! Called by [`super::validate`] after the pools, which routes must name. Also home of
//! [`parse_binding`], which the manager and listener use on binding strings too.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::*;

pub(super) fn sites(c: &mut Checker<'_>, raw: &[RawSite], pools: &BTreeMap<String, Pool>) -> Vec<Site> {
    let mut sites = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut claims = Claims::default();
    for (i, s) in raw.iter().enumerate() {
        let key = format!("sites[{i}]");
        if c.file_name(&format!("{key}.name"), &s.name, "site") {
            if let Some(first) = names.insert(&s.name, i) {
                c.err(
                    format!("{key}.name"),
                    format!("site name {:?} is already used by sites[{first}]; names must be unique", s.name),
                );
            }
        }
        let site = site(c, &key, s, pools);
        for (j, b) in s.bindings.iter().enumerate() {
            if let Ok(b) = parse_binding(b) {
                claims.claim(c, &format!("{key}.bindings[{j}]"), &b, &site.name);
            }
        }
        sites.push(site);
    }
    sites
}

/// Which site holds which (socket, host name), and what each socket is.
#[derive(Default)]
struct Claims {
    /// (socket key, host or `*`) → (site, binding text).
    hosts: HashMap<(String, String), (String, String)>,
    /// socket key → (scheme, binding text).
    schemes: HashMap<String, (Scheme, String)>,
    /// Distinct listening addresses per port, with the binding that first needed each.
    addrs: HashMap<u16, Vec<(SocketAddr, String)>>,
}

impl Claims {
    fn claim(&mut self, c: &mut Checker<'_>, key: &str, b: &Binding, site: &str) {
        // Every port-0 binding gets its own socket (the manager plans them by text).
        let socket = if b.port == 0 { format!("{}#{}", b.socket_key(), b.text) } else { b.socket_key() };
        let host = match &b.host {
            BindingHost::Name(n) => n.clone(),
            _ => "*".into(),
        };
        match self.hosts.get(&(socket.clone(), host.clone())) {
            Some((other, _)) if other == site => c.warn(key, format!("binding {:?} is listed twice", b.text)),
            Some((other, text)) => c.err(
                key,
                format!("binding {:?} is already claimed by site {other:?} (as {text:?}); two sites cannot take the same address, port and host name", b.text),
            ),
            None => {
                self.hosts.insert((socket.clone(), host), (site.to_string(), b.text.clone()));
            }
        }
        match self.schemes.get(&socket) {
            Some((scheme, text)) if *scheme != b.scheme => c.err(
                key,
                format!(
                    "binding {:?} needs {socket} as {}, but {text:?} already uses it as {}; one port serves one scheme",
                    b.text,
                    scheme_name(b.scheme),
                    scheme_name(*scheme)
                ),
            ),
            Some(_) => {}
            None => {
                self.schemes.insert(socket, (b.scheme, b.text.clone()));
            }
        }
        let addr = b.listen_addr();
        if addr.port() == 0 {
            return; // every port-0 socket gets its own ephemeral port
        }
        let seen = self.addrs.entry(addr.port()).or_default();
        if seen.iter().any(|(a, _)| *a == addr) {
            return;
        }
        let clash = seen
            .iter()
            .find(|(a, _)| a.is_ipv4() == addr.is_ipv4() && (a.ip().is_unspecified() != addr.ip().is_unspecified()));
        if let Some((other, text)) = clash {
            c.err(
                key,
                format!("binding {:?} needs a socket on {addr}, which Linux cannot open beside the socket on {other} that {text:?} needs; write both with the same address (both \"*\" or both an IP)", b.text),
            );
        }
        seen.push((addr, b.text.clone()));
    }
}

/// A site's `tls`: the resolved files, or the ACME contact email after its checks.
fn tls_source(
    c: &mut Checker<'_>,
    key: &str,
    s: &RawSite,
    t: &RawTls,
    bindings: &[Binding],
) -> (Option<Tls>, Option<String>) {
    let tkey = format!("{key}.tls");
    match (&t.cert, &t.key, &t.acme) {
        // Only resolved here: the files are read and checked by the manager (bulkhead-manager's
        // tls module), never by the unprivileged listener, which parses this same text.
        (Some(cert), Some(k), None) => (Some(Tls { cert: c.path(cert), key: c.path(k) }), None),
        (None, None, Some(email)) => {
            acme_site(c, key, s, email, bindings);
            (None, Some(email.clone()))
        }
        (_, _, Some(_)) => {
            c.err(tkey, "takes either cert and key (your own certificate files) or acme (certificates obtained from [acme] directory), not both");
            (None, None)
        }
        (Some(_), None, None) => {
            c.err(tkey, "has cert but no key; expected tls = { cert = \"cert.pem\", key = \"key.pem\" }");
            (None, None)
        }
        (None, Some(_), None) => {
            c.err(tkey, "has key but no cert; expected tls = { cert = \"cert.pem\", key = \"key.pem\" }");
            (None, None)
        }
        (None, None, None) => {
            c.err(tkey, "is empty; expected tls = { cert = \"cert.pem\", key = \"key.pem\" } or tls = { acme = \"you@example.com\" }");
            (None, None)
        }
    }
}

/// The checks of an ACME site: a real email, host-name https bindings, an http binding.
fn acme_site(c: &mut Checker<'_>, key: &str, s: &RawSite, email: &str, bindings: &[Binding]) {
    if !valid_email(email) {
        c.err(
            format!("{key}.tls.acme"),
            format!(
                "{email:?} is not an email address; the ACME account's contact is written like \"ops@shop.example\""
            ),
        );
    }
    for (j, text) in s.bindings.iter().enumerate() {
        let Ok(b) = parse_binding(text) else { continue };
        if b.scheme == Scheme::Https && !matches!(b.host, BindingHost::Name(_)) {
            c.err(
                format!("{key}.bindings[{j}]"),
                format!("{text:?}: a site with tls = {{ acme = … }} needs host names on its https bindings (like \"https://shop.example:443\"); no CA issues a certificate for \"*\" or an IP address"),
            );
        }
    }
    let http: Vec<&Binding> = bindings.iter().filter(|b| b.scheme == Scheme::Http).collect();
    if http.is_empty() {
        c.err(
            format!("{key}.tls.acme"),
            format!("site {:?} has no http:// binding; ACME's HTTP-01 challenge is answered on plain HTTP: add one like \"http://*:80\"", s.name),
        );
    } else if !http.iter().any(|b| b.port == 80) {
        c.warn(
            format!("{key}.tls.acme"),
            format!("site {:?} has no http:// binding on port 80; the CA connects to port 80 for HTTP-01, so a public CA cannot validate this site unless port 80 is forwarded to {:?}", s.name, http[0].text),
        );
    }
}

/// `local@domain.tld` without spaces: enough to catch a name or URL written by mistake.
fn valid_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(|ch| ch.is_whitespace() || ch.is_control() || ch == ',' || ch == ':')
}

fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

fn site(c: &mut Checker<'_>, key: &str, s: &RawSite, pools: &BTreeMap<String, Pool>) -> Site {
    if s.bindings.is_empty() {
        c.err(format!("{key}.bindings"), "a site needs at least one binding, like \"http://*:8080\"");
    }
    let mut bindings = Vec::new();
    for (j, text) in s.bindings.iter().enumerate() {
        match parse_binding(text) {
            Ok(b) if b.scheme == Scheme::Https && s.tls.is_none() => {
                c.err(
                    format!("{key}.bindings[{j}]"),
                    format!("{text:?}: an https binding needs the site's certificate: add tls = {{ cert = \"cert.pem\", key = \"key.pem\" }} to this site"),
                );
                bindings.push(b);
            }
            Ok(b) => bindings.push(b),
            Err(e) => c.err(format!("{key}.bindings[{j}]"), e),
        }
    }
    let has_https = bindings.iter().any(|b| b.scheme == Scheme::Https);
    let needs_https = |c: &mut Checker<'_>, field: &str, what: &str| {
        if !has_https && !s.bindings.is_empty() {
            c.err(
                format!("{key}.{field}"),
                format!(
                    "{what}, but this site has no https binding; add one like \"https://*:8443\" or remove {field}"
                ),
            );
        }
    };
    if s.tls.is_some() {
        needs_https(c, "tls", "is used only by https bindings");
    }
    if s.redirect_http {
        needs_https(c, "redirect_http", "redirects to the site's https binding");
    }
    let hsts = (!s.hsts.is_empty()).then(|| s.hsts.clone());
    if let Some(h) = &hsts {
        needs_https(c, "hsts", "is sent on https responses only");
        if !valid_hsts(h) {
            c.err(format!("{key}.hsts"), format!("{h:?} is not a Strict-Transport-Security value; expected \"max-age=SECONDS\", optionally with \"; includeSubDomains\" and \"; preload\""));
        }
    }
    let (tls, acme) = match &s.tls {
        Some(t) => tls_source(c, key, s, t, &bindings),
        None => (None, None),
    };
    if s.max_connections == 0 {
        c.err(format!("{key}.max_connections"), "must be at least 1");
    }
    let format = c.one_of(
        &format!("{key}.log.format"),
        &s.log.format,
        &[("w3c", LogFormat::W3c), ("ncsa", LogFormat::Ncsa), ("json", LogFormat::Json)],
    );
    let rollover = c.one_of(
        &format!("{key}.log.rollover"),
        &s.log.rollover,
        &[("daily", Rollover::Daily), ("hourly", Rollover::Hourly), ("size", Rollover::Size)],
    );
    let max_bandwidth = c.size(&format!("{key}.max_bandwidth"), s.max_bandwidth.trim_end_matches("/s"));
    let max_size = match &s.log.max_size {
        None => DEFAULT_LOG_MAX_SIZE,
        Some(text) => {
            let size = c.size(&format!("{key}.log.max_size"), text);
            if size == 0 && parse_size(text).is_ok() {
                c.err(format!("{key}.log.max_size"), "must be more than 0: every line would start a new file");
            }
            if rollover.is_some_and(|r| r != Rollover::Size) {
                c.err(
                    format!("{key}.log.max_size"),
                    format!("applies only with rollover = \"size\" (this site rolls over {:?}); remove it or set rollover = \"size\"", s.log.rollover),
                );
            }
            size
        }
    };
    let mut routes: Vec<(usize, Route)> = Vec::new();
    for (j, r) in s.routes.iter().enumerate() {
        if let Some(r) = super::route::route(c, &format!("{key}.routes[{j}]"), r, pools, &bindings) {
            unreachable(c, key, j, &r, &routes);
            routes.push((j, r));
        }
    }
    let mut routes: Vec<Route> = routes.into_iter().map(|(_, r)| r).collect();
    // Stable: routes with the same path stay in file order, the first to match wins.
    routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
    let mime_types = super::content::mime_types(c, &format!("{key}.mime_types"), &s.mime_types);
    let mut site = Site {
        name: s.name.clone(),
        bindings,
        tls,
        acme,
        redirect_http: s.redirect_http,
        hsts,
        max_connections: s.max_connections,
        max_bandwidth,
        log: SiteLog {
            enabled: s.log.enabled,
            format: format.unwrap_or(LogFormat::W3c),
            rollover: rollover.unwrap_or(Rollover::Daily),
            max_size,
        },
        routes,
        mime_types,
        error_pages: BTreeMap::new(),
    };
    site.error_pages = super::content::error_pages(c, &format!("{key}.error_pages"), &s.error_pages, &site);
    site
}

/// Refuses route `j` when an earlier route with the same path takes every request it could:
/// one without `match`, or one with the very same conditions.
fn unreachable(c: &mut Checker<'_>, key: &str, j: usize, r: &Route, earlier: &[(usize, Route)]) {
    let Some((i, first)) =
        earlier.iter().find(|(_, o)| o.path == r.path && (o.conditions.is_none() || o.conditions == r.conditions))
    else {
        return;
    };
    let why = if first.conditions.is_none() { "has no match, so it takes" } else { "has the same match, so it takes" };
    c.err(
        format!("{key}.routes[{j}].path"),
        format!(
            "route {:?} can never be used: routes[{i}] has the same path and {why} every request first; give routes[{i}] a match, or put this route before it",
            r.path
        ),
    );
}

/// `max-age=N` then any of `includeSubDomains`, `preload` (RFC 6797 §6.1), `;`-separated.
fn valid_hsts(value: &str) -> bool {
    let mut parts = value.split(';').map(str::trim);
    let max_age = parts.next().and_then(|p| p.strip_prefix("max-age=")).map(|n| n.trim_matches('"'));
    max_age.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && parts.all(|p| p.eq_ignore_ascii_case("includeSubDomains") || p.eq_ignore_ascii_case("preload"))
}

/// A DNS host name: dot-separated labels of letters, digits and `-` (underscore allowed, as real
/// zones use it), none empty and none starting or ending with `-`, with one optional trailing
/// dot; at most 253 characters.
fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses `scheme://(*|IP|host-name):port`.
pub fn parse_binding(text: &str) -> Result<Binding, String> {
    let expected =
        "expected scheme://host:port, like \"http://*:8080\", \"http://127.0.0.1:8080\" or \"https://shop.example:8443\"";
    let (scheme, rest) = text.split_once("://").ok_or_else(|| format!("{text:?}: {expected}"))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("{text:?}: scheme {other:?} is not http or https")),
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("{text:?}: no port; {expected}"))?;
    let port: u16 = port.parse().map_err(|_| format!("{text:?}: {port:?} is not a port number (0 to 65535)"))?;
    let host = if host == "*" {
        BindingHost::Any
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        BindingHost::Ip(v6.parse().map_err(|_| format!("{text:?}: {v6:?} is not an IPv6 address"))?)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        BindingHost::Ip(ip)
    } else if is_host_name(host) {
        // One trailing dot (the DNS root) names the same host; requests are matched without it.
        BindingHost::Name(host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase())
    } else {
        return Err(format!("{text:?}: {host:?} is not *, an IP address or a host name; {expected}"));
    };
    Ok(Binding { scheme, host, port, text: text.to_string() })
}
