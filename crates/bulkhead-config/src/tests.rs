mod content;
mod routes;

use super::*;
use std::path::PathBuf;
use std::time::Duration;

fn ok(text: &str) -> Config {
    match parse(text, "test.toml", Path::new("/tmp")) {
        Ok(c) => c,
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

/// The warnings about a valid file, which may be a fragment without a site.
fn warnings(text: &str) -> Vec<String> {
    match validated(text, "test.toml", Path::new("/tmp"), false) {
        Ok(c) => c.warnings.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

/// Every error, one `file:line:col: key: message` string each.
fn errors(text: &str) -> Vec<String> {
    let e = parse(text, "test.toml", Path::new("/tmp")).expect_err("expected errors");
    e.0.iter().map(ToString::to_string).collect()
}

fn one_error(text: &str) -> String {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.remove(0)
}

const SITE: &str = "[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\n";

/// A file in /tmp that exists for the life of the value.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let path = PathBuf::from(format!("/tmp/bulkhead-config-test-{}-{name}", std::process::id()));
        std::fs::write(&path, "test").expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn empty_file_has_iis_defaults() {
    let c = ok("");
    assert_eq!(c.server.state_dir, Path::new("/tmp/bulkhead-state"));
    assert_eq!(c.server.log_dir, Path::new("/tmp/bulkhead-state/logs"));
    assert_eq!(c.limits.queue_timeout, Duration::from_secs(120));
    assert_eq!(c.limits.max_body, 30 << 20);
    assert_eq!(c.cache.max_item, 256 << 10);
}

#[test]
fn pool_defaults_are_iis6() {
    let c = ok("[pools.a]\ncommand = [\"x\"]\n");
    let p = &c.pools["a"];
    assert_eq!(p.recycle.every, Duration::from_secs(29 * 3600));
    assert_eq!(p.idle_timeout, Duration::from_secs(20 * 60));
    assert_eq!(p.queue_length, 1000);
    assert_eq!(p.health.ping_interval, Duration::from_secs(30));
    assert_eq!(p.health.ping_timeout, Duration::from_secs(90));
    assert_eq!((p.rapid_fail.max_crashes, p.rapid_fail.interval), (5, Duration::from_secs(300)));
    assert_eq!(p.processes, 1);
    assert_eq!(p.directory, Path::new("/tmp"));
}

#[test]
fn routes_sorted_longest_first_and_pools_checked() {
    let c = ok(r#"
[[sites]]
name = "s"
bindings = ["http://127.0.0.1:0", "http://shop.example:8080"]
routes = [{ path = "/", root = "/tmp" }, { path = "/api/", pool = "api" }, { path = "/old", redirect = "/new", status = 301 }]
[pools.api]
command = ["app"]
"#);
    let paths: Vec<&str> = c.sites[0].routes.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/api", "/old", "/"]);
    assert_eq!(c.sites[0].bindings[1].host, BindingHost::Name("shop.example".into()));
}

#[test]
fn every_error_is_reported_in_file_order_at_its_value() {
    let e = errors(
        r#"
[[sites]]
name = "s"
bindings = ["ftp://x:1"]
routes = [{ path = "/api", pool = "nope" }]
[pools.a]
idle_timeout = "5 minutes"
"#,
    );
    assert_eq!(
        e,
        [
            "test.toml:4:13: sites[0].bindings[0]: \"ftp://x:1\": scheme \"ftp\" is not http or https",
            "test.toml:5:35: sites[0].routes[0].pool: pool \"nope\" is not defined (pools: [\"a\"])",
            "test.toml:6:1: pools.a.command: a pool of kind \"process\" needs a command, like command = [\"python3\", \"app.py\"]",
            "test.toml:7:16: pools.a.idle_timeout: \"5 minutes\" has an unknown unit \" minutes\"; expected one of ms, s, m, h, d (e.g. \"90s\", \"20m\", \"1.5s\", \"500ms\")",
        ]
    );
}

#[test]
fn syntax_errors_have_positions() {
    let e = errors("[server\nstate_dir = \"x\"\n");
    assert!(e[0].starts_with("test.toml:1:"), "{e:?}");
    let e = errors("[server]\nstate_dir = \n");
    assert!(e[0].starts_with("test.toml:2:"), "{e:?}");
    let e = errors("[server]\nmax_history = 1\nmax_history = 2\n");
    assert!(e[0].starts_with("test.toml:3:") && e[0].contains("duplicate key"), "{e:?}");
    let e = errors("[server\nstate_dir = \"x\"\n[limits]\nmax_body = \n[cache\n");
    let lines: Vec<&str> = e.iter().filter_map(|e| e.split(':').nth(1)).collect();
    assert_eq!(lines, ["1", "4", "5"], "{e:#?}");
}

#[test]
fn unknown_keys_all_reported_with_one_suggestion() {
    let e = errors("[server]\nstate_dri = \"x\"\n[limits]\nqueue_length = 5\n[pools.a]\ncommand = [\"x\"]\nproceses = 2\ncolour = \"red\"\n");
    assert_eq!(
        e,
        [
            "test.toml:2:1: server.state_dri: unknown key; did you mean `state_dir`?",
            "test.toml:4:1: limits.queue_length: unknown key here; `queue_length` is a key of [pools.NAME]",
            "test.toml:7:1: pools.a.proceses: unknown key; did you mean `processes`?",
            "test.toml:8:1: pools.a.colour: unknown key; expected one of: kind, command, connect, protocol, socket, directory, env, user, group, start, processes, concurrency, queue_length, idle_timeout, startup_time_limit, shutdown_time_limit, response_timeout, request_buffering, recycle, health, rapid_fail, orphan, cpu, limits",
        ]
    );
    let e = one_error("[[site]]\nname = \"a\"\n");
    assert_eq!(e, "test.toml:1:3: site: unknown key; did you mean `sites`?");
}

#[test]
fn type_errors_all_reported_without_knock_on_errors() {
    let e = errors("[server]\nmax_history = \"ten\"\n[pools.a]\ncommand = \"app.py\"\nprocesses = -1\n[cache]\nenabled = \"yes\"\n");
    assert_eq!(
        e,
        [
            "test.toml:2:15: server.max_history: expected a whole number from 0 to 4294967295, found the string \"ten\"",
            "test.toml:4:11: pools.a.command: expected an array of strings, found the string \"app.py\"",
            "test.toml:5:13: pools.a.processes: expected a whole number from 0 to 4294967295, found the integer -1",
            "test.toml:7:11: cache.enabled: expected true or false, found the string \"yes\"",
        ]
    );
}

#[test]
fn missing_required_keys() {
    let e = one_error("[[sites]]\nname = \"s\"\n");
    assert_eq!(e, "test.toml:1:1: sites[0].bindings: missing key `bindings`: expected an array of strings");
    let e = one_error(&format!("{SITE}routes = [{{ pool = \"a\" }}]\n[pools.a]\ncommand = [\"x\"]\n"));
    assert!(e.starts_with("test.toml:4:11: sites[0].routes[0].path: missing key `path`"), "{e}");
}

#[test]
fn durations_and_sizes_may_be_a_bare_zero_but_no_other_bare_number() {
    let c = ok("[limits]\nmax_body = 0\n[cache]\nscavenge_after = 0\n[pools.a]\ncommand = [\"x\"]\nidle_timeout = 0\n");
    assert_eq!(c.limits.max_body, 0);
    assert_eq!(c.pools["a"].idle_timeout, Duration::ZERO);
    let e = one_error("[pools.a]\ncommand = [\"x\"]\nidle_timeout = 90\n");
    assert!(
        e.starts_with("test.toml:3:16: pools.a.idle_timeout: \"90\" has no unit; expected a number and a unit: ms, s"),
        "{e}"
    );
    // `max_body = 30` once meant 30 bytes; a size needs its unit, and the error lists them.
    let e = one_error("[limits]\nmax_body = 30\n");
    assert!(e.starts_with("test.toml:2:12: limits.max_body: \"30\" has no unit"), "{e}");
    assert!(e.contains("KiB, MiB, GiB, TiB") && e.contains("KB, MB, GB, TB") && e.contains("\"30B\""), "{e}");
    let e = one_error("[pools.a]\ncommand = [\"x\"]\nrecycle = { memory = \"512\" }\n");
    assert!(e.contains("pools.a.recycle.memory: \"512\" has no unit"), "{e}");
    let e = one_error(&format!("{SITE}max_bandwidth = 1000\n"));
    assert!(e.contains("sites[0].max_bandwidth: \"1000\" has no unit"), "{e}");
    // The integer-valued keys stay integers.
    let c = ok("[limits]\nmax_request_bytes = 4096\nmin_bytes_per_sec = 0\nmax_url_segments = 9\n");
    assert_eq!((c.limits.max_request_bytes, c.limits.max_url_segments), (4096, 9));
    // Decimals are taken when whole, and "30MB" is the documented power of 1000.
    let c = ok("[limits]\nmax_body = \"1.5MiB\"\nqueue_timeout = \"1.5s\"\n");
    assert_eq!((c.limits.max_body, c.limits.queue_timeout), (3 << 19, Duration::from_millis(1500)));
    assert_eq!(ok("[limits]\nmax_body = \"30MB\"\n").limits.max_body, 30_000_000);
    let e = one_error("[limits]\nmax_body = \"30 parsecs\"\n");
    assert!(e.starts_with("test.toml:2:12: limits.max_body: \"30 parsecs\" has an unknown unit"), "{e}");
}

#[test]
fn route_to_missing_pool_suggests_the_near_one() {
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/\", pool = \"ap\" }}]\n[pools.api]\ncommand = [\"x\"]\n"));
    assert_eq!(
        e,
        "test.toml:4:32: sites[0].routes[0].pool: pool \"ap\" is not defined (pools: [\"api\"]); did you mean \"api\"?"
    );
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/\", root = \"/tmp\", handlers = {{ \".php\" = \"php\" }} }}]\n"
    ));
    assert!(
        e.starts_with(
            "test.toml:4:62: sites[0].routes[0].handlers.\".php\": pool \"php\" is not defined; no pools are defined"
        ),
        "{e}"
    );
}

#[test]
fn hidden_segments_default_replace_and_validate() {
    let statics = |c: &Config| match &c.sites[0].routes[0].action {
        RouteAction::Static(s) => s.hidden_segments.clone(),
        other => panic!("not a static route: {other:?}"),
    };
    let c = ok(&format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\" }}]\n"));
    assert_eq!(statics(&c), DEFAULT_HIDDEN_SEGMENTS.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let c = ok(&format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\", hidden_segments = [\"secret\"] }}]\n"));
    assert_eq!(statics(&c), vec!["secret".to_string()], "the list replaces the default");
    let c = ok(&format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\", hidden_segments = [] }}]\n"));
    assert!(statics(&c).is_empty(), "an empty list hides nothing");
    let e = errors(&format!(
        "{SITE}routes = [{{ path = \"/\", root = \"/tmp\", hidden_segments = [\".git\", \"a/b\", \"\", \"..\"] }}]\n"
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with("test.toml:4:"), "{e:#?}");
    assert!(e[0].contains("sites[0].routes[0].hidden_segments[1]: \"a/b\" contains a path separator"), "{e:#?}");
    assert!(e[1].contains("hidden_segments[2]: \"\" is empty"), "{e:#?}");
    assert!(e[2].contains("hidden_segments[3]: \"..\" is always refused"), "{e:#?}");
    let w =
        warnings(&format!("{SITE}routes = [{{ path = \"/\", redirect = \"/x\", hidden_segments = [\".git\"] }}]\n"));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].contains("routes[0].hidden_segments: is only used by static routes"), "{w:#?}");
}

#[test]
fn compress_and_precompressed_default_on_and_belong_to_static_routes() {
    let flags = |c: &Config| match &c.sites[0].routes[0].action {
        RouteAction::Static(s) => (s.compress, s.precompressed),
        other => panic!("not a static route: {other:?}"),
    };
    assert_eq!(flags(&ok(&format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\" }}]\n"))), (true, true));
    let off =
        format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\", compress = false, precompressed = false }}]\n");
    assert_eq!(flags(&ok(&off)), (false, false));
    let e = errors(&format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\", compress = \"yes\" }}]\n"));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("test.toml:4:"), "{e:#?}");
    assert!(e[0].contains("sites[0].routes[0].compress"), "{e:#?}");
    let w = warnings(&format!(
        "{SITE}routes = [{{ path = \"/\", redirect = \"/x\", compress = true, precompressed = false }}]\n"
    ));
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(w[0].contains("routes[0].compress: is only used by static routes"), "{w:#?}");
    assert!(w[1].contains("routes[0].precompressed: is only used by static routes"), "{w:#?}");
}

#[test]
fn binding_claims() {
    let two = |a: &str, b: &str| {
        format!("[[sites]]\nname = \"a\"\nbindings = [\"{a}\"]\n[[sites]]\nname = \"b\"\nbindings = [\"{b}\"]\n")
    };
    let e = one_error(&two("http://*:8080", "http://*:8080"));
    assert!(
        e.starts_with(
            "test.toml:6:13: sites[1].bindings[0]: binding \"http://*:8080\" is already claimed by site \"a\""
        ),
        "{e}"
    );
    // Same port, different host names: name-based virtual hosting, fine.
    ok(&two("http://a.example:8080", "http://b.example:8080"));
    ok(&two("http://*:8080", "http://b.example:8080"));
    let e = one_error(&two("http://a.example:8080", "http://A.example:8080"));
    assert!(e.contains("already claimed by site \"a\""), "{e}");
    let e = one_error(&two("http://127.0.0.1:8080", "http://*:8080"));
    assert!(e.contains("which Linux cannot open beside the socket on 127.0.0.1:8080"), "{e}");
    ok(&two("http://127.0.0.1:8080", "http://127.0.0.2:8080"));
    let e = errors(&two("http://*:8080", "https://b.example:8080"));
    assert!(e.iter().any(|e| e.contains("one port serves one scheme")), "{e:#?}");
}

#[test]
fn bad_bindings_and_duplicate_names() {
    let e = errors("[[sites]]\nname = \"a\"\nbindings = [\"http://*\", \"http://*:99999\", \"http://a b:80\"]\n[[sites]]\nname = \"a\"\nbindings = []\n");
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(e[0].starts_with("test.toml:3:13: sites[0].bindings[0]: \"http://*\": no port"), "{e:#?}");
    assert!(e[1].contains("\"99999\" is not a port number"), "{e:#?}");
    assert!(e[2].contains("\"a b\" is not *, an IP address or a host name"), "{e:#?}");
    assert_eq!(e[3], "test.toml:5:8: sites[1].name: site name \"a\" is already used by sites[0]; names must be unique");
    assert!(e[4].starts_with("test.toml:6:12: sites[1].bindings: a site needs at least one binding"), "{e:#?}");
}

#[test]
fn pools_need_a_command_and_kinds_not_built_are_refused() {
    assert!(one_error("[pools.a]\n").contains("pools.a.command: a pool of kind \"process\" needs a command"));
    // A host pool runs the built-in worker: a command of its own is refused, not ignored.
    let e = one_error("[pools.a]\nkind = \"host\"\ncommand = [\"x\"]\n");
    assert!(e.starts_with("test.toml:3:11: pools.a.command: a \"host\" pool runs Bulkhead's built-in worker"), "{e}");
    let e = one_error("[pools.\"my.pool\"]\nkind = \"proces\"\ncommand = [\"x\"]\n");
    assert_eq!(e, "test.toml:2:8: pools.\"my.pool\".kind: \"proces\" is not allowed; expected one of \"process\", \"fastcgi\", \"host\"; did you mean \"process\"?");
    let e = one_error("[pools.a]\ncommand = [\"\"]\n");
    assert!(e.starts_with("test.toml:2:12: pools.a.command[0]: the program name is empty"), "{e}");
}

#[test]
fn fastcgi_pools_speak_fastcgi_one_request_per_process() {
    let c = ok("[pools.php]\nkind = \"fastcgi\"\ncommand = [\"php-cgi\"]\n");
    let p = &c.pools["php"];
    assert_eq!((p.protocol, p.concurrency), (Protocol::Fastcgi, 1));
    let c = ok("[pools.php]\nkind = \"fastcgi\"\ncommand = [\"php-cgi\"]\nconcurrency = 4\n");
    assert_eq!(c.pools["php"].concurrency, 4);
    assert_eq!(ok("[pools.a]\ncommand = [\"x\"]\n").pools["a"].concurrency, 100);
    let e = one_error("[pools.php]\nkind = \"fastcgi\"\ncommand = [\"php-cgi\"]\nprotocol = \"native\"\n");
    assert!(e.starts_with("test.toml:4:12: pools.php.protocol: a \"fastcgi\" pool speaks FastCGI"), "{e}");
    let e = one_error("[pools.php]\nkind = \"fastcgi\"\ncommand = [\"php-cgi\"]\nsocket = \"port\"\n");
    assert!(
        e.starts_with("test.toml:4:10: pools.php.socket: a \"fastcgi\" pool's processes share one unix socket"),
        "{e}"
    );
    let e = one_error("[pools.php]\nkind = \"fastcgi\"\n");
    assert!(e.contains("pools.php.command: a pool of kind \"fastcgi\" needs a command"), "{e}");
}

#[test]
fn a_fastcgi_pool_may_connect_to_a_server_it_does_not_run() {
    use bulkhead_proto::WorkerAddress;
    let c = ok("[pools.fpm]\nkind = \"fastcgi\"\nconnect = \"127.0.0.1:9000\"\nconcurrency = 8\n");
    let p = &c.pools["fpm"];
    assert_eq!(p.connect, Some(WorkerAddress::Tcp("127.0.0.1:9000".parse().expect("addr"))));
    assert_eq!((p.protocol, p.concurrency), (Protocol::Fastcgi, 8));
    let c = ok("[pools.fpm]\nkind = \"fastcgi\"\nconnect = \"/run/php/php8.2-fpm.sock\"\n");
    assert_eq!(c.pools["fpm"].connect, Some(WorkerAddress::Unix("/run/php/php8.2-fpm.sock".into())));
    // Keys about running processes mean nothing here: a warning each, by name, when written.
    let w = warnings("[pools.fpm]\nkind = \"fastcgi\"\nconnect = \"127.0.0.1:9000\"\nprocesses = 4\nrecycle = { every = \"1h\" }\nuser = \"www\"\n");
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(
        w[0].starts_with("test.toml:4:13: pools.fpm.processes: is not used: the pool connects to \"127.0.0.1:9000\""),
        "{w:#?}"
    );
    assert!(w.iter().any(|w| w.contains("pools.fpm.recycle: is not used")), "{w:#?}");
    assert!(w.iter().any(|w| w.contains("pools.fpm.user: is not used")), "{w:#?}");
    assert!(warnings("[pools.fpm]\nkind = \"fastcgi\"\nconnect = \"127.0.0.1:9000\"\n").is_empty());
    let e = one_error("[pools.a]\ncommand = [\"x\"]\nconnect = \"127.0.0.1:9000\"\n");
    assert!(e.starts_with("test.toml:3:11: pools.a.connect: only a kind = \"fastcgi\" pool connects"), "{e}");
    let e = one_error("[pools.a]\nkind = \"fastcgi\"\ncommand = [\"php-cgi\"]\nconnect = \"/x.sock\"\n");
    assert!(e.starts_with("test.toml:4:11: pools.a.connect: a fastcgi pool either runs `command` or connects"), "{e}");
    let e = one_error("[pools.a]\nkind = \"fastcgi\"\nconnect = \"localhost:9000\"\n");
    assert!(e.contains("pools.a.connect: \"localhost:9000\" is neither a unix socket path nor IP:PORT"), "{e}");
}

#[test]
fn https_needs_tls_and_tls_needs_https() {
    // An https binding without a certificate could only be served as plain HTTP: refused.
    let e = one_error("[[sites]]\nname = \"s\"\nbindings = [\"https://*:8443\"]\n");
    assert_eq!(
        e,
        "test.toml:3:13: sites[0].bindings[0]: \"https://*:8443\": an https binding needs the site's certificate: add tls = { cert = \"cert.pem\", key = \"key.pem\" } to this site"
    );
    let (cert, key) = (TempFile::new("cert.pem"), TempFile::new("key.pem"));
    let tls = format!("tls = {{ cert = {:?}, key = {:?} }}\n", cert.0, key.0);
    let https = "[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\", \"https://127.0.0.1:0\"]\n";
    let ok = format!("{https}{tls}redirect_http = true\nhsts = \"max-age=31536000; includeSubDomains\"\n");
    let config = parse(&ok, "test.toml", Path::new("/tmp")).expect("https with tls is valid");
    assert!(config.sites[0].redirect_http);
    assert_eq!(config.sites[0].hsts.as_deref(), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(config.sites[0].tls.as_ref().map(|t| t.cert.clone()), Some(cert.0.clone()));
    // A certificate, a redirect or HSTS on a site with no https binding would do nothing: refused.
    for (text, key) in [
        (format!("{SITE}{tls}"), "sites[0].tls: is used only by https bindings, but this site has no https binding"),
        (format!("{SITE}redirect_http = true\n"), "sites[0].redirect_http: redirects to the site's https binding, but"),
        (format!("{SITE}hsts = \"max-age=1\"\n"), "sites[0].hsts: is sent on https responses only, but"),
        (
            format!("{https}{tls}hsts = \"forever\"\n"),
            "sites[0].hsts: \"forever\" is not a Strict-Transport-Security value",
        ),
    ] {
        let e = one_error(&text);
        assert!(e.contains(key), "{e}");
    }
    // The files are only resolved (relative to the config's directory): the manager reads and
    // checks them, the listener (which parses the same text) must not even try.
    let text = format!("{https}tls = {{ cert = \"no/cert.pem\", key = \"/no/key.pem\" }}\n");
    let config = parse(&text, "test.toml", Path::new("/tmp")).expect("files are not opened here");
    let tls = config.sites[0].tls.clone().expect("tls");
    assert_eq!((tls.cert, tls.key), (PathBuf::from("/tmp/no/cert.pem"), PathBuf::from("/no/key.pem")));
}

const ACME_SITE: &str = "[[sites]]\nname = \"s\"\nbindings = [\"http://*:80\", \"https://shop.example:443\"]\n";

#[test]
fn acme_defaults_and_keys() {
    let c = ok("");
    assert_eq!(c.acme.directory, "https://acme-v02.api.letsencrypt.org/directory");
    assert_eq!((c.acme.ca_file.clone(), c.acme.renew_before), (None, Duration::from_secs(30 * 86_400)));
    let text = format!(
        "[acme]\ndirectory = \"https://127.0.0.1:14000/dir\"\nca_file = \"pebble.pem\"\nrenew_before = \"60d\"\n{ACME_SITE}tls = {{ acme = \"ops@shop.example\" }}\n"
    );
    let c = ok(&text);
    assert_eq!(c.acme.ca_file.as_deref(), Some(Path::new("/tmp/pebble.pem")), "relative to the config file");
    assert_eq!(c.acme.renew_before, Duration::from_secs(60 * 86_400));
    assert_eq!((c.sites[0].acme.as_deref(), c.sites[0].tls.is_none()), (Some("ops@shop.example"), true));
    assert!(warnings(&text).is_empty(), "{:#?}", warnings(&text));
    let e = one_error("[acme]\ndirectory = \"acme.example\"\n");
    assert!(e.starts_with("test.toml:2:13: acme.directory: \"acme.example\" is not an ACME directory URL"), "{e}");
    // Plain http only for a test server on this machine.
    assert_eq!(ok("[acme]\ndirectory = \"http://127.0.0.1:14000/dir\"\n").acme.directory, "http://127.0.0.1:14000/dir");
    let e = one_error("[acme]\ndirectory = \"http://acme.example/dir\"\n");
    assert!(e.contains("acme.directory: \"http://acme.example/dir\" is not an ACME directory URL"), "{e}");
    let e = one_error("[acme]\nrenew_before = \"0s\"\n");
    assert!(e.contains("acme.renew_before: must be more than 0s"), "{e}");
    let e = one_error("[acme]\nrenew_befor = \"1d\"\n");
    assert!(e.contains("acme.renew_befor: unknown key; did you mean `renew_before`?"), "{e}");
}

#[test]
fn acme_site_refusals() {
    let acme = "tls = { acme = \"ops@shop.example\" }\n";
    // Exactly one form of tls.
    let e =
        one_error(&format!("{ACME_SITE}tls = {{ acme = \"ops@shop.example\", cert = \"c.pem\", key = \"k.pem\" }}\n"));
    assert!(e.contains("sites[0].tls: takes either cert and key"), "{e}");
    let e = one_error(&format!("{ACME_SITE}tls = {{ cert = \"c.pem\" }}\n"));
    assert!(e.contains("sites[0].tls: has cert but no key"), "{e}");
    let e = one_error(&format!("{ACME_SITE}tls = {{}}\n"));
    assert!(e.contains("sites[0].tls: is empty"), "{e}");
    // Not an email.
    let e = one_error(&format!("{ACME_SITE}tls = {{ acme = \"ops\" }}\n"));
    assert_eq!(e, "test.toml:4:16: sites[0].tls.acme: \"ops\" is not an email address; the ACME account's contact is written like \"ops@shop.example\"");
    // `*` and IP https bindings name the binding.
    for binding in ["https://*:443", "https://127.0.0.1:443"] {
        let text = format!("[[sites]]\nname = \"s\"\nbindings = [\"http://*:80\", {binding:?}]\n{acme}");
        let e = one_error(&text);
        assert!(
            e.contains(&format!(
                "sites[0].bindings[1]: {binding:?}: a site with tls = {{ acme = … }} needs host names"
            )),
            "{e}"
        );
    }
    // No http binding: named by site.
    let e = one_error(&format!("[[sites]]\nname = \"shop\"\nbindings = [\"https://shop.example:443\"]\n{acme}"));
    assert!(e.contains("sites[0].tls.acme: site \"shop\" has no http:// binding"), "{e}");
    // An http binding not on port 80 works (a forwarded port, a test CA) but is warned about.
    let w = warnings(&format!(
        "[[sites]]\nname = \"s\"\nbindings = [\"http://*:8080\", \"https://shop.example:8443\"]\n{acme}"
    ));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].contains("sites[0].tls.acme: site \"s\" has no http:// binding on port 80; the CA connects to port 80"),
        "{w:#?}"
    );
}

#[test]
fn static_root_must_exist() {
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/\", root = \"/no/such/dir\" }}]\n"));
    assert_eq!(
        e,
        "test.toml:4:32: sites[0].routes[0].root: /no/such/dir does not exist; expected an existing directory"
    );
}

#[test]
fn pool_sizes_must_be_positive() {
    let e = errors("[pools.a]\ncommand = [\"x\"]\nprocesses = 0\nconcurrency = 0\nqueue_length = 0\n");
    assert_eq!(
        e,
        [
            "test.toml:3:13: pools.a.processes: must be at least 1",
            "test.toml:4:15: pools.a.concurrency: must be at least 1",
            "test.toml:5:16: pools.a.queue_length: must be at least 1",
        ]
    );
}

#[test]
fn health_timing_follows_iis() {
    // A timeout shorter than the interval is allowed, as IIS allowed it.
    ok("[pools.a]\ncommand = [\"x\"]\nhealth = { ping_interval = \"60s\", ping_timeout = \"5s\" }\n");
    // Interval 0 turns pinging off; then a zero timeout is fine too.
    ok("[pools.a]\ncommand = [\"x\"]\nhealth = { ping_interval = \"0s\", ping_timeout = \"0s\" }\n");
    let e = one_error("[pools.a]\ncommand = [\"x\"]\nhealth = { ping_timeout = \"0s\" }\n");
    assert!(
        e.starts_with("test.toml:3:27: pools.a.health.ping_timeout: must be more than 0s while pinging is on"),
        "{e}"
    );
    let e = one_error("[pools.a]\ncommand = [\"x\"]\nstartup_time_limit = \"0s\"\n");
    assert!(e.contains("pools.a.startup_time_limit: must be more than 0s"), "{e}");
}

#[test]
fn recycle_schedule_times() {
    let c = ok("[pools.a]\ncommand = [\"x\"]\nrecycle = { schedule = [\"23:59\", \"03:30\"] }\n");
    let times: Vec<(u8, u8)> = c.pools["a"].recycle.schedule.iter().map(|t| (t.hour, t.minute)).collect();
    assert_eq!(times, [(3, 30), (23, 59)]);
    let e =
        errors("[pools.a]\ncommand = [\"x\"]\nrecycle = { schedule = [\"03:30\", \"24:00\", \"3:5\", \"+1:00\"] }\n");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with("test.toml:3:34: pools.a.recycle.schedule[1]: \"24:00\" is not a local time"), "{e:#?}");
    assert!(e[1].starts_with("test.toml:3:43: pools.a.recycle.schedule[2]"), "{e:#?}");
    let w = warnings("[pools.a]\ncommand = [\"x\"]\nrecycle = { schedule = [\"03:30\", \"03:30\"] }\n");
    assert_eq!(w, ["test.toml:3:34: pools.a.recycle.schedule[1]: \"03:30\" is listed twice"]);
}

#[test]
fn cpu_rapid_fail_and_orphan() {
    let e = one_error("[pools.a]\ncommand = [\"x\"]\ncpu = { limit = 50, action = \"kill\" }\n");
    assert!(
        e.starts_with(
            "test.toml:3:30: pools.a.cpu.action: \"kill\" is not allowed; expected one of \"log\", \"recycle\""
        ),
        "{e}"
    );
    let e = one_error("[pools.a]\ncommand = [\"x\"]\ncpu = { limit = 50, reset_interval = \"0s\" }\n");
    assert!(e.contains("pools.a.cpu.reset_interval: must be more than 0s while cpu.limit is set"), "{e}");
    ok("[pools.a]\ncommand = [\"x\"]\ncpu = { limit = 0, reset_interval = \"0s\" }\n");
    let e = one_error("[pools.a]\ncommand = [\"x\"]\nrapid_fail = { max_crashes = 0 }\n");
    assert!(e.contains("pools.a.rapid_fail.max_crashes: must be at least 1 while rapid-fail protection is on"), "{e}");
    ok("[pools.a]\ncommand = [\"x\"]\nrapid_fail = { enabled = false, max_crashes = 0 }\n");
    // Orphaning with no action just leaves the worker for a debugger.
    assert_eq!(warnings("[pools.a]\ncommand = [\"x\"]\norphan = { enabled = true }\n"), Vec::<String>::new());
    let w = warnings("[pools.a]\ncommand = [\"x\"]\norphan = { action = [\"gcore\", \"%pid%\"] }\n");
    assert_eq!(w, ["test.toml:3:21: pools.a.orphan.action: is never run: orphan.enabled is false"]);
}

#[test]
fn host_pools_and_cgi_routes() {
    let host = "[pools.h]\nkind = \"host\"\n";
    let c = ok(&format!("{SITE}routes = [{{ path = \"/cgi-bin\", root = \"/tmp\", pool = \"h\", execute = \"cgi\", cgi_timeout = \"5s\" }}]\n{host}"));
    let p = &c.pools["h"];
    assert_eq!((p.kind, p.protocol, p.command.is_empty()), (PoolKind::Host, Protocol::Native, true));
    let RouteAction::Pool(r) = &c.sites[0].routes[0].action else { panic!("a pool route") };
    assert_eq!(
        (r.execute, r.root.as_deref(), r.cgi_timeout),
        (Some(Execute::Cgi), Some(std::path::Path::new("/tmp")), Duration::from_secs(5))
    );
    let c = ok(&format!(
        "{SITE}routes = [{{ path = \"/cgi-bin\", root = \"/tmp\", pool = \"h\", execute = \"cgi\" }}]\n{host}"
    ));
    let RouteAction::Pool(r) = &c.sites[0].routes[0].action else { panic!("a pool route") };
    assert_eq!(r.cgi_timeout, DEFAULT_CGI_TIMEOUT);
    // execute = "cgi" on a pool that is not a host pool: refused, at the key.
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/cgi\", root = \"/tmp\", pool = \"p\", execute = \"cgi\" }}]\n[pools.p]\ncommand = [\"x\"]\n"));
    assert!(e.starts_with("test.toml:4:65: sites[0].routes[0].execute: pool \"p\" is not a \"host\" pool"), "{e}");
    // Without root.
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/cgi\", pool = \"h\", execute = \"cgi\" }}]\n{host}"));
    assert!(e.contains("sites[0].routes[0]: execute = \"cgi\" needs root"), "{e}");
    // Lockdown: a host pool runs only what a route names with execute, never by extension.
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/x\", pool = \"h\" }}]\n{host}"));
    assert!(
        e.contains("sites[0].routes[0].pool: pool \"h\" is a \"host\" pool, which runs nothing a route does not name"),
        "{e}"
    );
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/\", root = \"/tmp\", handlers = {{ \".cgi\" = \"h\" }} }}]\n{host}"
    ));
    assert!(e.contains("sites[0].routes[0].handlers.\".cgi\": pool \"h\" is a \"host\" pool"), "{e}");
    // cgi_timeout: a duration, more than 0s, only with execute = "cgi".
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/c\", root = \"/tmp\", pool = \"h\", execute = \"cgi\", cgi_timeout = \"0s\" }}]\n{host}"));
    assert!(e.contains("routes[0].cgi_timeout: must be more than 0s"), "{e}");
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/c\", root = \"/tmp\", pool = \"h\", execute = \"cgi\", cgi_timeout = \"9\" }}]\n{host}"));
    assert!(e.contains("routes[0].cgi_timeout:"), "{e}");
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/a\", pool = \"p\", cgi_timeout = \"5s\" }}]\n[pools.p]\ncommand = [\"x\"]\n"
    ));
    assert!(e.contains("routes[0].cgi_timeout: is the time limit of a CGI program"), "{e}");
    // socket = "port" cannot work for the host.
    let e = one_error(&format!("{SITE}routes = []\n[pools.h]\nkind = \"host\"\nsocket = \"port\"\n"));
    assert!(e.contains("pools.h.socket: a \"host\" pool's workers take their socket on fd 3"), "{e}");
}

#[test]
fn extension_routes_need_a_host_pool_and_a_readable_library_and_filters_only_there() {
    let host = "[pools.h]\nkind = \"host\"\n";
    let (lib, auth, audit) = (TempFile::new("libext.so"), TempFile::new("libauth.so"), TempFile::new("libaudit.so"));
    let (lib_p, auth_p, audit_p) = (lib.0.display(), auth.0.display(), audit.0.display());
    let c = ok(&format!(
        "{SITE}routes = [{{ path = \"/ext\", pool = \"h\", execute = \"extension\", library = \"{lib_p}\", filters = [\"{auth_p}\", \"{audit_p}\"] }}]\n{host}"
    ));
    let RouteAction::Pool(r) = &c.sites[0].routes[0].action else { panic!("a pool route") };
    assert_eq!(
        (r.execute, r.library.as_deref(), r.root.as_deref()),
        (Some(Execute::Extension), Some(lib.0.as_path()), None)
    );
    assert_eq!(r.filters, [auth.0.clone(), audit.0.clone()], "filters keep their order");
    // Relative paths are relative to the config file's directory.
    let name = lib.0.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let c = ok(&format!(
        "{SITE}routes = [{{ path = \"/ext\", pool = \"h\", execute = \"extension\", library = \"{name}\" }}]\n{host}"
    ));
    let RouteAction::Pool(r) = &c.sites[0].routes[0].action else { panic!("a pool route") };
    assert_eq!(r.library.as_deref(), Some(lib.0.as_path()));

    // No library; a library that is not there; a pool that is not a host pool; a root.
    let e =
        one_error(&format!("{SITE}routes = [{{ path = \"/ext\", pool = \"h\", execute = \"extension\" }}]\n{host}"));
    assert!(e.contains("sites[0].routes[0]: execute = \"extension\" needs library"), "{e}");
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/ext\", pool = \"h\", execute = \"extension\", library = \"/nonexistent/lib.so\" }}]\n{host}"
    ));
    assert!(
        e.contains("routes[0].library: /nonexistent/lib.so")
            && e.contains("expected a readable extension library (.so)"),
        "{e}"
    );
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/ext\", pool = \"p\", execute = \"extension\", library = \"{lib_p}\" }}]\n[pools.p]\ncommand = [\"x\"]\n"
    ));
    assert!(e.starts_with("test.toml:4:50: sites[0].routes[0].execute: pool \"p\" is not a \"host\" pool"), "{e}");
    assert!(e.contains("loads extension libraries"), "{e}");
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/ext\", root = \"/tmp\", pool = \"h\", execute = \"extension\", library = \"{lib_p}\" }}]\n{host}"
    ));
    assert!(e.contains("routes[0].root: does not apply to an extension route"), "{e}");

    // filters: refused on any other route (nothing would run them), each readable, none twice.
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/c\", root = \"/tmp\", pool = \"h\", execute = \"cgi\", filters = [\"{auth_p}\"] }}]\n{host}"
    ));
    assert!(e.contains("routes[0].filters: runs only around an extension"), "{e}");
    let e = one_error(&format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\", filters = [\"{auth_p}\"] }}]\n"));
    assert!(e.contains("routes[0].filters: runs only around an extension"), "{e}");
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/ext\", pool = \"h\", execute = \"extension\", library = \"{lib_p}\", filters = [\"{auth_p}\", \"/nonexistent/f.so\"] }}]\n{host}"
    ));
    assert!(e.contains("routes[0].filters[1]: /nonexistent/f.so") && e.contains("a readable filter library"), "{e}");
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/ext\", pool = \"h\", execute = \"extension\", library = \"{lib_p}\", filters = [\"{auth_p}\", \"{auth_p}\"] }}]\n{host}"
    ));
    assert!(e.contains("routes[0].filters[1]:") && e.contains("is listed twice"), "{e}");
    let e = one_error(&format!(
        "{SITE}routes = [{{ path = \"/ext\", pool = \"h\", execute = \"extension\", library = \"{lib_p}\", filters = \"{auth_p}\" }}]\n{host}"
    ));
    assert!(e.contains("routes[0].filters:"), "a list, not a string: {e}");
}

#[test]
fn keys_not_acted_on_are_warned_about_by_name_when_written() {
    // Defaults the server does not act on are documented, not warned about.
    assert_eq!(warnings(SITE), Vec::<String>::new());
    let www = format!("{SITE}routes = [{{ path = \"/\", root = \"/tmp\" }}]\n");
    assert_eq!(warnings(&www), Vec::<String>::new());
    // Written values that match what the server does anyway are not warned about either.
    let same = format!("[limits]\nmin_bytes_per_sec = 0\n[cache]\nenabled = false\n{SITE}max_bandwidth = \"0\"\nlog = {{ format = \"w3c\", rollover = \"hourly\" }}\nroutes = [{{ path = \"/\", root = \"/tmp\", directory_browsing = false }}]\n");
    assert_eq!(warnings(&same), Vec::<String>::new());
    let text = format!(
        "[limits]\nmin_bytes_per_sec = 240\n[cache]\nmax_memory = \"64MiB\"\n{SITE}max_bandwidth = \"50MiB/s\"\nlog = {{ format = \"json\", rollover = \"size\" }}\nroutes = [{{ path = \"/\", root = \"/tmp\", directory_browsing = true }}]\n"
    );
    // The response cache is built: its table is taken without a warning.
    assert_eq!(warnings(&text), Vec::<String>::new());
    // A file with warnings is still valid, and check() hands them out as data.
    let big = text.replace("max_memory = \"64MiB\"", "max_memory = \"1KiB\"");
    let checked = check(&big, "test.toml", Path::new("/tmp")).expect("warnings do not refuse");
    assert_eq!(checked.warnings().len(), 1);
    assert_eq!(checked.warnings()[0].key, "cache.max_item");
}

#[test]
fn log_formats_and_size_rollover_are_taken() {
    let text = format!("{SITE}log = {{ format = \"ncsa\", rollover = \"size\", max_size = \"1KiB\" }}\n");
    let config = ok(&text);
    let log = &config.sites[0].log;
    assert_eq!((log.format, log.rollover, log.max_size), (LogFormat::Ncsa, Rollover::Size, 1024));
    assert_eq!(warnings(&text), Vec::<String>::new());
    let text = format!("{SITE}log = {{ format = \"json\", rollover = \"size\" }}\n");
    let log = ok(&text).sites.remove(0).log;
    assert_eq!((log.format, log.max_size), (LogFormat::Json, DEFAULT_LOG_MAX_SIZE));
}

#[test]
fn max_size_is_refused_without_size_rollover_and_when_zero() {
    let e = one_error(&format!("{SITE}log = {{ rollover = \"daily\", max_size = \"1MiB\" }}\n"));
    assert!(e.contains("sites[0].log.max_size: applies only with rollover = \"size\""), "{e}");
    let e = one_error(&format!("{SITE}log = {{ max_size = \"1MiB\" }}\n"));
    assert!(e.contains("sites[0].log.max_size: applies only with rollover = \"size\""), "{e}");
    let e = one_error(&format!("{SITE}log = {{ rollover = \"size\", max_size = \"0\" }}\n"));
    assert!(e.contains("sites[0].log.max_size: must be more than 0"), "{e}");
    let e = one_error(&format!("{SITE}log = {{ rollover = \"size\", max_size = \"12\" }}\n"));
    assert!(e.contains("sites[0].log.max_size:"), "{e}");
}

#[test]
fn a_file_without_a_site_is_refused_whole() {
    // An empty file (as an editor leaves it for a moment) was valid and, applied live,
    // removed every site.
    for (text, what) in [
        ("", "the file is empty"),
        ("\n# nothing yet\n", "the file is empty"),
        ("[server]\nmax_history = 3\n", "the file defines no site"),
    ] {
        let e = check(text, "b.toml", Path::new("/tmp")).expect_err("no site");
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.to_string().starts_with(&format!("b.toml: sites: {what}; a configuration needs at least one [[sites]]")),
            "{e}"
        );
    }
    // Errors elsewhere are reported as they are, not hidden behind the missing site.
    let e = check("[limits]\nmax_body = \"x\"\n", "b.toml", Path::new("/tmp")).expect_err("bad");
    assert!(e.to_string().contains("limits.max_body"), "{e}");
    assert!(check(SITE, "b.toml", Path::new("/tmp")).is_ok());
}

#[test]
fn socket_paths_must_fit() {
    let long = "x".repeat(100);
    let e = one_error(&format!("[pools.{long}]\ncommand = [\"x\"]\n"));
    assert!(e.contains("unix sockets allow 107"), "{e}");
    let e = one_error(&format!("[server]\nstate_dir = \"/{long}\"\n"));
    assert!(e.starts_with("test.toml:2:13: server.state_dir: the admin socket path"), "{e}");
}

#[test]
fn warnings_do_not_refuse_the_file() {
    let c = check(&format!("[cache]\nmax_item = \"1GiB\"\n{SITE}"), "test.toml", Path::new("/tmp")).expect("valid");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].to_string().contains("cache.max_item: is larger than cache.max_memory"));
}

#[test]
fn config_check_cases_from_the_cli_contract() {
    let bad = "[[sites]]\nname = \"site\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [ { path = \"/\", pool = \"api\" } ]\n\n[pools.api]\ncommand = [\"python3\", \"app.py\"]\nprocesses = 1\nidle_timeout = \"soon\"\n";
    assert_eq!(
        one_error(bad),
        "test.toml:9:16: pools.api.idle_timeout: \"soon\" is not a duration; expected a number and a unit: ms, s, m, h, d (e.g. \"90s\", \"20m\", \"1.5s\", \"500ms\")"
    );
    assert_eq!(
        one_error("[server]\nstate_dir = \"s\"\nlog_dir = [\n").split(':').take(2).collect::<Vec<_>>(),
        ["test.toml", "3"]
    );
    assert_eq!(
        one_error("[pools.api]\ncommand = [\"x\"]\nidel_timeout = \"5m\"\n"),
        "test.toml:3:1: pools.api.idel_timeout: unknown key; did you mean `idle_timeout`?"
    );
}

#[test]
fn admin_listen_must_be_loopback_with_a_token() {
    let ok = parse(
        "[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"0123456789abcdef\"\n",
        "test.toml",
        Path::new("/tmp"),
    )
    .unwrap();
    assert_eq!(ok.server.admin_listen, Some("127.0.0.1:0".parse().unwrap()));
    let e = errors("[server]\nadmin_listen = \"0.0.0.0:9090\"\nadmin_token = \"short\"\n");
    assert!(e[0].contains("test.toml:2:16: server.admin_listen: 0.0.0.0:9090 is not a loopback address"), "{e:?}");
    assert!(e[1].contains("server.admin_token: admin_listen is set"), "{e:?}");
    let e = errors("[server]\nadmin_listen = \"nine\"\nadmin_token = \"0123456789abcdef\"\n");
    assert!(e[0].contains("expected a loopback address and port"), "{e:?}");
}

#[test]
fn server_paths_are_read_leniently_from_a_broken_file() {
    let base = Path::new("/etc/bh");
    let at = |text: &str| server_paths_leniently(text, base);
    let broken = "[server]\nstate_dir = 'st' # here\nadmin_socket = \"a.sock\"\n[pools.x\ncommand = \n";
    assert_eq!(at(broken), (PathBuf::from("/etc/bh/st"), PathBuf::from("/etc/bh/st/a.sock")));
    assert_eq!(at(""), (PathBuf::from("/etc/bh/bulkhead-state"), PathBuf::from("/etc/bh/bulkhead-state/admin.sock")));
    let odd = "[server]\nstate_dir = 3\nadmin_socket = \"/run/bh.sock\"\nnot_a_key = 1\n";
    assert_eq!(at(odd), (PathBuf::from("/etc/bh/bulkhead-state"), PathBuf::from("/run/bh.sock")));
    // A state_dir under another table is not the server's.
    assert_eq!(at("[pools.a]\nstate_dir = \"x\"\n").0, PathBuf::from("/etc/bh/bulkhead-state"));
}

#[test]
fn http2_limits_have_defaults_and_ranges() {
    let l = ok("").limits.http2;
    assert_eq!(
        l,
        Http2Limits {
            max_concurrent_streams: 128,
            stream_window: 256 << 10,
            connection_window: 1 << 20,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
        }
    );
    let c = ok("[limits]\nhttp2_max_concurrent_streams = 8\nhttp2_stream_window = \"64KiB\"\n");
    assert_eq!((c.limits.http2.max_concurrent_streams, c.limits.http2.stream_window), (8, 65536));
    let e = one_error("[limits]\nhttp2_max_concurrent_streams = 0\n");
    assert!(e.contains("limits.http2_max_concurrent_streams: must be at least 1"), "{e}");
    let e = one_error("[limits]\nhttp2_connection_window = \"16KiB\"\n");
    assert!(e.contains("limits.http2_connection_window: \"16KiB\" is out of range: an HTTP/2 window is 65535"), "{e}");
    let e = one_error("[limits]\nhttp2_stream_window = \"2GiB\"\n");
    assert!(e.contains("limits.http2_stream_window: \"2GiB\" is out of range"), "{e}");
    let e = one_error("[limits]\nhttp2_stream_window = 1000\n");
    assert!(e.contains("limits.http2_stream_window: \"1000\" has no unit"), "{e}");
    let e = one_error("[limits]\nhttp2_max_streams = 9\n");
    assert!(e.contains("http2_max_streams"), "{e}");
}

#[test]
fn binding_host_names_are_dns_names_and_a_trailing_dot_is_the_same_host() {
    let name = |t: &str| parse_binding(t).map(|b| b.host);
    assert_eq!(name("http://Shop.Example.:80"), Ok(BindingHost::Name("shop.example".into())));
    assert_eq!(name("http://_acme.shop.example:80"), Ok(BindingHost::Name("_acme.shop.example".into())));
    for bad in [
        "http://-:80",
        "http://...:80",
        "http://a..b:80",
        "http://-a.example:80",
        "http://a-.example:80",
        "http://.:80",
    ] {
        assert!(parse_binding(bad).is_err(), "{bad} was accepted");
    }
    let long = format!("http://{}.example:80", "a".repeat(64));
    assert!(parse_binding(&long).is_err(), "a 64-character label was accepted");
}
