//! CGI programs in the built-in host (issue 12 item 2): a `kind = "host"` pool (`bulkhead
//! worker`, started by the manager) and `execute = "cgi"` routes, with real shell and Python
//! scripts written into the test's directory. A GET with a query string and `PATH_INFO` sees its
//! CGI/1.1 variables in a clean environment (no `BULKHEAD_*`, no `LISTEN_*`, no `HTTP_PROXY`)
//! and runs in its own directory; a 200 KiB POST reaches the script's stdin whole, spooled by
//! the listener first or streamed (`request_buffering = false`); `Status`,
//! `Location` and other headers are taken from the script's header block; a malformed block or
//! no output is a 502; a script without its execute bit is a 403 and an `nph-` script a 500;
//! stderr reaches the pool log. Lockdown: the same files under a static route are sent as files,
//! never run; traversal, a hidden segment, a symlink out of the root are 404, a directory 403.
//! A client's own `x-bulkhead-*` headers are removed before the host sees the request. Past
//! `cgi_timeout` the script's whole process group is killed (its `sleep` child too, checked by
//! pid) and the client gets 504; a client that goes away kills the group too. A host worker
//! killed with SIGKILL takes its running script with it (the parent-death signal) and is
//! replaced by the manager. And `examples/cgi` from its own config.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::http::{self, get, Conn};
use crate::support::skip::{skip, Reason};
use crate::support::{poll, procs, wait_for, Server, TestDir};

/// Writes an executable program (mode 0755).
fn program(dir: &TestDir, rel: &str, text: &str) -> PathBuf {
    let p = dir.write(rel, text);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod 755");
    p
}

/// A site with `/cgi-bin` → host pool "cgi" running the programs in `<dir>/cgi-bin`, `/slow` →
/// the same pool with `slow_timeout` for the programs in `<dir>/slow`, `/files` → the
/// `cgi-bin` directory served as static files (`.sh` and `.py` typed `text/plain`), and
/// `/stream` → the `cgi-bin` programs in a host pool with `request_buffering = false` (bodies
/// streamed from the client to the program as they arrive).
fn cgi_site(dir: &TestDir, slow_timeout: &str) -> String {
    let cgi = dir.mkdir("cgi-bin");
    let slow = dir.mkdir("slow");
    format!(
        "[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\n\
         mime_types = {{ \".sh\" = \"text/plain\", \".py\" = \"text/plain\" }}\n\
         routes = [\n\
           {{ path = \"/cgi-bin\", root = {cgi:?}, pool = \"cgi\", execute = \"cgi\" }},\n\
           {{ path = \"/slow\", root = {slow:?}, pool = \"cgi\", execute = \"cgi\", cgi_timeout = {slow_timeout:?} }},\n\
           {{ path = \"/files\", root = {cgi:?} }},\n\
           {{ path = \"/stream\", root = {cgi:?}, pool = \"stream\", execute = \"cgi\" }},\n\
         ]\n\n[pools.cgi]\nkind = \"host\"\n\n[pools.stream]\nkind = \"host\"\nrequest_buffering = false\n"
    )
}

/// The value of `NAME=` in a body of `NAME=value` lines.
fn var<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// A pid a script wrote to `file` (polled: the script writes it once it runs).
fn pid_in(file: &std::path::Path) -> u32 {
    let mut pid = None;
    wait_for(&format!("a pid in {}", file.display()), Duration::from_secs(30), || {
        pid = fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap_or_default()
}

/// The host worker's pid (`bulkhead worker`), if one runs.
fn host_pid(server: &Server) -> Option<u32> {
    server.worker_pids().into_iter().find(|p| procs::cmdline(*p).ends_with(" worker"))
}

const ENV_PY: &str = "#!/usr/bin/python3\nimport os, sys\nsys.stdin.read()\n\
print('Content-Type: text/plain')\nprint('X-Script: env')\nprint()\nprint('CWD=' + os.getcwd())\n\
for k in sorted(os.environ):\n    print(k + '=' + os.environ[k])\n";

#[test]
fn cgi_programs_get_their_variables_stdin_and_headers() {
    if !std::path::Path::new("/usr/bin/python3").exists() {
        skip!(Reason::Missing("python3 (apt-get install python3)".into()));
    }
    let dir = TestDir::new("cgi-basics");
    let config = cgi_site(&dir, "90s");
    let env_py = program(&dir, "cgi-bin/env.py", ENV_PY);
    program(
        &dir,
        "cgi-bin/post.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nprintf 'length=%s read=%s\\n' \"$CONTENT_LENGTH\" \"$(wc -c | tr -d ' ')\"\n",
    );
    program(&dir, "cgi-bin/status.sh", "#!/bin/sh\nprintf 'Status: 404 Not Here\\r\\nContent-Type: text/plain\\r\\nX-Extra: yes\\r\\n\\r\\nnot here\\n'\n");
    program(&dir, "cgi-bin/away.sh", "#!/bin/sh\nprintf 'Location: https://example.com/elsewhere\\n\\n'\n");
    program(&dir, "cgi-bin/local.sh", "#!/bin/sh\nprintf 'Location: /cgi-bin/env.py\\n\\n'\n");
    program(&dir, "cgi-bin/malformed.sh", "#!/bin/sh\nprintf 'this is not a header\\n\\nbody\\n'\n");
    program(&dir, "cgi-bin/silent.sh", "#!/bin/sh\nexit 3\n");
    program(&dir, "cgi-bin/nph-raw.sh", "#!/bin/sh\nprintf 'HTTP/1.1 200 OK\\r\\n\\r\\nraw\\n'\n");
    program(
        &dir,
        "cgi-bin/stderr.sh",
        "#!/bin/sh\necho 'a line for the pool log' >&2\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n",
    );
    program(
        &dir,
        "cgi-bin/sub/inner.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ninner %s\\n' \"$PATH_INFO\"\n",
    );
    program(&dir, "cgi-bin/.git/hook.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhidden ran\\n'\n");
    program(&dir, "secret.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nsecret ran\\n'\n");
    dir.symlink("../secret.sh", "cgi-bin/out.sh");
    let noexec = dir.write("cgi-bin/noexec.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n");
    fs::set_permissions(&noexec, fs::Permissions::from_mode(0o644)).expect("chmod 644");
    let server = Server::start(dir, &config);
    let addr = server.addr();

    // GET: the variables, a clean environment, the script's own directory.
    let r = http::send(
        addr,
        "GET",
        "/cgi-bin/env.py/extra/path?a=1&b=two",
        &[("X-Custom", "hello"), ("Proxy", "http://evil.example/")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-script"), Some("env"));
    let body = r.text();
    let env_py = env_py.canonicalize().expect("canonical env.py");
    let cgi_dir = env_py.parent().expect("cgi-bin").display().to_string();
    let port = addr.port().to_string();
    for (name, want) in [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", "a=1&b=two"),
        ("SCRIPT_NAME", "/cgi-bin/env.py"),
        ("SCRIPT_FILENAME", &env_py.display().to_string()),
        ("PATH_INFO", "/extra/path"),
        ("PATH_TRANSLATED", &format!("{cgi_dir}/extra/path")),
        ("DOCUMENT_ROOT", &cgi_dir),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", &port),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTP_X_CUSTOM", "hello"),
        ("CWD", &cgi_dir),
    ] {
        assert_eq!(var(&body, name), Some(want), "{name} in:\n{body}");
    }
    assert!(var(&body, "REMOTE_PORT").is_some_and(|p| p.parse::<u16>().is_ok()), "{body}");
    assert!(var(&body, "SERVER_SOFTWARE").is_some_and(|s| s.starts_with("bulkhead/")), "{body}");
    assert!(var(&body, "PATH").is_some(), "{body}");
    for absent in ["HTTP_PROXY", "HTTPS", "CONTENT_LENGTH", "HTTP_CONTENT_LENGTH"] {
        assert_eq!(var(&body, absent), None, "{absent} in:\n{body}");
    }
    for prefix in ["BULKHEAD_", "LISTEN_", "HTTP_X_BULKHEAD_", "RUST_LOG"] {
        assert!(!body.lines().any(|l| l.starts_with(prefix)), "{prefix}* leaked into:\n{body}");
    }

    // A client cannot name the program, its path info or the execute kind.
    let forged = [
        ("X-Bulkhead-Script-Filename", "/bin/sh"),
        ("X-Bulkhead-Execute", "extension"),
        ("x-bulkhead-path-info", "/forged"),
        ("X-BULKHEAD-TIMEOUT-MS", "1"),
    ];
    let r = http::send(addr, "GET", "/cgi-bin/env.py", &forged, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert_eq!(var(&body, "SCRIPT_FILENAME"), Some(env_py.display().to_string().as_str()), "{body}");
    assert_eq!(var(&body, "PATH_INFO"), None, "{body}");

    // POST: 200 KiB on stdin, whole.
    let big = vec![b'x'; 200 * 1024];
    let r = http::send(addr, "POST", "/cgi-bin/post.sh", &[("Content-Type", "application/octet-stream")], &big);
    assert_eq!((r.status, r.text()), (200, format!("length={0} read={0}\n", big.len())));
    // Unbuffered: streamed through the listener and the host to stdin as it arrives.
    let r = http::send(addr, "POST", "/stream/post.sh", &[("Content-Type", "application/octet-stream")], &big);
    assert_eq!((r.status, r.text()), (200, format!("length={0} read={0}\n", big.len())));

    // The header block: Status, other headers, Location (absolute and local: both 302).
    let r = get(addr, "/cgi-bin/status.sh");
    assert_eq!((r.status, r.text().as_str(), r.header("x-extra")), (404, "not here\n", Some("yes")));
    let r = get(addr, "/cgi-bin/away.sh");
    assert_eq!((r.status, r.header("location")), (302, Some("https://example.com/elsewhere")));
    let r = get(addr, "/cgi-bin/local.sh");
    assert_eq!((r.status, r.header("location")), (302, Some("/cgi-bin/env.py")));
    let r = get(addr, "/cgi-bin/sub/inner.sh/x");
    assert_eq!((r.status, r.text()), (200, "inner /x\n".to_string()));

    // Failures, each named in the pool log.
    assert_eq!(get(addr, "/cgi-bin/malformed.sh").status, 502);
    assert_eq!(get(addr, "/cgi-bin/silent.sh").status, 502);
    assert_eq!(get(addr, "/cgi-bin/noexec.sh").status, 403);
    assert_eq!(get(addr, "/cgi-bin/nph-raw.sh").status, 500);
    assert_eq!(get(addr, "/cgi-bin/stderr.sh").text(), "ok\n");
    wait_for("the host's log lines in the pool log", Duration::from_secs(20), || {
        let log = server.pool_log("cgi");
        log.contains("malformed.sh: a malformed CGI header block")
            && log.contains("silent.sh: ended")
            && log.contains("noexec.sh: cannot be executed")
            && log.contains("nph-raw.sh: non-parsed-header")
            && log.contains("stderr.sh: stderr: a line for the pool log")
    });

    // Lockdown: the same files under a static route are files, not programs.
    let r = get(addr, "/files/status.sh");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("#!/bin/sh\n"), "{}", r.text());
    // Paths that leave the root or hide are refused before the host sees them.
    assert_eq!(get(addr, "/cgi-bin/%2e%2e/secret.sh").status, 404);
    assert_eq!(get(addr, "/cgi-bin/out.sh").status, 404, "a symlink out of the root");
    assert_eq!(get(addr, "/cgi-bin/.git/hook.sh").status, 404);
    assert_eq!(get(addr, "/cgi-bin/missing.sh").status, 404);
    assert_eq!(get(addr, "/cgi-bin/").status, 403);
    assert_eq!(get(addr, "/cgi-bin/sub").status, 403);
}

#[test]
fn a_program_past_its_cgi_timeout_or_left_by_its_client_is_killed_with_its_group() {
    let dir = TestDir::new("cgi-timeout");
    let config = cgi_site(&dir, "1s");
    // Each writes its own pid and its `sleep` child's, then waits for the child.
    let waits = "#!/bin/sh\necho $$ > \"$0.pid\"\nsleep 300 &\necho $! > \"$0.child\"\nwait\n";
    let slow = program(&dir, "slow/quiet.sh", waits);
    let talky = program(
        &dir,
        "slow/talky.sh",
        &format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nstarted\\n'\n{}", &waits[10..]),
    );
    let left = program(&dir, "cgi-bin/left.sh", waits);
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let pids = |p: &PathBuf| {
        let (script, child) = (pid_in(&p.with_extension("sh.pid")), pid_in(&p.with_extension("sh.child")));
        server.remember(script);
        server.remember(child);
        (script, child)
    };
    let gone = |what: &str, (script, child): (u32, u32)| {
        wait_for(what, Duration::from_secs(30), || !procs::alive(script) && !procs::alive(child));
    };

    // Nothing written before the limit: 504, and the script and its sleep are gone.
    assert_eq!(get(addr, "/slow/quiet.sh").status, 504);
    gone("quiet.sh and its sleep killed", pids(&slow));
    assert!(server.pool_log("cgi").contains("no response header within cgi_timeout"), "{}", server.pool_log("cgi"));

    // Its header sent, the limit passes during the body: the response is cut, the group killed.
    let cut = http::try_send(addr, "GET", "/slow/talky.sh", &[], b"");
    assert!(cut.as_ref().map_or(true, |r| r.status == 200), "{:?}", cut.map(|r| r.status));
    gone("talky.sh and its sleep killed", pids(&talky));

    // A client that goes away (90 s limit on /cgi-bin): the group is killed at once.
    let mut conn = Conn::connect(addr).expect("connect");
    conn.send_raw(&http::request_bytes("GET", "/cgi-bin/left.sh", &[], b"")).expect("send");
    let running = pids(&left);
    assert!(procs::alive(running.0) && procs::alive(running.1));
    drop(conn);
    gone("left.sh and its sleep killed when its client left", running);
    assert_eq!(get(addr, "/slow/quiet.sh").status, 504, "the host still serves");
}

#[test]
fn a_killed_host_takes_its_program_with_it_and_is_replaced() {
    let dir = TestDir::new("cgi-host-kill");
    let config = cgi_site(&dir, "90s");
    program(&dir, "cgi-bin/hello.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello\\n'\n");
    // Becomes `sleep` itself: the parent-death signal reaches it (a child of its own would not
    // get it; the group kill on timeout, disconnect and stop covers those).
    let held = program(&dir, "cgi-bin/held.sh", "#!/bin/sh\necho $$ > \"$0.pid\"\nexec sleep 300\n");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    assert_eq!(get(addr, "/cgi-bin/hello.sh").text(), "hello\n");
    let host = host_pid(&server).expect("a bulkhead worker process");

    // A POST (never replayed) holds a program; the host is killed under it.
    let mut conn = Conn::connect(addr).expect("connect");
    conn.send_raw(&http::request_bytes("POST", "/cgi-bin/held.sh", &[], b"x")).expect("send");
    let script = pid_in(&held.with_extension("sh.pid"));
    server.remember(script);
    assert!(procs::signal(host, libc::SIGKILL), "kill -9 {host}");
    wait_for("the program killed with its host", Duration::from_secs(30), || !procs::alive(script));
    let answer = conn.read_response(false);
    assert!(answer.as_ref().map_or(true, |r| r.status == 502), "{:?}", answer.map(|r| r.status));

    wait_for("a new host answering", Duration::from_secs(30), || get(addr, "/cgi-bin/hello.sh").status == 200);
    let replacement = host_pid(&server).expect("a replacement host");
    assert_ne!(replacement, host);
    assert!(poll(Duration::from_secs(5), || !procs::alive(host)), "the killed host {host} is still there");
}

#[test]
fn the_cgi_example_runs_its_shell_script() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cgi");
    let text = fs::read_to_string(example.join("bulkhead.toml")).expect("examples/cgi/bulkhead.toml");
    let canonical = |rel: &str| example.join(rel).canonicalize().expect(rel).display().to_string();
    let config = text
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("root = \"cgi-bin\"", &format!("root = {:?}", canonical("cgi-bin")))
        .replace("root = \"public\"", &format!("root = {:?}", canonical("public")));
    assert_ne!(config, text, "the example's config changed shape; update this test");
    let server = Server::start(TestDir::new("cgi-example"), &config);
    let addr = server.addr();
    let r = get(addr, "/cgi-bin/hello.sh?name=ada");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("hello ada from a CGI shell script, pid "), "{}", r.text());
    let r = http::send(addr, "POST", "/cgi-bin/hello.sh", &[("Content-Type", "text/plain")], b"twelve bytes");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("method POST\nread 12 bytes\n"), "{}", r.text());
    // The page beside it is a static file; the script is not served from there.
    let r = get(addr, "/");
    assert!(r.status == 200 && r.text().contains("/cgi-bin/hello.sh"), "{}", r.text());
}
