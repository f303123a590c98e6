//! Ownership: who the caller is, the owner watcher, heirs, `give_away`, deletion, and
//! the registry of named tables.
//!
//! When a process owns a table, a small watcher process (label `ets_owner_watch`)
//! monitors the current owner. On the owner's `DOWN` it hands the table to the heir
//! (sending [`EtsTransfer`]) or deletes it. The watcher re-reads the owner before each
//! wait, so `give_away` only has to nudge it. It exits when the table is deleted. It is
//! built on the public process API only (`spawn`, `monitor`, `send`).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::error::{EtsError, Result};
use super::table::{Key, Table, Value};
use super::Info;
use crate::error::SendError;
use crate::pid::{Pid, Ref};
use crate::process::{Context, Handle, Spawn};
use crate::signal::Message;

/// The message an heir (on the owner's exit) or the receiver of
/// [`Table::give_away`] gets: Erlang's `{'ETS-TRANSFER', Tab, FromPid, HeirData}`.
///
/// The receiving process's message type must be exactly `EtsTransfer<K, V, D>` (a
/// GenServer: its `Info` type), since Orbit mailboxes are typed. If it is not, the
/// transfer fails: `give_away` returns [`EtsError::TransferFailed`] and keeps the owner;
/// an inheritance deletes the table and logs a warning.
pub struct EtsTransfer<K, V, D = ()> {
    /// The table, now owned by the receiver.
    pub table: Table<K, V>,
    /// The previous owner.
    pub from: Pid,
    /// The data given with `heir` or `give_away`.
    pub heir_data: D,
}

impl<K: Key, V: Value, D: fmt::Debug> fmt::Debug for EtsTransfer<K, V, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtsTransfer")
            .field("table", &self.table)
            .field("from", &self.from)
            .field("heir_data", &self.heir_data)
            .finish()
    }
}

type SendFn<K, V> = Arc<dyn Fn(Table<K, V>, Pid) -> Result<(), SendError> + Send + Sync>;

/// The heir and how to send it its `EtsTransfer` (typed on the heir data).
pub(crate) struct Heir<K, V> {
    pub(crate) pid: Pid,
    send: SendFn<K, V>,
}

impl<K: Key, V: Value> Heir<K, V> {
    pub(crate) fn new<D: Clone + Send + Sync + 'static>(pid: Pid, data: D) -> Self {
        Heir {
            pid,
            send: Arc::new(move |table, from| {
                crate::send(
                    pid,
                    EtsTransfer {
                        table,
                        from,
                        heir_data: data.clone(),
                    },
                )
            }),
        }
    }
}

pub(crate) struct OwnerState<K, V> {
    pub(crate) owner: Pid,
    pub(crate) heir: Option<Heir<K, V>>,
    pub(crate) watcher: Option<Handle<WatchMsg>>,
}

/// Messages to the owner watcher.
pub(crate) enum WatchMsg {
    /// The owner changed: re-read it.
    Retarget,
    /// The table was deleted.
    Stop,
}

/// Who is calling: the current process, or [`Pid::NONE`] for code outside any process.
#[inline]
pub(crate) fn caller() -> Pid {
    crate::self_pid().unwrap_or(Pid::NONE)
}

/// A local pid as one integer (0 for [`Pid::NONE`]).
#[inline]
pub(crate) fn pid_key(p: Pid) -> u64 {
    (p.serial() as u64) << 32 | p.id() as u64
}

pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn set_owner<K: Key, V: Value>(t: &Table<K, V>, st: &mut OwnerState<K, V>, pid: Pid) {
    st.owner = pid;
    t.inner.owner_key.store(pid_key(pid), Ordering::Release);
}

/// Makes sure a live watcher monitors the current owner.
pub(crate) fn ensure_watcher<K: Key, V: Value>(t: &Table<K, V>) -> Result<()> {
    let mut st = t.inner.own.lock();
    if let Some(w) = &st.watcher {
        if w.send(WatchMsg::Retarget).is_ok() {
            return Ok(());
        }
    }
    let table = t.clone();
    let h = Spawn::new()
        .label("ets_owner_watch")
        .spawn(move |ctx: Context<WatchMsg>| watch(ctx, table))
        .map_err(|_| EtsError::NoRuntime)?;
    st.watcher = Some(h);
    Ok(())
}

async fn watch<K: Key, V: Value>(mut ctx: Context<WatchMsg>, t: Table<K, V>) {
    let mut watching: Option<(Pid, Ref)> = None;
    loop {
        if !t.is_alive() {
            return;
        }
        let owner = t.inner.own.lock().owner;
        if watching.map(|w| w.0) != Some(owner) {
            if let Some((_, r)) = watching.take() {
                let _ = crate::demonitor(r, true);
            }
            if owner != Pid::NONE {
                match crate::monitor(owner) {
                    Ok(r) => watching = Some((owner, r)),
                    // Cannot happen: the watcher is a process.
                    Err(_) => return,
                }
            }
        }
        match ctx.recv().await {
            Message::Down(d) => {
                if watching.map(|w| w.1) == Some(d.monitor) {
                    watching = None;
                    owner_died(&t, d.pid);
                }
            }
            Message::Msg(WatchMsg::Retarget) => {}
            Message::Msg(WatchMsg::Stop) => return,
            Message::Exit { .. } => {}
        }
    }
}

/// The owner `dead` exited: hand the table to the heir, or delete it.
pub(crate) fn owner_died<K: Key, V: Value>(t: &Table<K, V>, dead: Pid) {
    let send = {
        let mut st = t.inner.own.lock();
        if st.owner != dead {
            return; // given away meanwhile
        }
        match &st.heir {
            Some(h) if h.pid != dead && h.pid.is_local() && h.pid != Pid::NONE => {
                let (pid, send) = (h.pid, h.send.clone());
                set_owner(t, &mut st, pid);
                Some((pid, send))
            }
            _ => None,
        }
    };
    match send {
        None => delete(t),
        Some((heir, send)) => {
            if let Err(e) = send(t.clone(), dead) {
                tracing::warn!(table = %t.label(), %heir, error = %e,
                    "ETS-TRANSFER to the heir failed; deleting the table");
                delete(t);
            }
        }
    }
}

pub(crate) fn give_away<K: Key, V: Value, D: Send + 'static>(
    t: &Table<K, V>,
    pid: Pid,
    data: D,
) -> Result<()> {
    let from = caller();
    if pid == from {
        return Err(EtsError::AlreadyOwner(pid));
    }
    if !pid.is_local() || pid == Pid::NONE || crate::process_info(pid).is_none() {
        return Err(EtsError::NotAlive(pid));
    }
    {
        let mut st = t.inner.own.lock();
        set_owner(t, &mut st, pid);
    }
    ensure_watcher(t)?;
    let msg = EtsTransfer {
        table: t.clone(),
        from,
        heir_data: data,
    };
    if let Err(e) = crate::send(pid, msg) {
        {
            let mut st = t.inner.own.lock();
            set_owner(t, &mut st, from);
        }
        let _ = ensure_watcher(t);
        return Err(EtsError::TransferFailed {
            pid,
            reason: e.to_string(),
        });
    }
    Ok(())
}

/// Deletes the table: marks it deleted, frees its name, stops the watcher, drops the objects.
pub(crate) fn delete<K: Key, V: Value>(t: &Table<K, V>) {
    if t.inner.deleted.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Some(name) = &t.inner.name {
        unregister(name, t.inner.id);
    }
    let w = t.inner.own.lock().watcher.take();
    if let Some(w) = w {
        let _ = w.send(WatchMsg::Stop);
    }
    t.inner.store.clear();
}

// ---- named tables ----------------------------------------------------------------

struct Named {
    id: u64,
    types: String,
    table: Box<dyn Any + Send + Sync>,
    /// The table's `info`, without its types (for [`named_table_info`]).
    info: Arc<dyn Fn() -> Result<Info> + Send + Sync>,
}

fn names() -> &'static Mutex<HashMap<Arc<str>, Named>> {
    static N: OnceLock<Mutex<HashMap<Arc<str>, Named>>> = OnceLock::new();
    N.get_or_init(Default::default)
}

fn types<K, V>() -> String {
    format!(
        "{}, {}",
        std::any::type_name::<K>(),
        std::any::type_name::<V>()
    )
}

pub(crate) fn register<K: Key, V: Value>(name: &Arc<str>, t: &Table<K, V>) -> Result<()> {
    let mut n = names().lock();
    if n.contains_key(name) {
        return Err(EtsError::NameTaken(name.clone()));
    }
    n.insert(
        name.clone(),
        Named {
            id: t.inner.id,
            types: types::<K, V>(),
            table: Box::new(t.clone()),
            info: {
                let t = t.clone();
                Arc::new(move || t.info())
            },
        },
    );
    Ok(())
}

pub(crate) fn unregister(name: &Arc<str>, id: u64) {
    let mut n = names().lock();
    if n.get(name).is_some_and(|e| e.id == id) {
        n.remove(name);
    }
}

/// The named table `name` (Erlang: using the name as the table id), typed as it was
/// created. [`EtsError::NoSuchName`] when none; [`EtsError::NameTypeMismatch`] when it
/// holds other types.
pub fn whereis<K: Key, V: Value>(name: &str) -> Result<Table<K, V>> {
    let n = names().lock();
    let e = n
        .get(name)
        .ok_or_else(|| EtsError::NoSuchName(Arc::from(name)))?;
    e.table
        .downcast_ref::<Table<K, V>>()
        .cloned()
        .ok_or_else(|| EtsError::NameTypeMismatch {
            name: Arc::from(name),
            actual: e.types.clone(),
            asked: types::<K, V>(),
        })
}

/// The names of all named tables (part of Erlang's `ets:all/0`).
pub fn named_tables() -> Vec<Arc<str>> {
    names().lock().keys().cloned().collect()
}

/// [`Info`] of every named table (Erlang: `ets:info/1` of each of `ets:all/0`, named
/// tables only), sorted by name. The registry lock is held only to copy the list; each
/// table's `info` is read after it, so a table deleted meanwhile is just left out.
/// Costs nothing on lookups: the registry is touched only when a named table is
/// created or deleted, and by this call.
pub fn named_table_info() -> Vec<Info> {
    let readers: Vec<_> = names().lock().values().map(|n| n.info.clone()).collect();
    let mut infos: Vec<Info> = readers.iter().filter_map(|info| info().ok()).collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}
