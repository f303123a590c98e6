//! The owner process: creates and owns the table, sweeps expired items every
//! `ttl_check_interval` on the cache's clock, and stops the cache.
//!
//! The owner holds only a weak reference to the cache, so the cache stops when its last
//! handle is dropped. A sweep takes the due queues off the wheel (a short lock per
//! partition), then looks at each key: under the key's lock (tried, never awaited) it
//! expires the item, queues it again under its later tick, or skips a stale entry.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use super::error::{CacheError, Result};
use super::lock::{Holder, Locks};
use super::options::{CacheOptions, Ttl};
use super::stats::Counters;
use super::ttl::{nanos, Meta, Sweep, Ticks, Wheel, WHEEL_PARTS};
use super::{ConCache, Entry, Inner};
use crate::ets::{Key, Table, TableType, Value};
use crate::process::{Context, Spawn};
use crate::signal::Message;
use futures::future::Either;

/// Messages to the owner process.
pub(crate) enum OwnerMsg<K: Key, V: Value> {
    /// The cache it serves (sent once, right after start).
    Attach(Weak<Inner<K, V>>),
    /// Sweep now and reply with the number expired.
    Sweep(oneshot::Sender<usize>),
    /// Exit (deleting the table).
    Stop,
}

type Tables<K, V> = (Table<K, Entry<V>>, Option<Table<K, Meta>>);

pub(crate) async fn start<K: Key, V: Value>(
    opts: CacheOptions<K, V>,
    link: bool,
) -> Result<ConCache<K, V>> {
    let interval = opts.validate()?;
    let kind = opts.table_type;
    let bag = matches!(kind, TableType::Bag | TableType::DuplicateBag);
    let need_metas = bag && interval.is_some();
    let clock = opts.clock.clone();
    let (tx, rx) = oneshot::channel::<Result<Tables<K, V>>>();
    let spawn = if link {
        Spawn::new().link()
    } else {
        Spawn::new()
    };
    let owner = spawn
        .label("con_cache")
        .spawn(move |ctx: Context<OwnerMsg<K, V>>| async move {
            let made = (|| -> Result<Tables<K, V>> {
                let table = Table::builder()
                    .kind(kind)
                    .public()
                    .write_concurrency(true)
                    .read_concurrency(true)
                    .build()?;
                let metas = if need_metas {
                    Some(Table::builder().public().write_concurrency(true).build()?)
                } else {
                    None
                };
                Ok((table, metas))
            })();
            let tables = made.as_ref().ok().cloned();
            let _ = tx.send(made);
            if let Some((table, metas)) = tables {
                run(ctx, clock, interval).await;
                // Gone before the owner's exit is visible, not just after it.
                let _ = table.delete_table();
                if let Some(m) = metas {
                    let _ = m.delete_table();
                }
            }
        })
        .map_err(|e| CacheError::InvalidOptions(format!("cannot start the owner process: {e}")))?;
    let (table, metas) = rx.await.map_err(|_| CacheError::Stopped)??;
    let hasher = crate::hash::seeded();
    let name: Arc<str> = match &opts.name {
        Some(n) => n.clone(),
        None => format!("con_cache#{}", table.id()).into(),
    };
    let inner = Arc::new(Inner {
        table,
        metas,
        locks: Locks::new(opts.n_lock_partitions, hasher.clone()),
        wheel: Wheel::new(),
        hasher,
        ticks: interval.map(|d| Ticks {
            interval: nanos(d).max(1),
        }),
        global_ttl: opts.global_ttl.unwrap_or(Ttl::Infinity),
        touch_on_read: opts.touch_on_read,
        acquire_lock_timeout: opts.acquire_lock_timeout,
        callback: opts.callback,
        clock: opts.clock,
        counters: Counters::new(&name),
        kind,
        name,
        owner,
    });
    inner
        .owner
        .send(OwnerMsg::Attach(Arc::downgrade(&inner)))
        .map_err(|_| CacheError::Stopped)?;
    Ok(ConCache { inner })
}

/// The owner's loop: sweep on every tick, answer sweep requests, stop when asked or
/// when the cache is gone.
async fn run<K: Key, V: Value>(
    mut ctx: Context<OwnerMsg<K, V>>,
    clock: Arc<dyn super::Clock>,
    interval: Option<Duration>,
) {
    let weak = loop {
        match ctx.recv().await {
            Message::Msg(OwnerMsg::Attach(w)) => break w,
            Message::Msg(OwnerMsg::Stop) => return,
            Message::Msg(OwnerMsg::Sweep(tx)) => {
                let _ = tx.send(0);
            }
            _ => {}
        }
    };
    loop {
        let tick = async {
            match interval {
                Some(i) => {
                    let i = nanos(i).max(1);
                    let now = nanos(clock.now());
                    let next = (now / i).saturating_add(1).saturating_mul(i);
                    clock.sleep_until(Duration::from_nanos(next)).await
                }
                None => std::future::pending().await,
            }
        };
        // Whichever comes first: the tick, or a message (the other future is dropped).
        let tick = std::pin::pin!(tick);
        let recv = std::pin::pin!(ctx.recv());
        match futures::future::select(tick, recv).await {
            Either::Left(((), _)) => {
                let Some(inner) = weak.upgrade() else { return };
                inner.sweep().await;
            }
            Either::Right((m, _)) => match m {
                Message::Msg(OwnerMsg::Sweep(tx)) => {
                    let Some(inner) = weak.upgrade() else { return };
                    let n = inner.sweep().await;
                    let _ = tx.send(n);
                }
                Message::Msg(OwnerMsg::Stop) => return,
                _ => {}
            },
        }
    }
}

impl<K: Key, V: Value> Inner<K, V> {
    /// One sweep at the clock's current time; returns the number of items expired.
    pub(crate) async fn sweep(&self) -> usize {
        let Some(ticks) = self.ticks else { return 0 };
        let now = nanos(self.clock.now());
        let current = ticks.current(now);
        let me = Holder::current();
        let mut expired = 0;
        let mut seen = 0usize;
        for part in 0..WHEEL_PARTS {
            let due = self.wheel.take_due(part, current);
            for (tick, keys) in due {
                for key in keys {
                    seen += 1;
                    if seen.is_multiple_of(1024) {
                        // A big sweep must not hold this worker thread for long.
                        tokio::task::yield_now().await;
                    }
                    if self.sweep_one(key, tick, ticks, now, current, me) {
                        expired += 1;
                    }
                }
            }
        }
        // A deleted table has no size; the sweep still counts.
        let size = self.table.size().unwrap_or(0);
        self.counters.swept(expired, size);
        expired
    }

    fn sweep_one(
        &self,
        key: K,
        tick: u64,
        ticks: Ticks,
        now: u64,
        current: u64,
        me: Holder,
    ) -> bool {
        let hash = crate::hash::hash_of(&self.hasher, &key);
        let Ok(guard) = self.locks.try_lock(&key, me) else {
            // Someone is working on the key: look again next tick.
            let next = current + 1;
            let moved = self.with_meta(&key, |m| {
                let ours = m.queued == tick;
                if ours {
                    m.queued = next;
                }
                ours
            });
            if let Ok(Some(true)) = moved {
                self.wheel.push(hash, key, next);
            }
            return false;
        };
        let verdict = self.with_meta(&key, |m| ticks.decide(m, tick, now));
        match verdict {
            Ok(Some(Sweep::Expire)) => {
                let _ = self.remove(&key);
                drop(guard);
                true
            }
            Ok(Some(Sweep::Requeue(t))) => {
                drop(guard);
                self.wheel.push(hash, key, t);
                false
            }
            _ => false,
        }
    }
}
