//! The storage behind a table, one variant per table type, and the primitive visits the
//! operations are built from.
//!
//! - `set`: [`Shards`]`<K, V>` (lock-sharded `IndexMap`).
//! - `bag` / `duplicate_bag`: [`Shards`]`<K, Vec<V>>`, objects under a key in insertion order.
//! - `ordered_set`: one `RwLock<BTreeMap<K, V>>` (key order; ranges without scans).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::ops::Bound;

use parking_lot::RwLock;

use super::query::{empty_range, Scope};
use super::shards::{Map, Shard, Shards};

pub(crate) enum Store<K, V> {
    Set(Shards<K, V>),
    Bag(Shards<K, Vec<V>>),
    Ordered(RwLock<BTreeMap<K, V>>),
}

/// The map operations `set` and `ordered_set` share, looked up by `Q`: the key type or
/// a borrowed form of it (`str` for `String` keys). `Borrow`'s contract (the borrowed
/// form hashes, compares and orders as the key does) makes the hash lookup and the
/// ordered lookup agree.
pub(crate) trait SetMap<K, V, Q: ?Sized> {
    fn get_kv(&self, k: &Q) -> Option<(&K, &V)>;
    fn get_mut_v(&mut self, k: &Q) -> Option<&mut V>;
    fn insert_v(&mut self, k: K, v: V);
    fn remove_kv(&mut self, k: &Q) -> Option<(K, V)>;
}

impl<K, V, Q> SetMap<K, V, Q> for Map<K, V>
where
    K: Hash + Eq + Borrow<Q>,
    Q: ?Sized + Hash + Eq,
{
    #[inline]
    fn get_kv(&self, k: &Q) -> Option<(&K, &V)> {
        self.get_key_value(k)
    }
    #[inline]
    fn get_mut_v(&mut self, k: &Q) -> Option<&mut V> {
        self.get_mut(k)
    }
    #[inline]
    fn insert_v(&mut self, k: K, v: V) {
        self.insert(k, v);
    }
    #[inline]
    fn remove_kv(&mut self, k: &Q) -> Option<(K, V)> {
        self.swap_remove_entry(k)
    }
}

impl<K, V, Q> SetMap<K, V, Q> for BTreeMap<K, V>
where
    K: Ord + Borrow<Q>,
    Q: ?Sized + Ord,
{
    #[inline]
    fn get_kv(&self, k: &Q) -> Option<(&K, &V)> {
        self.get_key_value(k)
    }
    #[inline]
    fn get_mut_v(&mut self, k: &Q) -> Option<&mut V> {
        self.get_mut(k)
    }
    #[inline]
    fn insert_v(&mut self, k: K, v: V) {
        self.insert(k, v);
    }
    #[inline]
    fn remove_kv(&mut self, k: &Q) -> Option<(K, V)> {
        self.remove_entry(k)
    }
}

/// Adds an object to a bag shard: always for `duplicate_bag`, unless an identical object
/// is present for `bag`.
pub(crate) fn bag_push<K: std::hash::Hash + Eq, V: PartialEq>(
    s: &mut Shard<K, Vec<V>>,
    dup: bool,
    k: K,
    v: V,
) {
    let vs = s.map.entry(k).or_default();
    if dup || !vs.contains(&v) {
        vs.push(v);
        s.objects += 1;
    }
}

impl<K: Ord + std::hash::Hash + Clone, V> Store<K, V> {
    pub(crate) fn size(&self) -> usize {
        match self {
            Store::Set(s) => (0..s.len()).map(|i| s.read(i).map.len()).sum(),
            Store::Bag(s) => (0..s.len()).map(|i| s.read(i).objects).sum(),
            Store::Ordered(m) => m.read().len(),
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            Store::Set(s) => (0..s.len()).for_each(|i| {
                let mut g = s.write(i);
                g.map = Map::with_hasher(g.map.hasher().clone());
                g.objects = 0;
            }),
            Store::Bag(s) => (0..s.len()).for_each(|i| {
                let mut g = s.write(i);
                g.map = Map::with_hasher(g.map.hasher().clone());
                g.objects = 0;
            }),
            Store::Ordered(m) => m.write().clear(),
        }
    }

    pub(crate) fn memory(&self) -> usize {
        match self {
            Store::Set(s) => s.memory(|_| 0),
            Store::Bag(s) => s.memory(|vs| vs.capacity() * std::mem::size_of::<V>()),
            Store::Ordered(m) => {
                // std's B-tree: nodes of up to 11 entries; estimate nodes about 3/4 full
                // (8 entries), one internal node per 6 leaves.
                let len = m.read().len();
                let leaf = 11 * std::mem::size_of::<(K, V)>() + 16;
                let leaves = len.div_ceil(8);
                std::mem::size_of::<Self>() + leaves * leaf + leaves.div_ceil(6) * (leaf + 12 * 8)
            }
        }
    }

    /// Calls `f` on every object in `scope` under read locks (shard by shard). `reverse`
    /// reverses key order on `ordered_set` (hash tables have no order to reverse).
    pub(crate) fn visit(&self, scope: &Scope<'_, K>, reverse: bool, f: &mut dyn FnMut(&K, &V)) {
        match (self, scope) {
            (_, Scope::Nothing) => {}
            (Store::Set(s), Scope::Keys(keys)) => {
                for k in keys {
                    if let Some((k, v)) = s.read_key(k).map.get_key_value(*k) {
                        f(k, v);
                    }
                }
            }
            (Store::Set(s), Scope::Range(lo, hi)) => {
                let r = (*lo, *hi);
                let all = matches!(r, (Bound::Unbounded, Bound::Unbounded));
                for i in 0..s.len() {
                    let g = s.read(i);
                    for (k, v) in g.map.iter() {
                        if all || std::ops::RangeBounds::contains(&r, k) {
                            f(k, v);
                        }
                    }
                }
            }
            (Store::Bag(s), Scope::Keys(keys)) => {
                for k in keys {
                    if let Some((k, vs)) = s.read_key(k).map.get_key_value(*k) {
                        vs.iter().for_each(|v| f(k, v));
                    }
                }
            }
            (Store::Bag(s), Scope::Range(lo, hi)) => {
                let r = (*lo, *hi);
                for i in 0..s.len() {
                    let g = s.read(i);
                    for (k, vs) in g.map.iter() {
                        if std::ops::RangeBounds::contains(&r, k) {
                            vs.iter().for_each(|v| f(k, v));
                        }
                    }
                }
            }
            (Store::Ordered(m), Scope::Keys(keys)) => {
                let g = m.read();
                let mut visit = |k: &K| {
                    if let Some((k, v)) = g.get_key_value(k) {
                        f(k, v);
                    }
                };
                if reverse {
                    keys.iter().rev().for_each(|k| visit(k));
                } else {
                    keys.iter().for_each(|k| visit(k));
                }
            }
            (Store::Ordered(m), Scope::Range(lo, hi)) => {
                if empty_range(*lo, *hi) {
                    return;
                }
                let g = m.read();
                let it = g.range::<K, _>((*lo, *hi));
                if reverse {
                    it.rev().for_each(|(k, v)| f(k, v));
                } else {
                    it.for_each(|(k, v)| f(k, v));
                }
            }
        }
    }

    /// Calls `f` on every object in `scope` under write locks; an object for which `f`
    /// returns false is deleted.
    pub(crate) fn visit_mut(&self, scope: &Scope<'_, K>, f: &mut dyn FnMut(&K, &mut V) -> bool) {
        match (self, scope) {
            (_, Scope::Nothing) => {}
            (Store::Set(s), Scope::Keys(keys)) => {
                for k in keys {
                    let mut g = s.write_key(k);
                    if let Some((_, k2, v)) = g.map.get_full_mut(*k) {
                        if !f(k2, v) {
                            g.map.swap_remove(*k);
                        }
                    }
                }
            }
            (Store::Set(s), Scope::Range(lo, hi)) => {
                let r = (*lo, *hi);
                for i in 0..s.len() {
                    s.write(i)
                        .map
                        .retain(|k, v| !std::ops::RangeBounds::contains(&r, k) || f(k, v));
                }
            }
            (Store::Bag(s), Scope::Keys(keys)) => {
                for k in keys {
                    let mut g = s.write_key(k);
                    let g = &mut *g;
                    let mut removed = 0;
                    let mut empty = false;
                    if let Some((_, k2, vs)) = g.map.get_full_mut(*k) {
                        let before = vs.len();
                        vs.retain_mut(|v| f(k2, v));
                        removed = before - vs.len();
                        empty = vs.is_empty();
                    }
                    g.objects -= removed;
                    if empty {
                        g.map.swap_remove(*k);
                    }
                }
            }
            (Store::Bag(s), Scope::Range(lo, hi)) => {
                let r = (*lo, *hi);
                for i in 0..s.len() {
                    let mut g = s.write(i);
                    let g = &mut *g;
                    let mut removed = 0;
                    g.map.retain(|k, vs| {
                        if !std::ops::RangeBounds::contains(&r, k) {
                            return true;
                        }
                        let before = vs.len();
                        vs.retain_mut(|v| f(k, v));
                        removed += before - vs.len();
                        !vs.is_empty()
                    });
                    g.objects -= removed;
                }
            }
            (Store::Ordered(m), Scope::Keys(keys)) => {
                let mut g = m.write();
                for k in keys {
                    let del = match g.get_key_value(*k) {
                        Some(_) => {
                            // Present: get the value mutably (the key borrow ends above).
                            let keep = match g.get_mut(*k) {
                                Some(v) => f(k, v),
                                None => true,
                            };
                            !keep
                        }
                        None => false,
                    };
                    if del {
                        g.remove(*k);
                    }
                }
            }
            (Store::Ordered(m), Scope::Range(lo, hi)) => {
                if empty_range(*lo, *hi) {
                    return;
                }
                let mut g = m.write();
                let mut dels = Vec::new();
                for (k, v) in g.range_mut::<K, _>((*lo, *hi)) {
                    if !f(k, v) {
                        dels.push(k.clone());
                    }
                }
                for k in dels {
                    g.remove(&k);
                }
            }
        }
    }
}
