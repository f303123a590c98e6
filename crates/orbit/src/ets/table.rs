//! [`Table`], its [`Builder`], and the operations on objects.

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

/// Options of a new table (Erlang's `ets:new/2` option list). Defaults as Erlang's:
/// `set`, `protected`, unnamed, no heir, read/write concurrency off.
pub struct Builder<K, V> {
    kind: TableType,
    protection: Protection,
    name: Option<Arc<str>>,
    heir: Option<Heir<K, V>>,
    read_concurrency: bool,
    write_concurrency: bool,
}

impl<K: Key, V: Value> Default for Builder<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key, V: Value> Builder<K, V> {
    /// The defaults: `set`, `protected`, unnamed, no heir, no concurrency options.
    pub fn new() -> Self {
        Builder {
            kind: TableType::Set,
            protection: Protection::Protected,
            name: None,
            heir: None,
            read_concurrency: false,
            write_concurrency: false,
        }
    }

    /// The table type.
    pub fn kind(mut self, kind: TableType) -> Self {
        self.kind = kind;
        self
    }

    /// `set`: one object per key (the default).
    pub fn set(self) -> Self {
        self.kind(TableType::Set)
    }

    /// `ordered_set`: one object per key, traversed in key order.
    pub fn ordered_set(self) -> Self {
        self.kind(TableType::OrderedSet)
    }

    /// `bag`: many objects per key, no two identical.
    pub fn bag(self) -> Self {
        self.kind(TableType::Bag)
    }

    /// `duplicate_bag`: many objects per key, identical ones allowed.
    pub fn duplicate_bag(self) -> Self {
        self.kind(TableType::DuplicateBag)
    }

    /// The access mode.
    pub fn protection(mut self, p: Protection) -> Self {
        self.protection = p;
        self
    }

    /// `public`: every process reads and writes.
    pub fn public(self) -> Self {
        self.protection(Protection::Public)
    }

    /// `protected`: the owner writes, every process reads (the default).
    pub fn protected(self) -> Self {
        self.protection(Protection::Protected)
    }

    /// `private`: only the owner reads and writes.
    pub fn private(self) -> Self {
        self.protection(Protection::Private)
    }

    /// `named_table`: registers the table under `name` (find it with [`super::whereis`]).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(Arc::from(name));
        self
    }

    /// `{heir, Pid, HeirData}`: when the owner exits, `pid` becomes the owner and is sent
    /// [`EtsTransfer`](super::EtsTransfer)`<K, V, D>` carrying `data` (its mailbox must
    /// take that type).
    pub fn heir<D: Clone + Send + Sync + 'static>(mut self, pid: Pid, data: D) -> Self {
        self.heir = Some(Heir::new(pid, data));
        self
    }

    /// `{read_concurrency, true}`: hash tables are split into [`CONCURRENT_SHARDS`] lock
    /// shards, so readers of different keys touch different lock words (no cache-line
    /// ping-pong). No effect on `ordered_set` (one reader-writer lock; readers never
    /// block each other).
    pub fn read_concurrency(mut self, on: bool) -> Self {
        self.read_concurrency = on;
        self
    }

    /// `{write_concurrency, true}`: hash tables are split into [`CONCURRENT_SHARDS`] lock
    /// shards, so writers of keys in different shards proceed in parallel. No effect on
    /// `ordered_set` (writes take its one lock).
    pub fn write_concurrency(mut self, on: bool) -> Self {
        self.write_concurrency = on;
        self
    }

    /// Creates the table, owned by the calling process (or, outside any process, by no
    /// process: such a table lives until deleted, and outside code acts as its owner).
    pub fn build(self) -> Result<Table<K, V>> {
        let shards = if self.read_concurrency || self.write_concurrency {
            CONCURRENT_SHARDS
        } else {
            1
        };
        let store = match self.kind {
            TableType::Set => Store::Set(Shards::new(shards)),
            TableType::Bag | TableType::DuplicateBag => Store::Bag(Shards::new(shards)),
            TableType::OrderedSet => Store::Ordered(RwLock::new(BTreeMap::new())),
        };
        let me = caller();
        let t = Table {
            inner: Arc::new(Inner {
                id: owner::next_id(),
                name: self.name.clone(),
                kind: self.kind,
                protection: self.protection,
                read_concurrency: self.read_concurrency,
                write_concurrency: self.write_concurrency,
                store,
                deleted: AtomicBool::new(false),
                owner_key: AtomicU64::new(pid_key(me)),
                own: Mutex::new(OwnerState {
                    owner: me,
                    heir: self.heir,
                    watcher: None,
                }),
            }),
        };
        if let Some(name) = &self.name {
            owner::register(name, &t)?;
        }
        if me != Pid::NONE {
            if let Err(e) = owner::ensure_watcher(&t) {
                if let Some(name) = &self.name {
                    owner::unregister(name, t.inner.id);
                }
                return Err(e);
            }
        }
        Ok(t)
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

    /// `ets:foldl/3`: folds over every object. `f` runs on copies with no lock held, so
    /// it may read and write this table; every object present for the whole fold is seen
    /// exactly once.
    pub fn foldl<A>(&self, acc: A, f: impl FnMut(A, &K, &V) -> A) -> Result<A> {
        self.fold(acc, false, f)
    }

    /// `ets:foldr/3`: as [`foldl`](Self::foldl) in reverse order (descending keys on
    /// ordered_set).
    pub fn foldr<A>(&self, acc: A, f: impl FnMut(A, &K, &V) -> A) -> Result<A> {
        self.fold(acc, true, f)
    }

    fn fold<A>(&self, mut acc: A, rev: bool, mut f: impl FnMut(A, &K, &V) -> A) -> Result<A> {
        self.check_read()?;
        const CHUNK: usize = 1024;
        match &self.inner.store {
            Store::Set(s) => {
                let order: Vec<usize> = if rev {
                    (0..s.len()).rev().collect()
                } else {
                    (0..s.len()).collect()
                };
                for i in order {
                    let snap: Vec<(K, V)> = s
                        .read(i)
                        .map
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let it: Box<dyn Iterator<Item = &(K, V)>> = if rev {
                        Box::new(snap.iter().rev())
                    } else {
                        Box::new(snap.iter())
                    };
                    for (k, v) in it {
                        acc = f(acc, k, v);
                    }
                }
            }
            Store::Bag(s) => {
                let order: Vec<usize> = if rev {
                    (0..s.len()).rev().collect()
                } else {
                    (0..s.len()).collect()
                };
                for i in order {
                    let snap: Vec<(K, Vec<V>)> = s
                        .read(i)
                        .map
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let it: Box<dyn Iterator<Item = &(K, Vec<V>)>> = if rev {
                        Box::new(snap.iter().rev())
                    } else {
                        Box::new(snap.iter())
                    };
                    for (k, vs) in it {
                        let vit: Box<dyn Iterator<Item = &V>> = if rev {
                            Box::new(vs.iter().rev())
                        } else {
                            Box::new(vs.iter())
                        };
                        for v in vit {
                            acc = f(acc, k, v);
                        }
                    }
                }
            }
            Store::Ordered(m) => {
                // Chunks of keys copied under the lock, then folded with no lock held.
                let mut from: Option<K> = None;
                loop {
                    let chunk: Vec<(K, V)> = {
                        let g = m.read();
                        let cl = |(k, v): (&K, &V)| (k.clone(), v.clone());
                        match (&from, rev) {
                            (None, false) => g.iter().take(CHUNK).map(cl).collect(),
                            (None, true) => g.iter().rev().take(CHUNK).map(cl).collect(),
                            (Some(k), false) => g
                                .range::<K, _>((Bound::Excluded(k), Bound::Unbounded))
                                .take(CHUNK)
                                .map(cl)
                                .collect(),
                            (Some(k), true) => g
                                .range::<K, _>((Bound::Unbounded, Bound::Excluded(k)))
                                .rev()
                                .take(CHUNK)
                                .map(cl)
                                .collect(),
                        }
                    };
                    let Some((last, _)) = chunk.last() else { break };
                    let last = last.clone();
                    let n = chunk.len();
                    for (k, v) in &chunk {
                        acc = f(acc, k, v);
                    }
                    if n < CHUNK {
                        break;
                    }
                    from = Some(last);
                }
            }
        }
        Ok(acc)
    }

    // ---- traversal ---------------------------------------------------------------

    /// `ets:first/1`: the first key (smallest on ordered_set), `None` when empty
    /// (`'$end_of_table'`).
    pub fn first(&self) -> Result<Option<K>> {
        self.check_read()?;
        Ok(match &self.inner.store {
            Store::Ordered(m) => m.read().keys().next().cloned(),
            Store::Set(s) => {
                (0..s.len()).find_map(|i| s.read(i).map.get_index(0).map(|(k, _)| k.clone()))
            }
            Store::Bag(s) => {
                (0..s.len()).find_map(|i| s.read(i).map.get_index(0).map(|(k, _)| k.clone()))
            }
        })
    }

    /// `ets:last/1`: the largest key on ordered_set; on hash tables the same as `first`.
    pub fn last(&self) -> Result<Option<K>> {
        self.check_read()?;
        match &self.inner.store {
            Store::Ordered(m) => Ok(m.read().keys().next_back().cloned()),
            _ => self.first(),
        }
    }

    /// `ets:next/2`: the key after `key`, `None` at the end. On ordered_set `key` need
    /// not exist. On hash tables it must (else [`EtsError::BadArg`]): a key deleted
    /// meanwhile ends the walk, as in Erlang without `safe_fixtable`.
    pub fn next<Q>(&self, key: &Q) -> Result<Option<K>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_read()?;
        Ok(match &self.inner.store {
            Store::Ordered(m) => m
                .read()
                .range::<Q, _>((Bound::Excluded(key), Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone()),
            Store::Set(s) => {
                let i = s.index(key);
                let pos = s.read(i).map.get_index_of(key);
                hash_next(s.len(), i, pos, |j, p| {
                    s.read(j).map.get_index(p).map(|(k, _)| k.clone())
                })
                .ok_or_else(|| self.missing_key("next"))?
            }
            Store::Bag(s) => {
                let i = s.index(key);
                let pos = s.read(i).map.get_index_of(key);
                hash_next(s.len(), i, pos, |j, p| {
                    s.read(j).map.get_index(p).map(|(k, _)| k.clone())
                })
                .ok_or_else(|| self.missing_key("next"))?
            }
        })
    }

    /// `ets:prev/2`: the key before `key` on ordered_set; on hash tables the same as `next`.
    pub fn prev<Q>(&self, key: &Q) -> Result<Option<K>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_read()?;
        match &self.inner.store {
            Store::Ordered(m) => Ok(m
                .read()
                .range::<Q, _>((Bound::Unbounded, Bound::Excluded(key)))
                .next_back()
                .map(|(k, _)| k.clone())),
            _ => self.next(key),
        }
    }

    fn missing_key(&self, op: &str) -> EtsError {
        EtsError::BadArg(format!(
            "{op} on hash table {}: the key is not in the table (deleted during the walk?); \
             walk with foldl or tab2list to be safe under concurrent deletes",
            self.label()
        ))
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

    // ---- queries -------------------------------------------------------------------

    /// `ets:select/2`: the results of `spec` for every matching object (key order on
    /// ordered_set).
    pub fn select<R>(&self, spec: &MatchSpec<K, V, R>) -> Result<Vec<R>> {
        self.select_dir(spec, false)
    }

    /// `ets:select_reverse/2`: as `select`, descending key order on ordered_set (the same
    /// as `select` on hash tables).
    pub fn select_reverse<R>(&self, spec: &MatchSpec<K, V, R>) -> Result<Vec<R>> {
        self.select_dir(spec, true)
    }

    fn select_dir<R>(&self, spec: &MatchSpec<K, V, R>, rev: bool) -> Result<Vec<R>> {
        self.check_read()?;
        let mut out = Vec::new();
        self.inner.store.visit(&spec.scope(), rev, &mut |k, v| {
            if let Some(r) = spec.eval(k, v) {
                out.push(r)
            }
        });
        Ok(out)
    }

    /// `ets:select_count/2`: the number of objects for which `spec` gives `true`.
    pub fn select_count(&self, spec: &MatchSpec<K, V, bool>) -> Result<usize> {
        self.check_read()?;
        let mut n = 0;
        self.inner.store.visit(&spec.scope(), false, &mut |k, v| {
            if spec.eval(k, v) == Some(true) {
                n += 1
            }
        });
        Ok(n)
    }

    /// `ets:match_object/2`: every object matching `pattern`, copied.
    pub fn match_object(&self, pattern: &Pattern<K, V>) -> Result<Vec<(K, V)>> {
        self.match_with(pattern, |k, v| (k.clone(), v.clone()))
    }

    /// `ets:match/2`: for every object matching `pattern`, what `bindings` extracts from
    /// it (Erlang returns the `'$N'` variables' values; here you pick them).
    pub fn match_with<R>(
        &self,
        pattern: &Pattern<K, V>,
        bindings: impl Fn(&K, &V) -> R,
    ) -> Result<Vec<R>> {
        self.check_read()?;
        let mut out = Vec::new();
        self.inner
            .store
            .visit(&scope(std::iter::once(&pattern.key)), false, &mut |k, v| {
                if pattern.matches(k, v) {
                    out.push(bindings(k, v))
                }
            });
        Ok(out)
    }

    /// `ets:match_delete/2`: deletes every object matching `pattern`.
    pub fn match_delete(&self, pattern: &Pattern<K, V>) -> Result<usize> {
        self.select_delete(&pattern.to_spec())
    }

    /// `ets:select_delete/2`: deletes every object for which `spec` gives `true`; returns
    /// how many. Each shard is processed atomically.
    pub fn select_delete(&self, spec: &MatchSpec<K, V, bool>) -> Result<usize> {
        self.check_write()?;
        let mut n = 0;
        self.inner.store.visit_mut(&spec.scope(), &mut |k, v| {
            if spec.eval(k, v) == Some(true) {
                n += 1;
                false
            } else {
                true
            }
        });
        Ok(n)
    }

    /// `ets:select_replace/2`: replaces the value of every matching object with what
    /// `spec` gives; returns how many. The key cannot change (the body returns only the
    /// value), which Erlang checks at run time. Not on bag tables (as in Erlang).
    pub fn select_replace(&self, spec: &MatchSpec<K, V, V>) -> Result<usize> {
        self.check_write()?;
        if self.inner.kind == TableType::Bag {
            return Err(self.wrong_type(
                "select_replace",
                "bag tables are not supported (as in Erlang); delete_object + insert",
            ));
        }
        let mut n = 0;
        self.inner.store.visit_mut(&spec.scope(), &mut |k, v| {
            if let Some(new) = spec.eval(k, v) {
                *v = new;
                n += 1;
            }
            true
        });
        Ok(n)
    }
}

/// The key after position `pos` of shard `i` in a hash table's order, walking on to
/// later shards. `None` when `pos` is `None` (the key is missing); `Some(None)` at the end.
fn hash_next<K>(
    shards: usize,
    i: usize,
    pos: Option<usize>,
    at: impl Fn(usize, usize) -> Option<K>,
) -> Option<Option<K>> {
    let pos = pos?;
    if let Some(k) = at(i, pos + 1) {
        return Some(Some(k));
    }
    Some(((i + 1)..shards).find_map(|j| at(j, 0)))
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

// ---- tuple objects: update_counter/update_element with positions -----------------------

/// The elements of a `Term` object's value: `V = Term::Tuple([e2, .., en])` stands for the
/// Erlang object `{Key, e2, .., en}` (key position 1).
fn object_elements<'a>(
    v: &'a mut orbit_term::Term,
    label: &dyn Fn() -> String,
) -> Result<&'a mut Vec<orbit_term::Term>> {
    match v {
        orbit_term::Term::Tuple(es) => Ok(es),
        _ => Err(EtsError::BadArg(format!(
            "the object under this key in table {} is not a tuple: positions need V = Term::Tuple([element 2, element 3, ..])",
            label()
        ))),
    }
}

/// The index in the value tuple of Erlang position `pos` (1 is the key).
fn element_index(pos: usize, len: usize, what: &str, label: &dyn Fn() -> String) -> Result<usize> {
    if pos == 1 {
        return Err(EtsError::BadArg(format!(
            "{what} at position 1 of table {}: position 1 is the key, which cannot be updated",
            label()
        )));
    }
    if pos < 2 || pos - 2 >= len {
        return Err(EtsError::BadArg(format!(
            "{what} at position {pos} of table {}: the object has {} elements (the key is position 1)",
            label(),
            len + 1
        )));
    }
    Ok(pos - 2)
}

impl<K: Key> Table<K, orbit_term::Term> {
    /// `ets:update_counter/3` with `{Pos, Incr}` or `{Pos, Incr, Threshold, SetValue}` on a
    /// table of tuple objects (`V = Term::Tuple([element 2, ..])`, the key is position 1):
    /// returns the new counter. [`EtsError::NotFound`] when the key is missing,
    /// [`EtsError::BadArg`] (nothing changed) when `pos` is 1, beyond the object, or not an
    /// integer, [`EtsError::WrongType`] on bags.
    pub fn update_counter_at<Q>(
        &self,
        key: &Q,
        pos: usize,
        op: impl Into<CounterOp>,
    ) -> Result<orbit_term::Term>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        let mut r = self.update_counters_inner(key, &[(pos, op.into())], None)?;
        Ok(r.pop().unwrap_or(orbit_term::Term::Int(0)))
    }

    /// `ets:update_counter/3` with a list of `{Pos, Incr}` / `{Pos, Incr, Threshold,
    /// SetValue}`: applied in order, all or nothing; returns the new counters in order.
    /// Errors as [`update_counter_at`](Self::update_counter_at).
    pub fn update_counters<Q>(
        &self,
        key: &Q,
        ops: &[(usize, CounterOp)],
    ) -> Result<Vec<orbit_term::Term>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.update_counters_inner(key, ops, None)
    }

    /// `ets:update_counter/4`: as [`update_counters`](Self::update_counters), inserting
    /// `(key, default)` first when the key is missing (nothing is inserted if an operation
    /// fails on the default).
    pub fn update_counters_or(
        &self,
        key: &K,
        ops: &[(usize, CounterOp)],
        default: orbit_term::Term,
    ) -> Result<Vec<orbit_term::Term>> {
        self.update_counters_inner(key, ops, Some((key.clone(), default)))
    }

    fn update_counters_inner<Q>(
        &self,
        key: &Q,
        ops: &[(usize, CounterOp)],
        default: Option<(K, orbit_term::Term)>,
    ) -> Result<Vec<orbit_term::Term>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        use orbit_term::{BigInt, Term};
        self.check_write()?;
        let label = || self.label();
        let r = self.set_write(key, |m| {
            let (mut obj, new_key) = match (m.get_mut_v(key), default) {
                (Some(v), _) => (v.clone(), None),
                (None, Some((k, d))) => (d, Some(k)),
                (None, None) => return Err(EtsError::NotFound(label())),
            };
            let es = object_elements(&mut obj, &label)?;
            let mut out = Vec::with_capacity(ops.len());
            for (pos, op) in ops {
                let i = element_index(*pos, es.len(), "update_counter", &label)?;
                let cur = match &es[i] {
                    Term::Int(n) => BigInt::from(*n),
                    Term::BigInt(b) => (**b).clone(),
                    _ => {
                        return Err(EtsError::BadArg(format!(
                            "update_counter at position {pos} of table {}: the element is not an integer",
                            label()
                        )))
                    }
                };
                let new = Term::big(op.apply_big(&cur));
                es[i] = new.clone();
                out.push(new);
            }
            match new_key {
                Some(k) => m.insert_v(k, obj),
                None => {
                    if let Some(v) = m.get_mut_v(key) {
                        *v = obj;
                    }
                }
            }
            Ok(out)
        });
        r.unwrap_or_else(|| {
            Err(self.wrong_type("update_counter", "counters need a set or ordered_set table"))
        })
    }

    /// `ets:update_element/3` with `{Pos, Value}` on a table of tuple objects
    /// (`V = Term::Tuple([element 2, ..])`, the key is position 1): false when the key is
    /// missing; [`EtsError::BadArg`] (nothing changed) when `pos` is 1 or beyond the
    /// object; [`EtsError::WrongType`] on bags.
    pub fn update_element_at<Q>(&self, key: &Q, pos: usize, value: orbit_term::Term) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.update_elements(key, &[(pos, value)])
    }

    /// `ets:update_element/3` with a list of `{Pos, Value}`: applied in order (a position
    /// given twice gets the last value), all or nothing. Errors as
    /// [`update_element_at`](Self::update_element_at).
    pub fn update_elements<Q>(&self, key: &Q, updates: &[(usize, orbit_term::Term)]) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_write()?;
        let label = || self.label();
        let r = self.set_write(key, |m| {
            let Some(v) = m.get_mut_v(key) else {
                return Ok(false);
            };
            let mut obj = v.clone();
            let es = object_elements(&mut obj, &label)?;
            for (pos, value) in updates {
                let i = element_index(*pos, es.len(), "update_element", &label)?;
                es[i] = value.clone();
            }
            *v = obj;
            Ok(true)
        });
        r.unwrap_or_else(|| {
            Err(self.wrong_type(
                "update_element",
                "update bag objects by delete_object + insert",
            ))
        })
    }
}
