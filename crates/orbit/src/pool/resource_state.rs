//! The state of a [`ResourcePool`](super::ResourcePool) and its manager process.
//!
//! Resources are idle (in `idle`, oldest first), checked out (counted in `out`; the
//! resource itself travels with the client to the caller, whose guard gives it back
//! at check-in, or removes it if the caller panics or goes away), or being made
//! (`pending`: async inits, inits the manager will run, retries), or — in a lazy
//! pool — not yet made (`lazy_left`). Their sum is always `pool_size`.
//!
//! Retries and replacements after a panic wait [`INIT_RETRY`] in a task on tokio's
//! clock and stay counted in `pending` meanwhile; a stopped pool ignores them.
//!
//! A checkout served from the queue is delivered into the caller's slot, under the
//! lock, and the caller woken ([`super::handoff`]: no channel per caller). The caller,
//! on timeout, looks under the lock: still queued means it leaves the queue; not
//! queued means the delivery is already in its slot and it takes it. A caller that
//! goes away instead (its future dropped) looks the same way and gives a delivered
//! resource back as cancelled (its guard does this on drop, so a delivery is never
//! left unseen). Either way no resource is lost between the pool and a caller.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::handoff::Waiting;
use super::metrics::{Levels, Metrics, PoolStats};
use super::resource_pool::{
    Caller, Cancelled, CheckinResult, CheckoutError, CheckoutResult, InitWorker, PingResult,
    ResourcePoolOptions, ResourceWorker,
};
use super::{catch, panic_message, PoolError};
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::{Context, Handle, Spawn};
use crate::signal::Message;

/// How long a failed `init_worker` waits before it is tried again, and how long a
/// resource lost to a panicking callback waits before it is replaced.
pub(super) const INIT_RETRY: Duration = Duration::from_millis(100);

/// A resource checked out: the client for the caller's function and the worker state
/// the pool gets back at check-in.
pub(super) type Lent<M> = (<M as ResourceWorker>::Client, <M as ResourceWorker>::Worker);

type Delivery<M> = Result<Lent<M>, CheckoutError<<M as ResourceWorker>::Error>>;

/// What a queued caller is given: the resource and how long it waited (measured at the
/// hand-off, under the lock, for the wait histogram; the caller reuses it instead of
/// reading the clock again).
type Handoff<M> = Result<(Lent<M>, Duration), CheckoutError<<M as ResourceWorker>::Error>>;

/// What the pool keeps of a queued caller (its id and waker are kept by [`Waiting`]).
struct Waiter<M: ResourceWorker> {
    caller: Caller,
    command: M::Command,
    since: Instant,
}

/// Where [`Shared::take_or_queue`] left a caller.
enum Start<M: ResourceWorker> {
    /// Served (or failed) at once.
    Now(Result<(Caller, Lent<M>, Duration), CheckoutError<M::Error>>),
    /// Queued (its waker kept), waiting since the instant given.
    Queued(Caller, Instant),
}

struct Inner<M: ResourceWorker> {
    m: M,
    idle: VecDeque<(M::Worker, Instant)>,
    /// Checked-out resources (their worker states are with the callers' guards, so a
    /// checkout and its check-in touch no map).
    out: usize,
    waiting: Waiting<Waiter<M>, Handoff<M>>,
    /// Resources a lazy pool may still make on demand (`None`: not lazy).
    lazy_left: Option<usize>,
    pending: usize,
    /// Replacements of removed resources not made yet (counted in `pending` too): the
    /// operation that removed them makes them before it releases the lock, as
    /// NimblePool's replacement `init_worker` runs before the pool's next message; the
    /// manager's `Init` message makes any left over.
    inits_due: usize,
    next_id: u64,
    stopped: bool,
    metrics: Metrics,
}

impl<M: ResourceWorker> Inner<M> {
    fn record(&mut self) {
        let l = Levels {
            checked_out: self.out,
            available: self.idle.len(),
            overflow: 0,
            waiting: self.waiting.len(),
        };
        self.metrics.levels(l);
    }

    fn cancelled(&mut self, c: Cancelled) {
        let m = &mut self.m;
        if let Err(e) = catch(|| m.handle_cancelled(c)) {
            tracing::error!("ResourcePool handle_cancelled panicked: {e}");
        }
    }

    /// Runs `terminate_worker`; false if it panicked.
    fn terminate(&mut self, reason: &ExitReason, w: M::Worker) -> bool {
        let m = &mut self.m;
        match catch(|| m.terminate_worker(reason, w)) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("ResourcePool terminate_worker panicked: {e}");
                false
            }
        }
    }
}

/// Requests to the manager process.
pub(super) enum ManagerMsg {
    /// Make one resource (one `pending` is counted for it).
    Init,
    /// Stop the pool.
    Stop(ExitReason),
}

pub(super) struct Shared<M: ResourceWorker> {
    inner: Mutex<Inner<M>>,
    manager: OnceLock<Handle<ManagerMsg>>,
    rt: tokio::runtime::Handle,
    size: usize,
    idle_timeout: Option<Duration>,
    max_idle_pings: Option<usize>,
}

/// Starts the pool: builds the state, spawns the manager, waits for its first inits.
pub(super) async fn start<M: ResourceWorker>(
    m: M,
    opts: ResourcePoolOptions,
    link: bool,
) -> Result<Arc<Shared<M>>, PoolError> {
    if opts.pool_size == 0 {
        return Err(PoolError::InvalidOptions(
            "pool_size is 0, so no resource could ever be checked out; set pool_size >= 1",
        ));
    }
    if opts.worker_idle_timeout == Some(Duration::ZERO) {
        return Err(PoolError::InvalidOptions(
            "worker_idle_timeout is 0, which would ping without pause; use a positive duration or None",
        ));
    }
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| PoolError::Spawn(crate::Error::NoRuntime))?;
    let parent = if link {
        Some(crate::process::self_pid().ok_or(PoolError::Spawn(crate::Error::NotInProcess))?)
    } else {
        None
    };
    let label = opts.name.clone().unwrap_or_default();
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            m,
            idle: VecDeque::new(),
            out: 0,
            waiting: Waiting::new(),
            lazy_left: opts.lazy.then_some(opts.pool_size),
            pending: 0,
            inits_due: 0,
            next_id: 1,
            stopped: false,
            metrics: Metrics::new(label, opts.pool_size),
        }),
        manager: OnceLock::new(),
        rt,
        size: opts.pool_size,
        idle_timeout: opts.worker_idle_timeout,
        max_idle_pings: opts.max_idle_pings,
    });
    let (ack_tx, ack_rx) = oneshot::channel();
    let s = shared.clone();
    let mut spawn = Spawn::new().trap_exit().label("resource_pool");
    if link {
        spawn = spawn.link();
    }
    let handle = spawn
        .spawn(move |ctx: Context<ManagerMsg>| run(ctx, s, parent, ack_tx))
        .map_err(PoolError::Spawn)?;
    // Makes the pool reachable from its pid and name (`ResourcePool::whereis`); dropped
    // with the manager.
    let _ = crate::attachment::attach(handle.pid(), Box::new(shared.clone()));
    if let Some(name) = &opts.name {
        if let Err(e) = crate::registry::register(name, handle.pid()) {
            let _ = handle.send(ManagerMsg::Stop(ExitReason::Normal));
            return Err(PoolError::Spawn(e));
        }
    }
    match ack_rx.await {
        Ok(()) => Ok(shared),
        Err(_) => Err(PoolError::Stopped),
    }
}

impl<M: ResourceWorker> Shared<M> {
    pub(super) fn manager_pid(&self) -> Pid {
        self.manager.get().map(|h| h.pid()).unwrap_or(Pid::NONE)
    }

    /// Runs `init_worker` once: the resource becomes idle now, later (async), or after
    /// [`INIT_RETRY`] (the callback or its future panicked).
    fn init_one(self: &Arc<Self>, inn: &mut Inner<M>) {
        let m = &mut inn.m;
        match catch(|| m.init_worker()) {
            Ok(InitWorker::Ok(w)) => inn.idle.push_back((w, Instant::now())),
            Ok(InitWorker::Async(fut)) => {
                inn.pending += 1;
                let shared = self.clone();
                self.rt.spawn(async move {
                    match AssertUnwindSafe(fut).catch_unwind().await {
                        Ok(w) => shared.async_done(w),
                        Err(p) => {
                            let e = panic_message(p);
                            tracing::error!(
                                "ResourcePool async init_worker panicked: {e}; retrying in {INIT_RETRY:?}"
                            );
                            // Still counted in `pending`.
                            tokio::time::sleep(INIT_RETRY).await;
                            shared.retry_due(false);
                        }
                    }
                });
            }
            Err(e) => {
                tracing::error!(
                    "ResourcePool init_worker panicked: {e}; retrying in {INIT_RETRY:?}"
                );
                self.later(inn, false);
            }
        }
    }

    /// In [`INIT_RETRY`]: run `init_worker` again (`lazy_slot` false), or give a lazy
    /// pool its slot back to make on demand (`lazy_slot` true). Counted in `pending`
    /// meanwhile, so the pool's size holds and a stop cancels it.
    fn later(self: &Arc<Self>, inn: &mut Inner<M>, lazy_slot: bool) {
        inn.pending += 1;
        let shared = self.clone();
        self.rt.spawn(async move {
            tokio::time::sleep(INIT_RETRY).await;
            shared.retry_due(lazy_slot);
        });
    }

    /// A delayed init (or lazy slot) is due.
    fn retry_due(self: &Arc<Self>, lazy_slot: bool) {
        let mut inn = self.inner.lock();
        inn.pending -= 1;
        if inn.stopped {
            return;
        }
        match (&mut inn.lazy_left, lazy_slot) {
            (Some(n), true) => *n += 1,
            _ => self.init_one(&mut inn),
        }
        self.serve(&mut inn);
        inn.record();
    }

    /// An async init finished.
    fn async_done(self: &Arc<Self>, made: M::Worker) {
        let mut inn = self.inner.lock();
        inn.pending -= 1;
        if inn.stopped {
            inn.terminate(&ExitReason::Shutdown, made);
            return;
        }
        inn.idle.push_back((made, Instant::now()));
        self.serve(&mut inn);
        inn.record();
    }

    /// A resource is gone: make a fresh one (through the manager, so a checkout that
    /// keeps removing resources cannot loop), or let a lazy pool make it on demand.
    fn replace(&self, inn: &mut Inner<M>) {
        inn.metrics.restart();
        if let Some(n) = &mut inn.lazy_left {
            *n += 1;
            return;
        }
        inn.pending += 1;
        inn.inits_due += 1;
        let sent = self
            .manager
            .get()
            .is_some_and(|h| h.send(ManagerMsg::Init).is_ok());
        if !sent {
            inn.pending -= 1;
            inn.inits_due -= 1;
        }
    }

    /// Makes the replacements due when the operation began or during it (bounded by
    /// the count at entry, so a checkout that keeps removing cannot loop here: later
    /// ones wait for the manager), then serves the queue.
    fn run_due(self: &Arc<Self>, inn: &mut Inner<M>) {
        let n = inn.inits_due;
        if n == 0 || inn.stopped {
            return;
        }
        for _ in 0..n {
            if inn.inits_due == 0 {
                break;
            }
            inn.inits_due -= 1;
            inn.pending -= 1;
            self.init_one(inn);
        }
        self.serve(inn);
    }

    /// A resource lost to a panicking callback: replaced (or, lazy, made available to
    /// make again) only after [`INIT_RETRY`], so a callback that always panics costs
    /// one resource per 100 ms per slot instead of spinning.
    fn replace_after_panic(self: &Arc<Self>, inn: &mut Inner<M>) {
        inn.metrics.restart();
        let lazy = inn.lazy_left.is_some();
        self.later(inn, lazy);
    }

    /// Terminates and replaces a removed resource (after the delay if
    /// `terminate_worker` panicked).
    fn remove_worker(self: &Arc<Self>, inn: &mut Inner<M>, reason: &ExitReason, w: M::Worker) {
        if inn.terminate(reason, w) {
            self.replace(inn);
        } else {
            self.replace_after_panic(inn);
        }
    }

    /// Finds a resource for `command`: `None` when none is idle (the caller queues).
    fn next_for(
        self: &Arc<Self>,
        inn: &mut Inner<M>,
        command: &M::Command,
        caller: Caller,
    ) -> Option<Delivery<M>> {
        loop {
            if inn.idle.is_empty() {
                match &mut inn.lazy_left {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        self.init_one(inn);
                        if inn.idle.is_empty() {
                            return None;
                        }
                    }
                    _ => return None,
                }
            }
            let (w, since) = inn.idle.pop_front()?;
            let m = &mut inn.m;
            match catch(|| m.handle_checkout(command, caller, w)) {
                Ok(CheckoutResult::Ok { client, worker }) => {
                    inn.out += 1;
                    return Some(Ok((client, worker)));
                }
                Ok(CheckoutResult::Remove(reason, w)) => self.remove_worker(inn, &reason, w),
                Ok(CheckoutResult::Skip(e, w)) => {
                    inn.idle.push_front((w, since));
                    return Some(Err(CheckoutError::Skipped(e)));
                }
                // The resource was dropped with the panic. Only this checkout fails.
                Err(e) => {
                    tracing::error!(
                        "ResourcePool handle_checkout panicked: {e}; resource removed, replaced in {INIT_RETRY:?}"
                    );
                    self.replace_after_panic(inn);
                    return Some(Err(CheckoutError::Panicked(e)));
                }
            }
        }
    }

    /// Serves queued callers while resources are idle (or can be made lazily): each
    /// delivery goes into the caller's slot, and the caller is woken. (A caller that
    /// gave up or went away has left the queue itself, under the lock.)
    fn serve(self: &Arc<Self>, inn: &mut Inner<M>) {
        while !inn.waiting.is_empty() {
            let can_make = matches!(inn.lazy_left, Some(n) if n > 0);
            if inn.idle.is_empty() && !can_make {
                return;
            }
            let Some(e) = inn.waiting.pop_front() else {
                return;
            };
            match self.next_for(inn, &e.waiter.command, e.waiter.caller) {
                None => {
                    inn.waiting.push_front(e);
                    return;
                }
                Some(Ok(lent)) => {
                    let waited = e.waiter.since.elapsed();
                    inn.metrics.checkout_waited(waited);
                    inn.waiting.deliver(e, Ok((lent, waited)));
                }
                Some(Err(err)) => inn.waiting.deliver(e, Err(err)),
            }
        }
    }

    /// Takes a resource for `command`, waiting until the future `give_up` makes
    /// completes (then [`CheckoutError::Timeout`] with `timeout`, or with the time
    /// queued when `None`). `give_up` is only called (and its future polled) when the
    /// caller has to queue. A queued caller's wait is
    /// counted from `since` (the clock is read when it queues if `None`); the wait is
    /// returned with the resource (zero when served at once). The caller owns the
    /// resource's worker state from here: it goes back through [`Shared::checkin`], or
    /// [`CheckedOut`]'s drop.
    pub(super) async fn acquire<G: Future<Output = ()>, GF: FnOnce() -> G>(
        self: &Arc<Self>,
        command: M::Command,
        give_up: GF,
        timeout: Option<Duration>,
        since: Option<Instant>,
    ) -> Result<(Caller, Lent<M>, Duration), CheckoutError<M::Error>> {
        // Within the first poll: the task's waker is kept if the caller queues.
        let mut command = Some(command);
        let start = std::future::poll_fn(|cx| {
            Poll::Ready(match command.take() {
                Some(c) => self.take_or_queue(c, since, cx),
                None => Start::Now(Err(CheckoutError::Stopped)),
            })
        })
        .await;
        let (caller, since) = match start {
            Start::Now(r) => return r,
            Start::Queued(caller, since) => (caller, since),
        };
        let id = caller.checkout;
        let mut guard = Queued {
            shared: self,
            id,
            armed: true,
        };
        // The delivery, or `None` when `give_up` completed first. `give_up` is dropped
        // here, before the resource is used, so a timer it holds is free again for the
        // caller's work.
        let got = {
            // The first poll follows the queueing at once, with the waker just kept: a
            // delivery since then has woken the task, so the slot is looked at from the
            // second poll on.
            let mut looked = false;
            let mut give_up = std::pin::pin!(give_up());
            std::future::poll_fn(|cx| {
                // The delivery is looked at first: a delivery racing `give_up` wins.
                if looked {
                    if let Some(d) = self.look(id, cx) {
                        return Poll::Ready(Some(d));
                    }
                }
                looked = true;
                give_up.as_mut().poll(cx).map(|()| None)
            })
            .await
        };
        // Disarmed: from here every path takes the delivery or leaves the queue.
        guard.armed = false;
        let got = match got {
            Some(d) => d,
            None => {
                let mut inn = self.inner.lock();
                if inn.waiting.leave(id) {
                    inn.metrics.timeout();
                    inn.cancelled(Cancelled::Queued);
                    inn.record();
                    return Err(CheckoutError::Timeout(
                        timeout.unwrap_or_else(|| since.elapsed()),
                    ));
                }
                // Served before we looked: the delivery is in the slot.
                match inn.waiting.take(id) {
                    Some(d) => d,
                    None => return Err(CheckoutError::Stopped),
                }
            }
        };
        got.map(|(lent, waited)| (caller, lent, waited))
    }

    /// The first part of [`Shared::acquire`], under the lock: a resource now, or the
    /// caller queued behind those already waiting (first in, first out), to be woken
    /// through `cx`'s waker.
    fn take_or_queue(
        self: &Arc<Self>,
        command: M::Command,
        since: Option<Instant>,
        cx: &mut TaskContext<'_>,
    ) -> Start<M> {
        let mut inn = self.inner.lock();
        if inn.stopped {
            return Start::Now(Err(CheckoutError::Stopped));
        }
        let caller = Caller {
            pid: crate::self_pid(),
            checkout: inn.next_id,
        };
        inn.next_id += 1;
        // Nobody queued: take one now.
        if inn.waiting.is_empty() {
            if let Some(d) = self.next_for(&mut inn, &command, caller) {
                if d.is_ok() {
                    inn.metrics.checkout_now();
                }
                self.run_due(&mut inn);
                inn.record();
                return Start::Now(d.map(|lent| (caller, lent, Duration::ZERO)));
            }
        }
        let since = since.unwrap_or_else(Instant::now);
        let waiter = Waiter {
            caller,
            command,
            since,
        };
        inn.waiting
            .push(caller.checkout, waiter, cx.waker().clone());
        self.run_due(&mut inn);
        inn.record();
        Start::Queued(caller, since)
    }

    /// A queued caller's look at its slot (its task was woken): the delivery, or `None`
    /// (still queued: it is woken through `cx`'s waker from now on).
    fn look(&self, id: u64, cx: &mut TaskContext<'_>) -> Option<Handoff<M>> {
        let mut inn = self.inner.lock();
        let d = inn.waiting.take(id);
        if d.is_none() {
            inn.waiting.rewake(id, cx.waker());
        }
        d
    }

    /// Takes back the resource of `caller`'s checkout (`worker`: its state, as the
    /// checkout lent it).
    pub(super) fn checkin(self: &Arc<Self>, caller: Caller, checkin: M::Checkin, w: M::Worker) {
        let mut inn = self.inner.lock();
        inn.out = inn.out.saturating_sub(1);
        if inn.stopped {
            inn.terminate(&ExitReason::Shutdown, w);
            inn.record();
            return;
        }
        let m = &mut inn.m;
        // Whether `serve` ran already below (then the queue is empty or nothing is idle,
        // and a second look would find the same).
        let mut served = false;
        match catch(|| m.handle_checkin(checkin, caller, w)) {
            Ok(CheckinResult::Ok(w)) => {
                // The idle-since time is only read with an idle timeout, and only for a
                // resource that stays idle: with callers queued, `serve` below hands it
                // on at once, so the clock is read after that, if at all.
                let clock_now = self.idle_timeout.is_some() && inn.waiting.is_empty();
                let since = if clock_now {
                    Instant::now()
                } else {
                    inn.metrics.started()
                };
                inn.idle.push_back((w, since));
                if !clock_now && self.idle_timeout.is_some() {
                    self.serve(&mut inn);
                    served = true;
                    let placeholder = inn.metrics.started();
                    if inn.idle.iter().any(|(_, t)| *t == placeholder) {
                        let now = Instant::now();
                        for (_, t) in inn.idle.iter_mut().filter(|(_, t)| *t == placeholder) {
                            *t = now;
                        }
                    }
                }
            }
            Ok(CheckinResult::Remove(reason, w)) => self.remove_worker(&mut inn, &reason, w),
            Err(e) => {
                tracing::error!(
                    "ResourcePool handle_checkin panicked: {e}; resource removed, replaced in {INIT_RETRY:?}"
                );
                self.replace_after_panic(&mut inn);
            }
        }
        if !served {
            self.serve(&mut inn);
        }
        self.run_due(&mut inn);
        inn.record();
    }

    /// A checkout ended without a check-in (its function panicked or its future was
    /// dropped): remove its resource (`w`, its worker state), as NimblePool does.
    fn cancel_checked_out(self: &Arc<Self>, w: M::Worker, reason: ExitReason) {
        let mut inn = self.inner.lock();
        inn.out = inn.out.saturating_sub(1);
        inn.cancelled(Cancelled::CheckedOut);
        if inn.stopped {
            inn.terminate(&reason, w);
        } else {
            self.remove_worker(&mut inn, &reason, w);
            self.serve(&mut inn);
            self.run_due(&mut inn);
        }
        inn.record();
    }

    /// A queued caller went away: leave the queue, or give back what was delivered
    /// (in its slot: deliveries are made under the lock, so a caller not in the queue
    /// any more has its delivery in its slot).
    fn cancel_queued(self: &Arc<Self>, id: u64) {
        let delivered = {
            let mut inn = self.inner.lock();
            if inn.waiting.leave(id) {
                inn.metrics.timeout();
                inn.cancelled(Cancelled::Queued);
                inn.record();
                return;
            }
            inn.waiting.take(id)
        };
        if let Some(Ok(((client, w), _))) = delivered {
            drop(client);
            self.cancel_checked_out(
                w,
                ExitReason::error("checkout cancelled: the caller went away"),
            );
        }
    }

    /// Pings the resources idle for at least the idle timeout (up to `max_idle_pings`),
    /// oldest first. Returns a reason when a ping asked to stop the pool.
    fn check_idle(self: &Arc<Self>, timeout: Duration) -> Option<ExitReason> {
        let mut inn = self.inner.lock();
        let now = Instant::now();
        let mut budget = self.max_idle_pings.unwrap_or(usize::MAX);
        let mut kept = VecDeque::with_capacity(inn.idle.len());
        let mut stop = None;
        while let Some((w, since)) = inn.idle.pop_front() {
            if budget == 0 || now.duration_since(since) < timeout || stop.is_some() {
                inn.idle.push_front((w, since));
                break;
            }
            budget -= 1;
            let m = &mut inn.m;
            match catch(|| m.handle_ping(w)) {
                Ok(PingResult::Ok(w)) => kept.push_back((w, since)),
                Ok(PingResult::Remove(reason, w)) => self.remove_worker(&mut inn, &reason, w),
                Ok(PingResult::Stop(reason, w)) => {
                    kept.push_back((w, since));
                    stop = Some(ExitReason::shutdown_with(reason.to_string()));
                }
                Err(e) => {
                    tracing::error!(
                        "ResourcePool handle_ping panicked: {e}; resource removed, replaced in {INIT_RETRY:?}"
                    );
                    self.replace_after_panic(&mut inn);
                }
            }
        }
        kept.append(&mut inn.idle);
        inn.idle = kept;
        self.run_due(&mut inn);
        inn.record();
        stop
    }

    /// Stops taking checkouts: idle resources are terminated, waiters told.
    fn close(&self, reason: &ExitReason) {
        let mut inn = self.inner.lock();
        if inn.stopped {
            return;
        }
        inn.stopped = true;
        inn.waiting.deliver_all(|_| Err(CheckoutError::Stopped));
        let reason = super::shutdown_reason(reason);
        while let Some((w, _)) = inn.idle.pop_front() {
            inn.terminate(&reason, w);
        }
        inn.record();
    }

    pub(super) fn stats(&self) -> PoolStats {
        let inn = self.inner.lock();
        let mut s = PoolStats {
            size: self.size,
            max_overflow: 0,
            workers: inn.idle.len() + inn.out,
            available: inn.idle.len(),
            checked_out: inn.out,
            overflow: 0,
            waiting: inn.waiting.len(),
            ..Default::default()
        };
        inn.metrics.snapshot(&mut s);
        s
    }

    pub(super) fn is_running(&self) -> bool {
        !self.inner.lock().stopped
    }

    pub(super) async fn stop(
        &self,
        reason: ExitReason,
        timeout: Duration,
    ) -> Result<(), PoolError> {
        let Some(h) = self.manager.get() else {
            return Err(PoolError::Stopped);
        };
        if h.send(ManagerMsg::Stop(reason)).is_err() {
            return Err(PoolError::Stopped);
        }
        tokio::time::timeout(timeout, h.wait_exit())
            .await
            .map(|_| ())
            .map_err(|_| PoolError::Timeout(timeout))
    }
}

/// Leaves the queue (or gives back a delivered resource) if the waiting caller's future
/// is dropped while `armed`.
struct Queued<'a, M: ResourceWorker> {
    shared: &'a Arc<Shared<M>>,
    id: u64,
    armed: bool,
}

impl<M: ResourceWorker> Drop for Queued<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.cancel_queued(self.id);
        }
    }
}

/// Holds a checked-out resource's worker state: removes the resource unless the
/// checkout's function completed (then the worker is taken for the check-in).
pub(super) struct CheckedOut<'a, M: ResourceWorker> {
    pub(super) shared: &'a Arc<Shared<M>>,
    pub(super) worker: Option<M::Worker>,
}

impl<M: ResourceWorker> Drop for CheckedOut<'_, M> {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            let reason = if std::thread::panicking() {
                ExitReason::error("the checkout function panicked")
            } else {
                ExitReason::error("checkout cancelled: the caller went away")
            };
            self.shared.cancel_checked_out(w, reason);
        }
    }
}

/// Marks the pool stopped however the manager ends (also when killed).
struct CloseGuard<M: ResourceWorker>(Arc<Shared<M>>);

impl<M: ResourceWorker> Drop for CloseGuard<M> {
    fn drop(&mut self) {
        self.0.close(&ExitReason::Killed);
    }
}

/// The manager process: makes the first resources, then runs inits, idle pings and
/// the stop.
async fn run<M: ResourceWorker>(
    mut ctx: Context<ManagerMsg>,
    shared: Arc<Shared<M>>,
    parent: Option<Pid>,
    ack: oneshot::Sender<()>,
) -> ExitReason {
    let _ = shared.manager.set(ctx.handle());
    let guard = CloseGuard(shared.clone());
    {
        let mut inn = shared.inner.lock();
        if inn.lazy_left.is_none() {
            for _ in 0..shared.size {
                shared.init_one(&mut inn);
            }
        }
        inn.record();
    }
    let _ = ack.send(());
    let mut next_ping = shared.idle_timeout.map(|t| Instant::now() + t);
    let reason = loop {
        let msg = match next_ping {
            Some(at) => match tokio::time::timeout_at(at, ctx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    // `next_ping` is only set when the timeout is.
                    let t = shared.idle_timeout.unwrap_or(Duration::from_secs(1));
                    if let Some(r) = shared.check_idle(t) {
                        break r;
                    }
                    next_ping = Some(Instant::now() + t);
                    continue;
                }
            },
            None => ctx.recv().await,
        };
        match msg {
            Message::Msg(ManagerMsg::Init) => {
                let mut inn = shared.inner.lock();
                // Already made by the operation that removed its resource.
                if inn.inits_due == 0 {
                    continue;
                }
                inn.inits_due -= 1;
                inn.pending -= 1;
                if !inn.stopped {
                    shared.init_one(&mut inn);
                    shared.serve(&mut inn);
                    inn.record();
                }
            }
            Message::Msg(ManagerMsg::Stop(r)) => break r,
            // The parent (a supervisor) stops the pool with an exit signal.
            Message::Exit { from, reason } if Some(from) == parent => break reason,
            Message::Exit { .. } | Message::Down(_) => {}
        }
    };
    shared.close(&reason);
    drop(guard);
    reason
}
