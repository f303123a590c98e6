//! This OS process as a distributed node: start, connect, list, ping, monitor_nodes.
//!
//! The top layer of `orbit-dist` (see the crate's "Layers"): [`Node::start`] wires the
//! layers together (the connection upcalls into `dispatch`, the runtime's router, the
//! built-in services `net_kernel`, `global_name_server` and `rex`'s nodes call through
//! [`crate::service`]); nothing below imports this module.
//!
//! Contract (Erlang's `net_kernel`, Kernel reference manual):
//! - one node per OS process, named `name@host`; it registers with epmd (starting the
//!   embedded one when none listens) and accepts connections on its own port;
//! - the host part makes the kind of name, as `erl -name` / `-sname` do: a host with a
//!   dot or an IP address is a long name (`name@127.0.0.1`, `name@box.example.com`), a
//!   host without a dot a short one (`name@box`); a bare `name` is short, on this
//!   machine's short hostname (`gethostname` up to the first dot). As in Erlang
//!   (`inet_tcp_dist:splitnode/3`), a long-name node does not dial a short name and a
//!   short-name node does not dial a long one: [`Node::try_connect`] says why, and
//!   sends to such a node are dropped. Accepting is not restricted (nor is it in
//!   Erlang), but a BEAM node of the other kind never dials in. A short name whose host
//!   does not resolve still starts (as `erl -sname` does); peers then cannot reach it;
//! - `connect` returns true when the node is (or becomes) connected; sending to a pid or
//!   name of an unconnected node connects first (messages wait for the handshake);
//! - `list` gives the visible connected nodes (hidden ones are excluded), `ping` answers
//!   `Pong`/`Pang` through the peer's `net_kernel`;
//! - `monitor_nodes` / `monitor_nodes_with` (OTP's options, [`crate::monitor`]) deliver
//!   each nodeup and nodedown once, in order; for one peer a `NodeDown` always comes
//!   before the `NodeUp` of a reconnection;
//! - connections are transitive (OTP's `connect_all`, done by OTP's `global`; here by the
//!   node, so that a bare node meshes; the `mesh` module): when a visible peer connects,
//!   this node asks it for its visible nodes (`rpc:call(Peer, erlang, nodes, [])`) and
//!   connects to them, unless the peer says it takes no part in the mesh (its
//!   `connect_all` is false). A hidden node does not mesh, nor does a node started with
//!   `Options::connect_all(false)` (`erl -connect_all false`): such a node connects only
//!   where it is told to and its peers do not connect to each other through it (a partial
//!   mesh);
//! - when a connection is lost, monitors of the peer's processes fire with
//!   `noconnection` and links deliver `noconnection` exits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use orbit::ExitReason;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::connection::{Conn, Phase};
use crate::convert::LocalId;
use crate::cookie::{self, CookieSource};
use crate::epmd;
use crate::error::DistError;
use crate::handshake::{self, flags, Framing, Status};
use crate::monitor::{self, Change, MonitorOptions, NodeChange, NodeDownReason, Subscriber};
use crate::peers::{conn_for, emit, spawn, Inner, NODE};
use crate::tls::Stream;

/// How to start a node.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the cookie comes from.
    pub cookie: CookieSource,
    /// A hidden node: not in others' `nodes()`, and it does not join the mesh.
    pub hidden: bool,
    /// `net_ticktime`: a peer silent this long is declared down (ticks go out every
    /// quarter of it).
    pub net_ticktime: Duration,
    /// Port to accept connections on (0: any free port).
    pub listen_port: u16,
    /// EPMD port (default: `ERL_EPMD_PORT` or 4369).
    pub epmd_port: Option<u16>,
    /// Largest frame accepted from a peer, in bytes.
    pub max_frame: usize,
    /// TLS distribution (`-proto_dist inet_tls`); `None`: plain TCP.
    pub tls: Option<crate::tls::TlsOptions>,
    /// Advertise `DFLAG_FRAGMENTS` (default true): peers that have it too exchange
    /// normal headers, and messages over 64 KiB go out as fragments interleaved with
    /// small ones. False: pass-through frames only, a big message holds the connection
    /// until it is written (for comparison; the BEAM has no such switch).
    pub fragments: bool,
    /// Take part in the transitive mesh (default true), as OTP's `connect_all` kernel
    /// parameter / `erl -connect_all false`: when false this node connects only to the
    /// nodes it is told to (or sends to), does not connect to its peers' peers, and its
    /// peers do not connect to each other through it (it answers
    /// `application:get_env(kernel, connect_all)` with `{ok, false}`, which Orbit's mesh
    /// asks first, as OTP's `global` does not sync with such a node). Connections a send
    /// opens are still made (`dist_auto_connect` is separate, as in OTP).
    pub connect_all: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cookie: CookieSource::Default,
            hidden: false,
            net_ticktime: Duration::from_secs(60),
            listen_port: 0,
            epmd_port: None,
            max_frame: 128 << 20,
            tls: None,
            fragments: true,
            connect_all: true,
        }
    }
}

impl Options {
    /// Options with this cookie.
    pub fn cookie(c: &str) -> Options {
        Options {
            cookie: CookieSource::Given(c.to_string()),
            ..Options::default()
        }
    }

    /// These options with `connect_all` set: false starts a node outside the transitive
    /// mesh, as `erl -connect_all false` (see the `connect_all` field).
    pub fn connect_all(mut self, on: bool) -> Options {
        self.connect_all = on;
        self
    }
}

/// A change in the set of connected nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// `{nodeup, Node}`.
    NodeUp(String),
    /// `{nodedown, Node}` with why.
    NodeDown(String, String),
}

/// The answer to [`Node::ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// Connected and authenticated.
    Pong,
    /// Not reachable.
    Pang,
}

/// A handle to this process's node.
#[derive(Debug, Clone, Copy)]
pub struct Node;

fn split_name(name: &str) -> Result<(String, String), DistError> {
    let bad = || DistError::BadName(name.to_string());
    let (alive, host) = match name.split_once('@') {
        Some((a, h)) => (a.to_string(), h.to_string()),
        None => (name.to_string(), short_hostname()),
    };
    let ok_alive = !alive.is_empty()
        && alive.len() <= 200
        && alive
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok_alive || host.is_empty() || host.contains('@') {
        return Err(bad());
    }
    Ok((alive, host))
}

/// True when `host` makes a long name: it has a dot or is an IP address.
fn is_long_host(host: &str) -> bool {
    host.contains('.') || host.parse::<std::net::IpAddr>().is_ok()
}

/// Refuses a peer name of the other kind than ours, as `inet_tcp_dist:splitnode/3` does:
/// a long-name node takes hosts with a dot or IP addresses, a short-name node hosts
/// without a dot.
fn check_peer_name(long_names: bool, node: &str) -> Result<(), DistError> {
    let Some((_, host)) = node.split_once('@') else {
        return Err(DistError::BadName(node.to_string()));
    };
    split_name(node)?;
    let allowed = if long_names {
        is_long_host(host)
    } else {
        !host.contains('.')
    };
    if allowed {
        Ok(())
    } else {
        Err(DistError::NameKind {
            node: node.to_string(),
            ours: if long_names { "long" } else { "short" },
        })
    }
}

fn short_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for 256 bytes; gethostname writes at most that, NUL-terminated
    // when it fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let full = String::from_utf8_lossy(&buf[..end]).into_owned();
    full.split('.').next().unwrap_or("localhost").to_string()
}

impl Node {
    /// Starts this process's node as `name` (`name@host`, or a bare name for a short
    /// name on this host). Registers with epmd (starting an embedded one when none
    /// listens), installs the runtime's router and begins accepting peers.
    pub async fn start(name: &str, opts: Options) -> Result<Node, DistError> {
        if let Some(n) = NODE.get() {
            return Err(DistError::AlreadyStarted(n.id.name.to_string()));
        }
        let (alive, host) = split_name(name)?;
        let full = format!("{alive}@{host}");
        let long_names = is_long_host(&host);
        let cookie = cookie::resolve(&opts.cookie)?;
        let tls = opts.tls.as_ref().map(|t| t.build()).transpose()?;
        let epmd_port = opts.epmd_port.unwrap_or_else(epmd::port);

        let listener =
            epmd::listen(opts.listen_port).map_err(DistError::io("listening for peers"))?;
        let port = listener
            .local_addr()
            .map_err(DistError::io("listening for peers"))?
            .port();
        let node_type = if opts.hidden {
            epmd::NODE_TYPE_HIDDEN
        } else {
            epmd::NODE_TYPE_NORMAL
        };
        let registration = match epmd::client::register(epmd_port, &alive, port, node_type).await {
            Ok(r) => r,
            Err(DistError::Io { .. }) => {
                epmd::server::start(epmd_port)
                    .await
                    .map_err(DistError::io("starting the embedded epmd"))?;
                epmd::client::register(epmd_port, &alive, port, node_type).await?
            }
            Err(e) => return Err(e),
        };
        let creation = registration.creation;
        let system = orbit::spawn(|mut ctx: orbit::Context<orbit_term::Term>| async move {
            // Receives replies nobody waits for (late or unknown) and drops them.
            let mut seen = 0u64;
            while seen < u64::MAX {
                let _ = ctx.recv().await;
                seen += 1;
            }
        })
        .map_err(|e| DistError::Protocol(format!("cannot start the system process: {e}")))?
        .pid();
        let mut fl = flags::ORBIT;
        if !opts.hidden {
            fl |= flags::PUBLISHED;
        }
        if !opts.fragments {
            fl &= !flags::FRAGMENTS;
        }
        let inner = Arc::new(Inner {
            id: LocalId {
                name: Arc::from(full.as_str()),
                creation,
            },
            hs: handshake::Local {
                name: full.clone(),
                creation,
                flags: fl,
                cookie,
            },
            hidden: opts.hidden,
            connect_all: opts.connect_all && !opts.hidden,
            tick: opts.net_ticktime,
            epmd_port,
            port,
            max_frame: opts.max_frame,
            system,
            long_names,
            tls,
            cookies: Mutex::new(HashMap::new()),
            rt: tokio::runtime::Handle::current(),
            conns: Mutex::new(HashMap::new()),
            subs: Mutex::new(Vec::new()),
            _registration: Mutex::new(Some(registration)),
            dial,
        });
        if NODE.set(inner.clone()).is_err() {
            return Err(DistError::AlreadyStarted(full));
        }
        orbit::pid::set_local_node(&full);
        crate::connection::set_upcalls(crate::connection::Upcalls {
            fast: crate::dispatch::incoming_fast,
            control: crate::dispatch::incoming,
            lost: connection_lost,
            max_frame: crate::peers::max_frame,
        });
        // The built-in services a bare node answers (a service registered before start,
        // e.g. a fuller `global`, is kept).
        let builtins: [(&str, Arc<dyn crate::service::Service>); 4] = [
            ("net_kernel", Arc::new(crate::net_kernel::NetKernel)),
            ("rex", Arc::new(crate::rex_nodes::RexNodes)),
            ("global_name_server", Arc::new(crate::global::GlobalStub)),
            ("global_group", Arc::new(crate::global::GlobalStub)),
        ];
        for (name, svc) in builtins {
            let _ = crate::service::register_default(name, svc);
        }
        let _ = orbit::router::install(Box::new(crate::router::DistRouter));
        spawn(accept_loop(listener));
        tracing::info!(node = %full, port, creation, long_names, "node started");
        Ok(Node)
    }

    /// The running node, if this process started one.
    pub fn current() -> Option<Node> {
        NODE.get().map(|_| Node)
    }

    fn inner(&self) -> &'static Arc<Inner> {
        // A `Node` exists only after `start` set NODE.
        NODE.get()
            .expect("Node handles exist only after Node::start")
    }

    /// This node's full name.
    pub fn name(&self) -> String {
        self.inner().id.name.to_string()
    }

    /// Whether `name` is this node's full name (as `name() == name`, without making a
    /// `String`).
    pub fn is_named(&self, name: &str) -> bool {
        *self.inner().id.name == *name
    }

    /// The creation epmd gave this incarnation.
    pub fn creation(&self) -> u32 {
        self.inner().id.creation
    }

    /// The port this node accepts peers on.
    pub fn port(&self) -> u16 {
        self.inner().port
    }

    /// True when this node takes part in the transitive mesh (the `connect_all` field of
    /// [`Options`]; false for a hidden node too).
    pub fn connect_all(&self) -> bool {
        self.inner().connect_all
    }

    /// True when this node has long names (`-name`), false for short ones (`-sname`).
    pub fn long_names(&self) -> bool {
        self.inner().long_names
    }

    /// Connects to `node`; true when connected (`net_kernel:connect_node/1`).
    pub async fn connect(&self, node: &str) -> bool {
        self.try_connect(node).await.is_ok()
    }

    /// Connects to `node`, saying why when it cannot: a bad name, a name of the other
    /// kind (long vs short), or the failed attempt (unreachable, refused handshake...).
    pub async fn try_connect(&self, node: &str) -> Result<(), DistError> {
        let inner = self.inner();
        if node == &*inner.id.name {
            return Ok(());
        }
        check_peer_name(inner.long_names, node)?;
        let c = conn_for(node).ok_or_else(|| DistError::NotConnected(node.to_string()))?;
        c.wait_up().await
    }

    /// Connects to `node`, trying again (every 100 ms, then less often, up to once a
    /// second) until it is connected or `within` has passed; then the last attempt's
    /// error. For a peer that is still starting (Elixir's `for _ <- 1..100,
    /// Node.ping(peer) == :pang, do: Process.sleep(100)`). A bad or mismatched name
    /// fails at once: retrying cannot fix it.
    pub async fn connect_retry(&self, node: &str, within: Duration) -> Result<(), DistError> {
        check_peer_name(self.inner().long_names, node)?;
        let deadline = tokio::time::Instant::now() + within;
        let mut pause = Duration::from_millis(100);
        loop {
            let err = match self.try_connect(node).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Closes the connection to `node`; true when there was one.
    pub fn disconnect(&self, node: &str) -> bool {
        let c = self.inner().conns.lock().get(node).cloned();
        match c {
            Some(c) => {
                connection_down(&c, NodeDownReason::Disconnect, "disconnected".into());
                true
            }
            None => false,
        }
    }

    /// Visible connected nodes (`Node.list()`).
    pub fn list(&self) -> Vec<String> {
        self.connected(true)
    }

    /// Hidden connected nodes (`nodes(hidden)`).
    pub fn list_hidden(&self) -> Vec<String> {
        self.connected(false)
    }

    fn connected(&self, visible: bool) -> Vec<String> {
        crate::peers::connected(visible)
    }

    /// `net_adm:ping/1`: connects and asks the peer's `net_kernel` whether it accepts us.
    pub async fn ping(&self, node: &str) -> Ping {
        let me = self.name();
        let req = orbit_term::Term::tuple(vec![
            orbit_term::Term::atom("is_auth"),
            orbit_term::Term::atom(&me),
        ]);
        let dest = orbit::Dest::Remote {
            name: "net_kernel".into(),
            node: node.into(),
        };
        match crate::gen_call::call::<_, orbit_term::Term>(dest, &req, Duration::from_secs(7)).await
        {
            Ok(t) if t.as_atom() == Some("yes") => Ping::Pong,
            _ => Ping::Pang,
        }
    }

    /// Subscribes to the events of every node, visible and hidden, with the down
    /// reason's detail text. Nodes already connected are not announced. For OTP's
    /// options (`node_type`, `nodedown_reason`) use [`Node::monitor_nodes_with`].
    pub fn monitor_nodes(&self) -> mpsc::UnboundedReceiver<NodeEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let send = move |ch: &Change| {
            let ev = match &ch.reason {
                Some((_, detail)) if !ch.up => {
                    NodeEvent::NodeDown(ch.node.to_string(), detail.clone())
                }
                _ if !ch.up => NodeEvent::NodeDown(ch.node.to_string(), String::new()),
                _ => NodeEvent::NodeUp(ch.node.to_string()),
            };
            tx.send(ev).is_ok()
        };
        self.inner().subs.lock().push(Subscriber {
            send: Box::new(send),
        });
        rx
    }

    /// `net_kernel:monitor_nodes(true, Options)`: one [`NodeChange`] per `nodeup` and
    /// per `nodedown` of the nodes `opts.node_type` selects, in order; nodes already
    /// connected are not announced (OTP semantics, see [`crate::monitor`]).
    pub fn monitor_nodes_with(&self, opts: MonitorOptions) -> mpsc::UnboundedReceiver<NodeChange> {
        let (sub, rx) = monitor::subscriber(opts);
        self.inner().subs.lock().push(sub);
        rx
    }

    /// Uses `cookie` with `node` from now on, both when this node dials it and when it
    /// dials in (`erlang:set_cookie(Node, Cookie)`); other nodes keep this node's own
    /// cookie. A connection already up is not affected.
    pub fn set_cookie(&self, node: &str, cookie: &str) -> Result<(), DistError> {
        if node == &*self.inner().id.name {
            return Err(DistError::Cookie(
                "set_cookie names this node itself; its own cookie is set at Node::start".into(),
            ));
        }
        check_peer_name(self.inner().long_names, node).or_else(|e| match e {
            DistError::NameKind { .. } => Ok(()),
            e => Err(e),
        })?;
        let c = cookie::check(cookie.to_string())?;
        self.inner().cookies.lock().insert(node.to_string(), c);
        Ok(())
    }

    /// The connection to `node`, if one exists (up or being set up).
    pub fn connection(&self, node: &str) -> Option<Arc<Conn>> {
        self.inner().conns.lock().get(node).cloned()
    }
}

/// The node layer's dialer, which [`peers::conn_for`] calls for a new connection.
fn dial(inner: &'static Arc<Inner>, c: Arc<Conn>) {
    spawn(async move {
        if let Err(e) = initiate(inner, &c).await {
            if c.phase() == Phase::Pending {
                if matches!(e, DistError::NameKind { .. }) {
                    tracing::warn!(peer = %c.peer, error = %e, "connection refused");
                } else {
                    tracing::debug!(peer = %c.peer, error = %e, "connection attempt failed");
                }
                connection_lost(&c, e.to_string());
            }
        }
    });
}

async fn initiate(inner: &'static Arc<Inner>, conn: &Arc<Conn>) -> Result<(), DistError> {
    let peer = conn.peer.to_string();
    check_peer_name(inner.long_names, &peer)?;
    let (alive, host) = split_name(&peer)?;
    let work = async {
        let info = epmd::client::port_please(&host, inner.epmd_port, &alive)
            .await?
            .ok_or_else(|| {
                DistError::NotConnected(format!("{peer} (not registered with epmd on {host})"))
            })?;
        let s = TcpStream::connect((host.as_str(), info.port))
            .await
            .map_err(DistError::io("connecting to the peer"))?;
        let _ = s.set_nodelay(true);
        let mut s = match &inner.tls {
            Some(tls) => tls.connect(s, &peer).await?,
            None => Stream::Tcp(s),
        };
        // Our attempt's connection already came up through the peer's crossing attempt:
        // keep that one rather than tear it down for this one.
        let replace = || conn.phase() != Phase::Up;
        let cookie = inner.cookie_for(&peer);
        let p = match &mut s {
            Stream::Tcp(t) => {
                handshake::initiate_over(t, Framing::Tcp, &inner.hs, &cookie, &peer, replace)
                    .await?
            }
            Stream::Tls(t) => {
                handshake::initiate_over(&mut **t, Framing::Tls, &inner.hs, &cookie, &peer, replace)
                    .await?
            }
        };
        Ok::<_, DistError>((s, p))
    };
    match tokio::time::timeout(handshake::SETUP_TIME, work).await {
        Ok(Ok((s, p))) => {
            up(inner, conn, s, p);
            Ok(())
        }
        Ok(Err(DistError::Handshake { reason, .. })) if reason.contains("simultaneous") => {
            // The peer's own attempt, which we accept, completes this connection.
            let _ = tokio::time::timeout(handshake::SETUP_TIME, conn.wait_up()).await;
            if conn.phase() == Phase::Pending {
                Err(DistError::handshake(
                    peer,
                    "simultaneous connect did not complete",
                ))
            } else {
                Ok(())
            }
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DistError::handshake(peer, "timed out (net_setuptime)")),
    }
}

fn up(inner: &'static Arc<Inner>, conn: &Arc<Conn>, s: Stream, p: handshake::Peer) {
    let published = inner.hs.flags & flags::PUBLISHED != 0;
    // Negotiated flags hold PUBLISHED only when both sides are published.
    let peer_published = p.flags & flags::PUBLISHED != 0;
    {
        let conns = inner.conns.lock();
        if !conns.get(&*conn.peer).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            // Superseded while the handshake ran.
            return;
        }
        // Subscribers hear of the node before its first frame is read, so a process
        // that handles a message from the peer can already find its nodeup queued.
        emit(
            inner,
            &Change {
                node: conn.peer.clone(),
                up: true,
                visible: p.flags & flags::PUBLISHED != 0,
                reason: None,
            },
        );
        conn.attach(s, p.flags, p.flags, inner.tick);
        conn.set_phase(Phase::Up);
    }
    // Outside the connection table's lock: a handler may call into the node.
    orbit::telemetry::execute(
        &["orbit", "dist", "node_up"],
        &[("count", 1.0)],
        &[("node", &conn.peer)],
    );
    tracing::info!(peer = %conn.peer, visible = peer_published && published, "node up");
    if published && peer_published && inner.connect_all && !inner.hidden {
        let peer = conn.peer.to_string();
        spawn(async move { crate::mesh::on_nodeup(peer).await });
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let (s, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        spawn(async move {
            match accept_one(s).await {
                Err(e) if e.to_string().contains("simultaneous") => {
                    tracing::debug!(%addr, error = %e, "incoming connection dropped");
                }
                Err(e) => tracing::warn!(%addr, error = %e, "incoming connection refused"),
                Ok(()) => {}
            }
        });
    }
}

async fn accept_one(s: TcpStream) -> Result<(), DistError> {
    let inner = NODE.get().ok_or(DistError::NotStarted)?;
    let _ = s.set_nodelay(true);
    let mut s = match &inner.tls {
        Some(tls) => tokio::time::timeout(handshake::SETUP_TIME, tls.accept(s))
            .await
            .map_err(|_| {
                DistError::handshake("incoming connection", "TLS handshake timed out")
            })??,
        None => Stream::Tcp(s),
    };
    let mut claimed: Option<Arc<Conn>> = None;
    let decide = |name: &str, _creation: u32| -> Status {
        let mut conns = inner.conns.lock();
        if let Some(c) = conns.get(name) {
            match c.phase() {
                Phase::Up => return Status::Alive,
                Phase::Pending => {
                    if &*inner.id.name > name {
                        return Status::Nok;
                    }
                    claimed = Some(c.clone());
                    return Status::OkSimultaneous;
                }
                Phase::Down(_) => {}
            }
        }
        let c = Conn::new(name, inner.id.clone());
        conns.insert(Arc::from(name), c.clone());
        claimed = Some(c);
        Status::Ok
    };
    let cookie_for = |name: &str| inner.cookie_for(name);
    let framing = s.framing();
    let res = match &mut s {
        Stream::Tcp(t) => {
            tokio::time::timeout(
                handshake::SETUP_TIME,
                handshake::accept_over(t, framing, &inner.hs, cookie_for, decide),
            )
            .await
        }
        Stream::Tls(t) => {
            tokio::time::timeout(
                handshake::SETUP_TIME,
                handshake::accept_over(&mut **t, framing, &inner.hs, cookie_for, decide),
            )
            .await
        }
    };
    let res = match res {
        Ok(r) => r,
        Err(_) => Err(DistError::handshake(
            "incoming connection",
            "timed out (net_setuptime)",
        )),
    };
    match res {
        Ok(p) => {
            let conn = match claimed {
                Some(c) => c,
                None => {
                    // `alive` answered true: replace the old connection.
                    // Bind first: a guard in the `if let` scrutinee would live through
                    // the block, and `connection_lost` takes the same lock.
                    let old = inner.conns.lock().get(p.name.as_str()).cloned();
                    if let Some(old) = old {
                        connection_down(
                            &old,
                            NodeDownReason::Replaced,
                            "replaced by a new connection from the same node".into(),
                        );
                    }
                    let c = Conn::new(&p.name, inner.id.clone());
                    inner
                        .conns
                        .lock()
                        .insert(Arc::from(p.name.as_str()), c.clone());
                    c
                }
            };
            up(inner, &conn, s, p);
            Ok(())
        }
        Err(e) => {
            if let Some(c) = claimed {
                if c.phase() == Phase::Pending {
                    connection_lost(&c, e.to_string());
                }
            }
            Err(e)
        }
    }
}

/// Takes a connection down after a failure or the peer's close (`connection_closed`,
/// or `net_tick_timeout` when the reader gave up on a silent peer).
pub(crate) fn connection_lost(conn: &Arc<Conn>, reason: String) {
    let why = if reason.starts_with(crate::connection::TICK_TIMEOUT) {
        NodeDownReason::NetTickTimeout
    } else {
        NodeDownReason::ConnectionClosed
    };
    connection_down(conn, why, reason)
}

/// Takes a connection down: removes it, reports `nodedown` with `why`, and delivers
/// `noconnection` to everything that crossed it.
fn connection_down(conn: &Arc<Conn>, why: NodeDownReason, reason: String) {
    let Some(inner) = NODE.get() else { return };
    let was_up = {
        let mut conns = inner.conns.lock();
        if matches!(conn.phase(), Phase::Down(_)) {
            return;
        }
        if conns.get(&*conn.peer).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            conns.remove(&*conn.peer);
        }
        let was_up = conn.phase() == Phase::Up;
        conn.set_phase(Phase::Down(reason.clone()));
        conn.close();
        if was_up {
            emit(
                inner,
                &Change {
                    node: conn.peer.clone(),
                    up: false,
                    visible: conn.is_visible(),
                    reason: Some((why, reason.clone())),
                },
            );
        }
        was_up
    };
    if was_up {
        tracing::warn!(peer = %conn.peer, %reason, "node down");
        // Outside the connection table's lock: a handler may call into the node.
        orbit::telemetry::execute(
            &["orbit", "dist", "node_down"],
            &[("count", 1.0)],
            &[("node", &conn.peer)],
        );
    } else {
        tracing::debug!(peer = %conn.peer, %reason, "connection attempt ended");
    }
    let track = std::mem::take(&mut *conn.track.lock());
    for (local, remote) in track.links {
        orbit::signal::deliver_remote_exit(remote, local, ExitReason::NoConnection, true);
    }
    for (_, (r, watcher, target)) in track.monitors_out {
        orbit::signal::deliver_down(watcher, r, target, ExitReason::NoConnection);
    }
    for (_, (_, _, target, lr)) in track.monitors_in {
        orbit::signal::remove_remote_monitor(target, lr);
    }
    crate::gen_call::node_down(&conn.peer);
    crate::spawn::node_down(&conn.peer);
}
