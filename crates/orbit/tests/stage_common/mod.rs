//! Stages shared by the stage tests: a producer that counts, one that emits only when
//! told, and a consumer that reports every batch.
#![allow(dead_code)]

use std::time::Duration;

use orbit::stage::{
    Cancel, Consumer, ConsumerContext, Producer, ProducerContext, SubscribeMode, Subscription,
};
use orbit::{ExitReason, Message};
use tokio::sync::{mpsc, oneshot};

/// Commands a test sends to a producer.
pub enum Cmd {
    /// Emit these events now.
    Emit(Vec<u64>),
    /// Answer once every earlier message was handled; reports `pending_demand`.
    Sync(oneshot::Sender<usize>),
    /// Stop with this reason.
    Stop(ExitReason),
}

/// Emits `demand` consecutive integers per `handle_demand` (up to `limit`, if any),
/// reporting each demand.
pub struct Counting {
    pub next: u64,
    pub limit: Option<u64>,
    /// Emit `burst` times the demand (more than asked: the excess is buffered).
    pub burst: u64,
    pub demands: Option<mpsc::UnboundedSender<usize>>,
}

impl Counting {
    pub fn new() -> Self {
        Counting {
            next: 0,
            limit: None,
            burst: 1,
            demands: None,
        }
    }
    pub fn up_to(limit: u64) -> Self {
        Counting {
            limit: Some(limit),
            ..Self::new()
        }
    }
}

impl Producer for Counting {
    type Event = u64;
    type Info = Cmd;

    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut ProducerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        if let Some(tx) = &self.demands {
            let _ = tx.send(demand);
        }
        let n = demand as u64 * self.burst;
        let end = match self.limit {
            Some(l) => (self.next + n).min(l),
            None => self.next + n,
        };
        let events = (self.next..end).collect();
        self.next = end;
        Ok(events)
    }

    async fn handle_info(
        &mut self,
        msg: Message<Cmd>,
        ctx: &mut ProducerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        info(msg, ctx.pending_demand())
    }
}

fn info(msg: Message<Cmd>, pending: usize) -> Result<Vec<u64>, ExitReason> {
    match msg {
        Message::Msg(Cmd::Emit(v)) => Ok(v),
        Message::Msg(Cmd::Sync(tx)) => {
            let _ = tx.send(pending);
            Ok(Vec::new())
        }
        Message::Msg(Cmd::Stop(r)) => Err(r),
        _ => Ok(Vec::new()),
    }
}

/// Emits nothing on demand (reports it); emits what `Cmd::Emit` gives it.
pub struct Scripted {
    pub demands: mpsc::UnboundedSender<usize>,
}

impl Producer for Scripted {
    type Event = u64;
    type Info = Cmd;

    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut ProducerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        let _ = self.demands.send(demand);
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        msg: Message<Cmd>,
        ctx: &mut ProducerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        info(msg, ctx.pending_demand())
    }
}

/// What a [`Recorder`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Batch(Vec<u64>),
    Cancelled(Cancel),
}

/// Commands to a consumer.
pub enum CCmd {
    /// Answer once every earlier message was handled.
    Sync(oneshot::Sender<()>),
}

/// Reports every batch (and cancel); optionally sleeps per event; optionally manual.
pub struct Recorder {
    pub tx: mpsc::UnboundedSender<Seen>,
    pub per_event: Option<Duration>,
    pub manual: bool,
    pub subs: Vec<Subscription>,
}

impl Recorder {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Recorder {
                tx,
                per_event: None,
                manual: false,
                subs: Vec::new(),
            },
            rx,
        )
    }
}

impl Consumer for Recorder {
    type Event = u64;
    type Info = CCmd;

    async fn handle_subscribe(
        &mut self,
        from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<SubscribeMode, ExitReason> {
        self.subs.push(from.clone());
        Ok(if self.manual {
            SubscribeMode::Manual
        } else {
            SubscribeMode::Automatic
        })
    }

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        if let Some(d) = self.per_event {
            for _ in 0..events.len() {
                tokio::time::sleep(d).await;
            }
        }
        let _ = self.tx.send(Seen::Batch(events));
        Ok(())
    }

    async fn handle_cancel(
        &mut self,
        cancel: Cancel,
        _from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        let _ = self.tx.send(Seen::Cancelled(cancel));
        Ok(())
    }

    async fn handle_info(
        &mut self,
        msg: Message<CCmd>,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        if let Message::Msg(CCmd::Sync(tx)) = msg {
            let _ = tx.send(());
        }
        Ok(())
    }
}

/// The next batch a recorder saw (panics on a cancel or a closed channel).
pub async fn batch(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Vec<u64> {
    match rx.recv().await {
        Some(Seen::Batch(b)) => b,
        other => panic!("expected a batch, got {other:?}"),
    }
}

/// Everything already queued on an unbounded channel.
pub fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut v = Vec::new();
    while let Ok(x) = rx.try_recv() {
        v.push(x);
    }
    v
}
