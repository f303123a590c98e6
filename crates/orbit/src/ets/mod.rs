//! ETS: concurrent in-memory tables with Erlang's `ets` contract, and `tab2file`.
//!
//! State behind one GenServer is read one call at a time; a table lets every process
//! read and write it concurrently. The behaviour follows Erlang's `ets` module (STDLIB
//! reference manual); the differences are listed below.
//!
//! ```
//! use orbit::ets::{Table, Pattern, MatchSpec};
//! # fn demo() -> Result<(), orbit::ets::EtsError> {
//! let t: Table<String, u64> = Table::builder().public().named("hits").build()?;
//! t.insert("home".into(), 1)?;
//! t.update_counter("home", 1)?;                  // :ets.update_counter(t, "home", 1)
//! assert_eq!(t.get("home")?, Some(2));
//! let big = t.select(&MatchSpec::new().clause(Pattern::any().when(|_, v| *v > 1), |k, _| k.clone()))?;
//! assert_eq!(big, vec!["home".to_string()]);
//! t.delete_table()?;
//! # Ok(()) }
//! # demo().unwrap();
//! ```
//!
//! # Objects, keys and types
//!
//! A `Table<K, V>` holds objects `(K, V)`: the key is always the first element
//! (Erlang's default `keypos` 1) and `V` is the rest of the tuple, e.g. `Table<u64,
//! (String, u32)>` for `{id, name, age}`. This keeps keys typed and lookups free of
//! key-extraction closures; a multi-field object is a tuple or struct as `V`. Erlang's
//! positional element operations map onto `V`: `lookup_element` returns `V`,
//! `update_element` replaces it, [`Table::update_element_with`] updates fields in place,
//! and `update_counter` needs `V` to be an integer ([`Counter`]). A `Table<K,
//! orbit_term::Term>` whose values are `Term::Tuple([e2, .., en])` holds Erlang's
//! `{Key, e2, .., en}` objects with positions as in Erlang (the key is position 1):
//! [`Table::update_counter_at`], [`Table::update_counters`] (a list of `{Pos, Incr}` /
//! `{Pos, Incr, Threshold, SetValue}`), [`Table::update_counters_or`] (default object),
//! [`Table::update_element_at`] and [`Table::update_elements`], with Erlang's `badarg`
//! cases (position 1 or beyond the object, a non-integer counter) as
//! [`EtsError::BadArg`], a missing key without default as [`EtsError::NotFound`] and a
//! bag as [`EtsError::WrongType`]; arbitrary-precision counters. Keys order by Rust's
//! `Ord` (Erlang's term order within one type). Reads return copies, as in Erlang;
//! [`Table::lookup_with`] reads without copying. Operations that find objects by key
//! (`get`, `lookup`, `member`, `take`, `delete`, `update_*`, `next`, ...) take the key or
//! a borrowed form of it, as `HashMap::get` does: `t.get("home")` on a `Table<String,
//! _>`. The borrowed form must hash, compare and order as the key does (`Borrow`'s
//! contract; `str` for `String`, `[u8]` for `Vec<u8>` keep it), so hash tables and
//! `ordered_set` find the same objects. Operations that may insert the key
//! (`update_counter_or`, `update_counters_or`) take `&K`.
//!
//! # Types and storage (chosen by measurement)
//!
//! | type | storage |
//! |---|---|
//! | `set` | lock-sharded `IndexMap<K, V>` |
//! | `bag`, `duplicate_bag` | lock-sharded `IndexMap<K, Vec<V>>` (insertion order per key) |
//! | `ordered_set` | one `parking_lot::RwLock<BTreeMap<K, V>>` |
//!
//! Hash tables shard by key hash into 64 `RwLock`s ([`CONCURRENT_SHARDS`]) when read or
//! write concurrency is on, one lock otherwise (Erlang's default of one table lock,
//! and the smallest table). A sharded `IndexMap` was chosen over concurrent maps with
//! per-entry locks (dashmap, `scc::HashMap`) because only sharded locks give, cheaply,
//! - atomic and isolated multi-object `insert`/`insert_new` (lock the shards touched in
//!   order), which per-entry-locked maps cannot give;
//! - `next(key)` in O(1) (an `IndexMap` keeps a dense entry vector: position + 1);
//!
//! at the cost of a second memory access per lookup (the index, then the entry
//! vector), where dashmap's buckets hold the object inline. Throughput and memory per
//! object beside dashmap, scc and the BEAM's ets: `orbit-bench ets` (its README quotes
//! a run).
//!
//! `ordered_set` uses a `BTreeMap` under one reader-writer lock: key order, O(log n)
//! `next`/`prev`, and range queries that visit only the range. Readers never block each
//! other; writers serialise (Erlang's ordered_set without `write_concurrency` does the
//! same). `crossbeam-skiplist` would let writers run in parallel but has no atomic
//! multi-object insert nor in-place update for `update_counter`.
//!
//! # Concurrency
//!
//! - Every single-object operation is atomic and isolated (it runs under its key's
//!   shard lock); `insert_many`/`insert_new_many` are atomic and isolated as a whole;
//!   `update_counter` never loses an increment.
//! - `read_concurrency` / `write_concurrency` are accepted; on hash tables either one
//!   turns on the 64 lock shards (readers of different keys then touch different lock
//!   words, writers of different shards run in parallel). On `ordered_set` they change
//!   nothing. [`Info`] reports both and the shard count.
//! - Traversals (`tab2list`, `foldl`/`foldr`, `select*`, `match*`) read one shard at a
//!   time, each shard atomically: an object present for the whole traversal is seen
//!   exactly once; one inserted or deleted meanwhile may or may not be; a concurrent
//!   multi-object insert may be seen in part. This is Erlang's guarantee for traversals
//!   (they are not isolated). `foldl`/`foldr` call your function on copies with no lock
//!   held, so it may use the table.
//! - `first`/`next` on `ordered_set` is always safe (next of a deleted key is the next
//!   larger key). On hash tables, `next(k)` needs `k` to still exist ([`EtsError::BadArg`]
//!   otherwise, as Erlang without `safe_fixtable`); deleting other keys during such a
//!   walk can make it miss keys that existed throughout (a delete moves the shard's last
//!   entry into the hole), never repeat one. Use `foldl` or `tab2list` for a walk that is
//!   safe under concurrent writes; `safe_fixtable` is not provided.
//! - Match-spec guards and bodies and [`Table::lookup_with`] closures run under a lock:
//!   they must not call the same table.
//!
//! # Owners, access, heirs
//!
//! The creating process owns the table. `protected` (default): the owner writes, anyone
//! reads; `private`: only the owner; `public`: anyone. Others get
//! [`EtsError::AccessDenied`] naming the owner. `info` works for everyone. Deleting
//! the table needs write access (any process on a public table), as in Erlang.
//!
//! Code outside any process (`orbit::self_pid()` is `None`) acts as one anonymous
//! caller, [`Pid::NONE`](crate::Pid::NONE): a table it creates is owned by no process,
//! lives until deleted, and outside code is its owner (processes are not); on
//! tables owned by processes outside code is a non-owner like any other.
//!
//! When the owner exits the table is deleted, unless an heir is set: the heir becomes
//! the owner and receives [`EtsTransfer`]`<K, V, D>`. Mailboxes are typed, so the heir's
//! message type must be `EtsTransfer<K, V, D>` (for a GenServer, its `Info`); if the send
//! fails (wrong type, heir dead) the table is deleted and a warning logged. Owner
//! death is noticed by a small watcher process per owned table (label
//! `ets_owner_watch`), so deletion happens just after the owner's exit, not inside it.
//!
//! In a supervision tree, [`ChildSpec::ets_table`](crate::ChildSpec::ets_table) runs an
//! owner process that creates its table in itself; that owner's table is deleted (or
//! handed to its heir) inside its exit, before its supervisor hears of it, so the
//! restarted owner can reuse the table's name at once.
//!
//! # Files
//!
//! [`tab2file`]/[`file2tab`]/[`tabfile_info`]: see [`file`](mod@file) for the format. Each
//! object is stored as an Erlang external term (orbit-term's serde ETF), so a BEAM node
//! can read a dump with `binary_to_term`; file operations need `K, V: Serialize +
//! DeserializeOwned`.
//!
//! # Checked against OTP 25
//!
//! `tests/ets_diff.rs` runs seeded random operation sequences (proptest, shrunk on a
//! mismatch) on Orbit and on a real `erl` and compares the results exactly: all four
//! types; insert and insert_new (one object or a list), lookup, delete, delete_object,
//! take, the tuple-position `update_counter`/`update_element` forms above, match on the
//! key and on an element, first/next/last/prev. Exact includes the order of a bag's
//! objects: a list insert adds a `bag`'s objects from the end of the list and a
//! `duplicate_bag`'s from its start, as OTP 25 does. Where OTP leaves the order
//! unspecified (iteration and match results of hash tables) the test compares sets.
//! `ORBIT_ETS_DIFF_SEED` / `ORBIT_ETS_DIFF_N` change the seed and batch size; without
//! `erl` the test is skipped with a message.
//!
//! # Differences from Erlang
//!
//! - Typed tables; `keypos` is always 1; match specifications are closures
//!   ([`query`]); `select_replace` cannot change keys by construction.
//! - No `select/3` continuations, `safe_fixtable`, `setopts` other than heir,
//!   `rename`, `ets:all/0` (only [`named_tables`] and [`named_table_info`]). Tuple positions are for
//!   `Table<K, Term>` only; typed values use [`Table::update_element_with`].
//! - Iteration order of `set`/`bag` tables (`first`/`next`, `tab2list`, `select`)
//!   differs from OTP's hash order (unspecified in OTP too).
//! - Integer counters are bounded by their Rust type: an overflowing `update_counter`
//!   fails with [`EtsError::Overflow`] and changes nothing.
//! - `info().memory` is in bytes (Erlang: words) and counts the table's own structures,
//!   not heap data owned by keys and values (e.g. a `String`'s bytes).

mod error;
pub mod file;
mod owner;
pub mod query;
mod shards;
mod store;
mod supervised;
mod table;

use std::fmt;
use std::sync::Arc;

pub use error::{EtsError, Result};
pub use file::{file2tab, tab2file, tabfile_info, FileInfo, FileOptions};
pub use owner::{named_table_info, named_tables, whereis, EtsTransfer};
pub use query::{KeyPattern, MatchSpec, Pattern};
pub use table::{Builder, Key, Table, Value, CONCURRENT_SHARDS};

use crate::pid::Pid;

/// The table type (Erlang's `set`, `ordered_set`, `bag`, `duplicate_bag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableType {
    /// One object per key.
    Set,
    /// One object per key, in key order.
    OrderedSet,
    /// Many objects per key, no two identical.
    Bag,
    /// Many objects per key, identical ones allowed.
    DuplicateBag,
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableType::Set => "set",
            TableType::OrderedSet => "ordered_set",
            TableType::Bag => "bag",
            TableType::DuplicateBag => "duplicate_bag",
        })
    }
}

/// Who may read and write (Erlang's access modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Everyone reads and writes.
    Public,
    /// The owner writes; everyone reads.
    Protected,
    /// Only the owner reads and writes.
    Private,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protection::Public => "public",
            Protection::Protected => "protected",
            Protection::Private => "private",
        })
    }
}

/// What `ets:info/1` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The table's number.
    pub id: u64,
    /// Its name, if named.
    pub name: Option<Arc<str>>,
    /// Its type.
    pub kind: TableType,
    /// Its access mode.
    pub protection: Protection,
    /// Number of objects.
    pub size: usize,
    /// Bytes held by the table's structures (an estimate from capacities; heap data
    /// owned by keys and values is not counted).
    pub memory: usize,
    /// The owner ([`Pid::NONE`] when no process owns it).
    pub owner: Pid,
    /// The heir, if any.
    pub heir: Option<Pid>,
    /// `read_concurrency` as given.
    pub read_concurrency: bool,
    /// `write_concurrency` as given.
    pub write_concurrency: bool,
    /// Number of lock shards (1 for ordered_set).
    pub shards: usize,
}

/// Integer types `update_counter` works on.
pub trait Counter: Copy {
    /// The value widened.
    fn to_i128(self) -> i128;
    /// The value narrowed back; `None` when it does not fit.
    fn from_i128(v: i128) -> Option<Self>;
}

macro_rules! counter {
    ($($t:ty),*) => {$(
        impl Counter for $t {
            #[inline]
            fn to_i128(self) -> i128 { self as i128 }
            #[inline]
            fn from_i128(v: i128) -> Option<Self> { <$t>::try_from(v).ok() }
        }
    )*};
}
counter!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, usize);

/// An `update_counter` operation: `Incr`, or `{Pos, Incr, Threshold, SetValue}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterOp {
    incr: i64,
    threshold: Option<(i64, i64)>,
}

impl CounterOp {
    /// Adds `incr` (may be negative).
    pub fn incr(incr: i64) -> Self {
        CounterOp {
            incr,
            threshold: None,
        }
    }

    /// Adds `incr`; if the result passes `threshold` (above it for `incr >= 0`, below it
    /// for `incr < 0`) the counter is set to `set_value` instead, as in Erlang.
    pub fn threshold(incr: i64, threshold: i64, set_value: i64) -> Self {
        CounterOp {
            incr,
            threshold: Some((threshold, set_value)),
        }
    }

    /// The new counter value from the current one, in arbitrary precision (counters inside
    /// [`orbit_term::Term`] objects are Erlang integers of any size).
    pub fn apply_big(&self, cur: &orbit_term::BigInt) -> orbit_term::BigInt {
        let r = cur + orbit_term::BigInt::from(self.incr);
        match self.threshold {
            Some((t, s)) if self.incr >= 0 && r > orbit_term::BigInt::from(t) => s.into(),
            Some((t, s)) if self.incr < 0 && r < orbit_term::BigInt::from(t) => s.into(),
            _ => r,
        }
    }

    /// The new counter value from the current one.
    pub fn apply(self, cur: i128) -> i128 {
        let r = cur + self.incr as i128;
        match self.threshold {
            Some((t, s)) if self.incr >= 0 && r > t as i128 => s as i128,
            Some((t, s)) if self.incr < 0 && r < t as i128 => s as i128,
            _ => r,
        }
    }
}

macro_rules! counter_op_from {
    ($($t:ty),*) => {$(
        impl From<$t> for CounterOp {
            fn from(incr: $t) -> Self {
                CounterOp::incr(incr as i64)
            }
        }
    )*};
}
counter_op_from!(i8, i16, i32, i64, u8, u16, u32);

/// `ets:new/2` with the defaults (`set`, `protected`): a table owned by the caller.
pub fn new<K: Key, V: Value>() -> Result<Table<K, V>> {
    Table::new()
}
