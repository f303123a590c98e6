//! A network of Linux network namespaces for partition tests.
//!
//! [`Net::new(n)`](Net::new) makes one hub namespace holding a bridge and `n` node
//! namespaces, each with `lo` up and an `eth0` (one end of a veth pair whose other end,
//! `vI` in the hub, is a bridge port) addressed `10.77.0.{i+1}/24`. Nodes run in them
//! through [`Net::command`] (`ip netns exec NS PROGRAM`); each namespace has its own
//! ports, so each runs its own EPMD (Orbit's embedded one, or the `epmd` that `erl`
//! starts).
//!
//! Faults:
//! - [`Net::isolate`] / [`Net::rejoin`]: `ip link set vI down/up` on the hub side: node
//!   `i` is cut from every other node; nothing errors locally, packets are dropped;
//! - [`Net::cut`] / [`Net::heal`]: only the pair `i`, `j`: each gets a permanent
//!   neighbour entry for the other's address pointing at a MAC nobody has, so their
//!   frames go nowhere while both still reach the rest (no `tc` filter needed);
//!   [`Net::cut_one_way`] does it for one direction only (an asymmetric partition);
//! - [`Net::delay`]: `tc netem delay` on the node's `eth0`; returns `Err` saying so
//!   when the kernel has no netem (as on this CI machine, which has `tbf` and `pfifo`
//!   but they only limit rate and queue length, and no iptables). Delays and links that
//!   stay up but carry nothing are made by [`super::relay::Relay`] instead.
//!
//! Everything is removed on drop, also when the test panics (processes still in the
//! namespaces are killed first), and namespaces left by earlier runs that crashed
//! (their test process is gone) are removed at the next [`Net::new`]. When the test
//! cannot create namespaces (not root, no `CAP_SYS_ADMIN`, no `ip`), [`Net::new`]
//! returns [`Skip`] with why, and the test prints `SKIP` and passes.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every namespace of this harness starts with this prefix, then the test process's
/// pid: `orbt{pid}x{k}h` (hub), `orbt{pid}x{k}n{i}` (nodes).
const PREFIX: &str = "orbt";

/// Why the harness cannot run here.
#[derive(Debug)]
pub struct Skip(pub String);

/// The namespaces of one test.
pub struct Net {
    hub: String,
    nodes: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(prog: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{prog} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Kills every process in namespace `ns` and deletes it.
fn remove_ns(ns: &str) {
    for _ in 0..3 {
        let pids = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if pids.is_empty() {
            break;
        }
        let mut args = vec!["-KILL"];
        args.extend(pids.iter().copied());
        let _ = run("kill", &args);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Removes the namespaces of earlier runs whose test process is gone.
fn remove_stale() {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("netns: removing {name}, left by a run that ended (pid {pid})");
            remove_ns(name);
        }
    }
}

impl Net {
    /// Creates the hub and `n` node namespaces (at most 200).
    pub fn new(n: usize) -> Result<Net, Skip> {
        if !is_root() {
            return Err(Skip(
                "not running as root: network namespaces need root".into(),
            ));
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err(Skip("`ip` (iproute2) is not installed".into()));
        }
        remove_stale();
        static K: AtomicUsize = AtomicUsize::new(0);
        let k = K.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}x{k}", std::process::id());
        let hub = format!("{base}h");
        ip(&["netns", "add", &hub]).map_err(|e| Skip(format!("cannot create a namespace: {e}")))?;
        let mut net = Net {
            hub,
            nodes: Vec::new(),
        };
        net.build(&base, n.min(200)).map_err(Skip)?;
        Ok(net)
    }

    fn build(&mut self, base: &str, n: usize) -> Result<(), String> {
        let hub = self.hub.clone();
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let ns = format!("{base}n{i}");
            ip(&["netns", "add", &ns])?;
            self.nodes.push(ns.clone());
            let v = format!("v{i}");
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &hub, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &v, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &v, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.ip(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// Node `i`'s namespace name.
    pub fn ns(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// Node `i`'s address (`10.77.0.{i+1}`).
    pub fn ip(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// `ip netns exec NS program`: a command that runs in node `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(i), program]);
        c
    }

    /// Cuts node `i` from every other node (`ip link set vI down` in the hub).
    pub fn isolate(&self, i: usize) -> Result<(), String> {
        ip(&["-n", &self.hub, "link", "set", &format!("v{i}"), "down"])
    }

    /// Undoes [`isolate`](Self::isolate).
    pub fn rejoin(&self, i: usize) -> Result<(), String> {
        ip(&["-n", &self.hub, "link", "set", &format!("v{i}"), "up"])
    }

    /// Cuts only the link between nodes `i` and `j`, both ways.
    pub fn cut(&self, i: usize, j: usize) -> Result<(), String> {
        self.cut_one_way(i, j)?;
        self.cut_one_way(j, i)
    }

    /// Undoes [`cut`](Self::cut).
    pub fn heal(&self, i: usize, j: usize) -> Result<(), String> {
        self.heal_one_way(i, j)?;
        self.heal_one_way(j, i)
    }

    /// Drops what node `from` sends to node `to` (`to` still reaches `from`): `from`
    /// gets a permanent neighbour entry for `to`'s address with a MAC nobody has.
    pub fn cut_one_way(&self, from: usize, to: usize) -> Result<(), String> {
        ip(&[
            "-n",
            self.ns(from),
            "neigh",
            "replace",
            &self.ip(to),
            "lladdr",
            "02:00:00:00:de:ad",
            "nud",
            "permanent",
            "dev",
            "eth0",
        ])
    }

    /// Undoes [`cut_one_way`](Self::cut_one_way).
    pub fn heal_one_way(&self, from: usize, to: usize) -> Result<(), String> {
        ip(&[
            "-n",
            self.ns(from),
            "neigh",
            "del",
            &self.ip(to),
            "dev",
            "eth0",
        ])
    }

    /// Delays every packet node `i` sends by `ms` (netem); `Err` when the kernel has
    /// no netem qdisc (then use [`super::relay::Relay`]).
    pub fn delay(&self, i: usize, ms: u32) -> Result<(), String> {
        let d = format!("{ms}ms");
        run(
            "ip",
            &[
                "netns",
                "exec",
                self.ns(i),
                "tc",
                "qdisc",
                "replace",
                "dev",
                "eth0",
                "root",
                "netem",
                "delay",
                &d,
            ],
        )
        .map_err(|e| format!("netem delay is not available here: {e}"))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.hub)) {
            remove_ns(ns);
        }
    }
}
