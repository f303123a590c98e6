//! `Node::connect_retry`: a peer that starts after the first attempt is connected once it
//! is up; a peer that never comes gives the last attempt's error once the time is spent
//! (not before, and not long after); a malformed name fails at once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use orbit_dist::DistError;

#[test]
fn a_late_peer_is_connected_an_absent_one_times_out_a_bad_name_fails_at_once() {
    let node = node("retry");
    let rt = rt();

    // A bad name: no retry.
    let t = Instant::now();
    let r = rt.block_on(node.connect_retry("no_at_sign", Duration::from_secs(5)));
    assert!(matches!(r, Err(DistError::BadName(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // Nobody of that name: the error after about `within`.
    let t = Instant::now();
    let r = rt.block_on(node.connect_retry("nobody_here@127.0.0.1", Duration::from_millis(700)));
    let took = t.elapsed();
    assert!(r.is_err(), "{r:?}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A peer started after the first attempt failed: connected once it is up.
    let name = unique("late");
    let attempt = rt.spawn({
        let name = name.clone();
        async move { node.connect_retry(&name, Duration::from_secs(60)).await }
    });
    let first_failed = rt.block_on(node.try_connect(&name));
    assert!(first_failed.is_err(), "the peer is not up yet");
    let _peer = orbit_node_with(&name, &[COOKIE], &[]);
    let r = rt.block_on(attempt).expect("task");
    assert!(r.is_ok(), "{r:?}");
    assert!(node.list().contains(&name), "{:?}", node.list());
}
