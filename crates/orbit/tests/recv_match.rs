//! Selective receive (`Context::recv_match`): the first matching message or signal,
//! the others kept in order; timeouts; signals set aside and still flushable.

use std::time::Duration;

use orbit::{Context, ExitReason, Message};
use tokio::sync::oneshot;

fn is_msg(m: &Message<u32>, want: u32) -> bool {
    matches!(m, Message::Msg(n) if *n == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_the_match_and_keeps_the_rest_in_order() {
    let (tx, rx) = oneshot::channel();
    let h = orbit::spawn(move |mut ctx: Context<u32>| async move {
        // Wait for the 1000 messages to be queued, then pick out 500 first.
        let picked = ctx
            .recv_match(|m| is_msg(m, 500), Duration::from_secs(5))
            .await;
        let mut rest = Vec::new();
        while let Some(Message::Msg(n)) = ctx.recv_timeout(Duration::from_millis(0)).await {
            rest.push(n);
        }
        let _ = tx.send((picked.map(|m| matches!(m, Message::Msg(500))), rest));
    })
    .unwrap();
    for n in 0..1000u32 {
        h.send(n).unwrap();
    }
    let (picked, rest) = rx.await.unwrap();
    assert_eq!(picked, Some(true));
    let want: Vec<u32> = (0..1000).filter(|n| *n != 500).collect();
    assert_eq!(rest, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_later_match_and_times_out() {
    let (tx, rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let h = orbit::spawn(move |mut ctx: Context<u32>| async move {
        // Nothing matching: times out, and the non-matching messages stay.
        let none = ctx
            .recv_match(|m| is_msg(m, 99), Duration::from_millis(20))
            .await;
        let _ = go_tx.send(());
        // 99 arrives after other messages, while waiting.
        let got = ctx
            .recv_match(|m| is_msg(m, 99), Duration::from_secs(5))
            .await;
        let mut rest = Vec::new();
        while let Some(Message::Msg(n)) = ctx.recv_timeout(Duration::from_millis(0)).await {
            rest.push(n);
        }
        let _ = tx.send((none.is_none(), got.is_some(), rest));
    })
    .unwrap();
    h.send(1).unwrap();
    h.send(2).unwrap();
    go_rx.await.unwrap();
    h.send(3).unwrap();
    h.send(99).unwrap();
    h.send(4).unwrap();
    let (timed_out, got, rest) = rx.await.unwrap();
    assert!(timed_out);
    assert!(got);
    assert_eq!(rest, vec![1, 2, 3, 4]);
}

/// A `DOWN` waits while a message is picked, then comes first to `recv` (signals
/// before messages, as always); a DOWN can be picked too; `demonitor(flush)` still
/// removes one set aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_matched_or_kept() {
    let (tx, rx) = oneshot::channel();
    let h = orbit::spawn(move |mut ctx: Context<u32>| async move {
        let a = orbit::spawn(|_c: Context<()>| async {}).unwrap();
        let b = orbit::spawn(|_c: Context<()>| async {}).unwrap();
        let ra = orbit::monitor(a.pid()).unwrap();
        let rb = orbit::monitor(b.pid()).unwrap();
        a.wait_exit().await;
        b.wait_exit().await;
        // Both DOWNs are queued; pick message 7 past them.
        let seven = ctx
            .recv_match(|m| is_msg(m, 7), Duration::from_secs(5))
            .await;
        // Pick b's DOWN past a's.
        let down_b = ctx
            .recv_match(
                |m| matches!(m, Message::Down(d) if d.monitor == rb),
                Duration::from_secs(5),
            )
            .await;
        // a's DOWN is still there, ahead of message 8.
        let first = ctx.recv_timeout(Duration::from_secs(5)).await;
        let first_is_a = matches!(first, Some(Message::Down(d)) if d.monitor == ra);
        let second = ctx.recv_timeout(Duration::from_secs(5)).await;
        // A DOWN set aside and flushed is gone.
        let c = orbit::spawn(|_c: Context<()>| async {}).unwrap();
        let rc = orbit::monitor(c.pid()).unwrap();
        c.wait_exit().await;
        let none = ctx
            .recv_match(|m| is_msg(m, 1000), Duration::from_millis(10))
            .await;
        let flushed = orbit::demonitor(rc, true).unwrap();
        let after = ctx.recv_timeout(Duration::from_millis(10)).await;
        let _ = tx.send((
            matches!(seven, Some(Message::Msg(7))),
            down_b.is_some(),
            first_is_a,
            matches!(second, Some(Message::Msg(8))),
            none.is_none() && flushed,
            after.is_none(),
        ));
    })
    .unwrap();
    h.send(8).unwrap();
    h.send(7).unwrap();
    assert_eq!(rx.await.unwrap(), (true, true, true, true, true, true));
}

/// Timeouts racing arrivals: each receive either gets its message or times out, and a
/// message that arrives as it times out is received by the next one, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_racing_arrivals_lose_nothing() {
    const N: u32 = 2000;
    let (tx, rx) = oneshot::channel();
    let h = orbit::spawn(move |mut ctx: Context<u32>| async move {
        let mut got = 0u32;
        let mut timeouts = 0u32;
        let mut want = 0;
        while want < N {
            match ctx
                .recv_match(|m| is_msg(m, want), Duration::from_micros(50))
                .await
            {
                Some(_) => {
                    got += 1;
                    want += 1;
                }
                None => timeouts += 1,
            }
        }
        let _ = tx.send((got, timeouts));
    })
    .unwrap();
    let sender = tokio::spawn(async move {
        for n in 0..N {
            h.send(n).unwrap();
            if n % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let (got, _timeouts) = rx.await.unwrap();
    sender.await.unwrap();
    assert_eq!(got, N);
}

/// A process killed while waiting in a selective receive exits with the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_waiting() {
    let h = orbit::spawn(|mut ctx: Context<u32>| async move {
        ctx.recv_match(|m| is_msg(m, 1), orbit::gen_server::INFINITY)
            .await;
    })
    .unwrap();
    h.send(0).unwrap();
    orbit::exit(h.pid(), ExitReason::Kill);
    assert_eq!(h.wait_exit().await, ExitReason::Killed);
}
