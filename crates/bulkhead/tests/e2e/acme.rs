//! Automatic certificates (issue #9 item 2) against a real ACME server: Debian's `pebble`
//! (RFC 8555 test CA) with `pebble-challtestsrv` as its DNS server (every name → 127.0.0.1), so
//! Pebble's HTTP-01 validation really fetches the challenge from bulkhead's http binding.
//!
//! Each test makes a CA for Pebble's own HTTPS (`[acme] ca_file`), starts challtestsrv and
//! Pebble as children (stopped by pid at the end), with Pebble's `httpPort` set to the port of
//! the site's http binding (a free port chosen first: Pebble must know it before any order, and
//! an order placed before Pebble listens would wait out the 1-minute back-off), then serves an
//! ACME site and checks with `curl --cacert <Pebble's issuing root>` and a Python client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::admin::api;
use crate::support::server::python3_available;
use crate::support::skip::{skip, Reason};
use crate::support::{free_port, poll, wait_for, Server, TestDir};

/// How long an issuance may take (Pebble with PEBBLE_VA_NOSLEEP answers in about a second).
const ISSUE_LIMIT: Duration = Duration::from_secs(60);

/// Pebble and its DNS server, killed by pid when dropped.
struct Pebble {
    children: Vec<Child>,
    directory: String,
    management: u16,
    ca_file: PathBuf,
    log: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("===== pebble log =====\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a `localhost`/127.0.0.1 certificate it signed, for Pebble's own HTTPS.
fn pebble_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).display().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "3650", "-subj", "/CN=bulkhead test ACME CA", "-keyout", &p("ca.key"), "-out", &p("ca.pem")],
        ]
        .concat(),
    );
    openssl(
        &[&["req"][..], &ec, &["-subj", "/CN=localhost", "-keyout", &p("pebble.key"), "-out", &p("pebble.csr")]]
            .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("pebble.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("pebble.pem"),
    ]);
    (dir.join("ca.pem"), dir.join("pebble.pem"), dir.join("pebble.key"))
}

fn missing() -> Option<Reason> {
    for tool in ["pebble", "pebble-challtestsrv"] {
        if Command::new(tool).arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            return Some(Reason::Missing("pebble".into()));
        }
    }
    for tool in ["openssl", "curl"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(Reason::Missing(tool.into()));
        }
    }
    if !python3_available() {
        return Some(Reason::Missing("python3".into()));
    }
    None
}

/// Starts challtestsrv and Pebble, validating HTTP-01 on 127.0.0.1:`http_port`.
fn start_pebble(dir: &TestDir, http_port: u16) -> Pebble {
    let tls_dir = dir.mkdir("pebble");
    let (ca_file, cert, key) = pebble_tls(&tls_dir);
    let (acme_port, management, dns_port, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
    let config = serde_json::json!({ "pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": cert, "privateKey": key,
        "httpPort": http_port, "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": false,
    }});
    let config_path = dir.write("pebble/pebble-config.json", config.to_string());
    let log = dir.join("pebble/pebble.log");
    let out = std::fs::File::create(&log).expect("create pebble log");
    let mut pebble = Pebble {
        children: Vec::new(),
        directory: format!("https://127.0.0.1:{acme_port}/dir"),
        management,
        ca_file,
        log: log.clone(),
    };
    let dns = Command::new("pebble-challtestsrv")
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", &format!("127.0.0.1:{dns_port}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-management", &format!("127.0.0.1:{dns_mgmt}")])
        .stdout(Stdio::from(out.try_clone().expect("clone log")))
        .stderr(Stdio::from(out.try_clone().expect("clone log")))
        .spawn()
        .expect("start pebble-challtestsrv");
    pebble.children.push(dns);
    let ca = Command::new("pebble")
        .arg("-config")
        .arg(&config_path)
        .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::from(out.try_clone().expect("clone log")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start pebble");
    pebble.children.push(ca);
    let ca_arg = pebble.ca_file.display().to_string();
    wait_for("Pebble's directory", Duration::from_secs(30), || {
        curl(&["--cacert", &ca_arg, "-o", "/dev/null", "-w", "%{http_code}", &pebble.directory]) == "200"
    });
    pebble
}

impl Pebble {
    /// Pebble's issuing root (new at each Pebble start), as a PEM file for clients.
    fn root(&self, dir: &TestDir) -> PathBuf {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let pem = curl(&["--cacert", &self.ca_file.display().to_string(), &url]);
        assert!(pem.contains("BEGIN CERTIFICATE"), "no root from Pebble: {pem}");
        dir.write("pebble-root.pem", pem)
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("run curl");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// GET https://shop.test:PORT/ trusting only `root`: the body, or curl's error.
fn fetch(port: u16, root: &Path) -> String {
    let resolve = format!("shop.test:{port}:127.0.0.1");
    curl(&["--cacert", &root.display().to_string(), "--resolve", &resolve, &format!("https://shop.test:{port}/")])
}

/// The serial number of the certificate a new connection to `port` gets (SNI shop.test).
fn serial(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername shop.test </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .expect("run openssl s_client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn acme_config(http_port: u16, pebble: &Pebble, root_dir: &Path, renew_before: &str) -> String {
    format!(
        "[acme]\ndirectory = {:?}\nca_file = {:?}\nrenew_before = {renew_before:?}\n\n[[sites]]\nname = \"shop\"\nbindings = [\"http://*:{http_port}\", \"https://shop.test:0\"]\ntls = {{ acme = \"ops@shop.test\" }}\nroutes = [{{ path = \"/\", root = {:?} }}]\n",
        pebble.directory,
        pebble.ca_file,
        root_dir
    )
}

/// A site serving `ok` from `<dir>/www/index.html`.
fn www(dir: &TestDir) -> PathBuf {
    dir.write("www/index.html", "ok from the ACME site\n");
    dir.join("www")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Waits until new connections are served a certificate that `root` verifies; its serial.
fn wait_issued(server: &Server, port: u16, root: &Path) -> String {
    let mut last = String::new();
    let ok = poll(ISSUE_LIMIT, || {
        last = fetch(port, root);
        last.contains("ok from the ACME site")
    });
    assert!(ok, "no certificate from Pebble within {ISSUE_LIMIT:?}; last curl: {last}\n{}", server.output());
    serial(port)
}

#[test]
fn issues_serves_and_survives_a_restart_without_a_new_order() {
    if let Some(why) = missing() {
        skip!(why);
    }
    let dir = TestDir::new("acme-issue");
    let http_port = free_port();
    let pebble = start_pebble(&dir, http_port);
    let root_dir = www(&dir);
    let mut server = Server::start(dir, &acme_config(http_port, &pebble, &root_dir, "30d"));
    let port = server.addr_of("https://shop.test:0").port();
    let root = pebble.root(&server.dir);
    let first = wait_issued(&server, port, &root);
    assert!(!first.is_empty(), "no serial read");
    let out = server.output();
    assert!(out.contains("site \"shop\": certificate issued by"), "{out}");
    // Files under state_dir/acme, private.
    let acme = server.state_dir.join("acme");
    for f in ["account.json", "certs/shop/cert.pem", "certs/shop/key.pem"] {
        assert_eq!(mode(&acme.join(f)), 0o600, "{f}");
    }
    // Status shows the source, the names, the expiry and the next renewal.
    let (code, status) = api(&server, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    let cert = &status["certificates"][0];
    assert_eq!((cert["site"].as_str(), cert["source"].as_str()), (Some("shop"), Some("acme")), "{status}");
    assert_eq!(cert["names"], serde_json::json!(["shop.test"]), "{status}");
    assert!(cert["not_after"].is_string() && cert["next_renewal"].is_string(), "{status}");
    // A challenge token nobody handed over falls through to the routes (404 here).
    let plain = format!("http://127.0.0.1:{http_port}/.well-known/acme-challenge/nope");
    assert_eq!(curl(&["-o", "/dev/null", "-w", "%{http_code}", &plain]), "404");

    // Restart on the same state_dir: served at once from the stored files, no new order.
    server.restart();
    let port = server.addr_of("https://shop.test:0").port();
    assert!(fetch(port, &root).contains("ok from the ACME site"), "not served right after the restart");
    assert_eq!(serial(port), first, "the same certificate after the restart");
    let out = server.output();
    let after = out.rsplit("listener started").next().unwrap_or("");
    assert!(out.contains("site \"shop\": certificate loaded from state_dir"), "{out}");
    assert!(!after.contains("ordering a"), "a new order after the restart:\n{out}");
    server.terminate();
}

/// Holds a keep-alive TLS connection until the test writes "renewed" to the flag file, then
/// uses it again: prints `first STATUS` and `again STATUS SAME_SOCKET`.
const HOLD: &str = r#"
import http.client, ssl, socket, sys, time
port, root, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=root)
conn = http.client.HTTPSConnection("shop.test", port, context=ctx, timeout=10)
conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="shop.test")
conn.request("GET", "/"); r = conn.getresponse(); r.read()
held = conn.sock
print("first", r.status, flush=True)
open(flag, "w").write("holding")
deadline = time.time() + 60
while time.time() < deadline and open(flag).read() != "renewed":
    time.sleep(0.05)
conn.request("GET", "/"); r = conn.getresponse(); r.read()
print("again", r.status, conn.sock is held, flush=True)
"#;

/// A child process killed by pid if the test ends before it does.
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn renews_live_without_closing_a_connection() {
    if let Some(why) = missing() {
        skip!(why);
    }
    let dir = TestDir::new("acme-renew");
    let http_port = free_port();
    let pebble = start_pebble(&dir, http_port);
    let root_dir = www(&dir);
    let server = Server::start(dir, &acme_config(http_port, &pebble, &root_dir, "30d"));
    let port = server.addr_of("https://shop.test:0").port();
    let root = pebble.root(&server.dir);
    let first = wait_issued(&server, port, &root);

    // A keep-alive connection made on the first certificate, held across the renewal.
    let flag = server.dir.join("hold.flag");
    let hold = Command::new("python3")
        .arg("-c")
        .arg(HOLD)
        .args([port.to_string(), root.display().to_string(), flag.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut hold = Killed(Some(hold));
    wait_for("the held connection", Duration::from_secs(20), || {
        std::fs::read_to_string(&flag).is_ok_and(|s| s == "holding")
    });

    // renew_before longer than Pebble's certificates live: due now, renewed without a restart.
    let config = server.config_path.clone().expect("config path");
    let text = std::fs::read_to_string(&config).expect("read config").replace("\"30d\"", "\"100000d\"");
    std::fs::write(&config, text).expect("write config");
    server.signal_manager(libc::SIGHUP);
    let mut now = String::new();
    let renewed = poll(ISSUE_LIMIT, || {
        now = serial(port);
        !now.is_empty() && now != first
    });
    assert!(renewed, "still serial {now} (first {first}) after {ISSUE_LIMIT:?}\n{}", server.output());
    assert!(fetch(port, &root).contains("ok from the ACME site"), "the renewed certificate verifies");
    std::fs::write(&flag, "renewed").expect("write flag");
    let out = hold.0.take().expect("the client").wait_with_output().expect("python3 output");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("first 200") && printed.contains("again 200 True"),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = server.output();
    assert!(log.contains("site \"shop\": certificate renewed by"), "{log}");
    assert!(log.contains("configuration applied (signal) as version 2: [acme] changed"), "{log}");
    // The new certificate is as due as the old (renew_before outlives it): no order loop.
    assert!(log.contains("is longer than the life of the certificate the CA issues"), "{log}");
    assert_eq!(log.matches("ordering a renewal").count(), 1, "{log}");
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(crate::support::server::bulkhead_exe())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the bulkhead CLI");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn an_unreadable_ca_file_is_refused_with_file_line_and_key() {
    let dir = TestDir::new("acme-cafile");
    let text = "[acme]\nca_file = \"no-such-ca.pem\"\n\n[[sites]]\nname = \"shop\"\nbindings = [\"http://*:80\", \"https://shop.test:443\"]\ntls = { acme = \"ops@shop.test\" }\n";
    dir.write("acme.toml", text);
    let (ok, out) = cli(dir.path(), &["config", "check", "acme.toml"]);
    assert!(!ok, "{out}");
    let want = format!("acme.toml:2:11: acme.ca_file: {}: cannot be read", dir.join("no-such-ca.pem").display());
    assert!(out.contains(&want), "{out}");
    dir.write("not-pem.pem", "hello\n");
    dir.write("acme.toml", text.replace("no-such-ca.pem", "not-pem.pem"));
    let (ok, out) = cli(dir.path(), &["config", "check", "acme.toml"]);
    assert!(!ok && out.contains("acme.ca_file:") && out.contains("holds no PEM certificate"), "{out}");
}

/// An ACME server that cannot be reached: an error event naming the site and the cause, the
/// retry time, no certificate (handshakes fail), and `bulkhead status` shows it all.
#[test]
fn a_failed_order_is_reported_and_retried_later() {
    if Command::new("curl").arg("--version").output().is_err() {
        skip!(Reason::Missing("curl".into()));
    }
    let dir = TestDir::new("acme-fail");
    let root_dir = www(&dir);
    let closed = free_port();
    let config = format!(
        "[acme]\ndirectory = \"https://127.0.0.1:{closed}/dir\"\n\n[[sites]]\nname = \"shop\"\nbindings = [\"http://*:0\", \"https://shop.test:0\"]\ntls = {{ acme = \"ops@shop.test\" }}\nroutes = [{{ path = \"/\", root = {root_dir:?} }}]\n"
    );
    let server = Server::start(dir, &config);
    let port = server.addr_of("https://shop.test:0").port();
    let mut last = serde_json::Value::Null;
    let failed = poll(Duration::from_secs(30), || {
        last = api(&server, "GET", "/status", None).1;
        last["certificates"][0]["last_error"].is_string()
    });
    assert!(failed, "no failure reported: {last}\n{}", server.output());
    let cert = &last["certificates"][0];
    assert!(cert["not_after"].is_null() && cert["next_renewal"].is_string(), "{last}");
    let out = server.output();
    assert!(
        out.contains(&format!("site \"shop\": ACME order from https://127.0.0.1:{closed}/dir failed (retry at ")),
        "{out}"
    );
    assert!(
        out.contains("in 1m; failure 1 in a row") && out.contains("TLS handshakes on its https bindings fail"),
        "{out}"
    );
    // No certificate yet: the https binding completes no handshake.
    let resolve = format!("shop.test:{port}:127.0.0.1");
    let got = curl(&["-k", "--resolve", &resolve, &format!("https://shop.test:{port}/")]);
    assert!(!got.contains("ok from the ACME site"), "{got}");
    let config_path = server.config_path.clone().expect("config path");
    let (ok, status) = cli(server.dir.path(), &["status", "--config", &config_path.display().to_string()]);
    assert!(ok, "{status}");
    assert!(status.contains("CERTIFICATE") && status.contains("acme") && status.contains("none yet"), "{status}");
}
