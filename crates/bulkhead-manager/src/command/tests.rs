//! Unit tests of command resolution on real files in a temp dir. Access is computed for an
//! account, so any user can test "another user": an account whose uid owns nothing here.

use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

/// A temp dir removed on drop (modes restored first so removal works as any user).
struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("bulkhead-command-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Dir(path)
    }

    fn mkdir(&self, rel: &str, mode: u32) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn file(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.0.join(rel);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        fn open_up(p: &Path) {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
            if let Ok(entries) = fs::read_dir(p) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        open_up(&e.path());
                    }
                }
            }
        }
        open_up(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The test process itself.
fn me() -> Account {
    Account::current()
}

/// Someone who owns nothing here and is in none of its groups.
fn stranger() -> Account {
    let me = me();
    Account { name: "stranger".into(), uid: me.uid + 54321, gid: me.gid + 54321, groups: vec![] }
}

fn path_of(dirs: &[&Path]) -> OsString {
    std::env::join_paths(dirs).unwrap()
}

#[test]
fn a_bare_name_skips_a_path_entry_the_user_cannot_reach() {
    let d = Dir::new("skip");
    // root's pyenv shims: a private home, then a system directory.
    d.mkdir("home", 0o700);
    let shims = d.mkdir("home/shims", 0o755);
    d.file("home/shims/tool", "#!/bin/sh\n", 0o755);
    let system = d.mkdir("bin", 0o755);
    d.file("bin/tool", "#!/bin/sh\n", 0o755);
    let path = path_of(&[&shims, &system]);
    assert_eq!(resolve("tool", &path, &d.0, &me()).unwrap(), shims.join("tool"), "its owner gets the first");
    assert_eq!(resolve("tool", &path, &d.0, &stranger()).unwrap(), system.join("tool"), "others get the next");
}

#[test]
fn a_command_no_candidate_lets_run_names_the_file_the_user_and_the_directory_in_the_way() {
    let d = Dir::new("denied");
    let home = d.mkdir("home", 0o700);
    let shims = d.mkdir("home/shims", 0o755);
    d.file("home/shims/python3", "#!/bin/sh\n", 0o755);
    let e = resolve("python3", &path_of(&[&shims]), &d.0, &stranger()).unwrap_err();
    let CommandError::Denied { ref file, ref user, ref why, .. } = e else { panic!("{e:?}") };
    assert_eq!(file, &shims.join("python3"));
    assert_eq!(user, "stranger");
    assert!(why.starts_with(&format!("{} is mode 0700 (owner ", home.display())), "{why}");
    let text = e.to_string();
    assert!(text.starts_with("command \"python3\" resolved to ") && text.contains("which user \"stranger\""), "{text}");
}

#[test]
fn a_name_on_no_path_directory_is_not_found_with_the_path_searched() {
    let d = Dir::new("notfound");
    let bin = d.mkdir("bin", 0o755);
    let path = path_of(&[&bin]);
    let e = resolve("no-such-tool", &path, &d.0, &me()).unwrap_err();
    assert_eq!(e, CommandError::NotFound { program: "no-such-tool".into(), path: bin.display().to_string() });
    let e = resolve(&format!("{}/nothing/here", d.0.display()), &path, &d.0, &me()).unwrap_err();
    assert!(matches!(&e, CommandError::Missing { why, .. } if why.ends_with("nothing does not exist")), "{e:?}");
}

#[test]
fn execute_bits_follow_owner_then_group_then_other() {
    let d = Dir::new("bits");
    let me = me();
    let file = d.file("owner-only", "x", 0o700);
    let in_group = Account { name: "member".into(), uid: me.uid + 1, gid: me.gid + 1, groups: vec![me.gid] };
    let program = file.display().to_string();
    assert!(resolve(&program, OsStr::new(""), &d.0, &me).is_ok());
    assert!(resolve(&program, OsStr::new(""), &d.0, &in_group).is_err(), "0700: not for the group");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o750)).unwrap();
    assert!(resolve(&program, OsStr::new(""), &d.0, &in_group).is_ok(), "a supplementary group counts");
    assert!(resolve(&program, OsStr::new(""), &d.0, &stranger()).is_err());
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let e = resolve(&program, OsStr::new(""), &d.0, &me).unwrap_err();
    assert!(e.to_string().contains("is mode 0644 (owner ") && e.to_string().contains("no execute permission"), "{e}");
    // Root needs one execute bit somewhere, and a file, not a directory.
    assert!(resolve(&program, OsStr::new(""), &d.0, &Account::root()).is_err());
    fs::set_permissions(&file, fs::Permissions::from_mode(0o601)).unwrap();
    assert!(resolve(&program, OsStr::new(""), &d.0, &Account::root()).is_ok());
    let e = resolve(&d.0.display().to_string(), OsStr::new(""), &d.0, &Account::root()).unwrap_err();
    assert!(e.to_string().ends_with("is a directory"), "{e}");
}

#[test]
fn symbolic_links_are_followed_into_the_directories_they_point_at() {
    let d = Dir::new("links");
    let private = d.mkdir("private", 0o700);
    d.file("private/real", "x", 0o755);
    let public = d.mkdir("public", 0o755);
    symlink(private.join("real"), public.join("tool")).unwrap();
    symlink("../public/tool", public.join("relative")).unwrap();
    let path = path_of(&[&public]);
    assert_eq!(resolve("tool", &path, &d.0, &me()).unwrap(), public.join("tool"), "the link, as execvp runs it");
    for name in ["tool", "relative"] {
        let e = resolve(name, &path, &d.0, &stranger()).unwrap_err();
        assert!(e.to_string().contains(&format!("{} is mode 0700", private.display())), "{name}: {e}");
    }
}

#[test]
fn a_script_needs_its_interpreter_and_read_permission() {
    let d = Dir::new("script");
    let script = d.file("script", "#!/no/such/interpreter -x\necho hi\n", 0o755);
    let e = resolve(&script.display().to_string(), OsStr::new(""), &d.0, &me()).unwrap_err();
    assert!(e.to_string().contains("its interpreter /no/such/interpreter (from its #! line) cannot run"), "{e}");
    let sh = d.file("script", "#!/bin/sh\necho hi\n", 0o711);
    assert!(resolve(&sh.display().to_string(), OsStr::new(""), &d.0, &Account::root()).is_ok());
    let e = resolve(&sh.display().to_string(), OsStr::new(""), &d.0, &stranger()).unwrap_err();
    assert!(e.to_string().contains("no read permission"), "{e}");
}

#[test]
fn a_relative_program_is_checked_from_the_working_directory_only() {
    let d = Dir::new("relative");
    // The worker changes into its directory before dropping privileges, so a private parent
    // does not stop it; the directory itself and what is below it must let it through.
    d.mkdir("private", 0o700);
    let app = d.mkdir("private/app", 0o755);
    d.file("private/app/run", "x", 0o755);
    assert_eq!(resolve("./run", OsStr::new(""), &app, &stranger()).unwrap(), PathBuf::from("./run"));
    fs::set_permissions(&app, fs::Permissions::from_mode(0o700)).unwrap();
    let e = resolve("./run", OsStr::new(""), &app, &stranger()).unwrap_err();
    assert!(e.to_string().contains(&format!("{} is mode 0700", app.display())), "{e}");
}

#[test]
fn the_workers_path_is_the_pools_then_the_inherited_then_the_default() {
    let text = "[pools.p]\ncommand = [\"x\"]\n";
    let mut pool = bulkhead_config::parse(text, "t", Path::new("/")).unwrap().pools.remove("p").unwrap();
    assert_eq!(worker_path(&pool, None), OsStr::new(DEFAULT_PATH));
    assert_eq!(worker_path(&pool, Some(OsStr::new("/inherited"))), OsStr::new("/inherited"));
    pool.env.insert("PATH".into(), "/pool/bin".into());
    assert_eq!(worker_path(&pool, Some(OsStr::new("/inherited"))), OsStr::new("/pool/bin"));
}

#[test]
fn bare_bulkhead_is_this_executable() {
    let text = "[pools.p]\ncommand = [\"bulkhead\", \"demo-app\"]\n";
    let mut pool = bulkhead_config::parse(text, "t", Path::new("/")).unwrap().pools.remove("p").unwrap();
    let exe = Path::new("/opt/bulkhead/bin/bulkhead");
    let (program, argv) = command_line(&pool, exe).unwrap();
    assert_eq!((program.as_str(), argv), ("/opt/bulkhead/bin/bulkhead", vec!["bulkhead".into(), "demo-app".into()]));
    pool.command.clear();
    assert!(command_line(&pool, exe).is_none());
    pool.kind = PoolKind::Host;
    assert_eq!(command_line(&pool, exe).map(|(_, argv)| argv.len()), Some(2), "host: bulkhead worker");
}
