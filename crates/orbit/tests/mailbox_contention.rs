//! Eight senders into one process's mailbox.
//!
//! `eight_senders_every_message_once_in_order` is a bounded correctness stress (every
//! message arrives once, in order per sender, through bursts that grow and shed the
//! mailbox's buffers). `send_latency_eight_senders` is a measurement, ignored by
//! default; run it in release:
//!
//! ```text
//! cargo test --release -p orbit --test mailbox_contention -- --ignored --nocapture
//! ```
//!
//! It prints p50/p99/p99.9/max of `Handle::send` beside `tokio::sync::mpsc`'s unbounded
//! `send` under the same load (8 OS threads, so on a 2-core machine senders are
//! preempted, sometimes while holding the lock).

use std::time::{Duration, Instant};

use orbit::*;
use tokio::sync::oneshot;

const SENDERS: u64 = 8;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A receiving process that checks per-sender order and reports the count.
fn receiver(rt: &tokio::runtime::Runtime, total: u64) -> (Handle<u64>, oneshot::Receiver<u64>) {
    let (done_tx, done_rx) = oneshot::channel();
    let h = rt.block_on(async move {
        spawn(move |mut ctx: Context<u64>| async move {
            let mut next = [0u64; SENDERS as usize];
            let mut got = 0u64;
            while got < total {
                if let Message::Msg(m) = ctx.recv().await {
                    let (id, i) = ((m >> 32) as usize, m & 0xffff_ffff);
                    assert_eq!(i, next[id], "sender {id} out of order");
                    next[id] += 1;
                    got += 1;
                }
            }
            let _ = done_tx.send(got);
        })
        .expect("spawn receiver")
    });
    (h, done_rx)
}

#[test]
fn eight_senders_every_message_once_in_order() {
    // Bounded: 8 x 20k messages, in bursts of 1000 per sender, seconds in a debug build.
    let per = 20_000u64;
    let rt = runtime();
    let (h, done) = receiver(&rt, SENDERS * per);
    let threads: Vec<_> = (0..SENDERS)
        .map(|id| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    h.send(id << 32 | i).expect("receiver alive");
                    if i % 1000 == 999 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    let got = rt.block_on(done).expect("receiver finished");
    assert_eq!(got, SENDERS * per);
}

/// Per-send latencies (ns) of `send` called `per` times from each of 8 threads.
fn measure(per: u64, send: impl Fn(u64) + Send + Sync + Clone + 'static) -> Vec<u64> {
    let threads: Vec<_> = (0..SENDERS)
        .map(|id| {
            let send = send.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per as usize);
                for i in 0..per {
                    let t0 = Instant::now();
                    send(id << 32 | i);
                    lat.push(t0.elapsed().as_nanos() as u64);
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("sender"))
        .collect();
    all.sort_unstable();
    all
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, lat: &[u64], elapsed: Duration) {
    println!(
        "{name:>6}: p50 {:>6} ns  p99 {:>7} ns  p99.9 {:>8} ns  max {:>9} ns  {:.1} M msgs/s",
        pct(lat, 0.5),
        pct(lat, 0.99),
        pct(lat, 0.999),
        lat[lat.len() - 1],
        lat.len() as f64 / elapsed.as_secs_f64() / 1e6
    );
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn send_latency_eight_senders() {
    let per = 200_000u64;
    for round in 0..3 {
        println!("round {round}");
        let rt = runtime();
        let (h, done) = receiver(&rt, SENDERS * per);
        let t0 = Instant::now();
        let lat = measure(per, move |m| {
            let _ = h.send(m);
        });
        rt.block_on(done).expect("receiver finished");
        report("orbit", &lat, t0.elapsed());
        drop(rt);

        let rt = runtime();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let total = SENDERS * per;
        let done = rt.spawn(async move {
            let mut got = 0;
            while got < total {
                if rx.recv().await.is_none() {
                    break;
                }
                got += 1;
            }
            got
        });
        let t0 = Instant::now();
        let lat = measure(per, move |m| {
            let _ = tx.send(m);
        });
        assert_eq!(rt.block_on(done).expect("receiver"), total);
        report("tokio", &lat, t0.elapsed());
    }
}
