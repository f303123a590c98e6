//! Local registered names: one name per process, one process per name (Erlang's
//! `register`).
//!
//! A name is freed when its process exits. Sending to a name that is not registered is
//! an error, as `badarg` is in Erlang.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, SendError};
use crate::pid::Pid;
use crate::table;

/// Seeded foldhash (`crate::hash`): `whereis` runs for every message sent to a name,
/// and SipHash of the name was most of its cost (issue 17).
type Names = scc::HashMap<Arc<str>, Pid, crate::hash::FastState>;

fn names() -> &'static Names {
    static N: OnceLock<Names> = OnceLock::new();
    N.get_or_init(|| Names::with_hasher(crate::hash::seeded()))
}

/// Registers `name` for the live local process `pid`.
///
/// Fails when the name is taken, the process already has a name, or it is not alive.
pub fn register(name: &str, pid: Pid) -> Result<(), Error> {
    let p = table::lookup(pid).ok_or(Error::NoProc(pid))?;
    let name: Arc<str> = Arc::from(name);
    let mut meta = p.core().meta.lock();
    if meta.dead {
        return Err(Error::NoProc(pid));
    }
    if let Some(holder) = names().read(&name, |_, v| *v) {
        return Err(Error::NameTaken { name, pid: holder });
    }
    if let Some(old) = meta.extra.as_ref().and_then(|e| e.name.clone()) {
        return Err(Error::AlreadyNamed { pid, name: old });
    }
    if let Err((name, _)) = names().insert(name.clone(), pid) {
        let holder = names().read(&name, |_, v| *v).unwrap_or(Pid::NONE);
        return Err(Error::NameTaken { name, pid: holder });
    }
    meta.extra().name = Some(name);
    Ok(())
}

/// Removes a registered name. Fails when it is not registered.
pub fn unregister(name: &str) -> Result<(), Error> {
    let (_, pid) = names()
        .remove(name)
        .ok_or_else(|| Error::NotRegistered(Arc::from(name)))?;
    if let Some(p) = table::lookup(pid) {
        let mut meta = p.core().meta.lock();
        if let Some(e) = meta.extra.as_mut() {
            if e.name.as_deref() == Some(name) {
                e.name = None;
            }
        }
    }
    Ok(())
}

/// The pid registered under `name`, if any.
pub fn whereis(name: &str) -> Option<Pid> {
    names().read(name, |_, v| *v)
}

/// Every registered name (Erlang's `registered()`).
pub fn registered() -> Vec<Arc<str>> {
    let mut out = Vec::new();
    names().scan(|k, _| out.push(k.clone()));
    out
}

pub(crate) fn release(name: &str, pid: Pid) {
    names().remove_if(name, |v| *v == pid);
}

/// Sends `msg` to the process registered as `name` (the same as
/// [`crate::send`]`(name, msg)`, which also takes pids and `via` names).
pub fn send_named<M: Any + Send>(name: &str, msg: M) -> Result<(), SendError> {
    crate::send(name, msg)
}
