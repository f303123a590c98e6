//! Stable-toolchain fuzz replay (no nightly): for every target in `orbit_fuzz::TARGETS`,
//! replays the repository corpus (`fuzz/corpus/<target>/`) and a deterministic set of
//! seeded mutations of it, and feeds the worst shapes as 1 MB inputs. Asserts no panic,
//! peak allocation per input <= 64 x input + 16 MiB (counting global allocator below), and
//! the 1 MB inputs finish within 20 s each in a debug build on a loaded machine (the
//! linear cost is well under 1 s; the slack is for the 2-core CI box).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

struct Counting;
static CUR: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = CUR.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        CUR.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                let now = CUR.fetch_add(new - l.size(), Relaxed) + new - l.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                CUR.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Allocation bound per input: 64 bytes per input byte plus 16 MiB (runtimes, tasks,
/// buffers). Other test threads can allocate concurrently, so the tests in this file run
/// one at a time (single #[test]).
const MULT: usize = 64;
const CONST: usize = 16 << 20;

fn run_bounded(name: &str, f: fn(&[u8]), input: &[u8]) -> Duration {
    let base = CUR.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    f(input);
    let took = t.elapsed();
    let peak = PEAK.load(Relaxed).saturating_sub(base);
    assert!(
        peak <= MULT * input.len() + CONST,
        "{name}: peak allocation {peak} B for a {} B input (bound {MULT}x + {CONST})",
        input.len()
    );
    took
}

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, 70, 97, 98, 99, 100, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
    116, 118, 119, 131,
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            3 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if v.len() > 4 => {
                let i = rng.below(v.len() - 4);
                let b = (rng.next() as u32).to_be_bytes();
                v[i..i + 4].copy_from_slice(&b);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(v.len() + 1);
                let (a, b) = (i.min(j), i.max(j));
                let chunk = v[a..b].to_vec();
                v.splice(a..a, chunk);
            }
        }
    }
    v
}

/// Worst shapes, ~1 MB each: long improper-list chains, deep nestings of every kind,
/// huge declared lengths, long atoms/strings, many small elements.
fn worst_shapes() -> Vec<(&'static str, Vec<u8>)> {
    const N: usize = 1 << 20;
    let mut out = Vec::new();
    // [[[...|1]|1]|1] chained improper lists: 108 0 0 0 1 ... tail
    let mut v = vec![131];
    while v.len() < N - 16 {
        v.extend_from_slice(&[108, 0, 0, 0, 1, 97, 1]);
    }
    v.push(106);
    out.push(("list-tail chain", v.clone()));
    v.pop();
    v.extend_from_slice(&[97, 2]);
    out.push(("improper chain", v));
    // list whose head is a list: [[[[...]]]] deep nesting
    for (name, open) in [
        ("deep tuple", vec![104u8, 1]),
        ("deep list", vec![108, 0, 0, 0, 1]),
        ("deep map", vec![116, 0, 0, 0, 1, 97, 1]),
        (
            "deep fun",
            vec![
                112, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 1, 119, 1, 109, 97, 0, 97, 0, 88, 119, 1, 110, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0,
            ],
        ),
    ] {
        let mut v = vec![131];
        while v.len() < N - open.len() {
            v.extend_from_slice(&open);
        }
        v.push(106);
        out.push((name, v));
    }
    // huge declared lengths with little data
    out.push((
        "huge list len",
        vec![131, 108, 0xff, 0xff, 0xff, 0xff, 97, 1],
    ));
    out.push((
        "huge tuple len",
        vec![131, 105, 0xff, 0xff, 0xff, 0xff, 97, 1],
    ));
    out.push(("huge binary len", vec![131, 109, 0xff, 0xff, 0xff, 0xff, 0]));
    out.push(("huge map len", vec![131, 116, 0xff, 0xff, 0xff, 0xff]));
    out.push(("huge bignum", vec![131, 111, 0xff, 0xff, 0xff, 0xff, 0]));
    out.push((
        "compressed bomb",
        vec![131, 80, 0x7f, 0xff, 0xff, 0xff, 0x78, 0x9c],
    ));
    // many small elements in one flat list
    let count = (N - 16) / 2;
    let mut v = vec![131, 108];
    v.extend_from_slice(&(count as u32).to_be_bytes());
    for _ in 0..count {
        v.extend_from_slice(&[97, 1]);
    }
    v.push(106);
    out.push(("flat list", v));
    // string_ext chain and a long binary
    let mut v = vec![131, 107, 0xff, 0xff];
    v.resize(4 + 0xffff, b'a');
    out.push(("string", v));
    // handshake / epmd shapes: a max-length frame and garbage
    let mut v = vec![0xff, 0xff, b'N'];
    v.resize(N, 0xff);
    out.push(("max frames", v));
    out.push(("zeros", vec![0; N]));
    out
}

#[test]
fn fuzz_replay_every_target() {
    let mutations: usize = std::env::var("ORBIT_FUZZ_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let network = |n: &str| n.starts_with("handshake") || n.starts_with("epmd");
    for &(name, f) in orbit_fuzz::TARGETS {
        let seeds = corpus(name);
        assert!(
            !seeds.is_empty(),
            "{name}: corpus fuzz/corpus/{name} is empty"
        );
        for s in &seeds {
            run_bounded(name, f, s);
        }
        // Network targets are slower per input (sockets, runtimes): fewer mutations.
        let n = if network(name) {
            mutations / 10
        } else {
            mutations * 10
        };
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        for _ in 0..n {
            let s = &seeds[rng.below(seeds.len())];
            let m = mutate(&mut rng, s);
            run_bounded(name, f, &m);
        }
        let shapes = worst_shapes();
        for (shape, input) in &shapes {
            if network(name) && name.starts_with("epmd") && input.len() > 70_000 {
                // one big input over loopback is enough for the epmd targets
                if *shape != "zeros" {
                    continue;
                }
            }
            let took = run_bounded(name, f, input);
            eprintln!("{name}: {shape} ({} B) {took:?}", input.len());
            assert!(
                took < Duration::from_secs(20),
                "{name}: {shape} ({} B) took {took:?}",
                input.len()
            );
        }
    }
}
