//! Starting a spawned process's task: directly, or in batches during a burst of spawns.
//!
//! A spawn creates the process (its control block, its pid in the table, its body)
//! and then hands the body's task to tokio. That last step, `tokio::spawn`, is the
//! larger part of a spawn: it allocates the task, links it into the
//! runtime's task list, queues it, and, when the other worker has parked, wakes it
//! with a system call. When one task spawns many processes in a row, those steps run
//! one after another on the spawner's core while the other core mostly sleeps.
//!
//! So from the fifth spawn in a row by the same tokio task on a thread (for a process:
//! within one poll of it), the new process's task is not handed to tokio at once but
//! put on a batch, and the batch's *starter*, a task of its own, hands everything on
//! it to tokio when it runs, usually on the other worker, which steals it. Later spawns
//! join the batch until its starter takes it or it holds `MAX_BATCH` (256) tasks; the
//! next spawn opens a new one. The spawner then pays for creating the process, one
//! short lock and a box, and the other core does the rest in parallel. (Capped, the
//! batches start as they come rather than in one long run at the end: in interleaved
//! runs of a million spawns, the time until every body had begun fell by a fifth, and
//! memory per process by about 10 bytes.)
//!
//! What a process sees does not change: it exists (pid, mailbox, links, monitors,
//! name) when `spawn` returns, and its body runs once a worker gets to it, as with a
//! direct start; its messages wait in the mailbox meanwhile. Order of starts within a
//! batch is spawn order. If the runtime shuts down before a starter runs, dropping the
//! starter drops its processes' tasks unpolled, and each ends as killed, as a task
//! dropped by tokio does. Single spawns and spawns from outside a tokio task start
//! directly, with no extra hop. A batch belongs to the runtime it was opened on: a task
//! that has entered another runtime's context opens a new batch there.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::spin::SpinLock;

/// A process task not yet handed to tokio.
pub(crate) trait Pending: Send {
    /// Hands the task to tokio (called from a task on the runtime).
    fn start(self: Box<Self>);
}

impl<F> Pending for F
where
    F: Future<Output = ()> + Send + 'static,
{
    fn start(self: Box<Self>) {
        // Not kept: the process reaches its task through the waker its first poll
        // registers (see `process::Run`).
        drop(tokio::spawn(*self));
    }
}

/// Spawns within one poll of a task before they are batched.
const DIRECT: u32 = 4;

/// The most tasks on one batch; the next spawn opens another.
const MAX_BATCH: usize = 256;

/// Processes waiting for their starter.
struct Batch {
    /// The runtime the starter was spawned on: only spawns onto that runtime join.
    rt: tokio::runtime::Id,
    /// `None` once the starter has taken them: later spawns open a new batch.
    pending: SpinLock<Option<Vec<Box<dyn Pending>>>>,
}

impl Batch {
    /// Adds `task` unless the starter already took the batch (then gives it back).
    fn push(&self, task: Box<dyn Pending>) -> Result<(), Box<dyn Pending>> {
        match self.pending.lock().as_mut() {
            Some(v) if v.len() < MAX_BATCH => {
                v.push(task);
                Ok(())
            }
            _ => Err(task),
        }
    }

    /// Takes every waiting task and closes the batch.
    fn take(&self) -> Vec<Box<dyn Pending>> {
        self.pending.lock().take().unwrap_or_default()
    }
}

/// The task that starts a batch.
struct Starter(Arc<Batch>);

impl Future for Starter {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        for task in self.0.take() {
            task.start();
        }
        Poll::Ready(())
    }
}

impl Drop for Starter {
    fn drop(&mut self) {
        // Dropped unpolled (runtime shutdown): the tasks are dropped unpolled too, and
        // each process ends as killed. After a poll this takes nothing.
        drop(self.0.take());
    }
}

thread_local! {
    /// The tokio task that spawned last on this thread and how many times in a row.
    static SPAWNER: Cell<Option<(tokio::task::Id, u32)>> = const { Cell::new(None) };
    /// This thread's open batch, if any.
    static OPEN: Cell<Option<Arc<Batch>>> = const { Cell::new(None) };
}

/// Starts `task` on `rt`: directly, or on this thread's batch during a burst (see the
/// module docs).
pub(crate) fn start<F>(rt: &tokio::runtime::Handle, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    // Only inside a tokio task: its id tells one burst from another, and a starter it
    // spawns runs on the same runtime.
    let Some(id) = tokio::task::try_id() else {
        drop(rt.spawn(task));
        return;
    };
    // A thread being torn down has no thread-locals left: start directly then.
    let count = SPAWNER
        .try_with(|s| {
            let count = match s.get() {
                Some((last, n)) if last == id => n.saturating_add(1),
                _ => 1,
            };
            s.set(Some((id, count)));
            count
        })
        .unwrap_or(0);
    if count <= DIRECT {
        drop(rt.spawn(task));
        return;
    }
    let Ok(open) = OPEN.try_with(Cell::take) else {
        drop(rt.spawn(task));
        return;
    };
    let mut task: Box<dyn Pending> = Box::new(task);
    // A task may have entered another runtime's context; its spawns belong there.
    let rt_id = rt.id();
    if let Some(batch) = open.filter(|b| b.rt == rt_id) {
        match batch.push(task) {
            Ok(()) => {
                OPEN.set(Some(batch));
                return;
            }
            Err(back) => task = back,
        }
    }
    let batch = Arc::new(Batch {
        rt: rt_id,
        pending: SpinLock::new(Some(vec![task])),
    });
    OPEN.set(Some(batch.clone()));
    drop(rt.spawn(Starter(batch)));
}

/// Ends the current burst: called after each poll of a process, so its next poll
/// starts its first spawns directly again.
#[inline]
pub(crate) fn end_burst() {
    let _ = SPAWNER.try_with(|s| s.set(None));
}
