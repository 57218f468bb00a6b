//! HTTPS from the operator's own certificate files (issue #9 item 1), with real clients:
//! certificates made by the `openssl` CLI, `curl` over https (SNI through `--resolve`), and
//! Python's `ssl` for the certificate a name gets, protocol versions and a keep-alive
//! connection held across a certificate swap. Each test starts its own server and stops it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::admin::api;
use crate::support::http::{self, Conn};
use crate::support::server::{bulkhead_exe, python3_available};
use crate::support::skip::{skip, Reason};
use crate::support::{free_port, wait_for, Server, TestDir};

/// Python helpers: `hello PORT SNI|- CAFILE [MIN MAX]` prints the served certificate's CN and
/// the version, or `FAIL <error>`; `swap …` holds a keep-alive connection across a certificate
/// swap (see [`a_replaced_certificate_reaches_new_connections_only`]).
const CLIENT: &str = r#"
import http.client, os, socket, ssl, sys, time

def context(cafile, minv=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions: the server must refuse
    if minv: ctx.minimum_version = getattr(ssl.TLSVersion, minv)
    if maxv: ctx.maximum_version = getattr(ssl.TLSVersion, maxv)
    return ctx

def cn(sock):
    return dict(x[0] for x in sock.getpeercert()["subject"])["commonName"]

def hello(port, sni, cafile, minv=None, maxv=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        t = context(cafile, minv, maxv).wrap_socket(s, server_hostname=None if sni == "-" else sni)
    except Exception as e:
        s.close()
        return "FAIL " + type(e).__name__
    out = cn(t) + " " + t.version()
    t.close()
    return out

def resumed(port, cafile, version):
    ctx = context(cafile, version, version)
    out = []
    session = None
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t = ctx.wrap_socket(s, server_hostname="site.test", session=session)
        t.sendall(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
        while t.recv(65536):
            pass
        out.append(str(t.session_reused))
        session = t.session
        t.close()
    return " ".join(out)

cmd = sys.argv[1]
if cmd == "resume":
    print(resumed(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
elif cmd == "hello":
    print(hello(int(sys.argv[2]), sys.argv[3], sys.argv[4], *sys.argv[5:7]))
elif cmd == "swap":
    port, cafile, new_cn = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(cafile), timeout=10)
    conn.request("GET", "/")
    r = conn.getresponse(); r.read()
    held, before = conn.sock, cn(conn.sock)
    print("first", r.status, before)
    for src, dst in zip(sys.argv[5::2], sys.argv[6::2]):
        os.replace(src, dst)
    deadline = time.time() + 20
    seen = ""
    while time.time() < deadline:
        seen = hello(port, "-", cafile).split(" ")[0]
        if seen == new_cn:
            break
        time.sleep(0.05)
    print("new", seen)
    conn.request("GET", "/")
    r = conn.getresponse(); r.read()
    print("again", r.status, cn(conn.sock), conn.sock is held)
"#;

/// Makes a self-signed certificate for `names` (the first is the CN) in `<dir>/<stem>.pem`
/// and `<stem>.key`.
fn certificate(dir: &TestDir, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(&format!("{stem}.pem")), dir.join(&format!("{stem}.key")));
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={}", names[0]), "-addext", &format!("subjectAltName={}", san.join(","))])
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl req failed: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// All of `certs` in one CA file for the clients.
fn bundle(dir: &TestDir, certs: &[&Path]) -> PathBuf {
    let text: String = certs.iter().map(|c| std::fs::read_to_string(c).expect("read cert")).collect();
    dir.write("ca.pem", text)
}

fn python(args: &[&str]) -> String {
    let out = Command::new("python3").arg("-c").arg(CLIENT).args(args).output().expect("run python3");
    assert!(out.status.success(), "python client failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn hello(port: u16, sni: &str, ca: &Path, versions: &[&str]) -> String {
    let port = port.to_string();
    let mut args = vec!["hello", port.as_str(), sni, ca.to_str().expect("utf-8 path")];
    args.extend_from_slice(versions);
    python(&args)
}

fn tools_missing() -> Option<Reason> {
    if !python3_available() {
        return Some(Reason::Missing("python3".into()));
    }
    for tool in ["openssl", "curl"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(Reason::Missing(tool.into()));
        }
    }
    None
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("run curl");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn sni_picks_the_certificate_exact_beats_wildcard_and_no_sni_gets_the_default() {
    if let Some(reason) = tools_missing() {
        skip!(reason);
    }
    let dir = TestDir::new("tls-sni");
    let (wild, _) = certificate(&dir, "wild", &["*.example.test"]);
    let (shop, _) = certificate(&dir, "shop", &["shop.example.test"]);
    let ca = bundle(&dir, &[&wild, &shop]);
    dir.write("wild/index.html", "wildcard site\n");
    dir.write("shop/index.html", "shop site\n");
    let port = free_port();
    let config = format!(
        r#"
[limits]
header_wait_timeout = "2s"

[[sites]]
name = "wild"
bindings = ["https://*:{port}"]
tls = {{ cert = "wild.pem", key = "wild.key" }}
routes = [ {{ path = "/", root = "wild" }} ]

[[sites]]
name = "shop"
bindings = ["https://shop.example.test:{port}"]
tls = {{ cert = "shop.pem", key = "shop.key" }}
routes = [ {{ path = "/", root = "shop" }} ]
"#
    );
    let server = Server::start(dir, &config);
    // The exact name beats the wildcard; another name under it gets the wildcard; no SNI (and a
    // name no certificate covers) gets the default, the first https site on the binding.
    assert_eq!(hello(port, "shop.example.test", &ca, &[]), "shop.example.test TLSv1.3");
    assert_eq!(hello(port, "blog.example.test", &ca, &[]), "*.example.test TLSv1.3");
    assert_eq!(hello(port, "-", &ca, &[]), "*.example.test TLSv1.3");
    assert_eq!(hello(port, "other.test", &ca, &[]), "*.example.test TLSv1.3");
    // TLS 1.2 and 1.3 are served; 1.1 is refused by the server (the client offers it).
    assert_eq!(hello(port, "shop.example.test", &ca, &["TLSv1_2", "TLSv1_2"]), "shop.example.test TLSv1.2");
    assert_eq!(hello(port, "shop.example.test", &ca, &["TLSv1_3", "TLSv1_3"]), "shop.example.test TLSv1.3");
    assert!(hello(port, "shop.example.test", &ca, &["TLSv1_1", "TLSv1_1"]).starts_with("FAIL"));
    // curl verifies the chain and the name (SNI from the URL through --resolve).
    let ca_arg = ca.to_str().expect("utf-8");
    for (host, body) in [("shop.example.test", "shop site"), ("blog.example.test", "wildcard site")] {
        let got = curl(&[
            "--cacert",
            ca_arg,
            "--resolve",
            &format!("{host}:{port}:127.0.0.1"),
            &format!("https://{host}:{port}/"),
        ]);
        assert_eq!(got.trim(), body, "curl https://{host}:{port}/");
    }
    // An https port never answers plain HTTP: the bytes are not a ClientHello, the handshake fails.
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let plain = http::try_send(addr, "GET", "/", &[("Host", "shop.example.test")], b"");
    assert!(plain.is_err() || plain.as_ref().is_ok_and(|r| r.status != 200), "plain HTTP on an https port: {plain:?}");
    // A client that connects and says nothing is cut off (the handshake is under header_wait_timeout).
    let mut idle = Conn::connect(addr).expect("connect");
    idle.stream().set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    assert_eq!(idle.read_rest().map(|b| b.len()).ok(), Some(0), "a silent TLS client must be closed by the server");
    // The failed handshakes (TLS 1.1, plain HTTP, silence) are counted for /metrics.
    wait_for("bulkhead_tls_handshake_failures_total >= 3", Duration::from_secs(10), || {
        let (_, m) = api(&server, "GET", "/metrics", None);
        let text = m.as_str().unwrap_or_default().to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("bulkhead_tls_handshake_failures_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .is_some_and(|n| n >= 3.0)
    });
}

#[test]
fn redirect_http_sends_308_hsts_is_on_https_only_and_sessions_resume() {
    if let Some(reason) = tools_missing() {
        skip!(reason);
    }
    let dir = TestDir::new("tls-redirect");
    certificate(&dir, "site", &["site.test"]);
    dir.write("www/index.html", "home\n");
    let config = r#"
[[sites]]
name = "site"
bindings = ["http://127.0.0.1:0", "https://127.0.0.1:0"]
tls = { cert = "site.pem", key = "site.key" }
redirect_http = true
hsts = "max-age=31536000"
routes = [ { path = "/", root = "www" } ]
"#;
    let server = Server::start(dir, config);
    let (plain, https) = (server.addr_of("http://127.0.0.1:0"), server.addr_of("https://127.0.0.1:0"));
    // A second connection resumes the first one's session (a ticket in 1.3, the cache or a
    // ticket in 1.2).
    let ca = server.dir.join("site.pem");
    for version in ["TLSv1_3", "TLSv1_2"] {
        let port = https.port().to_string();
        let got = python(&["resume", &port, ca.to_str().expect("utf-8"), version]);
        assert_eq!(got, "False True", "{version}: session_reused of two connections");
    }
    let r = http::get_host(plain, "site.test:8080", "/a/b?x=1&y=2");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some(format!("https://site.test:{}/a/b?x=1&y=2", https.port()).as_str()));
    assert_eq!(r.header("strict-transport-security"), None, "HSTS is never sent over plain http");
    let head =
        curl(&["-k", "--http1.1", "-D", "-", "-o", "/dev/null", &format!("https://{https}/")]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("strict-transport-security: max-age=31536000"), "{head}");
    // The access log line of an https request is like any other.
    wait_for("the https request in the access log", Duration::from_secs(10), || {
        server.access_logs("site").values().any(|t| t.contains(" GET / ") && t.contains(" 200 "))
    });
}

#[test]
fn a_key_that_does_not_match_or_a_name_not_covered_is_refused_with_file_line_key() {
    if let Some(reason) = tools_missing() {
        skip!(reason);
    }
    let dir = TestDir::new("tls-refused");
    certificate(&dir, "a", &["a.test"]);
    certificate(&dir, "b", &["b.test"]);
    let check = |name: &str, config: &str| {
        let path = dir.write(name, format!("[server]\nstate_dir = \"state\"\n{config}"));
        let out = Command::new(bulkhead_exe())
            .args(["config", "check"])
            .arg(&path)
            .env_remove("BULKHEAD_ALLOW_ROOT_WORKERS")
            .output()
            .expect("run bulkhead config check");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let site = "[[sites]]\nname = \"s\"\nbindings = [\"https://a.test:0\"]\n";
    let (ok, out) = check("mismatch.toml", &format!("{site}tls = {{ cert = \"a.pem\", key = \"b.key\" }}\n"));
    assert!(!ok, "{out}");
    assert!(out.contains("mismatch.toml:6:") && out.contains("sites[0].tls.key"), "{out}");
    assert!(out.contains("does not match the certificate"), "{out}");
    let (ok, out) = check("names.toml", &format!("{site}tls = {{ cert = \"b.pem\", key = \"b.key\" }}\n"));
    assert!(!ok, "{out}");
    assert!(out.contains("sites[0].tls.cert") && out.contains("does not cover binding \"https://a.test:0\""), "{out}");
    dir.write("junk.pem", "not a certificate\n");
    let (ok, out) = check("junk.toml", &format!("{site}tls = {{ cert = \"junk.pem\", key = \"a.key\" }}\n"));
    assert!(!ok && out.contains("holds no PEM certificate"), "{out}");
    let (ok, out) = check("good.toml", &format!("{site}tls = {{ cert = \"a.pem\", key = \"a.key\" }}\n"));
    assert!(ok, "{out}");
}

#[test]
fn a_replaced_certificate_reaches_new_connections_only() {
    if let Some(reason) = tools_missing() {
        skip!(reason);
    }
    let dir = TestDir::new("tls-swap");
    let (old, _) = certificate(&dir, "site", &["old.test"]);
    let (new, new_key) = certificate(&dir, "next", &["new.test"]);
    let (bad, _) = certificate(&dir, "bad", &["bad.test"]);
    let ca = bundle(&dir, &[&old, &new, &bad]);
    dir.write("www/index.html", "home\n");
    let config = r#"
[[sites]]
name = "site"
bindings = ["https://127.0.0.1:0"]
tls = { cert = "site.pem", key = "site.key" }
routes = [ { path = "/", root = "www" } ]
"#;
    let server = Server::start(dir, config);
    let port = server.addr().port();
    let listener = server.listener_pid();
    let (cert, key) = (server.dir.join("site.pem"), server.dir.join("site.key"));
    let p = |p: &Path| p.to_str().expect("utf-8").to_string();
    let port_text = port.to_string();
    // Key first, then certificate, as an operator (or certbot's rename) would replace them.
    let args = ["swap", &port_text, &p(&ca), "new.test", &p(&new_key), &p(&key), &p(&new), &p(&cert)];
    let out = python(&args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["first 200 old.test", "new new.test", "again 200 old.test True"], "{out}");
    assert_eq!(server.listener_pid(), listener, "the listener was not restarted");
    // A replacement that no longer validates (this key is not the certificate's) is refused;
    // the certificate that validated keeps serving.
    std::fs::copy(&bad, &cert).expect("copy a certificate whose key is elsewhere");
    wait_for("the refusal in /status", Duration::from_secs(10), || {
        let (_, status) = api(&server, "GET", "/status", None);
        status.to_string().contains("does not match the certificate")
    });
    assert_eq!(hello(port, "-", &ca, &[]), "new.test TLSv1.3");
}

#[test]
fn a_root_only_key_is_served_while_the_listener_runs_as_nobody() {
    if let Some(reason) = tools_missing() {
        skip!(reason);
    }
    if !is_root() {
        skip!(Reason::Machine("needs root: the key is root's (0600) and the listener runs as nobody".into()));
    }
    let dir = TestDir::new("tls-root");
    let (cert, key) = certificate(&dir, "site", &["site.test"]);
    let ca = bundle(&dir, &[&cert]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    dir.write("www/index.html", "home\n");
    let config = r#"
[[sites]]
name = "site"
bindings = ["https://127.0.0.1:0"]
tls = { cert = "site.pem", key = "site.key" }
routes = [ { path = "/", root = "www" } ]
"#;
    let server = Server::start(dir, config);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.listener_pid())).expect("listener status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|u| u.split_whitespace().next().unwrap_or("").to_string());
    let nobody = Command::new("id").args(["-u", "nobody"]).output().expect("id -u nobody");
    assert_eq!(uid.as_deref(), Some(String::from_utf8_lossy(&nobody.stdout).trim()), "the listener runs as nobody");
    let got = curl(&[
        "--cacert",
        ca.to_str().expect("utf-8"),
        "--resolve",
        &format!("site.test:{}:127.0.0.1", server.addr().port()),
        &format!("https://site.test:{}/", server.addr().port()),
    ]);
    assert_eq!(got.trim(), "home");
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn workers_are_told_https_only_for_requests_that_came_over_tls() {
    if let Some(reason) = tools_missing() {
        skip!(reason);
    }
    let dir = TestDir::new("tls-proto");
    certificate(&dir, "site", &["site.test"]);
    let config = format!(
        r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0", "https://127.0.0.1:0"]
tls = {{ cert = "site.pem", key = "site.key" }}
routes = [ {{ path = "/", pool = "py" }} ]

[pools.py]
command = {}
"#,
        crate::support::server::python_command()
    );
    let server = Server::start(dir, &config);
    let proto = |headers: &str| -> Option<String> {
        let list: serde_json::Value = serde_json::from_str(headers).ok()?;
        list.as_array()?
            .iter()
            .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case("x-forwarded-proto")))
            .and_then(|h| h[1].as_str().map(String::from))
    };
    let over_tls = curl(&["-k", &format!("https://{}/headers", server.addr_of("https://127.0.0.1:0"))]);
    assert_eq!(proto(&over_tls).as_deref(), Some("https"), "{over_tls}");
    let plain = http::get(server.addr_of("http://127.0.0.1:0"), "/headers");
    assert_eq!(proto(&plain.text()).as_deref(), Some("http"), "{}", plain.text());
}

#[test]
fn alpn_gives_h2_to_clients_that_offer_it_and_http11_to_the_rest() {
    if let Some(reason) = tools_missing() {
        skip!(reason);
    }
    if !crate::http2::installed("h2load", "--version") {
        skip!(Reason::Missing("h2load is not installed (apt-get install nghttp2-client)".into()));
    }
    let dir = TestDir::new("tls-alpn");
    certificate(&dir, "site", &["site.test"]);
    dir.write("www/index.html", "home\n");
    let config = r#"
[[sites]]
name = "site"
bindings = ["https://127.0.0.1:0"]
tls = { cert = "site.pem", key = "site.key" }
hsts = "max-age=60"
routes = [ { path = "/", root = "www" } ]
"#;
    let server = Server::start(dir, config);
    let https = server.addr_of("https://127.0.0.1:0");
    let ca = server.dir.join("site.pem");
    let ca = ca.to_str().expect("utf-8");
    let (resolve, url) =
        (format!("site.test:{}:127.0.0.1", https.port()), format!("https://site.test:{}/", https.port()));
    // curl offers h2 and http/1.1 and gets h2; offering only http/1.1 gets it. Same body and the
    // site's headers either way.
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let got = curl(&["--cacert", ca, "--resolve", &resolve, flag, "-D", "-", "-w", "%{http_version}", &url]);
        assert!(got.ends_with(&format!("home\n{version}")), "{flag}: {got}");
        assert!(got.to_ascii_lowercase().contains("strict-transport-security: max-age=60"), "{flag}: {got}");
    }
    // openssl's own client sees the ALPN choice in the handshake.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &https.to_string(), "-servername", "site.test", "-alpn", "h2,http/1.1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ALPN protocol: h2"), "openssl s_client said:\n{text}");
    // Many streams over a few TLS connections (h2load fails any connection not given h2).
    assert_eq!(crate::http2::h2load_url(&format!("https://{https}/index.html"), 1000, 2, 16), (1000, 1000, 0));
    // The log says which protocol each request came by.
    let mut text = String::new();
    let logged = crate::support::poll(Duration::from_secs(15), || {
        text = server.access_logs("site").into_values().collect();
        text.contains(" HTTP/2 ") && text.contains(" HTTP/1.1 ")
    });
    assert!(logged, "expected HTTP/2 and HTTP/1.1 lines in the access log:\n{text}");
}
