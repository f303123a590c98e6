//! `contention`: tail latency with 8 senders into one receiver.
//!
//! Every subject runs on a fresh multi-thread tokio runtime with **2 worker threads** (the
//! machine's cores; [`crate::util::runtime`]): one receiver and 8 senders share them.
//!
//! Subjects (the same message, the same per-item work on the receiver):
//! - `orbit`: the receiver is an `orbit::spawn` process looping on `Context::recv`; the 8
//!   senders are `orbit::spawn` processes each holding a clone of the receiver's
//!   `Handle`, calling `Handle::send` (processes sending to a process, as an Orbit user
//!   writes it; counters on, the default);
//! - `tokio`: a task reading an unbounded `tokio::sync::mpsc` channel (the closest thing to
//!   a mailbox), 8 sender tasks calling `UnboundedSender::send`;
//! - `tokio_bounded`: the same with `mpsc::channel(1024)` and `Sender::send(..).await`
//!   (backpressure: in the saturated variant its senders wait, so its latency is bounded
//!   by the queue and is not comparable with the unbounded subjects; shown for reference);
//! - `flume`: a task on `flume::unbounded`'s `recv_async`, 8 sender tasks calling `send`.
//!
//! A message is `Msg { seq: u64, sent: Instant }`. **Latency** is from `sent`, stamped
//! just before the send call, to the moment the receiver's `recv` returned it; the
//! receiver records it in an `hdrhistogram` (ns, 3 significant digits), then does the
//! per-item work (a few multiply-rotate rounds over the sequence number). **Send-call
//! latency** is the time the send call itself took, recorded by each sender.
//!
//! Two variants, each with a fixed number of messages per sender per round:
//! - `saturated` (closed loop, no pacing): each sender sends [`SAT_PER_SENDER`] messages
//!   as fast as it can, yielding to the scheduler every [`YIELD_EVERY`] sends so the 8
//!   senders interleave. Unbounded queues grow while the receiver lags, so these
//!   latencies mostly measure queue length; `msgs_per_s` (first send to last receive) is
//!   the subject's saturation throughput.
//! - `paced` (open loop): after all saturated rounds, the target rate is
//!   [`PACED_FRACTION`] of the slowest subject's median saturated throughput (so every
//!   subject can sustain it), split evenly over the senders, for about
//!   [`PACED_SECS`] per round. Message `i` of a sender is due at `start + i / rate`; a
//!   sender sends every message already due, then sleeps with `tokio::time::sleep_until`
//!   until the next one is due (tokio's timer has 1 ms granularity, so senders send in
//!   bursts of about `rate / 1000` per ms, the same for every subject). This is the
//!   honest tail-latency comparison, and **the goal line uses it**.
//!
//! Rounds are interleaved, the subject order rotated each round. Per subject and variant
//! the **median over rounds** is reported, with the spread as `_min` / `_max` lines:
//! latency p50 / p99 / p99.9 in µs (`{variant}_latency_p50_us`, ...), throughput
//! (`{variant}_msgs_per_s`), send-call p50 / p99 / p99.9 in ns (median only) and CPU
//! time per message (`{variant}_cpu_ns_per_msg`: `getrusage(RUSAGE_SELF)` user+system
//! over the round divided by its messages; each subject runs alone in its round, but any
//! process-wide background thread, such as a clock thread of Orbit's, is charged to
//! whichever subject is running). `"subject": "setup"` lines state the worker threads,
//! senders, counts and the paced rate.
//!
//! Goal: `orbit_p999_paced_vs_best_of_tokio_flume_max_1.5x`, Orbit's paced p99.9 over
//! the better (smaller) of the unbounded `tokio` and `flume` paced p99.9: at most 1.5.
//! The saturated ratios are printed without a goal.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use crate::util::{least, median, on_runtime, per_s};

const SCENARIO: &str = "contention";
/// Senders per round.
const SENDERS: usize = 8;
/// Worker threads of every subject's runtime (see [`crate::util::runtime`]).
const WORKERS: usize = 2;
/// Messages per sender per saturated round.
const SAT_PER_SENDER: u64 = 250_000;
/// A sender yields to the scheduler after this many sends.
const YIELD_EVERY: u64 = 64;
/// The paced rate as a fraction of the slowest subject's saturated throughput.
const PACED_FRACTION: f64 = 0.5;
/// About how long one paced round sends for, in seconds.
const PACED_SECS: f64 = 0.5;
/// Capacity of the `tokio_bounded` channel.
const BOUNDED_CAP: usize = 1024;
/// Every subject, in the order of the first round.
const SUBJECTS: [&str; 4] = ["orbit", "tokio", "tokio_bounded", "flume"];
/// Largest latency a histogram records (longer ones saturate): 60 s in ns.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// The message every subject carries.
#[derive(Clone, Copy, Debug)]
struct Msg {
    seq: u64,
    sent: Instant,
}

/// How the senders send.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// As fast as they can (yielding every [`YIELD_EVERY`] sends).
    Saturated,
    /// Message `i` of each sender due at `start + i * interval`.
    Paced { interval: Duration },
}

/// What one subject's round measured.
struct RoundOut {
    lat: Histogram<u64>,
    call: Histogram<u64>,
    received: u64,
    elapsed: Duration,
    cpu: Duration,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("histogram bounds are valid")
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// User plus system CPU time of this whole process so far.
fn cpu_time() -> Duration {
    // SAFETY: `rusage` is plain data (all-zero is a valid value) and getrusage only
    // writes into the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The receiver's per-item work (the same for every subject).
#[inline]
fn work(acc: u64, seq: u64) -> u64 {
    let mut x = acc ^ seq;
    for _ in 0..8 {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    x
}

/// The sending side of one subject.
trait Tx: Send + 'static {
    /// Sends one message (waiting for room only on a bounded channel).
    fn send(&mut self, m: Msg) -> impl Future<Output = ()> + Send;
}

/// The receiving side of one subject.
trait Rx: Send + 'static {
    /// The next message, `None` when the channel closed.
    fn recv(&mut self) -> impl Future<Output = Option<Msg>> + Send;
}

struct OrbitTx(orbit::Handle<Msg>);
impl Tx for OrbitTx {
    async fn send(&mut self, m: Msg) {
        let _ = self.0.send(m);
    }
}

struct OrbitRx(orbit::Context<Msg>);
impl Rx for OrbitRx {
    async fn recv(&mut self) -> Option<Msg> {
        loop {
            if let orbit::Message::Msg(m) = self.0.recv().await {
                return Some(m);
            }
        }
    }
}

#[derive(Clone)]
struct TokioTx(mpsc::UnboundedSender<Msg>);
impl Tx for TokioTx {
    async fn send(&mut self, m: Msg) {
        let _ = self.0.send(m);
    }
}

struct TokioRx(mpsc::UnboundedReceiver<Msg>);
impl Rx for TokioRx {
    async fn recv(&mut self) -> Option<Msg> {
        self.0.recv().await
    }
}

#[derive(Clone)]
struct BoundedTx(mpsc::Sender<Msg>);
impl Tx for BoundedTx {
    async fn send(&mut self, m: Msg) {
        let _ = self.0.send(m).await;
    }
}

struct BoundedRx(mpsc::Receiver<Msg>);
impl Rx for BoundedRx {
    async fn recv(&mut self) -> Option<Msg> {
        self.0.recv().await
    }
}

#[derive(Clone)]
struct FlumeTx(flume::Sender<Msg>);
impl Tx for FlumeTx {
    async fn send(&mut self, m: Msg) {
        let _ = self.0.send(m);
    }
}

struct FlumeRx(flume::Receiver<Msg>);
impl Rx for FlumeRx {
    async fn recv(&mut self) -> Option<Msg> {
        self.0.recv_async().await.ok()
    }
}

/// Sends message `i` of a sender, recording the send call's duration in `call`, and
/// yields to the scheduler every [`YIELD_EVERY`] sends.
async fn send_one<T: Tx>(tx: &mut T, seq: u64, i: u64, call: &mut Histogram<u64>) {
    let sent = Instant::now();
    tx.send(Msg { seq, sent }).await;
    call.saturating_record(ns(sent.elapsed()));
    if (i + 1).is_multiple_of(YIELD_EVERY) {
        tokio::task::yield_now().await;
    }
}

/// One sender: `n` messages in `mode`, from `start`; returns its send-call histogram.
async fn sender<T: Tx>(
    mut tx: T,
    id: u64,
    n: u64,
    mode: Mode,
    start: Instant,
    mut call: Histogram<u64>,
) -> Histogram<u64> {
    let base = id << 40;
    let mut i = 0u64;
    match mode {
        Mode::Saturated => {
            while i < n {
                send_one(&mut tx, base | i, i, &mut call).await;
                i += 1;
            }
        }
        Mode::Paced { interval } => {
            let step = interval.as_secs_f64();
            while i < n {
                let due = ((start.elapsed().as_secs_f64() / step) as u64 + 1).min(n);
                while i < due {
                    send_one(&mut tx, base | i, i, &mut call).await;
                    i += 1;
                }
                if i < n {
                    let next = start + interval.mul_f64(i as f64);
                    tokio::time::sleep_until(next.into()).await;
                }
            }
        }
    }
    call
}

/// The receiver: takes `total` messages, recording each one's latency, then the work.
/// Returns the latency histogram, how many arrived and when the last one did.
async fn receiver<R: Rx>(mut rx: R, total: u64) -> (Histogram<u64>, u64, Instant) {
    let mut lat = histogram();
    let mut acc = 0u64;
    let mut got = 0u64;
    let mut last = Instant::now();
    while got < total {
        let Some(m) = rx.recv().await else { break };
        last = Instant::now();
        lat.saturating_record(ns(last.saturating_duration_since(m.sent)));
        acc = work(acc, m.seq);
        got += 1;
    }
    black_box(acc);
    (lat, got, last)
}

/// Runs one round of `subject` with `n` messages per sender.
fn round(subject: &str, n: u64, mode: Mode) -> RoundOut {
    match subject {
        "orbit" => orbit_round(n, mode),
        "tokio" => {
            let (tx, rx) = mpsc::unbounded_channel();
            task_round(n, mode, TokioTx(tx), TokioRx(rx))
        }
        "tokio_bounded" => {
            let (tx, rx) = mpsc::channel(BOUNDED_CAP);
            task_round(n, mode, BoundedTx(tx), BoundedRx(rx))
        }
        "flume" => {
            let (tx, rx) = flume::unbounded();
            task_round(n, mode, FlumeTx(tx), FlumeRx(rx))
        }
        other => unreachable!("unknown contention subject {other}"),
    }
}

/// Orbit: one receiving process, 8 sending processes.
fn orbit_round(n: u64, mode: Mode) -> RoundOut {
    on_runtime(move || async move {
        let total = n * SENDERS as u64;
        let cpu0 = cpu_time();
        let (done_tx, done_rx) = oneshot::channel();
        let sink = orbit::spawn(move |ctx: orbit::Context<Msg>| async move {
            let _ = done_tx.send(receiver(OrbitRx(ctx), total).await);
        })
        .expect("orbit::spawn");
        let hists: Vec<Histogram<u64>> = (0..SENDERS).map(|_| histogram()).collect();
        let start = Instant::now();
        let mut calls = Vec::with_capacity(SENDERS);
        for (id, call) in hists.into_iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            let to = OrbitTx(sink.clone());
            orbit::spawn(move |_ctx: orbit::Context<()>| async move {
                let _ = tx.send(sender(to, id as u64, n, mode, start, call).await);
            })
            .expect("orbit::spawn");
            calls.push(rx);
        }
        let (lat, received, last) = done_rx.await.expect("orbit receiver finished");
        let mut call = histogram();
        for rx in calls {
            let h = rx.await.expect("orbit sender finished");
            call.add(&h).expect("same histogram bounds");
        }
        sink.wait_exit().await;
        RoundOut {
            lat,
            call,
            received,
            elapsed: last.saturating_duration_since(start),
            cpu: cpu_time().saturating_sub(cpu0),
        }
    })
}

/// A channel subject: one receiving task, 8 sending tasks, each with a clone of `tx`.
fn task_round<T: Tx + Clone, R: Rx>(n: u64, mode: Mode, tx: T, rx: R) -> RoundOut {
    on_runtime(move || async move {
        let total = n * SENDERS as u64;
        let cpu0 = cpu_time();
        let sink = tokio::spawn(receiver(rx, total));
        let hists: Vec<Histogram<u64>> = (0..SENDERS).map(|_| histogram()).collect();
        let start = Instant::now();
        let mut calls = Vec::with_capacity(SENDERS);
        for (id, call) in hists.into_iter().enumerate() {
            let tx = tx.clone();
            calls.push(tokio::spawn(sender(tx, id as u64, n, mode, start, call)));
        }
        // The original sender is dropped here, so the channel closes once the sender
        // tasks finish.
        drop(tx);
        let (lat, received, last) = sink.await.expect("receiver task finished");
        let mut call = histogram();
        for c in calls {
            let h = c.await.expect("sender task finished");
            call.add(&h).expect("same histogram bounds");
        }
        RoundOut {
            lat,
            call,
            received,
            elapsed: last.saturating_duration_since(start),
            cpu: cpu_time().saturating_sub(cpu0),
        }
    })
}

/// Figures per (variant, subject, metric), one per round.
#[derive(Default)]
struct Figures(HashMap<(&'static str, &'static str, &'static str), Vec<f64>>);

impl Figures {
    fn add(&mut self, variant: &'static str, subject: &'static str, out: &RoundOut) {
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let nsq = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
        let msgs = out.received.max(1);
        let rows: [(&'static str, f64); 8] = [
            ("latency_p50_us", us(&out.lat, 0.5)),
            ("latency_p99_us", us(&out.lat, 0.99)),
            ("latency_p999_us", us(&out.lat, 0.999)),
            ("msgs_per_s", per_s(out.received, out.elapsed)),
            ("send_call_p50_ns", nsq(&out.call, 0.5)),
            ("send_call_p99_ns", nsq(&out.call, 0.99)),
            ("send_call_p999_ns", nsq(&out.call, 0.999)),
            ("cpu_ns_per_msg", out.cpu.as_nanos() as f64 / msgs as f64),
        ];
        for (metric, v) in rows {
            self.0
                .entry((variant, subject, metric))
                .or_default()
                .push(v);
        }
    }

    fn of(&self, variant: &str, subject: &str, metric: &str) -> &[f64] {
        self.0
            .iter()
            .find(|((v, s, m), _)| *v == variant && *s == subject && *m == metric)
            .map_or(&[], |(_, xs)| xs.as_slice())
    }

    fn median(&self, variant: &str, subject: &str, metric: &str) -> Option<f64> {
        median(self.of(variant, subject, metric))
    }
}

/// Runs `rounds` interleaved rounds of every subject (order rotated each round).
fn rounds(figs: &mut Figures, variant: &'static str, rounds: usize, n: u64, mode: Mode) {
    for r in 0..rounds {
        let mut order = SUBJECTS;
        order.rotate_left(r % SUBJECTS.len());
        for s in order {
            let out = round(s, n, mode);
            let expected = n * SENDERS as u64;
            if out.received != expected {
                eprintln!(
                    "contention: {variant} {s} round {r}: received {} of {expected}",
                    out.received
                );
            }
            figs.add(variant, s, &out);
        }
    }
}

/// Emits one subject's figures of one variant.
fn emit(ctx: &mut Ctx, figs: &Figures, variant: &str, subject: &str) {
    for metric in [
        "latency_p50_us",
        "latency_p99_us",
        "latency_p999_us",
        "msgs_per_s",
    ] {
        let xs = figs.of(variant, subject, metric);
        let name = format!("{variant}_{metric}");
        ctx.emit_opt(SCENARIO, subject, &name, median(xs));
        ctx.emit_opt(SCENARIO, subject, &format!("{name}_min"), least(xs));
        ctx.emit_opt(
            SCENARIO,
            subject,
            &format!("{name}_max"),
            crate::util::best(xs),
        );
    }
    for metric in [
        "send_call_p50_ns",
        "send_call_p99_ns",
        "send_call_p999_ns",
        "cpu_ns_per_msg",
    ] {
        let v = figs.median(variant, subject, metric);
        ctx.emit_opt(SCENARIO, subject, &format!("{variant}_{metric}"), v);
    }
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n_sat = ctx.n(SAT_PER_SENDER);
    let mut figs = Figures::default();
    ctx.rep
        .emit(SCENARIO, "setup", "worker_threads", WORKERS as f64);
    ctx.rep.emit(SCENARIO, "setup", "senders", SENDERS as f64);
    ctx.rep.emit(SCENARIO, "setup", "rounds", ctx.rounds as f64);
    ctx.rep
        .emit(SCENARIO, "setup", "saturated_msgs_per_sender", n_sat as f64);

    rounds(&mut figs, "saturated", ctx.rounds, n_sat, Mode::Saturated);

    // The paced rate: a fraction of the slowest subject's median saturated throughput.
    let slowest = SUBJECTS
        .iter()
        .filter_map(|s| figs.median("saturated", s, "msgs_per_s"))
        .fold(f64::INFINITY, f64::min);
    let rate = if slowest.is_finite() && slowest > 0.0 {
        slowest * PACED_FRACTION
    } else {
        100_000.0
    };
    let per_sender_rate = rate / SENDERS as f64;
    let n_paced = ctx.n(((per_sender_rate * PACED_SECS) as u64).max(1));
    let interval = Duration::from_secs_f64(1.0 / per_sender_rate);
    ctx.rep
        .emit(SCENARIO, "setup", "paced_target_msgs_per_s", rate);
    ctx.rep.emit(
        SCENARIO,
        "setup",
        "paced_fraction_of_slowest",
        PACED_FRACTION,
    );
    ctx.rep
        .emit(SCENARIO, "setup", "paced_msgs_per_sender", n_paced as f64);

    rounds(
        &mut figs,
        "paced",
        ctx.rounds,
        n_paced,
        Mode::Paced { interval },
    );

    for variant in ["saturated", "paced"] {
        for s in SUBJECTS {
            emit(ctx, &figs, variant, s);
        }
    }
    for s in SUBJECTS {
        if let Some(got) = figs.median("paced", s, "msgs_per_s") {
            if got < rate * 0.95 {
                eprintln!(
                    "contention: {s} did not sustain the paced rate ({got:.0} of {rate:.0} msgs/s)"
                );
            }
        }
    }

    // Orbit's p99.9 over the better (smaller) of unbounded tokio and flume.
    let best_peer = |figs: &Figures, variant: &str, metric: &str| {
        least(
            &["tokio", "flume"]
                .iter()
                .filter_map(|s| figs.median(variant, s, metric))
                .collect::<Vec<_>>(),
        )
    };
    let o = figs.median("paced", "orbit", "latency_p999_us");
    let b = best_peer(&figs, "paced", "latency_p999_us");
    ctx.goal(
        SCENARIO,
        "orbit_p999_paced_vs_best_of_tokio_flume_max_1.5x",
        o,
        b,
    );
    let o = figs.median("saturated", "orbit", "latency_p999_us");
    let b = best_peer(&figs, "saturated", "latency_p999_us");
    ctx.goal(
        SCENARIO,
        "orbit_p999_saturated_vs_best_of_tokio_flume",
        o,
        b,
    );
    let o = figs.median("saturated", "orbit", "msgs_per_s");
    let b = crate::util::best(
        &["tokio", "flume"]
            .iter()
            .filter_map(|s| figs.median("saturated", s, "msgs_per_s"))
            .collect::<Vec<_>>(),
    );
    ctx.goal(
        SCENARIO,
        "orbit_msgs_per_s_saturated_vs_best_of_tokio_flume",
        o,
        b,
    );
}
