//! Introspection: what a process is doing, to find the one that is the bottleneck.
//!
//! [`process_info`] is Erlang's `process_info/1`: mailbox length, messages in and
//! handled, handling time, links, monitors, name, trap_exit, and a state-size estimate
//! where the behaviour reports one. [`top`] ranks processes by mailbox length;
//! [`each_process`] reads every process's counters without locks, for rankings by any column.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::pid::Pid;
use crate::process::ProcessHandle;
use crate::table;

/// What a process is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessStatus {
    /// Handling a message or otherwise running.
    Running,
    /// Waiting for a message, nothing queued.
    Waiting,
    /// Told to exit; the exit is landing.
    Exiting,
}

/// A snapshot of one process (Erlang's `process_info/1`).
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// The process.
    pub pid: Pid,
    /// Registered name, if any.
    pub registered_name: Option<Arc<str>>,
    /// A label given at spawn (behaviours set their kind, e.g. `gen_server`).
    pub label: Option<&'static str>,
    /// Messages waiting in the mailbox (the one being handled is not waiting).
    pub message_queue_len: u64,
    /// Messages ever received.
    pub messages_in: u64,
    /// Messages taken from the mailbox to be handled (the one in progress counts).
    pub messages_handled: u64,
    /// Total time spent handling messages.
    pub handling_time: Duration,
    /// Mean handling time per message.
    pub mean_handling_time: Duration,
    /// Handlers that ran longer than the long-handler threshold.
    pub long_handlers: u32,
    /// Running, waiting or exiting.
    pub status: ProcessStatus,
    /// Linked processes.
    pub links: Vec<Pid>,
    /// Processes this process monitors.
    pub monitors: Vec<Pid>,
    /// Processes monitoring this process.
    pub monitored_by: Vec<Pid>,
    /// Whether exit signals become messages.
    pub trap_exit: bool,
    /// Size of the behaviour's state in bytes, where it reports one.
    pub state_size: Option<u64>,
}

/// A snapshot of `pid`, or `None` when it is not a live local process.
pub fn process_info(pid: Pid) -> Option<ProcessInfo> {
    table::lookup(pid).map(|p| snapshot(&p))
}

pub(crate) fn snapshot(p: &Arc<dyn ProcessHandle>) -> ProcessInfo {
    let core = p.core();
    let (trap_exit, exiting, links, monitors, monitored_by, name, label) = {
        let m = core.meta.lock();
        let e = m.extra.as_deref();
        (
            m.trap_exit,
            m.killed || m.dead,
            e.map(|e| e.links.clone()).unwrap_or_default(),
            e.map(|e| e.monitors.iter().map(|(_, p)| *p).collect())
                .unwrap_or_default(),
            e.map(|e| e.watchers.iter().map(|(_, p)| *p).collect())
                .unwrap_or_default(),
            e.and_then(|e| e.name.clone()),
            e.and_then(|e| e.label),
        )
    };
    let messages_in = p.messages_in();
    let handled = core.handled.load(Ordering::Relaxed);
    let handling_time = Duration::from_nanos(core.busy_ns.load(Ordering::Relaxed));
    let queue = messages_in.saturating_sub(handled);
    let size = core.state_size.load(Ordering::Relaxed);
    ProcessInfo {
        pid: core.pid,
        registered_name: name,
        label,
        message_queue_len: queue,
        messages_in,
        messages_handled: handled,
        handling_time,
        mean_handling_time: if handled == 0 {
            Duration::ZERO
        } else {
            handling_time / handled.min(u32::MAX as u64) as u32
        },
        long_handlers: core.long_handlers.load(Ordering::Relaxed),
        status: if exiting {
            ProcessStatus::Exiting
        } else if queue > 0 {
            ProcessStatus::Running
        } else {
            ProcessStatus::Waiting
        },
        links,
        monitors,
        monitored_by,
        trap_exit,
        state_size: (size != u64::MAX).then_some(size),
    }
}

/// The `n` processes with the longest mailboxes, longest first (ties by messages in).
pub fn top(n: usize) -> Vec<ProcessInfo> {
    top_and_count(n).0
}

/// [`top`] and the number of live processes, from one pass over the process table.
pub(crate) fn top_and_count(n: usize) -> (Vec<ProcessInfo>, usize) {
    let mut all: Vec<(u64, u64, Arc<dyn ProcessHandle>)> = Vec::new();
    table::for_each(|p| all.push((p.mailbox_len(), p.messages_in(), p.clone())));
    let count = all.len();
    let order = |a: &(u64, u64, Arc<dyn ProcessHandle>), b: &(u64, u64, Arc<dyn ProcessHandle>)| {
        b.0.cmp(&a.0).then(b.1.cmp(&a.1))
    };
    // Select the `n` first in O(count), then sort only those (a million processes and a
    // sampler asking for the top 5 must not sort a million entries every tick).
    if n == 0 {
        all.clear();
    } else if all.len() > n {
        all.select_nth_unstable_by(n - 1, order);
        all.truncate(n);
    }
    all.sort_by(order);
    (all.iter().map(|(_, _, p)| snapshot(p)).collect(), count)
}

/// The counters of one process, read without taking any lock (for ranking many
/// processes: [`each_process`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessCounters {
    /// The process.
    pub pid: Pid,
    /// Messages waiting in the mailbox.
    pub message_queue_len: u64,
    /// Messages ever received.
    pub messages_in: u64,
    /// Messages taken from the mailbox to be handled.
    pub messages_handled: u64,
    /// Total time spent handling messages, in nanoseconds.
    pub handling_ns: u64,
    /// Handlers that ran longer than the long-handler threshold.
    pub long_handlers: u32,
    /// Size of the behaviour's state in bytes, where it reports one.
    pub state_size: Option<u64>,
}

/// Calls `f` with the counters of every live local process, in table order, holding no
/// lock while `f` runs. Cheaper than [`process_info`] per process (no links, monitors
/// or name): a pass over a million processes takes tens of milliseconds, so a
/// dashboard can rank them all and then take [`process_info`] of the few it shows.
pub fn each_process(mut f: impl FnMut(ProcessCounters)) {
    table::for_each(|p| {
        let core = p.core();
        let messages_in = p.messages_in();
        let handled = core.handled.load(Ordering::Relaxed);
        let size = core.state_size.load(Ordering::Relaxed);
        f(ProcessCounters {
            pid: core.pid,
            message_queue_len: messages_in.saturating_sub(handled),
            messages_in,
            messages_handled: handled,
            handling_ns: core.busy_ns.load(Ordering::Relaxed),
            long_handlers: core.long_handlers.load(Ordering::Relaxed),
            state_size: (size != u64::MAX).then_some(size),
        })
    });
}
