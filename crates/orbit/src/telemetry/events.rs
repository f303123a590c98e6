//! `:telemetry`-style events: named events with numeric measurements and metadata,
//! delivered synchronously to attached handlers.
//!
//! As Erlang's `telemetry` library: [`attach`] a handler under a unique id for one event
//! name, [`detach`] it by id, and [`execute`] an event from anywhere. Handlers run in the
//! emitting thread, in attach order, and must be quick. A handler that panics is
//! detached (as `telemetry` detaches a handler that raises) and the emitter carries on.
//! With nothing attached, [`execute`] costs one atomic load; with handlers attached to
//! other events only, an atomic load and a few arithmetic operations (a 64-bit mask of
//! the attached names' hashes filters most events before the handler list is read).
//! Emitters that build measurements check [`enabled`] first.
//!
//! Events Orbit emits (measurements; metadata):
//!
//! | event | measurements | metadata |
//! |---|---|---|
//! | `[orbit, pool, checkout]` | `queue_time_us` (time from the checkout call to the lease), `queue_length` (callers queued after it) | `pool` (manager pid) |
//! | `[orbit, cache, hit]`, `[orbit, cache, miss]` | `count` = 1 | `cache` (name or owner pid) |
//! | `[orbit, cache, expire]` | `count` (items one sweep expired), `size` (items left) | `cache` |
//! | `[orbit, stage, dispatch]` | `events` (a batch sent to a consumer) | `producer` (pid) |
//! | `[orbit, stage, demand]` | `buffered`, `pending_demand` (consumers' demand not yet met), `upstream_demand` (asked of producers, not yet received), `events_in`, `events_out` (totals), after each message a stage handles | `stage` (pid) |
//! | `[orbit, gen_server, call]` | `duration_us` (call to reply, one call in `sample_every` = [`CALL_SAMPLE_EVERY`](crate::gen_server::CALL_SAMPLE_EVERY) per thread), `ok` (1 or 0) | `server` (pid) |
//! | `[orbit, supervisor, child_restart]` | `count` = 1 | `supervisor`, `child` (id) |
//! | `[orbit, dist, node_up]`, `[orbit, dist, node_down]` | `count` = 1 | `node` |
//!
//! Differences from `telemetry`: an event name is a list of strings (Erlang: atoms),
//! measurements are `(name, f64)` pairs, metadata `(name, &dyn Display)` pairs; there
//! are no spans and no handler config term (capture it in the closure).

use std::fmt::Display;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// What a handler is given: the event's name, its measurements and its metadata.
pub struct Event<'a> {
    /// The event name, e.g. `["orbit", "pool", "checkout"]`.
    pub name: &'a [&'a str],
    /// Numeric measurements, e.g. `("queue_time_us", 12.0)`.
    pub measurements: &'a [(&'a str, f64)],
    /// Metadata, e.g. `("pool", &pid)`.
    pub metadata: &'a [(&'a str, &'a dyn Display)],
}

impl Event<'_> {
    /// The measurement named `key`, if present.
    pub fn measurement(&self, key: &str) -> Option<f64> {
        self.measurements
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// The metadata named `key`, formatted, if present.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }
}

type Handler = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

struct Attached {
    id: Arc<str>,
    name: Vec<String>,
    /// The name's [`name_bit`], compared before the name itself.
    bit: u64,
    handler: Handler,
}

impl Attached {
    fn handles(&self, event: &[&str], bit: u64) -> bool {
        self.bit == bit
            && self.name.len() == event.len()
            && self.name.iter().zip(event).all(|(a, b)| a == b)
    }
}

/// Why [`attach`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// A handler with this id is attached already (`{:error, :already_exists}`).
    #[error(
        "a telemetry handler with id {0:?} is already attached; detach it first or use another id"
    )]
    AlreadyExists(String),
}

static ATTACHED: AtomicUsize = AtomicUsize::new(0);
/// One bit per attached event name ([`name_bit`]); 0 when nothing is attached.
static NAMES: AtomicU64 = AtomicU64::new(0);
static HANDLERS: RwLock<Vec<Attached>> = RwLock::new(Vec::new());

/// A bit for an event name, from its length and its last segment (cheap; a collision
/// only sends an event to the full match).
#[inline]
fn name_bit(len: usize, last: &[u8]) -> u64 {
    let b = |i: usize| last.get(i).copied().unwrap_or(0) as usize;
    1u64 << ((len * 7 + last.len() * 13 + b(0) * 3 + b(1) + b(last.len().saturating_sub(1))) % 64)
}

fn bit_of(event: &[&str]) -> u64 {
    name_bit(event.len(), event.last().map_or(&[][..], |s| s.as_bytes()))
}

/// Recomputes [`NAMES`] and [`ATTACHED`] after a change (under the write lock).
fn publish(hs: &[Attached]) {
    let mask = hs.iter().map(|h| h.bit).fold(0, |a, b| a | b);
    NAMES.store(mask, Ordering::Relaxed);
    ATTACHED.store(hs.len(), Ordering::Relaxed);
}

/// True when any handler is attached (one atomic load): emitters skip building an
/// event otherwise.
#[inline]
pub fn enabled() -> bool {
    ATTACHED.load(Ordering::Relaxed) != 0
}

/// `:telemetry.attach/4`: calls `handler` for every event named `event`, under the
/// unique `handler_id`.
pub fn attach(
    handler_id: &str,
    event: &[&str],
    handler: impl Fn(&Event<'_>) + Send + Sync + 'static,
) -> Result<(), TelemetryError> {
    let mut hs = HANDLERS.write();
    if hs.iter().any(|h| &*h.id == handler_id) {
        return Err(TelemetryError::AlreadyExists(handler_id.to_string()));
    }
    hs.push(Attached {
        id: Arc::from(handler_id),
        name: event.iter().map(|s| s.to_string()).collect(),
        bit: bit_of(event),
        handler: Arc::new(handler),
    });
    publish(&hs);
    Ok(())
}

/// `:telemetry.detach/1`: removes the handler; false if no handler has this id.
pub fn detach(handler_id: &str) -> bool {
    let mut hs = HANDLERS.write();
    let before = hs.len();
    hs.retain(|h| &*h.id != handler_id);
    publish(&hs);
    hs.len() != before
}

/// The ids of the attached handlers whose event name starts with `prefix`
/// (`:telemetry.list_handlers/1`).
pub fn list_handlers(prefix: &[&str]) -> Vec<String> {
    HANDLERS
        .read()
        .iter()
        .filter(|h| h.name.len() >= prefix.len() && h.name.iter().zip(prefix).all(|(a, b)| a == b))
        .map(|h| h.id.to_string())
        .collect()
}

/// `:telemetry.execute/3`: calls every handler attached to `event`, in attach order,
/// in this thread. A handler that panics is detached; the panic goes no further.
#[inline]
pub fn execute(event: &[&str], measurements: &[(&str, f64)], metadata: &[(&str, &dyn Display)]) {
    let names = NAMES.load(Ordering::Relaxed);
    if names == 0 || names & bit_of(event) == 0 {
        return;
    }
    dispatch(event, measurements, metadata);
}

#[cold]
fn dispatch(event: &[&str], measurements: &[(&str, f64)], metadata: &[(&str, &dyn Display)]) {
    // Handlers run outside the lock, so one may attach, detach or emit. Most events have
    // one handler: it is taken without allocating (only a second one starts a Vec), and
    // a handler's id is looked up only if it panics.
    let bit = bit_of(event);
    let (first, rest) = {
        let hs = HANDLERS.read();
        let mut matching = hs.iter().filter(|h| h.handles(event, bit));
        let Some(first) = matching.next() else {
            return;
        };
        let rest: Vec<Handler> = matching.map(|h| h.handler.clone()).collect();
        (first.handler.clone(), rest)
    };
    let ev = Event {
        name: event,
        measurements,
        metadata,
    };
    for handler in std::iter::once(first).chain(rest) {
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| handler(&ev))) {
            // Only this handler's own attachment (a re-attached one under the same id
            // with another closure stays).
            let mut hs = HANDLERS.write();
            let id = hs
                .iter()
                .find(|h| Arc::ptr_eq(&h.handler, &handler))
                .map(|h| h.id.clone());
            hs.retain(|h| !Arc::ptr_eq(&h.handler, &handler));
            publish(&hs);
            drop(hs);
            // (`None`: detached meanwhile by another thread.)
            let id = id.as_deref().unwrap_or("(detached meanwhile)");
            tracing::error!(handler = %id, event = ?event, "telemetry handler panicked; detached");
            crate::exit::drop_payload(panic);
        }
    }
}
