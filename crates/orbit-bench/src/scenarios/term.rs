//! Scenario `term`: External Term Format throughput of `orbit-term` beside the eetf crate
//! and the BEAM's own `term_to_binary` / `binary_to_term`, plus typed serde messages
//! beside bincode and rmp-serde.
//!
//! The mixed corpus is 1000 small messages, a 1 MB binary, a 10 000-entry map and ten
//! tuples nested 100 deep. Every subject encodes and decodes exactly the same terms: the
//! corpus is built once as an `orbit_term::Term`, encoded, and given to eetf and to `erl`
//! as those bytes. Subjects run interleaved, round after round, and the best round of
//! each is reported. `beam` figures need `erl` on PATH and are skipped without it.
//!
//! Goals (ratio lines): orbit ≥ 2x beam, orbit ≥ 1x eetf, for encode and decode.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use orbit_term::{DecodeLimits, Term};
use serde::{Deserialize, Serialize};

use crate::report::Reporter;

const SCENARIO: &str = "term";
const ROUNDS: usize = 3;
const MIN_TIME: Duration = Duration::from_millis(300);

/// One group of terms measured together.
struct Shape {
    name: &'static str,
    terms: Vec<Term>,
    encoded: Vec<Vec<u8>>,
    bytes: usize,
}

impl Shape {
    fn new(name: &'static str, terms: Vec<Term>) -> Shape {
        let encoded: Vec<Vec<u8>> = terms.iter().map(|t| t.encode()).collect();
        let bytes = encoded.iter().map(|e| e.len()).sum();
        Shape {
            name,
            terms,
            encoded,
            bytes,
        }
    }
}

fn atom(s: &str) -> Term {
    Term::atom(s)
}

fn corpus() -> Vec<Shape> {
    let node = orbit_term::Atom::new("bench@localhost").unwrap_or_else(|_| unreachable!());
    let small = (0..1000)
        .map(|i| {
            let pid = orbit_term::Pid::new(node.clone(), i, 0, 1);
            Term::Tuple(vec![
                atom("$gen_call"),
                Term::Tuple(vec![Term::from(pid), Term::Int(i as i64)]),
                Term::Tuple(vec![
                    atom("get"),
                    Term::from(format!("user:{i}")),
                    Term::List(vec![atom("name"), atom("email"), Term::Int(3)]),
                    Term::Float(i as f64 * 0.5),
                ]),
            ])
        })
        .collect();
    let binary = vec![Term::Binary(
        (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect(),
    )];
    let map = vec![Term::Map(
        (0..10_000)
            .map(|i| (Term::Int(i), Term::from(format!("value-{i}"))))
            .collect(),
    )];
    let deep = (0..10)
        .map(|i| {
            let mut t = Term::Int(i);
            for d in 0..100 {
                t = Term::Tuple(vec![atom("node"), Term::Int(d), t]);
            }
            t
        })
        .collect();
    vec![
        Shape::new("small", small),
        Shape::new("binary_1mb", binary),
        Shape::new("map_10k", map),
        Shape::new("deep_tuples", deep),
    ]
}

/// Runs `pass` until `MIN_TIME` has passed; returns seconds per pass.
fn time_per_pass(mut pass: impl FnMut()) -> f64 {
    pass();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < MIN_TIME {
        pass();
        n += 1;
    }
    start.elapsed().as_secs_f64() / n as f64
}

/// Seconds per pass of encode and decode, per shape, for one subject.
type Timings = HashMap<&'static str, (f64, f64)>;

fn measure_orbit(shapes: &[Shape]) -> Timings {
    let mut out = Timings::new();
    let mut buf = Vec::with_capacity(2 << 20);
    for s in shapes {
        let enc = time_per_pass(|| {
            for t in &s.terms {
                buf.clear();
                t.encode_into(&mut buf);
                black_box(&buf);
            }
        });
        let dec = time_per_pass(|| {
            for e in &s.encoded {
                black_box(Term::decode_with(e, &DecodeLimits::DEFAULT).ok());
            }
        });
        out.insert(s.name, (enc, dec));
    }
    out
}

fn measure_eetf(shapes: &[Shape]) -> Timings {
    let mut out = Timings::new();
    let mut buf = Vec::with_capacity(2 << 20);
    for s in shapes {
        let terms: Vec<eetf::Term> = s
            .encoded
            .iter()
            .filter_map(|e| eetf::Term::decode(&e[..]).ok())
            .collect();
        if terms.len() != s.encoded.len() {
            eprintln!("term: eetf could not decode the {} shape; skipped", s.name);
            continue;
        }
        let enc = time_per_pass(|| {
            for t in &terms {
                buf.clear();
                let _ = t.encode(&mut buf);
                black_box(&buf);
            }
        });
        let dec = time_per_pass(|| {
            for e in &s.encoded {
                black_box(eetf::Term::decode(&e[..]).ok());
            }
        });
        out.insert(s.name, (enc, dec));
    }
    out
}

const BEAM_SNIPPET: &str = r#"
{ok, Bin} = file:read_file(os:getenv("ORBIT_TERM_CORPUS")),
Shapes = binary_to_term(Bin),
Time = fun(F) ->
    F(),
    Start = erlang:monotonic_time(nanosecond),
    Loop = fun L(N) ->
        F(),
        Now = erlang:monotonic_time(nanosecond),
        if Now - Start >= 300000000 -> {N + 1, Now - Start}; true -> L(N + 1) end
    end,
    {Passes, Ns} = Loop(0),
    Ns / Passes
  end,
lists:foreach(fun({Name, Encoded}) ->
    Terms = [binary_to_term(E) || E <- Encoded],
    Enc = Time(fun() -> lists:foreach(fun(T) -> term_to_binary(T) end, Terms) end),
    Dec = Time(fun() -> lists:foreach(fun(E) -> binary_to_term(E) end, Encoded) end),
    io:format("~s ~f ~f~n", [Name, Enc, Dec])
  end, Shapes),
halt().
"#;

fn erl_on_path() -> bool {
    Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn measure_beam(shapes: &[Shape], corpus_file: &std::path::Path) -> Option<Timings> {
    let out = Command::new("erl")
        .args(["-noshell", "-eval", BEAM_SNIPPET])
        .env("ORBIT_TERM_CORPUS", corpus_file)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut t = Timings::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(enc), Some(dec)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let (Some(s), Ok(e), Ok(d)) = (
            shapes.iter().find(|s| s.name == name),
            enc.parse::<f64>(),
            dec.parse::<f64>(),
        ) {
            t.insert(s.name, (e / 1e9, d / 1e9));
        }
    }
    (t.len() == shapes.len()).then_some(t)
}

/// Writes the corpus as `[{Name, [EncodedTerm]}]` for the Erlang side.
fn write_corpus(shapes: &[Shape]) -> Option<std::path::PathBuf> {
    let list = Term::List(
        shapes
            .iter()
            .map(|s| {
                Term::Tuple(vec![
                    Term::from(s.name),
                    Term::List(s.encoded.iter().map(|e| Term::Binary(e.clone())).collect()),
                ])
            })
            .collect(),
    );
    let path = std::env::temp_dir().join(format!("orbit_term_bench_{}.etf", std::process::id()));
    let mut f = std::fs::File::create(&path).ok()?;
    f.write_all(&list.encode()).ok()?;
    Some(path)
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
enum Status {
    Pending,
    Shipped { carrier: String },
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<Item>,
    status: Status,
    tags: Vec<String>,
    note: Option<String>,
}

fn orders() -> Vec<Order> {
    (0..1000u64)
        .map(|i| Order {
            id: i * 7919,
            customer: format!("customer-{i}"),
            items: (0..3)
                .map(|k| Item {
                    sku: format!("SKU-{}", i * 3 + k),
                    qty: k as u32 + 1,
                    price: 9.99 * (k + 1) as f64,
                })
                .collect(),
            status: if i % 2 == 0 {
                Status::Pending
            } else {
                Status::Shipped {
                    carrier: "dhl".into(),
                }
            },
            tags: vec!["a".into(), "bb".into()],
            note: (i % 3 == 0).then(|| "fragile".into()),
        })
        .collect()
}

/// (encode s/pass, decode s/pass, bytes/pass) over all orders, for one serde format.
fn measure_serde(
    orders: &[Order],
    enc: impl Fn(&Order, &mut Vec<u8>),
    dec: impl Fn(&[u8]) -> Option<Order>,
) -> (f64, f64, usize) {
    let encoded: Vec<Vec<u8>> = orders
        .iter()
        .map(|o| {
            let mut v = Vec::new();
            enc(o, &mut v);
            v
        })
        .collect();
    let ok = encoded
        .iter()
        .zip(orders)
        .all(|(e, o)| dec(e).as_ref() == Some(o));
    assert!(ok, "a serde format did not round-trip the orders");
    let bytes = encoded.iter().map(|e| e.len()).sum();
    let mut buf = Vec::with_capacity(4096);
    let e = time_per_pass(|| {
        for o in orders {
            buf.clear();
            enc(o, &mut buf);
            black_box(&buf);
        }
    });
    let d = time_per_pass(|| {
        for b in &encoded {
            black_box(dec(b));
        }
    });
    (e, d, bytes)
}

fn best(into: &mut HashMap<(String, String), f64>, subject: &str, metric: &str, value: f64) {
    let e = into
        .entry((subject.to_string(), metric.to_string()))
        .or_insert(0.0);
    if value > *e {
        *e = value;
    }
}

/// Runs the scenario and reports through `rep`.
pub fn run(rep: &mut Reporter) {
    let shapes = corpus();
    let total_terms: usize = shapes.iter().map(|s| s.terms.len()).sum();
    let total_bytes: usize = shapes.iter().map(|s| s.bytes).sum();
    let beam_file = if erl_on_path() {
        write_corpus(&shapes)
    } else {
        eprintln!("term: erl not on PATH; no beam figures");
        None
    };
    let orders = orders();
    let mut results: HashMap<(String, String), f64> = HashMap::new();

    for _ in 0..ROUNDS {
        let mut subjects: Vec<(&str, Timings)> = vec![("orbit", measure_orbit(&shapes))];
        subjects.push(("eetf", measure_eetf(&shapes)));
        if let Some(path) = &beam_file {
            if let Some(t) = measure_beam(&shapes, path) {
                subjects.push(("beam", t));
            }
        }
        for (subject, timings) in &subjects {
            for s in &shapes {
                if let Some((enc, dec)) = timings.get(s.name) {
                    let mb = s.bytes as f64 / 1e6;
                    best(
                        &mut results,
                        subject,
                        &format!("{}_encode_mb_s", s.name),
                        mb / enc,
                    );
                    best(
                        &mut results,
                        subject,
                        &format!("{}_decode_mb_s", s.name),
                        mb / dec,
                    );
                }
            }
            if timings.len() == shapes.len() {
                let enc: f64 = shapes.iter().map(|s| timings[s.name].0).sum();
                let dec: f64 = shapes.iter().map(|s| timings[s.name].1).sum();
                best(
                    &mut results,
                    subject,
                    "encode_mb_s",
                    total_bytes as f64 / 1e6 / enc,
                );
                best(
                    &mut results,
                    subject,
                    "decode_mb_s",
                    total_bytes as f64 / 1e6 / dec,
                );
                best(
                    &mut results,
                    subject,
                    "encode_terms_s",
                    total_terms as f64 / enc,
                );
                best(
                    &mut results,
                    subject,
                    "decode_terms_s",
                    total_terms as f64 / dec,
                );
            }
        }

        let n = orders.len() as f64;
        let serde_runs: [(&str, (f64, f64, usize)); 3] = [
            (
                "orbit",
                measure_serde(
                    &orders,
                    |o, out| {
                        let _ = orbit_term::to_vec_into(o, out);
                    },
                    |b| orbit_term::from_slice(b).ok(),
                ),
            ),
            (
                "bincode",
                measure_serde(
                    &orders,
                    |o, out| {
                        let _ = bincode::serialize_into(out, o);
                    },
                    |b| bincode::deserialize(b).ok(),
                ),
            ),
            (
                "rmp-serde",
                measure_serde(
                    &orders,
                    |o, out| {
                        let _ = rmp_serde::encode::write_named(out, o);
                    },
                    |b| rmp_serde::from_slice(b).ok(),
                ),
            ),
        ];
        for (subject, (e, d, bytes)) in serde_runs {
            best(&mut results, subject, "serde_encode_msgs_s", n / e);
            best(&mut results, subject, "serde_decode_msgs_s", n / d);
            results.insert(
                (subject.into(), "serde_bytes_per_msg".into()),
                bytes as f64 / n,
            );
        }
    }
    if let Some(path) = &beam_file {
        let _ = std::fs::remove_file(path);
    }

    let mut keys: Vec<&(String, String)> = results.keys().collect();
    keys.sort();
    for (subject, metric) in keys {
        rep.emit(
            SCENARIO,
            subject,
            metric,
            results[&(subject.clone(), metric.clone())],
        );
    }
    for (what, metric) in [("encode", "encode_mb_s"), ("decode", "decode_mb_s")] {
        let orbit = rep.get(SCENARIO, "orbit", metric);
        rep.ratio(
            SCENARIO,
            &format!("{what}_orbit_over_beam_goal_2x"),
            orbit,
            rep.get(SCENARIO, "beam", metric),
        );
        rep.ratio(
            SCENARIO,
            &format!("{what}_orbit_over_eetf_goal_1x"),
            orbit,
            rep.get(SCENARIO, "eetf", metric),
        );
    }
}
