//! `call_timer`: what the timeout of a call costs, timer design by timer design. The
//! work is the `call` scenario's (1M sequential calls to an orbit counter GenServer
//! from an orbit process, on a fresh 2-worker runtime); only the timer around each
//! reply wait differs. Every design starts its timer only when the call is not ready
//! on its first poll (as `orbit::deadline` does) and fires after 5 s, never before.
//!
//! Subjects, interleaved round by round:
//! - `lib`: `ServerRef::call` as the library ships it (`orbit::deadline`);
//! - `no_timer`: `call_timeout(.., INFINITY)`, no timer at all (the floor);
//! - `fresh`: a new boxed `tokio::time::Sleep` per pending call, cancelled when the
//!   call returns (each call takes tokio's timer-wheel lock twice, and registering
//!   into an empty wheel unparks the driver's worker);
//! - `spare`: a cancelled call's `Sleep` kept registered per thread and moved to the
//!   next call's deadline with `Sleep::reset` (one compare-and-swap while the new
//!   deadline is later), as `orbit::deadline` does since commit 8793652, without its
//!   runtime check;
//! - `owned`: one `Sleep` owned by the calling task, reset per call (the best any
//!   reuse can do: no thread-local, same waker every time);
//! - `tokio_timeout`: `tokio::time::timeout(5 s, call)` around the untimed call (a
//!   `Sleep` built eagerly per call, registered on the first pending poll).
//!
//! Figures: `calls_per_s` median of rounds with spread, `cpu_us_per_call`; and each
//! design's ratio to `no_timer` (the share of throughput the timer leaves).

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::time::Sleep;

use super::call::{Counter, CALL_TIMEOUT};
use super::Ctx;
use crate::util::{measured, on_runtime, per_s, Rounds};

const SCENARIO: &str = "call_timer";
const N: u64 = 1_000_000;

/// The timer designs compared.
#[derive(Clone, Copy)]
enum Design {
    Lib,
    NoTimer,
    Fresh,
    Spare,
    Owned,
    TokioTimeout,
}

const DESIGNS: &[(&str, Design)] = &[
    ("lib", Design::Lib),
    ("no_timer", Design::NoTimer),
    ("fresh", Design::Fresh),
    ("spare", Design::Spare),
    ("owned", Design::Owned),
    ("tokio_timeout", Design::TokioTimeout),
];

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut r = Rounds::default();
    for _ in 0..ctx.rounds {
        for &(name, d) in DESIGNS {
            measured(&mut r, name, n, || orbit_calls(n, d));
            if let Some(v) = r.of(name).last() {
                eprintln!("  {name:<14} {v:>12.0} calls/s");
            }
        }
    }
    for &(name, _) in DESIGNS {
        ctx.emit_rounds(SCENARIO, name, "calls_per_s", "call", &r);
    }
    let floor = r.median("no_timer");
    for &(name, _) in DESIGNS {
        if name != "no_timer" {
            ctx.goal(
                SCENARIO,
                &format!("{name}_vs_no_timer"),
                r.median(name),
                floor,
            );
        }
    }
}

fn orbit_calls(n: u64, design: Design) -> f64 {
    on_runtime(move || async move {
        let server = orbit::gen_server::start(Counter(0))
            .await
            .expect("GenServer start");
        let s = server.clone();
        let rate = orbit::run_in_process(async move {
            let untimed = || s.call_timeout((), orbit::gen_server::INFINITY);
            let mut own = Box::pin(tokio::time::sleep(CALL_TIMEOUT));
            let t0 = Instant::now();
            for _ in 0..n {
                let r = match design {
                    Design::Lib => s.call_timeout((), CALL_TIMEOUT).await.ok(),
                    Design::NoTimer => untimed().await.ok(),
                    Design::Fresh => fresh(CALL_TIMEOUT, untimed())
                        .await
                        .ok()
                        .and_then(Result::ok),
                    Design::Spare => spare(CALL_TIMEOUT, untimed())
                        .await
                        .ok()
                        .and_then(Result::ok),
                    Design::Owned => owned(&mut own, CALL_TIMEOUT, untimed())
                        .await
                        .ok()
                        .and_then(Result::ok),
                    Design::TokioTimeout => tokio::time::timeout(CALL_TIMEOUT, untimed())
                        .await
                        .ok()
                        .and_then(Result::ok),
                };
                r.expect("call");
            }
            per_s(n, t0.elapsed())
        })
        .await
        .expect("caller process");
        let _ = server
            .stop(orbit::ExitReason::Normal, Duration::from_secs(5))
            .await;
        rate
    })
}

/// Design `fresh`: a new `Sleep` when `fut` is first pending.
async fn fresh<F: Future>(d: Duration, fut: F) -> Result<F::Output, ()> {
    let mut fut = pin!(fut);
    let mut sleep: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let s = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(d)));
        s.as_mut().poll(cx).map(|()| Err(()))
    })
    .await
}

thread_local! {
    static SPARE: Cell<Option<Pin<Box<Sleep>>>> = const { Cell::new(None) };
}

/// Gives its `Sleep` back to the thread's spare when dropped (unless it fired).
struct SpareGuard(Option<Pin<Box<Sleep>>>);

impl Drop for SpareGuard {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            if !s.is_elapsed() {
                let _ = SPARE.try_with(|c| c.set(Some(s)));
            }
        }
    }
}

/// Design `spare`: this thread's spare `Sleep` reset to the deadline when `fut` is
/// first pending, kept registered afterwards.
async fn spare<F: Future>(d: Duration, fut: F) -> Result<F::Output, ()> {
    let mut fut = pin!(fut);
    let mut guard = SpareGuard(None);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let s = guard.0.get_or_insert_with(|| {
            let deadline = tokio::time::Instant::now() + d;
            match SPARE.with(|c| c.take()) {
                Some(mut s) => {
                    s.as_mut().reset(deadline);
                    s
                }
                None => Box::pin(tokio::time::sleep_until(deadline)),
            }
        });
        s.as_mut().poll(cx).map(|()| Err(()))
    })
    .await
}

/// Design `owned`: the caller's own `Sleep`, reset when `fut` is first pending.
async fn owned<F: Future>(
    sleep: &mut Pin<Box<Sleep>>,
    d: Duration,
    fut: F,
) -> Result<F::Output, ()> {
    let mut fut = pin!(fut);
    let mut armed = false;
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if !armed {
            sleep.as_mut().reset(tokio::time::Instant::now() + d);
            armed = true;
        }
        sleep.as_mut().poll(cx).map(|()| Err(()))
    })
    .await
}
