//! Ranking the node's processes by a column, and one process's page.
//!
//! Contract: [`ProcessRanker::top`] reads every live process's counters once
//! ([`orbit::info::each_process`], no locks held), keeps the best `limit` with a partial
//! selection (O(n), not a full sort), then takes [`orbit::process_info`] of only those.
//! A million processes rank in well under a second. Messages/s is the rate of handled
//! messages since the previous ranking by the same ranker (the first ranking reports
//! 0); "memory" is the state size a behaviour reports (0 where none does).

use std::time::Instant;

use orbit::info::{each_process, ProcessCounters};
use orbit::Pid;
use parking_lot::Mutex;
use serde::Serialize;

/// The column processes are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Messages waiting.
    Mailbox,
    /// State size.
    Memory,
    /// Total handling time.
    Time,
    /// Messages handled per second.
    Rate,
}

impl SortKey {
    /// Parses `mailbox`, `memory`, `time` or `rate`.
    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "mailbox" => SortKey::Mailbox,
            "memory" => SortKey::Memory,
            "time" => SortKey::Time,
            "rate" => SortKey::Rate,
            _ => return None,
        })
    }

    /// The name [`parse`](Self::parse) reads.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Mailbox => "mailbox",
            SortKey::Memory => "memory",
            SortKey::Time => "time",
            SortKey::Rate => "rate",
        }
    }
}

/// One row of the processes table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessRow {
    /// The pid as `#PID<N.ID.SERIAL>`.
    pub pid: String,
    /// Registered name, if any.
    pub name: Option<String>,
    /// Spawn label (behaviour kind), if any.
    pub label: Option<String>,
    /// Messages waiting.
    pub mailbox: u64,
    /// Reported state size in bytes (0 if none).
    pub memory: u64,
    /// Messages handled.
    pub handled: u64,
    /// Total handling time, milliseconds.
    pub handling_ms: f64,
    /// Mean handling time per message, microseconds.
    pub mean_us: f64,
    /// Messages handled per second since the previous ranking.
    pub rate: f64,
    /// Handlers over the long-handler threshold.
    pub long_handlers: u32,
}

/// A ranking: the rows and how many processes were ranked.
#[derive(Debug, Clone, Serialize)]
pub struct Ranking {
    /// The column ranked by.
    pub sort: &'static str,
    /// Live processes ranked.
    pub total: usize,
    /// Milliseconds the ranking took.
    pub took_ms: f64,
    /// The best rows, best first.
    pub rows: Vec<ProcessRow>,
}

/// One process's page.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessPage {
    /// The row figures.
    pub row: ProcessRow,
    /// Running, waiting or exiting.
    pub status: String,
    /// Linked processes.
    pub links: Vec<String>,
    /// Processes it monitors.
    pub monitors: Vec<String>,
    /// Processes monitoring it.
    pub monitored_by: Vec<String>,
    /// Whether it traps exits.
    pub trap_exit: bool,
    /// Reported state size, if any.
    pub state_size: Option<u64>,
    /// Handling times between the recent reads of this page.
    pub recent: crate::recent::RecentHandling,
}

/// The handled count of each process at the previous ranking, indexed by the pid's
/// table slot (`Pid::id`), with the pid's serial so a reused slot is not mistaken for
/// the process before it. No hashing: a million lookups are a million array reads.
#[derive(Debug, Default)]
struct Previous {
    at: Option<Instant>,
    /// `(serial + 1, handled)`; 0 marks an empty slot.
    slots: Vec<(u64, u64)>,
}

impl Previous {
    fn get(&self, pid: Pid) -> Option<u64> {
        let (serial, handled) = *self.slots.get(pid.id() as usize)?;
        (serial == pid.serial() as u64 + 1).then_some(handled)
    }
}

/// What a ranking keeps per process: the sort key and the counters it was read with
/// (shown as read, so the rows agree with their order).
#[derive(Clone, Copy)]
struct Entry {
    key: f64,
    c: ProcessCounters,
}

/// Ranks processes, remembering the handled counts of its previous pass for rates.
#[derive(Debug)]
pub struct ProcessRanker {
    last: Mutex<Previous>,
}

impl Default for ProcessRanker {
    fn default() -> Self {
        Self::new()
    }
}

/// Most rows a ranking returns.
pub const MAX_ROWS: usize = 1000;

impl ProcessRanker {
    /// A ranker with no history.
    pub fn new() -> Self {
        ProcessRanker {
            last: Mutex::new(Previous::default()),
        }
    }

    /// The `limit` (at most [`MAX_ROWS`]) best processes by `sort`, best first; ties
    /// by mailbox, then handled count.
    pub fn top(&self, sort: SortKey, limit: usize) -> Ranking {
        let t0 = Instant::now();
        let limit = limit.min(MAX_ROWS);
        let mut last = self.last.lock();
        let dt = last.at.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        let mut all: Vec<Entry> = Vec::with_capacity(last.slots.len().max(64));
        let mut next: Vec<(u64, u64)> = Vec::with_capacity(last.slots.len());
        each_process(|c| {
            let key = match sort {
                SortKey::Mailbox => c.message_queue_len as f64,
                SortKey::Memory => c.state_size.unwrap_or(0) as f64,
                SortKey::Time => c.handling_ns as f64,
                SortKey::Rate => match last.get(c.pid) {
                    Some(b) if dt > 0.0 => c.messages_handled.saturating_sub(b) as f64 / dt,
                    _ => 0.0,
                },
            };
            let id = c.pid.id() as usize;
            if next.len() <= id {
                next.resize(id + 1, (0, 0));
            }
            next[id] = (c.pid.serial() as u64 + 1, c.messages_handled);
            all.push(Entry { key, c });
        });
        let previous = std::mem::replace(
            &mut *last,
            Previous {
                at: Some(Instant::now()),
                slots: next,
            },
        );
        drop(last);
        let total = all.len();
        let order = |a: &Entry, b: &Entry| {
            b.key
                .total_cmp(&a.key)
                .then(b.c.message_queue_len.cmp(&a.c.message_queue_len))
                .then(b.c.messages_handled.cmp(&a.c.messages_handled))
        };
        if limit == 0 {
            all.clear();
        } else if all.len() > limit {
            all.select_nth_unstable_by(limit - 1, order);
            all.truncate(limit);
        }
        all.sort_by(order);
        let rows = all
            .iter()
            .map(|e| {
                let rate = match previous.get(e.c.pid) {
                    Some(b) if dt > 0.0 => e.c.messages_handled.saturating_sub(b) as f64 / dt,
                    _ => 0.0,
                };
                row(&e.c, rate)
            })
            .collect();
        Ranking {
            sort: sort.name(),
            total,
            took_ms: t0.elapsed().as_secs_f64() * 1e3,
            rows,
        }
    }
}

/// A row from the counters a ranking read; name and label from the process itself
/// (none once it has exited).
fn row(c: &ProcessCounters, rate: f64) -> ProcessRow {
    let (name, label) = match orbit::process_info(c.pid) {
        Some(i) => (
            i.registered_name.map(|n| n.to_string()),
            i.label.map(str::to_string),
        ),
        None => (None, None),
    };
    ProcessRow {
        pid: c.pid.to_string(),
        name,
        label,
        mailbox: c.message_queue_len,
        memory: c.state_size.unwrap_or(0),
        handled: c.messages_handled,
        handling_ms: c.handling_ns as f64 / 1e6,
        mean_us: if c.messages_handled == 0 {
            0.0
        } else {
            c.handling_ns as f64 / c.messages_handled as f64 / 1e3
        },
        rate,
        long_handlers: c.long_handlers,
    }
}

/// Finds a live local process by `#PID<0.ID.SERIAL>`, `<0.ID.SERIAL>` or `0.ID.SERIAL`.
pub fn find_pid(text: &str) -> Option<Pid> {
    let t = text.trim();
    let t = t.strip_prefix("#PID").unwrap_or(t);
    let t = t.strip_prefix('<').unwrap_or(t);
    let t = t.strip_suffix('>').unwrap_or(t);
    let mut parts = t.split('.');
    let (n, id, serial) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (n, id, serial): (u32, u32, u32) =
        (n.parse().ok()?, id.parse().ok()?, serial.parse().ok()?);
    if n != 0 {
        return None;
    }
    let mut found = None;
    each_process(|c| {
        if found.is_none() && c.pid.id() == id && c.pid.serial() == serial {
            found = Some(c.pid);
        }
    });
    found
}

/// The page of the live local process `pid`, or `None` when it is gone. Each call
/// also samples its handling totals for [`ProcessPage::recent`](crate::recent).
pub fn page(pid: Pid) -> Option<ProcessPage> {
    let i = orbit::process_info(pid)?;
    let show = |v: &[Pid]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let handled = i.messages_handled;
    let ns = i.handling_time.as_nanos() as f64;
    Some(ProcessPage {
        row: ProcessRow {
            pid: i.pid.to_string(),
            name: i.registered_name.as_ref().map(|n| n.to_string()),
            label: i.label.map(str::to_string),
            mailbox: i.message_queue_len,
            memory: i.state_size.unwrap_or(0),
            handled,
            handling_ms: ns / 1e6,
            mean_us: if handled == 0 {
                0.0
            } else {
                ns / handled as f64 / 1e3
            },
            rate: 0.0,
            long_handlers: i.long_handlers,
        },
        status: format!("{:?}", i.status).to_lowercase(),
        links: show(&i.links),
        monitors: show(&i.monitors),
        monitored_by: show(&i.monitored_by),
        trap_exit: i.trap_exit,
        state_size: i.state_size,
        recent: crate::recent::observe(i.pid, handled, i.handling_time),
    })
}
