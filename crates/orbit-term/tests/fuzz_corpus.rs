//! The fuzz seed corpus and a few hundred thousand deterministic mutations of it go
//! through the decoders: no panic, no allocation beyond what the input could hold, and
//! whatever decodes re-encodes to an equal term.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use orbit_term::{from_slice, Term};

/// Tracks the largest single allocation, to check the "no allocation from a length
/// field" rule.
struct MaxAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for MaxAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: MaxAlloc = MaxAlloc;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/decode");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("seed corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read seed"))
        .collect()
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 0 => v.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if len > 1 => {
                v.remove(rng.below(len));
            }
            5 if len > 4 => {
                // Blow up a would-be length field.
                let i = rng.below(len - 3);
                v[i..i + 4].copy_from_slice(&[0xff, 0xff, 0xff, rng.next() as u8]);
            }
            _ if len > 2 => {
                // Splice in a tag byte.
                let tags = [
                    70, 77, 80, 88, 90, 97, 98, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
                    116, 118, 119,
                ];
                let i = rng.below(len);
                v[i] = tags[rng.below(tags.len())];
            }
            _ => {}
        }
    }
    v
}

fn check(input: &[u8]) {
    let compressed = input.get(1) == Some(&80);
    // zlib keeps ~43 KB of state whatever the input; that is not a length-field allocation.
    let bound =
        input.len() * if compressed { 1100 } else { 64 } + if compressed { 65536 } else { 4096 };
    LARGEST.store(0, Ordering::Relaxed);
    let decoded = Term::decode(input);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= bound,
        "allocated {largest} bytes for {} input bytes: {input:?}",
        input.len()
    );
    if let Ok(t) = decoded {
        let again = Term::decode(&t.encode()).expect("our encoding decodes");
        assert!(again.exact_eq(&t), "re-encoding changed {t:?}");
    }
    let _ = from_slice::<Term>(input);
    let _ = from_slice::<Vec<(String, Option<i64>)>>(input);
    let _ = from_slice::<HashMap<String, Vec<f64>>>(input);
}

#[test]
fn seed_corpus_and_mutations_never_panic() {
    let seeds = corpus();
    assert!(seeds.len() >= 20);
    for s in &seeds {
        Term::decode(s).expect("every seed is a valid term");
        check(s);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = 300_000;
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        check(&mutate(&mut rng, seed));
    }
}
