//! The supervisor's answers to the admin service (issue #5): status, events, metrics, the
//! running config, config apply/validate/rollback, and the operator's pool commands.
//!
//! Each [`Command`] arrives as a supervisor event and is answered at once on its oneshot; the
//! JSON shapes are documented in [`crate::admin`]. Reading the config file (reload) and
//! `/proc` (worker memory) are the only I/O here, both small and local.

use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use super::Supervisor;
use crate::admin_command::{Command, PoolAction, Reply};
use crate::config_store::{rfc3339, Source};
use crate::event_log::Level;
use crate::pool::{Mode, PoolState};
use crate::recycle::Reason;
use crate::worker::WorkerState;

impl Supervisor {
    pub(super) fn on_admin(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(Reply::json(200, self.status_json()));
            }
            Command::Events { limit, reply } => {
                let _ = reply.send(Reply::json(200, self.events_json(limit)));
            }
            Command::Metrics(reply) => {
                self.update_worker_gauges();
                let text = self.admin.metrics.render();
                let _ = reply.send(Reply::text("application/openmetrics-text; version=1.0.0; charset=utf-8", text));
            }
            Command::GetConfig(reply) => {
                let file = self.options.config_path.as_ref().map(|p| p.display().to_string());
                let _ = reply.send(Reply::json(
                    200,
                    json!({
                        "file": file,
                        "version": self.admin.version,
                        "hash": crate::config_store::hash(&self.options.config_text),
                        "text": self.options.config_text,
                    }),
                ));
            }
            Command::Apply { text, source, note, reply } => {
                let answer = match text {
                    Some(text) => self.apply_config(text, source, note, true),
                    None => match self.read_config_file() {
                        Ok(text) => self.apply_config(text, source, note, false),
                        Err(r) => r,
                    },
                };
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            Command::Validate { text, reply } => {
                let file = self.options.config_path.as_ref().map_or("<request>".into(), |p| p.display().to_string());
                let answer = match bulkhead_config::check(&text, &file, &self.options.base_dir) {
                    Ok(c) => Reply::json(
                        200,
                        json!({ "valid": true, "warnings": c.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>() }),
                    ),
                    Err(e) => Reply::json(
                        400,
                        json!({ "valid": false, "errors": e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>() }),
                    ),
                };
                let _ = reply.send(answer);
            }
            Command::Rollback { version, reply } => {
                let answer = match self.admin.store.text(version) {
                    Ok(text) => {
                        self.apply_config(text, Source::Rollback, Some(format!("rollback to version {version}")), true)
                    }
                    Err(e) => Reply::error(404, e.to_string()),
                };
                let _ = reply.send(answer);
            }
            Command::Pool { name, action, reply } => {
                let _ = reply.send(self.pool_command(&name, action));
            }
            Command::ListenerRestart(reply) => {
                let _ = reply.send(self.hand_over_listener());
            }
            Command::CachePurge { site, prefix, reply } => {
                let _ = reply.send(self.cache_purge(site, prefix));
            }
        }
    }

    /// The config file's text now, for a reload.
    fn read_config_file(&mut self) -> Result<String, Reply> {
        let Some(path) = self.options.config_path.clone() else {
            return Err(Reply::error(409, "the server runs the embedded default config: there is no file to reload"));
        };
        std::fs::read_to_string(&path).map_err(|e| {
            let line = format!("cannot read the config file {}: {e}; the running configuration stays", path.display());
            self.events.warn(None, line.clone());
            Reply::error(500, line)
        })
    }

    /// `POST /cache/purge`: an unknown site is refused (404); the purge itself happens in the
    /// listener, after this answer (the control channel is ordered: requests the listener reads
    /// after it see the purged cache).
    fn cache_purge(&mut self, site: Option<String>, prefix: Option<String>) -> Reply {
        if let Some(name) = &site {
            if !self.admin.config.sites.iter().any(|s| &s.name == name) {
                let known: Vec<&str> = self.admin.config.sites.iter().map(|s| s.name.as_str()).collect();
                return Reply::error(404, format!("no site {name:?}; sites: {}", known.join(", ")));
            }
        }
        let message = format!(
            "purging cached answers of {} under {}",
            site.as_deref().map_or("every site".to_string(), |s| format!("site {s:?}")),
            prefix.as_deref().map_or("every path".to_string(), |p| format!("{p:?}"))
        );
        self.events.info(None, message.clone());
        self.send_listener(bulkhead_proto::ManagerToListener::PurgeCache {
            site: site.clone(),
            prefix: prefix.clone(),
        });
        Reply::json(200, json!({ "site": site, "prefix": prefix, "message": message }))
    }

    fn pool_command(&mut self, name: &str, action: PoolAction) -> Reply {
        if !self.pools.contains_key(name) || self.admin.retiring.contains(name) {
            let known: Vec<&str> =
                self.pools.keys().filter(|k| !self.admin.retiring.contains(*k)).map(String::as_str).collect();
            return Reply::error(404, format!("no pool {name:?}; pools: {}", known.join(", ")));
        }
        if self.phase != super::Phase::Serving {
            return Reply::error(503, "the server is shutting down");
        }
        let done = match action {
            PoolAction::Start => self.start_pool(name),
            PoolAction::Stop => self.stop_pool(name),
            PoolAction::Recycle => self.recycle_pool(name, Reason::Operator),
        };
        let state = self.pools.get(name).map(|p| p.state().to_string()).unwrap_or_default();
        let message = match action {
            PoolAction::Start => format!("pool {name:?} started ({state})"),
            PoolAction::Stop => format!("pool {name:?} stopped: its requests get 503 until it is started"),
            PoolAction::Recycle => format!("pool {name:?}: recycling its workers (overlapped)"),
        };
        if done {
            Reply::json(200, json!({ "pool": name, "action": action.as_str(), "state": state, "message": message }))
        } else {
            Reply::error(409, format!("pool {name:?}: cannot {} it now", action.as_str()))
        }
    }

    fn events_json(&self, limit: usize) -> Value {
        let all: Vec<_> = self.events.recent().collect();
        let skip = all.len().saturating_sub(limit);
        Value::Array(
            all.into_iter()
                .skip(skip)
                .map(|e| {
                    let level = match e.level {
                        Level::Info => "info",
                        Level::Warn => "warn",
                        Level::Error => "error",
                    };
                    json!({ "at": rfc3339(e.at), "level": level, "pool": e.pool, "message": e.message })
                })
                .collect(),
        )
    }

    fn update_worker_gauges(&self) {
        let mut counts = Vec::new();
        for (name, pool) in &self.pools {
            let mut by: std::collections::BTreeMap<&'static str, usize> = Default::default();
            for w in pool.workers.values() {
                *by.entry(worker_state(w)).or_default() += 1;
            }
            for state in ["starting", "ready", "retiring", "stopping", "orphaned"] {
                counts.push((name.clone(), state, by.get(state).copied().unwrap_or(0)));
            }
        }
        self.admin.metrics.set_workers(&counts);
    }

    pub(super) fn status_json(&mut self) -> Value {
        let now = Instant::now();
        let uptime = SystemTime::now().duration_since(self.admin.started).map_or(0, |d| d.as_secs());
        let listener = self.listener.as_ref().map(|l| json!({ "pid": l.process.pid.as_raw(), "ready": l.ready }));
        let bindings: Vec<Value> =
            self.public.bindings.iter().map(|(b, a)| json!({ "binding": b, "address": a.to_string() })).collect();
        let server = json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "started_at": rfc3339(self.admin.started),
            "uptime_secs": uptime,
            "config_file": self.options.config_path.as_ref().map(|p| p.display().to_string()),
            "config_version": self.admin.version,
            "state_dir": self.state_dir.root.display().to_string(),
            "admin_listen": self.admin.service.as_ref().and_then(|s| s.tcp_addr).map(|a| a.to_string()),
            "listener": listener,
            "bindings": bindings,
            "log_lines_dropped": self.admin.metrics.log_lines_dropped(),
        });
        let config_error = self.admin.refused.as_ref().map(|r| {
            json!({ "at": rfc3339(r.at), "source": r.source.as_str(), "errors": r.errors, "details": r.structured })
        });
        let sites: Vec<Value> = self
            .admin
            .config
            .sites
            .iter()
            .map(|s| {
                let (requests, rate) = self.admin.site_requests.get(&s.name).copied().unwrap_or((0, 0.0));
                let bindings: Vec<Value> = s
                    .bindings
                    .iter()
                    .map(|b| {
                        let addr = self.public.bindings.iter().find(|(t, _)| t == &b.text).map(|(_, a)| a.to_string());
                        json!({ "binding": b.text, "address": addr })
                    })
                    .collect();
                json!({ "name": s.name, "bindings": bindings, "routes": s.routes.len(), "requests": requests, "requests_per_sec": rate })
            })
            .collect();
        let mut cpu_seen = std::mem::take(&mut self.admin.cpu_seen);
        let mut next_cpu = std::collections::HashMap::new();
        let mut pools = Vec::new();
        for (name, pool) in &self.pools {
            if self.admin.retiring.contains(name) {
                continue;
            }
            let stats = self.admin.pool_stats.get(name);
            let workers: Vec<Value> = pool
                .workers
                .values()
                .map(|w| {
                    let pid = w.process.pid.as_raw();
                    let ticks = w.usage.map(|u| u.cpu_ticks);
                    let cpu = match (ticks, cpu_seen.remove(&pid)) {
                        (Some(t), Some((t0, at))) if now > at => {
                            let secs = now.duration_since(at).as_secs_f64();
                            Some(t.saturating_sub(t0) as f64 / clock_ticks() as f64 / secs * 100.0)
                        }
                        _ => None,
                    };
                    if let Some(t) = ticks {
                        next_cpu.insert(pid, (t, now));
                    }
                    json!({
                        "id": w.id.to_string(),
                        "pid": pid,
                        "state": worker_state_label(w),
                        "uptime_secs": now.duration_since(w.process.started).as_secs(),
                        "requests": w.requests,
                        "in_flight": Value::Null,
                        "rss_bytes": w.usage.map(|u| u.rss),
                        "vsz_bytes": w.usage.map(|u| u.vsz),
                        "cpu_percent": cpu,
                        "retiring": w.retiring.as_ref().map(|r| r.to_string()),
                        "ending": w.ending().map(|e| e.to_string()),
                    })
                })
                .collect();
            let last = self.admin.last_recycle.get(name).map(|(r, at)| json!({ "reason": r, "at": rfc3339(*at) }));
            let disabled = match pool.mode() {
                Mode::Disabled(cause) => json!({ "by": cause.label(), "reason": cause.to_string() }),
                _ => Value::Null,
            };
            // A `connect` pool's server is not Bulkhead's: it is "External" while it takes
            // requests (stopped and disabled still show as such).
            let external = pool.config.connect.as_ref().map(|a| match a {
                bulkhead_proto::WorkerAddress::Unix(p) => p.display().to_string(),
                bulkhead_proto::WorkerAddress::Tcp(a) => a.to_string(),
            });
            let state = match (&external, pool.state()) {
                (Some(_), s @ (PoolState::Stopped | PoolState::Disabled)) => s.to_string(),
                (Some(_), _) => "External".to_string(),
                (None, s) => s.to_string(),
            };
            pools.push(json!({
                "name": name,
                "state": state,
                "managed": external.is_none(),
                "connect": external,
                "disabled": disabled,
                "processes": pool.config.processes,
                "queue_depth": stats.map_or(0, |s| s.queue_depth),
                "in_flight": stats.map_or(0, |s| s.in_flight),
                "requests": pool.requests,
                "last_recycle": last,
                "workers": workers,
            }));
        }
        drop(cpu_seen);
        self.admin.cpu_seen = next_cpu;
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|s| json!({ "name": s.spec.name, "pid": s.process.as_ref().map(|p| p.pid.as_raw()), "starts": s.starts }))
            .collect();
        let certificates = self.certs.status(&self.admin.config.sites);
        json!({ "server": server, "config_error": config_error, "sites": sites, "certificates": certificates, "pools": pools, "services": services })
    }
}

/// A worker's state for metrics labels.
fn worker_state(w: &crate::worker::Worker) -> &'static str {
    match w.state {
        WorkerState::Starting { .. } => "starting",
        WorkerState::Ready if w.retiring.is_some() => "retiring",
        WorkerState::Ready => "ready",
        WorkerState::Stopping => "stopping",
        WorkerState::Orphaned => "orphaned",
    }
}

/// A worker's state as the status shows it.
fn worker_state_label(w: &crate::worker::Worker) -> &'static str {
    match worker_state(w) {
        "starting" => "Starting",
        "ready" => "Ready",
        "retiring" => "Retiring",
        "orphaned" => "Orphaned",
        _ => "Stopping",
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100, |v| v.max(1) as u64)
}
