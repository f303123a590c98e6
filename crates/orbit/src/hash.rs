//! Seeded fast hashing for the runtime's internal maps (ETS shards, cache partitions),
//! and cache-line padding for values that different cores write.
//!
//! Hashing is foldhash's fast variant with a random seed per map: quick on the small
//! keys these maps hold, and seeded so keys cannot be chosen to collide in advance.

use std::hash::{BuildHasher, Hash};
use std::ops::Deref;

/// The hasher state every internal map uses.
pub(crate) type FastState = foldhash::fast::RandomState;

/// A fresh, randomly seeded hasher state.
pub(crate) fn seeded() -> FastState {
    FastState::default()
}

/// Hashes one key with `state`.
#[inline]
pub(crate) fn hash_of<K: Hash + ?Sized>(state: &FastState, key: &K) -> u64 {
    state.hash_one(key)
}

/// A value on its own cache lines, so neighbouring shards do not share one.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
