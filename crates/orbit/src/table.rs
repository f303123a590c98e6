//! The process table: every live local process, by pid.
//!
//! Keyed by id and serial together, so a pid whose process has exited never reaches a
//! newer process. Backed by `scc::HashMap`, a lock-free-read concurrent map that stays
//! fast under the spawn rates the runtime targets (a million processes a second).

use std::sync::{Arc, OnceLock};

use crate::pid::Pid;
use crate::process::ProcessHandle;

type Table = scc::HashMap<u64, Arc<dyn ProcessHandle>>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(Table::new)
}

pub(crate) fn insert(pid: Pid, p: Arc<dyn ProcessHandle>) {
    // Keys are never reused (see `Pid::new_local`), so the insert cannot collide.
    let _ = table().insert(pid.key(), p);
}

pub(crate) fn remove(pid: Pid) {
    table().remove(&pid.key());
}

pub(crate) fn lookup(pid: Pid) -> Option<Arc<dyn ProcessHandle>> {
    if !pid.is_local() {
        return None;
    }
    table().read(&pid.key(), |_, v| v.clone())
}

/// Every live local process's pid (Erlang's `processes()`), in no particular order.
pub fn processes() -> Vec<Pid> {
    let mut out = Vec::with_capacity(table().len());
    table().scan(|_, v| out.push(v.core().pid));
    out
}

pub(crate) fn for_each(mut f: impl FnMut(&Arc<dyn ProcessHandle>)) {
    table().scan(|_, v| f(v));
}

/// Number of live local processes.
pub fn process_count() -> usize {
    table().len()
}
