//! The endpoint: which channel serves which topic, the limits of every socket, and the
//! axum route that accepts Phoenix clients (`phoenix.js`'s `new Socket("/socket")`
//! connects to `/socket/websocket?vsn=2.0.0`).
//!
//! ```no_run
//! use orbit_web::{Channel, Endpoint, SocketInfo};
//! use serde_json::Value;
//!
//! struct Room;
//! impl Channel for Room {
//!     type Info = ();
//!     async fn join(_topic: &str, _payload: Value, _s: &SocketInfo) -> Result<(Self, Value), Value> {
//!         Ok((Room, Value::Null))
//!     }
//! }
//!
//! # async fn serve() {
//! let endpoint = Endpoint::builder().channel::<Room>("room:*").build();
//! let app = endpoint.router("/socket");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! Topic patterns are Phoenix's: `"room:lobby"` matches that topic only, `"room:*"` every
//! topic that starts with `room:`; the first pattern added that matches wins.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use orbit_cluster::pubsub::PubSub;
use parking_lot::Mutex;
use serde_json::Value;

use crate::channel::{self, Channel, JoinArgs, Joined};
use crate::hub::Hub;
use crate::outbox::{Outbox, Overflow};

type Factory =
    Arc<dyn Fn(JoinArgs) -> BoxFuture<'static, Result<(Value, Joined), Value>> + Send + Sync>;

/// The limits every socket of an endpoint runs with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Frames queued for one client at most ([`Outbox`]); default 1024.
    pub outbox: usize,
    /// What a full queue does; default [`Overflow::DropOldest`].
    pub overflow: Overflow,
    /// The largest frame taken from a client, bytes; a larger one closes the socket
    /// (code 1009). Default 1 MiB.
    pub max_frame: usize,
    /// A socket that sends nothing (not even phoenix.js's heartbeat, every 30 s) for this
    /// long is closed; default 60 s, Phoenix's `timeout`.
    pub timeout: Duration,
    /// Channels one socket may join at once; default 100, Phoenix's
    /// `max_channels_per_transport`.
    pub max_channels: usize,
    /// The websocket's read buffer, bytes (it grows for a larger frame, up to
    /// `max_frame`); default 1 KiB, so an idle socket holds little memory: the
    /// websocket layer fills the whole buffer on its first read (its own default is
    /// 128 KiB), and Phoenix's frames (heartbeats, joins, pushes) are mostly far smaller.
    pub read_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            outbox: 1024,
            overflow: Overflow::DropOldest,
            max_frame: 1 << 20,
            timeout: Duration::from_secs(60),
            max_channels: 100,
            read_buffer: 1024,
        }
    }
}

/// Counters of an endpoint since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Sockets connected now.
    pub sockets: u64,
    /// Sockets accepted in all.
    pub accepted: u64,
    /// Channels joined now.
    pub channels: u64,
    /// Frames dropped by full outboxes ([`Overflow::DropOldest`]).
    pub dropped: u64,
    /// Sockets closed because their outbox was full ([`Overflow::Disconnect`]).
    pub overflow_closes: u64,
    /// Sockets closed for a frame that is not a V2 message, or a binary frame.
    pub malformed_closes: u64,
    /// Sockets closed for a frame over [`Limits::max_frame`] (or a broken connection).
    pub error_closes: u64,
    /// Sockets closed for silence longer than [`Limits::timeout`].
    pub idle_closes: u64,
}

pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub channels: AtomicU64,
    pub dropped: AtomicU64,
    pub overflow_closes: AtomicU64,
    pub malformed_closes: AtomicU64,
    pub error_closes: AtomicU64,
    pub idle_closes: AtomicU64,
}

pub(crate) struct Inner {
    routes: Vec<(String, Factory)>,
    pub hub: Hub,
    pub limits: Limits,
    pub counters: Counters,
    pub live: Mutex<HashMap<u64, Outbox>>,
    next_id: AtomicU64,
}

impl Inner {
    pub fn factory(&self, topic: &str) -> Option<Factory> {
        self.routes
            .iter()
            .find(|(p, _)| match p.strip_suffix('*') {
                Some(prefix) => topic.starts_with(prefix),
                None => p == topic,
            })
            .map(|(_, f)| f.clone())
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A Phoenix-compatible channels endpoint (cheap to clone).
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({:?})", self.stats())
    }
}

/// Builds an [`Endpoint`].
#[derive(Default)]
pub struct EndpointBuilder {
    routes: Vec<(String, Factory)>,
    pubsub: Option<PubSub>,
    limits: Limits,
}

impl std::fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<&str> = self.routes.iter().map(|(p, _)| p.as_str()).collect();
        write!(f, "EndpointBuilder({topics:?}, {:?})", self.limits)
    }
}

impl EndpointBuilder {
    /// Serves topics matching `pattern` (`"room:lobby"` or `"room:*"`) with `C`.
    pub fn channel<C: Channel>(mut self, pattern: &str) -> Self {
        let f: Factory = Arc::new(|args| Box::pin(channel::start::<C>(args)));
        self.routes.push((pattern.to_string(), f));
        self
    }

    /// Broadcasts cross the cluster through `pubsub` (Phoenix.PubSub-compatible: an
    /// Elixir node's `Endpoint.broadcast` reaches this node's clients and the reverse).
    pub fn pubsub(mut self, pubsub: PubSub) -> Self {
        self.pubsub = Some(pubsub);
        self
    }

    /// Every socket's limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The endpoint.
    pub fn build(self) -> Endpoint {
        Endpoint {
            inner: Arc::new(Inner {
                routes: self.routes,
                hub: Hub::new(self.pubsub),
                limits: self.limits,
                counters: Counters {
                    accepted: AtomicU64::new(0),
                    channels: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    overflow_closes: AtomicU64::new(0),
                    malformed_closes: AtomicU64::new(0),
                    error_closes: AtomicU64::new(0),
                    idle_closes: AtomicU64::new(0),
                },
                live: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }
}

#[derive(serde::Deserialize)]
struct Params {
    vsn: Option<String>,
    #[serde(flatten)]
    rest: HashMap<String, String>,
}

impl Endpoint {
    /// An endpoint to configure.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder::default()
    }

    /// The axum routes of this endpoint under `path` (Phoenix's `socket "/socket"`):
    /// `GET {path}/websocket?vsn=2.0.0` upgrades to a channels socket. A client asking
    /// for another serializer version gets `403`, as from Phoenix.
    pub fn router<S: Clone + Send + Sync + 'static>(&self, path: &str) -> Router<S> {
        let path = format!("{}/websocket", path.trim_end_matches('/'));
        Router::new()
            .route(&path, get(upgrade))
            .with_state(self.inner.clone())
    }

    /// Broadcasts `event` with `payload` to every client joined to `topic`, on every
    /// node (`MyAppWeb.Endpoint.broadcast/3`).
    pub fn broadcast(&self, topic: &str, event: &str, payload: &Value) {
        self.inner.hub.broadcast(topic, event, payload, None);
    }

    /// The broadcast hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The counters so far.
    pub fn stats(&self) -> EndpointStats {
        let c = &self.inner.counters;
        let live = self.inner.live.lock();
        EndpointStats {
            sockets: live.len() as u64,
            accepted: c.accepted.load(Ordering::Relaxed),
            channels: c.channels.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed)
                + live.values().map(Outbox::dropped).sum::<u64>(),
            overflow_closes: c.overflow_closes.load(Ordering::Relaxed),
            malformed_closes: c.malformed_closes.load(Ordering::Relaxed),
            error_closes: c.error_closes.load(Ordering::Relaxed),
            idle_closes: c.idle_closes.load(Ordering::Relaxed),
        }
    }
}

async fn upgrade(
    State(ep): State<Arc<Inner>>,
    Query(params): Query<Params>,
    ws: WebSocketUpgrade,
) -> Response {
    match params.vsn.as_deref() {
        Some(v) if v.starts_with("2.") => {}
        other => {
            tracing::warn!(vsn = ?other, "orbit-web: a client asked for a serializer other than V2 (vsn=2.0.0)");
            return (
                StatusCode::FORBIDDEN,
                "orbit-web speaks the Phoenix V2 JSON serializer only: connect with vsn=2.0.0",
            )
                .into_response();
        }
    }
    let max = ep.limits.max_frame;
    let query: Vec<(String, String)> = params.rest.into_iter().collect();
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(ep.limits.read_buffer)
        .write_buffer_size(0)
        .on_upgrade(move |socket| crate::socket::serve(socket, ep, query))
}
