//! `Options::connect_all` (OTP's `connect_all`, `erl -connect_all false`), side by side
//! with a real `erl` node in the same place.
//!
//! This test process is node A. A middle node M connects to A and then to a new node C:
//! - with `connect_all` true (Orbit's default, OTP's default) C connects to A through M
//!   (C asks M for its nodes), and an Orbit M also connects to A's other peer B;
//! - with `connect_all` false (an `orbit-node ... no-connect-all`, or
//!   `erl -connect_all false`) nobody connects through M and M connects to nobody it was
//!   not told to: a partial mesh.
//!
//! And two `erl` nodes X and Y that each connect only to an Orbit node M meet through
//! it when M's `connect_all` is true (M tells Y about X, as OTP's `global` does with
//! `new_nodes`), and stay apart when it is false.
//!
//! The positive cases wait on the nodeup. A negative case cannot wait on an event that
//! never comes: it watches a quiet window of `QUIET` (the positive cases mesh within
//! ~100 ms here) and then checks each node's list. The scenarios share node A, so they
//! run one at a time (a lock) and kill their children before the next one starts.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use orbit_dist::NodeEvent;

/// How long a negative case watches for a connection that must not come.
const QUIET: Duration = Duration::from_secs(2);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn erl_available() -> bool {
    Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .status()
        .is_ok_and(|s| s.success())
}

/// True when a `NodeUp(node)` arrives within `within`.
async fn nodeup_within(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<NodeEvent>,
    node: &str,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(NodeEvent::NodeUp(n))) if n == node => return true,
            Ok(Some(_)) => continue,
            _ => return false,
        }
    }
}

/// The sorted `list` of an `orbit-node` child.
fn listed(p: &mut Peer) -> Vec<String> {
    p.say("list");
    let l = p.expect("list", 10);
    let mut v: Vec<String> = l
        .trim_start_matches("list")
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// An Orbit middle node M (`connect_all` as given) between A (with peer B) and C.
fn orbit_middle(connect_all: bool) {
    let a = node("ca_a");
    let rt = rt();
    let mut events = a.monitor_nodes();
    let an = a.name();

    let mut b = orbit_node("ca_b", false);
    b.say(&format!("connect {an}"));
    assert_eq!(b.expect("connect ", 15), format!("connect {an} true"));
    assert!(rt.block_on(nodeup_within(&mut events, &b.name, Duration::from_secs(10))));

    let m_name = unique("ca_m");
    let mut m = if connect_all {
        orbit_node_with(&m_name, &[COOKIE], &[])
    } else {
        orbit_node_with(&m_name, &[COOKIE, "no-connect-all"], &[])
    };
    m.say(&format!("connect {an}"));
    assert_eq!(m.expect("connect ", 15), format!("connect {an} true"));
    let mut c = orbit_node("ca_c", false);
    let cn = c.name.clone();
    m.say(&format!("connect {cn}"));
    assert_eq!(m.expect("connect ", 15), format!("connect {cn} true"));

    if connect_all {
        // C learns A from M; M learns B from A.
        assert!(
            rt.block_on(nodeup_within(&mut events, &cn, Duration::from_secs(10))),
            "C did not connect to A through M"
        );
        b.expect(&format!("nodeup {m_name}"), 10);
    } else {
        assert!(
            !rt.block_on(nodeup_within(&mut events, &cn, QUIET)),
            "C connected to A through a node whose connect_all is false"
        );
        assert_eq!(listed(&mut m), sorted(vec![an.clone(), cn.clone()]));
        assert_eq!(listed(&mut c), vec![m_name.clone()]);
        assert_eq!(listed(&mut b), vec![an.clone()]);
        assert!(
            !b.seen.iter().any(|l| *l == format!("nodeup {m_name}")),
            "M meshed through A: {:?}",
            b.seen
        );
    }
}

/// A real `erl` middle node M (`-connect_all false` or not) between A and C.
fn erl_middle(connect_all: bool) {
    if !erl_available() {
        println!("SKIP erl middle node: `erl` is not on PATH");
        return;
    }
    let a = node("ca_a");
    let rt = rt();
    let mut events = a.monitor_nodes();
    let an = a.name();
    let mut c = orbit_node("ca_c", false);
    let cn = c.name.clone();

    let m_name = unique("ca_erl");
    let code = format!(
        "{{ok, CA}} = application:get_env(kernel, connect_all), \
         true = net_kernel:connect_node('{an}'), true = net_kernel:connect_node('{cn}'), \
         io:format(\"connected ~p~n\", [CA]), receive after infinity -> ok end."
    );
    let mut cmd = Command::new("erl");
    cmd.args(["-noshell", "-name", &m_name, "-setcookie", COOKIE]);
    if !connect_all {
        cmd.args(["-connect_all", "false"]);
    }
    cmd.args(["-eval", &code]);
    let mut m = Peer::command(cmd, m_name.clone());
    assert_eq!(
        m.expect("connected", 30),
        format!("connected {connect_all}")
    );
    assert!(rt.block_on(nodeup_within(&mut events, &m_name, Duration::from_secs(10))));

    if connect_all {
        assert!(
            rt.block_on(nodeup_within(&mut events, &cn, Duration::from_secs(10))),
            "C did not connect to A through the erl node"
        );
    } else {
        assert!(
            !rt.block_on(nodeup_within(&mut events, &cn, QUIET)),
            "C connected to A through `erl -connect_all false`"
        );
        assert_eq!(listed(&mut c), vec![m_name.clone()]);
        assert!(!a.list().contains(&cn));
    }
}

/// Two `erl` nodes X and Y connect only to an Orbit node M; true when they meet.
fn two_erl_nodes_through_orbit(connect_all: bool) -> Option<bool> {
    if !erl_available() {
        println!("SKIP erl nodes through an Orbit node: `erl` is not on PATH");
        return None;
    }
    let m_name = unique("ca_mid");
    let mut m = if connect_all {
        orbit_node_with(&m_name, &[COOKIE], &[])
    } else {
        orbit_node_with(&m_name, &[COOKIE, "no-connect-all"], &[])
    };
    let x_name = unique("ca_x");
    let y_name = unique("ca_y");
    let window = if connect_all {
        20_000
    } else {
        QUIET.as_millis()
    };
    let x_code = format!(
        "ok = net_kernel:monitor_nodes(true), true = net_kernel:connect_node('{m_name}'),          io:format(\"connected~n\"), _ = io:get_line(''),          receive {{nodeup, '{y_name}'}} -> io:format(\"met~n\")          after {window} -> io:format(\"apart ~p~n\", [nodes()]) end,          receive after infinity -> ok end."
    );
    let y_code = format!(
        "true = net_kernel:connect_node('{m_name}'), io:format(\"connected~n\"),          receive after infinity -> ok end."
    );
    let erl = |name: &str, code: &str| {
        let mut cmd = Command::new("erl");
        cmd.args([
            "-noshell",
            "-name",
            name,
            "-setcookie",
            COOKIE,
            "-eval",
            code,
        ]);
        Peer::command(cmd, name.to_string())
    };
    let mut x = erl(&x_name, &x_code);
    x.expect("connected", 30);
    let mut y = erl(&y_name, &y_code);
    y.expect("connected", 30);
    x.say("go");
    let l = x.expect("", 30);
    m.say("list");
    let listed = m.expect("list", 10);
    assert!(
        listed.contains(&x_name) && listed.contains(&y_name),
        "{listed}"
    );
    Some(l == "met")
}

#[test]
fn erl_nodes_meet_through_an_orbit_node() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(met) = two_erl_nodes_through_orbit(true) {
        assert!(met, "two erl nodes did not meet through an Orbit node");
    }
}

#[test]
fn erl_nodes_stay_apart_through_an_orbit_node_without_connect_all() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(met) = two_erl_nodes_through_orbit(false) {
        assert!(
            !met,
            "two erl nodes met through a node whose connect_all is false"
        );
    }
}

#[test]
fn orbit_node_without_connect_all_neither_meshes_nor_bridges() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    orbit_middle(false);
}

#[test]
fn orbit_node_with_connect_all_meshes_and_bridges() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    orbit_middle(true);
}

#[test]
fn erl_connect_all_false_does_not_bridge_either() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    erl_middle(false);
}

#[test]
fn erl_default_bridges_like_an_orbit_node() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    erl_middle(true);
}

#[test]
fn options_default_to_connect_all_and_hidden_nodes_keep_out() {
    let o = orbit_dist::Options::default();
    assert!(o.connect_all);
    assert!(!o.connect_all(false).connect_all);
}
