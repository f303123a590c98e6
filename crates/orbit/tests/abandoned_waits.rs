//! Waits given up must not stay in the process (issue 15, item 10): 100k `wait_exit`
//! futures dropped after registering, and calls whose reply the server dropped (the
//! caller gets `CallError::NoReply` at once, registering no exit waiter), leave the
//! server's list of exit waiters bounded. The bound asserted is 64 entries (the purge
//! keeps about twice the live waiters, and none is live at the end; 64 is slack for the
//! buffer's rounding); the old code kept one per abandoned wait (~104 bytes each).

use std::time::Duration;

use orbit::process::exit_waiters_held;
use orbit::*;

const BOUND: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_wait_exits_leave_bounded_bookkeeping() {
    let h =
        spawn(
            |mut ctx: Context<()>| async move { while let Message::Msg(()) = ctx.recv().await {} },
        )
        .unwrap();
    for _ in 0..100_000 {
        // Polled once (it registers), then dropped: a wait given up.
        let w = std::pin::pin!(h.wait_exit());
        assert!(futures::FutureExt::now_or_never(w).is_none());
    }
    let held = exit_waiters_held(h.pid());
    eprintln!("after 100k abandoned wait_exit: {held} waiters held");
    assert!(
        held <= BOUND,
        "{held} exit waiters held after 100k abandoned waits"
    );
    // Still a working list: a live waiter is answered.
    let live = tokio::spawn({
        let h = h.clone();
        async move { h.wait_exit().await }
    });
    while exit_waiters_held(h.pid()) == 0 || !h.is_alive() {
        tokio::task::yield_now().await;
    }
    exit(h.pid(), ExitReason::Kill);
    assert_eq!(live.await.unwrap(), ExitReason::Killed);
}

/// Answers no call: drops the reply slot at once.
struct Deaf;

impl GenServer for Deaf {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _request: (),
        _from: &mut ReplyTo<()>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        CallReply::NoReply
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_whose_reply_was_dropped_leave_bounded_bookkeeping() {
    let server = gen_server::start(Deaf).await.unwrap();
    // Batches of concurrent calls: each reply slot is dropped unanswered while the server
    // runs, so each call fails at once with `NoReply` (it used to fall back to waiting for
    // the server's exit, registering an exit waiter, until its timeout). The 1 s timeout
    // (tokio's timer) only catches a regression to hanging.
    for _ in 0..20 {
        let calls = (0..500).map(|_| {
            tokio::time::timeout(
                Duration::from_secs(1),
                server.call_timeout((), gen_server::INFINITY),
            )
        });
        for r in futures::future::join_all(calls).await {
            assert_eq!(
                r.expect("a call whose reply was dropped hung"),
                Err(CallError::NoReply)
            );
        }
    }
    let held = exit_waiters_held(server.pid());
    eprintln!("after 10k calls with dropped replies: {held} waiters held");
    assert!(
        held <= BOUND,
        "{held} exit waiters held after 10k calls with dropped replies"
    );
}
