//! Pools that can never start are refused up front (issue #8 items 1, 3 and 8): a command not
//! found on the pool's PATH, one its user cannot execute, a user that does not exist, or —
//! started as root — a pool without `user` stops `serve` at start-up with the message on the
//! terminal and a non-zero exit, is reported by `bulkhead config check`, and is refused on a
//! live reload while the running configuration keeps serving. The root-only cases skip
//! visibly (`skip!`, a machine reason) when the suite does not run as root.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::admin::{api, write_replacing};
use crate::support::http::get;
use crate::support::procs;
use crate::support::server::bulkhead_exe;
use crate::support::skip::{skip, Reason};
use crate::support::{wait_for, Server, TestDir};

/// How long a refused `serve` may take to exit.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// A site with a static page at `/` and, at `/app`, the pool `app` with `pool` as its keys.
fn site_with_pool(dir: &TestDir, pool: &str) -> String {
    dir.write("www/index.html", "static home\n");
    format!(
        r#"
[[sites]]
name = "main"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "www" }}, {{ path = "/app", pool = "app" }} ]

[pools.app]
{pool}
"#
    )
}

/// Runs `bulkhead serve --config <dir>/bulkhead.toml` (with `[server] state_dir` in the test
/// dir) until it exits; its exit code and terminal output. Kills it (by pid) and fails the
/// test if it is still running after [`EXIT_LIMIT`].
fn serve_expecting_exit(dir: &TestDir, config: &str, allow_root_workers: bool) -> (Option<i32>, String) {
    let path = dir.write("bulkhead.toml", format!("[server]\nstate_dir = \"state\"\n{config}"));
    let out_path = dir.join("serve.out");
    let out = std::fs::File::create(&out_path).expect("create serve.out");
    let mut command = Command::new(bulkhead_exe());
    command
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("BULKHEAD_ALLOW_ROOT_WORKERS")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone")))
        .stderr(Stdio::from(out));
    if allow_root_workers {
        command.env("BULKHEAD_ALLOW_ROOT_WORKERS", "1");
    }
    let mut child = command.spawn().expect("spawn bulkhead serve");
    let status = wait_exit(&mut child, EXIT_LIMIT);
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(code) => (code, output),
        None => {
            stop(&mut child);
            panic!("bulkhead serve still ran {EXIT_LIMIT:?} after start-up; it should have refused:\n{output}");
        }
    }
}

/// `Some(exit code)` once `child` exited within `limit` (`Some(None)` for a signal).
fn wait_exit(child: &mut Child, limit: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Kills a manager the test started and everything under it, by pid.
fn stop(child: &mut Child) {
    for p in procs::descendants_of(child.id()) {
        procs::signal(p, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `bulkhead config check FILE`: exit code and output.
pub(crate) fn config_check(file: &Path, allow_root_workers: bool) -> (Option<i32>, String) {
    let mut command = Command::new(bulkhead_exe());
    command.args(["config", "check"]).arg(file).env_remove("BULKHEAD_ALLOW_ROOT_WORKERS");
    if allow_root_workers {
        command.env("BULKHEAD_ALLOW_ROOT_WORKERS", "1");
    }
    let out = command.output().expect("run bulkhead config check");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Why the root-only tests cannot run here, if they cannot.
pub(crate) fn not_root_with_nobody() -> Option<Reason> {
    if !is_root() {
        return Some(Reason::Machine(
            "not root; pool users and listener_user only apply when the server is started as root".into(),
        ));
    }
    if nix_user_exists("nobody") {
        return None;
    }
    Some(Reason::Machine("this machine has no user \"nobody\"".into()))
}

fn nix_user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd").is_ok_and(|t| t.lines().any(|l| l.split(':').next() == Some(name)))
}

const MISSING: &str = "no-such-command-bulkhead-test";

#[test]
fn serve_refuses_to_start_with_a_pool_whose_command_does_not_exist() {
    let dir = TestDir::new("preflight-missing");
    let config = site_with_pool(&dir, &format!("command = [{MISSING:?}, \"--serve\"]"));
    let (code, output) = serve_expecting_exit(&dir, &config, true);
    assert_eq!(code, Some(1), "serve must fail:\n{output}");
    assert!(output.contains("refusing to start"), "{output}");
    let expected = format!("pools.app.command: pool \"app\": command \"{MISSING}\" is not found on the PATH");
    assert!(output.contains(&expected), "the pool and the command are not named:\n{output}");
    assert!(output.contains("bulkhead.toml:10:"), "the line of the command is not named:\n{output}");
    assert!(!dir.join("state/bindings.json").exists(), "nothing was served");

    let (code, output) = config_check(&dir.join("bulkhead.toml"), true);
    assert_eq!(code, Some(1), "config check must fail:\n{output}");
    assert!(output.contains(&expected) && output.contains("bulkhead.toml:10:"), "{output}");
}

#[test]
fn a_reload_adding_a_pool_that_cannot_start_is_refused_and_the_running_config_keeps_serving() {
    let dir = TestDir::new("preflight-reload");
    dir.write("www/index.html", "static home\n");
    let first = "\n[[sites]]\nname = \"main\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [ { path = \"/\", root = \"www\" } ]\n";
    let server = Server::start(dir, first);
    let addr = server.addr();
    let path = server.config_path.clone().expect("config path");
    let running = std::fs::read_to_string(&path).expect("read config");
    let added = running.replace(
        "routes = [ { path = \"/\", root = \"www\" } ]",
        &format!(
            "routes = [ {{ path = \"/\", root = \"www\" }}, {{ path = \"/app\", pool = \"app\" }} ]\n\n\
             [pools.app]\ncommand = [{MISSING:?}]"
        ),
    );
    assert_ne!(added, running);
    write_replacing(&path, &added);
    let mut status = serde_json::Value::Null;
    wait_for("the refusal in /status", Duration::from_secs(15), || {
        status = api(&server, "GET", "/status", None).1;
        !status["config_error"].is_null()
    });
    let expected = format!("pools.app.command: pool \"app\": command \"{MISSING}\" is not found");
    let errors = status["config_error"]["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.iter().any(|e| e.as_str().is_some_and(|e| e.contains(&expected))), "{errors:?}");
    assert!(server.output().contains("configuration refused (file)"), "{}", server.output());
    // The running configuration stays: the static site serves, the pool was never added.
    assert_eq!(get(addr, "/").text(), "static home\n");
    assert_eq!(get(addr, "/app/").status, 404, "the refused route must not be live");
    let pools = status["pools"].as_array().map_or(0, Vec::len);
    assert_eq!(pools, 0, "no pool was added: {status}");
    assert!(server.worker_pids().is_empty(), "no worker was started");
}

#[test]
fn as_root_a_command_in_a_directory_the_pools_user_cannot_search_is_refused() {
    if let Some(why) = not_root_with_nobody() {
        skip!(why);
    }
    let dir = TestDir::new("preflight-private");
    let private = dir.mkdir("private");
    std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod 0700");
    let app = dir.write("private/app", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod 0755");
    let config = site_with_pool(&dir, &format!("command = [{:?}]\nuser = \"nobody\"", app.display().to_string()));
    // Allowed root workers change nothing: the pool names its user.
    let (code, output) = serve_expecting_exit(&dir, &config, true);
    assert_eq!(code, Some(1), "serve must fail:\n{output}");
    let expected = format!(
        "pool \"app\": command {app:?} resolved to {app}, which user \"nobody\" cannot execute: {private} is mode 0700 (owner root",
        app = app.display().to_string(),
        private = private.display()
    );
    assert!(output.contains(&expected), "expected {expected:?} in:\n{output}");

    let (code, output) = config_check(&dir.join("bulkhead.toml"), false);
    assert_eq!(code, Some(1), "config check must fail:\n{output}");
    assert!(output.contains(&expected), "{output}");
    // Made reachable, the same config is valid.
    std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod 0755");
    let (code, output) = config_check(&dir.join("bulkhead.toml"), false);
    assert_eq!(code, Some(0), "{output}");
}

#[test]
fn as_root_a_pool_with_a_user_that_does_not_exist_is_refused() {
    if let Some(why) = not_root_with_nobody() {
        skip!(why);
    }
    let dir = TestDir::new("preflight-nouser");
    let config = site_with_pool(&dir, "command = [\"sh\", \"-c\", \"exit 0\"]\nuser = \"no-such-user-bulkhead\"");
    let (code, output) = serve_expecting_exit(&dir, &config, true);
    assert_eq!(code, Some(1), "serve must fail:\n{output}");
    let expected =
        "pools.app.user: pool \"app\": its workers cannot run: user \"no-such-user-bulkhead\" does not exist";
    assert!(output.contains(expected), "{output}");
    let (code, output) = config_check(&dir.join("bulkhead.toml"), false);
    assert!(code == Some(1) && output.contains(expected), "{output}");
}

#[test]
fn as_root_a_pool_without_user_is_refused_at_start_up_and_when_added_live() {
    if let Some(why) = not_root_with_nobody() {
        skip!(why);
    }
    let dir = TestDir::new("preflight-root");
    let config = site_with_pool(&dir, "command = [\"sh\", \"-c\", \"exit 0\"]");
    let (code, output) = serve_expecting_exit(&dir, &config, false);
    assert_eq!(code, Some(1), "serve must fail:\n{output}");
    let expected = "pools.app: pool \"app\": refusing to run its workers as root: set user = ";
    assert!(output.contains(expected), "{output}");
    let (code, output) = config_check(&dir.join("bulkhead.toml"), false);
    assert!(code == Some(1) && output.contains(expected), "config check: {output}");
    // The suite's own allowance is kept.
    let (code, output) = config_check(&dir.join("bulkhead.toml"), true);
    assert_eq!(code, Some(0), "BULKHEAD_ALLOW_ROOT_WORKERS=1: {output}");

    // Live: a server without the allowance, then the same pool added to its file.
    let live = TestDir::new("preflight-root-live");
    live.write("www/index.html", "static home\n");
    let static_only = "[server]\nstate_dir = \"state\"\nlistener_user = \"root\"\n\n[[sites]]\nname = \"main\"\n\
                       bindings = [\"http://127.0.0.1:0\"]\nroutes = [ { path = \"/\", root = \"www\" } ]\n";
    let path = live.write("bulkhead.toml", static_only);
    let out = std::fs::File::create(live.join("serve.out")).expect("serve.out");
    let mut child = Command::new(bulkhead_exe())
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(live.path())
        .env("RUST_LOG", "info")
        .env_remove("BULKHEAD_ALLOW_ROOT_WORKERS")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn bulkhead serve");
    let result = std::panic::catch_unwind(|| {
        let addr = wait_bound(&live.join("state"));
        assert_eq!(get(addr, "/").text(), "static home\n");
        let added = static_only.replace(
            "routes = [ { path = \"/\", root = \"www\" } ]",
            "routes = [ { path = \"/\", root = \"www\" }, { path = \"/app\", pool = \"app\" } ]\n\n\
             [pools.app]\ncommand = [\"sh\", \"-c\", \"exit 0\"]",
        );
        write_replacing(&path, &added);
        wait_for("the refusal in the server log", Duration::from_secs(15), || {
            let out = std::fs::read_to_string(live.join("serve.out")).unwrap_or_default();
            out.contains("configuration refused (file)") && out.contains("refusing to run its workers as root")
        });
        assert_eq!(get(addr, "/").text(), "static home\n", "the running config still serves");
        assert_eq!(get(addr, "/app/").status, 404, "the refused pool's route is not live");
    });
    let manager_alive = matches!(child.try_wait(), Ok(None));
    stop(&mut child);
    if let Err(e) = result {
        eprintln!("===== serve output =====\n{}", std::fs::read_to_string(live.join("serve.out")).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
    assert!(manager_alive, "the manager kept running after the refusal");
}

/// The first bound address from `<state>/bindings.json`.
fn wait_bound(state: &Path) -> std::net::SocketAddr {
    let mut addr = None;
    wait_for("bindings.json", Duration::from_secs(30), || {
        addr = std::fs::read_to_string(state.join("bindings.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v[0]["address"].as_str().and_then(|a| a.parse().ok()));
        addr.is_some()
    });
    addr.expect("an address")
}

/// Root only, the pyenv case: a bare command whose first match on the pool's PATH lies in a
/// directory only root can search is found further down the PATH, as the pool's user would
/// find it, and the worker runs (before, root's access check picked the private one and the
/// worker failed with only `Permission denied`).
#[test]
fn as_root_a_bare_command_is_found_on_the_pools_path_as_the_pools_user() {
    if let Some(why) = not_root_with_nobody() {
        skip!(why);
    }
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        skip!(Reason::Missing("/usr/bin/python3 (runnable by user nobody) is not installed".into()));
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("preflight-path");
    let app_source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/health_app.py");
    let app = dir.write("health_app.py", std::fs::read(app_source).expect("read the health app"));
    let private = dir.mkdir("root-home");
    let shims = dir.mkdir("root-home/shims");
    let shim = dir.write("root-home/shims/tool", "#!/bin/sh\necho the-private-shim-ran; exit 7\n");
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    let bin = dir.mkdir("bin");
    let tool = dir.write("bin/tool", format!("#!/bin/sh\nexec {} -u {}\n", python.display(), app.display()));
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = format!(
        r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", pool = "app" }} ]

[pools.app]
command = ["tool"]
env = {{ PATH = "{}:{}:/usr/bin:/bin" }}
user = "nobody"
"#,
        shims.display(),
        bin.display()
    );
    let server = Server::start(dir, &config);
    let r = get(server.addr(), "/whoami");
    assert_eq!((r.status, r.text()), (200, "uid=65534 gid=65534".to_string()), "{}", server.pool_log("app"));
    assert!(!server.pool_log("app").contains("the-private-shim-ran"), "{}", server.pool_log("app"));
    server.worker_pids();
}
