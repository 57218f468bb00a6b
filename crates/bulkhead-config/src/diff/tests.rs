use std::path::Path;

use super::*;

const BASE: &str = r#"
[[sites]]
name = "shop"
bindings = ["http://127.0.0.1:8080"]
routes = [{ path = "/", root = "/tmp" }, { path = "/api", pool = "api" }]

[pools.api]
command = ["app"]
"#;

fn config(text: &str) -> Config {
    match crate::parse(text, "test.toml", Path::new("/tmp")) {
        Ok(c) => c,
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

fn changes(old: &str, new: &str) -> Vec<Change> {
    diff(&config(old), &config(new))
}

#[test]
fn start_up_is_a_diff_from_empty() {
    let got = diff(&Config::empty(), &config(BASE));
    let want = vec![
        Change::ServerChanged {
            fields: vec!["state_dir", "admin_socket", "log_dir", "listener_user", "max_history"],
            restart_needed: false,
        },
        Change::LimitsChanged,
        Change::CacheChanged,
        Change::PoolAdded { name: "api".into() },
        Change::BindingAdded {
            key: "127.0.0.1:8080".into(),
            addr: "127.0.0.1:8080".parse().expect("address"),
            scheme: Scheme::Http,
        },
        Change::SiteAdded { name: "shop".into() },
    ];
    assert_eq!(got, want);
}

#[test]
fn no_change_no_changes() {
    assert_eq!(changes(BASE, BASE), []);
    assert_eq!(diff(&Config::empty(), &Config::empty()), []);
}

#[test]
fn bindings_by_socket() {
    // A host-name binding on a new port needs a new socket on 0.0.0.0.
    let more = BASE.replace(r#"["http://127.0.0.1:8080"]"#, r#"["http://127.0.0.1:8080", "http://shop.example:9090"]"#);
    let got = changes(BASE, &more);
    assert_eq!(
        got,
        [
            Change::BindingAdded {
                key: "0.0.0.0:9090".into(),
                addr: "0.0.0.0:9090".parse().expect("address"),
                scheme: Scheme::Http
            },
            Change::SiteChanged { name: "shop".into() },
        ]
    );
    assert_eq!(
        changes(&more, BASE),
        [Change::SiteChanged { name: "shop".into() }, Change::BindingRemoved { key: "0.0.0.0:9090".into() }]
    );
    // Another host name on a socket already open: the site changes, no socket does.
    let two = more.replace(r#""http://shop.example:9090""#, r#""http://shop.example:9090", "http://www.example:9090""#);
    assert_eq!(changes(&more, &two), [Change::SiteChanged { name: "shop".into() }]);
}

#[test]
fn sites_added_changed_removed() {
    let with_blog = format!("{BASE}\n[[sites]]\nname = \"blog\"\nbindings = [\"http://127.0.0.1:8081\"]\n");
    let got = changes(BASE, &with_blog);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(&got[0], Change::BindingAdded { key, .. } if key == "127.0.0.1:8081"));
    assert_eq!(got[1], Change::SiteAdded { name: "blog".into() });
    assert_eq!(
        changes(&with_blog, BASE),
        [Change::SiteRemoved { name: "blog".into() }, Change::BindingRemoved { key: "127.0.0.1:8081".into() }]
    );
    let moved = BASE.replace(r#"path = "/api""#, r#"path = "/v2""#);
    assert_eq!(changes(BASE, &moved), [Change::SiteChanged { name: "shop".into() }]);
}

#[test]
fn pool_changes_recycle_only_when_a_worker_would_see_them() {
    let command = BASE.replace(r#"command = ["app"]"#, r#"command = ["app", "--v2"]"#);
    assert_eq!(
        changes(BASE, &command),
        [Change::PoolChanged { name: "api".into(), recycle_needed: true, fields: vec!["command"] }]
    );
    let env = format!("{BASE}env = {{ A = \"1\" }}\n");
    assert_eq!(
        changes(BASE, &env),
        [Change::PoolChanged { name: "api".into(), recycle_needed: true, fields: vec!["env"] }]
    );
    let queue = format!("{BASE}queue_length = 10\nprocesses = 2\n");
    assert_eq!(
        changes(BASE, &queue),
        [Change::PoolChanged { name: "api".into(), recycle_needed: false, fields: vec!["processes", "queue_length"] }]
    );
}

#[test]
fn pools_added_before_sites_and_removed_after() {
    let two = BASE.replace(r#"pool = "api""#, r#"pool = "api2""#) + "[pools.api2]\ncommand = [\"app2\"]\n";
    let got = changes(BASE, &two);
    assert_eq!(got, [Change::PoolAdded { name: "api2".into() }, Change::SiteChanged { name: "shop".into() },]);
    let only_api2 = BASE.replace(r#"pool = "api""#, r#"pool = "api2""#).replace("[pools.api]", "[pools.api2]");
    assert_eq!(
        changes(BASE, &only_api2),
        [
            Change::PoolAdded { name: "api2".into() },
            Change::SiteChanged { name: "shop".into() },
            Change::PoolRemoved { name: "api".into() },
        ]
    );
}

#[test]
fn limits_and_cache() {
    let limits = format!("[limits]\nmax_body = \"1MiB\"\n{BASE}");
    assert_eq!(changes(BASE, &limits), [Change::LimitsChanged]);
    let cache = format!("[cache]\nenabled = false\n{BASE}");
    assert_eq!(changes(BASE, &cache), [Change::CacheChanged]);
    let acme = format!("{BASE}\n[acme]\nrenew_before = \"60d\"\n");
    assert_eq!(changes(BASE, &acme), [Change::AcmeChanged]);
}

#[test]
fn server_changes_say_when_a_restart_is_needed() {
    let state = format!("[server]\nstate_dir = \"/tmp/other-state\"\n{BASE}");
    assert_eq!(
        changes(BASE, &state),
        [Change::ServerChanged { fields: vec!["state_dir", "admin_socket", "log_dir"], restart_needed: true }]
    );
    let history = format!("[server]\nmax_history = 3\n{BASE}");
    assert_eq!(changes(BASE, &history), [Change::ServerChanged { fields: vec!["max_history"], restart_needed: false }]);
}
