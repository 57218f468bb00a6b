//! What `/proc` says about workers: memory (resident and virtual), CPU time, whether anyone
//! is still connected to a worker's socket, and whether a worker is on its way out.
//!
//! Called by the supervisor: [`sample_groups`] once a second (on a blocking-pool thread, never
//! on the supervisor task) for the memory and CPU recycling triggers and status displays,
//! [`open_connections`] while a plain HTTP worker drains, and [`is_exiting`] by the
//! reachability check behind `WorkerUnreachable`. Parsing is separated from reading so
//! it is tested on fixed text. It only reads `/proc`; it never signals or changes anything.
//!
//! **Whole process group.** A worker's figures are the sums over every process in its process
//! group (the worker is its group's leader; a pre-forking server such as gunicorn keeps its
//! children there), because a limit on the master alone would never see a leak in its
//! children. A child that leaves the group (`setsid`) is not counted.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use bulkhead_proto::WorkerAddress;

/// One process group's resource use at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Resident set size in bytes (like `VmRSS`), summed over the group.
    pub rss: u64,
    /// Virtual memory size in bytes (like `VmSize`), summed over the group.
    pub vsz: u64,
    /// User + system CPU time in clock ticks, summed over the group's live processes.
    pub cpu_ticks: u64,
    /// Processes counted.
    pub processes: u32,
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pgrp: i32,
    pub utime: u64,
    pub stime: u64,
    /// Bytes.
    pub vsize: u64,
    /// Pages.
    pub rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        pgrp: f.get(5 - 3)?.parse().ok()?,
        utime: num(14)?,
        stime: num(15)?,
        vsize: num(23)?,
        rss_pages: f.get(24 - 3)?.parse::<i64>().ok()?.max(0) as u64,
    })
}

/// `PF_EXITING` in `/proc/<pid>/stat`'s flags: the process is in `do_exit`.
const PF_EXITING: u64 = 0x4;
/// SIGKILL's bit in the pending-signal masks of `/proc/<pid>/status`.
const SIGKILL_PENDING: u64 = 1 << (libc::SIGKILL - 1);

/// Whether process `pid` is dying or dead: gone from `/proc`, a zombie, already in `do_exit`,
/// or with a SIGKILL pending (a `/proc` it may not read says nothing: not exiting). Such a process can still take connections for a moment — the
/// kernel releases its listening socket after its connected ones — so a successful connect does
/// not prove it alive; its exit is on the way.
pub fn is_exiting(pid: i32) -> bool {
    let stat = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) => return e.kind() == std::io::ErrorKind::NotFound,
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    exiting(&stat, &status)
}

/// [`is_exiting`] on the text of `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn exiting(stat: &str, status: &str) -> bool {
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 1..)) else { return true };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), f[6] field 9 (flags).
    let dead = matches!(f.first(), Some(&("Z" | "X" | "x")));
    let in_exit = f.get(6).and_then(|v| v.parse::<u64>().ok()).is_some_and(|flags| flags & PF_EXITING != 0);
    let killed = status.lines().any(|line| {
        let mask = line.strip_prefix("SigPnd:").or_else(|| line.strip_prefix("ShdPnd:"));
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok()).is_some_and(|m| m & SIGKILL_PENDING != 0)
    });
    dead || in_exit || killed
}

/// Bytes per page and clock ticks per second of this machine.
pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |v| v as u64)
}

/// Clock ticks per second (`CLK_TCK`), the unit of [`Usage::cpu_ticks`].
pub fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100, |v| v.max(1) as u64)
}

/// Resource use of each of the given process groups (by leader pid), from one scan of `/proc`.
/// A group with no live process is absent from the answer.
pub fn sample_groups(leaders: &[i32]) -> HashMap<i32, Usage> {
    let page = page_size();
    let mut out: HashMap<i32, Usage> = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(text) = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) else { continue };
        let Some(stat) = parse_stat(&text) else { continue };
        if !leaders.contains(&stat.pgrp) {
            continue;
        }
        let u = out.entry(stat.pgrp).or_default();
        u.rss += stat.rss_pages * page;
        u.vsz += stat.vsize;
        u.cpu_ticks += stat.utime + stat.stime;
        u.processes += 1;
    }
    out
}

/// How many connections are open to a worker's socket right now, counted on the worker's side:
/// accepted unix sockets carry the listening socket's path in `/proc/net/unix`; accepted TCP
/// connections have the worker's port as their local port in `/proc/net/tcp{,6}`.
///
/// The listener closes its idle connections to a draining worker and does not reuse the others,
/// so this falls to zero when the worker's in-flight requests are done. `None` when `/proc`
/// cannot be read.
pub fn open_connections(address: &WorkerAddress) -> Option<usize> {
    match address {
        WorkerAddress::Unix(path) => {
            let text = fs::read_to_string("/proc/net/unix").ok()?;
            Some(count_unix(&text, &path.to_string_lossy()))
        }
        WorkerAddress::Tcp(addr) => {
            let mut n = 0;
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                if let Ok(text) = fs::read_to_string(table) {
                    n += count_tcp(&text, addr.port());
                }
            }
            Some(n)
        }
    }
}

/// Connected (state `03`) entries of `/proc/net/unix` bound to `path`.
pub fn count_unix(text: &str, path: &str) -> usize {
    text.lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path
            f.len() >= 8 && f[5] == "03" && f[7..].join(" ") == path
        })
        .count()
}

/// Established (state `01`) entries of `/proc/net/tcp` whose local port is `port`.
pub fn count_tcp(text: &str, port: u16) -> usize {
    let want = format!("{port:04X}");
    text.lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 3 && f[3] == "01" && f[1].rsplit(':').next() == Some(want.as_str())
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4121 (my (odd) app) S 1 4121 4121 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 \
                    12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s, Stat { pgrp: 4121, utime: 250, stime: 50, vsize: 104_857_600, rss_pages: 2560 });
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn a_zombie_a_process_in_exit_and_a_pending_sigkill_are_exiting() {
        let alive = "4121 (app) S 1 4121 4121 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0";
        let status = "Name:\tapp\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n";
        assert!(!exiting(alive, status));
        assert!(exiting(&alive.replace(") S", ") Z"), status), "a zombie");
        assert!(exiting(&alive.replace("4194560", "4194564"), status), "PF_EXITING set");
        assert!(exiting(alive, &status.replace("ShdPnd:\t0000000000000000", "ShdPnd:\t0000000000000100")));
        assert!(exiting("garbage", status));
    }

    #[test]
    fn a_real_child_is_alive_until_killed() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().expect("spawn sleep");
        let pid = child.id() as i32;
        assert!(!is_exiting(pid), "a sleeping child");
        child.kill().expect("kill");
        // Dead but not reaped: a zombie until `wait`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !is_exiting(pid) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(is_exiting(pid), "a killed child");
        child.wait().expect("reap");
    }

    #[test]
    fn our_own_group_is_sampled() {
        let me = nix::unistd::getpgrp().as_raw();
        let usage = sample_groups(&[me]);
        let u = usage.get(&me).expect("the test's own process group");
        assert!(u.processes >= 1 && u.rss > 0 && u.vsz >= u.rss);
    }

    #[test]
    fn connections_are_counted_per_socket() {
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                    0000: 00000002 00000000 00010000 0001 01 100 /s/sockets/p.w1.sock\n\
                    0000: 00000003 00000000 00000000 0001 03 101 /s/sockets/p.w1.sock\n\
                    0000: 00000003 00000000 00000000 0001 03 102\n\
                    0000: 00000003 00000000 00000000 0001 03 103 /s/sockets/p.w2.sock\n";
        assert_eq!(count_unix(unix, "/s/sockets/p.w1.sock"), 1);
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue\n\
                   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n\
                   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000\n\
                   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000\n";
        assert_eq!(count_tcp(tcp, 8080), 1);
    }

    #[test]
    fn a_real_connection_shows_up() {
        let dir = std::env::temp_dir().join(format!("bulkhead-procfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let address = WorkerAddress::Unix(path.clone());
        assert_eq!(open_connections(&address), Some(0));
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(open_connections(&address), Some(1));
        drop(server);
        assert_eq!(open_connections(&address), Some(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
