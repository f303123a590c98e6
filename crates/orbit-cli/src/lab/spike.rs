//! Normal vs spike: a steady load on a service, then a burst, watched by the baseline
//! learner (`orbit::telemetry::Baseline`).
//!
//! The run lasts two variant durations: the first 40% is the warm-up (the learner
//! learns requests/s, latency p99 and the longest mailbox), the next 30% stays steady
//! (nothing should be flagged), the last 30% is the burst: every client stops pausing
//! between requests. The learner must flag the burst, naming the metric, its normal
//! range and the value seen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::telemetry::{Baseline, BaselineOptions, Deviation};
use orbit::{CallReply, Context, GenServer, ReplyTo, ServerContext};
use serde_json::{json, Map};

use super::measure::{spawn_clients, watch, Probe};
use super::report::{dur, num};
use super::{Error, Lab, Report};

const SCENARIO: &str = "spike";
/// The run lasts this many variant durations.
pub const DURATIONS: u64 = 2;
const LEARN: f64 = 0.4;
const BURST: f64 = 0.7;
/// Pause between a client's requests while the load is steady.
const PAUSE: Duration = Duration::from_millis(10);

/// The service under load: a little CPU work per request.
struct Service;

impl GenServer for Service {
    type Call = u64;
    type Reply = u64;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        x: u64,
        _: &mut ReplyTo<u64>,
        _: &mut ServerContext<Self>,
    ) -> CallReply<u64, ()> {
        let mut h = x;
        for _ in 0..64 {
            h = h.rotate_left(5).wrapping_mul(0x100_0000_01B3) ^ x;
        }
        CallReply::Reply(h)
    }
}

/// A flag raised by the learner.
struct Flag {
    t: f64,
    deviation: Deviation,
}

/// Runs the scenario.
pub async fn run(lab: &Lab) -> Result<Report, Error> {
    let service = orbit::gen_server::start(Service).await?;
    let total = lab.duration() * DURATIONS as u32;
    let burst = Arc::new(AtomicBool::new(false));
    let probe = Probe::new();
    let (s, b) = (service.clone(), burst.clone());
    let clients = spawn_clients(
        lab.clients(),
        &probe,
        move |i, probe: Arc<Probe>, _ctx: Context<()>| {
            let (service, burst) = (s.clone(), b.clone());
            async move {
                let mut rec = probe.recorder();
                let mut n = 0u64;
                while probe.running() {
                    let t = Instant::now();
                    let _ = service.call(i as u64 ^ n).await;
                    rec.time(t);
                    n += 1;
                    if !burst.load(Ordering::Relaxed) {
                        tokio::time::sleep(PAUSE).await;
                    } else if n.is_multiple_of(16) {
                        tokio::task::yield_now().await;
                    }
                }
            }
        },
    )?;

    // The first sample includes the clients' start; learn from the rest of the warm-up.
    let interval = lab.sample_interval().as_secs_f64();
    let warmup = ((total.as_secs_f64() * LEARN / interval) as u64)
        .saturating_sub(1)
        .max(3);
    let mut learner = Baseline::new(BaselineOptions {
        warmup,
        ..BaselineOptions::default()
    });
    learner
        .floor("latency_p99_us", 200.0)
        .floor("max_mailbox_len", 5.0);
    let burst_at = total.as_secs_f64() * BURST;
    let mut flags: Vec<Flag> = Vec::new();
    let mut first = true;
    let mut switched_at: Option<f64> = None;
    let result = watch(
        lab,
        SCENARIO,
        "steady, then burst",
        total,
        &probe,
        &clients,
        |p| {
            if std::mem::take(&mut first) {
                return;
            }
            for (metric, v) in [
                ("requests_per_s", p.rps),
                ("latency_p99_us", p.p99_us),
                ("max_mailbox_len", p.mailbox as f64),
            ] {
                if let Some(deviation) = learner.observe(metric, v) {
                    flags.push(Flag { t: p.t, deviation });
                }
            }
            // The next interval is the burst.
            if switched_at.is_none() && p.t + interval >= burst_at {
                burst.store(true, Ordering::Relaxed);
                switched_at = Some(p.t);
            }
        },
    )
    .await;
    service
        .stop(orbit::ExitReason::Normal, Duration::from_secs(5))
        .await
        .ok();

    let burst_start = switched_at.unwrap_or(burst_at);
    let (in_burst, false_alarms): (Vec<&Flag>, Vec<&Flag>) =
        flags.iter().partition(|f| f.t > burst_start);
    let mut facts = Map::new();
    facts.insert("burst_flagged".into(), json!(!in_burst.is_empty()));
    facts.insert("burst_start_s".into(), json!(burst_start));
    facts.insert("flags_in_burst".into(), json!(in_burst.len()));
    facts.insert("false_alarms".into(), json!(false_alarms.len()));
    if let Some(f) = in_burst.first() {
        facts.insert("flagged_at_s".into(), json!(f.t));
    }
    if let Some(f) = telling(&in_burst) {
        facts.insert("first_flag_s".into(), json!(f.t));
        facts.insert(
            "flag".into(),
            json!({
                "metric": f.deviation.metric,
                "normal_low": f.deviation.normal.low.max(0.0),
                "normal_high": f.deviation.normal.high,
                "observed": f.deviation.observed,
            }),
        );
    }
    let verdict = match in_burst.first() {
        Some(first) => {
            let rps = telling(&in_burst).unwrap_or(first);
            format!(
                "burst flagged {:.2} s after it began: {}; bottleneck: the service GenServer (peak mailbox {}){}",
                (first.t - burst_start).max(0.0),
                describe(&rps.deviation),
                num(result.peak_mailbox as f64),
                if false_alarms.is_empty() {
                    String::new()
                } else {
                    format!("; {} false alarm(s) before the burst", false_alarms.len())
                }
            )
        }
        None => "the burst was NOT flagged: the warm-up was too noisy or too short (run with a longer --duration)".into(),
    };
    Ok(Report {
        scenario: SCENARIO,
        title: format!(
            "{} clients pausing {:?} between requests, then none (from {:.1} s)",
            lab.clients(),
            PAUSE,
            burst_start
        ),
        results: vec![result],
        bottleneck: "the service GenServer".into(),
        verdict,
        facts,
    })
}

/// The flag that tells the burst best: requests/s above normal, else any metric above
/// normal (a loaded machine can make the first burst sample slower, not faster), else
/// the first.
fn telling<'a>(in_burst: &[&'a Flag]) -> Option<&'a Flag> {
    let high = |f: &&&Flag| f.deviation.is_high();
    in_burst
        .iter()
        .filter(high)
        .find(|f| f.deviation.metric == "requests_per_s")
        .or_else(|| in_burst.iter().find(high))
        .or(in_burst.first())
        .copied()
}

/// A deviation for people: the metric by its name, values in its unit, formatted by
/// [`num`], and the normal range clamped at 0 (none of these metrics can be negative,
/// though mean − k·σ can be).
fn describe(d: &Deviation) -> String {
    let (name, value): (&str, fn(f64) -> String) = match d.metric.as_str() {
        "requests_per_s" => ("requests/s", |v| num(v)),
        "latency_p99_us" => ("latency p99", |v| {
            dur(Duration::from_secs_f64(v.max(0.0) / 1e6))
        }),
        "max_mailbox_len" => ("longest mailbox", |v| num(v)),
        _ => (d.metric.as_str(), |v| num(v)),
    };
    format!(
        "{name} {} is {} its normal range {}–{} (mean {} over {} samples)",
        value(d.observed),
        if d.is_high() { "above" } else { "below" },
        value(d.normal.low.max(0.0)),
        value(d.normal.high.max(0.0)),
        value(d.normal.mean),
        d.normal.samples
    )
}
