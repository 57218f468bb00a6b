//! One `[pools.NAME]` table → [`Pool`]: kind and command, process settings, recycling,
//! health, rapid-fail, orphaning, CPU and cgroup limits.
//!
//! Called by [`super::validate`] for each pool before the sites (routes name pools). The
//! defaults are IIS 6's; what IIS allowed is allowed here, and only settings with which a
//! worker could never start or never be judged healthy are errors.

use super::*;
use bulkhead_proto::WorkerAddress;

pub(super) fn pool(c: &mut Checker<'_>, name: &str, p: &RawPool, server: &Server) -> Pool {
    let key = pool_key(name);
    let k = |f: &str| format!("{key}.{f}");
    if c.file_name(&key, name, "pool") {
        let socket = server.state_dir.join("sockets").join(format!("{name}.1.sock"));
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            c.err(
                &key,
                format!(
                    "this pool's worker sockets ({}) would be {len}+ bytes long; unix sockets allow {MAX_SOCKET_PATH}: use a shorter pool name or server.state_dir",
                    socket.display()
                ),
            );
        }
    }
    let kind = c
        .one_of(
            &k("kind"),
            &p.kind,
            &[("process", PoolKind::Process), ("fastcgi", PoolKind::Fastcgi), ("host", PoolKind::Host)],
        )
        .unwrap_or(PoolKind::Process);
    let connect = connect(c, &key, kind, p);
    if kind == PoolKind::Host && !p.command.is_empty() {
        c.err(
            k("command"),
            "a \"host\" pool runs Bulkhead's built-in worker (`bulkhead worker`) itself; remove command (to run a program of your own, use kind = \"process\")",
        );
    }
    if kind != PoolKind::Host && p.command.is_empty() && p.connect.is_none() {
        c.err(
            k("command"),
            format!("a pool of kind {:?} needs a command, like command = [\"python3\", \"app.py\"]", p.kind),
        );
    }
    c.command(&k("command"), &p.command);
    let mut protocol = c
        .one_of(&k("protocol"), &p.protocol, &[("http", Protocol::Http), ("native", Protocol::Native)])
        .unwrap_or_default();
    if kind == PoolKind::Fastcgi {
        if protocol == Protocol::Native {
            c.err(k("protocol"), "a \"fastcgi\" pool speaks FastCGI; \"native\" is for workers built on bulkhead-worker (kind = \"process\")");
        }
        protocol = Protocol::Fastcgi;
        if p.socket == "port" {
            c.err(
                k("socket"),
                "a \"fastcgi\" pool's processes share one unix socket on fd 0; \"port\" is for kind = \"process\"",
            );
        }
        if !p.health.path.is_empty() {
            c.err(k("health.path"), "a FastCGI responder answers no HTTP request; leave health.path empty (a connect to its socket is the health check)");
        }
    }
    if kind == PoolKind::Host {
        // The built-in worker speaks only the native protocol, on its inherited socket.
        if p.protocol != "native" {
            c.not_acted_on(k("protocol"), "a \"host\" pool always speaks the native protocol; this value is not used");
        }
        protocol = Protocol::Native;
        if p.socket == "port" {
            c.err(
                k("socket"),
                "a \"host\" pool's workers take their socket on fd 3; \"port\" is for kind = \"process\"",
            );
        }
        if !p.health.path.is_empty() {
            c.err(k("health.path"), "the built-in host is pinged on its control channel; leave health.path empty");
        }
    }
    let socket = c
        .one_of(&k("socket"), &p.socket, &[("inherit", SocketMode::Inherit), ("port", SocketMode::Port)])
        .unwrap_or(SocketMode::Inherit);
    let start = c
        .one_of(&k("start"), &p.start, &[("on-demand", StartMode::OnDemand), ("always", StartMode::Always)])
        .unwrap_or(StartMode::OnDemand);
    let concurrency = p.concurrency.unwrap_or(if kind == PoolKind::Fastcgi { 1 } else { 100 });
    for (field, v) in [("processes", p.processes), ("concurrency", concurrency), ("queue_length", p.queue_length)] {
        c.at_least_one(&k(field), v.into());
    }
    for (var, value) in &p.env {
        let var_key = format!("{}.{}", k("env"), quote_key(var));
        if var.is_empty() || var.contains(['=', '\0']) {
            c.err(&var_key, format!("{var:?} cannot be an environment variable name; expected a name without \"=\""));
        } else if value.contains('\0') {
            c.err(&var_key, "contains a NUL byte, which no environment variable can carry");
        }
    }
    let directory = match &p.directory {
        Some(d) => c.directory(&k("directory"), d),
        None => c.base_dir.to_path_buf(),
    };
    Pool {
        name: name.to_string(),
        kind,
        command: p.command.clone(),
        protocol,
        socket,
        directory,
        env: p.env.clone(),
        user: p.user.clone(),
        group: p.group.clone(),
        start,
        processes: p.processes,
        concurrency,
        queue_length: p.queue_length,
        idle_timeout: c.duration(&k("idle_timeout"), &p.idle_timeout),
        startup_time_limit: c.nonzero_duration(
            &k("startup_time_limit"),
            &p.startup_time_limit,
            "no worker could become ready in time",
        ),
        shutdown_time_limit: c.duration(&k("shutdown_time_limit"), &p.shutdown_time_limit),
        response_timeout: c.duration(&k("response_timeout"), &p.response_timeout),
        request_buffering: p.request_buffering,
        recycle: recycle(c, &key, &p.recycle),
        health: health(c, &key, &p.health),
        rapid_fail: rapid_fail(c, &key, &p.rapid_fail),
        orphan: orphan(c, &key, &p.orphan),
        cpu: cpu(c, &key, &p.cpu),
        limits: p.limits.as_ref().map(|l| cgroup_limits(c, &key, l)),
        connect,
    }
}

/// Keys that set how Bulkhead runs a pool's processes: meaningless for an external server.
const EXTERNAL_IGNORES: &[&str] = &[
    "processes",
    "user",
    "group",
    "directory",
    "env",
    "start",
    "idle_timeout",
    "startup_time_limit",
    "shutdown_time_limit",
    "recycle",
    "health",
    "rapid_fail",
    "orphan",
    "cpu",
    "limits",
    "socket",
];

/// `connect`: only for `fastcgi`, instead of `command`; a unix path (relative to the config
/// file) or `IP:PORT`. The keys about running processes get a warning each, when written.
fn connect(c: &mut Checker<'_>, key: &str, kind: PoolKind, p: &RawPool) -> Option<WorkerAddress> {
    let text = p.connect.as_deref()?;
    let k = format!("{key}.connect");
    if kind != PoolKind::Fastcgi {
        c.err(&k, "only a kind = \"fastcgi\" pool connects to a server it does not run");
        return None;
    }
    if !p.command.is_empty() {
        c.err(&k, "a fastcgi pool either runs `command` or connects to an existing server, not both: remove one");
        return None;
    }
    for field in EXTERNAL_IGNORES {
        c.not_acted_on(
            format!("{key}.{field}"),
            format!("is not used: the pool connects to {text:?}, a FastCGI server Bulkhead does not run"),
        );
    }
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Some(WorkerAddress::Tcp(addr));
    }
    if text.is_empty() || text.contains('\0') || (!text.contains('/') && text.contains(':')) {
        c.err(&k, format!("{text:?} is neither a unix socket path nor IP:PORT like \"127.0.0.1:9000\""));
        return None;
    }
    Some(WorkerAddress::Unix(c.base_dir.join(text)))
}

fn recycle(c: &mut Checker<'_>, key: &str, r: &RawRecycle) -> Recycle {
    let k = |f: &str| format!("{key}.recycle.{f}");
    let mut schedule: Vec<TimeOfDay> = Vec::new();
    for (i, t) in r.schedule.iter().enumerate() {
        match parse_time_of_day(t) {
            Ok(time) if schedule.contains(&time) => {
                c.warn(format!("{}[{i}]", k("schedule")), format!("{t:?} is listed twice"))
            }
            Ok(time) => schedule.push(time),
            Err(e) => c.err(format!("{}[{i}]", k("schedule")), e),
        }
    }
    schedule.sort();
    Recycle {
        every: c.duration(&k("every"), &r.every),
        requests: r.requests,
        schedule,
        memory: c.size(&k("memory"), &r.memory),
        virtual_memory: c.size(&k("virtual_memory"), &r.virtual_memory),
        overlapped: r.overlapped,
    }
}

fn health(c: &mut Checker<'_>, key: &str, h: &RawHealth) -> Health {
    let k = |f: &str| format!("{key}.health.{f}");
    let health = Health {
        ping_interval: c.duration(&k("ping_interval"), &h.ping_interval),
        ping_timeout: c.duration(&k("ping_timeout"), &h.ping_timeout),
        path: h.path.clone(),
    };
    // IIS let the ping interval and response time be set independently, and so do we: a
    // timeout shorter than the interval is fine. Only a zero timeout cannot work.
    if !health.ping_interval.is_zero() && health.ping_timeout.is_zero() && parse_duration(&h.ping_timeout).is_ok() {
        c.err(
            k("ping_timeout"),
            "must be more than 0s while pinging is on: every worker would be judged hung (set ping_interval = \"0s\" to turn pinging off)",
        );
    }
    if !health.path.is_empty() && !health.path.starts_with('/') {
        c.err(k("path"), format!("{:?} must start with \"/\" (or be \"\")", health.path));
    }
    health
}

fn rapid_fail(c: &mut Checker<'_>, key: &str, r: &RawRapidFail) -> RapidFail {
    let k = |f: &str| format!("{key}.rapid_fail.{f}");
    let interval = c.duration(&k("interval"), &r.interval);
    if r.enabled && r.max_crashes == 0 {
        c.err(
            k("max_crashes"),
            "must be at least 1 while rapid-fail protection is on (or set rapid_fail.enabled = false)",
        );
    }
    if r.enabled && interval.is_zero() && parse_duration(&r.interval).is_ok() {
        c.err(
            k("interval"),
            "must be more than 0s while rapid-fail protection is on (or set rapid_fail.enabled = false)",
        );
    }
    RapidFail { enabled: r.enabled, max_crashes: r.max_crashes, interval }
}

fn orphan(c: &mut Checker<'_>, key: &str, o: &RawOrphan) -> Orphan {
    if !o.enabled && !o.action.is_empty() {
        c.warn(format!("{key}.orphan.action"), "is never run: orphan.enabled is false");
    }
    c.command(&format!("{key}.orphan.action"), &o.action);
    Orphan { enabled: o.enabled, action: o.action.clone() }
}

fn cpu(c: &mut Checker<'_>, key: &str, p: &RawCpu) -> Cpu {
    let k = |f: &str| format!("{key}.cpu.{f}");
    let action = c
        .one_of(&k("action"), &p.action, &[("log", CpuAction::Log), ("recycle", CpuAction::Recycle)])
        .unwrap_or(CpuAction::Log);
    let reset_interval = c.duration(&k("reset_interval"), &p.reset_interval);
    if p.limit > 0 && reset_interval.is_zero() && parse_duration(&p.reset_interval).is_ok() {
        c.err(
            k("reset_interval"),
            "must be more than 0s while cpu.limit is set: CPU use is measured over this interval",
        );
    }
    Cpu { limit: p.limit, action, reset_interval }
}

fn cgroup_limits(c: &mut Checker<'_>, key: &str, l: &RawCgroupLimits) -> CgroupLimits {
    let k = |f: &str| format!("{key}.limits.{f}");
    let memory = l.memory.as_deref().map(|m| c.size(&k("memory"), m));
    if memory == Some(0) && l.memory.as_deref().is_some_and(|m| parse_size(m).is_ok()) {
        c.err(k("memory"), "must be more than 0 (leave it out for no limit)");
    }
    let cpu_percent = l.cpu.as_deref().and_then(|v| match v.trim().trim_end_matches('%').trim().parse::<u32>() {
        Ok(0) => {
            c.err(k("cpu"), "must be more than 0% (leave it out for no limit)");
            None
        }
        Ok(n) => Some(n),
        Err(_) => {
            c.err(k("cpu"), format!("{v:?} is not a percentage of one core like \"150%\""));
            None
        }
    });
    if l.pids == Some(0) {
        c.err(k("pids"), "must be at least 1 (leave it out for no limit)");
    }
    CgroupLimits { memory, cpu_percent, pids: l.pids }
}

fn parse_time_of_day(t: &str) -> Result<TimeOfDay, String> {
    let bad = || format!("{t:?} is not a local time; expected \"HH:MM\" from \"00:00\" to \"23:59\", like \"03:30\"");
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !h.chars().chain(m.chars()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let hour: u8 = h.parse().map_err(|_| bad())?;
    let minute: u8 = m.parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 {
        return Err(bad());
    }
    Ok(TimeOfDay { hour, minute })
}
