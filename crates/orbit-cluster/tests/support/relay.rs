//! A userspace link relay: delays or blackholes one node's distribution connections
//! without `tc netem` (this kernel has no netem qdisc, and no iptables is installed).
//!
//! [`Relay::start`] runs in node `i`'s namespace (threads of the test process that
//! entered it with `setns`) and listens on node `i`'s address at two ports:
//! - a front EPMD on [`Relay::epmd_port`] (not 4369: the node's own EPMD keeps that one):
//!   each request is passed to the real EPMD at `127.0.0.1:4369` and a `PORT2_RESP`
//!   comes back with the node's port replaced by the relay's own distribution port;
//! - that distribution port: each accepted connection is joined to
//!   `127.0.0.1:<node's port>` by two pumps, one per direction.
//!
//! A peer started with its EPMD port set to [`Relay::epmd_port`] (an Orbit node's
//! `Options::epmd_port`) therefore reaches node `i` only through the relay, while the
//! node itself is unchanged (any Orbit, `erl` or `elixir` node). The node's outgoing
//! connections do not pass through the relay.
//!
//! Each pump reads whatever arrives (so the sender's socket never fills) and writes each
//! chunk out once `read_at + delay` has passed ([`Relay::set_delay`], applied to both
//! directions). [`Relay::blackhole`] holds every chunk, FIN included, without
//! forwarding: both TCP connections stay established and carry nothing, as a link
//! that stays up but drops everything; [`Relay::pass`] releases what was held, in order.
//! [`Relay::last_delivered`] tells when bytes last reached each side, from which the
//! tick rule (`net_ticktime`: down after 3/4 T..5/4 T without receiving) is checked.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::netns::Net;

/// The port of the node's own EPMD inside its namespace.
const NODE_EPMD: u16 = 4369;

/// Which way bytes go through the relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Toward {
    /// To the node behind the relay (from the peer that connected).
    Node = 0,
    /// To the peer that connected through the relay.
    Peer = 1,
}

/// What the pumps do now.
struct Mode {
    delay: Duration,
    blackhole: bool,
}

struct Shared {
    mode: Mutex<Mode>,
    changed: Condvar,
    stop: AtomicBool,
    /// The node's distribution port, learned from its EPMD's answer.
    node_port: AtomicU16,
    /// The relay's own distribution port.
    relay_port: AtomicU16,
    /// Distribution connections accepted.
    accepted: AtomicUsize,
    /// When bytes were last written toward the node / the peer.
    last: Mutex<[Option<Instant>; 2]>,
    /// Every socket of the relay, shut down on drop.
    sockets: Mutex<Vec<TcpStream>>,
}

/// A running relay in front of one node; stopped on drop.
pub struct Relay {
    shared: Arc<Shared>,
    epmd_port: u16,
    dist_port: u16,
}

/// Enters network namespace `ns` (this thread only, and the threads it spawns).
fn enter(ns: &str) -> Result<(), String> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))
        .map_err(|e| format!("open /run/netns/{ns}: {e}"))?;
    // SAFETY: setns on a valid namespace file descriptor only changes this thread's
    // network namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Relay {
    /// Starts a relay in node `i`'s namespace whose front EPMD listens on
    /// `node_ip:epmd_port` (use a port other than 4369, e.g. 4370, and give the
    /// connecting peer the same EPMD port). Starts passing bytes with no delay.
    pub fn start(net: &Net, i: usize, epmd_port: u16) -> Result<Relay, String> {
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode {
                delay: Duration::ZERO,
                blackhole: false,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            node_port: AtomicU16::new(0),
            relay_port: AtomicU16::new(0),
            accepted: AtomicUsize::new(0),
            last: Mutex::new([None, None]),
            sockets: Mutex::new(Vec::new()),
        });
        let (ns, ip) = (net.ns(i).to_string(), net.ip(i));
        let (tx, rx) = mpsc::channel::<Result<u16, String>>();
        let sh = shared.clone();
        std::thread::spawn(move || {
            let bound = (|| -> Result<(TcpListener, TcpListener, u16), String> {
                enter(&ns)?;
                let epmd = TcpListener::bind((ip.as_str(), epmd_port))
                    .map_err(|e| format!("relay: bind {ip}:{epmd_port}: {e}"))?;
                let dist = TcpListener::bind((ip.as_str(), 0))
                    .map_err(|e| format!("relay: bind {ip}:0: {e}"))?;
                for l in [&epmd, &dist] {
                    l.set_nonblocking(true)
                        .map_err(|e| format!("relay: nonblocking: {e}"))?;
                }
                let port = dist.local_addr().map_err(|e| e.to_string())?.port();
                Ok((epmd, dist, port))
            })();
            match bound {
                Ok((epmd, dist, port)) => {
                    sh.relay_port.store(port, Ordering::SeqCst);
                    let _ = tx.send(Ok(port));
                    accept_loop(sh, epmd, dist);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let dist_port = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "relay: the namespace thread did not answer".to_string())??;
        Ok(Relay {
            shared,
            epmd_port,
            dist_port,
        })
    }

    /// The front EPMD's port (give it to the connecting peer).
    pub fn epmd_port(&self) -> u16 {
        self.epmd_port
    }

    /// The relay's distribution port (what the front EPMD answers).
    pub fn dist_port(&self) -> u16 {
        self.dist_port
    }

    /// Distribution connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Adds `d` to every chunk, both directions (also to chunks still queued).
    pub fn set_delay(&self, d: Duration) {
        self.shared.mode.lock().delay = d;
        self.shared.changed.notify_all();
    }

    /// From now on nothing is forwarded (bytes are read and held); returns the
    /// instant it took effect.
    pub fn blackhole(&self) -> Instant {
        self.shared.mode.lock().blackhole = true;
        self.shared.changed.notify_all();
        Instant::now()
    }

    /// Forwards again, releasing what was held.
    pub fn pass(&self) {
        self.shared.mode.lock().blackhole = false;
        self.shared.changed.notify_all();
    }

    /// When bytes were last written toward `side` (`None`: never).
    pub fn last_delivered(&self, side: Toward) -> Option<Instant> {
        self.shared.last.lock()[side as usize]
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        for s in self.shared.sockets.lock().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Accepts on both listeners until the relay stops (they are non-blocking: polled
/// every 10 ms, the only way to notice the stop without a connection).
fn accept_loop(sh: Arc<Shared>, epmd: TcpListener, dist: TcpListener) {
    while !sh.stop.load(Ordering::SeqCst) {
        let mut idle = true;
        if let Ok((s, _)) = epmd.accept() {
            idle = false;
            let sh = sh.clone();
            std::thread::spawn(move || epmd_front(&sh, s));
        }
        if let Ok((s, _)) = dist.accept() {
            idle = false;
            sh.accepted.fetch_add(1, Ordering::SeqCst);
            let sh = sh.clone();
            std::thread::spawn(move || {
                if let Err(e) = join(&sh, s) {
                    eprintln!("relay: {e}");
                }
            });
        }
        if idle {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One EPMD request: passed to the node's EPMD; a successful `PORT2_RESP` comes back
/// with the relay's distribution port instead of the node's.
fn epmd_front(sh: &Shared, mut s: TcpStream) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).is_err() {
        return;
    }
    let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
    if s.read_exact(&mut req).is_err() {
        return;
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", NODE_EPMD)) else {
        return;
    };
    let _ = up.set_read_timeout(Some(Duration::from_secs(10)));
    if up.write_all(&len).and_then(|_| up.write_all(&req)).is_err() {
        return;
    }
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    // PORT2_RESP: 119, Result = 0, PortNo:16, ...
    if req.first() == Some(&122) && resp.len() >= 4 && resp[0] == 119 && resp[1] == 0 {
        let node = u16::from_be_bytes([resp[2], resp[3]]);
        sh.node_port.store(node, Ordering::SeqCst);
        let relay = sh.relay_port.load(Ordering::SeqCst);
        resp[2..4].copy_from_slice(&relay.to_be_bytes());
    }
    let _ = s.write_all(&resp);
}

/// Joins an accepted connection to the node's distribution port with two pumps.
fn join(sh: &Arc<Shared>, peer: TcpStream) -> Result<(), String> {
    peer.set_nonblocking(false).map_err(|e| e.to_string())?;
    let port = sh.node_port.load(Ordering::SeqCst);
    if port == 0 {
        return Err("a connection before any EPMD lookup: the node's port is unknown".into());
    }
    let node = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connect to the node at 127.0.0.1:{port}: {e}"))?;
    for s in [&peer, &node] {
        let _ = s.set_nodelay(true);
    }
    {
        let mut all = sh.sockets.lock();
        for s in [&peer, &node] {
            all.push(s.try_clone().map_err(|e| e.to_string())?);
        }
    }
    let clone = |s: &TcpStream| s.try_clone().map_err(|e| e.to_string());
    pump(sh.clone(), clone(&peer)?, clone(&node)?, Toward::Node);
    pump(sh.clone(), node, peer, Toward::Peer);
    Ok(())
}

/// Copies `from` to `to`: a reader thread timestamps each chunk, a writer thread
/// writes it once due (held while blackholed). EOF is forwarded as a write shutdown,
/// under the same rule.
fn pump(sh: Arc<Shared>, mut from: TcpStream, to: TcpStream, dir: Toward) {
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now(), None));
                    return;
                }
                Ok(n) => {
                    if tx.send((Instant::now(), Some(buf[..n].to_vec()))).is_err() {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        let mut to = to;
        while let Ok((at, chunk)) = rx.recv() {
            if !wait_due(&sh, at) {
                return;
            }
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).is_err() {
                        let _ = to.shutdown(Shutdown::Both);
                        return;
                    }
                    sh.last.lock()[dir as usize] = Some(Instant::now());
                }
                None => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
            }
        }
    });
}

/// Waits until a chunk read at `at` may go out: not blackholed and `at + delay`
/// passed. False when the relay stopped.
fn wait_due(sh: &Shared, at: Instant) -> bool {
    let mut mode = sh.mode.lock();
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return false;
        }
        if mode.blackhole {
            sh.changed.wait(&mut mode);
            continue;
        }
        let due = at + mode.delay;
        if Instant::now() >= due {
            return true;
        }
        sh.changed.wait_until(&mut mode, due);
    }
}
