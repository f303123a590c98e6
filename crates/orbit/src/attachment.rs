//! Process attachments: one value per process that lives exactly as long as the
//! process, so a behaviour can turn a pid (or a registered name) back into its typed
//! handle (`Pool::whereis`, `ConCache::whereis`, `StageRef::whereis`, ...).
//!
//! Contract: [`attach`] succeeds only on a live local process and replaces an earlier
//! value; the value is dropped exactly once, in `finish`, after the process's name is
//! freed and before its links and monitors learn of the exit (a panic in its `Drop` is
//! caught). [`attached`] clones the value under the process's `meta` lock, so `Clone`
//! must not take another process's lock (an `Arc` clone does not). No Erlang original:
//! BEAM behaviours reach their state through the registered process itself.

use std::any::Any;

use crate::error::Error;
use crate::pid::Pid;
use crate::table;

/// Attaches `value` to the live local process `pid`, replacing an earlier attachment.
///
/// The value lives exactly as long as the process: it is dropped when the process
/// finishes, after its name is freed and before its links and monitors learn of the
/// exit (so a supervisor that restarts the process finds whatever the value's `Drop`
/// frees already free). Behaviours use it to make a typed handle reachable from a pid
/// ([`attached`]): a pool's shared state, a cache kept alive by its owner. Fails with
/// [`Error::NoProc`] (and drops `value`) when the process is not alive.
pub(crate) fn attach(pid: Pid, value: Box<dyn Any + Send + Sync>) -> Result<(), Error> {
    let p = table::lookup(pid).ok_or(Error::NoProc(pid))?;
    let old = {
        let mut meta = p.core().meta.lock();
        if meta.dead {
            return Err(Error::NoProc(pid));
        }
        meta.extra().attached.replace(value)
    };
    drop(old);
    Ok(())
}

/// A clone of the value of type `T` attached to the live local process `pid` (see
/// [`attach`]); `None` when it is dead, has no attachment, or one of another type.
pub(crate) fn attached<T: Clone + 'static>(pid: Pid) -> Option<T> {
    let p = table::lookup(pid)?;
    let meta = p.core().meta.lock();
    if meta.dead {
        return None;
    }
    meta.extra
        .as_ref()?
        .attached
        .as_ref()?
        .downcast_ref::<T>()
        .cloned()
}
