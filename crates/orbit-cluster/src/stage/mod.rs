//! GenStage across nodes: Orbit stages that speak GenStage's subscription protocol, so
//! an Elixir `GenStage` consumer subscribes to an Orbit producer, an Orbit consumer to an
//! Elixir producer, and pipelines span Orbit and BEAM nodes.
//!
//! - [`producer`]: a producer registered under a name. A consumer anywhere does
//!   `GenStage.sync_subscribe(c, to: {:name, :"orbit@host"}, max_demand: 10)`; the
//!   producer calls its callback with the demand not met by its buffer and sends each
//!   consumer at most what it asked for (GenStage's `DemandDispatcher`: the consumer with
//!   the most demand first). [`RemoteStage::push`] adds events from outside (a producer's
//!   `handle_cast`/`handle_info` returning events); events nobody asked for wait in a
//!   buffer of `buffer_size` (the oldest dropped past it, logged).
//! - [`consumer`]: subscribes to a producer on any node (a pid, a local name, or
//!   `(name, node)`), asks `max_demand` first and asks again after each batch once the
//!   outstanding demand falls to `min_demand` (batches of `max_demand - min_demand`).
//! - [`producer_consumer`]: both; handles events only while its consumers want more, so
//!   demand flows back through it.
//!
//! Cancel modes and node failures are GenStage's: each side monitors the other; a
//! producer drops a consumer that cancels, exits or whose node goes down; a consumer
//! whose producer cancels, exits or goes down (`noconnection`) exits with that reason
//! when its [`CancelMode`] is `Permanent` (or `Transient` and the reason is not
//! `normal`/`shutdown`/`{shutdown, _}`) and keeps running when `Temporary`.
//!
//! Events are serde values: they cross the wire as the terms `orbit-term` maps them to,
//! so an Elixir integer, tuple or binary arrives as the matching Rust value. They are
//! encoded straight from the stage's type into the connection's buffer when sent and
//! decoded straight from the message's bytes into it when received (no `Term` per
//! event). An event that does not decode into the stage's type is logged, counted
//! ([`RemoteStage::undecodable`]) and skipped; one that cannot be encoded is logged and
//! dropped. Malformed or out-of-order protocol messages
//! from a peer are logged, counted ([`RemoteStage::ignored`]) and ignored, or answered as
//! GenStage answers them (`{cancel, unknown_subscription}`).
//!
//! Resolving `(name, node)` for a consumer asks the node's `rex` for
//! `erlang:whereis(Name)` (a BEAM node answers; an Orbit node answers once
//! [`crate::start`] ran there), so the consumer can monitor the producer's pid.
//!
//! Differences from GenStage: only the demand dispatcher; no manual demand, no
//! `handle_subscribe`/`handle_cancel` callbacks; a producer_consumer's queued events
//! from a cancelled producer are still handled (GenStage delays the cancel instead).

mod demand;
mod engine;
mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use orbit::stage::CancelMode;
use orbit::{Dest, Pid};
use orbit_term::{RawTerm, Term};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use engine::{Counters, DemandFn, Engine, EventsFn, Kind, StageMsg};

/// How long resolving a producer's `(name, node)` may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a stage could not start or subscribe.
#[derive(Debug, thiserror::Error)]
pub enum RemoteStageError {
    /// `max_demand` must be at least 1 and `min_demand` below it.
    #[error("bad subscription options: {0} (GenStage requires max_demand >= 1 and min_demand < max_demand)")]
    BadOptions(String),
    /// The producer's name is not registered (on its node).
    #[error("no producer registered as {0}: start it first, or check the name and node")]
    NoProducer(String),
    /// The producer's node could not be asked where the name is.
    #[error("cannot resolve {name} on {node}: {reason} (is the node connected, and for an Orbit node did it run orbit_cluster::start?)")]
    Resolve {
        /// The producer's name.
        name: String,
        /// Its node.
        node: String,
        /// What failed.
        reason: String,
    },
    /// The stage process could not be started or registered.
    #[error("the stage cannot start: {0}")]
    Start(String),
    /// The stage process is not running.
    #[error("the stage is not running")]
    NotRunning,
    /// Only consumers and producer_consumers subscribe to producers.
    #[error("a producer cannot subscribe to another stage (GenStage's not_a_consumer): use a consumer or producer_consumer")]
    NotAConsumer,
    /// An event cannot be encoded as a term.
    #[error("an event cannot be encoded as an Erlang term: {0}")]
    Encode(String),
}

/// A subscription's options (GenStage's `max_demand`, `min_demand`, `cancel`).
#[derive(Debug, Clone)]
pub struct RemoteSubscribe {
    max_demand: u64,
    min_demand: u64,
    cancel: CancelMode,
}

impl Default for RemoteSubscribe {
    /// GenStage's defaults: `max_demand` 1000, `min_demand` 500, `Permanent`.
    fn default() -> Self {
        RemoteSubscribe {
            max_demand: 1000,
            min_demand: 500,
            cancel: CancelMode::Permanent,
        }
    }
}

impl RemoteSubscribe {
    /// `max_demand` as given, `min_demand` half of it (GenStage's default), `Permanent`.
    pub fn max_demand(max_demand: u64) -> RemoteSubscribe {
        RemoteSubscribe {
            max_demand,
            min_demand: max_demand / 2,
            cancel: CancelMode::Permanent,
        }
    }

    /// Sets `min_demand`.
    pub fn min_demand(mut self, min_demand: u64) -> RemoteSubscribe {
        self.min_demand = min_demand;
        self
    }

    /// Sets the cancel mode.
    pub fn cancel(mut self, cancel: CancelMode) -> RemoteSubscribe {
        self.cancel = cancel;
        self
    }

    fn check(&self) -> Result<(), RemoteStageError> {
        if self.max_demand == 0 || self.max_demand > i64::MAX as u64 {
            return Err(RemoteStageError::BadOptions(format!(
                "max_demand {}",
                self.max_demand
            )));
        }
        if self.min_demand >= self.max_demand {
            return Err(RemoteStageError::BadOptions(format!(
                "min_demand {} with max_demand {}",
                self.min_demand, self.max_demand
            )));
        }
        Ok(())
    }

    /// The options as GenStage's keyword list (sent with the subscription).
    fn to_term(&self) -> Term {
        let mode = match self.cancel {
            CancelMode::Permanent => "permanent",
            CancelMode::Transient => "transient",
            CancelMode::Temporary => "temporary",
        };
        let kv = |k: &str, v: Term| Term::tuple(vec![Term::atom(k), v]);
        Term::List(vec![
            kv("max_demand", Term::Int(self.max_demand as i64)),
            kv("min_demand", Term::Int(self.min_demand as i64)),
            kv("cancel", Term::atom(mode)),
        ])
    }
}

/// Options of a stage that produces (`buffer_size`: GenStage's defaults, 10,000 for a
/// producer, unbounded for a producer_consumer).
#[derive(Debug, Clone)]
pub struct RemoteStageOptions {
    name: Option<String>,
    buffer_size: Option<usize>,
}

impl RemoteStageOptions {
    /// A stage registered under `name` (how consumers on other nodes find it).
    pub fn named(name: &str) -> RemoteStageOptions {
        RemoteStageOptions {
            name: Some(name.to_string()),
            buffer_size: None,
        }
    }

    /// A stage without a registered name (reached by pid).
    pub fn anonymous() -> RemoteStageOptions {
        RemoteStageOptions {
            name: None,
            buffer_size: None,
        }
    }

    /// How many events may wait for demand before the oldest are dropped.
    pub fn buffer_size(mut self, n: usize) -> RemoteStageOptions {
        self.buffer_size = Some(n);
        self
    }
}

/// A running stage: its pid, its counters, and requests to it. Cheap to clone.
#[derive(Clone)]
pub struct RemoteStage {
    handle: orbit::Handle<StageMsg>,
    counters: Arc<Counters>,
    kind: Kind,
}

impl std::fmt::Debug for RemoteStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteStage({})", self.handle.pid())
    }
}

impl RemoteStage {
    /// The stage's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// Protocol messages from peers that were logged and ignored.
    pub fn ignored(&self) -> u64 {
        self.counters.ignored.load(Ordering::Relaxed)
    }

    /// Events received beyond the demand this stage asked for (a misbehaving producer).
    pub fn excess(&self) -> u64 {
        self.counters.excess.load(Ordering::Relaxed)
    }

    /// Events that did not decode into this stage's event type (logged and skipped).
    pub fn undecodable(&self) -> u64 {
        self.counters.undecodable.load(Ordering::Relaxed)
    }

    /// Hands events to a producer (or producer_consumer) for its consumers: sent to those
    /// with demand, the rest buffered. A consumer logs and drops them (as GenStage).
    pub fn push<T: Serialize>(&self, events: &[T]) -> Result<(), RemoteStageError> {
        let terms = events
            .iter()
            .map(RawTerm::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RemoteStageError::Encode(e.to_string()))?;
        self.handle
            .send(StageMsg::Push(terms))
            .map_err(|_| RemoteStageError::NotRunning)
    }

    /// Subscribes this stage (a consumer or producer_consumer) to the producer `to`
    /// (`Pid`, a local name, or `(name, node)`); returns the subscription's tag.
    pub async fn subscribe(
        &self,
        to: impl Into<Dest>,
        opts: RemoteSubscribe,
    ) -> Result<Term, RemoteStageError> {
        opts.check()?;
        if self.kind == Kind::Producer {
            return Err(RemoteStageError::NotAConsumer);
        }
        let pid = resolve(to.into()).await?;
        let (tx, rx) = oneshot::channel();
        self.handle
            .send(StageMsg::Subscribe {
                to: pid,
                opts,
                reply: tx,
            })
            .map_err(|_| RemoteStageError::NotRunning)?;
        rx.await.map_err(|_| RemoteStageError::NotRunning)
    }

    /// Cancels the subscription `tag` (reason `normal`; the stage keeps running).
    /// Returns whether it existed.
    pub async fn cancel(&self, tag: &Term) -> Result<bool, RemoteStageError> {
        let (tx, rx) = oneshot::channel();
        self.handle
            .send(StageMsg::Cancel {
                tag: tag.clone(),
                reply: tx,
            })
            .map_err(|_| RemoteStageError::NotRunning)?;
        rx.await.map_err(|_| RemoteStageError::NotRunning)
    }

    /// Stops the stage (exit `shutdown`) and waits for it.
    pub async fn stop(&self) -> orbit::ExitReason {
        orbit::exit(self.pid(), orbit::ExitReason::Shutdown);
        self.handle.wait_exit().await
    }

    /// Waits until the stage exits; its reason.
    pub async fn wait_exit(&self) -> orbit::ExitReason {
        self.handle.wait_exit().await
    }
}

/// The producer's pid: a pid as is, a local name looked up, `(name, node)` asked of
/// that node's `rex` (`erlang:whereis/1`).
async fn resolve(to: Dest) -> Result<Pid, RemoteStageError> {
    match to {
        Dest::Pid(p) => Ok(p),
        Dest::Remote { name, node } => {
            let req = Term::tuple(vec![
                Term::atom("call"),
                Term::atom("erlang"),
                Term::atom("whereis"),
                Term::List(vec![Term::atom(&name)]),
                Term::atom("user"),
            ]);
            let err = |reason: String| RemoteStageError::Resolve {
                name: name.to_string(),
                node: node.to_string(),
                reason,
            };
            let rep: Term = orbit_dist::call(("rex", &*node), &req, RESOLVE_TIMEOUT)
                .await
                .map_err(|e| err(e.to_string()))?;
            match rep {
                Term::Pid(p) => Ok(orbit_dist::from_wire(&p)),
                Term::Atom(a) if a.as_str() == "undefined" => {
                    Err(RemoteStageError::NoProducer(format!("{name} on {node}")))
                }
                other => Err(err(format!(
                    "rex answered {}",
                    crate::pg::short_term(&other)
                ))),
            }
        }
        other => other
            .whereis()
            .ok_or_else(|| RemoteStageError::NoProducer(format!("{other:?}"))),
    }
}

fn start<I, O>(
    kind: Kind,
    opts: &RemoteStageOptions,
    on_demand: Option<DemandFn<O>>,
    on_events: Option<EventsFn<I, O>>,
    counters: Arc<Counters>,
) -> Result<RemoteStage, RemoteStageError>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    let c = counters.clone();
    let buffer_size = opts.buffer_size.unwrap_or(match kind {
        Kind::Producer => 10_000,
        _ => usize::MAX,
    });
    let name = opts.name.clone();
    let handle = orbit::Spawn::new()
        .label("remote stage")
        .spawn(move |ctx: orbit::Context<StageMsg>| async move {
            let me = ctx.pid();
            let reason = Engine::<I, O>::new(me, kind, on_demand, on_events, buffer_size, c)
                .run(ctx)
                .await;
            orbit_dist::unserve(me);
            if let Some(n) = name {
                orbit_dist::unserve(orbit_dist::Target::Name(n));
            }
            reason
        })
        .map_err(|e| RemoteStageError::Start(e.to_string()))?;
    let pid = handle.pid();
    orbit_dist::serve_with(pid, StageMsg::from_wire);
    if let Some(name) = &opts.name {
        if let Err(e) = orbit::register(name, pid) {
            orbit::exit(pid, orbit::ExitReason::Kill);
            return Err(RemoteStageError::Start(format!(
                "cannot register {name:?}: {e} (is another process registered under it?)"
            )));
        }
        orbit_dist::serve_with(orbit_dist::Target::Name(name.clone()), StageMsg::from_wire);
    }
    Ok(RemoteStage {
        handle,
        counters,
        kind,
    })
}

/// Starts a producer: `handle_demand(n)` returns up to `n` events (fewer is fine: the
/// rest can come later through [`RemoteStage::push`]). Call inside a tokio runtime.
pub fn producer<T, F>(
    opts: RemoteStageOptions,
    handle_demand: F,
) -> Result<RemoteStage, RemoteStageError>
where
    T: Serialize + Send + 'static,
    F: FnMut(u64) -> Vec<T> + Send + 'static,
{
    let on_demand: DemandFn<T> = Box::new(handle_demand);
    start::<Term, T>(
        Kind::Producer,
        &opts,
        Some(on_demand),
        None,
        Arc::new(Counters::default()),
    )
}

/// Starts a consumer subscribed to `to`; `handle_events` gets each batch (at most
/// `max_demand - min_demand` events). Call inside a tokio runtime.
pub async fn consumer<T, F>(
    to: impl Into<Dest>,
    opts: RemoteSubscribe,
    mut handle_events: F,
) -> Result<RemoteStage, RemoteStageError>
where
    T: DeserializeOwned + Send + 'static,
    F: FnMut(Vec<T>) + Send + 'static,
{
    opts.check()?;
    let counters = Arc::new(Counters::default());
    let on_events: EventsFn<T, Term> = Box::new(move |ev| {
        handle_events(ev);
        Vec::new()
    });
    let stage = start(
        Kind::Consumer,
        &RemoteStageOptions::anonymous(),
        None,
        Some(on_events),
        counters,
    )?;
    subscribe_or_stop(stage, to.into(), opts).await
}

/// Starts a producer_consumer subscribed to `to`: `handle_events` maps each batch to
/// the events its own consumers receive. Call inside a tokio runtime.
pub async fn producer_consumer<I, O, F>(
    opts: RemoteStageOptions,
    to: impl Into<Dest>,
    sub: RemoteSubscribe,
    handle_events: F,
) -> Result<RemoteStage, RemoteStageError>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: FnMut(Vec<I>) -> Vec<O> + Send + 'static,
{
    sub.check()?;
    let counters = Arc::new(Counters::default());
    let on_events: EventsFn<I, O> = Box::new(handle_events);
    let stage = start(
        Kind::ProducerConsumer,
        &opts,
        None,
        Some(on_events),
        counters,
    )?;
    subscribe_or_stop(stage, to.into(), sub).await
}

async fn subscribe_or_stop(
    stage: RemoteStage,
    to: Dest,
    opts: RemoteSubscribe,
) -> Result<RemoteStage, RemoteStageError> {
    match stage.subscribe(to, opts).await {
        Ok(_) => Ok(stage),
        Err(e) => {
            orbit::exit(stage.pid(), orbit::ExitReason::Kill);
            stage.wait_exit().await;
            Err(e)
        }
    }
}
