//! Key hashing for the lock and expiry partitions (see [`crate::hash`]).

pub(crate) use crate::hash::{FastState as KeyHash, Padded};

/// Picks one of `n` partitions from a hash, using bits the maps' bucket index does not.
#[inline]
pub(crate) fn partition(hash: u64, n: usize) -> usize {
    (((hash >> 16) as u32 as u64 * n as u64) >> 32) as usize
}
