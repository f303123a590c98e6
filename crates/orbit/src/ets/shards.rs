//! The storage of hash tables (set, bag, duplicate_bag): lock-sharded `IndexMap`s.
//!
//! A key's hash picks its shard (bits just under the top 7, so shard choice and the
//! map's bucket index use different bits); each shard is a `parking_lot::RwLock` over an
//! `IndexMap`, padded to its own cache lines. `IndexMap` keeps its entries in a dense
//! vector, which gives `next(key)` in O(1) (position of the key + 1) and small memory
//! per object. Operations on several keys lock the shards they touch in ascending order,
//! so they are atomic and isolated and never deadlock.

use std::hash::{BuildHasher, Hash};

use indexmap::IndexMap;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::hash::{FastState, Padded};

pub(crate) type Map<K, T> = IndexMap<K, T, FastState>;

/// One shard: the map, and the number of objects in it (differs from `map.len()` for bags).
pub(crate) struct Shard<K, T> {
    pub(crate) map: Map<K, T>,
    pub(crate) objects: usize,
}

type PaddedShard<K, T> = Padded<RwLock<Shard<K, T>>>;

/// A lock-sharded hash map.
pub(crate) struct Shards<K, T> {
    shards: Box<[PaddedShard<K, T>]>,
    shift: u32,
    hasher: FastState,
}

pub(crate) type ReadG<'a, K, T> = RwLockReadGuard<'a, Shard<K, T>>;
pub(crate) type WriteG<'a, K, T> = RwLockWriteGuard<'a, Shard<K, T>>;

impl<K: Hash + Eq, T> Shards<K, T> {
    /// `n` shards (rounded up to a power of two, at least 1).
    pub(crate) fn new(n: usize) -> Self {
        let n = n.max(1).next_power_of_two();
        let hasher = crate::hash::seeded();
        let shards = (0..n)
            .map(|_| {
                Padded(RwLock::new(Shard {
                    map: IndexMap::with_hasher(hasher.clone()),
                    objects: 0,
                }))
            })
            .collect();
        Shards {
            shards,
            shift: n.trailing_zeros(),
            hasher,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    /// The shard of key `k`; `k` may be a borrowed form of the key (`&str` for `String`),
    /// which hashes the same by `Borrow`'s contract.
    #[inline]
    pub(crate) fn index<Q: ?Sized + Hash>(&self, k: &Q) -> usize {
        if self.shift == 0 {
            return 0;
        }
        let h = self.hasher.hash_one(k);
        ((h << 7) >> (64 - self.shift)) as usize
    }

    #[inline]
    pub(crate) fn read(&self, i: usize) -> ReadG<'_, K, T> {
        self.shards[i].0.read()
    }

    #[inline]
    pub(crate) fn write(&self, i: usize) -> WriteG<'_, K, T> {
        self.shards[i].0.write()
    }

    #[inline]
    pub(crate) fn read_key<Q: ?Sized + Hash>(&self, k: &Q) -> ReadG<'_, K, T> {
        self.read(self.index(k))
    }

    #[inline]
    pub(crate) fn write_key<Q: ?Sized + Hash>(&self, k: &Q) -> WriteG<'_, K, T> {
        self.write(self.index(k))
    }

    /// Write-locks every shard any of `keys` lives in, in ascending order. Returns the
    /// guards indexed by shard (`None` for shards not locked).
    pub(crate) fn write_many<'k>(
        &self,
        keys: impl Iterator<Item = &'k K>,
    ) -> Vec<Option<WriteG<'_, K, T>>>
    where
        K: 'k,
    {
        let mut want = vec![false; self.shards.len()];
        for k in keys {
            want[self.index(k)] = true;
        }
        want.iter()
            .enumerate()
            .map(|(i, w)| if *w { Some(self.write(i)) } else { None })
            .collect()
    }

    /// Estimated bytes held: entries (hash + key + slot) and the index table.
    pub(crate) fn memory(&self, slot_extra: impl Fn(&T) -> usize) -> usize {
        let entry = std::mem::size_of::<(u64, K, T)>();
        let mut total = std::mem::size_of::<Self>()
            + self.shards.len() * std::mem::size_of::<Padded<RwLock<Shard<K, T>>>>();
        for s in self.shards.iter() {
            let g = s.0.read();
            let cap = g.map.capacity();
            if cap > 0 {
                let buckets = (cap * 8 / 7).next_power_of_two();
                total += cap * entry + buckets * (std::mem::size_of::<usize>() + 1) + 16;
            }
            for v in g.map.values() {
                total += slot_extra(v);
            }
        }
        total
    }
}
