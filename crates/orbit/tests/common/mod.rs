//! Test children that report their start and stop through a channel.
#![allow(dead_code)]

use std::time::Duration;

use orbit::*;
use tokio::sync::mpsc;

/// What a test child reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Started(&'static str, Pid),
    Stopped(&'static str, ExitReason),
}

pub type Tx = mpsc::UnboundedSender<Ev>;
pub type Rx = mpsc::UnboundedReceiver<Ev>;

pub fn events() -> (Tx, Rx) {
    mpsc::unbounded_channel()
}

/// The next event; fails the test (instead of hanging) if none comes within 10 s.
pub async fn next(rx: &mut Rx) -> Ev {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no event within 10 s")
        .expect("event channel closed")
}

/// Waits for `Started(id, pid)` and returns the pid.
pub async fn started(rx: &mut Rx, id: &str) -> Pid {
    match next(rx).await {
        Ev::Started(got, pid) if got == id => pid,
        other => panic!("expected {id} to start, got {other:?}"),
    }
}

/// Waits for `Stopped(id, reason)` and returns the reason.
pub async fn stopped(rx: &mut Rx, id: &str) -> ExitReason {
    match next(rx).await {
        Ev::Stopped(got, reason) if got == id => reason,
        other => panic!("expected {id} to stop, got {other:?}"),
    }
}

/// A GenServer child: traps exits so `terminate` reports its stop; a cast makes it stop
/// with the cast reason.
pub struct Worker {
    pub id: &'static str,
    pub tx: Tx,
}

impl GenServer for Worker {
    type Call = ();
    type Reply = ();
    type Cast = ExitReason;
    type Info = ();
    type Continue = ();

    async fn init(&mut self, ctx: &mut ServerContext<Self>) -> Init<()> {
        ctx.trap_exit(true);
        let _ = self.tx.send(Ev::Started(self.id, ctx.pid()));
        Init::Ok
    }

    async fn handle_call(
        &mut self,
        _: (),
        _: &mut ReplyTo<()>,
        _: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        CallReply::Reply(())
    }

    async fn handle_cast(&mut self, reason: ExitReason, _: &mut ServerContext<Self>) -> Next<()> {
        Next::Stop(reason)
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut ServerContext<Self>) {
        let _ = self.tx.send(Ev::Stopped(self.id, reason.clone()));
    }
}

pub fn worker(id: &'static str, tx: &Tx) -> ChildSpec {
    let tx = tx.clone();
    ChildSpec::gen_server(id, move || Worker { id, tx: tx.clone() })
}

/// Makes the worker `pid` stop with `reason` and waits until it has exited (so the
/// supervisor's exit signal is already queued when this returns).
pub async fn stop_worker(pid: Pid, reason: ExitReason) {
    let server = ServerRef::<Worker>::from_pid(pid).expect("worker alive");
    server.cast(reason);
    server.wait_exit().await;
}

pub fn crash() -> ExitReason {
    ExitReason::error("boom")
}
