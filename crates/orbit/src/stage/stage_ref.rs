//! Typed references to running stages, and what each stage reports about itself.
//!
//! Every stage publishes its counters after each message it handles (a handful of
//! relaxed atomic stores), so [`StageRef::info`] answers at once, even while the stage
//! is busy in a long handler: buffered events, pending demand, events in and out,
//! events dropped from a full buffer.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::demand::DemandMode;
use super::engine::{StageMsg, SubscribeTo};
use super::error::{StageError, SubscribeError};
use super::subscription::{ProducerRef, SubscribeOptions, Subscription};
use super::StageKind;
use crate::error::Undelivered;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::Handle;

/// A snapshot of one stage's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageInfo {
    /// Producer, producer_consumer or consumer.
    pub kind: StageKind,
    /// Events held in the stage: the buffer, events held while accumulating, a
    /// partition's queue, and (producer_consumer) input waiting for downstream demand.
    pub buffered: u64,
    /// The most `buffered` has been.
    pub peak_buffered: u64,
    /// Producer side: events the consumers asked for and have not received.
    pub pending_demand: u64,
    /// Consumer side: events this stage asked its producers for and has not handled.
    pub upstream_demand: u64,
    /// Events received from producers.
    pub events_in: u64,
    /// Events sent to consumers.
    pub events_out: u64,
    /// Events dropped from a full buffer.
    pub dropped: u64,
    /// Subscribed consumers.
    pub consumers: u64,
    /// Producers this stage is subscribed to.
    pub producers: u64,
    /// A producer's demand mode (`None` for consumers).
    pub demand_mode: Option<DemandMode>,
}

pub(crate) struct StageStats {
    kind: StageKind,
    buffered: AtomicU64,
    peak_buffered: AtomicU64,
    pending_demand: AtomicU64,
    upstream_demand: AtomicU64,
    events_in: AtomicU64,
    events_out: AtomicU64,
    dropped: AtomicU64,
    consumers: AtomicU64,
    producers: AtomicU64,
    /// 0: none, 1: forward, 2: accumulate.
    mode: AtomicU8,
}

impl StageStats {
    pub(crate) fn new(kind: StageKind) -> Self {
        StageStats {
            kind,
            buffered: AtomicU64::new(0),
            peak_buffered: AtomicU64::new(0),
            pending_demand: AtomicU64::new(0),
            upstream_demand: AtomicU64::new(0),
            events_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            consumers: AtomicU64::new(0),
            producers: AtomicU64::new(0),
            mode: AtomicU8::new(0),
        }
    }

    /// Written by the stage only, after each message.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn publish(
        &self,
        buffered: usize,
        pending: usize,
        upstream: usize,
        events_in: u64,
        events_out: u64,
        dropped: u64,
        consumers: usize,
        producers: usize,
        mode: Option<DemandMode>,
    ) {
        let r = Ordering::Relaxed;
        let buffered = buffered as u64;
        self.buffered.store(buffered, r);
        if buffered > self.peak_buffered.load(r) {
            self.peak_buffered.store(buffered, r);
        }
        self.pending_demand.store(pending as u64, r);
        self.upstream_demand.store(upstream as u64, r);
        self.events_in.store(events_in, r);
        self.events_out.store(events_out, r);
        self.dropped.store(dropped, r);
        self.consumers.store(consumers as u64, r);
        self.producers.store(producers as u64, r);
        let m = match mode {
            None => 0,
            Some(DemandMode::Forward) => 1,
            Some(DemandMode::Accumulate) => 2,
        };
        self.mode.store(m, r);
    }

    fn snapshot(&self) -> StageInfo {
        let r = Ordering::Relaxed;
        StageInfo {
            kind: self.kind,
            buffered: self.buffered.load(r),
            peak_buffered: self.peak_buffered.load(r),
            pending_demand: self.pending_demand.load(r),
            upstream_demand: self.upstream_demand.load(r),
            events_in: self.events_in.load(r),
            events_out: self.events_out.load(r),
            dropped: self.dropped.load(r),
            consumers: self.consumers.load(r),
            producers: self.producers.load(r),
            demand_mode: match self.mode.load(r) {
                1 => Some(DemandMode::Forward),
                2 => Some(DemandMode::Accumulate),
                _ => None,
            },
        }
    }
}

/// A typed reference to a running stage taking `I` events, emitting `O` events and
/// accepting `M` messages for `handle_info`. Producers take
/// [`NoEvents`](super::NoEvents); consumers emit them.
pub struct StageRef<I, O, M> {
    pub(crate) handle: Handle<StageMsg<I, O, M>>,
    pub(crate) stats: Arc<StageStats>,
}

impl<I, O, M> Clone for StageRef<I, O, M> {
    fn clone(&self) -> Self {
        StageRef {
            handle: self.handle.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<I, O, M> fmt::Debug for StageRef<I, O, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StageRef({:?}, {:?})", self.stats.kind, self.handle)
    }
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> StageRef<I, O, M> {
    /// The stage's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// True while the stage runs.
    pub fn is_alive(&self) -> bool {
        self.handle.is_alive()
    }

    /// Waits until the stage exits; returns its reason.
    pub async fn wait_exit(&self) -> ExitReason {
        self.handle.wait_exit().await
    }

    /// The stage's counters, read without disturbing it.
    pub fn info(&self) -> StageInfo {
        self.stats.snapshot()
    }

    /// Sends a message to the stage's `handle_info`.
    pub fn send(&self, msg: M) -> Result<(), Undelivered<M>> {
        self.handle
            .send(StageMsg::Info(msg))
            .map_err(|e| Undelivered {
                pid: e.pid,
                msg: match e.msg {
                    StageMsg::Info(m) => m,
                    // We sent an Info and got the same message back.
                    _ => unreachable!("send returns the message it was given"),
                },
            })
    }

    /// This stage as something to subscribe to.
    pub fn producer(&self) -> ProducerRef<O> {
        ProducerRef {
            port: Arc::new(self.handle.clone()),
        }
    }

    /// Subscribes this stage (a consumer or producer_consumer) to `producer` and waits
    /// until the producer confirms (GenStage's `sync_subscribe`, which here also
    /// reports refusals: a taken or unknown partition, a duplicate broadcast consumer).
    pub async fn subscribe(
        &self,
        producer: &ProducerRef<I>,
        opts: SubscribeOptions<I>,
    ) -> Result<Subscription, SubscribeError> {
        let timeout = opts.timeout;
        let (tx, rx) = oneshot::channel();
        let msg = StageMsg::SubscribeTo(Box::new(SubscribeTo {
            to: producer.clone(),
            opts,
            reply: Some(tx),
        }));
        if self.handle.send(msg).is_err() {
            return Err(SubscribeError::ConsumerExited(ExitReason::NoProc));
        }
        let wait = async {
            match rx.await {
                Ok(r) => r,
                Err(_) if !self.is_alive() => {
                    Err(SubscribeError::ConsumerExited(self.wait_exit().await))
                }
                Err(_) => Err(SubscribeError::ProducerExited(
                    producer.port.wait_exit().await,
                )),
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(SubscribeError::Timeout))
    }

    /// Sets a producer's demand mode (GenStage's `demand/2`; asynchronous).
    /// `Accumulate` holds demand and emitted events; `Forward` releases them.
    pub fn demand(&self, mode: DemandMode) -> Result<(), StageError> {
        self.handle
            .send(StageMsg::Demand(mode))
            .map_err(|_| StageError::NoProc(self.pid()))
    }

    /// A producer's demand mode, asked of the stage (`None` for a consumer).
    pub async fn demand_mode(&self) -> Result<Option<DemandMode>, StageError> {
        let (tx, rx) = oneshot::channel();
        self.handle
            .send(StageMsg::GetDemand(tx))
            .map_err(|_| StageError::NoProc(self.pid()))?;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err(StageError::NoProc(self.pid())),
            Err(_) => Err(StageError::Timeout),
        }
    }

    /// Stops the stage with `reason` after the messages already queued, running
    /// `terminate`; waits up to `timeout` for it to exit.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), StageError> {
        self.handle
            .send(StageMsg::Stop(reason))
            .map_err(|_| StageError::NoProc(self.pid()))?;
        tokio::time::timeout(timeout, self.handle.wait_exit())
            .await
            .map(|_| ())
            .map_err(|_| StageError::Timeout)
    }
}
