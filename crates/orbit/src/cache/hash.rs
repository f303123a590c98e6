//! Key hashing for the lock and expiry partitions, and cache-line padding.

use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;

/// A fast seeded hasher (folded multiply per word). Not DoS-resistant; each cache gets a
/// random seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyHash(u64);

impl KeyHash {
    pub(crate) fn random() -> Self {
        let s = std::collections::hash_map::RandomState::new();
        KeyHash(s.hash_one(0xcac4e_u64) | 1)
    }

    #[inline]
    pub(crate) fn of<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hash_one(key)
    }
}

impl BuildHasher for KeyHash {
    type Hasher = Folded;
    #[inline]
    fn build_hasher(&self) -> Folded {
        Folded(self.0)
    }
}

/// The hasher built by [`KeyHash`].
pub(crate) struct Folded(u64);

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for Folded {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        let m = ((self.0 ^ i) as u128).wrapping_mul(MUL as u128);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let m = (self.0 as u128).wrapping_mul(MUL as u128);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

/// Picks one of `n` partitions from a hash, using bits the maps' bucket index does not.
#[inline]
pub(crate) fn partition(hash: u64, n: usize) -> usize {
    (((hash >> 16) as u32 as u64 * n as u64) >> 32) as usize
}

/// A value on its own cache lines, so neighbouring partitions do not share one.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
