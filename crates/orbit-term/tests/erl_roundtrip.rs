//! Random terms go through a real `erl` (binary_to_term then term_to_binary) and come
//! back equal; Erlang's own comparison of consecutive terms matches our `Ord`.

mod common;

use common::{hex, unhex, Erl};
use orbit_term::Term;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::cmp::Ordering;

const CASES: usize = 600;

#[test]
fn random_terms_survive_binary_to_term_and_back() {
    if !common::erl_available() {
        return;
    }
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = common::arb::term();
    let terms: Vec<Term> = (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).expect("tree").current())
        .collect();
    let mut erl = Erl::start(include_str!("erl/echo.erl"), false);
    for t in &terms {
        erl.send(&hex(&t.encode()));
    }
    erl.send("END");
    let mut order_mismatches = Vec::new();
    for (i, t) in terms.iter().enumerate() {
        let line = erl.line();
        let (h, cmp) = line.split_once(' ').expect("hex cmp");
        let back = Term::decode(&unhex(h)).unwrap_or_else(|e| panic!("term {i}: {e}"));
        assert!(
            back.exact_eq(t),
            "term {i} changed:\n sent {t:?}\n got  {back:?}"
        );
        if i > 0 {
            let ours = match terms[i - 1].cmp(t) {
                Ordering::Less => "lt",
                Ordering::Equal => "eq",
                Ordering::Greater => "gt",
            };
            if ours != cmp {
                order_mismatches.push(format!(
                    "{:?} vs {:?}: erl {cmp}, ours {ours}",
                    terms[i - 1],
                    t
                ));
            }
        }
    }
    let sort_line = erl.line();
    let erl_order: Vec<usize> = sort_line
        .strip_prefix("SORT")
        .expect("SORT line")
        .split_whitespace()
        .map(|s| s.parse().expect("index"))
        .collect();
    let mut ours: Vec<(usize, &Term)> = terms.iter().enumerate().collect();
    ours.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)));
    let our_order: Vec<usize> = ours.iter().map(|p| p.0).collect();
    for (k, (a, b)) in erl_order.iter().zip(&our_order).enumerate() {
        assert_eq!(
            a, b,
            "sorted position {k}: erl has {:?}, we have {:?}",
            terms[*a], terms[*b]
        );
    }
    assert_eq!(erl.line(), "DONE");
    erl.finish();
    assert!(
        order_mismatches.is_empty(),
        "term order differs: {order_mismatches:#?}"
    );
}
