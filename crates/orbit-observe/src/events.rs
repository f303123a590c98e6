//! Telemetry events turned into metrics: orbit-observe attaches handlers (ids starting
//! `orbit-observe/`) to the events the runtime emits and keeps these series:
//!
//! | event | series |
//! |---|---|
//! | `[orbit, stage, demand]` | gauges `orbit_stage_buffered`, `orbit_stage_pending_demand`, `orbit_stage_upstream_demand`, counters `orbit_stage_events_in_total`, `orbit_stage_events_out_total` (label `stage`: the stage's pid) |
//! | `[orbit, pool, checkout]` | gauge `orbit_pool_queue_length` (label `pool`: the manager's pid) |
//! | `[orbit, supervisor, child_restart]` | counter `orbit_supervisor_restarts_total` (labels `supervisor`, `child`) |
//! | `[orbit, gen_server, call]` | histogram `orbit_call_duration_seconds` (sampled calls: one in 64 per thread) |
//! | `[orbit, dist, node_up]`, `[orbit, dist, node_down]` | counters `orbit_dist_node_up_total`, `orbit_dist_node_down_total` |
//!
//! Handlers run in the emitting process and only set a series (a map lookup; the call
//! histogram is bound when the handlers are attached, so a sampled call does no lookup). Attaching
//! them turns on event building everywhere, so it is part of what the `observe`
//! benchmark measures.

use orbit::telemetry::{self, Event};

/// The handler ids [`attach`] uses.
const IDS: &[&str] = &[
    "orbit-observe/stage-demand",
    "orbit-observe/pool-checkout",
    "orbit-observe/supervisor-restart",
    "orbit-observe/node-up",
    "orbit-observe/node-down",
    "orbit-observe/call",
];

/// Users of the handlers: [`attach`] counts up, [`detach`] down; the handlers go at 0,
/// so stopping one dashboard does not blind another.
static USERS: parking_lot::Mutex<usize> = parking_lot::Mutex::new(0);

/// Attaches the handlers for one more user (see [`detach`]).
pub fn attach() {
    let mut users = USERS.lock();
    *users += 1;
    // `AlreadyExists` means attached: fine.
    let _ = telemetry::attach(IDS[0], &["orbit", "stage", "demand"], stage_demand);
    let _ = telemetry::attach(IDS[1], &["orbit", "pool", "checkout"], |ev: &Event<'_>| {
        let pool = ev.meta("pool").unwrap_or_default();
        if let Some(q) = ev.measurement("queue_length") {
            metrics::gauge!("orbit_pool_queue_length", "pool" => pool).set(q);
        }
    });
    let _ = telemetry::attach(
        IDS[2],
        &["orbit", "supervisor", "child_restart"],
        |ev: &Event<'_>| {
            let sup = ev.meta("supervisor").unwrap_or_default();
            let child = ev.meta("child").unwrap_or_default();
            metrics::counter!("orbit_supervisor_restarts_total", "supervisor" => sup, "child" => child)
                .increment(1);
        },
    );
    let _ = telemetry::attach(IDS[3], &["orbit", "dist", "node_up"], |_: &Event<'_>| {
        metrics::counter!("orbit_dist_node_up_total").increment(1);
    });
    let _ = telemetry::attach(IDS[4], &["orbit", "dist", "node_down"], |_: &Event<'_>| {
        metrics::counter!("orbit_dist_node_down_total").increment(1);
    });
    // Bound once here, not looked up in the recorder's registry at every sampled call.
    let calls = metrics::histogram!("orbit_call_duration_seconds");
    let _ = telemetry::attach(
        IDS[5],
        &["orbit", "gen_server", "call"],
        move |ev: &Event<'_>| {
            if let Some(us) = ev.measurement("duration_us") {
                calls.record(us / 1e6);
            }
        },
    );
}

/// One user fewer; the last one detaches every handler [`attach`] attached.
pub fn detach() {
    let mut users = USERS.lock();
    *users = users.saturating_sub(1);
    if *users > 0 {
        return;
    }
    for id in IDS {
        telemetry::detach(id);
    }
}

fn stage_demand(ev: &Event<'_>) {
    let stage = ev.meta("stage").unwrap_or_default();
    let m = |k: &str| ev.measurement(k).unwrap_or(0.0);
    metrics::gauge!("orbit_stage_buffered", "stage" => stage.clone()).set(m("buffered"));
    metrics::gauge!("orbit_stage_pending_demand", "stage" => stage.clone())
        .set(m("pending_demand"));
    metrics::gauge!("orbit_stage_upstream_demand", "stage" => stage.clone())
        .set(m("upstream_demand"));
    metrics::counter!("orbit_stage_events_in_total", "stage" => stage.clone())
        .absolute(m("events_in") as u64);
    metrics::counter!("orbit_stage_events_out_total", "stage" => stage)
        .absolute(m("events_out") as u64);
}
