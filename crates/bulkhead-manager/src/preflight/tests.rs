//! Unit tests of the preflight on parsed configs; `Host` says root or not, so every case runs
//! as any user (the checks only read the password database and file metadata).

use super::*;

const SH: &str = "/bin/sh";

fn host(as_root: bool) -> Host<'static> {
    Host {
        as_root,
        allow_root_workers: false,
        inherited_path: Some(OsStr::new("/usr/local/bin:/usr/bin:/bin")),
        self_exe: Path::new("/opt/bulkhead/bulkhead"),
    }
}

/// Appended to every test config (after the lines the tests locate), so it has a site.
const SITE: &str =
    "\n[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [ { path = \"/\", root = \"/tmp\" } ]\n";

fn findings(text: &str, host: &Host<'_>) -> (Vec<String>, Vec<String>) {
    let text = &format!("{text}{SITE}");
    let config = bulkhead_config::parse(text, "t.toml", Path::new("/tmp")).expect("valid config");
    let f = check(&config, text, "t.toml", host);
    (f.errors.iter().map(ToString::to_string).collect(), f.warnings.iter().map(ToString::to_string).collect())
}

#[test]
fn a_missing_command_is_an_error_at_its_line() {
    let text = "[pools.app]\nuser = \"root\"\ncommand = [\"no-such-command-bulkhead\", \"x\"]\n";
    for as_root in [false, true] {
        let (errors, _) = findings(text, &host(as_root));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("t.toml:3:11: pools.app.command: pool \"app\": command \"no-such-command-bulkhead\" is not found on the PATH the workers get (/usr/local/bin:/usr/bin:/bin)"),
            "{}",
            errors[0]
        );
    }
    // The pool's own PATH is the one searched.
    let text = "[pools.app]\nuser = \"root\"\ncommand = [\"sh\"]\nenv = { PATH = \"/nonexistent-bulkhead\" }\n";
    let (errors, _) = findings(text, &host(true));
    assert!(errors.len() == 1 && errors[0].contains("(/nonexistent-bulkhead)"), "{errors:?}");
}

#[test]
fn as_root_a_pool_without_user_or_with_unknown_names_is_refused() {
    let text = format!("[pools.app]\ncommand = [{SH:?}]\n");
    let (errors, _) = findings(&text, &host(true));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("t.toml:1:1: pools.app: pool \"app\": refusing to run its workers as root"),
        "{errors:?}"
    );
    let allowed = Host { allow_root_workers: true, ..host(true) };
    assert_eq!(findings(&text, &allowed), (vec![], vec![]));

    let text = format!("[pools.app]\ncommand = [{SH:?}]\nuser = \"no-such-user-bulkhead\"\n");
    let (errors, _) = findings(&text, &host(true));
    assert_eq!(errors, ["t.toml:3:8: pools.app.user: pool \"app\": its workers cannot run: user \"no-such-user-bulkhead\" does not exist"]);

    let text = format!("[pools.app]\ncommand = [{SH:?}]\nuser = \"root\"\ngroup = \"no-such-group-bulkhead\"\n");
    let (errors, _) = findings(&text, &host(true));
    assert_eq!(errors, ["t.toml:4:9: pools.app.group: pool \"app\": its workers cannot run: group \"no-such-group-bulkhead\" does not exist"]);

    let text = "[server]\nlistener_user = \"no-such-user-bulkhead\"\n";
    let (errors, _) = findings(text, &host(true));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("t.toml:2:17: server.listener_user: the listener cannot run"), "{errors:?}");
}

#[test]
fn not_root_user_and_group_are_warned_about_never_dropped_silently() {
    let text = format!("[pools.app]\ncommand = [{SH:?}]\nuser = \"no-such-user-bulkhead\"\n");
    let (errors, warnings) = findings(&text, &host(false));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("t.toml:3:8: pools.app.user: pool \"app\": user = \"no-such-user-bulkhead\" (user \"no-such-user-bulkhead\" does not exist) applies only when the server starts as root"), "{warnings:?}");
    // Naming the user that runs the server is not worth a warning.
    let me = Account::current().name;
    let text = format!("[pools.app]\ncommand = [{SH:?}]\nuser = {me:?}\n");
    assert_eq!(findings(&text, &host(false)), (vec![], vec![]));
}

#[test]
fn the_bulkhead_binary_itself_is_not_looked_up() {
    let text = "[pools.demo]\ncommand = [\"bulkhead\", \"demo-app\"]\nuser = \"root\"\n";
    assert_eq!(findings(text, &host(true)), (vec![], vec![]));
}

#[test]
fn validate_keeps_config_errors_first_and_adds_preflight_ones() {
    let bad = "[pools.app]\ncommand = [\"sh\"]\nidle_timeout = \"soon\"\n";
    let bad = &format!("{bad}{SITE}");
    let e = validate(bad, "t.toml", Path::new("/tmp"), &host(false)).unwrap_err();
    assert!(e.0.len() == 1 && e.0[0].key == "pools.app.idle_timeout", "{e}");
    let missing = "[pools.app]\ncommand = [\"no-such-command-bulkhead\"]\n";
    let missing = &format!("{missing}{SITE}");
    let e = validate(missing, "t.toml", Path::new("/tmp"), &host(false)).unwrap_err();
    assert!(e.0.len() == 1 && e.0[0].key == "pools.app.command", "{e}");
    let good = format!("[pools.app]\ncommand = [\"sh\"]\n{SITE}");
    assert!(validate(&good, "t.toml", Path::new("/tmp"), &host(false)).is_ok());
}
