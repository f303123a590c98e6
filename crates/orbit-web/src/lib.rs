//! Orbit's web side, on axum and tower: what scaling a Phoenix app teaches, for Rust web
//! apps.
//!
//! - [`Timing`]: per-route requests, latency, and the split between each named
//!   middleware and the handler (Plug's overhead made visible), as statistics and as
//!   `[orbit, web, request]` telemetry events; attached as tower layers, or, cheapest,
//!   around the whole router ([`Timing::wrap`], handlers naming their routes with
//!   [`Timing::route`]).
//! - [`Endpoint`]: Phoenix Channels over websockets, wire-compatible with the official
//!   `phoenix` JavaScript client (the V2 JSON serializer): each joined topic is an Orbit
//!   process with [`Channel`]'s `join` / `handle_in` / `handle_info` / `terminate`,
//!   broadcasts fan out to every socket of a topic, and, with a Phoenix.PubSub
//!   ([`orbit_cluster::pubsub`]), across the cluster, Elixir nodes included.
//! - Limits: each socket's outgoing queue is bounded ([`Outbox`], [`Overflow`]: drop the
//!   oldest or disconnect, counted), frames over the limit, malformed or binary frames
//!   close the socket cleanly, and a silent socket times out (Phoenix's heartbeat).
//!
//! Written here rather than taken from a crate: no Rust crate speaks the Phoenix
//! Channels server protocol; the websocket itself is axum's (tokio-tungstenite).

pub mod channel;
pub mod endpoint;
pub mod hub;
pub mod json_term;
pub mod message;
pub mod outbox;
mod socket;
pub mod timing;

pub use channel::{Channel, ChannelCtx, ChannelHandle, ChannelMsg, InReply, InfoNext, SocketInfo};
pub use endpoint::{Endpoint, EndpointBuilder, EndpointStats, Limits};
pub use hub::{Hub, HubStats};
pub use outbox::{Outbox, Overflow};
pub use timing::{
    HandlerLayer, Probe, ProbeLayer, RouteHandler, RouteTiming, Timed, TimedRouter, Timing,
    TimingLayer, TimingService, SPLIT_PER_S,
};
