//! The embedded default configuration: what `bulkhead serve` without `--config` serves, so a
//! first run works anywhere — http://127.0.0.1:8080 with a static welcome page at `/` and the
//! demo pool (`bulkhead demo-app`, a worker process) at `/demo`.
//!
//! [`write_welcome`] writes the page into `<cwd>/bulkhead-state/welcome/` before the config is
//! validated (the static route's root must exist). It only ever writes that one directory.

use std::path::Path;

use anyhow::Context;

/// The default config; relative paths are relative to the working directory.
pub const TEXT: &str = r#"# Bulkhead's embedded default configuration (`bulkhead serve` without --config).
[server]
state_dir = "bulkhead-state"
# The demo's state, logs and welcome page live in the working directory, which may be one only
# its owner can enter (a checkout under /root): the listener keeps the starting user's identity
# here. A real config puts state_dir where listener_user (default "nobody") can reach it.
listener_user = "root"

[[sites]]
name = "default"
bindings = ["http://127.0.0.1:8080"]
routes = [
  { path = "/", root = "bulkhead-state/welcome" },
  { path = "/demo", pool = "demo" },
]

[pools.demo]
command = ["bulkhead", "demo-app"]
protocol = "native"
# Only used when started as root (a pool never runs as root unless it says user = "root").
user = "nobody"
"#;

const SAMPLE: &str = r#"[[sites]]
name = "shop"
bindings = ["http://*:8080"]
routes = [
  { path = "/",    root = "/srv/shop/public" },
  { path = "/api", pool = "api" },
]

[pools.api]
command = ["gunicorn", "--bind", "fd://3", "shop:app"]
user = "shop"            # who runs it when the server is started as root
processes = 2
idle_timeout = "20m"
rapid_fail = { max_crashes = 5, interval = "5m" }"#;

/// The welcome page.
pub fn welcome_html() -> String {
    let sample = SAMPLE.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bulkhead is running</title>
<style>
  :root {{ color-scheme: light dark; --accent: #2f6fdf; }}
  body {{ font: 16px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 46rem;
         margin: 3rem auto; padding: 0 1.25rem; }}
  h1 {{ font-size: 2rem; margin-bottom: .25rem; }}
  .tag {{ color: #777; margin-top: 0; }}
  .card {{ border: 1px solid #8884; border-radius: 10px; padding: 1rem 1.25rem; margin: 1.5rem 0; }}
  a {{ color: var(--accent); }}
  a.button {{ display: inline-block; background: var(--accent); color: #fff; padding: .5rem 1rem;
             border-radius: 6px; text-decoration: none; font-weight: 600; }}
  pre {{ background: #8881; border-radius: 8px; padding: 1rem; overflow-x: auto; font-size: .9rem; }}
  code {{ font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; }}
</style>
</head>
<body>
<h1>Bulkhead is running</h1>
<p class="tag">A web and application server with isolated, self-healing application pools.</p>

<div class="card">
  <p>This page is a static file served by the <strong>listener</strong>, which never runs application
  code. <code>/demo</code> is served by a separate <strong>worker process</strong> in the
  <code>demo</code> pool, started on demand by the <strong>manager</strong>. Crash it and watch the
  manager replace it while this page keeps being served.</p>
  <p><a class="button" href="/demo/">Open the demo app</a></p>
</div>

<h2>Serve your own application</h2>
<p>Write a config file and run <code>bulkhead serve --config bulkhead.toml</code>
(check it first with <code>bulkhead config check bulkhead.toml</code>):</p>
<pre><code>{sample}</code></pre>
<p>Any program that speaks HTTP can be a worker: it gets its listening socket as fd 3
(<code>LISTEN_FDS</code>, like systemd socket activation) or a port in <code>PORT</code>.</p>
</body>
</html>
"#
    )
}

/// Writes `<cwd>/bulkhead-state/welcome/index.html`.
pub fn write_welcome(cwd: &Path) -> anyhow::Result<()> {
    let dir = cwd.join("bulkhead-state").join("welcome");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let page = dir.join("index.html");
    std::fs::write(&page, welcome_html()).with_context(|| format!("cannot write {}", page.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_config_is_valid() {
        let dir = std::env::temp_dir().join(format!("bulkhead-default-config-{}", std::process::id()));
        super::write_welcome(&dir).unwrap();
        let config = bulkhead_config::parse(super::TEXT, "<embedded default>", &dir).unwrap();
        assert_eq!(config.sites[0].bindings[0].text, "http://127.0.0.1:8080");
        assert!(config.pools.contains_key("demo"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Started as root without BULKHEAD_ALLOW_ROOT_WORKERS, the default still starts: its pool
    /// names a user and runs this executable (the preflight that refuses what cannot start).
    #[test]
    fn default_config_passes_the_preflight_as_root() {
        let dir = std::env::temp_dir().join(format!("bulkhead-default-preflight-{}", std::process::id()));
        super::write_welcome(&dir).unwrap();
        let config = bulkhead_config::parse(super::TEXT, "<embedded default>", &dir).unwrap();
        let host = bulkhead_manager::preflight::Host {
            as_root: true,
            allow_root_workers: false,
            inherited_path: None,
            self_exe: std::path::Path::new("/opt/bulkhead/bulkhead"),
        };
        let found = bulkhead_manager::preflight::check(&config, super::TEXT, "<embedded default>", &host);
        assert!(found.errors.is_empty() && found.warnings.is_empty(), "{:?}", found);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
