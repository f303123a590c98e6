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
