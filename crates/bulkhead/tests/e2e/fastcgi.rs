//! `kind = "fastcgi"` pools with Debian's real `php-cgi` (issue 12 item 1): a static route's
//! `handlers = { ".php" = "php" }` sends scripts to the pool and serves everything else itself.
//! GET with a query string, a POST form (and one larger than a FastCGI record, streamed with
//! `request_buffering = false`), headers and cookies set by PHP, `Status: 404` from PHP, a PHP
//! fatal error as a 500 for that request alone, `index.php` as a default document, `PATH_INFO`,
//! a missing script as the static 404 without PHP ever starting, php-cgi's own exit after
//! `PHP_FCGI_MAX_REQUESTS` counted as a recycle, not a crash, and a pool that `connect`s to a
//! php-cgi the test runs itself (`php-cgi -b`): routed to, shown as not managed, and a 502 once
//! that server is gone; the same with a real php-fpm; the connection kept between GETs
//! (`FCGI_KEEP_CONN`), let go for a POST, no request lost when every php-cgi exits after each
//! answer, and a recycle under load that stops every old php-cgi at once; and `examples/php`
//! from its own config: a form with an upload, a cookie and a session that counts visits. Skips
//! visibly without php-cgi (or php-fpm, for its test).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::admin::{api, cli};
use crate::health::wait_log_of;
use crate::support::http::{self, curl, get};
use crate::support::skip::{skip, Reason};
use crate::support::{free_port, procs, wait_for, Server, TestDir};

const PHP_CGI: &str = "/usr/bin/php-cgi";

fn php_site(dir: &TestDir, pool_extra: &str) -> String {
    php_site_with(dir, &format!("command = [\"{PHP_CGI}\", \"-d\", \"display_errors=0\"]\n{pool_extra}"))
}

/// The test site with `pool` as the rest of `[pools.php]` after its `kind`.
fn php_site_with(dir: &TestDir, pool: &str) -> String {
    let root = dir.mkdir("www");
    dir.write(
        "www/info.php",
        "<?php header('X-From-Php: yes'); setcookie('flavour', 'ginger');\n\
         echo 'a=', $_GET['a'] ?? '', ' method=', $_SERVER['REQUEST_METHOD'], ' script=', $_SERVER['SCRIPT_NAME'],\n\
         ' info=', $_SERVER['PATH_INFO'] ?? '', ' https=', $_SERVER['HTTPS'] ?? 'off', ' remote=', $_SERVER['REMOTE_ADDR'],\n\
         ' cookie=', $_COOKIE['c'] ?? '';\n",
    );
    dir.write(
        "www/post.php",
        "<?php echo 'name=', $_POST['name'] ?? '', ' big=', strlen($_POST['big'] ?? ''), ' len=', $_SERVER['CONTENT_LENGTH'];\n",
    );
    dir.write("www/gone.php", "<?php http_response_code(404); echo 'gone from php';\n");
    dir.write("www/fatal.php", "<?php no_such_function();\n");
    dir.write("www/stderr.php", "<?php error_log('a line for the log'); echo 'logged';\n");
    dir.write("www/index.php", "<?php echo 'index via ', $_SERVER['SCRIPT_NAME'];\n");
    dir.write("www/page.html", "<p>static</p>\n");
    format!(
        "[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\n\
         routes = [{{ path = \"/\", root = {root:?}, default_documents = [\"index.php\"], handlers = {{ \".php\" = \"php\" }} }}]\n\
         [pools.php]\nkind = \"fastcgi\"\n{pool}"
    )
}

fn php_missing() -> bool {
    !std::path::Path::new(PHP_CGI).exists()
}

#[test]
fn php_pages_forms_headers_errors_and_static_files_side_by_side() {
    if php_missing() {
        skip!(Reason::Missing("php-cgi (apt-get install php-cgi)".into()));
    }
    let dir = TestDir::new("fastcgi-php");
    let config = php_site(&dir, "request_buffering = false\n");
    let server = Server::start(dir, &config);
    let addr = server.addr();

    // A missing script is the static 404: PHP is never asked (nor started).
    assert_eq!(get(addr, "/missing.php").status, 404);
    assert_eq!(get(addr, "/missing.php/extra").status, 404);
    assert!(!server.pool_log("php").contains("started"), "php-cgi started for a missing script");

    let r = http::send(addr, "GET", "/info.php?a=42", &[("Host", "localhost"), ("Cookie", "c=oat")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "a=42 method=GET script=/info.php info= https=off remote=127.0.0.1 cookie=oat");
    assert_eq!(r.header("x-from-php"), Some("yes"));
    assert!(r.header("set-cookie").is_some_and(|c| c.starts_with("flavour=ginger")), "{:?}", r.headers);

    let r = get(addr, "/info.php/extra/path");
    assert_eq!(r.text(), "a= method=GET script=/info.php info=/extra/path https=off remote=127.0.0.1 cookie=");

    let form = [("Host", "localhost"), ("Content-Type", "application/x-www-form-urlencoded")];
    let r = http::send(addr, "POST", "/post.php", &form, b"name=ada");
    assert_eq!((r.status, r.text()), (200, "name=ada big=0 len=8".to_string()));
    // More than one STDIN record's worth (64 KiB), streamed as it comes.
    let big = format!("name=bo&big={}", "x".repeat(200 * 1024));
    let r = http::send(addr, "POST", "/post.php", &form, big.as_bytes());
    assert_eq!((r.status, r.text()), (200, format!("name=bo big={} len={}", 200 * 1024, big.len())));

    let r = get(addr, "/gone.php");
    assert_eq!((r.status, r.text()), (404, "gone from php".to_string()));
    assert_eq!(get(addr, "/fatal.php").status, 500, "a PHP fatal error");
    assert_eq!(get(addr, "/info.php?a=after").status, 200, "the request after a fatal error");

    // What PHP writes to FCGI_STDERR is in the pool's log, with the worker's id.
    assert_eq!(get(addr, "/stderr.php").text(), "logged");
    let log = wait_log_of(&server, "php", "a line for the log");
    assert!(
        log.lines().any(|l| l.contains("[FastCGI w") && l.contains("stderr] ") && l.contains("a line for the log")),
        "{log}"
    );

    let r = get(addr, "/page.html");
    assert_eq!((r.status, r.text()), (200, "<p>static</p>\n".to_string()));
    assert_eq!(r.header("x-from-php"), None);
    let r = get(addr, "/");
    assert_eq!((r.status, r.text()), (200, "index via /index.php".to_string()));
}

#[test]
fn php_cgi_exiting_after_its_max_requests_is_a_recycle_not_a_crash() {
    if php_missing() {
        skip!(Reason::Missing("php-cgi (apt-get install php-cgi)".into()));
    }
    let dir = TestDir::new("fastcgi-recycle");
    let extra = "processes = 1\nenv = { PHP_FCGI_MAX_REQUESTS = \"2\" }\nrapid_fail = { max_crashes = 1 }\n";
    let config = php_site(&dir, extra);
    let server = Server::start(dir, &config);
    let addr = server.addr();
    for i in 0..5 {
        let r = get(addr, &format!("/info.php?a={i}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    // php-cgi 1 served requests 0-1, php-cgi 2 requests 2-3: both exits were handled (and
    // logged) before php-cgi 3 was started for request 4. max_crashes = 1 would have disabled
    // the pool at the first exit counted as a crash.
    let log = wait_log_of(&server, "php", "recycled, not a crash");
    assert!(log.matches("recycled, not a crash").count() >= 2, "{log}");
    assert!(!log.contains("crash 1 of") && !log.contains("rapid-fail"), "counted as a crash:\n{log}");
    assert_eq!(get(addr, "/info.php?a=6").status, 200);
    let log = server.pool_log("php");
    assert!(log.matches("recycled, not a crash").count() >= 2, "{log}");
    assert!(!log.contains("rapid-fail"), "{log}");
}

/// The inodes of the connections accepted on the unix socket `path` that are open now (the
/// accepting side carries the socket's path in `/proc/net/unix`; `St` 03 is connected).
fn connections_on(path: &std::path::Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/unix").expect("read /proc/net/unix");
    let path = path.to_string_lossy();
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[5] == "03" && f[7] == path).then(|| f[6].to_string())
        })
        .collect()
}

#[test]
fn a_php_cgi_connection_is_kept_for_gets_and_let_go_for_a_post() {
    if php_missing() {
        skip!(Reason::Missing("php-cgi (apt-get install php-cgi)".into()));
    }
    let dir = TestDir::new("fastcgi-keep");
    let config = php_site(&dir, "processes = 1\n");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let socket = server.state_dir.join("sockets/php.fcgi.sock");
    assert_eq!(get(addr, "/info.php?a=1").status, 200);
    let kept = connections_on(&socket);
    assert_eq!(kept.len(), 1, "one connection kept open to the one php-cgi: {kept:?}");
    // Every GET rides the same connection: one php-cgi, never a second connect.
    for i in 0..5 {
        let r = get(addr, &format!("/info.php?a={i}"));
        assert_eq!((r.status, r.text().starts_with(&format!("a={i} "))), (200, true), "{}", r.text());
        assert_eq!(connections_on(&socket), kept, "request {i} came on another connection");
    }
    let r = http::send(addr, "HEAD", "/info.php", &[("Host", "localhost")], b"");
    assert_eq!(r.status, 200);
    // (A HEAD's body is never read, so its connection is not kept: a GET keeps one again.)
    assert_eq!(get(addr, "/info.php?a=before-post").status, 200);
    let kept = connections_on(&socket);
    assert_eq!(kept.len(), 1, "{kept:?}");
    // A POST goes on a connection of its own, and the kept one is let go first: it holds the
    // only php-cgi in its read, and the POST would wait for it for ever.
    let form = [("Host", "localhost"), ("Content-Type", "application/x-www-form-urlencoded")];
    let r = http::send(addr, "POST", "/post.php", &form, b"name=ada");
    assert_eq!((r.status, r.text()), (200, "name=ada big=0 len=8".to_string()));
    let r = get(addr, "/info.php?a=after");
    assert_eq!((r.status, r.text().starts_with("a=after ")), (200, true), "{}", r.text());
    let now = connections_on(&socket);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, kept, "the connection kept before the POST was closed");
}

#[test]
fn kept_connections_to_php_cgis_that_exit_after_every_request_lose_no_request() {
    if php_missing() {
        skip!(Reason::Missing("php-cgi (apt-get install php-cgi)".into()));
    }
    let dir = TestDir::new("fastcgi-keep-exit");
    // Each php-cgi exits after one request, just after its answer: every kept connection is
    // closed under the listener, sometimes after it was taken for the next request.
    let config = php_site(&dir, "processes = 2\nenv = { PHP_FCGI_MAX_REQUESTS = \"1\" }\n");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    for i in 0..20 {
        let r = get(addr, &format!("/info.php?a={i}"));
        assert_eq!((r.status, r.text().starts_with(&format!("a={i} "))), (200, true), "request {i}: {}", r.text());
    }
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                (0..6)
                    .map(|i| {
                        let r = get(addr, &format!("/info.php?a={c}-{i}"));
                        (r.status, r.text())
                    })
                    .filter(|(status, _)| *status != 200)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for client in clients {
        let failed = client.join().expect("client thread");
        assert!(failed.is_empty(), "requests failed: {failed:?}");
    }
    let log = server.pool_log("php");
    assert!(!log.contains("crash 1 of") && !log.contains("rapid-fail"), "counted as a crash:\n{log}");
}

#[test]
fn a_recycle_under_load_stops_every_old_php_cgi_at_once_and_answers_every_get() {
    if php_missing() {
        skip!(Reason::Missing("php-cgi (apt-get install php-cgi)".into()));
    }
    let dir = TestDir::new("fastcgi-keep-recycle");
    // A php-cgi waiting in the read of a kept connection retries that read through SIGTERM:
    // were a new worker's kept connection to hold an old process, that process would wait for
    // this limit and be killed.
    let config = php_site(&dir, "processes = 2\nshutdown_time_limit = \"300s\"\n");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    assert_eq!(get(addr, "/info.php?a=first").status, 200);
    wait_for("two php-cgi workers", Duration::from_secs(30), || server.worker_pids().len() == 2);
    let before = server.worker_pids();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two clients, so that both new workers keep connections while the old ones drain.
    let loads: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut done, mut failed) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && done < 20_000 {
                    let r = get(addr, &format!("/info.php?a={done}"));
                    if r.status != 200 {
                        failed.push((done, r.status, r.text()));
                    }
                    done += 1;
                }
                (done, failed)
            })
        })
        .collect();
    let config_path = server.config_path.clone().expect("config path");
    let out = cli(&["pool", "recycle", "php", "--config", &config_path.display().to_string()]);
    assert!(out.status.success(), "bulkhead pool recycle php: {}", String::from_utf8_lossy(&out.stderr));
    // The load stops as soon as the new workers serve: a kept connection that holds an old
    // process then stays idle, with nothing to wake that process but its connection's close.
    wait_for("the new php-cgis to answer", Duration::from_secs(60), || {
        server.worker_pids().iter().any(|p| !before.contains(p))
    });
    for _ in 0..20 {
        assert_eq!(get(addr, "/info.php?a=new").status, 200);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut now = Vec::new();
    wait_for("both old php-cgis to exit and two new ones to serve", Duration::from_secs(60), || {
        now = server.worker_pids();
        before.iter().all(|p| !procs::alive(*p)) && now.len() == 2
    });
    for load in loads {
        let (done, failed) = load.join().expect("load thread");
        assert!(failed.is_empty(), "{} of {done} GETs failed: {failed:?}", failed.len());
    }
    assert!(now.iter().all(|p| !before.contains(p)), "not recycled: {before:?} -> {now:?}");
    let log = server.pool_log("php");
    assert!(!log.contains("(shutdown_time_limit); killed"), "{log}");
}

/// A `php-cgi -b 127.0.0.1:PORT` the test runs (and stops by its pid, also on a panic).
struct ExternalPhp(Child);

impl Drop for ExternalPhp {
    fn drop(&mut self) {
        procs::signal(self.0.id(), libc::SIGTERM);
        let _ = self.0.wait();
    }
}

#[test]
fn a_pool_connected_to_a_fastcgi_server_bulkhead_does_not_run() {
    if php_missing() {
        skip!(Reason::Missing("php-cgi (apt-get install php-cgi)".into()));
    }
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let child = Command::new(PHP_CGI)
        .args(["-d", "display_errors=0", "-b", &bind])
        .env("PHP_FCGI_CHILDREN", "0")
        .stdin(Stdio::null())
        .spawn()
        .expect("start php-cgi -b");
    let php = ExternalPhp(child);
    wait_for("php-cgi to listen", Duration::from_secs(20), || std::net::TcpStream::connect(&bind).is_ok());

    let dir = TestDir::new("fastcgi-external");
    let config = php_site_with(&dir, &format!("connect = {bind:?}\nconcurrency = 1\n"));
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let r = get(addr, "/info.php?a=ext");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("a=ext method=GET script=/info.php"), "{}", r.text());
    assert!(server.worker_pids().is_empty(), "Bulkhead started a worker for an external pool");

    let (_, status) = api(&server, "GET", "/status", None);
    let pool = status["pools"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "php")).cloned();
    let pool = pool.expect("pool php in /status");
    assert_eq!((pool["state"].as_str(), pool["managed"].as_bool()), (Some("External"), Some(false)), "{pool}");
    assert_eq!(pool["connect"].as_str(), Some(bind.as_str()));
    let config_path = server.config_path.clone().expect("config path");
    let out = cli(&["status", "--config", &config_path.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("External (not managed: {bind})")), "{text}");

    // Its server gone, the pool answers 502 (and is still routed to when it comes back).
    drop(php);
    assert_eq!(get(addr, "/info.php").status, 502);
    assert_eq!(get(addr, "/page.html").status, 200);
}

#[test]
fn a_pool_connected_to_a_php_fpm_the_user_runs() {
    let Some(fpm) = ["/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm8.3", "/usr/sbin/php-fpm8.4", "/usr/sbin/php-fpm"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        skip!(Reason::Missing("php-fpm (apt-get install php-fpm)".into()));
    };
    let dir = TestDir::new("fastcgi-fpm");
    let socket = dir.join("fpm.sock");
    // As root it runs its children as root (-R); the socket is open to the listener's user.
    let conf = format!(
        "[global]\nerror_log = {}\ndaemonize = no\n[www]\nlisten = {}\nlisten.mode = 0666\n\
         pm = static\npm.max_children = 2\nphp_admin_value[display_errors] = 0\n",
        dir.join("fpm.log").display(),
        socket.display()
    );
    dir.write("fpm.conf", &conf);
    let mut command = Command::new(fpm);
    command.args(["-F", "-y"]).arg(dir.join("fpm.conf")).stdin(Stdio::null()).stdout(Stdio::null());
    if unsafe { libc::geteuid() } == 0 {
        command.arg("-R");
    }
    let php = ExternalPhp(command.spawn().expect("start php-fpm"));
    wait_for("php-fpm to listen", Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&socket).is_ok());

    let config = php_site_with(&dir, &format!("connect = {:?}\nconcurrency = 2\n", socket.display().to_string()));
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let r = http::send(addr, "GET", "/info.php/x?a=fpm", &[("Host", "localhost"), ("Cookie", "c=1")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "a=fpm method=GET script=/info.php info=/x https=off remote=127.0.0.1 cookie=1");
    let form = [("Host", "localhost"), ("Content-Type", "application/x-www-form-urlencoded")];
    let r = http::send(addr, "POST", "/post.php", &form, b"name=fpm");
    assert_eq!((r.status, r.text()), (200, "name=fpm big=0 len=8".to_string()));
    assert_eq!(get(addr, "/fatal.php").status, 500, "a PHP fatal error under php-fpm");
    // php-fpm's FCGI_STDERR lines reach the pool's log too (written by the manager itself:
    // this pool runs no process).
    assert_eq!(get(addr, "/stderr.php").text(), "logged");
    wait_log_of(&server, "php", "a line for the log");
    assert!(server.worker_pids().is_empty(), "Bulkhead started a worker for an external pool");
    let (_, status) = api(&server, "GET", "/status", None);
    let pool = status["pools"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "php")).cloned();
    assert_eq!(pool.as_ref().and_then(|p| p["managed"].as_bool()), Some(false), "{pool:?}");
    drop(php);
    assert_eq!(get(addr, "/info.php").status, 502, "php-fpm stopped");
}

#[test]
fn the_php_example_serves_a_form_an_upload_a_cookie_and_a_session() {
    if php_missing() {
        skip!(Reason::Missing("php-cgi (apt-get install php-cgi)".into()));
    }
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/php");
    let text = std::fs::read_to_string(example.join("bulkhead.toml")).expect("examples/php/bulkhead.toml");
    let www = example.join("www").canonicalize().expect("examples/php/www");
    let config = text
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("root = \"www\"", &format!("root = {:?}", www.display().to_string()))
        .replace("[\"php-cgi\"]", &format!("[{PHP_CGI:?}]"));
    assert_ne!(config, text, "the example's config changed shape; update this test");
    let dir = TestDir::new("fastcgi-example");
    let jar = dir.join("cookies.txt").display().to_string();
    let upload = dir.write("upload.txt", "twelve bytes").display().to_string();
    let server = Server::start(dir, &config);
    let url = format!("http://{}/", server.addr());

    let r = curl(&["-c", &jar, "-b", &jar, &format!("{url}?name=ada")]);
    assert_eq!((r.status, r.text()), (200, "hello ada\nvisits 1\n".to_string()));
    assert_eq!(r.header("x-powered-by-pool"), Some("php"));
    let form = format!("file=@{upload}");
    let r = curl(&["-c", &jar, "-b", &jar, "-F", "name=bo", "-F", &form, &url]);
    assert_eq!((r.status, r.text()), (200, "hello bo\nvisits 2\nupload upload.txt 12 bytes\n".to_string()));
    // The cookie PHP set comes back, and the session still counts.
    let r = curl(&["-c", &jar, "-b", &jar, &url]);
    assert_eq!((r.status, r.text()), (200, "hello bo\nvisits 3\n".to_string()));
    let r = curl(&[&format!("{url}form.html")]);
    assert!(r.status == 200 && r.text().contains("<form"), "{}", r.text());
}
