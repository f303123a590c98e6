//! [`Table`] and the operations on objects: insert, lookup, update, delete, info and
//! ownership. Its [`Builder`] is in `builder.rs`, walks and match-spec queries in
//! `traverse.rs`, element-position updates of tuple objects in `elements.rs`.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::error::{EtsError, Result};
use super::owner::{self, caller, pid_key, Heir, OwnerState};
use super::query::{scope, MatchSpec, Pattern, Scope};
use super::shards::Shards;
use super::store::{bag_push, SetMap, Store};
use super::{Counter, CounterOp, Info, Protection, TableType};
use crate::pid::Pid;

mod builder;
mod elements;
mod traverse;

pub use builder::Builder;

/// What a key must be: ordered (for `ordered_set` and key ranges), hashable (for hash
/// tables), cloneable (reads return copies, as ETS does) and shareable across threads.
pub trait Key: Ord + Hash + Clone + Send + Sync + 'static {}
impl<T: Ord + Hash + Clone + Send + Sync + 'static> Key for T {}

/// What a value must be: cloneable (reads return copies), comparable (`bag` refuses
/// identical objects; `delete_object` compares) and shareable across threads.
pub trait Value: Clone + PartialEq + Send + Sync + 'static {}
impl<T: Clone + PartialEq + Send + Sync + 'static> Value for T {}

/// Number of lock shards of a hash table created with read or write concurrency.
pub const CONCURRENT_SHARDS: usize = 64;

pub(crate) struct Inner<K, V> {
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) kind: TableType,
    pub(crate) protection: Protection,
    pub(crate) read_concurrency: bool,
    pub(crate) write_concurrency: bool,
    pub(crate) store: Store<K, V>,
    pub(crate) deleted: AtomicBool,
    /// `pid_key` of the owner (0: code outside any process).
    pub(crate) owner_key: AtomicU64,
    pub(crate) own: Mutex<OwnerState<K, V>>,
}

/// A handle to an ETS table of objects `(K, V)`; cheap to clone and to send to other
/// processes (Erlang's table id). The table lives until it is deleted or its owner
/// exits without an heir, whatever handles remain; a handle to a deleted table fails
/// every operation with [`EtsError::Deleted`]. Lookups take the key or a borrowed form
/// of it (`t.get("k")` on a `Table<String, _>`; see the [module docs](super)).
pub struct Table<K, V> {
    pub(crate) inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> Table<K, V> {
    pub(crate) fn label(&self) -> String {
        match &self.inner.name {
            Some(n) => format!("{n:?}"),
            None => format!("#Tab<{}>", self.inner.id),
        }
    }
}

impl<K, V> PartialEq for Table<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl<K, V> Eq for Table<K, V> {}

impl<K, V> fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({})", self.label())
    }
}

impl<K: Key, V: Value> Table<K, V> {
    /// A table with the defaults (`set`, `protected`), owned by the caller.
    pub fn new() -> Result<Self> {
        Builder::new().build()
    }

    /// Options for a new table.
    pub fn builder() -> Builder<K, V> {
        Builder::new()
    }

    // ---- access ------------------------------------------------------------------

    #[inline]
    fn alive(&self) -> Result<()> {
        if self.inner.deleted.load(Ordering::Acquire) {
            return Err(EtsError::Deleted(self.label()));
        }
        Ok(())
    }

    #[inline]
    fn check_owner(&self, op: &'static str) -> Result<()> {
        let me = caller();
        if pid_key(me) == self.inner.owner_key.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(EtsError::AccessDenied {
            table: self.label(),
            op,
            protection: self.inner.protection,
            owner: self.owner(),
            caller: me,
        })
    }

    #[inline]
    pub(crate) fn check_read(&self) -> Result<()> {
        self.alive()?;
        if self.inner.protection == Protection::Private {
            self.check_owner("read")?;
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn check_write(&self) -> Result<()> {
        self.alive()?;
        if self.inner.protection != Protection::Public {
            self.check_owner("write")?;
        }
        Ok(())
    }

    fn wrong_type(&self, op: &'static str, hint: &'static str) -> EtsError {
        EtsError::WrongType {
            table: self.label(),
            op,
            kind: self.inner.kind,
            hint,
        }
    }

    fn dup(&self) -> bool {
        self.inner.kind == TableType::DuplicateBag
    }

    fn set_write<Q, R>(&self, k: &Q, f: impl FnOnce(&mut dyn SetMap<K, V, Q>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        match &self.inner.store {
            Store::Set(s) => Some(f(&mut s.write_key(k).map)),
            Store::Ordered(m) => Some(f(&mut *m.write())),
            Store::Bag(_) => None,
        }
    }

    // ---- identity ----------------------------------------------------------------

    /// The table's name, if it was created `named`.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The table's type.
    pub fn kind(&self) -> TableType {
        self.inner.kind
    }

    /// The table's access mode.
    pub fn protection(&self) -> Protection {
        self.inner.protection
    }

    /// The owner ([`Pid::NONE`] for a table owned by code outside any process).
    pub fn owner(&self) -> Pid {
        self.inner.own.lock().owner
    }

    /// The table's unique number (shown as `#Tab<id>`).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// True until the table is deleted.
    pub fn is_alive(&self) -> bool {
        !self.inner.deleted.load(Ordering::Acquire)
    }

    // ---- inserting -----------------------------------------------------------------

    /// `ets:insert/2` with one object: replaces the object with the same key (`set`,
    /// `ordered_set`), or adds it (`bag`: unless an identical one exists).
    pub fn insert(&self, key: K, value: V) -> Result<()> {
        self.check_write()?;
        match &self.inner.store {
            Store::Set(s) => {
                s.write_key(&key).map.insert(key, value);
            }
            Store::Ordered(m) => {
                m.write().insert(key, value);
            }
            Store::Bag(s) => bag_push(&mut s.write_key(&key), self.dup(), key, value),
        }
        Ok(())
    }

    /// `ets:insert/2` with a list: all objects become visible at once (every shard they
    /// touch is locked for the whole insert). For one key given twice on a set, the last wins.
    /// On a `bag` the list's objects of one key are added in reverse list order (each after
    /// the existing ones, identical objects once), on a `duplicate_bag` in list order: the
    /// order OTP 25's `ets:lookup/2` returns afterwards.
    pub fn insert_many(&self, objects: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        self.check_write()?;
        let objects: Vec<(K, V)> = objects.into_iter().collect();
        match &self.inner.store {
            Store::Set(s) => {
                let mut guards = s.write_many(objects.iter().map(|(k, _)| k));
                for (k, v) in objects {
                    if let Some(g) = guards[s.index(&k)].as_mut() {
                        g.map.insert(k, v);
                    }
                }
            }
            Store::Ordered(m) => {
                let mut g = m.write();
                for (k, v) in objects {
                    g.insert(k, v);
                }
            }
            Store::Bag(s) => {
                let dup = self.dup();
                let mut guards = s.write_many(objects.iter().map(|(k, _)| k));
                for (k, v) in bag_list_order(dup, objects) {
                    if let Some(g) = guards[s.index(&k)].as_mut() {
                        bag_push(g, dup, k, v);
                    }
                }
            }
        }
        Ok(())
    }

    /// `ets:insert_new/2`: inserts only if no object has the key; true when inserted.
    pub fn insert_new(&self, key: K, value: V) -> Result<bool> {
        self.insert_new_many([(key, value)])
    }

    /// `ets:insert_new/2` with a list: inserts nothing if any key exists (checked and
    /// inserted under the same locks); true when all were inserted.
    pub fn insert_new_many(&self, objects: impl IntoIterator<Item = (K, V)>) -> Result<bool> {
        self.check_write()?;
        let objects: Vec<(K, V)> = objects.into_iter().collect();
        match &self.inner.store {
            Store::Set(s) => {
                let mut guards = s.write_many(objects.iter().map(|(k, _)| k));
                let exists = objects.iter().any(|(k, _)| {
                    guards[s.index(k)]
                        .as_ref()
                        .is_some_and(|g| g.map.contains_key(k))
                });
                if exists {
                    return Ok(false);
                }
                for (k, v) in objects {
                    if let Some(g) = guards[s.index(&k)].as_mut() {
                        g.map.insert(k, v);
                    }
                }
            }
            Store::Ordered(m) => {
                let mut g = m.write();
                if objects.iter().any(|(k, _)| g.contains_key(k)) {
                    return Ok(false);
                }
                for (k, v) in objects {
                    g.insert(k, v);
                }
            }
            Store::Bag(s) => {
                let dup = self.dup();
                let mut guards = s.write_many(objects.iter().map(|(k, _)| k));
                let exists = objects.iter().any(|(k, _)| {
                    guards[s.index(k)]
                        .as_ref()
                        .is_some_and(|g| g.map.contains_key(k))
                });
                if exists {
                    return Ok(false);
                }
                for (k, v) in bag_list_order(dup, objects) {
                    if let Some(g) = guards[s.index(&k)].as_mut() {
                        bag_push(g, dup, k, v);
                    }
                }
            }
        }
        Ok(true)
    }

    // ---- reading -----------------------------------------------------------------

    /// `ets:lookup/2`: the objects with the key (at most one on set tables), copied.
    pub fn lookup<Q>(&self, key: &Q) -> Result<Vec<(K, V)>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_read()?;
        Ok(match &self.inner.store {
            Store::Set(s) => s
                .read_key(key)
                .map
                .get_key_value(key)
                .map(|(k, v)| vec![(k.clone(), v.clone())])
                .unwrap_or_default(),
            Store::Ordered(m) => m
                .read()
                .get_key_value(key)
                .map(|(k, v)| vec![(k.clone(), v.clone())])
                .unwrap_or_default(),
            Store::Bag(s) => match s.read_key(key).map.get_key_value(key) {
                Some((k, vs)) => vs.iter().map(|v| (k.clone(), v.clone())).collect(),
                None => Vec::new(),
            },
        })
    }

    /// The value under the key, copied (on bags: the first object's). The common
    /// `case :ets.lookup(t, k) do [{^k, v}] -> v; [] -> nil end`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.lookup_with(key, |v| v.cloned())
    }

    /// Runs `f` on the value under the key without copying it (on bags: the first
    /// object's). `f` runs under the key's read lock: keep it short and do not call this
    /// table from it.
    #[inline]
    pub fn lookup_with<Q, R>(&self, key: &Q, f: impl FnOnce(Option<&V>) -> R) -> Result<R>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_read()?;
        Ok(match &self.inner.store {
            Store::Set(s) => f(s.read_key(key).map.get(key)),
            Store::Ordered(m) => f(m.read().get(key)),
            Store::Bag(s) => f(s.read_key(key).map.get(key).and_then(|vs| vs.first())),
        })
    }

    /// `ets:lookup_element/3` on a set or ordered_set: the value, or
    /// [`EtsError::NotFound`] when no object has the key.
    pub fn lookup_element<Q>(&self, key: &Q) -> Result<V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        if matches!(self.inner.store, Store::Bag(_)) {
            self.check_read()?;
            return Err(self.wrong_type("lookup_element", "use lookup_elements on bags"));
        }
        self.get(key)?
            .ok_or_else(|| EtsError::NotFound(self.label()))
    }

    /// `ets:lookup_element/4`: the value, or `default` when no object has the key (set
    /// and ordered_set).
    pub fn lookup_element_or<Q>(&self, key: &Q, default: V) -> Result<V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        match self.lookup_element(key) {
            Err(EtsError::NotFound(_)) => Ok(default),
            r => r,
        }
    }

    /// `ets:lookup_element/3` on any table type: the values of all objects with the key,
    /// or [`EtsError::NotFound`] when there are none.
    pub fn lookup_elements<Q>(&self, key: &Q) -> Result<Vec<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        let vs: Vec<V> = self.lookup(key)?.into_iter().map(|(_, v)| v).collect();
        if vs.is_empty() {
            return Err(EtsError::NotFound(self.label()));
        }
        Ok(vs)
    }

    /// `ets:member/2`: true when an object has the key.
    pub fn member<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.lookup_with(key, |v| v.is_some())
    }

    // ---- updating ----------------------------------------------------------------

    /// `ets:update_counter/3`: atomically applies `op` to the value under the key and
    /// returns the new value. [`EtsError::NotFound`] when the key is missing;
    /// [`EtsError::WrongType`] on bags; [`EtsError::Overflow`] (nothing changed) when the
    /// result does not fit `V`.
    pub fn update_counter<Q>(&self, key: &Q, op: impl Into<CounterOp>) -> Result<V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
        V: Counter,
    {
        self.update_counter_inner(key, op.into(), None)
    }

    /// `ets:update_counter/4`: as [`update_counter`](Self::update_counter), inserting
    /// `(key, default)` first when the key is missing.
    pub fn update_counter_or(&self, key: &K, op: impl Into<CounterOp>, default: V) -> Result<V>
    where
        V: Counter,
    {
        self.update_counter_inner(key, op.into(), Some((key.clone(), default)))
    }

    /// `default`: the object to insert first when the key is missing.
    fn update_counter_inner<Q>(&self, key: &Q, op: CounterOp, default: Option<(K, V)>) -> Result<V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
        V: Counter,
    {
        self.check_write()?;
        let label = || self.label();
        let r = self.set_write(key, |m| {
            if m.get_mut_v(key).is_none() {
                match default {
                    Some((k, d)) => m.insert_v(k, d),
                    None => return Err(EtsError::NotFound(label())),
                }
            }
            let Some(v) = m.get_mut_v(key) else {
                return Err(EtsError::NotFound(label()));
            };
            let new = op.apply(v.to_i128());
            let new = V::from_i128(new).ok_or_else(|| EtsError::Overflow(label()))?;
            *v = new;
            Ok(new)
        });
        r.unwrap_or_else(|| {
            Err(self.wrong_type("update_counter", "counters need a set or ordered_set table"))
        })
    }

    /// `ets:update_element/3`: replaces the value under the key; false when the key is
    /// missing. Set and ordered_set only.
    pub fn update_element<Q>(&self, key: &Q, value: V) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        Ok(self.update_element_with(key, |v| *v = value)?.is_some())
    }

    /// Atomically updates the value under the key in place (several fields at once, or
    /// counters in a tuple: `update_counter` with a list of positions); `None` when the key
    /// is missing. Set and ordered_set only. `f` runs under the key's write lock: do not
    /// call this table from it.
    pub fn update_element_with<Q, R>(
        &self,
        key: &Q,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_write()?;
        self.set_write(key, |m| m.get_mut_v(key).map(f))
            .ok_or_else(|| {
                self.wrong_type(
                    "update_element",
                    "update bag objects by delete_object + insert",
                )
            })
    }

    // ---- deleting ----------------------------------------------------------------

    /// `ets:delete/2`: deletes every object with the key.
    pub fn delete<Q>(&self, key: &Q) -> Result<()>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.take_inner(key, false).map(|_| ())
    }

    /// `ets:take/2`: deletes and returns every object with the key.
    pub fn take<Q>(&self, key: &Q) -> Result<Vec<(K, V)>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.take_inner(key, true)
    }

    fn take_inner<Q>(&self, key: &Q, want: bool) -> Result<Vec<(K, V)>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_write()?;
        if let Some(r) = self.set_write(key, |m| m.remove_kv(key)) {
            return Ok(r.filter(|_| want).into_iter().collect());
        }
        let Store::Bag(s) = &self.inner.store else {
            return Ok(Vec::new());
        };
        let mut g = s.write_key(key);
        match g.map.swap_remove_entry(key) {
            Some((k, vs)) => {
                g.objects -= vs.len();
                drop(g);
                if !want {
                    return Ok(Vec::new());
                }
                Ok(vs.into_iter().map(|v| (k.clone(), v)).collect())
            }
            None => Ok(Vec::new()),
        }
    }

    /// `ets:delete_object/2`: deletes the object `(key, value)` exactly (on a
    /// duplicate_bag, all its copies).
    pub fn delete_object<Q>(&self, key: &Q, value: &V) -> Result<()>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_write()?;
        let done = self.set_write(key, |m| {
            if m.get_kv(key).is_some_and(|(_, v)| v == value) {
                m.remove_kv(key);
            }
        });
        if done.is_some() {
            return Ok(());
        }
        if let Store::Bag(s) = &self.inner.store {
            let mut g = s.write_key(key);
            let g = &mut *g;
            let mut empty = false;
            if let Some(vs) = g.map.get_mut(key) {
                let before = vs.len();
                vs.retain(|v| v != value);
                g.objects -= before - vs.len();
                empty = vs.is_empty();
            }
            if empty {
                g.map.swap_remove(key);
            }
        }
        Ok(())
    }

    /// `ets:delete_all_objects/1`: empties the table (shard by shard).
    pub fn delete_all_objects(&self) -> Result<()> {
        self.check_write()?;
        self.inner.store.clear();
        Ok(())
    }

    /// `ets:delete/1`: deletes the table (the owner, or anyone on a public table). Its
    /// name is freed; every handle now fails with [`EtsError::Deleted`].
    pub fn delete_table(&self) -> Result<()> {
        self.check_write()?;
        owner::delete(self);
        Ok(())
    }

    // ---- whole-table reads ---------------------------------------------------------

    /// Number of objects.
    pub fn size(&self) -> Result<usize> {
        self.check_read()?;
        Ok(self.inner.store.size())
    }

    /// `ets:tab2list/1`: every object, copied (key order on ordered_set; shard order on
    /// hash tables). Each shard is read atomically; see the module docs on traversal.
    pub fn tab2list(&self) -> Result<Vec<(K, V)>> {
        self.check_read()?;
        let mut out = Vec::new();
        self.inner.store.visit(
            &Scope::Range(Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |k, v| out.push((k.clone(), v.clone())),
        );
        Ok(out)
    }

    // ---- info --------------------------------------------------------------------

    /// `ets:info/1`: size, memory, type, owner, heir, protection, name. Allowed for every
    /// process, whatever the protection.
    pub fn info(&self) -> Result<Info> {
        self.alive()?;
        let (owner, heir) = {
            let o = self.inner.own.lock();
            (o.owner, o.heir.as_ref().map(|h| h.pid))
        };
        Ok(Info {
            id: self.inner.id,
            name: self.inner.name.clone(),
            kind: self.inner.kind,
            protection: self.inner.protection,
            size: self.inner.store.size(),
            memory: self.inner.store.memory(),
            owner,
            heir,
            read_concurrency: self.inner.read_concurrency,
            write_concurrency: self.inner.write_concurrency,
            shards: match &self.inner.store {
                Store::Set(s) => s.len(),
                Store::Bag(s) => s.len(),
                Store::Ordered(_) => 1,
            },
        })
    }

    // ---- owner -------------------------------------------------------------------

    /// `ets:give_away/3`: makes `pid` (a live local process, not the caller) the owner
    /// and sends it [`EtsTransfer`](super::EtsTransfer)`<K, V, D>` with `data`. Only the
    /// owner may give a table away.
    pub fn give_away<D: Send + 'static>(&self, pid: Pid, data: D) -> Result<()> {
        self.alive()?;
        self.check_owner("give away")?;
        owner::give_away(self, pid, data)
    }

    /// `ets:setopts(T, {heir, Pid, Data})`: sets the heir (owner only).
    pub fn set_heir<D: Clone + Send + Sync + 'static>(&self, pid: Pid, data: D) -> Result<()> {
        self.alive()?;
        self.check_owner("set the heir of")?;
        self.inner.own.lock().heir = Some(Heir::new(pid, data));
        Ok(())
    }

    /// `ets:setopts(T, {heir, none})`: removes the heir (owner only).
    pub fn clear_heir(&self) -> Result<()> {
        self.alive()?;
        self.check_owner("set the heir of")?;
        self.inner.own.lock().heir = None;
        Ok(())
    }
}

/// The order in which a list insert adds objects to a bag table, as OTP 25 does: a `bag`
/// takes the list from its end (`ets:insert(T, [{k,1},{k,2}])` then `ets:lookup(T, k)` gives
/// `[{k,2},{k,1}]`), a `duplicate_bag` from its start.
fn bag_list_order<T>(dup: bool, mut objects: Vec<T>) -> Vec<T> {
    if !dup {
        objects.reverse();
    }
    objects
}
