//! Links that stay up but are slow, or carry nothing: an Orbit node `a` reaches node `b`
//! (Orbit, `erl` or `elixir`) only through the userspace relay of
//! `support/relay.rs` in `b`'s namespace (the kernel here has no `tc netem`).
//!
//! Asserted, with `net_ticktime` T = 4 s on both sides:
//! - the connection goes through the relay; with 200 ms added each way, calls to `b`'s
//!   `rex` all succeed, each round trip at least 400 ms, for longer than 5/4 T, and
//!   neither side declares the other down;
//! - the relay then blackholes the link (both TCP connections stay established, nothing
//!   is forwarded, FIN included): each side declares the other down as OTP's tick rule
//!   says, between 3/4 T and 5/4 T after the last bytes it received (the relay knows
//!   when it last delivered to each side; +1 s for scheduling on a loaded 2-core
//!   machine), and calls pending across the link fail with `noconnection`, once each;
//! - after the relay passes bytes again, `a` reconnects through it and calls succeed.
//!
//! Skipped (passing, printing `SKIP`) when namespaces cannot be created here; the
//! BEAM scenarios also when `erl` / `elixir` is missing.

mod support;

use std::time::{Duration, Instant};

use support::child::orbit_node_epmd;
use support::relay::{Relay, Toward};
use support::{field, num, other_node, Other};

const TICK: u64 = 4;
/// The relay's front EPMD port; `a` uses it for every EPMD.
const RELAY_EPMD: u16 = 4370;
const DELAY: Duration = Duration::from_millis(200);
const PENDING: usize = 20;

#[test]
fn netns_child() {
    support::child::child_main();
}

/// `silence` (from the last bytes received to `nodedown`) within OTP's 3/4 T..5/4 T.
fn check_tick_rule(who: &str, silence: Duration) {
    let t = Duration::from_secs(TICK);
    println!("slow_link: {who} declared its peer down {silence:?} after the last bytes it received (net_ticktime {t:?})");
    assert!(
        silence >= t * 3 / 4 && silence <= t * 5 / 4 + Duration::from_secs(1),
        "{who}: down {silence:?} after the last bytes received, outside [3/4 T, 5/4 T + 1 s] for T = {t:?}"
    );
}

fn scenario(test: &str, other: Other) {
    let Some(net) = support::net_or_skip(test, 2) else {
        return;
    };
    let relay = Relay::start(&net, 1, RELAY_EPMD).expect("start the relay");
    let Some(mut b) = other_node(test, &net, other, TICK) else {
        return;
    };
    let mut a = orbit_node_epmd(&net, 0, "a", TICK, RELAY_EPMD);
    let (an, bn) = (a.name.clone(), b.name.clone());
    assert_eq!(
        a.ask(&format!("connect {bn}"), "connect ", 15),
        format!("connect {bn} true")
    );
    b.expect(&format!("nodeup {an}"), 10);
    assert_eq!(
        relay.accepted(),
        1,
        "a reached b other than through the relay"
    );

    let quiet = a.ask(&format!("rpc {bn} 5"), "rpc ", 30);
    assert_eq!(field(&quiet, "ok"), "5", "{quiet}");

    // Slow: every round trip pays the delay twice; no nodedown over more than 5/4 T.
    relay.set_delay(DELAY);
    let slow_from = Instant::now();
    let n = (Duration::from_secs(TICK) * 3 / 2).as_millis() / (2 * DELAY).as_millis() + 1;
    let slow = a.ask(&format!("rpc {bn} {n}"), "rpc ", 60);
    let slow_for = slow_from.elapsed();
    println!("slow_link: quiet {quiet}; with {DELAY:?} each way {slow} over {slow_for:?}");
    assert_eq!(field(&slow, "ok"), n.to_string(), "{slow}");
    assert!(
        num(&slow, "min_ms") >= 2 * DELAY.as_millis() as u64,
        "a round trip faster than twice the relay's delay: {slow}"
    );
    assert!(slow_for > Duration::from_secs(TICK) * 5 / 4, "{slow_for:?}");
    assert!(!a.saw("nodedown"), "a declared b down on a slow link");
    assert!(!b.saw("nodedown"), "b declared a down on a slow link");

    // Up but carrying nothing.
    assert_eq!(
        a.ask(&format!("calls {bn} {PENDING}"), "calls-sent", 5),
        format!("calls-sent {PENDING}")
    );
    let cut = relay.blackhole();
    let limit = 2 * TICK + 5;
    let (at, _) = a.expect_at(&format!("nodedown {bn}"), limit);
    let (bt, _) = b.expect_at(&format!("nodedown {an}"), limit);
    let to_a = relay.last_delivered(Toward::Peer).expect("bytes reached a");
    let to_b = relay.last_delivered(Toward::Node).expect("bytes reached b");
    println!(
        "slow_link: blackholed; a down after {:?}, b after {:?}",
        at - cut,
        bt - cut
    );
    check_tick_rule(&format!("{an} (Orbit)"), at - to_a);
    check_tick_rule(&format!("{bn} ({other:?})"), bt - to_b);
    let done = a.expect("calls-done", 5);
    assert_eq!(field(&done, "noconnection"), PENDING.to_string(), "{done}");
    assert_eq!(field(&done, "returns"), PENDING.to_string(), "{done}");

    // Carrying again: a new connection through the relay.
    relay.set_delay(Duration::ZERO);
    relay.pass();
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.ask(&format!("connect {bn}"), "connect ", 30) != format!("connect {bn} true") {
        assert!(
            Instant::now() < deadline,
            "no reconnection through the relay"
        );
    }
    b.expect(&format!("nodeup {an}"), 10);
    assert!(relay.accepted() >= 2, "the reconnection bypassed the relay");
    let again = a.ask(&format!("rpc {bn} 3"), "rpc ", 30);
    assert_eq!(field(&again, "ok"), "3", "{again}");
}

#[test]
fn orbit_behind_a_slow_then_blackholed_link() {
    scenario("orbit_behind_a_slow_then_blackholed_link", Other::Orbit);
}

#[test]
fn erl_behind_a_slow_then_blackholed_link() {
    scenario("erl_behind_a_slow_then_blackholed_link", Other::Erl);
}

#[test]
fn elixir_behind_a_slow_then_blackholed_link() {
    scenario("elixir_behind_a_slow_then_blackholed_link", Other::Elixir);
}
