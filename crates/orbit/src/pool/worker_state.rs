//! The state of a [`Pool`](super::Pool) and its manager process.
//!
//! Who does what:
//! - callers, under the state lock: take an idle worker, reserve an overflow slot, join
//!   the waiting queue, leave it on timeout, and check workers in (which serves the
//!   first waiter, or stops a surplus overflow worker, or makes the worker idle);
//! - the manager process, which links every worker and traps exits: starts workers
//!   (the initial `size`, overflow workers on request, replacements), notices workers
//!   that die, stops dismissed workers, and on stop fails every waiter.
//!
//! Accounting invariant (checked by the tests through `status`): every live worker is
//! in exactly one of `idle` or checked out under exactly one lease id, and
//! `live workers = size + overflow` except while a replacement or an overflow worker is
//! being started.
//!
//! The manager also keeps the pid of every worker it started until that worker's EXIT
//! arrives, whether the state still holds it or not (dismissed overflow workers are
//! removed from the state at check-in); on stop it signals all of them and waits for
//! every exit, so `Pool::stop` returns with no worker running.
//!
//! A lease handed to a waiter travels through a oneshot channel. If the waiter is gone
//! the send fails and gives the lease back at once; if the waiter goes away after the
//! send, the lease is dropped with the channel and its `Drop` checks it in. Either way
//! no worker can be lost in the hand-off (poolboy's checkout-timeout races).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::checkout::{HandOff, Queue};
use super::metrics::{Levels, Metrics};
use super::worker_pool::{CheckoutOrder, Lease};
use super::{CheckinError, PoolError};
use crate::exit::ExitReason;
use crate::gen_server::{self, GenServer, ServerRef, StartError, StartOptions};
use crate::pid::Pid;
use crate::process::{Context, Handle};
use crate::signal::Message;
use crate::sync::Mutex;

/// A worker that exits sooner than this after its start is replaced only this long
/// after that start, so a worker that crashes on every start costs one start per
/// 100 ms per slot instead of a restart loop (the `ResourcePool`'s retry delay).
pub(super) const RESTART_DELAY: Duration = Duration::from_millis(100);

/// Workers started and not yet seen exiting, with their start times.
type Alive = HashMap<Pid, Instant>;

/// Where a waiting caller receives its worker (or why it will not get one).
pub(super) type Reply<W> = oneshot::Sender<Result<Lease<W>, PoolError>>;

/// Builds a new worker's state.
pub(super) type Factory<W> = Arc<dyn Fn() -> W + Send + Sync>;

pub(super) struct Shared<W: GenServer> {
    pub(super) state: Mutex<State<W>>,
    pub(super) manager: OnceLock<Handle<ManagerMsg<W>>>,
    pub(super) size: usize,
    pub(super) max_overflow: usize,
    /// How long a stopping pool waits for a worker to exit before killing it.
    pub(super) shutdown: Duration,
}

struct Slot<W: GenServer> {
    pid: Pid,
    /// The worker's reference; moved into the lease while checked out, so a checkout
    /// and check-in touch no reference count.
    worker: Option<ServerRef<W>>,
    /// The id of the lease holding it, 0 while idle.
    lease: u64,
}

/// A checked-out worker: its slot, the lease id and the worker's reference.
pub(super) struct Out<W: GenServer> {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) worker: ServerRef<W>,
}

pub(super) struct State<W: GenServer> {
    slots: Vec<Option<Slot<W>>>,
    free: Vec<usize>,
    by_pid: HashMap<Pid, usize>,
    /// The idle workers and the waiting callers (the part the loom model checks).
    queue: Queue<Reply<W>>,
    pub(super) overflow: usize,
    pub(super) checked_out: usize,
    next_id: u64,
    pub(super) stopped: bool,
    pub(super) metrics: Metrics,
}

/// What a checkout attempt found.
pub(super) enum Attempt<W: GenServer> {
    Got(Out<W>),
    /// Queued as waiter `id`.
    Wait(u64, oneshot::Receiver<Result<Lease<W>, PoolError>>),
    /// An overflow worker is being started for this caller.
    Overflow(oneshot::Receiver<Result<Lease<W>, PoolError>>),
    Full,
    Stopped,
}

impl<W: GenServer> State<W> {
    pub(super) fn new(metrics: Metrics, strategy: CheckoutOrder) -> Self {
        State {
            slots: Vec::new(),
            free: Vec::new(),
            by_pid: HashMap::new(),
            queue: Queue::new(strategy == CheckoutOrder::Lifo),
            overflow: 0,
            checked_out: 0,
            next_id: 1,
            stopped: false,
            metrics,
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn add(&mut self, worker: ServerRef<W>) -> usize {
        let pid = worker.pid();
        let slot = Slot {
            pid,
            worker: Some(worker),
            lease: 0,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.by_pid.insert(pid, i);
        i
    }

    fn remove(&mut self, i: usize) -> Option<Slot<W>> {
        let s = self.slots.get_mut(i)?.take()?;
        self.by_pid.remove(&s.pid);
        self.free.push(i);
        Some(s)
    }

    pub(super) fn available(&self) -> usize {
        self.queue.idle()
    }

    pub(super) fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    pub(super) fn live(&self) -> usize {
        self.by_pid.len()
    }

    pub(super) fn worker_pids(&self) -> Vec<Pid> {
        self.slots.iter().flatten().map(|s| s.pid).collect()
    }

    fn record(&mut self) {
        let l = Levels {
            checked_out: self.checked_out,
            available: self.queue.idle(),
            overflow: self.overflow,
            waiting: self.queue.waiting(),
        };
        self.metrics.levels(l);
    }
}

impl<W: GenServer> Shared<W> {
    fn manager(&self) -> Option<&Handle<ManagerMsg<W>>> {
        self.manager.get()
    }

    /// Marks slot `i` checked out under a new lease id.
    fn take(st: &mut State<W>, i: usize) -> Out<W> {
        let id = st.id();
        // Callers pass slots taken from `idle` or just added: they exist and hold their
        // worker (it leaves only while checked out).
        let slot = st.slots[i].as_mut().expect("a free slot exists");
        slot.lease = id;
        let worker = slot.worker.take().expect("a free slot holds its worker");
        st.checked_out += 1;
        Out {
            slot: i,
            id,
            worker,
        }
    }

    fn lease(self: &Arc<Self>, st: &mut State<W>, i: usize) -> Lease<W> {
        Lease::new(self.clone(), Self::take(st, i))
    }

    /// Undoes [`lease`](Self::lease) for a lease that could not be delivered.
    fn unlease(st: &mut State<W>, lease: Lease<W>) -> usize {
        let out = lease.into_out();
        if let Some(Some(s)) = st.slots.get_mut(out.slot) {
            s.lease = 0;
            s.worker = Some(out.worker);
        }
        st.checked_out -= 1;
        out.slot
    }

    pub(super) fn try_checkout(self: &Arc<Self>, block: bool) -> Attempt<W> {
        let mut st = self.state.lock();
        if st.stopped {
            return Attempt::Stopped;
        }
        if let Some(i) = st.queue.pop_idle() {
            let out = Self::take(&mut st, i);
            st.metrics.checkout_now();
            st.record();
            return Attempt::Got(out);
        }
        if st.overflow < self.max_overflow {
            let Some(manager) = self.manager() else {
                return Attempt::Stopped;
            };
            st.overflow += 1;
            let (tx, rx) = oneshot::channel();
            let since = Instant::now();
            if manager
                .send(ManagerMsg::StartOverflow { tx, since })
                .is_err()
            {
                st.overflow -= 1;
                return Attempt::Stopped;
            }
            st.record();
            return Attempt::Overflow(rx);
        }
        if !block {
            st.metrics.full();
            return Attempt::Full;
        }
        let (tx, rx) = oneshot::channel();
        let id = st.queue.enqueue(tx, Instant::now());
        st.record();
        Attempt::Wait(id, rx)
    }

    /// A waiter gave up (timeout, or its caller went away). Leaves the queue if still
    /// in it; a lease already sent to it comes back when its channel is dropped.
    pub(super) fn cancel_wait(&self, id: u64) {
        let mut st = self.state.lock();
        st.metrics.timeout();
        if st.queue.cancel(id) {
            st.record();
        }
    }

    /// A checkout that never reached the queue gave up (overflow start too slow).
    pub(super) fn count_timeout(&self) {
        self.state.lock().metrics.timeout();
    }

    /// Checks in a checked-out worker.
    pub(super) fn checkin(self: &Arc<Self>, out: Out<W>) -> Result<(), CheckinError> {
        let dismiss = {
            let mut st = self.state.lock();
            if st.stopped {
                return Err(CheckinError::Stopped(out.worker.pid()));
            }
            match st.slots.get_mut(out.slot) {
                Some(Some(s)) if s.lease == out.id => {
                    s.lease = 0;
                    s.worker = Some(out.worker);
                }
                _ => return Err(CheckinError::AlreadyReturned(out.worker.pid())),
            }
            st.checked_out -= 1;
            let d = self.release(&mut st, out.slot);
            st.record();
            d
        };
        if let (Some(pid), Some(m)) = (dismiss, self.manager()) {
            let _ = m.send(ManagerMsg::Dismiss(pid));
        }
        Ok(())
    }

    /// Slot `i` is free (not checked out): hand it to the first waiter still there, or
    /// stop it if overflow workers are out and nobody waits, or make it idle. Returns
    /// the pid of a worker to stop.
    fn release(self: &Arc<Self>, st: &mut State<W>, i: usize) -> Option<Pid> {
        // Moved out for the hand-off, which leases slots in the rest of the state (an
        // empty queue holds no allocation).
        let mut queue = std::mem::replace(&mut st.queue, Queue::new(true));
        let handed = queue.hand_off(i, |tx, i| {
            let lease = self.lease(st, i);
            match tx.send(Ok(lease)) {
                Ok(()) => Ok(()),
                // The waiter left after its last look at the queue: next one.
                Err(Ok(lease)) => Err(Self::unlease(st, lease)),
                Err(Err(_)) => unreachable!("we sent Ok"),
            }
        });
        st.queue = queue;
        match handed {
            HandOff::Waiter { since } => {
                st.metrics.checkout_waited(since.elapsed());
                None
            }
            HandOff::Nobody(i) if st.overflow > 0 => {
                st.overflow -= 1;
                st.remove(i).map(|s| s.pid)
            }
            HandOff::Nobody(i) => {
                st.queue.push_idle(i);
                None
            }
        }
    }

    /// Stops the pool: no more checkouts; waiters get `Stopped`. Returns the workers.
    pub(super) fn close(&self) -> Vec<Pid> {
        let mut st = self.state.lock();
        st.stopped = true;
        for w in st.queue.close() {
            let _ = w.tx.send(Err(PoolError::Stopped));
        }
        st.by_pid.clear();
        st.free.clear();
        st.checked_out = 0;
        st.overflow = 0;
        let workers = st.slots.drain(..).flatten().map(|s| s.pid).collect();
        st.record();
        workers
    }
}

/// Requests to the manager process.
pub(super) enum ManagerMsg<W: GenServer> {
    /// Start an overflow worker (its slot is already counted) for this caller.
    StartOverflow { tx: Reply<W>, since: Instant },
    /// Stop this surplus worker (already removed from the state).
    Dismiss(Pid),
    /// Start a replacement held back by [`RESTART_DELAY`].
    Replace,
    /// Stop the pool.
    Stop(ExitReason),
}

/// Marks the pool stopped however the manager ends (also when killed).
struct CloseGuard<W: GenServer>(Arc<Shared<W>>);

impl<W: GenServer> Drop for CloseGuard<W> {
    fn drop(&mut self) {
        self.0.close();
    }
}

async fn start_worker<W: GenServer>(factory: &Factory<W>) -> Result<ServerRef<W>, StartError> {
    let opts = StartOptions {
        link: true,
        ..Default::default()
    };
    gen_server::start_with(factory(), opts).await
}

/// The manager process: starts the workers, acks, then serves requests; on stop it
/// stops every worker it ever started that is still running and waits for each exit.
pub(super) async fn run<W: GenServer>(
    mut ctx: Context<ManagerMsg<W>>,
    shared: Arc<Shared<W>>,
    factory: Factory<W>,
    parent: Option<Pid>,
    ack: oneshot::Sender<Result<(), PoolError>>,
) -> ExitReason {
    let _ = shared.manager.set(ctx.handle());
    let _guard = CloseGuard(shared.clone());
    // Every worker started and not yet seen exiting (its EXIT: the manager links every
    // worker and traps exits), whether the state still holds it or not: dismissed
    // workers stay here until they are gone.
    let mut alive = Alive::new();
    for _ in 0..shared.size {
        match start_worker(&factory).await {
            Ok(w) => {
                alive.insert(w.pid(), Instant::now());
                let mut st = shared.state.lock();
                let i = st.add(w);
                st.queue.push_new(i);
                st.record();
            }
            Err(e) => {
                shutdown(&mut ctx, &shared, &mut alive, &ExitReason::Shutdown).await;
                let _ = ack.send(Err(PoolError::WorkerStart(e)));
                return ExitReason::Normal;
            }
        }
    }
    let _ = ack.send(Ok(()));
    let reason = loop {
        match ctx.recv().await {
            Message::Msg(ManagerMsg::StartOverflow { tx, since }) => {
                if let Err(e) = start_overflow(&shared, &factory, &mut alive, tx, since).await {
                    break e;
                }
            }
            Message::Msg(ManagerMsg::Dismiss(pid)) => {
                // Sent by the parent, so even a worker trapping exits stops (and runs
                // its terminate). It stays in `alive` until its EXIT arrives.
                crate::signal::exit(pid, ExitReason::Shutdown);
            }
            Message::Msg(ManagerMsg::Stop(reason)) => break reason,
            Message::Exit { from, reason } if Some(from) == parent => break reason,
            Message::Msg(ManagerMsg::Replace) => {
                if let Err(e) = replace(&shared, &factory, &mut alive).await {
                    break e;
                }
            }
            Message::Exit { from, reason } => {
                let started = alive.remove(&from);
                let r = worker_exit(&shared, &factory, &mut alive, from, started, reason).await;
                if let Err(e) = r {
                    break e;
                }
            }
            Message::Down(_) => {}
        }
    };
    let stop = super::shutdown_reason(&reason);
    shutdown(&mut ctx, &shared, &mut alive, &stop).await;
    reason
}

/// Stops the pool (no more checkouts, waiters told) and every worker in `alive`: each
/// gets `reason` from its parent, then `kill` if it has not exited within the pool's
/// `shutdown` grace (poolboy's supervisor: `shutdown` 5000, then `kill`). Returns once
/// every worker's exit has arrived (or, for a worker that does not even die when
/// killed, after a second grace period, with an error logged).
async fn shutdown<W: GenServer>(
    ctx: &mut Context<ManagerMsg<W>>,
    shared: &Shared<W>,
    alive: &mut Alive,
    reason: &ExitReason,
) {
    // Every pid the state holds is in `alive` too.
    let _ = shared.close();
    for &pid in alive.keys() {
        crate::signal::exit(pid, reason.clone());
    }
    if await_exits(ctx, alive, shared.shutdown).await {
        return;
    }
    tracing::warn!(
        workers = alive.len(),
        grace = ?shared.shutdown,
        "pool workers did not stop within the shutdown grace; killing them"
    );
    for &pid in alive.keys() {
        crate::signal::exit(pid, ExitReason::Kill);
    }
    if !await_exits(ctx, alive, shared.shutdown).await {
        tracing::error!(
            workers = ?alive.keys().collect::<Vec<_>>(),
            "pool workers still running after kill (blocked without an await point?)"
        );
    }
}

/// Receives until every pid in `alive` has exited or `grace` has passed (false).
/// Requests arriving meanwhile are dropped: an overflow request's caller then gets
/// `Stopped`.
async fn await_exits<W: GenServer>(
    ctx: &mut Context<ManagerMsg<W>>,
    alive: &mut Alive,
    grace: Duration,
) -> bool {
    let deadline = Instant::now() + grace;
    while !alive.is_empty() {
        match tokio::time::timeout_at(deadline, ctx.recv()).await {
            Ok(Message::Exit { from, .. }) => {
                alive.remove(&from);
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    true
}

async fn start_overflow<W: GenServer>(
    shared: &Arc<Shared<W>>,
    factory: &Factory<W>,
    alive: &mut Alive,
    tx: Reply<W>,
    since: Instant,
) -> Result<(), ExitReason> {
    let started = start_worker(factory).await;
    if let Ok(w) = &started {
        alive.insert(w.pid(), Instant::now());
    }
    let mut st = shared.state.lock();
    if st.stopped {
        // Not reached (only the manager stops the pool); the stop would reap it.
        return Ok(());
    }
    let dismiss = match started {
        Ok(w) => {
            let i = st.add(w);
            let lease = shared.lease(&mut st, i);
            match tx.send(Ok(lease)) {
                Ok(()) => {
                    st.metrics.checkout_waited(since.elapsed());
                    None
                }
                // The caller gave up while the worker started: it goes to the pool.
                Err(back) => match back {
                    Ok(lease) => {
                        let i = Shared::unlease(&mut st, lease);
                        shared.release(&mut st, i)
                    }
                    Err(_) => unreachable!("we sent Ok"),
                },
            }
        }
        Err(e) => {
            st.overflow -= 1;
            let _ = tx.send(Err(PoolError::WorkerStart(e)));
            None
        }
    };
    st.record();
    drop(st);
    if let Some(pid) = dismiss {
        crate::signal::exit(pid, ExitReason::Shutdown);
    }
    Ok(())
}

/// A linked worker exited: forget it and, as poolboy, start a replacement when callers
/// wait or the pool is not overflowing. A replacement that cannot start stops the pool
/// (poolboy crashes and lets its supervisor restart it).
async fn worker_exit<W: GenServer>(
    shared: &Arc<Shared<W>>,
    factory: &Factory<W>,
    alive: &mut Alive,
    pid: Pid,
    started: Option<Instant>,
    reason: ExitReason,
) -> Result<(), ExitReason> {
    {
        let mut st = shared.state.lock();
        let Some(&i) = st.by_pid.get(&pid) else {
            // A dismissed worker, or a stray link.
            return Ok(());
        };
        tracing::debug!(%pid, %reason, "pool worker exited");
        if let Some(s) = st.remove(i) {
            if s.lease != 0 {
                st.checked_out -= 1;
            } else {
                st.queue.remove_idle(i);
            }
        }
        if st.queue.waiting() == 0 && st.overflow > 0 {
            st.overflow -= 1;
            st.record();
            return Ok(());
        }
        st.record();
    }
    // A worker that died young: hold its replacement back (a crash loop).
    if let Some(at) = started.map(|t| t + RESTART_DELAY) {
        if Instant::now() < at {
            if let Some(m) = shared.manager().cloned() {
                tracing::warn!(%pid, "pool worker exited within {RESTART_DELAY:?} of its start; replacing it in {RESTART_DELAY:?}");
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let _ = m.send(ManagerMsg::Replace);
                });
                return Ok(());
            }
        }
    }
    replace(shared, factory, alive).await
}

/// Starts a replacement worker and gives it to a waiter or the idle list.
async fn replace<W: GenServer>(
    shared: &Arc<Shared<W>>,
    factory: &Factory<W>,
    alive: &mut Alive,
) -> Result<(), ExitReason> {
    let w = start_worker(factory)
        .await
        .map_err(|e| ExitReason::error(format!("pool worker replacement failed to start: {e}")))?;
    alive.insert(w.pid(), Instant::now());
    let dismiss = {
        let mut st = shared.state.lock();
        if st.stopped {
            return Ok(());
        }
        st.metrics.restart();
        let i = st.add(w);
        let d = shared.release(&mut st, i);
        st.record();
        d
    };
    if let Some(pid) = dismiss {
        crate::signal::exit(pid, ExitReason::Shutdown);
    }
    Ok(())
}
