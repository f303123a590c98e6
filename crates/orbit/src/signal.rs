//! Links, monitors and exit signals: how a process's death reaches others.
//!
//! The rules are Erlang's (the Erlang Reference Manual, *Processes*: links, monitors,
//! exit signals):
//! - links are bidirectional; an exit other than `normal` kills a linked process unless
//!   it traps exits, in which case it receives [`Message::Exit`];
//! - `kill` cannot be trapped and reaches linked processes as `killed`;
//! - a monitor delivers exactly one [`Message::Down`]; monitoring a dead pid delivers
//!   `DOWN` with `noproc` at once; [`demonitor`] with `flush` removes a pending `DOWN`.
//!
//! Guarantees after the call returns (stronger than OTP's, which lets an `EXIT` already
//! queued stay queued):
//! - [`unlink`]`(pid)`: no exit signal travelling along that link affects the caller: it
//!   is not killed by it and receives no [`Message::Exit`] from it, not even one that was
//!   already queued and not yet received (an `exit/2` signal from `pid` is not a link
//!   signal and stays);
//! - [`demonitor`]`(r, true)`: no [`Message::Down`] for `r` is ever received;
//! - [`demonitor`]`(r, false)`: if no `DOWN` for `r` was queued when it returned, none
//!   is queued later.
//!
//! How: a link exit takes effect only if the target still holds the link, and a `DOWN`
//! only if the watcher still holds the monitor. The check, its removal, and the effect
//! (queueing the signal, or deciding the kill) happen in one section under the
//! *receiving* process's `meta` lock (`deliver_locked`, `down_locked`);
//! `unlink`/`demonitor` remove the link/monitor under that same lock and only then purge
//! the signal queue. The remote paths ([`deliver_remote_exit`], [`deliver_down`]) go
//! through the same functions.
//!
//! Locking rule: at most one process's `meta` lock is held at any time, so signals
//! between processes can never deadlock. Under a `meta` lock the only other lock taken
//! is that process's own mailbox spin lock (to queue a signal), which never takes a
//! `meta` lock: lock order is `meta` then mailbox. Queueing a signal may wake the
//! process's receive waker under the `meta` lock; that is a task waker, which does not
//! call back into signalling.
//!
//! Model-checked: `loom_tests` (run `scripts/loom`) explores every interleaving of the
//! real `deliver_locked` / `down_locked` against the real `drop_link` /
//! `forget_monitor` sequences of `unlink`/`demonitor`, over a model process whose
//! `meta` lock and signal queue are loom mutexes. Not model-checked: the process table,
//! the mailbox's own spin lock, the kill's wake-up of the task, and `finish` taking the
//! links out (a dead process holds no links, so that step cannot deliver twice).

use std::ops::DerefMut;
use std::sync::Arc;
use std::task::Waker;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::mailbox::{Signal, KILLED};
use crate::pid::{Pid, Ref};
use crate::process::{current_or_err, Meta, ProcessHandle};
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
    send_exit(from, pid, reason, Via::Exit2);
}

/// The parts of a process that signalling touches: its `meta` lock and its signal queue.
/// Implemented by every process (`dyn ProcessHandle`) and, under loom, by the model in
/// `loom_tests`, so the model runs the same delivery code.
pub(crate) trait SignalTarget {
    /// The guard of the `meta` lock.
    type Guard<'a>: DerefMut<Target = Meta>
    where
        Self: 'a;
    /// The process's pid.
    fn target_pid(&self) -> Pid;
    /// Takes the process's `meta` lock.
    fn lock_meta(&self) -> Self::Guard<'_>;
    /// Queues a signal (false when the mailbox is closed).
    fn queue_signal(&self, s: Signal) -> bool;
    /// Removes queued link exit signals from `from`.
    fn unqueue_link_exit(&self, from: Pid) -> bool;
    /// Removes queued `DOWN`s of monitor `r`.
    fn unqueue_down(&self, r: Ref) -> bool;
}

impl SignalTarget for dyn ProcessHandle {
    type Guard<'a> = parking_lot::MutexGuard<'a, Meta>;
    fn target_pid(&self) -> Pid {
        self.core().pid
    }
    fn lock_meta(&self) -> Self::Guard<'_> {
        self.core().meta.lock()
    }
    fn queue_signal(&self, s: Signal) -> bool {
        self.push_signal(s)
    }
    fn unqueue_link_exit(&self, from: Pid) -> bool {
        self.flush_link_exit(from)
    }
    fn unqueue_down(&self, r: Ref) -> bool {
        self.flush_down(r)
    }
}

/// How an exit signal travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// `exit/2`: `kill` cannot be trapped; no link is involved.
    Exit2,
    /// Along a link: takes effect only if the target still holds the link to the sender
    /// (removed in the same lock section), so nothing arrives after `unlink` returns.
    Link,
    /// The `noproc` answer to linking a process that is not alive: a link signal, for a
    /// link that was never made.
    NoLink,
}

/// What delivering an exit signal did.
#[derive(Debug)]
pub(crate) enum Delivered {
    /// Nothing: the target is dead or already dying, or (along a link) no longer holds
    /// the link.
    Dropped,
    /// Queued as a [`Message::Exit`]: the target traps exits.
    Queued,
    /// Ignored: `normal` reaching a process that does not trap exits.
    Ignored,
    /// The target's kill is decided; the caller wakes it with [`wake_killed`] (outside
    /// the lock: a waker may run arbitrary code). Carries the task waker taken out.
    Killed(Option<Waker>),
}

/// Delivers an exit signal from `from` to `t` in one section under `t`'s `meta` lock:
/// checks (and, along a link, takes away) what entitles the signal to act, then queues
/// it or decides the kill.
pub(crate) fn deliver_locked<T: SignalTarget + ?Sized>(
    t: &T,
    from: Pid,
    reason: ExitReason,
    via: Via,
) -> Delivered {
    let mut m = t.lock_meta();
    if m.dead || m.killed {
        return Delivered::Dropped;
    }
    if via == Via::Link && !take_link(&mut m, from) {
        return Delivered::Dropped;
    }
    if via == Via::Exit2 && reason == ExitReason::Kill {
        m.set_kill(ExitReason::Killed);
        return Delivered::Killed(m.task.take());
    }
    if m.trap_exit {
        // Queued under the lock: an `unlink` that takes the link away after this
        // section finds the signal in the queue and removes it.
        t.queue_signal(Signal::Exit {
            from,
            reason,
            link: via != Via::Exit2,
        });
        return Delivered::Queued;
    }
    if reason.is_normal() && from != t.target_pid() {
        return Delivered::Ignored;
    }
    m.set_kill(reason);
    Delivered::Killed(m.task.take())
}

/// Removes the link to `pid` from a locked `meta`; false when there was none.
fn take_link(m: &mut Meta, pid: Pid) -> bool {
    let Some(e) = m.extra.as_mut() else {
        return false;
    };
    match e.links.iter().position(|l| *l == pid) {
        Some(i) => {
            e.links.swap_remove(i);
            true
        }
        None => false,
    }
}

/// The caller's half of `unlink(pid)`: forgets the link under its `meta` lock, then
/// removes a link exit from `pid` that was queued before. From then on no exit signal
/// along that link acts on the process ([`deliver_locked`] checks the link under the
/// same lock).
pub(crate) fn drop_link<T: SignalTarget + ?Sized>(t: &T, pid: Pid) {
    take_link(&mut t.lock_meta(), pid);
    t.unqueue_link_exit(pid);
}

/// Queues `DOWN` for monitor `r` on watcher `w`, only if `w` still holds the monitor,
/// which is taken away in the same section under `w`'s `meta` lock. False when not queued.
pub(crate) fn down_locked<T: SignalTarget + ?Sized>(
    w: &T,
    r: Ref,
    pid: Pid,
    reason: ExitReason,
) -> bool {
    let mut m = w.lock_meta();
    if forget_monitor_locked(&mut m, r).is_none() {
        return false;
    }
    w.queue_signal(Signal::Down(Down {
        monitor: r,
        pid,
        reason,
    }))
}

fn forget_monitor_locked(m: &mut Meta, r: Ref) -> Option<Pid> {
    let e = m.extra.as_mut()?;
    let i = e.monitors.iter().position(|(mr, _)| *mr == r)?;
    Some(e.monitors.swap_remove(i).1)
}

/// The watcher's first step of `demonitor(r)`: forgets the monitor under its `meta`
/// lock and returns its target if it was still active. From then on no `DOWN` for `r`
/// is queued ([`down_locked`] checks under the same lock); one queued before can then be
/// flushed.
pub(crate) fn forget_monitor<T: SignalTarget + ?Sized>(t: &T, r: Ref) -> Option<Pid> {
    forget_monitor_locked(&mut t.lock_meta(), r)
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
        send_exit(pid, my, ExitReason::NoProc, Via::NoLink);
        return Ok(());
    };
    if !add_link(&me, pid) {
        return Ok(());
    }
    if !link_if_alive(&other, my) {
        remove_link(&me, pid);
        send_exit(pid, my, ExitReason::NoProc, Via::NoLink);
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
    take_link(&mut p.core().meta.lock(), pid);
}

/// Removes the link between the calling process and `pid`, if any. Once it returns, no
/// exit signal along that link affects the caller: it is not killed by it, and no
/// [`Message::Exit`] from the link is received, including one already queued (an
/// `exit/2` signal from `pid` is kept).
pub fn unlink(pid: Pid) -> Result<(), Error> {
    let me = current_or_err()?;
    drop_link(&*me, pid);
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
/// is not alive), unless it demonitors first.
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
            down_locked(&**me, r, pid, ExitReason::NoConnection);
        }
        return r;
    }
    let added = table::lookup(pid).is_some_and(|target| watch_if_alive(&target, r, my));
    if !added {
        down_locked(&**me, r, pid, ExitReason::NoProc);
    }
    r
}

/// Removes monitor `r` held by the calling process. With `flush`, also removes its
/// `DOWN` if one is already waiting. Returns true when the monitor was still active
/// (or, with `flush`, a pending `DOWN` was removed).
///
/// Once it returns, no `DOWN` for `r` is queued any more; with `flush`, none is ever
/// received.
pub fn demonitor(r: Ref, flush: bool) -> Result<bool, Error> {
    let me = current_or_err()?;
    let target = forget_monitor(&*me, r);
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
        let flushed = me.unqueue_down(r);
        active |= flushed;
    }
    Ok(active)
}

/// Delivers an exit signal (see [`Via`]).
pub(crate) fn send_exit(from: Pid, to: Pid, reason: ExitReason, via: Via) {
    if !to.is_local() {
        if let Ok(rt) = router::get() {
            if let Err(e) = rt.exit(from, to, reason, via != Via::Exit2) {
                tracing::debug!(%to, error = %e, "remote exit signal not delivered");
            }
        }
        return;
    }
    let Some(target) = table::lookup(to) else {
        return;
    };
    deliver_exit(&target, from, reason, via);
}

pub(crate) fn deliver_exit(
    target: &Arc<dyn ProcessHandle>,
    from: Pid,
    reason: ExitReason,
    via: Via,
) {
    if let Delivered::Killed(task) = deliver_locked(&**target, from, reason, via) {
        wake_killed(target, task);
    }
}

/// After a kill was decided under the lock: flags it and wakes the task, which sees
/// `KILLED` on its next poll and drops the body; before its first poll there is no
/// waker yet, and that first poll finds the kill.
pub(crate) fn wake_killed(target: &Arc<dyn ProcessHandle>, task: Option<Waker>) {
    target
        .flags()
        .fetch_or(KILLED, std::sync::atomic::Ordering::Release);
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
    // Dropping queued messages runs their destructors, which may panic: caught, so the
    // exit is still signalled (no panic may leave a process half finished).
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.close())) {
        crate::exit::drop_payload(panic);
    }
    let Some(mut extra) = extra else { return };
    if let Some(name) = &extra.name {
        registry::release(name, pid);
    }
    // The attachment goes before links and monitors hear of the exit, so whoever
    // restarts the process finds what its `Drop` frees (a table name) already free.
    if let Some(value) = extra.attached.take() {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value))) {
            crate::exit::drop_payload(panic);
        }
    }
    if !reason.is_clean() {
        if let Some(label) = extra.label {
            tracing::debug!(%pid, label, %reason, "process exited");
        }
    }
    for l in &extra.links {
        // Delivered only if the other side still holds the link (see `deliver_locked`).
        send_exit(pid, *l, reason.clone(), Via::Link);
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
                down_locked(&*w, *r, pid, reason.clone());
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
/// when a remote process or node goes down); dropped if `watcher` no longer holds the
/// monitor (it demonitored).
pub fn deliver_down(watcher: Pid, monitor: Ref, pid: Pid, reason: ExitReason) {
    if let Some(w) = table::lookup(watcher) {
        down_locked(&*w, monitor, pid, reason);
    }
}

/// Delivers an exit signal from a remote process to local process `to` (used by the
/// router). `link` marks signals travelling along a link: those act only if `to` still
/// holds the link to `from` (not after `unlink`), and take it away.
pub fn deliver_remote_exit(from: Pid, to: Pid, reason: ExitReason, link: bool) {
    if let Some(t) = table::lookup(to) {
        let via = if link { Via::Link } else { Via::Exit2 };
        deliver_exit(&t, from, reason, via);
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

/// Loom models of the delivery rules above (run with `scripts/loom`). They run the real
/// [`deliver_locked`], [`down_locked`], [`drop_link`] and [`forget_monitor`] over a
/// model process whose `meta` lock and signal queue are loom mutexes: every
/// interleaving of "B's exit reaches A" against "A unlinks / demonitors B" is explored.
/// Not modelled: the process table, the mailbox's spin lock (a loom mutex stands in for
/// it), waking a killed task.
#[cfg(all(test, orbit_loom))]
mod loom_tests {
    use loom::sync::{Arc, Mutex, MutexGuard};

    use super::*;

    struct Model {
        pid: Pid,
        meta: Mutex<Meta>,
        queue: Mutex<Vec<Signal>>,
    }

    impl SignalTarget for Model {
        type Guard<'a> = MutexGuard<'a, Meta>;
        fn target_pid(&self) -> Pid {
            self.pid
        }
        fn lock_meta(&self) -> Self::Guard<'_> {
            self.meta.lock().unwrap()
        }
        fn queue_signal(&self, s: Signal) -> bool {
            self.queue.lock().unwrap().push(s);
            true
        }
        fn unqueue_link_exit(&self, from: Pid) -> bool {
            let mut q = self.queue.lock().unwrap();
            let before = q.len();
            q.retain(|s| !matches!(s, Signal::Exit { from: f, link: true, .. } if *f == from));
            before != q.len()
        }
        fn unqueue_down(&self, r: Ref) -> bool {
            let mut q = self.queue.lock().unwrap();
            let before = q.len();
            q.retain(|s| !matches!(s, Signal::Down(d) if d.monitor == r));
            before != q.len()
        }
    }

    const A: Pid = Pid::NONE;

    fn b() -> Pid {
        Pid::local(7, 1)
    }

    /// A, linked to B (and monitoring it under `r`), trapping exits or not.
    fn model(trap_exit: bool, r: Ref) -> Arc<Model> {
        let mut meta = Meta {
            trap_exit,
            ..Meta::default()
        };
        meta.extra().links.push(b());
        meta.extra().monitors.push((r, b()));
        Arc::new(Model {
            pid: A,
            meta: Mutex::new(meta),
            queue: Mutex::new(Vec::new()),
        })
    }

    fn link_exits(a: &Model) -> usize {
        let q = a.queue.lock().unwrap();
        q.iter()
            .filter(|s| matches!(s, Signal::Exit { link: true, .. }))
            .count()
    }

    fn downs(a: &Model) -> usize {
        let q = a.queue.lock().unwrap();
        q.iter().filter(|s| matches!(s, Signal::Down(_))).count()
    }

    /// Trapping: once `unlink` returned, no link EXIT from B is queued, ever.
    #[test]
    fn loom_no_exit_message_after_unlink() {
        loom::model(|| {
            let a = model(true, Ref::make());
            let a2 = a.clone();
            let t = loom::thread::spawn(move || {
                deliver_locked(&*a2, b(), ExitReason::error("boom"), Via::Link);
            });
            drop_link(&*a, b());
            assert_eq!(link_exits(&a), 0);
            t.join().unwrap();
            assert_eq!(link_exits(&a), 0);
        });
    }

    /// Not trapping: a kill is decided after `unlink` returned only if it was decided
    /// before (never newly).
    #[test]
    fn loom_no_kill_after_unlink() {
        loom::model(|| {
            let a = model(false, Ref::make());
            let a2 = a.clone();
            let t = loom::thread::spawn(move || {
                deliver_locked(&*a2, b(), ExitReason::error("boom"), Via::Link);
            });
            drop_link(&*a, b());
            let killed_at_return = a.meta.lock().unwrap().killed;
            t.join().unwrap();
            assert_eq!(a.meta.lock().unwrap().killed, killed_at_return);
        });
    }

    /// `demonitor(r, true)`: no DOWN for `r` afterwards; `demonitor(r, false)`: none
    /// queued after it returned.
    #[test]
    fn loom_no_down_after_demonitor() {
        for flush in [true, false] {
            loom::model(move || {
                let r = Ref::make();
                let a = model(true, r);
                let a2 = a.clone();
                let t = loom::thread::spawn(move || {
                    down_locked(&*a2, r, b(), ExitReason::error("boom"));
                });
                forget_monitor(&*a, r);
                if flush {
                    a.unqueue_down(r);
                }
                let at_return = downs(&a);
                t.join().unwrap();
                assert_eq!(downs(&a), at_return);
                if flush {
                    assert_eq!(at_return, 0);
                }
            });
        }
    }

    /// Without unlink/demonitor, B's exit is delivered exactly once.
    #[test]
    fn loom_delivered_once_when_kept() {
        loom::model(|| {
            let r = Ref::make();
            let a = model(true, r);
            let a2 = a.clone();
            let t = loom::thread::spawn(move || {
                deliver_locked(&*a2, b(), ExitReason::error("boom"), Via::Link);
                down_locked(&*a2, r, b(), ExitReason::error("boom"));
            });
            deliver_locked(&*a, b(), ExitReason::error("boom"), Via::Link);
            t.join().unwrap();
            assert_eq!(link_exits(&a), 1);
            assert_eq!(downs(&a), 1);
        });
    }
}
