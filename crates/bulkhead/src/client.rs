//! The admin commands of the CLI — `bulkhead status`, `pools`, `pool start|stop|recycle NAME`,
//! `config history|diff|rollback` — as clients of the running manager's admin API (HTTP/JSON on
//! its admin unix socket; see `bulkhead_manager::admin` for the endpoints and shapes).
//!
//! The socket is found from `--socket PATH`, else from `--config FILE` (its `server.state_dir`
//! and `server.admin_socket`; for a file that does not validate — broken, empty, no site — see
//! [`admin_socket`], so `bulkhead status` still works while the running server refuses that
//! file), else `./bulkhead-state/admin.sock` (the embedded default's). Output is a human table, or the
//! API's JSON with `--json`.
//!
//! Exit codes: 0 done; 1 the server refused (unknown pool, invalid config, …); 3 no server is
//! running there (no socket, or nobody listening); 4 the socket exists but this user may not
//! use it. It never changes anything on its own: every change is the server's doing.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::cli::ClientOptions;

/// Exit code: the server answered with an error.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: no server is running at the admin socket.
pub const EXIT_NOT_RUNNING: u8 = 3;
/// Exit code: the admin socket cannot be used by this user.
pub const EXIT_NO_PERMISSION: u8 = 4;

/// One admin API call's outcome.
enum Outcome {
    Answer {
        status: u16,
        body: Value,
    },
    /// A message for the operator and the exit code.
    Unreachable(String, u8),
}

/// Where the admin socket is. With `--config FILE` that does not validate (broken, empty, no
/// site — the running server refuses it and goes on), says so on stderr and still finds the
/// server: from the file's `[server]` keys read leniently, else from a running
/// `bulkhead serve --config FILE` for this very file (its state directory is the one whose
/// `lock` it holds), else the default place next to the file.
pub fn admin_socket(opts: &ClientOptions) -> anyhow::Result<PathBuf> {
    if let Some(s) = &opts.socket {
        return Ok(s.clone());
    }
    let Some(file) = &opts.config else {
        return Ok(std::env::current_dir()?.join("bulkhead-state").join("admin.sock"));
    };
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let base = crate::serve::config_dir(file)?;
    let errors = match bulkhead_config::check(&text, &file.display().to_string(), &base) {
        Ok(c) => return Ok(c.config.server.admin_socket),
        Err(errors) => errors.0.len(),
    };
    let (state_dir, written) = bulkhead_config::server_paths_leniently(&text, &base);
    let socket = if written.exists() {
        written
    } else if let Some(dir) = running_state_dir(file) {
        dir.join(written.strip_prefix(&state_dir).unwrap_or(Path::new("admin.sock")))
    } else {
        written
    };
    eprintln!(
        "bulkhead: note: {} does not validate ({errors} error{}; `bulkhead config check {}` lists them); using the admin socket {}",
        file.display(),
        if errors == 1 { "" } else { "s" },
        file.display(),
        socket.display()
    );
    Ok(socket)
}

/// The state directory of a running `bulkhead serve --config FILE` serving this very file
/// (same file after resolving each one's working directory), read from `/proc`: the directory
/// of the `lock` file it holds open, whose `bulkhead.pid` names it. `None` when there is none
/// this user may inspect.
fn running_state_dir(file: &Path) -> Option<PathBuf> {
    let want = std::fs::canonicalize(file).ok()?;
    let pids = std::fs::read_dir("/proc").ok()?.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    pids.into_iter().find_map(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let config = serve_config_arg(&cmdline)?;
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        if std::fs::canonicalize(cwd.join(config)).ok()? != want {
            return None;
        }
        std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten().find_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let dir = target.parent().filter(|_| target.file_name() == Some("lock".as_ref()))?;
            let owner = std::fs::read_to_string(dir.join("bulkhead.pid")).ok()?;
            (owner.trim() == pid.to_string()).then(|| dir.to_path_buf())
        })
    })
}

/// The FILE of a `… serve --config FILE` (or `--config=FILE`) command line, NUL-separated as
/// in `/proc/PID/cmdline`.
fn serve_config_arg(cmdline: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let serve = args.iter().skip(1).position(|a| *a == b"serve")? + 1;
    let rest = &args[serve + 1..];
    let value = rest.iter().enumerate().find_map(|(i, a)| match a.strip_prefix(b"--config") {
        Some(b"") => rest.get(i + 1).copied(),
        Some(v) => v.strip_prefix(b"="),
        None => None,
    })?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(value)))
}

fn call(socket: &Path, method: &str, path: &str, body: Option<String>) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let stream = match tokio::net::UnixStream::connect(socket).await {
            Ok(s) => s,
            Err(e) => return Ok(unreachable(socket, &e)),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bulkhead")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Outcome::Answer { status, body })
    })
}

fn unreachable(socket: &Path, e: &std::io::Error) -> Outcome {
    let at = socket.display();
    match e.kind() {
        ErrorKind::PermissionDenied => Outcome::Unreachable(
            format!("permission denied on the admin socket {at}: run this as the user that started the server (or root)"),
            EXIT_NO_PERMISSION,
        ),
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => Outcome::Unreachable(
            format!(
                "no server is running with admin socket {at} ({e}); start it with `bulkhead serve --config FILE`, or point at it with --config FILE"
            ),
            EXIT_NOT_RUNNING,
        ),
        _ => Outcome::Unreachable(format!("cannot connect to the admin socket {at}: {e}"), EXIT_NOT_RUNNING),
    }
}

/// Calls the API; on success hands the JSON to `show` (or prints it with `--json`).
fn run(
    opts: &ClientOptions,
    method: &str,
    path: &str,
    body: Option<String>,
    show: impl FnOnce(&Value),
) -> anyhow::Result<ExitCode> {
    let socket = admin_socket(opts)?;
    match call(&socket, method, path, body)? {
        Outcome::Unreachable(message, code) => {
            eprintln!("bulkhead: {message}");
            Ok(ExitCode::from(code))
        }
        Outcome::Answer { status, body } if (200..300).contains(&status) => {
            if opts.json {
                println!("{body:#}");
            } else {
                show(&body);
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Answer { body, .. } => {
            if opts.json {
                println!("{body:#}");
            } else {
                print_error(&body);
            }
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

fn print_error(body: &Value) {
    if let Some(e) = body.get("error").and_then(Value::as_str) {
        eprintln!("bulkhead: {e}");
    }
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        eprintln!("bulkhead: the configuration was refused ({} error(s)); nothing changed:", errors.len());
        for e in errors {
            eprintln!("{}", format_config_error(e));
        }
    }
    if body.get("error").is_none() && body.get("errors").is_none() {
        eprintln!("bulkhead: {body}");
    }
}

fn format_config_error(e: &Value) -> String {
    if let Some(s) = e.as_str() {
        return s.to_string();
    }
    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = |k: &str| e.get(k).and_then(Value::as_u64).map(|v| format!(":{v}")).unwrap_or_default();
    let key = s("key");
    let key = if key.is_empty() { String::new() } else { format!(" {key}:") };
    format!("{}{}{}:{key} {}", s("file"), n("line"), n("column"), s("message"))
}

pub fn status(opts: &ClientOptions) -> anyhow::Result<ExitCode> {
    run(opts, "GET", "/status", None, print_status)
}

pub fn pools(opts: &ClientOptions) -> anyhow::Result<ExitCode> {
    run(opts, "GET", "/pools", None, |v| print_pools(v.as_array().map(Vec::as_slice).unwrap_or(&[])))
}

pub fn pool(opts: &ClientOptions, name: &str, action: &str) -> anyhow::Result<ExitCode> {
    let path = format!("/pools/{}/{action}", encode(name));
    run(opts, "POST", &path, None, |v| println!("{}", str_of(v, "message")))
}

/// `bulkhead cache purge`: `POST /cache/purge` with the given site and prefix.
pub fn cache_purge(opts: &ClientOptions, site: Option<String>, prefix: Option<String>) -> anyhow::Result<ExitCode> {
    let body = serde_json::json!({ "site": site, "prefix": prefix }).to_string();
    run(opts, "POST", "/cache/purge", Some(body), |v| println!("{}", str_of(v, "message")))
}

pub fn listener_restart(opts: &ClientOptions) -> anyhow::Result<ExitCode> {
    run(opts, "POST", "/listener/restart", None, |v| println!("{}", str_of(v, "message")))
}

pub fn history(opts: &ClientOptions) -> anyhow::Result<ExitCode> {
    run(opts, "GET", "/config/history", None, |v| {
        let rows: Vec<Vec<String>> = v
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|h| {
                let current = if h.get("current").and_then(Value::as_bool) == Some(true) { "*" } else { "" };
                vec![
                    format!("{}{current}", num(h, "version")),
                    str_of(h, "applied_at"),
                    str_of(h, "source"),
                    str_of(h, "hash"),
                    str_of(h, "note"),
                ]
            })
            .collect();
        table(&["VERSION", "APPLIED (UTC)", "SOURCE", "HASH", "NOTE"], &rows);
        println!("(* = running)");
    })
}

pub fn diff(opts: &ClientOptions, from: Option<&str>, to: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut q = Vec::new();
    if let Some(f) = from {
        q.push(format!("from={}", encode(f)));
    }
    if let Some(t) = to {
        q.push(format!("to={}", encode(t)));
    }
    let path = if q.is_empty() { "/config/diff".to_string() } else { format!("/config/diff?{}", q.join("&")) };
    run(opts, "GET", &path, None, |v| {
        println!("--- version {}\n+++ version {}", num(v, "from"), num(v, "to"));
        print!("{}", str_of(v, "diff"));
        if let Some(changes) = v.get("changes").and_then(Value::as_array) {
            println!("\nchanges:");
            for c in changes {
                println!("  {}", c.as_str().unwrap_or_default());
            }
            if changes.is_empty() {
                println!("  (none)");
            }
        }
    })
}

pub fn rollback(opts: &ClientOptions, version: &str) -> anyhow::Result<ExitCode> {
    let path = format!("/config/rollback/{}", encode(version.trim_start_matches('v')));
    run(opts, "POST", &path, None, print_applied)
}

fn print_applied(v: &Value) {
    println!("applied as version {}", num(v, "version"));
    for c in v.get("changes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        println!("  {}", c.as_str().unwrap_or_default());
    }
}

fn print_status(v: &Value) {
    let s = &v["server"];
    println!(
        "bulkhead {} (pid {}), up {}, config {} (version {})",
        str_of(s, "version"),
        num(s, "pid"),
        duration(s.get("uptime_secs").and_then(Value::as_u64)),
        s.get("config_file").and_then(Value::as_str).unwrap_or("<embedded default>"),
        num(s, "config_version"),
    );
    println!("log lines dropped: {}", num(s, "log_lines_dropped"));
    if let Some(e) = v.get("config_error").filter(|e| !e.is_null()) {
        println!(
            "\nCONFIG REFUSED at {} ({}); the previous configuration is still running:",
            str_of(e, "at"),
            str_of(e, "source")
        );
        for line in e.get("errors").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
            println!("  {}", line.as_str().unwrap_or_default());
        }
    }
    println!();
    let sites: Vec<Vec<String>> = v["sites"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|site| {
            let bindings: Vec<String> = site["bindings"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|b| format!("{} ({})", str_of(b, "binding"), str_of(b, "address")))
                .collect();
            vec![
                str_of(site, "name"),
                bindings.join(", "),
                num(site, "requests"),
                format!("{:.1}", site["requests_per_sec"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    table(&["SITE", "BINDINGS", "REQUESTS", "REQ/S"], &sites);
    print_certificates(v["certificates"].as_array().map(Vec::as_slice).unwrap_or(&[]));
    println!();
    print_pools(v["pools"].as_array().map(Vec::as_slice).unwrap_or(&[]));
}

/// One row per https site: where its certificate comes from, its names and expiry, and for
/// ACME the next renewal and the last error.
fn print_certificates(certs: &[Value]) {
    if certs.is_empty() {
        return;
    }
    let text = |c: &Value, key: &str| c.get(key).and_then(Value::as_str).unwrap_or("-").to_string();
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            let names: Vec<&str> =
                c["names"].as_array().map(Vec::as_slice).unwrap_or(&[]).iter().filter_map(Value::as_str).collect();
            let renewal = if str_of(c, "source") == "acme" { text(c, "next_renewal") } else { String::new() };
            vec![
                str_of(c, "site"),
                str_of(c, "source"),
                names.join(", "),
                c.get("not_after").and_then(Value::as_str).unwrap_or("none yet").to_string(),
                renewal,
                c.get("last_error").and_then(Value::as_str).unwrap_or("").to_string(),
            ]
        })
        .collect();
    println!();
    table(&["CERTIFICATE", "SOURCE", "NAMES", "EXPIRES (UTC)", "NEXT RENEWAL", "LAST ERROR"], &rows);
}

fn print_pools(pools: &[Value]) {
    let mut rows = Vec::new();
    for p in pools {
        let state = match p.get("connect").and_then(Value::as_str) {
            Some(addr) => format!("{} (not managed: {addr})", str_of(p, "state")),
            None => str_of(p, "state"),
        };
        rows.push(vec![
            str_of(p, "name"),
            state,
            num(p, "queue_depth"),
            num(p, "in_flight"),
            num(p, "requests"),
            p.get("last_recycle").filter(|l| !l.is_null()).map(|l| str_of(l, "reason")).unwrap_or_default(),
        ]);
        for w in p["workers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let rss = w.get("rss_bytes").and_then(Value::as_u64).map(|b| format!("{:.1} MiB", b as f64 / 1048576.0));
            rows.push(vec![
                format!("  {} pid {}", str_of(w, "id"), num(w, "pid")),
                str_of(w, "state"),
                String::new(),
                String::new(),
                num(w, "requests"),
                format!(
                    "up {}{}",
                    duration(w["uptime_secs"].as_u64()),
                    rss.map(|r| format!(", {r}")).unwrap_or_default()
                ),
            ]);
        }
    }
    table(&["POOL / WORKER", "STATE", "QUEUE", "IN FLIGHT", "REQUESTS", "DETAIL"], &rows);
}

fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

fn str_of(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn num(v: &Value, key: &str) -> String {
    v.get(key).filter(|x| !x.is_null()).map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn duration(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{:.1}h", s as f64 / 3600.0),
    }
}

/// RFC 3986's unreserved characters stay; everything else is escaped.
const ESCAPED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_config_of_a_serve_command_line() {
        let at = |args: &[&str]| serve_config_arg(args.join("\0").as_bytes());
        assert_eq!(at(&["/usr/bin/bulkhead", "serve", "--config", "b.toml"]), Some(PathBuf::from("b.toml")));
        assert_eq!(at(&["bulkhead", "serve", "--config=/etc/b.toml", ""]), Some(PathBuf::from("/etc/b.toml")));
        assert_eq!(at(&["bulkhead", "status", "--config", "b.toml"]), None);
        assert_eq!(at(&["bulkhead", "serve"]), None);
        assert_eq!(at(&["bulkhead", "serve", "--config"]), None);
    }

    #[test]
    fn config_errors_read_like_config_check() {
        let e = serde_json::json!({"file":"b.toml","line":3,"column":7,"key":"pools.a","message":"bad"});
        assert_eq!(format_config_error(&e), "b.toml:3:7: pools.a: bad");
    }
}
