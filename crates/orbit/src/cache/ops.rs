//! The operations, in the order a call flows: reads, then locked writes (each with its
//! `dirty_*` twin), then isolation; and underneath, how one write stores an item and
//! its expiry.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use super::error::{CacheError, Result};
use super::lock::{self, Guard, Holder};
use super::options::{CacheEvent, Item, Ttl};
use super::ttl::{nanos, Meta, NEVER};
use super::{ConCache, Entry, Inner};
use crate::ets::{Key, TableType, Value};

// ---- reads -----------------------------------------------------------------------

impl<K: Key, V: Value> ConCache<K, V> {
    /// The value under `key`, without taking its lock (on bags: the first value). Counts
    /// a hit or a miss; with `touch_on_read`, a hit renews the item's TTL. An item past
    /// its TTL is a miss from that instant on, whether or not the sweeper has removed it
    /// yet. `key` may be a borrowed form of the key (`c.get("k")` on a
    /// `ConCache<String, _>`), as for [`Table::get`](crate::ets::Table::get).
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        let v = self.inner.peek(key)?;
        self.inner.count(v.is_some());
        if v.is_some() {
            self.inner.touch_on_read(key)?;
        }
        Ok(v)
    }

    /// Every value under `key` (bag caches; one at most on set caches). Counts a hit or a
    /// miss as [`get`](Self::get) does.
    pub fn get_all<Q>(&self, key: &Q) -> Result<Vec<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        let vs: Vec<V> = if self.inner.bag_expired(key)? {
            Vec::new()
        } else {
            self.inner
                .table
                .lookup(key)?
                .into_iter()
                .filter(|(_, e)| !self.inner.expired(&e.meta))
                .map(|(_, e)| e.value)
                .collect()
        };
        self.inner.count(!vs.is_empty());
        if !vs.is_empty() {
            self.inner.touch_on_read(key)?;
        }
        Ok(vs)
    }

    /// Renews the item's TTL from now (its last TTL; ConCache's `touch`), without the
    /// lock. Nothing happens for a missing key, an item without a TTL, or an item past
    /// its TTL (expired is expired, swept or not).
    pub fn touch<Q>(&self, key: &Q) -> Result<()>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        self.inner.renew(key)
    }

    // ---- writes --------------------------------------------------------------------

    /// Stores `value` under `key` (replacing; on bags, adding), under the key's lock.
    pub async fn put(&self, key: K, value: impl Into<Item<V>>) -> Result<()> {
        let _g = self.inner.lock(&key, None).await?;
        self.dirty_put(key, value)
    }

    /// [`put`](Self::put) without the lock.
    #[inline]
    pub fn dirty_put(&self, key: K, value: impl Into<Item<V>>) -> Result<()> {
        self.inner.store(key, value.into(), self.inner.global_ttl)
    }

    /// Stores `value` only if `key` holds nothing; [`CacheError::AlreadyExists`]
    /// otherwise.
    pub async fn insert_new(&self, key: K, value: impl Into<Item<V>>) -> Result<()> {
        let _g = self.inner.lock(&key, None).await?;
        self.dirty_insert_new(key, value)
    }

    /// [`insert_new`](Self::insert_new) without the lock.
    pub fn dirty_insert_new(&self, key: K, value: impl Into<Item<V>>) -> Result<()> {
        self.inner.insert_new(key, value.into())
    }

    /// Calls `f` with the current value (`None` if missing) under the key's lock and
    /// stores what it returns: `Ok(v)` stores `v` (TTL: the item's own, else renew for an
    /// existing item, the global TTL for a new one); `Err(e)` stores nothing and
    /// returns `e`. [`CacheError::WrongType`] on bags.
    pub async fn update<I, E, F>(&self, key: &K, f: F) -> std::result::Result<(), E>
    where
        F: FnOnce(Option<V>) -> std::result::Result<I, E>,
        I: Into<Item<V>>,
        E: From<CacheError>,
    {
        self.inner.need_set("update")?;
        let _g = self.inner.lock(key, None).await?;
        self.dirty_update(key, f)
    }

    /// [`update`](Self::update) without the lock.
    pub fn dirty_update<I, E, F>(&self, key: &K, f: F) -> std::result::Result<(), E>
    where
        F: FnOnce(Option<V>) -> std::result::Result<I, E>,
        I: Into<Item<V>>,
        E: From<CacheError>,
    {
        self.inner.need_set("update")?;
        let cur = self.inner.peek(key)?;
        let default = if cur.is_some() {
            Ttl::Renew
        } else {
            self.inner.global_ttl
        };
        let item = f(cur)?.into();
        Ok(self.inner.store(key.clone(), item, default)?)
    }

    /// As [`update`](Self::update) for an existing key only: a missing key is
    /// [`CacheError::NotExisting`] and `f` is not called.
    pub async fn update_existing<I, E, F>(&self, key: &K, f: F) -> std::result::Result<(), E>
    where
        F: FnOnce(V) -> std::result::Result<I, E>,
        I: Into<Item<V>>,
        E: From<CacheError>,
    {
        self.inner.need_set("update_existing")?;
        let _g = self.inner.lock(key, None).await?;
        self.dirty_update_existing(key, f)
    }

    /// [`update_existing`](Self::update_existing) without the lock.
    pub fn dirty_update_existing<I, E, F>(&self, key: &K, f: F) -> std::result::Result<(), E>
    where
        F: FnOnce(V) -> std::result::Result<I, E>,
        I: Into<Item<V>>,
        E: From<CacheError>,
    {
        self.inner.need_set("update_existing")?;
        let Some(cur) = self.inner.peek(key)? else {
            return Err(CacheError::NotExisting.into());
        };
        let item = f(cur)?.into();
        Ok(self.inner.store(key.clone(), item, Ttl::Renew)?)
    }

    /// The value under `key`; on a miss, runs `f` under the key's lock (after reading
    /// again), stores its value and returns it. However many callers miss at once, `f`
    /// runs once. [`CacheError::WrongType`] on bags. Inside `f`, a locked operation on
    /// `key` fails with [`CacheError::AlreadyHeld`].
    pub async fn get_or_store<I, F, Fut>(&self, key: &K, f: F) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = I>,
        I: Into<Item<V>>,
    {
        self.inner.need_set("get_or_store")?;
        if let Some(v) = self.inner.read_hit(key)? {
            return Ok(v);
        }
        let g = self.inner.lock(key, None).await?;
        lock::within(&[g.section()], self.dirty_get_or_store(key, f)).await
    }

    /// [`get_or_store`](Self::get_or_store) without the lock (`f` may then run more
    /// than once for one key).
    pub async fn dirty_get_or_store<I, F, Fut>(&self, key: &K, f: F) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = I>,
        I: Into<Item<V>>,
    {
        self.inner.need_set("get_or_store")?;
        if let Some(v) = self.inner.read_hit(key)? {
            return Ok(v);
        }
        let item: Item<V> = f().await.into();
        let v = item.value.clone();
        self.inner.store(key.clone(), item, self.inner.global_ttl)?;
        self.inner.counters.miss();
        Ok(v)
    }

    /// As [`get_or_store`](Self::get_or_store) with a function that may fail: on
    /// `Err(e)` nothing is stored and `e` is returned.
    pub async fn fetch_or_store<I, E, F, Fut>(&self, key: &K, f: F) -> std::result::Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<I, E>>,
        I: Into<Item<V>>,
        E: From<CacheError>,
    {
        self.inner.need_set("fetch_or_store")?;
        if let Some(v) = self.inner.read_hit(key)? {
            return Ok(v);
        }
        let g = self.inner.lock(key, None).await?;
        lock::within(&[g.section()], self.dirty_fetch_or_store(key, f)).await
    }

    /// [`fetch_or_store`](Self::fetch_or_store) without the lock.
    pub async fn dirty_fetch_or_store<I, E, F, Fut>(
        &self,
        key: &K,
        f: F,
    ) -> std::result::Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<I, E>>,
        I: Into<Item<V>>,
        E: From<CacheError>,
    {
        self.inner.need_set("fetch_or_store")?;
        if let Some(v) = self.inner.read_hit(key)? {
            return Ok(v);
        }
        let item: Item<V> = f().await?.into();
        let v = item.value.clone();
        self.inner.store(key.clone(), item, self.inner.global_ttl)?;
        self.inner.counters.miss();
        Ok(v)
    }

    /// Deletes `key` (every value, on bags) under its lock; the callback sees
    /// [`CacheEvent::Delete`] first.
    pub async fn delete(&self, key: &K) -> Result<()> {
        let _g = self.inner.lock(key, None).await?;
        self.dirty_delete(key)
    }

    /// [`delete`](Self::delete) without the lock.
    pub fn dirty_delete(&self, key: &K) -> Result<()> {
        self.inner.remove(key)
    }

    // ---- isolation -----------------------------------------------------------------

    /// Runs `fut` holding `key`'s lock (waiting up to `acquire_lock_timeout`): exclusive
    /// with every other section on the key, including other futures of the same process
    /// or task. Not re-entrant: inside `fut`, a locked operation on `key` fails with
    /// [`CacheError::AlreadyHeld`] (write with the `dirty_*` operations there, or take the
    /// lock with [`lock`](Self::lock) and re-enter with [`isolated_with`](Self::isolated_with)).
    pub async fn isolated<R>(&self, key: &K, fut: impl Future<Output = R>) -> Result<R> {
        let g = self.inner.lock(key, None).await?;
        Ok(lock::within(&[g.section()], fut).await)
    }

    /// [`isolated`](Self::isolated), waiting at most `timeout` for the lock.
    pub async fn isolated_timeout<R>(
        &self,
        key: &K,
        timeout: Duration,
        fut: impl Future<Output = R>,
    ) -> Result<R> {
        let g = self.inner.lock(key, Some(timeout)).await?;
        Ok(lock::within(&[g.section()], fut).await)
    }

    /// [`isolated`](Self::isolated) if the lock is free now; [`CacheError::Locked`]
    /// naming the holder otherwise.
    pub async fn try_isolated<R>(&self, key: &K, fut: impl Future<Output = R>) -> Result<R> {
        let g = self.inner.locks.try_lock(key, Holder::current())?;
        Ok(lock::within(&[g.section()], fut).await)
    }

    /// Takes `key`'s lock (waiting up to `acquire_lock_timeout`) and returns it: the
    /// section lasts until the [`KeyLock`] is dropped. Write the key with the `dirty_*`
    /// operations meanwhile, and pass the lock to [`isolated_with`](Self::isolated_with)
    /// to run code that isolates the key again. A plain locked operation on the key
    /// while you hold it waits for you (it cannot tell you from another future of your
    /// task) until [`CacheError::LockTimeout`].
    pub async fn lock(&self, key: &K) -> Result<KeyLock<'_, K, V>> {
        let guard = self.inner.lock(key, None).await?;
        Ok(KeyLock { cache: self, guard })
    }

    /// [`lock`](Self::lock), waiting at most `timeout`.
    pub async fn lock_timeout(&self, key: &K, timeout: Duration) -> Result<KeyLock<'_, K, V>> {
        let guard = self.inner.lock(key, Some(timeout)).await?;
        Ok(KeyLock { cache: self, guard })
    }

    /// [`lock`](Self::lock) if the lock is free now; [`CacheError::Locked`] otherwise.
    pub fn try_lock(&self, key: &K) -> Result<KeyLock<'_, K, V>> {
        let guard = self.inner.locks.try_lock(key, Holder::current())?;
        Ok(KeyLock { cache: self, guard })
    }

    /// Explicit re-entry: runs `fut` under `key`'s lock given that the caller holds
    /// `held`. If `held` is this cache's lock of `key`, `fut` runs at once (the same
    /// section); otherwise `key` is locked as [`isolated`](Self::isolated) does. Inside
    /// `fut`, plain locked operations on either key fail with [`CacheError::AlreadyHeld`].
    pub async fn isolated_with<R>(
        &self,
        held: &KeyLock<'_, K, V>,
        key: &K,
        fut: impl Future<Output = R>,
    ) -> Result<R> {
        let mine = held.guard.section();
        if held.guard.of(&self.inner.locks) && held.guard.key() == key {
            return Ok(lock::within(&[mine], fut).await);
        }
        let g = lock::within(&[mine], self.inner.lock(key, None)).await?;
        Ok(lock::within(&[mine, g.section()], fut).await)
    }
}

/// A key's lock held by the caller: one section, released when dropped (a panic or a
/// killed process drops it too). See [`ConCache::lock`] and [`ConCache::isolated_with`].
pub struct KeyLock<'a, K: Key, V: Value> {
    cache: &'a ConCache<K, V>,
    guard: Guard<'a, K>,
}

impl<'a, K: Key, V: Value> KeyLock<'a, K, V> {
    /// The locked key.
    pub fn key(&self) -> &K {
        self.guard.key()
    }

    /// The cache it locks a key of.
    pub fn cache(&self) -> &'a ConCache<K, V> {
        self.cache
    }
}

impl<K: Key + std::fmt::Debug, V: Value> std::fmt::Debug for KeyLock<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLock")
            .field("cache", &self.cache.name())
            .field("key", self.key())
            .finish()
    }
}

// ---- underneath: one item's store and expiry --------------------------------------

impl<K: Key, V: Value> Inner<K, V> {
    #[inline]
    pub(crate) async fn lock(&self, key: &K, timeout: Option<Duration>) -> Result<Guard<'_, K>> {
        self.locks
            .lock(
                key,
                Holder::current(),
                timeout.unwrap_or(self.acquire_lock_timeout),
            )
            .await
    }

    #[inline]
    fn is_bag(&self) -> bool {
        matches!(self.kind, TableType::Bag | TableType::DuplicateBag)
    }

    fn need_set(&self, op: &'static str) -> Result<()> {
        if self.is_bag() {
            return Err(CacheError::WrongType {
                op,
                kind: self.kind,
            });
        }
        Ok(())
    }

    /// The live value under `key`: an item past its deadline is treated as missing.
    #[inline]
    fn peek<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        if self.bag_expired(key)? {
            return Ok(None);
        }
        Ok(self.table.lookup_with(key, |e| {
            e.filter(|e| !self.expired(&e.meta))
                .map(|e| e.value.clone())
        })?)
    }

    /// Whether an item with expiry state `meta` is past its deadline now: the sweeper's
    /// test (`deadline <= now`), on the cache's clock. Reads the clock only for an item
    /// that has a deadline.
    #[inline]
    pub(crate) fn expired(&self, meta: &Meta) -> bool {
        meta.deadline != NEVER && nanos(self.clock.now()) >= meta.deadline
    }

    /// On a bag cache with expiry: whether the key's values are past their deadline.
    #[inline]
    pub(crate) fn bag_expired<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        match &self.metas {
            Some(metas) => Ok(metas.lookup_with(key, |m| m.is_some_and(|m| self.expired(m)))?),
            None => Ok(false),
        }
    }

    /// Removes an item found past its deadline by a write (as the sweep would have:
    /// the callback sees the delete, and it counts as an expiry), so that the write
    /// starts a new item.
    fn expire(&self, key: &K) -> Result<()> {
        self.remove(key)?;
        self.counters.expired_one();
        Ok(())
    }

    #[inline]
    fn count(&self, hit: bool) {
        if hit {
            self.counters.hit()
        } else {
            self.counters.miss()
        }
    }

    /// The read half of `*_or_store`: a hit is counted (and touched); a miss is counted
    /// only once the value is stored.
    #[inline]
    fn read_hit(&self, key: &K) -> Result<Option<V>> {
        let v = self.peek(key)?;
        if v.is_some() {
            self.counters.hit();
            self.touch_on_read(key)?;
        }
        Ok(v)
    }

    #[inline]
    fn touch_on_read<Q>(&self, key: &Q) -> Result<()>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        if self.touch_on_read {
            self.renew(key)?;
        }
        Ok(())
    }

    /// The clock reading a write with `ttl` needs (0 when it needs none).
    #[inline]
    fn now_for(&self, ttl: Ttl) -> Result<u64> {
        match (ttl, self.ticks) {
            (Ttl::After(d), None) if !d.is_zero() => Err(CacheError::NoTtlCheck),
            (Ttl::After(_) | Ttl::Renew, Some(_)) => Ok(nanos(self.clock.now())),
            _ => Ok(0),
        }
    }

    pub(crate) fn renew<Q>(&self, key: &Q) -> Result<()>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        let Some(ticks) = self.ticks else {
            return Ok(());
        };
        let now = nanos(self.clock.now());
        let renewed = self.with_meta(key, |m| {
            if m.deadline != NEVER && m.deadline <= now {
                None // expired: not brought back
            } else {
                ticks.apply(m, Ttl::Renew, now)
            }
        })?;
        if let Some(Some(t)) = renewed {
            self.wheel
                .push(crate::hash::hash_of(&self.hasher, key), key.to_owned(), t);
        }
        Ok(())
    }

    /// Runs `f` on the key's expiry state under the table's lock; `None` when missing.
    pub(crate) fn with_meta<Q, R>(
        &self,
        key: &Q,
        f: impl FnOnce(&mut Meta) -> R,
    ) -> Result<Option<R>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord + ToOwned<Owned = K>,
    {
        match &self.metas {
            Some(metas) => Ok(metas.update_element_with(key, f)?),
            None => Ok(self.table.update_element_with(key, |e| f(&mut e.meta))?),
        }
    }

    /// Stores one item: value and expiry in one step under the table's shard lock, then
    /// (only if needed) the key onto the wheel, then the callback.
    pub(crate) fn store(&self, key: K, item: Item<V>, default: Ttl) -> Result<()> {
        let ttl = item.ttl.unwrap_or(default);
        let now = self.now_for(ttl)?;
        let ticks = self.ticks;
        let seen = self.callback.as_ref().map(|_| item.value.clone());
        let push = if self.is_bag() {
            if self.bag_expired(&key)? {
                self.expire(&key)?;
            }
            self.table.insert(key.clone(), Entry::new(item.value))?;
            self.bag_meta(&key, ttl, now)?
        } else {
            let mut slot = Some(item.value);
            // `Some(None)`: the item there is past its deadline (left untouched).
            let updated = self.table.update_element_with(&key, |e| {
                if self.expired(&e.meta) {
                    return None;
                }
                if let Some(v) = slot.take() {
                    e.value = v;
                }
                Some(ticks.and_then(|t| t.apply(&mut e.meta, ttl, now)))
            })?;
            match (updated, slot.take()) {
                (Some(Some(push)), _) => push,
                (updated, Some(v)) => {
                    if updated.is_some() {
                        // Expired, not yet swept: it goes, and this write is a new item.
                        self.expire(&key)?;
                    }
                    let mut e = Entry::new(v);
                    let push = ticks.and_then(|t| t.apply(&mut e.meta, ttl, now));
                    self.table.insert(key.clone(), e)?;
                    push
                }
                // The value was taken only by a live item's update: `Some(Some(_))`.
                (_, None) => None,
            }
        };
        if let Some(t) = push {
            self.wheel
                .push(crate::hash::hash_of(&self.hasher, &key), key.clone(), t);
        }
        if let (Some(cb), Some(v)) = (&self.callback, seen) {
            cb(CacheEvent::Update {
                key: &key,
                value: &v,
            });
        }
        Ok(())
    }

    fn bag_meta(&self, key: &K, ttl: Ttl, now: u64) -> Result<Option<u64>> {
        let (Some(metas), Some(t)) = (&self.metas, self.ticks) else {
            return Ok(None);
        };
        if let Some(push) = metas.update_element_with(key, |m| t.apply(m, ttl, now))? {
            return Ok(push);
        }
        let mut m = Meta::NONE;
        let push = t.apply(&mut m, ttl, now);
        metas.insert(key.clone(), m)?;
        Ok(push)
    }

    pub(crate) fn insert_new(&self, key: K, item: Item<V>) -> Result<()> {
        let ttl = item.ttl.unwrap_or(self.global_ttl);
        let now = self.now_for(ttl)?;
        let seen = self.callback.as_ref().map(|_| item.value.clone());
        // An item past its deadline is absent: it goes, and this is a new item.
        if self.ticks.is_some() {
            let expired = if self.is_bag() {
                self.bag_expired(&key)?
            } else {
                self.table
                    .lookup_with(&key, |e| e.is_some_and(|e| self.expired(&e.meta)))?
            };
            if expired {
                self.expire(&key)?;
            }
        }
        let push = if self.is_bag() {
            if !self.table.insert_new(key.clone(), Entry::new(item.value))? {
                return Err(CacheError::AlreadyExists);
            }
            self.bag_meta(&key, ttl, now)?
        } else {
            let mut e = Entry::new(item.value);
            let push = self.ticks.and_then(|t| t.apply(&mut e.meta, ttl, now));
            if !self.table.insert_new(key.clone(), e)? {
                return Err(CacheError::AlreadyExists);
            }
            push
        };
        if let Some(t) = push {
            self.wheel
                .push(crate::hash::hash_of(&self.hasher, &key), key.clone(), t);
        }
        if let (Some(cb), Some(v)) = (&self.callback, seen) {
            cb(CacheEvent::Update {
                key: &key,
                value: &v,
            });
        }
        Ok(())
    }

    /// Deletes the key, telling the callback first.
    pub(crate) fn remove(&self, key: &K) -> Result<()> {
        if let Some(cb) = &self.callback {
            cb(CacheEvent::Delete { key });
        }
        self.table.delete(key)?;
        if let Some(metas) = &self.metas {
            metas.delete(key)?;
        }
        Ok(())
    }
}
