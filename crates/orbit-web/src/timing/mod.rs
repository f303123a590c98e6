//! Request timing for axum apps: per route, requests, latency, and how much of it each
//! named middleware took and how much the handler took — Plug's overhead made visible.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use orbit_web::Timing;
//! use tower_layer::Identity;
//!
//! let timing = Timing::new();
//! let app: Router = Router::new()
//!     .route("/hello", get(|| async { "hello" }))
//!     .route_layer(timing.handler())            // innermost: the handler's time
//!     .layer(timing.timed("auth", Identity::new())) // a middleware, named
//!     .layer(timing.layer());                   // outermost: the request's time
//! // later: timing.snapshot() per route; `[orbit, web, request]` telemetry events
//! ```
//!
//! The cheapest way to count and time every route (no split): wrap the whole router
//! from outside, and name each handler's route where it is routed, so that recording
//! needs no lookup ([`Timing::wrap`], [`Timing::route`]):
//!
//! ```no_run
//! # async fn serve() -> std::io::Result<()> {
//! use axum::{routing::get, Router};
//! use orbit_web::Timing;
//!
//! let timing = Timing::new();
//! let app = Router::new().route("/hello", get(timing.route("/hello", || async { "hello" })));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, timing.wrap(app)).await
//! # }
//! ```
//!
//! How it measures: [`Timing::layer`] (outermost, added last) starts a per-request
//! trace and records the total when the response is ready (headers; a streamed body's
//! later chunks are not counted). [`Timing::timed`] brackets one middleware: the time
//! between entering it and its call of the next service, plus the time after that
//! service answered until it answers itself, is that middleware's own time.
//! [`Timing::handler`] (a `route_layer`, innermost) times the handler. Whatever is left
//! (unnamed middleware, routing) is `other`. Routes are axum's matched paths
//! (`/users/{id}`), so the set of routes is bounded by the app's; requests that match
//! no route are not timed.
//!
//! The stages are one generic tower service, [`TimingService`], each with its
//! [`Probe`] (what to note on the way in, what to record on the way out; `service.rs`);
//! the request's trace (`trace.rs`) carries the inner stages' figures out to the outermost.
//!
//! Every timed request also emits the telemetry event `[orbit, web, request]` with
//! measurements `duration_us`, `handler_us`, `middleware_us` and metadata `route`,
//! `status` (only when a handler is attached: `orbit::telemetry::attach`).

mod flat;
mod router;
mod service;
mod trace;

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use hdrhistogram::Histogram;
use orbit::telemetry::{summarize, Latency, LatencySummary};
use parking_lot::Mutex;

use flat::Flat;
pub use router::{RouteHandler, TimedRouter, TimedRouterFuture};
pub use service::{
    EnterProbe, HandlerLayer, HandlerProbe, InsideProbe, Probe, ProbeLayer, RequestProbe, Timed,
    TimingFuture, TimingLayer, TimingService,
};
use trace::Trace;

/// FNV-1a: routes are short strings hashed once per request; SipHash's resistance to
/// chosen keys is not needed (the set of routes is the app's, not the client's).
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// One route's figures in one shard.
struct RouteShard {
    count: u64,
    split: u64,
    total: Histogram<u64>,
    handler: Histogram<u64>,
    other: Histogram<u64>,
    layers: Vec<(&'static str, Histogram<u64>)>,
}

impl RouteShard {
    fn new() -> RouteShard {
        RouteShard {
            count: 0,
            split: 0,
            total: Latency::local(),
            handler: Latency::local(),
            other: Latency::local(),
            layers: Vec::new(),
        }
    }

    /// Counts one request and records its total, and its split when it has a trace;
    /// returns the time the trace accounts for (handler and named middleware).
    fn record(&mut self, total: Duration, t: Option<&Trace>) -> Duration {
        self.count += 1;
        Latency::record_local(&mut self.total, total);
        match t {
            Some(t) => self.record_split(total, t),
            None => Duration::ZERO,
        }
    }

    /// Records a split request's parts (not its count nor its total); returns the time
    /// its trace accounts for.
    fn record_split(&mut self, total: Duration, t: &Trace) -> Duration {
        let handler = t.handler.unwrap_or_default();
        let mut accounted = handler;
        self.split += 1;
        for (name, d) in &t.layers {
            accounted += *d;
            match self.layers.iter_mut().find(|(n, _)| n == name) {
                Some((_, h)) => Latency::record_local(h, *d),
                None => {
                    let mut h = Latency::local();
                    Latency::record_local(&mut h, *d);
                    self.layers.push((name, h));
                }
            }
        }
        if t.handler.is_some() {
            Latency::record_local(&mut self.handler, handler);
        }
        Latency::record_local(&mut self.other, total.saturating_sub(accounted));
        accounted
    }

    /// Adds `other`'s figures to these.
    fn merge(&mut self, other: &RouteShard) {
        self.count += other.count;
        self.split += other.split;
        let _ = self.total.add(&other.total);
        let _ = self.handler.add(&other.handler);
        let _ = self.other.add(&other.other);
        for (name, h) in &other.layers {
            match self.layers.iter_mut().find(|(n, _)| n == name) {
                Some((_, mh)) => drop(mh.add(h)),
                None => self.layers.push((name, h.clone())),
            }
        }
    }
}

/// The figures recorded by the threads that share one shard: a thread records into its
/// own shard (an uncontended lock), a snapshot merges them all.
#[derive(Default)]
struct Shard {
    /// Routes named by axum's matched path ([`Timing::layer`]).
    routes: HashMap<Arc<str>, RouteShard, BuildHasherDefault<Fnv>>,
    /// Routes resolved at construction ([`Timing::route`]), by their index in
    /// `Inner::names`: no hash, no lookup.
    by_id: Vec<Option<IdRoute>>,
}

/// A route of [`Timing::wrap`] in one shard: its total counted in a [`Flat`]
/// histogram (the hot path), the rest as any route's.
struct IdRoute {
    total: Flat,
    /// Count and split (its `total` stays empty).
    rest: RouteShard,
}

impl IdRoute {
    /// Counts one request that took `ns`.
    #[inline]
    fn count(&mut self, ns: u64) {
        self.rest.count += 1;
        self.total.record(ns);
    }
}

/// A shard and its lock on cache lines of their own: two threads recording at once
/// never write the same line.
#[repr(align(128))]
#[derive(Default)]
struct PaddedShard(Mutex<Shard>);

/// A thread's shard index among `n` shards, a power of two (threads are numbered in
/// the order they first record).
#[inline]
fn shard_index(n: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let mut i = SLOT.get();
    if i == usize::MAX {
        i = NEXT.fetch_add(1, Ordering::Relaxed);
        SLOT.set(i);
    }
    // A mask rather than `%`: no division per request.
    i & n.wrapping_sub(1)
}

/// The timing of one route, as [`Timing::snapshot`] reports it.
#[derive(Debug, Clone)]
pub struct RouteTiming {
    /// The route (axum's matched path).
    pub route: String,
    /// Requests timed since the start.
    pub count: u64,
    /// Of those, the requests whose split (middleware, handler, other) was recorded:
    /// all of them unless the route ran faster than [`Timing::with_split_rate`]'s
    /// limit; `handler`, `middleware` and `other` summarize these. None (0) when no
    /// split stage ([`Timing::handler`], [`Timing::timed`]) was made from the `Timing`:
    /// the outer layer alone records only the count and the total.
    pub split: u64,
    /// Requests per second since the previous snapshot (or the start).
    pub rps: f64,
    /// The whole request.
    pub total: LatencySummary,
    /// The handler alone.
    pub handler: LatencySummary,
    /// Each named middleware's own time, in the order first seen (outermost first).
    pub middleware: Vec<(String, LatencySummary)>,
    /// What no named layer nor the handler accounts for (routing, unnamed layers).
    pub other: LatencySummary,
}

impl RouteTiming {
    /// The named middleware whose mean own time is largest, with that mean, when it is
    /// larger than the handler's mean: the route's bottleneck is then a middleware.
    pub fn slowest_middleware(&self) -> Option<(&str, Duration)> {
        let (name, s) = self.middleware.iter().max_by_key(|(_, s)| s.mean)?;
        (s.mean > self.handler.mean).then_some((name.as_str(), s.mean))
    }
}

/// One shard's split gate: the theoretical time (ns since the start) of its next
/// split request (GCRA). On its own cache line: threads of different shards touch
/// theirs on every request.
#[repr(align(128))]
#[derive(Default)]
struct Gate(AtomicU64);

/// The default limit of split requests per second per thread ([`Timing::new`]): a
/// thousand samples a second per thread fill the split's histograms; past that, a
/// split request (a trace allocated and shared by the stages, six more clock reads,
/// three more histograms) costs more than the rest of the timing.
pub const SPLIT_PER_S: u32 = 1_000;

/// Split requests allowed back to back before the rate applies.
const SPLIT_BURST: u64 = 64;

/// The next registry's identity ([`Timing::owner`]).
static NEXT_OWNER: AtomicUsize = AtomicUsize::new(1);

struct Inner {
    shards: Box<[PaddedShard]>,
    gates: Box<[Gate]>,
    /// Nanoseconds between split requests on one shard (0: every request is split).
    split_gap_ns: u64,
    /// Whether a stage that records a part of the split ([`Timing::handler`],
    /// [`Timing::timed`]) was made: without one, no request carries a trace.
    split_stages: AtomicBool,
    /// The routes resolved once at construction ([`Timing::route`]); a route's index
    /// here is its id in the shards' `by_id`.
    names: Mutex<Vec<Arc<str>>>,
    /// The clock of [`Timing::wrap`] (the TSC where it is invariant: two reads and a
    /// scaling, no system call) and its reading when this registry was made.
    clock: quanta::Clock,
    origin: u64,
    /// This registry's identity ([`Timing::owner`]).
    owner: usize,
    /// Per route: the time and count of the previous snapshot.
    last: Mutex<HashMap<String, (Instant, u64)>>,
    started: Instant,
}

/// Request timing for an axum app (cheap to clone): see the [module docs](crate::timing).
///
/// Make one per app, not per request: its layers share one registry (an `Arc`; axum
/// clones a layer's service per request, which costs one reference count update on a
/// counter shared by the worker threads: measured within noise, see the orbit-bench
/// README's web section). The registry is freed with the last clone.
#[derive(Clone)]
pub struct Timing {
    inner: Arc<Inner>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing::new()
    }
}

impl std::fmt::Debug for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Timing({} shards)", self.inner.shards.len())
    }
}

impl Timing {
    /// A timing registry with no routes yet, splitting at most [`SPLIT_PER_S`]
    /// requests per second per thread ([`with_split_rate`](Self::with_split_rate)).
    pub fn new() -> Timing {
        Timing::with_split_rate(Some(SPLIT_PER_S))
    }

    /// A timing registry whose middleware/handler split is recorded for at most
    /// `max_per_s` requests per second per worker thread (after a burst of 64), or for
    /// every request with `None`.
    ///
    /// Every request is counted and its total recorded; the split costs six more
    /// clock reads per request (three per named middleware pair, two for the handler),
    /// and a clock read is not cheap on every machine (a virtual machine that traps
    /// `rdtsc` makes each one cost 50–200 ns). Past the limit, the split requests are
    /// spread evenly in time, a sample of the route's traffic.
    pub fn with_split_rate(max_per_s: Option<u32>) -> Timing {
        // A power of two ([`shard_index`]).
        let n = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(1, 16)
            .next_power_of_two();
        let split_gap_ns = match max_per_s {
            None => 0,
            Some(r) => 1_000_000_000 / u64::from(r.max(1)),
        };
        let clock = quanta::Clock::new();
        Timing {
            inner: Arc::new(Inner {
                shards: (0..n).map(|_| PaddedShard::default()).collect(),
                gates: (0..n).map(|_| Gate::default()).collect(),
                split_gap_ns,
                split_stages: AtomicBool::new(false),
                names: Mutex::new(Vec::new()),
                origin: clock.raw(),
                clock,
                owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
                last: Mutex::new(HashMap::new()),
                started: Instant::now(),
            }),
        }
    }

    /// The outermost layer: times whole requests (add it last, with `Router::layer`).
    pub fn layer(&self) -> TimingLayer {
        ProbeLayer {
            probe: RequestProbe {
                timing: self.clone(),
            },
        }
    }

    /// `layer`, its own time recorded under `name`.
    pub fn timed<L>(&self, name: &'static str, layer: L) -> Timed<L> {
        self.inner.split_stages.store(true, Ordering::Relaxed);
        Timed { name, layer }
    }

    /// The innermost layer, timing the handler (add it with `Router::route_layer`).
    pub fn handler(&self) -> HandlerLayer {
        self.inner.split_stages.store(true, Ordering::Relaxed);
        ProbeLayer {
            probe: HandlerProbe,
        }
    }

    /// The cheapest way to time an app: the whole `router` as one service, timed from
    /// outside (serve it with `axum::serve(listener, timing.wrap(router))`).
    ///
    /// Unlike [`layer`](Self::layer), which axum applies to every route (boxing each
    /// route's service and future once more per request), the wrapper adds no box; it
    /// learns the route from the handler, which must be made with
    /// [`route`](Self::route) of this same `Timing`: requests that reach a handler
    /// not made so (or no handler: 404) are not timed. The split stages ([`timed`](Self::timed),
    /// [`handler`](Self::handler)) work inside it as they do under `layer`.
    pub fn wrap(&self, router: axum::Router) -> TimedRouter {
        TimedRouter::new(router, self.clone())
    }

    /// `handler`, recorded under `route` by [`wrap`](Self::wrap) (by convention the
    /// path it is routed at: `get(timing.route("/users/{id}", show))`). The name is
    /// resolved once, here: recording needs no lookup. Otherwise it is the handler,
    /// unchanged (its future is the handler's own); under [`layer`](Self::layer) it is
    /// a plain handler (the layer names routes by their matched path). The handler's
    /// own time, for the split, comes from [`handler`](Self::handler) as usual.
    pub fn route<H>(&self, route: &str, handler: H) -> RouteHandler<H> {
        RouteHandler::new(handler, self.route_id(route), self.owner())
    }

    /// Every route's timing; `rps` counts the requests since the previous snapshot.
    pub fn snapshot(&self) -> Vec<RouteTiming> {
        // Merge the shards.
        let names = self.inner.names.lock().clone();
        let mut merged: HashMap<Arc<str>, RouteShard> = HashMap::new();
        for shard in self.inner.shards.iter() {
            let shard = shard.0.lock();
            for (route, r) in &shard.routes {
                let m = merged.entry(route.clone()).or_insert_with(RouteShard::new);
                m.merge(r);
            }
            for (id, r) in shard.by_id.iter().enumerate() {
                if let (Some(r), Some(route)) = (r, names.get(id)) {
                    let m = merged.entry(route.clone()).or_insert_with(RouteShard::new);
                    m.merge(&r.rest);
                    r.total.add_to(&mut m.total);
                }
            }
        }
        let now = Instant::now();
        let mut last = self.inner.last.lock();
        let mut v: Vec<RouteTiming> = merged
            .into_iter()
            .map(|(route, r)| {
                let (t0, c0) = last
                    .get(&*route)
                    .copied()
                    .unwrap_or((self.inner.started, 0));
                let dt = now.duration_since(t0).as_secs_f64();
                let rps = if dt > 0.0 {
                    r.count.saturating_sub(c0) as f64 / dt
                } else {
                    0.0
                };
                last.insert(route.to_string(), (now, r.count));
                RouteTiming {
                    route: route.to_string(),
                    count: r.count,
                    split: r.split,
                    rps,
                    total: summarize(&r.total),
                    handler: summarize(&r.handler),
                    middleware: r
                        .layers
                        .iter()
                        .map(|(n, h)| (n.to_string(), summarize(h)))
                        .collect(),
                    other: summarize(&r.other),
                }
            })
            .collect();
        v.sort_by(|a, b| a.route.cmp(&b.route));
        v
    }

    /// Whether the request starting `now` on this thread is split (GCRA: allowed while
    /// the shard's next theoretical split time is at most a burst ahead of `now`).
    fn split_now(&self, now: Instant) -> bool {
        if !self.inner.split_stages.load(Ordering::Relaxed) {
            return false;
        }
        self.split_gated(now.saturating_duration_since(self.inner.started).as_nanos() as u64)
    }

    /// [`split_now`](Self::split_now) at `t` ns since the start, past the check for a
    /// split stage (its callers make it).
    fn split_gated(&self, t: u64) -> bool {
        let gap = self.inner.split_gap_ns;
        if gap == 0 {
            return true;
        }
        let gate = &self.inner.gates[shard_index(self.inner.gates.len())].0;
        let tat = gate.load(Ordering::Relaxed);
        if tat > t.saturating_add(gap.saturating_mul(SPLIT_BURST)) {
            return false;
        }
        // Threads sharing a shard may race here: one split more or less, no harm.
        gate.store(tat.max(t).saturating_add(gap), Ordering::Relaxed);
        true
    }

    /// The id of the route named `name` (resolved once, when a [`RouteHandler`] is
    /// made): the same name gives the same id.
    fn route_id(&self, name: &str) -> u32 {
        let mut names = self.inner.names.lock();
        if let Some(i) = names.iter().position(|n| &**n == name) {
            return i as u32;
        }
        names.push(Arc::from(name));
        (names.len() - 1) as u32
    }

    /// This registry's identity (unique in the process, never 0), which route ids
    /// belong to.
    #[inline]
    fn owner(&self) -> usize {
        self.inner.owner
    }

    /// A reading of [`Timing::wrap`]'s clock.
    #[inline]
    fn now_raw(&self) -> u64 {
        self.inner.clock.raw()
    }

    /// Whether the request starting at `raw` ([`now_raw`](Self::now_raw)) is split.
    #[inline]
    fn split_raw(&self, raw: u64) -> bool {
        // Checked here, inline: without a split stage, this is all a request pays.
        if !self.inner.split_stages.load(Ordering::Relaxed) {
            return false;
        }
        self.split_raw_gated(raw)
    }

    /// [`split_raw`](Self::split_raw) past its first check.
    #[inline(never)]
    fn split_raw_gated(&self, raw: u64) -> bool {
        let i = &self.inner;
        self.split_gated(i.clock.delta_as_nanos(i.origin, raw))
    }

    /// Records a request of the route `id` ([`Timing::route`]) that started at `start`
    /// ([`now_raw`](Self::now_raw)).
    #[inline]
    fn finish_id(&self, id: u32, status: u16, start: u64, t: Option<&Trace>) {
        let ns = self.inner.clock.delta_as_nanos(start, self.now_raw());
        // The common case inline: no split, no telemetry handler, the route already
        // in this thread's shard.
        if t.is_none() && !orbit::telemetry::enabled() && self.count_id(id, ns) {
            return;
        }
        self.finish_id_slow(id, status, ns, t);
    }

    /// Counts a request of the route `id` that took `ns` in this thread's shard, when
    /// the route is there already (false: nothing done).
    #[inline]
    fn count_id(&self, id: u32, ns: u64) -> bool {
        let shards = &self.inner.shards;
        let Some(shard) = shards.get(shard_index(shards.len())) else {
            return false;
        };
        let mut shard = shard.0.lock();
        match shard.by_id.get_mut(id as usize) {
            Some(Some(r)) => {
                r.count(ns);
                true
            }
            _ => false,
        }
    }

    /// [`finish_id`](Self::finish_id) in full: a new route in this shard, a split
    /// request, a telemetry handler attached.
    #[cold]
    #[inline(never)]
    fn finish_id_slow(&self, id: u32, status: u16, ns: u64, t: Option<&Trace>) {
        let total = Duration::from_nanos(ns);
        let accounted = {
            let shards = &self.inner.shards;
            let mut shard = shards[shard_index(shards.len())].0.lock();
            let i = id as usize;
            if shard.by_id.len() <= i {
                shard.by_id.resize_with(i + 1, || None);
            }
            let r = shard.by_id[i].get_or_insert_with(|| IdRoute {
                total: Flat::new(),
                rest: RouteShard::new(),
            });
            r.count(ns);
            match t {
                Some(t) => r.rest.record_split(total, t),
                None => Duration::ZERO,
            }
        };
        if orbit::telemetry::enabled() {
            let name = self.inner.names.lock().get(id as usize).cloned();
            if let Some(name) = name {
                emit(&name, status, total, accounted, t);
            }
        }
    }

    /// Records a request of the route axum matched ([`Timing::layer`]).
    fn finish(&self, path: &MatchedPath, status: u16, total: Duration, t: Option<&Trace>) {
        let accounted = {
            let shards = &self.inner.shards;
            let mut shard = shards[shard_index(shards.len())].0.lock();
            match shard.routes.get_mut(path.as_str()) {
                Some(r) => r.record(total, t),
                None => shard
                    .routes
                    .entry(Arc::from(path.as_str()))
                    .or_insert_with(RouteShard::new)
                    .record(total, t),
            }
        };
        if orbit::telemetry::enabled() {
            emit(path.as_str(), status, total, accounted, t);
        }
    }
}

/// Emits `[orbit, web, request]` for one timed request.
fn emit(route: &str, status: u16, total: Duration, accounted: Duration, t: Option<&Trace>) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let handler = t.and_then(|t| t.handler).unwrap_or_default();
    let mw = accounted.saturating_sub(handler);
    let split = [
        ("duration_us", us(total)),
        ("handler_us", us(handler)),
        ("middleware_us", us(mw)),
    ];
    let n = if t.is_some() { 3 } else { 1 };
    orbit::telemetry::execute(
        &["orbit", "web", "request"],
        &split[..n],
        &[("route", &route), ("status", &status)],
    );
}
