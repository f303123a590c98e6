//! Where the two sides of a GenServer call run: a call round that records, for every
//! call, whether the server handled it on the worker thread the caller sent it from.
//!
//! Why: on a 2-worker runtime a sequential caller/server pair shares one worker while
//! nothing disturbs it (tokio's LIFO slot hands each wake-up to the waking worker:
//! about 2.2M calls/s on the 2 shared vCPUs) and falls into stretches of hopping across
//! both when a worker is preempted (a park and a cross-core wake-up per hop: about
//! 1.35M), and how much of a round hops is set by the machine's other load, not by the
//! code under test. A comparison of two subjects (the `observe` scenario's `off` and
//! `on`) is only about the subjects when the rounds compared ran with the same
//! placement, so each round reports its placement ([`Placement`]) and the comparison
//! pairs rounds by it.
//!
//! The record costs both subjects the same: a thread-local read on each side of every
//! call (a lazily numbered worker token) and a compare, no clock read, no shared write.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::util::per_s;

/// The next worker token to hand out (0 means "not yet numbered").
static NEXT_TOKEN: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static TOKEN: Cell<u32> = const { Cell::new(0) };
}

/// This thread's token: a small number, unique per thread of the process, assigned at
/// the thread's first call (one thread-local read afterwards).
pub fn thread_token() -> u32 {
    TOKEN.with(|t| match t.get() {
        0 => {
            let v = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
            t.set(v);
            v
        }
        v => v,
    })
}

/// A GenServer that answers each call with the token of the thread that handled it.
pub struct Placed;

impl orbit::GenServer for Placed {
    type Call = ();
    type Reply = u32;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _req: (),
        _from: &mut orbit::ReplyTo<u32>,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::CallReply<u32, ()> {
        orbit::CallReply::Reply(thread_token())
    }
}

/// One round's placement: how many of its calls the server handled on the thread that
/// sent them, and how often that changed from one call to the next.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Calls made.
    pub calls: u64,
    /// Calls handled on the sending thread.
    pub same: u64,
    /// Calls whose placement (same or other thread) differed from the previous call's.
    pub switches: u64,
}

impl Placement {
    /// The share of calls handled on the sending thread, 0..=1 (0 for no calls).
    pub fn same_share(&self) -> f64 {
        if self.calls == 0 {
            return 0.0;
        }
        self.same as f64 / self.calls as f64
    }

    /// Whether two rounds ran with the same placement: their same-thread shares differ
    /// by at most `tolerance` (a share of calls, 0..=1).
    pub fn matches(&self, other: &Placement, tolerance: f64) -> bool {
        (self.same_share() - other.same_share()).abs() <= tolerance
    }
}

/// `n` sequential calls with `timeout` from an orbit process to a [`Placed`] server on
/// a fresh runtime of `workers` worker threads: (calls per second, the round's
/// placement, `after(before())`, the probe taken just outside the timed loop).
pub fn call_round<S, T>(
    workers: usize,
    n: u64,
    timeout: Duration,
    before: impl FnOnce() -> S + Send + 'static,
    after: impl FnOnce(S) -> T + Send + 'static,
) -> (f64, Placement, T)
where
    S: Send + 'static,
    T: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime");
    let out = rt.block_on(async move {
        tokio::spawn(async move {
            let server = orbit::gen_server::start(Placed)
                .await
                .expect("GenServer start");
            let s = server.clone();
            let out = orbit::run_in_process(async move {
                let probe = before();
                let mut p = Placement::default();
                let mut last = None;
                let t0 = Instant::now();
                for _ in 0..n {
                    let from = thread_token();
                    let on = s.call_timeout((), timeout).await.expect("call");
                    let same = on == from;
                    p.same += u64::from(same);
                    p.switches += u64::from(last.is_some_and(|l| l != same));
                    last = Some(same);
                }
                let rate = per_s(n, t0.elapsed());
                p.calls = n;
                (rate, p, after(probe))
            })
            .await
            .expect("caller process");
            let _ = server
                .stop(orbit::ExitReason::Normal, Duration::from_secs(5))
                .await;
            out
        })
        .await
        .expect("benchmark task panicked")
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_thread_and_stay_per_thread() {
        let here = thread_token();
        assert_eq!(here, thread_token());
        let there = std::thread::spawn(thread_token).join().expect("thread");
        assert_ne!(here, there);
    }

    #[test]
    fn one_worker_rounds_run_every_call_on_the_sending_thread() {
        let (rate, p, ()) = call_round(1, 2_000, Duration::from_secs(5), || (), |()| ());
        assert!(rate > 0.0);
        assert_eq!(p.calls, 2_000);
        assert_eq!(p.same, 2_000, "one worker: {p:?}");
        assert_eq!(p.switches, 0);
    }

    #[test]
    fn placements_match_within_the_tolerance() {
        let a = Placement {
            calls: 100,
            same: 90,
            switches: 3,
        };
        let b = Placement {
            calls: 200,
            same: 172,
            switches: 9,
        };
        // Shares 0.90 and 0.86.
        assert!(a.matches(&b, 0.05));
        assert!(!a.matches(&b, 0.03));
        assert_eq!(Placement::default().same_share(), 0.0);
    }
}
