//! Seeing an Orbit node: a Prometheus `/metrics` endpoint, a live web dashboard with
//! its JSON API, and the telemetry handlers that feed them.
//!
//! ```no_run
//! # async fn run() -> Result<(), orbit_observe::ObserveError> {
//! let dash = orbit_observe::serve(orbit_observe::ObserveOptions::new("127.0.0.1:4000".parse().unwrap())).await?;
//! println!("dashboard at http://{}/", dash.local_addr());
//! # Ok(()) }
//! ```
//!
//! What it is made of:
//! - [`PrometheusExporter`]: the global `metrics` recorder (install it before starting
//!   pools and caches: they register their series when they start).
//! - [`Collector`]: once a second, the node's figures (processes, messages/s, handling
//!   time p50/p99, CPU, memory, run queue, long handlers, distribution links, named
//!   processes) published as `orbit_*` series and judged against their learned normal
//!   band.
//! - [`ProcessRanker`]: the top processes by mailbox, memory, handling time or rate, a
//!   million of them in well under a second.
//! - [`events`]: telemetry handlers turning pool, stage, supervisor and distribution
//!   events into series.
//! - [`resources`]: pools, caches, stages, links and supervisors grouped for the page.
//! - [`beam`]: BEAM nodes of the cluster read over `rex`.
//! - [`recent`]: a process's recent handling times, sampled while its page is read.
//! - [`supervisors`]: the supervision trees.
//! - [`tables`]: the ETS tables of this node or of a BEAM node.
//! - the router (module `server`'s table lists the routes) and [`serve`].
//!
//! Series (besides those the runtime registers itself: `orbit_pool_*`,
//! `orbit_cache_*`): `orbit_processes`, `orbit_messages_per_second`,
//! `orbit_handling_seconds{quantile}`, `orbit_cpu_percent`, `orbit_rss_bytes`,
//! `orbit_open_fds`, `orbit_run_queue`, `orbit_tasks`, `orbit_long_handlers_total`,
//! `orbit_max_mailbox_len`, `orbit_process_*{name}`, `orbit_dist_*{peer}`,
//! `orbit_stage_*{stage}`, `orbit_pool_queue_length{pool}`,
//! `orbit_call_duration_seconds` (histogram of sampled GenServer calls),
//! `orbit_supervisor_restarts_total`.
//!
//! Not for: tracing single requests, or storing history (Prometheus does that).

#![warn(missing_docs)]

pub mod beam;
mod collector;
mod error;
pub mod events;
mod exporter;
mod links;
mod named;
mod processes;
pub mod recent;
pub mod resources;
mod server;
pub mod supervisors;
pub mod tables;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use beam::{BeamProcess, PeerNode};
pub use collector::{node_name, Band, Collector, Flag, NodeSample, PER_PROCESS_LIMIT};
pub use error::ObserveError;
pub use exporter::PrometheusExporter;
pub use links::LinkStats;
pub use processes::{
    find_pid, page, ProcessPage, ProcessRanker, ProcessRow, Ranking, SortKey, MAX_ROWS,
};
pub use recent::{HandlingInterval, RecentHandling};
pub use resources::Resources;
pub use supervisors::{ChildNode, SupervisorNode};
pub use tables::{TableRow, TablesView};

/// How to serve the dashboard.
#[derive(Debug, Clone)]
pub struct ObserveOptions {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// The token every request must carry; required when `addr` is not loopback.
    pub token: Option<String>,
    /// How often the collector samples.
    pub tick: Duration,
}

impl ObserveOptions {
    /// Listens on `addr`, no token, one sample a second.
    pub fn new(addr: SocketAddr) -> Self {
        ObserveOptions {
            addr,
            token: None,
            tick: Duration::from_secs(1),
        }
    }

    /// Requires `token` on every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Samples every `tick`.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }
}

/// The observing state shared by the routes: exporter, collector, ranker, token.
#[derive(Clone, Debug)]
pub struct Observer {
    exporter: PrometheusExporter,
    collector: Collector,
    ranker: Arc<ProcessRanker>,
    token: Option<Arc<str>>,
}

impl Observer {
    /// Installs the exporter, attaches the telemetry handlers, and makes a collector
    /// (not yet ticking: see [`Observer::start_collecting`]).
    pub fn new(token: Option<String>) -> Result<Observer, ObserveError> {
        if let Some(t) = &token {
            if t.chars().count() < 16 {
                return Err(ObserveError::WeakToken(t.chars().count()));
            }
        }
        let exporter = PrometheusExporter::install()?;
        events::attach();
        Ok(Observer {
            exporter,
            collector: Collector::new(),
            ranker: Arc::new(ProcessRanker::new()),
            token: token.map(Arc::from),
        })
    }

    /// Starts the collector's ticks on the current runtime.
    pub fn start_collecting(
        &self,
        every: Duration,
    ) -> Result<tokio::task::JoinHandle<()>, ObserveError> {
        tokio::runtime::Handle::try_current().map_err(|_| ObserveError::NoRuntime)?;
        Ok(self.collector.spawn(every, Some(self.exporter.clone())))
    }

    /// The router: the page, the API, the events and `/metrics` (mount it in your own
    /// axum app, or let [`serve`] listen).
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// The exporter.
    pub fn exporter(&self) -> &PrometheusExporter {
        &self.exporter
    }

    /// The collector.
    pub fn collector(&self) -> &Collector {
        &self.collector
    }
}

/// A dashboard being served; dropping it does not stop it, [`Dashboard::stop`] does.
#[derive(Debug)]
pub struct Dashboard {
    addr: SocketAddr,
    observer: Observer,
    server: tokio::task::JoinHandle<()>,
    ticks: tokio::task::JoinHandle<()>,
}

impl Dashboard {
    /// The address it listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its observer.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// Stops serving and sampling (the exporter stays installed; the telemetry
    /// handlers are detached).
    pub fn stop(self) {
        self.server.abort();
        self.ticks.abort();
        events::detach();
    }
}

/// Serves the dashboard and `/metrics` on `opts.addr`. Refuses a non-loopback address
/// without a token ([`ObserveError::TokenRequired`]) and tokens under 16 characters.
pub async fn serve(opts: ObserveOptions) -> Result<Dashboard, ObserveError> {
    if !opts.addr.ip().is_loopback() && opts.token.is_none() {
        return Err(ObserveError::TokenRequired(opts.addr));
    }
    let observer = Observer::new(opts.token.clone())?;
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|source| ObserveError::Bind {
            addr: opts.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ObserveError::Bind {
        addr: opts.addr,
        source,
    })?;
    let ticks = observer.start_collecting(opts.tick)?;
    let app = observer.router();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the dashboard server stopped");
        }
    });
    tracing::info!(%addr, "dashboard listening");
    Ok(Dashboard {
        addr,
        observer,
        server,
        ticks,
    })
}
