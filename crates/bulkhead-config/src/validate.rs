//! [`RawConfig`] → [`Config`]: every check that can be made without running anything.
//!
//! Collects every error instead of stopping at the first, so `bulkhead config check` can print
//! them all. Paths are resolved against the config file's directory (DESIGN §5).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::*;
use crate::raw::*;
use crate::units::{parse_duration, parse_size};
use crate::ConfigError;

/// Collects errors with their key paths while values are converted.
pub(crate) struct Checker<'a> {
    pub errors: Vec<ConfigError>,
    pub file: &'a str,
    pub base_dir: &'a Path,
}

impl Checker<'_> {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: None,
            column: None,
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, text: &str) -> Duration {
        parse_duration(text).unwrap_or_else(|e| {
            self.err(key, e);
            Duration::ZERO
        })
    }

    fn size(&mut self, key: &str, text: &str) -> u64 {
        parse_size(text).unwrap_or_else(|e| {
            self.err(key, e);
            0
        })
    }

    fn path(&self, text: &str) -> PathBuf {
        absolute(self.base_dir, text)
    }

    fn one_of<T: Copy>(&mut self, key: &str, text: &str, choices: &[(&str, T)]) -> Option<T> {
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*v);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.err(key, format!("{text:?} is not allowed; expected one of {}", names.join(", ")));
        None
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
    let state_dir = c.path(&raw.server.state_dir);
    let server = Server {
        log_dir: absolute(&state_dir, &raw.server.log_dir),
        admin_socket: absolute(&state_dir, &raw.server.admin_socket),
        state_dir,
        listener_user: raw.server.listener_user.clone(),
        max_history: raw.server.max_history,
    };
    let l = &raw.limits;
    let limits = Limits {
        max_connections: l.max_connections,
        connection_timeout: c.duration("limits.connection_timeout", &l.connection_timeout),
        header_wait_timeout: c.duration("limits.header_wait_timeout", &l.header_wait_timeout),
        min_bytes_per_sec: l.min_bytes_per_sec,
        max_request_bytes: l.max_request_bytes,
        max_field_length: l.max_field_length,
        max_url_segment_length: l.max_url_segment_length,
        max_url_segments: l.max_url_segments,
        max_body: c.size("limits.max_body", &l.max_body),
        queue_timeout: c.duration("limits.queue_timeout", &l.queue_timeout),
    };
    if limits.max_request_bytes < 1024 {
        c.err("limits.max_request_bytes", "must be at least 1024 bytes");
    }
    let cache = Cache {
        enabled: raw.cache.enabled,
        max_memory: c.size("cache.max_memory", &raw.cache.max_memory),
        max_item: c.size("cache.max_item", &raw.cache.max_item),
        scavenge_after: c.duration("cache.scavenge_after", &raw.cache.scavenge_after),
    };
    let pools: BTreeMap<String, Pool> = raw.pools.iter().map(|(name, p)| (name.clone(), pool(c, name, p))).collect();
    let mut sites = Vec::new();
    let mut names = HashMap::new();
    let mut claimed: HashMap<(String, String), String> = HashMap::new();
    for (i, s) in raw.sites.iter().enumerate() {
        let key = format!("sites[{i}]");
        if s.name.is_empty() {
            c.err(format!("{key}.name"), "a site needs a non-empty name");
        }
        if let Some(first) = names.insert(s.name.clone(), i) {
            c.err(format!("{key}.name"), format!("site name {:?} is already used by sites[{first}]", s.name));
        }
        let site = site(c, &key, s, &pools);
        for b in &site.bindings {
            let host = match &b.host {
                BindingHost::Name(n) => n.clone(),
                _ => "*".into(),
            };
            let claim = (format!("{}:{}", b.listen_addr(), b.port), host);
            if let Some(other) = claimed.insert(claim, site.name.clone()) {
                c.err(format!("{key}.bindings"), format!("binding {:?} is already claimed by site {other:?}", b.text));
            }
        }
        sites.push(site);
    }
    Config { server, limits, cache, sites, pools }
}

fn site(c: &mut Checker<'_>, key: &str, s: &RawSite, pools: &BTreeMap<String, Pool>) -> Site {
    if s.bindings.is_empty() {
        c.err(format!("{key}.bindings"), "a site needs at least one binding, like \"http://*:8080\"");
    }
    let mut bindings = Vec::new();
    for (j, b) in s.bindings.iter().enumerate() {
        match parse_binding(b) {
            Ok(b) => bindings.push(b),
            Err(e) => c.err(format!("{key}.bindings[{j}]"), e),
        }
    }
    let tls = s.tls.as_ref().map(|t| Tls { cert: c.path(&t.cert), key: c.path(&t.key) });
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
    let mut routes = Vec::new();
    for (j, r) in s.routes.iter().enumerate() {
        if let Some(r) = route(c, &format!("{key}.routes[{j}]"), r, pools) {
            if routes.iter().any(|o: &Route| o.path == r.path) {
                c.err(format!("{key}.routes[{j}].path"), format!("path {:?} is routed twice in this site", r.path));
            }
            routes.push(r);
        }
    }
    routes.sort_by(|a, b| b.path.len().cmp(&a.path.len()));
    Site {
        name: s.name.clone(),
        bindings,
        tls,
        max_connections: s.max_connections,
        max_bandwidth,
        log: SiteLog {
            enabled: s.log.enabled,
            format: format.unwrap_or(LogFormat::W3c),
            rollover: rollover.unwrap_or(Rollover::Daily),
        },
        routes,
    }
}

fn route(c: &mut Checker<'_>, key: &str, r: &RawRoute, pools: &BTreeMap<String, Pool>) -> Option<Route> {
    if !r.path.starts_with('/') {
        c.err(format!("{key}.path"), format!("{:?} must start with \"/\"", r.path));
        return None;
    }
    let path = if r.path.len() > 1 { r.path.trim_end_matches('/').to_string() } else { r.path.clone() };
    let check_pool = |c: &mut Checker<'_>, field: &str, name: &str| {
        if !pools.contains_key(name) {
            let known: Vec<&str> = pools.keys().map(String::as_str).collect();
            c.err(
                format!("{key}.{field}"),
                format!("pool {name:?} is not defined; defined pools: [{}]", known.join(", ")),
            );
        }
    };
    let action = match (&r.root, &r.pool, &r.redirect) {
        (_, _, Some(to)) if r.root.is_none() && r.pool.is_none() => {
            let status = r.status.unwrap_or(302);
            if ![301, 302, 303, 307, 308].contains(&status) {
                c.err(
                    format!("{key}.status"),
                    format!("{status} is not a redirect status; expected 301, 302, 303, 307 or 308"),
                );
            }
            RouteAction::Redirect { to: to.clone(), status }
        }
        (Some(root), None, None) => {
            let root = c.path(root);
            if !root.is_dir() {
                c.err(format!("{key}.root"), format!("{} is not a directory", root.display()));
            }
            let mut handlers = BTreeMap::new();
            for (ext, pool) in &r.handlers {
                check_pool(c, &format!("handlers.\"{ext}\""), pool);
                let ext = ext.to_ascii_lowercase();
                handlers.insert(if ext.starts_with('.') { ext } else { format!(".{ext}") }, pool.clone());
            }
            RouteAction::Static(StaticRoute {
                root,
                default_documents: r
                    .default_documents
                    .clone()
                    .unwrap_or_else(|| vec!["index.html".into(), "index.htm".into()]),
                directory_browsing: r.directory_browsing,
                handlers,
            })
        }
        (root, Some(pool), None) => {
            check_pool(c, "pool", pool);
            let execute = r.execute.as_deref().and_then(|e| {
                c.one_of(&format!("{key}.execute"), e, &[("cgi", Execute::Cgi), ("extension", Execute::Extension)])
            });
            RouteAction::Pool(PoolRoute {
                pool: pool.clone(),
                root: root.as_deref().map(|p| c.path(p)),
                execute,
                library: r.library.as_deref().map(|p| c.path(p)),
            })
        }
        _ => {
            c.err(
                key.to_string(),
                "a route needs exactly one of `root` (static files), `pool` (an application) or `redirect`",
            );
            return None;
        }
    };
    Some(Route { path, action })
}

fn pool(c: &mut Checker<'_>, name: &str, p: &RawPool) -> Pool {
    let key = format!("pools.{name}");
    let k = |f: &str| format!("{key}.{f}");
    let kind = c
        .one_of(
            &k("kind"),
            &p.kind,
            &[("process", PoolKind::Process), ("fastcgi", PoolKind::Fastcgi), ("host", PoolKind::Host)],
        )
        .unwrap_or(PoolKind::Process);
    if kind != PoolKind::Host && p.command.is_empty() {
        c.err(k("command"), "a process pool needs a command, like [\"python3\", \"app.py\"]");
    }
    let protocol = c
        .one_of(&k("protocol"), &p.protocol, &[("http", Protocol::Http), ("native", Protocol::Native)])
        .unwrap_or_default();
    let socket = c
        .one_of(&k("socket"), &p.socket, &[("inherit", SocketMode::Inherit), ("port", SocketMode::Port)])
        .unwrap_or(SocketMode::Inherit);
    let start = c
        .one_of(&k("start"), &p.start, &[("on-demand", StartMode::OnDemand), ("always", StartMode::Always)])
        .unwrap_or(StartMode::OnDemand);
    for (field, v) in [("processes", p.processes), ("concurrency", p.concurrency), ("queue_length", p.queue_length)] {
        if v == 0 {
            c.err(k(field), "must be at least 1");
        }
    }
    let schedule = p
        .recycle
        .schedule
        .iter()
        .filter_map(|t| parse_time_of_day(t).map_err(|e| c.err(k("recycle.schedule"), e)).ok())
        .collect();
    let cpu_action = c
        .one_of(&k("cpu.action"), &p.cpu.action, &[("log", CpuAction::Log), ("recycle", CpuAction::Recycle)])
        .unwrap_or(CpuAction::Log);
    let limits = p.limits.as_ref().map(|l| CgroupLimits {
        memory: l.memory.as_deref().map(|m| c.size(&k("limits.memory"), m)),
        cpu_percent: l.cpu.as_deref().and_then(|v| {
            v.trim_end_matches('%')
                .trim()
                .parse()
                .map_err(|_| c.err(k("limits.cpu"), format!("{v:?} is not a percentage like \"150%\"")))
                .ok()
        }),
        pids: l.pids,
    });
    let health = Health {
        ping_interval: c.duration(&k("health.ping_interval"), &p.health.ping_interval),
        ping_timeout: c.duration(&k("health.ping_timeout"), &p.health.ping_timeout),
        path: p.health.path.clone(),
    };
    if !health.path.is_empty() && !health.path.starts_with('/') {
        c.err(k("health.path"), format!("{:?} must start with \"/\" (or be \"\")", health.path));
    }
    Pool {
        name: name.to_string(),
        kind,
        command: p.command.clone(),
        protocol,
        socket,
        directory: p.directory.as_deref().map(|d| c.path(d)).unwrap_or_else(|| c.base_dir.to_path_buf()),
        env: p.env.clone(),
        user: p.user.clone(),
        group: p.group.clone(),
        start,
        processes: p.processes,
        concurrency: p.concurrency,
        queue_length: p.queue_length,
        idle_timeout: c.duration(&k("idle_timeout"), &p.idle_timeout),
        startup_time_limit: c.duration(&k("startup_time_limit"), &p.startup_time_limit),
        shutdown_time_limit: c.duration(&k("shutdown_time_limit"), &p.shutdown_time_limit),
        recycle: Recycle {
            every: c.duration(&k("recycle.every"), &p.recycle.every),
            requests: p.recycle.requests,
            schedule,
            memory: c.size(&k("recycle.memory"), &p.recycle.memory),
            virtual_memory: c.size(&k("recycle.virtual_memory"), &p.recycle.virtual_memory),
            overlapped: p.recycle.overlapped,
        },
        health,
        rapid_fail: RapidFail {
            enabled: p.rapid_fail.enabled,
            max_crashes: p.rapid_fail.max_crashes,
            interval: c.duration(&k("rapid_fail.interval"), &p.rapid_fail.interval),
        },
        orphan: Orphan { enabled: p.orphan.enabled, action: p.orphan.action.clone() },
        cpu: Cpu {
            limit: p.cpu.limit,
            action: cpu_action,
            reset_interval: c.duration(&k("cpu.reset_interval"), &p.cpu.reset_interval),
        },
        limits,
    }
}

/// Parses `scheme://(*|IP|host-name):port`.
pub fn parse_binding(text: &str) -> Result<Binding, String> {
    let expected = "expected scheme://host:port, like \"http://*:8080\", \"http://127.0.0.1:8080\" or \"https://shop.example:8443\"";
    let (scheme, rest) = text.split_once("://").ok_or_else(|| format!("{text:?}: {expected}"))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("{text:?}: scheme {other:?} is not http or https")),
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("{text:?}: no port; {expected}"))?;
    let port: u16 = port.parse().map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
    let host = if host == "*" {
        BindingHost::Any
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        BindingHost::Ip(v6.parse().map_err(|_| format!("{text:?}: {v6:?} is not an IPv6 address"))?)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        BindingHost::Ip(ip)
    } else if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        BindingHost::Name(host.to_ascii_lowercase())
    } else {
        return Err(format!("{text:?}: {host:?} is not *, an IP address or a host name"));
    };
    Ok(Binding { scheme, host, port, text: text.to_string() })
}

fn parse_time_of_day(t: &str) -> Result<TimeOfDay, String> {
    let bad = || format!("{t:?} is not a local time like \"03:30\"");
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    let hour: u8 = h.parse().map_err(|_| bad())?;
    let minute: u8 = m.parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 || m.len() != 2 {
        return Err(bad());
    }
    Ok(TimeOfDay { hour, minute })
}
