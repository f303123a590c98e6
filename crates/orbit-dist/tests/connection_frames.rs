//! Framing under load: a burst of messages of mixed sizes (small ones, and big ones that
//! span many socket reads) goes to an `orbit-node` child's `echo` and comes back; every
//! message arrives whole and in the order it was sent, both ways. This crosses the
//! inline writes, the writer task's batches, `wait_writable`'s own flushes, and big
//! frames completed in place by the reader.

mod common;

use std::time::Duration;

use common::*;
use orbit::Message;
use orbit_term::{atom, Term};

/// Payload `i` (its size cycles through small, just under and over the big-frame size,
/// and a few hundred KB), filled with a pattern that depends on `i`.
fn payload(i: usize) -> Vec<u8> {
    let len = [20, 1000, 65_000, 70_000, 100_000, 300_000, 3, 1_000_000][i % 8];
    (0..len).map(|k| (k * 31 + i * 7) as u8).collect()
}

#[test]
fn mixed_size_bursts_arrive_whole_and_in_order_both_ways() {
    let _node = node("orbit_frames");
    let peer = orbit_node("orbit_frames_echo", false);
    let n = 400usize;
    let echo_node = peer.name.clone();
    let done = rt().block_on(async move {
        let h = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            let me = orbit_dist::to_wire(orbit::self_pid().expect("in a process"));
            let msg = |i: usize| (&me, (i as u64, serde_bytes::ByteBuf::from(payload(i))));
            // A burst with flow control every few messages, as a sender in a loop does.
            for i in 0..n {
                orbit_dist::send_named(&echo_node, "echo", &msg(i)).unwrap();
                if i % 5 == 4 {
                    orbit_dist::wait_writable(&echo_node).await;
                }
            }
            for i in 0..n {
                let got = ctx.recv_timeout(Duration::from_secs(30)).await;
                let Some(Message::Msg(Term::Tuple(el))) = got else {
                    panic!("message {i} did not come back: {got:?}");
                };
                assert_eq!(el.len(), 2, "message {i}");
                assert_eq!(el[0], Term::Int(i as i64), "message {i} out of order");
                match &el[1] {
                    Term::Binary(b) => assert!(*b == payload(i), "message {i} corrupted"),
                    t => panic!("message {i}: not a binary: {t}"),
                }
            }
            // Then strict request/reply (every send inline on an idle connection).
            let x = atom!("x");
            for i in 0..200 {
                orbit_dist::send_named(&echo_node, "echo", &(&me, &x)).unwrap();
                let got = ctx.recv_timeout(Duration::from_secs(10)).await;
                assert!(
                    matches!(got, Some(Message::Msg(Term::Atom(ref a))) if a.as_str() == "x"),
                    "round trip {i}: {got:?}"
                );
            }
        })
        .unwrap();
        tokio::time::timeout(Duration::from_secs(120), h.wait_exit()).await
    });
    let reason = done.expect("the exchange did not finish in time");
    assert!(reason.is_normal(), "the test process failed: {reason:?}");
}

/// A frame of at least `INLINE_ALWAYS` bytes is written by its sender whenever nothing
/// is queued, even right after another inline write (a stream of event batches costs no
/// task switch per batch); small frames right after an inline write still wait for the
/// writer task, which batches them.
#[test]
fn big_frames_go_inline_back_to_back_small_ones_batch() {
    let node = node("orbit_inline");
    let peer = orbit_node("orbit_inline_echo", false);
    let echo_node = peer.name.clone();
    let done = rt().block_on(async move {
        let h = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            let me = orbit_dist::to_wire(orbit::self_pid().expect("in a process"));
            // Connected, and the reply read (a read lets the next send go inline).
            orbit_dist::send_named(&echo_node, "echo", &(&me, atom!("up"))).unwrap();
            let got = ctx.recv_timeout(Duration::from_secs(30)).await;
            assert!(matches!(got, Some(Message::Msg(_))), "no echo: {got:?}");
            let conn = node
                .connection(&echo_node)
                .expect("a connection to the peer");
            let big = serde_bytes::ByteBuf::from(vec![7u8; orbit_dist::connection::INLINE_ALWAYS]);
            // Ten big frames in a row, sent with no await between: each is written by
            // this process itself. Other traffic queued meanwhile (the node's own
            // messages to its peer) would put ours behind it: then try again.
            let mut t1 = None;
            for _attempt in 0..20 {
                let t = tokio::time::Instant::now();
                while conn.queued() > 0 {
                    assert!(
                        t.elapsed() < Duration::from_secs(10),
                        "the queue never drained"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let t0 = conn.traffic();
                // Nobody is registered as `nobody` on the peer: it drops these.
                for _ in 0..10 {
                    orbit_dist::send_named(&echo_node, "nobody", &big).unwrap();
                }
                let t = conn.traffic();
                if t.frames_out - t0.frames_out != 10 {
                    continue;
                }
                assert_eq!(t.writes_inline - t0.writes_inline, 10, "{t0:?} -> {t:?}");
                assert_eq!(t.writes_batched, t0.writes_batched, "{t0:?} -> {t:?}");
                t1 = Some(t);
                break;
            }
            let t1 = t1.expect("other traffic in every attempt");
            for _ in 0..10 {
                orbit_dist::send_named(&echo_node, "nobody", &atom!("small")).unwrap();
            }
            // The first small frame after an inline write waits for the writer task.
            let t = tokio::time::Instant::now();
            while conn.traffic().writes_batched == t1.writes_batched {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "the writer task never wrote"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let t2 = conn.traffic();
            assert!(t2.writes_inline - t1.writes_inline < 10, "{t1:?} -> {t2:?}");
        })
        .unwrap();
        tokio::time::timeout(Duration::from_secs(60), h.wait_exit()).await
    });
    let reason = done.expect("the exchange did not finish in time");
    assert!(reason.is_normal(), "the test process failed: {reason:?}");
}
