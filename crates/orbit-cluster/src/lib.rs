//! Orbit's cluster layer: the services that run above the distribution wire.
//!
//! `orbit-dist` is the wire (EPMD, handshake, connections, control messages, routing).
//! This crate holds what OTP runs as processes above its distribution driver and what
//! libcluster adds on top: discovery strategies that find nodes and connect to them
//! ([`strategy`]), node monitoring, the cluster view ([`view`]), process groups
//! ([`pg`], OTP's scope protocol), Phoenix.PubSub ([`pubsub`]), GenStage across nodes
//! ([`stage`]), erpc both ways ([`erpc`]), and system services
//! (`rex`, [`global`], ...) that register with the wire under their names through
//! `orbit_dist::service`. The wire never imports this crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use orbit_dist::{Node, Options};
//! let node = Node::start("app@127.0.0.1", Options::cookie("secret")).await?;
//! orbit_cluster::start(&node)?;
//! # Ok(()) }
//! ```
//!
//! What a bare `orbit-dist` node answers without this crate (so that BEAM peers never
//! hang on it): `net_kernel` (`net_adm:ping`), `global_name_server`'s lock protocol,
//! and the `erlang:nodes` call of `rex` that transitive connection uses (and refuses
//! `SPAWN_REQUEST`s with `notsup`). [`start`] adds the full legacy [`rex::Rex`] and erpc.
#![warn(missing_docs)]

use std::sync::Arc;

pub mod erpc;
pub mod global;
pub mod pg;
pub mod pubsub;
pub mod rex;
pub mod stage;
pub mod strategy;
pub mod view;

pub use strategy::{Cluster, ClusterStrategy, Topology};

/// Registers this crate's services with the running node (`rex`, [`erpc`]'s
/// handlers of `SPAWN_REQUEST`/`SPAWN_REPLY`, and [`global`]'s `global_name_server`,
/// which needs a tokio runtime: outside one a warning is logged and the stub stays). Idempotent: a second call registers the
/// same services again.
pub fn start(_node: &orbit_dist::Node) -> Result<(), orbit_dist::ServiceError> {
    orbit_dist::service::register("rex", Arc::new(rex::Rex))?;
    erpc::start()?;
    if let Err(e) = global::start() {
        tracing::warn!("{e}: :global runs as orbit-dist's stub (answers lock calls only)");
    }
    Ok(())
}
