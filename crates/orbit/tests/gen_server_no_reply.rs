//! `gen_server::ReplyTo` dropped unanswered: while the server runs, the caller gets
//! `CallError::NoReply` at once (it used to wait for its timeout); when the server goes
//! down (stop, crash, kill), the caller gets the exit reason, as in OTP.

use std::time::Duration;

use orbit::gen_server;
use orbit::*;
use tokio::sync::oneshot;

const HANG: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {HANG:?}"))
}

enum Req {
    /// NoReply without deferring.
    Ignore,
    /// Defer into the state.
    Keep,
    /// How many are kept.
    Count,
    /// Drop the kept slots unanswered.
    Forget,
    /// Defer into a local, then panic.
    Crash,
    /// Stop without a reply.
    Halt,
    /// Report arrival, then wait forever.
    Block(Option<oneshot::Sender<()>>),
}

#[derive(Default)]
struct Keeper(Vec<ReplyTo<usize>>);

impl GenServer for Keeper {
    type Call = Req;
    type Reply = usize;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        req: Req,
        from: &mut ReplyTo<usize>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<usize, ()> {
        match req {
            Req::Ignore => CallReply::NoReply,
            Req::Keep => {
                self.0.push(from.defer());
                CallReply::NoReply
            }
            Req::Count => CallReply::Reply(self.0.len()),
            Req::Forget => {
                let n = self.0.len();
                self.0.clear();
                CallReply::Reply(n)
            }
            Req::Crash => {
                let _kept = from.defer();
                panic!("boom");
            }
            Req::Halt => CallReply::Stop(ExitReason::error("halted"), None),
            Req::Block(tx) => {
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
                std::future::pending::<()>().await;
                CallReply::NoReply
            }
        }
    }
}

fn keep_calls(
    s: &ServerRef<Keeper>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<usize, CallError>>> {
    (0..n)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.call_timeout(Req::Keep, gen_server::INFINITY).await })
        })
        .collect()
}

async fn wait_kept(s: &ServerRef<Keeper>, n: usize) {
    while s.call(Req::Count).await.unwrap() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_dropped_while_the_server_runs_is_no_reply() {
    let s = gen_server::start(Keeper::default()).await.unwrap();
    assert_eq!(
        within("ignored", s.call_timeout(Req::Ignore, gen_server::INFINITY)).await,
        Err(CallError::NoReply)
    );
    let calls = keep_calls(&s, 8);
    wait_kept(&s, 8).await;
    assert_eq!(s.call(Req::Forget).await, Ok(8));
    for c in calls {
        assert_eq!(
            within("forgotten", c).await.unwrap(),
            Err(CallError::NoReply)
        );
    }
    assert!(s.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_going_down_gives_its_reason_not_no_reply() {
    // A crash (the crashing call deferred its slot into a local first).
    let s = gen_server::start(Keeper::default()).await.unwrap();
    let calls = keep_calls(&s, 4);
    wait_kept(&s, 4).await;
    let r = within("crash", s.call(Req::Crash)).await;
    let Err(CallError::Exit(reason)) = r else {
        panic!("expected the exit reason, got {r:?}")
    };
    assert!(reason.to_string().contains("boom"), "{reason}");
    for c in calls {
        assert_eq!(
            within("kept", c).await.unwrap(),
            Err(CallError::Exit(reason.clone()))
        );
    }
    // A stop without a reply.
    let s = gen_server::start(Keeper::default()).await.unwrap();
    let calls = keep_calls(&s, 4);
    wait_kept(&s, 4).await;
    let halted = Err(CallError::Exit(ExitReason::error("halted")));
    assert_eq!(within("halt", s.call(Req::Halt)).await, halted);
    for c in calls {
        assert_eq!(within("kept", c).await.unwrap(), halted);
    }
    // A kill while a handler runs.
    let s = gen_server::start(Keeper::default()).await.unwrap();
    let calls = keep_calls(&s, 4);
    wait_kept(&s, 4).await;
    let (tx, rx) = oneshot::channel();
    let blocked = {
        let s = s.clone();
        tokio::spawn(async move {
            s.call_timeout(Req::Block(Some(tx)), gen_server::INFINITY)
                .await
        })
    };
    rx.await.unwrap();
    exit(s.pid(), ExitReason::Kill);
    let killed = Err(CallError::Exit(ExitReason::Killed));
    assert_eq!(within("blocked", blocked).await.unwrap(), killed);
    for c in calls {
        assert_eq!(within("kept", c).await.unwrap(), killed);
    }
}
