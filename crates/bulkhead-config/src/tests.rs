use super::*;
use std::time::Duration;

fn ok(text: &str) -> Config {
    match parse(text, "test.toml", Path::new("/tmp")) {
        Ok(c) => c,
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

fn errors(text: &str) -> String {
    parse(text, "test.toml", Path::new("/tmp")).expect_err("expected errors").to_string()
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
fn every_error_is_reported_with_its_key() {
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
    assert!(e.contains("sites[0].bindings[0]"), "{e}");
    assert!(e.contains("pool \"nope\" is not defined"), "{e}");
    assert!(e.contains("pools.a.idle_timeout"), "{e}");
    assert!(e.contains("pools.a.command"), "{e}");
    assert!(e.contains("test.toml:7:1"), "{e}");
}

#[test]
fn syntax_and_unknown_keys_have_positions() {
    let e = errors("[server]\nstate_dri = \"x\"\n");
    assert!(e.starts_with("test.toml:2:1"), "{e}");
    assert!(e.contains("state_dri"), "{e}");
    assert!(errors("[server\n").starts_with("test.toml:1:"));
}

#[test]
fn duplicate_binding_claims_refused() {
    let e = errors(
        r#"
[[sites]]
name = "a"
bindings = ["http://*:8080"]
[[sites]]
name = "b"
bindings = ["http://*:8080"]
"#,
    );
    assert!(e.contains("already claimed by site \"a\""), "{e}");
}

#[test]
fn static_root_must_exist() {
    let e = errors(
        "[[sites]]\nname = \"a\"\nbindings = [\"http://*:1\"]\nroutes = [{ path = \"/\", root = \"/no/such/dir\" }]\n",
    );
    assert!(e.contains("is not a directory"), "{e}");
}
