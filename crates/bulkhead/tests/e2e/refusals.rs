//! Nothing accepted and silently ignored, bad input refused clearly (issue #8 items 7 and 8),
//! with the real binary: a config that promises what this version cannot do (an `https://`
//! binding served as plain HTTP, a FastCGI pool speaking the native protocol, a host pool routed without `execute`, an extension, a bare size, an empty file) stops
//! `bulkhead serve` at start-up with file, line and key on the terminal, and is refused on a
//! live reload while the running config keeps serving; keys written but not acted on are
//! warned about by name; the CLI still finds a running server whose file does not validate,
//! and ends quietly when its output pipe is closed.
//!
//! Every `serve` these tests start is stopped by them, by pid; no fixed sleeps.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::admin::{api, write_replacing};
use crate::support::http::get;
use crate::support::server::bulkhead_exe;
use crate::support::{wait_for, Server, TestDir};

/// A site serving `www/` at `/`, with the harness's `[server]` table written by [`Server`].
fn static_site(dir: &TestDir, extra: &str) -> String {
    dir.write("www/index.html", "still here\n");
    format!("[[sites]]\nname = \"main\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [{{ path = \"/\", root = \"www\" }}]\n{extra}")
}

/// Runs `bulkhead serve --config FILE` and waits for it to exit; a server still running
/// after the limit (it accepted the file) is killed by its pid and reported as such.
fn serve_expecting_refusal(dir: &TestDir, file: &Path) -> (ExitStatus, String) {
    let out = std::fs::File::create(dir.join("serve.out")).expect("create serve.out");
    let err = out.try_clone().expect("clone serve.out");
    let mut child: Child = Command::new(bulkhead_exe())
        .args(["serve", "--config"])
        .arg(file)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn bulkhead serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bulkhead serve") {
            break status;
        }
        if Instant::now() >= deadline {
            crate::support::procs::signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
            let text = std::fs::read_to_string(dir.join("serve.out")).unwrap_or_default();
            panic!("bulkhead serve accepted {} and kept running:\n{text}", file.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(dir.join("serve.out")).expect("read serve.out"))
}

/// `bulkhead ARGS…` run in `cwd`.
fn cli_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(bulkhead_exe())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the bulkhead CLI")
}

#[test]
fn configs_that_cannot_take_effect_stop_serve_with_file_line_and_key() {
    let dir = TestDir::new("refuse-start");
    let cert = dir.write("site.pem", "not a certificate\n");
    let not_pem =
        format!("https.toml:4:16: sites[0].tls.cert: site \"s\": {} holds no PEM certificate", cert.display());
    let cases = [
        // The manager reads the certificate at validation: one that cannot be served refuses.
        (
            "https.toml",
            format!("[[sites]]\nname = \"s\"\nbindings = [\"https://127.0.0.1:0\"]\ntls = {{ cert = {cert:?}, key = {cert:?} }}\n"),
            not_pem.as_str(),
        ),
        // An https binding without a certificate could only be plain HTTP.
        (
            "no-tls.toml",
            "[[sites]]\nname = \"s\"\nbindings = [\"https://127.0.0.1:0\"]\n".to_string(),
            "no-tls.toml:3:13: sites[0].bindings[0]: \"https://127.0.0.1:0\": an https binding needs the site's certificate",
        ),
        // A FastCGI responder spoken the native protocol to.
        (
            "fastcgi.toml",
            "[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [{ path = \"/\", pool = \"php\" }]\n[pools.php]\nkind = \"fastcgi\"\ncommand = [\"php-cgi\"]\nprotocol = \"native\"\n".to_string(),
            "fastcgi.toml:8:12: pools.php.protocol: a \"fastcgi\" pool speaks FastCGI",
        ),
        // Lockdown: a host pool runs only what a route names with execute.
        (
            "host.toml",
            "[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [{ path = \"/\", pool = \"h\" }]\n[pools.h]\nkind = \"host\"\n".to_string(),
            "host.toml:4:32: sites[0].routes[0].pool: pool \"h\" is a \"host\" pool, which runs nothing a route does not name",
        ),
        // An extension route without its library.
        (
            "extension.toml",
            "[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [{ path = \"/\", pool = \"h\", execute = \"extension\" }]\n[pools.h]\nkind = \"host\"\n".to_string(),
            "sites[0].routes[0]: execute = \"extension\" needs library, the extension's .so file",
        ),
        // Meant 30 bytes.
        (
            "bare-size.toml",
            "[limits]\nmax_body = 30\n[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\n".to_string(),
            "bare-size.toml:2:12: limits.max_body: \"30\" has no unit",
        ),
        // Was "valid": a server with nothing to serve.
        ("empty.toml", String::new(), "empty.toml: sites: the file is empty"),
        ("no-site.toml", "[server]\nmax_history = 3\n".to_string(), "no-site.toml: sites: the file defines no site"),
    ];
    for (name, text, expected) in cases {
        let file = dir.write(name, text);
        let (status, out) = serve_expecting_refusal(&dir, &file);
        assert_eq!(status.code(), Some(1), "{name}: serve's exit status; output:\n{out}");
        assert!(out.contains("refusing to start") && out.contains(expected), "{name}: no {expected:?} in:\n{out}");
        assert!(!dir.join("bulkhead-state/bindings.json").exists(), "{name}: nothing was bound");
        let check = cli_in(dir.path(), &["config", "check", name]);
        let printed = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(1), "{name}: config check: {printed}");
        assert!(printed.contains(expected), "{name}: config check says {printed}");
    }
}

#[test]
fn warnings_are_given_by_config_check_and_at_start_up() {
    let dir = TestDir::new("refuse-warn");
    let extra = "max_bandwidth = \"50MiB/s\"\nlog = { format = \"ncsa\", rollover = \"size\" }\n";
    let config = format!("[cache]\nmax_memory = \"64KiB\"\nmax_item = \"1MiB\"\n\n{}", static_site(&dir, extra));
    let server = Server::start(dir, &config);
    let file = server.config_path.clone().expect("config path");
    let expected = [
        // Line numbers count the harness's two-line [server] table and the blank line after it.
        "bulkhead.toml:6:12: cache.max_item: is larger than cache.max_memory",
    ];
    let check = cli_in(server.dir.path(), &["config", "check", "bulkhead.toml"]);
    let printed = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "warnings do not refuse the file: {printed}");
    for w in expected {
        assert!(printed.contains(&format!("warning: {w}")), "config check: no {w:?} in {printed}");
        let at_start = w.replace("bulkhead.toml", &file.display().to_string());
        assert!(server.output().contains(&at_start), "start-up output: no {at_start:?} in\n{}", server.output());
    }
    // Keys that are acted on (max_bandwidth, the NCSA format, size rollover) are not warned about.
    for key in ["max_bandwidth", "log.format", "log.rollover"] {
        assert!(!printed.contains(key), "config check warns about {key}: {printed}");
    }
    assert_eq!(get(server.addr(), "/").text(), "still here\n", "the file is served all the same");
}

#[test]
fn an_empty_file_is_refused_live_and_the_cli_still_finds_the_server() {
    let dir = TestDir::new("refuse-empty");
    let config = static_site(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let path = server.config_path.clone().expect("config path");
    let path_arg = path.to_str().expect("utf-8 path");
    assert_eq!(get(addr, "/").text(), "still here\n");

    // Saved empty, as an editor or `cat > bulkhead.toml` leaves it for a moment: once applied
    // live, removing every site and closing every port.
    write_replacing(&path, "");
    wait_for("the empty file's refusal in /status", Duration::from_secs(10), || {
        !api(&server, "GET", "/status", None).1["config_error"].is_null()
    });
    let (_, status) = api(&server, "GET", "/status", None);
    let errors = status["config_error"]["errors"].to_string();
    assert!(errors.contains("the file is empty"), "{errors}");
    assert_eq!(get(addr, "/").text(), "still here\n", "the running config still serves");
    assert_eq!(status["sites"][0]["name"], "main", "the site is still there");

    // The harness's state_dir is "state", not the default, and the file no longer says so; the
    // CLI, run from elsewhere, finds the server that serves this file all the same.
    let out = cli_in(Path::new("/"), &["status", "--config", path_arg]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "status with the empty file: {stderr}");
    assert!(stdout.contains("CONFIG REFUSED") && stdout.contains("the file is empty"), "{stdout}");
    assert!(stderr.contains("does not validate"), "the CLI says the file does not validate: {stderr}");

    // A broken file names its state_dir: read from the text, whatever else is wrong.
    write_replacing(&path, "[server]\nstate_dir = 'state' # still here\n[[sites]\n");
    wait_for("the broken file's refusal", Duration::from_secs(10), || {
        api(&server, "GET", "/status", None).1["config_error"]["errors"].to_string().contains("bulkhead.toml:3")
    });
    let out = cli_in(Path::new("/"), &["pools", "--config", path_arg]);
    assert!(out.status.success(), "pools with the broken file: {}", String::from_utf8_lossy(&out.stderr));

    // The good file back: the refusal clears.
    write_replacing(&path, &format!("[server]\nstate_dir = \"state\"\n\n{config}# fixed\n"));
    wait_for("the refusal to clear", Duration::from_secs(10), || {
        api(&server, "GET", "/status", None).1["config_error"].is_null()
    });
}

/// Runs `bulkhead ARGS…` with its stdout a pipe whose reading end is already closed, as
/// `bulkhead status | head` leaves it once `head` has read its lines.
fn run_into_closed_pipe(cwd: &Path, args: &[&str]) -> (ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    let out = Command::new(bulkhead_exe())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run the bulkhead CLI");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_commands_end_quietly_on_a_closed_pipe() {
    let dir = TestDir::new("refuse-pipe");
    let config = static_site(&dir, "");
    let server = Server::start(dir, &config);
    let file = server.config_path.clone().expect("config path");
    let file = file.to_str().expect("utf-8 path");
    for args in [
        &["status", "--config", file][..],
        &["status", "--json", "--config", file],
        &["pools", "--config", file],
        &["config", "history", "--config", file],
        &["config", "check", file],
    ] {
        let (status, stderr) = run_into_closed_pipe(server.dir.path(), args);
        // Before: "failed printing to stdout: Broken pipe", a backtrace hint and exit 101.
        assert_eq!(stderr, "", "{args:?}: nothing on stderr");
        assert_eq!(status.signal(), Some(libc::SIGPIPE), "{args:?}: ended by the closed pipe, as `ls` is: {status}");
    }
    assert_eq!(get(server.addr(), "/").text(), "still here\n", "the server is untouched");
}
