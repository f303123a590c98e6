//! Regression tests: hostile terms must not make the decoder reserve memory out of
//! proportion to the bytes actually present. A counting global allocator records the peak
//! of live heap bytes while one decode runs (this binary holds one test so that no other
//! test allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use orbit_term::{DecodeLimits, Term};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::SeqCst) + l.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::SeqCst);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::SeqCst);
            let now = LIVE.fetch_add(new, Ordering::SeqCst) + new;
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Extra live heap bytes at the peak of `f`.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst).saturating_sub(base)
}

#[test]
fn hostile_terms_reserve_memory_in_proportion_to_their_bytes() {
    // 1. Nested lists whose tail is another list header claiming every remaining byte:
    // each open level used to reserve `remaining * size_of::<Term>()` at once
    // (quadratic in the input: ~100 levels × 50 000 slots here).
    let depth = 100;
    let pad = 50_000;
    let mut b = vec![131];
    for k in 0..depth {
        b.extend_from_slice(&[108, 0, 0, 0, 0]); // LIST_EXT with no elements...
        let remaining = (depth - k - 1) * 10 + pad; // ...whose tail claims the rest
        b.push(108);
        b.extend_from_slice(&(remaining as u32).to_be_bytes());
    }
    b.extend(std::iter::repeat_n(106u8, pad));
    let input = b.len();
    let peak = peak_during(|| {
        assert!(Term::decode(&b).is_err());
    });
    assert!(
        peak < 16 << 20,
        "decoding {input} bytes of chained list headers peaked at {peak} live heap bytes"
    );

    // 2. A compressed term whose 4 KiB of junk claims 4 MB uncompressed: within the
    // limit and the zlib ratio, but the bytes never inflate to it.
    let mut c = vec![131, 80];
    c.extend_from_slice(&(4_000_000u32).to_be_bytes());
    c.extend_from_slice(&[0x78, 0x9c]);
    c.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let peak = peak_during(|| {
        assert!(Term::decode_with(&c, &DecodeLimits::DEFAULT).is_err());
    });
    assert!(
        peak < 1 << 20,
        "a 4 KiB compressed lie claiming 4 MB peaked at {peak} live heap bytes"
    );

    // 3. An honest compressed term that inflates ~1000:1 still decodes (the output grows
    // from a small reservation to exactly its declared size).
    let big = Term::Binary(vec![7u8; 2 << 20]);
    let packed = big.encode_compressed(9).expect("compress");
    assert!(packed.len() < 16 << 10, "{} compressed bytes", packed.len());
    assert_eq!(Term::decode(&packed).expect("honest compressed term"), big);
}
