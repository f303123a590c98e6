//! [`Builder`]: the options of a new table (`ets:new/2`'s option list).

use super::*;

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

    /// `named_table`: registers the table under `name` (find it with [`crate::ets::whereis`]).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(Arc::from(name));
        self
    }

    /// `{heir, Pid, HeirData}`: when the owner exits, `pid` becomes the owner and is sent
    /// [`EtsTransfer`](crate::ets::EtsTransfer)`<K, V, D>` carrying `data` (its mailbox must
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
