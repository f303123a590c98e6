//! Elixir's `Registry`: a local key-value store of processes.
//!
//! A registry is started with [`Registry::start`] under a name, with [`Keys::Unique`]
//! (a key belongs to at most one process) or [`Keys::Duplicate`] (any number of
//! processes, each possibly several times, under one key). Each entry is
//! `(pid, value)` and is registered by the calling process for itself, as in Elixir.
//!
//! Contract:
//! - [`register`](Registry::register) fails outside a process; in unique mode, a key
//!   already held (by another process or the caller) fails with
//!   [`RegistryError::AlreadyRegistered`] naming the holder
//!   (`{:error, {:already_registered, pid}}`).
//! - Entries of a process are removed when it exits, however it exits (returns,
//!   panics, is killed), before its links and monitors fire: once a `DOWN` for the
//!   process arrives, or `wait_exit` returns, [`lookup`](Registry::lookup),
//!   [`keys`](Registry::keys) and [`count`](Registry::count) no longer see it. The
//!   removal runs in the process's exit path (no registry process, no monitor
//!   message in between), and a register can never add an entry after it: the
//!   registering process is the one running.
//! - Lookups, `select`, `match_values` and `dispatch` copy the entries out and run the
//!   caller's closures outside the registry's locks, so a closure may use the registry.
//! - `via` names: a registry started with a name is addressable as
//!   [`Via`](super::Via)`(registry, key)` wherever a [`Dest`](super::Dest) is taken
//!   (unique registries only, as in Elixir); the value registered for a `via` name is
//!   `V::default()` (Elixir: `nil`) or the function given to
//!   [`start_with_via_value`](Registry::start_with_via_value).
//!
//! Differences from Elixir: no partitions to tune (the maps are split into 32 shards,
//! each behind a short lock held for one map operation); match specs are closures; no `listeners`, no
//! `meta`; the registry is not a process and is never "stopped" while a handle or a
//! `via` user holds it ([`Registry::stop`] only frees its name).

use std::any::Any;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::hash::{FastState, Padded};
use crate::pid::Pid;
use crate::process::{self, ExitHook, ProcessHandle};

/// Unique or duplicate keys (Elixir's `keys: :unique | :duplicate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Each key is held by at most one process.
    Unique,
    /// A key may be held by many processes, each possibly several times.
    Duplicate,
}

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Unique keys: the key is held by `pid` (which may be the caller).
    #[error("the key is already registered by {0}; unregister it there first or use a duplicate registry")]
    AlreadyRegistered(Pid),
    /// Registering needs a process: entries belong to the caller.
    #[error("not called from a process: register from the process that owns the entry (or use orbit::run_in_process)")]
    NotInProcess,
    /// The calling process is exiting.
    #[error("the registering process is exiting")]
    Exiting,
    /// A registry of this name exists already.
    #[error("a registry named {0:?} is already running; pick another name")]
    NameTaken(Arc<str>),
    /// No registry of this name (with these key and value types) exists.
    #[error("no registry named {0:?} with these key and value types is running")]
    NoRegistry(Arc<str>),
    /// `via` names need a unique registry (as in Elixir).
    #[error("registry {0:?} has duplicate keys; via names need a unique registry")]
    NotUnique(Arc<str>),
    /// The key given in a `via` name is not of the registry's key type.
    #[error("the via key is not of registry {0:?}'s key type")]
    WrongKeyType(Arc<str>),
    /// The registry's value type has no default for `via` registrations.
    #[error("registry {0:?} has no value for via registrations; start it with Registry::start_with_via_value")]
    NoViaValue(Arc<str>),
}

/// What a key type must be: hashable, comparable, cloneable, shareable.
pub trait RegistryKey: Hash + Eq + Clone + Send + Sync + Debug + 'static {}
impl<T: Hash + Eq + Clone + Send + Sync + Debug + 'static> RegistryKey for T {}

/// What a value type must be.
pub trait RegistryValue: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> RegistryValue for T {}

/// A map split into shards, each behind its own short lock (a leaf lock: nothing else
/// is locked, and no caller code runs, while it is held).
struct Sharded<K, V> {
    state: FastState,
    shards: Box<[Padded<Shard<K, V>>]>,
}

type Shard<K, V> = Mutex<HashMap<K, V, FastState>>;

const SHARDS: usize = 32;

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn new() -> Self {
        let state = crate::hash::seeded();
        let shards = (0..SHARDS)
            .map(|_| Padded(Mutex::new(HashMap::with_hasher(state.clone()))))
            .collect();
        Sharded { state, shards }
    }

    #[inline]
    fn shard(&self, key: &K) -> parking_lot::MutexGuard<'_, HashMap<K, V, FastState>> {
        let i = (crate::hash::hash_of(&self.state, key) as usize) % SHARDS;
        self.shards[i].lock()
    }

    fn read<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        self.shard(key).get(key).map(f)
    }

    fn scan(&self, mut f: impl FnMut(&K, &V)) {
        for shard in self.shards.iter() {
            for (k, v) in shard.lock().iter() {
                f(k, v);
            }
        }
    }
}

struct Inner<K, V> {
    name: Arc<str>,
    keys: Keys,
    unique: Sharded<K, (Pid, V)>,
    dup: Sharded<K, Vec<(Pid, V)>>,
    /// The keys each process holds (a key once per entry).
    owners: Sharded<Pid, Vec<K>>,
    count: AtomicUsize,
    via_value: Option<fn() -> V>,
    me: Weak<Inner<K, V>>,
}

/// A keyed registry of processes (Elixir's `Registry`); cheap to clone.
pub struct Registry<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Registry<K, V> {
    fn clone(&self) -> Self {
        Registry {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> Debug for Registry<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({:?}, {:?})", self.inner.name, self.inner.keys)
    }
}

/// The type-erased face of a registry, for `via` names.
pub(crate) trait ViaRegistry: Send + Sync + 'static {
    fn whereis_key(&self, key: &dyn Any) -> Option<Pid>;
    fn register_key(&self, key: &dyn Any) -> Result<(), RegistryError>;
    fn unregister_key(&self, key: &dyn Any);
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

type Directory = scc::HashMap<Arc<str>, Arc<dyn ViaRegistry>, FastState>;

fn directory() -> &'static Directory {
    static D: OnceLock<Directory> = OnceLock::new();
    D.get_or_init(|| Directory::with_hasher(crate::hash::seeded()))
}

/// The registry named `name`, type-erased (for `via` names).
pub(crate) fn find(name: &str) -> Option<Arc<dyn ViaRegistry>> {
    directory().read(name, |_, r| r.clone())
}

impl<K: RegistryKey, V: RegistryValue + Default> Registry<K, V> {
    /// `Registry.start_link(keys: keys, name: name)`: a new registry, findable by
    /// [`Registry::named`] and usable in `via` names (registering `V::default()`).
    pub fn start(keys: Keys, name: &str) -> Result<Self, RegistryError> {
        Self::start_inner(keys, name, Some(V::default))
    }
}

impl<K: RegistryKey, V: RegistryValue> Registry<K, V> {
    /// [`start`](Self::start) for a value type without `Default`: `via_value` makes the
    /// value a `via` registration stores (`None`: `via` registration is refused).
    pub fn start_with_via_value(
        keys: Keys,
        name: &str,
        via_value: Option<fn() -> V>,
    ) -> Result<Self, RegistryError> {
        Self::start_inner(keys, name, via_value)
    }

    fn start_inner(
        keys: Keys,
        name: &str,
        via_value: Option<fn() -> V>,
    ) -> Result<Self, RegistryError> {
        let name: Arc<str> = Arc::from(name);
        let inner = Arc::new_cyclic(|me| Inner {
            name: name.clone(),
            keys,
            unique: Sharded::new(),
            dup: Sharded::new(),
            owners: Sharded::new(),
            count: AtomicUsize::new(0),
            via_value,
            me: me.clone(),
        });
        let erased: Arc<dyn ViaRegistry> = inner.clone();
        directory()
            .insert(name.clone(), erased)
            .map_err(|_| RegistryError::NameTaken(name))?;
        Ok(Registry { inner })
    }

    /// The running registry named `name` with these key and value types.
    pub fn named(name: &str) -> Option<Self> {
        let any = find(name)?.as_any();
        let inner = any.downcast::<Inner<K, V>>().ok()?;
        Some(Registry { inner })
    }

    /// The registry's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Unique or duplicate keys.
    pub fn kind(&self) -> Keys {
        self.inner.keys
    }

    /// Frees the registry's name (for [`named`](Self::named) and `via` names). The
    /// registry and its entries live on while handles to it exist.
    pub fn stop(&self) {
        let me = Arc::as_ptr(&self.inner) as *const ();
        directory().remove_if(&self.inner.name, |r| Arc::as_ptr(r) as *const () == me);
    }

    /// `Registry.register/3`: registers the calling process under `key` with `value`.
    pub fn register(&self, key: K, value: V) -> Result<(), RegistryError> {
        let me = process::current().ok_or(RegistryError::NotInProcess)?;
        self.inner.register_for(&*me, key, value)
    }

    /// `Registry.unregister/2`: removes every entry of the calling process under `key`.
    pub fn unregister(&self, key: &K) -> Result<(), RegistryError> {
        let me = process::self_pid().ok_or(RegistryError::NotInProcess)?;
        self.inner.unregister_for(me, key);
        Ok(())
    }

    /// `Registry.lookup/2`: the `(pid, value)` entries under `key`, in registration
    /// order for duplicate keys.
    pub fn lookup(&self, key: &K) -> Vec<(Pid, V)> {
        match self.inner.keys {
            Keys::Unique => self
                .inner
                .unique
                .read(key, |e| vec![e.clone()])
                .unwrap_or_default(),
            Keys::Duplicate => self
                .inner
                .dup
                .read(key, |es| es.clone())
                .unwrap_or_default(),
        }
    }

    /// The pid holding unique `key` (the first entry for duplicate keys).
    pub fn whereis(&self, key: &K) -> Option<Pid> {
        self.inner.whereis(key)
    }

    /// `Registry.match/3`: the entries under `key` whose value `pattern` accepts.
    pub fn match_values(&self, key: &K, mut pattern: impl FnMut(&V) -> bool) -> Vec<(Pid, V)> {
        let mut out = self.lookup(key);
        out.retain(|(_, v)| pattern(v));
        out
    }

    /// `Registry.select/2`: every `(key, pid, value)` that `filter` accepts (a match
    /// spec as a closure). Scans the whole registry.
    pub fn select(&self, mut filter: impl FnMut(&K, Pid, &V) -> bool) -> Vec<(K, Pid, V)> {
        let mut all = Vec::new();
        match self.inner.keys {
            Keys::Unique => self
                .inner
                .unique
                .scan(|k, (p, v)| all.push((k.clone(), *p, v.clone()))),
            Keys::Duplicate => self.inner.dup.scan(|k, es| {
                all.extend(es.iter().map(|(p, v)| (k.clone(), *p, v.clone())));
            }),
        }
        all.retain(|(k, p, v)| filter(k, *p, v));
        all
    }

    /// `Registry.dispatch/3`: calls `f` with the entries under `key` if there are any;
    /// returns how many there were.
    pub fn dispatch(&self, key: &K, f: impl FnOnce(&[(Pid, V)])) -> usize {
        let entries = self.lookup(key);
        if !entries.is_empty() {
            f(&entries);
        }
        entries.len()
    }

    /// `Registry.keys/2`: the keys `pid` holds (a duplicate key once per entry).
    pub fn keys(&self, pid: Pid) -> Vec<K> {
        self.inner
            .owners
            .read(&pid, |ks| ks.clone())
            .unwrap_or_default()
    }

    /// `Registry.count/1`: the number of entries.
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::Acquire)
    }

    /// The number of entries under `key`.
    pub fn count_key(&self, key: &K) -> usize {
        match self.inner.keys {
            Keys::Unique => usize::from(self.inner.unique.shard(key).contains_key(key)),
            Keys::Duplicate => self.inner.dup.read(key, |es| es.len()).unwrap_or(0),
        }
    }
}

impl<K: RegistryKey, V: RegistryValue> Inner<K, V> {
    fn whereis(&self, key: &K) -> Option<Pid> {
        match self.keys {
            Keys::Unique => self.unique.read(key, |e| e.0),
            Keys::Duplicate => self.dup.read(key, |es| es.first().map(|e| e.0)).flatten(),
        }
    }

    /// Registers `key` for process `p`, which must be the calling process (so it cannot
    /// finish meanwhile); the exit hook goes in first, so its exit removes the entry.
    fn register_for(&self, p: &dyn ProcessHandle, key: K, value: V) -> Result<(), RegistryError> {
        let pid = p.core().pid;
        let hook: Weak<dyn ExitHook> = self.me.clone();
        if !process::add_exit_hook(p, hook) {
            return Err(RegistryError::Exiting);
        }
        match self.keys {
            Keys::Unique => {
                let mut shard = self.unique.shard(&key);
                if let Some(holder) = shard.get(&key) {
                    return Err(RegistryError::AlreadyRegistered(holder.0));
                }
                shard.insert(key.clone(), (pid, value));
            }
            Keys::Duplicate => {
                self.dup
                    .shard(&key)
                    .entry(key.clone())
                    .or_default()
                    .push((pid, value));
            }
        }
        self.owners.shard(&pid).entry(pid).or_default().push(key);
        self.count.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Removes `pid`'s entries under `key`; returns how many.
    fn remove_entries(&self, pid: Pid, key: &K) -> usize {
        // What is removed is dropped after the shard's lock.
        let removed = match self.keys {
            Keys::Unique => {
                let mut shard = self.unique.shard(key);
                let gone = match shard.get(key) {
                    Some(e) if e.0 == pid => shard.remove(key),
                    _ => None,
                };
                drop(shard);
                usize::from(gone.is_some())
            }
            Keys::Duplicate => {
                let mut shard = self.dup.shard(key);
                let mut gone = Vec::new();
                let mut emptied = None;
                if let Some(es) = shard.get_mut(key) {
                    let mut i = 0;
                    while i < es.len() {
                        if es[i].0 == pid {
                            gone.push(es.remove(i));
                        } else {
                            i += 1;
                        }
                    }
                    if es.is_empty() {
                        emptied = shard.remove(key);
                    }
                }
                drop(shard);
                drop(emptied);
                gone.len()
            }
        };
        if removed > 0 {
            self.count.fetch_sub(removed, Ordering::AcqRel);
        }
        removed
    }

    fn unregister_for(&self, pid: Pid, key: &K) {
        if self.remove_entries(pid, key) > 0 {
            let mut shard = self.owners.shard(&pid);
            let emptied = match shard.get_mut(&pid) {
                Some(ks) => {
                    ks.retain(|k| k != key);
                    if ks.is_empty() {
                        shard.remove(&pid)
                    } else {
                        None
                    }
                }
                None => None,
            };
            drop(shard);
            drop(emptied);
        }
    }
}

impl<K: RegistryKey, V: RegistryValue> ExitHook for Inner<K, V> {
    fn exited(&self, pid: Pid) {
        let keys = self.owners.shard(&pid).remove(&pid);
        if let Some(keys) = keys {
            for k in &keys {
                self.remove_entries(pid, k);
            }
        }
    }
}

impl<K: RegistryKey, V: RegistryValue> ViaRegistry for Inner<K, V> {
    fn whereis_key(&self, key: &dyn Any) -> Option<Pid> {
        if self.keys != Keys::Unique {
            return None;
        }
        self.whereis(key.downcast_ref::<K>()?)
    }

    fn register_key(&self, key: &dyn Any) -> Result<(), RegistryError> {
        if self.keys != Keys::Unique {
            return Err(RegistryError::NotUnique(self.name.clone()));
        }
        let key = key
            .downcast_ref::<K>()
            .ok_or_else(|| RegistryError::WrongKeyType(self.name.clone()))?;
        let value = self
            .via_value
            .ok_or_else(|| RegistryError::NoViaValue(self.name.clone()))?;
        let me = process::current().ok_or(RegistryError::NotInProcess)?;
        self.register_for(&*me, key.clone(), value())
    }

    fn unregister_key(&self, key: &dyn Any) {
        if let (Some(key), Some(me)) = (key.downcast_ref::<K>(), process::self_pid()) {
            self.unregister_for(me, key);
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
