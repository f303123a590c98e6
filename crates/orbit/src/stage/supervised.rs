//! Stages in a supervision tree: child specs for producers, producer_consumers,
//! consumers and ConsumerSupervisors, and finding a running stage by name or pid.
//!
//! As GenStage's `use GenStage` child spec: each stage is a child linked to its
//! supervisor (the spec links it whatever its options say), started again with a fresh
//! state from the spec's `make` function. A stage named with its options' `name` is
//! registered before its `init` runs (as OTP does) and found with
//! [`StageRef::whereis`]; consumers that subscribe with
//! [`subscribe_to_name`](super::ConsumerOptions::subscribe_to_name) look the producer up
//! at each start, so with `RestForOne` (producer first) a restarted producer is followed
//! by consumers subscribed to it (GenStage pipelines are supervised the same way).
//!
//! Defaults: stages are permanent workers with a 5 s shutdown (GenStage's); a
//! ConsumerSupervisor is a permanent supervisor with shutdown infinity (as Elixir's
//! `use ConsumerSupervisor`), which stops its children and waits for them.

use super::consumer::{start_consumer, Consumer, ConsumerOptions};
use super::consumer_supervisor::ConsumerSupervisor;
use super::error::StartError;
use super::producer::{start_producer, Producer, ProducerOptions};
use super::producer_consumer::{
    start_producer_consumer, ProducerConsumer, ProducerConsumerOptions,
};
use super::stage_ref::{StageRef, StageStats};
use crate::pid::Pid;
use crate::process::Handle;
use crate::supervisor::{ChildSpec, IntoStartResult, StartResult};
use std::sync::Arc;

impl<I, O, M> IntoStartResult for Result<StageRef<I, O, M>, StartError>
where
    I: Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
{
    fn into_start_result(self) -> StartResult {
        match self {
            Ok(s) => Ok(Some(s.pid())),
            Err(StartError::Init(reason)) => Err(reason),
            Err(e) => Err(crate::ExitReason::error(e.to_string())),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> StageRef<I, O, M> {
    /// The stage running as `pid`, if it is a running stage taking `I`, emitting `O`
    /// and accepting `M` messages.
    pub fn from_pid(pid: Pid) -> Option<StageRef<I, O, M>> {
        let handle = Handle::from_pid(pid)?;
        let stats = crate::attachment::attached::<Arc<StageStats>>(pid)?;
        Some(StageRef { handle, stats })
    }

    /// The stage of these types registered as `name` (its options' `name`), if it runs:
    /// after a supervisor restarted it, the new instance.
    pub fn whereis(name: impl Into<crate::registry::Dest>) -> Option<StageRef<I, O, M>> {
        name.into().whereis().and_then(Self::from_pid)
    }
}

impl ChildSpec {
    /// A GenStage producer as a child: at each (re)start `make()` gives the producer
    /// and its options, and the producer is started linked to the supervisor.
    /// Permanent worker, 5 s shutdown.
    pub fn producer<P, F>(id: impl Into<String>, make: F) -> ChildSpec
    where
        P: Producer,
        F: Fn() -> (P, ProducerOptions<P::Event>) + Send + Sync + 'static,
    {
        ChildSpec::worker(id, move || {
            let (p, opts) = make();
            start_producer(p, opts.link())
        })
    }

    /// A GenStage producer_consumer as a child (see [`ChildSpec::producer`]); subscribe
    /// it with [`ProducerConsumerOptions::subscribe_to_name`] so a restart finds the
    /// producer running then.
    pub fn producer_consumer<P, F>(id: impl Into<String>, make: F) -> ChildSpec
    where
        P: ProducerConsumer,
        F: Fn() -> (P, ProducerConsumerOptions<P::In, P::Out>) + Send + Sync + 'static,
    {
        ChildSpec::worker(id, move || {
            let (p, opts) = make();
            start_producer_consumer(p, opts.link())
        })
    }

    /// A GenStage consumer as a child (see [`ChildSpec::producer`]); subscribe it with
    /// [`ConsumerOptions::subscribe_to_name`] so a restart finds the producer running
    /// then.
    pub fn consumer<C, F>(id: impl Into<String>, make: F) -> ChildSpec
    where
        C: Consumer,
        F: Fn() -> (C, ConsumerOptions<C::Event>) + Send + Sync + 'static,
    {
        ChildSpec::worker(id, move || {
            let (c, opts) = make();
            start_consumer(c, opts.link())
        })
    }

    /// A ConsumerSupervisor as a child: a permanent supervisor with shutdown infinity
    /// (it stops its own children and waits for them), started linked with
    /// `make()`'s supervisor and options at each (re)start.
    pub fn consumer_supervisor<E, F>(id: impl Into<String>, make: F) -> ChildSpec
    where
        E: Clone + Send + 'static,
        F: Fn() -> (ConsumerSupervisor<E>, ConsumerOptions<E>) + Send + Sync + 'static,
    {
        ChildSpec::supervisor(id, move || {
            let (c, opts) = make();
            start_consumer(c, opts.link())
        })
    }
}
