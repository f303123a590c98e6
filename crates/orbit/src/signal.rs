//! Links, monitors and exit signals: how a process's death reaches others.
//!
//! The rules are Erlang's (`../shared/reference/otp-semantics.md` §1):
//! - links are bidirectional; an exit other than `normal` kills a linked process unless
//!   it traps exits, in which case it receives [`Message::Exit`];
//! - `kill` cannot be trapped and reaches linked processes as `killed`;
//! - a monitor delivers exactly one [`Message::Down`]; monitoring a dead pid delivers
//!   `DOWN` with `noproc` at once; [`demonitor`] with `flush` removes a pending `DOWN`.
//!
//! Locking rule: at most one process's `meta` lock is held at any time, so signals
//! between processes can never deadlock.

use std::sync::Arc;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::mailbox::{Signal, KILLED};
use crate::pid::{Pid, Ref};
use crate::process::{current_or_err, ProcessHandle};
use crate::{registry, router, table};

/// What a process receives: an ordinary message, or a signal turned into a message.
#[derive(Debug)]
pub enum Message<M> {
    /// An ordinary message.
    Msg(M),
    /// `{'EXIT', From, Reason}`: a linked process exited, or `exit(pid, reason)` was
    /// called on this process, while it traps exits.
    Exit {
        /// Who sent the exit signal.
        from: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// `{'DOWN', Ref, process, Pid, Reason}`: a monitored process exited.
    Down(Down),
}

/// A monitor fired: the monitored process `pid` exited with `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// The monitor reference returned by [`monitor`].
    pub monitor: Ref,
    /// The process that exited.
    pub pid: Pid,
    /// Its exit reason (`noproc` if it was already dead when monitored).
    pub reason: ExitReason,
}

/// Sends an exit signal to `pid` from the calling process (or from [`Pid::NONE`] when
/// called outside a process), as Erlang's `exit/2`:
/// - `Kill` always kills the target, which exits with `killed`;
/// - if the target traps exits it receives [`Message::Exit`];
/// - otherwise `normal` is ignored (unless the target is the caller itself) and any
///   other reason kills the target with that reason.
pub fn exit(pid: Pid, reason: ExitReason) {
    let from = crate::self_pid().unwrap_or(Pid::NONE);
    send_exit(from, pid, reason, false);
}

/// Links the calling process to `pid`. If `pid` is not alive the caller receives an
/// exit signal with reason `noproc`, as in Erlang.
pub fn link(pid: Pid) -> Result<(), Error> {
    let me = current_or_err()?;
    let my = me.core().pid;
    if pid == my {
        return Ok(());
    }
    if !pid.is_local() {
        add_link(&me, pid);
        return router::get()?.link(my, pid);
    }
    let Some(other) = table::lookup(pid) else {
        send_exit(pid, my, ExitReason::NoProc, true);
        return Ok(());
    };
    if !add_link(&me, pid) {
        return Ok(());
    }
    if !link_if_alive(&other, my) {
        remove_link(&me, pid);
        send_exit(pid, my, ExitReason::NoProc, true);
    }
    Ok(())
}

fn add_link(me: &Arc<dyn ProcessHandle>, pid: Pid) -> bool {
    let mut m = me.core().meta.lock();
    let l = &mut m.extra().links;
    if l.contains(&pid) {
        return false;
    }
    l.push(pid);
    true
}

/// Adds `pid` to the links of `p` unless `p` has exited; false when it has.
fn link_if_alive(p: &Arc<dyn ProcessHandle>, pid: Pid) -> bool {
    let mut m = p.core().meta.lock();
    if m.dead {
        return false;
    }
    let l = &mut m.extra().links;
    if !l.contains(&pid) {
        l.push(pid);
    }
    true
}

/// Records that `watcher` monitors `target` under `r`, unless `target` has exited;
/// false when it has.
fn watch_if_alive(target: &Arc<dyn ProcessHandle>, r: Ref, watcher: Pid) -> bool {
    let mut m = target.core().meta.lock();
    if m.dead {
        return false;
    }
    m.extra().watchers.push((r, watcher));
    true
}

/// Forgets the monitor `r` held on `target`.
fn unwatch(target: &Arc<dyn ProcessHandle>, r: Ref) {
    let mut m = target.core().meta.lock();
    if let Some(e) = m.extra.as_mut() {
        e.watchers.retain(|(wr, _)| *wr != r);
    }
}

fn remove_link(p: &Arc<dyn ProcessHandle>, pid: Pid) {
    let mut m = p.core().meta.lock();
    if let Some(e) = m.extra.as_mut() {
        e.links.retain(|l| *l != pid);
    }
}

/// Removes the link between the calling process and `pid`, if any.
pub fn unlink(pid: Pid) -> Result<(), Error> {
    let me = current_or_err()?;
    remove_link(&me, pid);
    if pid.is_local() {
        if let Some(other) = table::lookup(pid) {
            remove_link(&other, me.core().pid);
        }
        Ok(())
    } else {
        router::get()?.unlink(me.core().pid, pid)
    }
}

/// Monitors `pid` from the calling process; the caller receives exactly one
/// [`Message::Down`] carrying the returned reference (at once, with `noproc`, if `pid`
/// is not alive).
pub fn monitor(pid: Pid) -> Result<Ref, Error> {
    let me = current_or_err()?;
    Ok(monitor_from(&me, pid))
}

pub(crate) fn monitor_from(me: &Arc<dyn ProcessHandle>, pid: Pid) -> Ref {
    let r = Ref::make();
    let my = me.core().pid;
    me.core().meta.lock().extra().monitors.push((r, pid));
    if !pid.is_local() {
        if let Err(e) = router::get().and_then(|rt| rt.monitor(my, pid, r)) {
            tracing::debug!(%pid, error = %e, "remote monitor failed; delivering noconnection");
            fire_down(me, r, pid, ExitReason::NoConnection);
        }
        return r;
    }
    let added = table::lookup(pid).is_some_and(|target| watch_if_alive(&target, r, my));
    if !added {
        fire_down(me, r, pid, ExitReason::NoProc);
    }
    r
}

fn fire_down(watcher: &Arc<dyn ProcessHandle>, r: Ref, pid: Pid, reason: ExitReason) {
    {
        let mut m = watcher.core().meta.lock();
        if let Some(e) = m.extra.as_mut() {
            e.monitors.retain(|(mr, _)| *mr != r);
        }
    }
    watcher.push_signal(Signal::Down(Down {
        monitor: r,
        pid,
        reason,
    }));
}

/// Removes monitor `r` held by the calling process. With `flush`, also removes its
/// `DOWN` if one is already waiting. Returns true when the monitor was still active
/// (or, with `flush`, a pending `DOWN` was removed).
pub fn demonitor(r: Ref, flush: bool) -> Result<bool, Error> {
    let me = current_or_err()?;
    let target = {
        let mut m = me.core().meta.lock();
        m.extra.as_mut().and_then(|e| {
            let i = e.monitors.iter().position(|(mr, _)| *mr == r)?;
            Some(e.monitors.swap_remove(i).1)
        })
    };
    let mut active = false;
    if let Some(pid) = target {
        active = true;
        if pid.is_local() {
            if let Some(t) = table::lookup(pid) {
                unwatch(&t, r);
            }
        } else if let Ok(rt) = router::get() {
            rt.demonitor(me.core().pid, pid, r)?;
        }
    }
    if flush {
        let flushed = me.flush_down(r);
        active |= flushed;
    }
    Ok(active)
}

/// Delivers an exit signal. `link` marks signals that travel along a link (where a
/// `kill` reason is an ordinary, trappable reason) as opposed to `exit/2`.
pub(crate) fn send_exit(from: Pid, to: Pid, reason: ExitReason, link: bool) {
    if !to.is_local() {
        if let Ok(rt) = router::get() {
            if let Err(e) = rt.exit(from, to, reason, link) {
                tracing::debug!(%to, error = %e, "remote exit signal not delivered");
            }
        }
        return;
    }
    let Some(target) = table::lookup(to) else {
        return;
    };
    deliver_exit(&target, from, reason, link);
}

pub(crate) fn deliver_exit(
    target: &Arc<dyn ProcessHandle>,
    from: Pid,
    reason: ExitReason,
    link: bool,
) {
    if reason == ExitReason::Kill && !link {
        kill(target, ExitReason::Killed);
        return;
    }
    let trapping = {
        let m = target.core().meta.lock();
        if m.dead || m.killed {
            return;
        }
        m.trap_exit
    };
    if trapping {
        target.push_signal(Signal::Exit { from, reason });
    } else if reason.is_normal() {
        if from == target.core().pid {
            kill(target, ExitReason::Normal);
        }
    } else {
        kill(target, reason);
    }
}

/// Makes `target` exit with `reason` at its next await point.
pub(crate) fn kill(target: &Arc<dyn ProcessHandle>, reason: ExitReason) {
    let task = {
        let mut m = target.core().meta.lock();
        if m.dead || m.killed {
            return;
        }
        m.set_kill(reason);
        m.task.take()
    };
    target
        .flags()
        .fetch_or(KILLED, std::sync::atomic::Ordering::Release);
    // The task sees `KILLED` on its next poll and drops the body; before its first poll
    // there is no waker yet, and that first poll finds the kill.
    if let Some(w) = task {
        w.wake();
    }
    target.wake();
}

/// Runs once when a process ends: records the reason, frees the pid and the name,
/// drops queued messages, and signals links, monitors and exit waiters.
pub(crate) fn finish(p: &Arc<dyn ProcessHandle>, reason: ExitReason) {
    let core = p.core();
    let pid = core.pid;
    let _ = core.exit.set(reason.clone());
    let extra = {
        let mut m = core.meta.lock();
        m.dead = true;
        m.task = None;
        m.extra.take()
    };
    table::remove(pid);
    p.close();
    let Some(extra) = extra else { return };
    if let Some(name) = &extra.name {
        registry::release(name, pid);
    }
    if !reason.is_clean() {
        if let Some(label) = extra.label {
            tracing::debug!(%pid, label, %reason, "process exited");
        }
    }
    let link_reason = reason.clone();
    for l in &extra.links {
        if l.is_local() {
            if let Some(other) = table::lookup(*l) {
                remove_link(&other, pid);
                deliver_exit(&other, pid, link_reason.clone(), true);
            }
        } else {
            send_exit(pid, *l, link_reason.clone(), true);
        }
    }
    for (r, target) in &extra.monitors {
        if let Some(t) = table::lookup(*target) {
            unwatch(&t, *r);
        } else if !target.is_local() {
            if let Ok(rt) = router::get() {
                let _ = rt.demonitor(pid, *target, *r);
            }
        }
    }
    for (r, watcher) in &extra.watchers {
        if watcher.is_local() {
            if let Some(w) = table::lookup(*watcher) {
                fire_down(&w, *r, pid, reason.clone());
            }
        } else if let Ok(rt) = router::get() {
            let _ = rt.down(pid, *watcher, *r, reason.clone());
        }
    }
    for w in extra.exit_waiters {
        let _ = w.send(reason.clone());
    }
}

/// Delivers a `DOWN` for a monitor held by local process `watcher` (used by the router
/// when a remote process or node goes down).
pub fn deliver_down(watcher: Pid, monitor: Ref, pid: Pid, reason: ExitReason) {
    if let Some(w) = table::lookup(watcher) {
        fire_down(&w, monitor, pid, reason);
    }
}

/// Delivers an exit signal from a remote process to local process `to` (used by the
/// router). `link` marks signals travelling along a link.
pub fn deliver_remote_exit(from: Pid, to: Pid, reason: ExitReason, link: bool) {
    if let Some(t) = table::lookup(to) {
        if link {
            remove_link(&t, from);
        }
        deliver_exit(&t, from, reason, link);
    }
}

/// Records the local half of a link that remote process `remote` made to local process
/// `local` (used by the router when a `LINK` arrives). Returns false when `local` is not
/// alive; the router then answers with a `noproc` exit.
pub fn add_remote_link(local: Pid, remote: Pid) -> bool {
    table::lookup(local).is_some_and(|p| link_if_alive(&p, remote))
}

/// Removes the local half of a link between local `local` and remote `remote` (used by
/// the router when an `UNLINK_ID` arrives).
pub fn remove_remote_link(local: Pid, remote: Pid) {
    if let Some(p) = table::lookup(local) {
        remove_link(&p, remote);
    }
}

/// Records that remote process `watcher` monitors local process `target` under `r`, so
/// that `target`'s exit reaches the router's [`Router::down`](crate::router::Router::down).
/// Returns false when `target` is not alive (the router answers `noproc`).
pub fn add_remote_monitor(target: Pid, watcher: Pid, r: Ref) -> bool {
    table::lookup(target).is_some_and(|t| watch_if_alive(&t, r, watcher))
}

/// Removes a monitor that a remote process held on local `target` (a `DEMONITOR_P`, or
/// the watcher's node going down).
pub fn remove_remote_monitor(target: Pid, r: Ref) {
    if let Some(t) = table::lookup(target) {
        unwatch(&t, r);
    }
}
