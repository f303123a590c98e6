//! Throwaway PostgreSQL and Redis servers for the tests: a temp data dir, a free
//! loopback port, the server in its own process group, killed (the whole group) and
//! its directory removed on drop, also when the test fails.
//!
//! Postgres refuses to run as root: as root, `initdb` and `postgres` run as the
//! `postgres` user (setuid in the child). When the binaries are missing the
//! constructors return `None` after printing `SKIP ...`; `scripts/test` installs them
//! (Debian `postgresql`, `redis-server`).

#![allow(dead_code)]

pub mod pg;
pub mod redis;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A fresh directory under the temp dir, unique to this process and call.
pub fn temp_dir(kind: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("orbit-db-{kind}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a temp dir");
    dir
}

/// SIGKILLs the child's whole process group (the server and every process it forked)
/// and reaps the child.
pub fn kill_group(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: plain syscall on a process group we created.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// The pids of `pid`'s children (from `/proc`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                // Fields after the command (which may hold spaces): state, ppid, ...
                .and_then(|st| st.rsplit_once(')').map(|(_, rest)| rest.to_string()))
                .and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// `kill -9` of a server that puts each child in a group of its own (PostgreSQL's
/// backends call `setsid`): the parent is stopped first (it forks no more), then its
/// children and it are SIGKILLed; reaps the parent.
pub fn kill_tree(child: &mut Child) {
    let pid = child.id();
    // SAFETY: plain syscalls on processes we started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGSTOP);
    }
    let kids = children_of(pid);
    for k in &kids {
        // SAFETY: as above.
        unsafe {
            libc::kill(*k as libc::pid_t, libc::SIGKILL);
        }
    }
    kill_group(child);
    // Wait until the children are gone too (they were ours to kill).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while kids
        .iter()
        .any(|k| std::path::Path::new(&format!("/proc/{k}")).exists())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether every process of the group is gone.
pub fn group_gone(pgid: u32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::killpg(pgid as libc::pid_t, 0) != 0 }
}
