//! A process that always finds messages waiting yields after its time slice (about a
//! millisecond, or 4096 messages, whichever comes first), so a neighbour on the same
//! worker runs; a process that keeps up with its senders is not cut off (no added
//! latency under contention).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orbit::*;
use tokio::sync::oneshot;

const QUEUED: u64 = 100_000;

#[tokio::test(flavor = "current_thread")]
async fn a_flooded_process_lets_its_neighbour_run_within_one_slice() {
    for _ in 0..20 {
        let handled = Arc::new(AtomicU64::new(0));
        let (first_tx, first_rx) = oneshot::channel::<()>();
        let (seen_tx, seen_rx) = oneshot::channel::<u64>();
        let (done_tx, done_rx) = oneshot::channel::<u64>();

        let h = handled.clone();
        let busy = spawn(move |mut ctx: Context<u64>| async move {
            let mut first = Some(first_tx);
            let mut acc = 0u64;
            for _ in 0..QUEUED {
                if let Message::Msg(v) = ctx.recv().await {
                    acc = acc.wrapping_add(v);
                }
                h.fetch_add(1, Ordering::Relaxed);
                if let Some(tx) = first.take() {
                    // Wakes the neighbour, which can only run once this process yields.
                    let _ = tx.send(());
                }
            }
            let _ = done_tx.send(acc);
        })
        .expect("spawn busy");
        for i in 0..QUEUED {
            busy.send(i).expect("busy is alive");
        }
        let h = handled.clone();
        spawn(move |_ctx: Context<()>| async move {
            let _ = first_rx.await;
            let _ = seen_tx.send(h.load(Ordering::Relaxed));
        })
        .expect("spawn neighbour");

        let seen = seen_rx.await.expect("the neighbour ran");
        assert!(
            (1..=4096).contains(&seen),
            "the neighbour ran after {seen} messages of a flooded process (slice: at most 4096)"
        );
        assert_eq!(
            done_rx.await.expect("busy finished"),
            (0..QUEUED).sum::<u64>()
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_process_that_empties_its_mailbox_starts_a_fresh_slice() {
    // 500 messages at a time, with the mailbox emptied in between. The slice is first
    // checked after 256 messages (where it starts) and next after 512, so a batch of
    // 500 is never cut, however slow the machine, as long as each park starts a fresh
    // slice: a neighbour woken during a batch runs only after the batch. Without the
    // reset, the slice started in round 1 would run out in a later round.
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    let (batch_tx, mut batch_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let busy = spawn(move |mut ctx: Context<u64>| async move {
        let mut n = 0u64;
        while n < u64::MAX {
            let Message::Msg(v) = ctx.recv().await else {
                continue;
            };
            n += 1;
            h.fetch_add(1, Ordering::Relaxed);
            if v == u64::MAX {
                let _ = batch_tx.send(n);
            }
        }
    })
    .expect("spawn busy");
    for round in 1..=40u64 {
        for i in 0..499 {
            busy.send(i).expect("alive");
        }
        busy.send(u64::MAX).expect("alive");
        let before = handled.load(Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let h2 = handled.clone();
        tokio::spawn(async move {
            let _ = tx.send(h2.load(Ordering::Relaxed));
        });
        // On one thread the spawned task runs only when the busy process parks, i.e.
        // after it took the whole batch of 3000 without yielding.
        let seen = rx.await.expect("task ran");
        assert_eq!(
            seen - before,
            500,
            "round {round}: yielded inside a 500-message batch"
        );
        assert_eq!(batch_rx.recv().await, Some(500 * round));
    }
}
