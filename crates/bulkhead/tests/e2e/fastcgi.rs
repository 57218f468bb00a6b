//! `kind = "fastcgi"` pools with Debian's real `php-cgi` (issue 12 item 1): a static route's
//! `handlers = { ".php" = "php" }` sends scripts to the pool and serves everything else itself.
//! GET with a query string, a POST form (and one larger than a FastCGI record, streamed with
//! `request_buffering = false`), headers and cookies set by PHP, `Status: 404` from PHP, a PHP
//! fatal error as a 500 for that request alone, `index.php` as a default document, `PATH_INFO`,
//! a missing script as the static 404 without PHP ever starting, php-cgi's own exit after
//! `PHP_FCGI_MAX_REQUESTS` counted as a recycle, not a crash, and a pool that `connect`s to a
//! php-cgi the test runs itself (`php-cgi -b`): routed to, shown as not managed, and a 502 once
//! that server is gone; and `examples/php` from its own config: a form with an upload, a cookie
//! and a session that counts visits. Skips visibly without php-cgi.

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

    // What PHP writes to FCGI_STDERR is in the listener's error log, with the pool's name.
    assert_eq!(get(addr, "/stderr.php").text(), "logged");
    wait_for("the stderr line in the server's log", Duration::from_secs(20), || {
        server.output().lines().any(|l| l.contains("pool \"php\": FastCGI worker") && l.contains("a line for the log"))
    });

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
