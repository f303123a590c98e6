//! Node names of pids through each thread's cache of recent lookups (issue 17): a name
//! looked up before this node is named after it must become local once it is, and the
//! node's old name must stop being local, on every thread, cached or not.

use orbit::pid::{local_node, set_local_node};
use orbit::Pid;

#[test]
fn the_lookup_cache_follows_renames_of_this_node() {
    // Cached while it is another node's name.
    let before = Pid::remote("me@127.0.0.1", 7, 1, 3);
    assert!(!before.is_local());
    assert_eq!(
        Pid::remote("me@127.0.0.1", 7, 1, 3),
        before,
        "from the cache"
    );
    assert_eq!(before.with_node(str::to_owned), "me@127.0.0.1");
    let other = Pid::remote("peer@127.0.0.1", 1, 0, 2);
    assert_eq!(other.with_node(str::to_owned), "peer@127.0.0.1");

    let old = local_node();
    set_local_node("me@127.0.0.1");
    let now = Pid::remote("me@127.0.0.1", 7, 1, 3);
    assert!(
        now.is_local(),
        "this node's name gives local pids once it is named"
    );
    assert_eq!(now.creation(), 0);
    assert_eq!(now.with_node(str::to_owned), "me@127.0.0.1");
    // Another thread (its own cache) agrees.
    let there = std::thread::spawn(|| Pid::remote("me@127.0.0.1", 7, 1, 3).is_local())
        .join()
        .expect("thread");
    assert!(there);
    // The old local name is an ordinary remote node now.
    let gone = Pid::remote(&old, 5, 0, 1);
    assert!(!gone.is_local());
    assert_eq!(gone.with_node(str::to_owned), &*old);
    // Other nodes keep their index.
    assert_eq!(Pid::remote("peer@127.0.0.1", 1, 0, 2), other);
    assert_eq!(other.with_node(str::to_owned), "peer@127.0.0.1");
    assert_eq!(&*other.node(), "peer@127.0.0.1");
}

#[test]
fn many_names_through_a_small_cache() {
    let names: Vec<String> = (0..50).map(|i| format!("n{i}@cache")).collect();
    let pids: Vec<Pid> = names.iter().map(|n| Pid::remote(n, 1, 0, 1)).collect();
    for _ in 0..3 {
        for (n, p) in names.iter().zip(&pids) {
            assert_eq!(Pid::remote(n, 1, 0, 1), *p);
            assert_eq!(p.with_node(str::to_owned), *n);
            assert_eq!(&*p.node(), n.as_str());
        }
    }
}
