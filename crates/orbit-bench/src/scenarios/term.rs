//! Scenario `term`: External Term Format throughput of `orbit-term` beside the eetf crate
//! and the BEAM's own `term_to_binary` / `binary_to_term`, plus typed serde messages
//! beside bincode and rmp-serde.
//!
//! The mixed corpus is 1000 small messages, a 1 MB binary, a 10 000-entry map and ten
//! tuples nested 100 deep. Every subject encodes and decodes exactly the same terms: the
//! corpus is built once as an `orbit_term::Term`, encoded, and given to eetf and to `erl`
//! as those bytes. The BEAM side is the compiled module `beam/term_bench.erl` (a fresh
//! `erl`, `+S N:N`, in every round). Subjects (orbit, eetf, beam, and the serde group)
//! run in every one of the `--rounds` rounds, the order rotated each round; every
//! figure is the median of rounds (used by the ratios), the totals with `_best`,
//! `_min`, `_max` and `cpu_us_per_mb` (encode and decode separately; per-shape figures
//! with `_cpu_us_per_mb`): `getrusage(RUSAGE_SELF)` around a Rust pass loop, the
//! BEAM's `statistics(runtime)` around its. `beam` figures need `erl` on PATH and are
//! skipped with a note without it. `--scale` does not apply: the corpus is fixed and
//! every pass loop runs for at least 300 ms.
//!
//! Goals (ratio lines): orbit ≥ 2x beam, orbit ≥ 1x eetf, for encode and decode.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use orbit_term::{atom, DecodeLimits, Term};
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::util::{cpu_s, rotation, Rounds};

const SCENARIO: &str = "term";
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
    let node = atom!("bench@localhost");
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

/// Seconds and CPU seconds per pass.
type PerPass = (f64, f64);

/// Runs `pass` until `MIN_TIME` has passed (after one warm-up pass); returns seconds and
/// CPU seconds (this process, every thread) per pass.
fn time_per_pass(mut pass: impl FnMut()) -> PerPass {
    pass();
    let c0 = cpu_s(libc::RUSAGE_SELF);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < MIN_TIME {
        pass();
        n += 1;
    }
    let n = n.max(1) as f64;
    (
        start.elapsed().as_secs_f64() / n,
        (cpu_s(libc::RUSAGE_SELF) - c0) / n,
    )
}

/// Encode and decode per pass, per shape, for one subject.
type Timings = HashMap<&'static str, (PerPass, PerPass)>;

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

/// One round of the compiled `term_bench` module on the corpus file.
fn measure_beam(shapes: &[Shape], corpus_file: &std::path::Path) -> Option<Timings> {
    let file = corpus_file.to_str()?;
    let text = match crate::beam::run_erl(&["-s", "term_bench", "run", file]) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("note: term_bench failed: {e}");
            return None;
        }
    };
    let mut t = Timings::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, rest @ ..] = parts.as_slice() else {
            continue;
        };
        let nums: Vec<f64> = rest.iter().filter_map(|x| x.parse().ok()).collect();
        if let (Some(s), [e, d, ec, dc]) = (shapes.iter().find(|s| s.name == *name), &nums[..]) {
            t.insert(s.name, ((e / 1e9, ec / 1e9), (d / 1e9, dc / 1e9)));
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

/// (encode per pass, decode per pass, bytes/pass) over all orders, for one serde format.
fn measure_serde(
    orders: &[Order],
    enc: impl Fn(&Order, &mut Vec<u8>),
    dec: impl Fn(&[u8]) -> Option<Order>,
) -> (PerPass, PerPass, usize) {
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

/// The figures of the run: one [`Rounds`] per metric, subjects inside.
#[derive(Default)]
struct Figures(Vec<(String, Rounds)>);

impl Figures {
    fn rounds(&mut self, metric: &str) -> &mut Rounds {
        let i = match self.0.iter().position(|(m, _)| m == metric) {
            Some(i) => i,
            None => {
                self.0.push((metric.to_string(), Rounds::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    /// Records a rate (`units / secs_per_pass`) and its CPU µs per unit.
    fn add(&mut self, subject: &'static str, metric: &str, units: f64, (secs, cpu): PerPass) {
        let r = self.rounds(metric);
        r.add(subject, units / secs);
        r.add_cpu(subject, cpu * 1e6 / units);
    }
}

/// Records one subject's ETF timings.
fn record_etf(f: &mut Figures, subject: &'static str, shapes: &[Shape], timings: &Timings) {
    for s in shapes {
        if let Some((enc, dec)) = timings.get(s.name) {
            let mb = s.bytes as f64 / 1e6;
            f.add(subject, &format!("{}_encode_mb_s", s.name), mb, *enc);
            f.add(subject, &format!("{}_decode_mb_s", s.name), mb, *dec);
        }
    }
    if timings.len() == shapes.len() {
        let sum = |g: fn(&(PerPass, PerPass)) -> PerPass| {
            shapes.iter().fold((0.0, 0.0), |(a, b), s| {
                let (x, y) = g(&timings[s.name]);
                (a + x, b + y)
            })
        };
        let (enc, dec) = (sum(|t| t.0), sum(|t| t.1));
        let mb: f64 = shapes.iter().map(|s| s.bytes as f64).sum::<f64>() / 1e6;
        let terms: f64 = shapes.iter().map(|s| s.terms.len() as f64).sum();
        f.add(subject, "encode_mb_s", mb, enc);
        f.add(subject, "decode_mb_s", mb, dec);
        f.add(subject, "encode_terms_s", terms, enc);
        f.add(subject, "decode_terms_s", terms, dec);
    }
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let shapes = corpus();
    let beam_file = if crate::beam::erl_available() {
        write_corpus(&shapes)
    } else {
        eprintln!("note: erl not on PATH; skipping the beam subject of term and its ratios");
        None
    };
    let orders = orders();
    let mut f = Figures::default();
    let mut bytes_per_msg: Vec<(&'static str, f64)> = Vec::new();
    for round in 0..ctx.rounds {
        for i in rotation(round, 4) {
            match i {
                0 => record_etf(&mut f, "orbit", &shapes, &measure_orbit(&shapes)),
                1 => record_etf(&mut f, "eetf", &shapes, &measure_eetf(&shapes)),
                2 => {
                    if let Some(t) = beam_file.as_ref().and_then(|p| measure_beam(&shapes, p)) {
                        record_etf(&mut f, "beam", &shapes, &t);
                    }
                }
                _ => {
                    let n = orders.len() as f64;
                    let serde_runs: [(&'static str, (PerPass, PerPass, usize)); 3] = [
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
                        f.add(subject, "serde_encode_msgs_s", n, e);
                        f.add(subject, "serde_decode_msgs_s", n, d);
                        if !bytes_per_msg.iter().any(|(s, _)| *s == subject) {
                            bytes_per_msg.push((subject, bytes as f64 / n));
                        }
                    }
                }
            }
        }
    }
    if let Some(path) = &beam_file {
        let _ = std::fs::remove_file(path);
    }
    for (metric, r) in &f.0 {
        // The totals get the full statistic, the rest median and CPU.
        let total = ["encode_mb_s", "decode_mb_s"].contains(&metric.as_str());
        for subject in ["orbit", "eetf", "beam", "bincode", "rmp-serde"] {
            if total {
                let unit = if metric.starts_with("encode") {
                    "mb_encoded"
                } else {
                    "mb_decoded"
                };
                ctx.emit_rounds(SCENARIO, subject, metric, unit, r);
            } else {
                ctx.emit_opt(SCENARIO, subject, metric, r.median(subject));
                let cpu = r.cpu_median(subject);
                let unit = if metric.ends_with("_mb_s") {
                    "mb"
                } else if metric.contains("terms") {
                    "term"
                } else {
                    "msg"
                };
                let m = format!("{metric}_cpu_us_per_{unit}");
                ctx.emit_opt(SCENARIO, subject, &m, cpu);
            }
        }
    }
    for (subject, b) in bytes_per_msg {
        ctx.rep.emit(SCENARIO, subject, "serde_bytes_per_msg", b);
    }
    for (what, metric) in [("encode", "encode_mb_s"), ("decode", "decode_mb_s")] {
        let r = f.rounds(metric);
        let (o, b, e) = (r.median("orbit"), r.median("beam"), r.median("eetf"));
        ctx.goal(SCENARIO, &format!("{what}_orbit_over_beam_goal_2x"), o, b);
        ctx.goal(SCENARIO, &format!("{what}_orbit_over_eetf_goal_1x"), o, e);
    }
}
