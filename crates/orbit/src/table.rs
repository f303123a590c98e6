//! The process table: every live local process, by pid.
//!
//! Keyed by id and serial together, so a pid whose process has exited never reaches a
//! newer process. 64 shards of `HashMap` behind read-write locks, picked by the low bits
//! of the id: pids are allocated sequentially, so consecutive spawns land on different
//! shards and concurrent spawners rarely meet on one lock. Measured against
//! `scc::HashMap` on the spawn benchmark, whose insert path was the largest single cost
//! of a spawn (~18% in a profile), a plain sharded map is simpler and no slower.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::hash::{seeded, FastState};
use crate::pid::Pid;
use crate::process::ProcessHandle;

const SHARDS: usize = 64;

type Shard = RwLock<HashMap<u64, Arc<dyn ProcessHandle>, FastState>>;

fn shards() -> &'static [Shard; SHARDS] {
    static T: OnceLock<[Shard; SHARDS]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|_| RwLock::new(HashMap::with_hasher(seeded()))))
}

#[inline]
fn shard(key: u64) -> &'static Shard {
    &shards()[(key as usize) % SHARDS]
}

pub(crate) fn insert(pid: Pid, p: Arc<dyn ProcessHandle>) {
    let key = pid.key();
    shard(key).write().insert(key, p);
}

pub(crate) fn remove(pid: Pid) {
    let key = pid.key();
    shard(key).write().remove(&key);
}

pub(crate) fn lookup(pid: Pid) -> Option<Arc<dyn ProcessHandle>> {
    if !pid.is_local() {
        return None;
    }
    let key = pid.key();
    shard(key).read().get(&key).cloned()
}

/// Every live local process's pid (Erlang's `processes()`), in no particular order.
pub fn processes() -> Vec<Pid> {
    let mut out = Vec::new();
    for_each(|p| out.push(p.core().pid));
    out
}

/// Calls `f` on every live process. Takes each shard's read lock in turn, handing `f`
/// clones so no lock is held while `f` runs.
pub(crate) fn for_each(mut f: impl FnMut(&Arc<dyn ProcessHandle>)) {
    for s in shards().iter() {
        let procs: Vec<Arc<dyn ProcessHandle>> = s.read().values().cloned().collect();
        for p in &procs {
            f(p);
        }
    }
}

/// Number of live local processes.
pub fn process_count() -> usize {
    shards().iter().map(|s| s.read().len()).sum()
}
