//! The cluster view over real namespaces: three Orbit nodes in a full mesh, then the
//! link between `a` and `c` cut (only that pair): a hidden observer's view shows `b`
//! seeing both while `a` and `c` do not see each other (a partition), and each node's
//! history holds the `nodedown`; after healing, the view is a full mesh again. An `erl`
//! node (when installed) is queried through `rex`.

mod support;

use orbit_cluster::view::{ClusterView, Finding, Source};
use support::child::{erl_node, have_erl, orbit_node};
use support::peer::Peer;

const TICK: u64 = 4;

#[test]
fn netns_child() {
    support::child::child_main();
}

fn view(observer: &mut Peer, seed: &str) -> ClusterView {
    let line = observer.ask(&format!("view {seed}"), "view ", 20);
    serde_json::from_str(&line["view ".len()..]).expect("the view as JSON")
}

fn sees(v: &ClusterView, node: &str) -> Vec<String> {
    v.node(node)
        .map(|n| n.sees.clone())
        .unwrap_or_else(|| panic!("{node} not in the view: {v:?}"))
}

#[test]
fn a_cut_link_of_three_shows_as_a_partition() {
    let Some(net) = support::net_or_skip("a_cut_link_of_three_shows_as_a_partition", 5) else {
        return;
    };
    let mut a = orbit_node(&net, 0, "a", TICK, false);
    let mut b = orbit_node(&net, 1, "b", TICK, false);
    let mut c = orbit_node(&net, 2, "c", TICK, false);
    let mut obs = orbit_node(&net, 3, "observer", TICK, true);
    let (an, bn, cn) = (a.name.clone(), b.name.clone(), c.name.clone());
    assert_eq!(
        a.ask(&format!("connect {bn}"), "connect ", 15),
        format!("connect {bn} true")
    );
    assert_eq!(
        b.ask(&format!("connect {cn}"), "connect ", 15),
        format!("connect {cn} true")
    );
    // The mesh is transitive: a and c find each other through b.
    a.expect(&format!("nodeup {cn}"), 15);
    c.expect(&format!("nodeup {an}"), 15);

    let v = view(&mut obs, &an);
    assert_eq!(v.nodes.len(), 3, "{}", v.table());
    assert!(!v.partitioned(), "{}", v.table());
    assert!(v.nodes.iter().all(|n| n.source == Source::Service));

    net.cut(0, 2).expect("cut a-c");
    a.expect(&format!("nodedown {cn}"), 2 * TICK + 5);
    c.expect(&format!("nodedown {an}"), 2 * TICK + 5);
    let v = view(&mut obs, &an);
    println!("{}", v.table());
    assert_eq!(sees(&v, &an), vec![bn.clone()]);
    assert_eq!(sees(&v, &cn), vec![bn.clone()]);
    assert_eq!(sees(&v, &bn), vec![an.clone(), cn.clone()]);
    assert!(v.findings.contains(&Finding::NotTransitive {
        a: an.clone(),
        b: bn.clone(),
        c: cn.clone()
    }));
    assert!(v.table().contains("PARTITION"));
    let history = &v.node(&an).expect("a").history;
    let downs: Vec<_> = history.iter().filter(|h| h.node == cn && !h.up).collect();
    assert_eq!(downs.len(), 1, "{history:?}");
    assert_eq!(downs[0].reason, "net_tick_timeout", "{:?}", downs[0]);
    // The hidden observer is in no history.
    assert!(v
        .nodes
        .iter()
        .flat_map(|n| &n.history)
        .all(|h| h.node != obs.name));

    net.heal(0, 2).expect("heal a-c");
    let mut tries = 0;
    while a.ask(&format!("connect {cn}"), "connect ", 30) != format!("connect {cn} true") {
        tries += 1;
        assert!(tries < 5, "a cannot reach c after healing");
    }
    c.expect(&format!("nodeup {an}"), 15);
    let v = view(&mut obs, &bn);
    assert!(!v.partitioned(), "{}", v.table());
    let history = &v.node(&cn).expect("c").history;
    let ups = history.iter().filter(|h| h.node == an && h.up).count();
    assert_eq!(ups, 2, "{history:?}");

    // A BEAM node is queried through rex.
    if have_erl() {
        let e = erl_node(&net, 4, "e", TICK);
        let en = e.name.clone();
        // Orbit's mesh does not learn of a BEAM node's peers through global: connect
        // each explicitly.
        for p in [&mut a, &mut b, &mut c] {
            let want = format!("connect {en} true");
            assert_eq!(p.ask(&format!("connect {en}"), "connect ", 15), want);
        }
        let v = view(&mut obs, &an);
        let ev = v.node(&en).unwrap_or_else(|| panic!("{}", v.table()));
        assert_eq!(ev.source, Source::Rex);
        assert_eq!(ev.sees, vec![an.clone(), bn.clone(), cn.clone()]);
        assert!(!v.partitioned(), "{}", v.table());
    } else {
        println!("SKIP (part): erl is not installed, the rex path is not exercised");
    }
}
