//! Test support for partition tests: network namespaces ([`netns`]), child processes
//! whose output lines are awaited ([`peer`]), the nodes run in the namespaces
//! ([`child`]), and a relay that delays or blackholes a node's links ([`relay`]).
#![allow(dead_code)]

pub mod child;
pub mod netns;
pub mod peer;
pub mod relay;

/// Creates a [`netns::Net`] of `n` nodes, or prints `SKIP <test>: why` and returns
/// `None` when namespaces cannot be made here.
pub fn net_or_skip(test: &str, n: usize) -> Option<netns::Net> {
    match netns::Net::new(n) {
        Ok(net) => Some(net),
        Err(netns::Skip(why)) => {
            println!("SKIP {test}: {why}");
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}

/// The value of `key=` in a line of `key=value` words (empty when absent).
pub fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

/// The number after `key=` in `line`; panics naming the line when there is none.
pub fn num(line: &str, key: &str) -> u64 {
    field(line, key)
        .parse()
        .unwrap_or_else(|_| panic!("no number {key}= in {line:?}"))
}

/// What runs on the other side of a cut or a relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Other {
    /// An Orbit node (this test binary re-run).
    Orbit,
    /// `erl`.
    Erl,
    /// `elixir`.
    Elixir,
}

/// Starts the other side's node `b` in namespace 1 with net_ticktime `tick` seconds, or
/// `None` (after printing `SKIP`) when its runtime is not installed.
pub fn other_node(test: &str, net: &netns::Net, other: Other, tick: u64) -> Option<peer::Peer> {
    match other {
        Other::Orbit => Some(child::orbit_node(net, 1, "b", tick, false)),
        Other::Erl if child::have_erl() => Some(child::erl_node(net, 1, "b", tick)),
        Other::Elixir if child::have_elixir() => Some(child::elixir_node(net, 1, "b", tick)),
        _ => {
            println!("SKIP {test}: {other:?} is not installed");
            None
        }
    }
}
