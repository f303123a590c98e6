//! Typed-reply servers (`orbit::server`): each request names its reply; the GenServer
//! contract (timeouts, noproc, exits during a call, calling self, links, trap_exit,
//! names) holds, and a reply slot dropped unanswered fails the call at once.

use std::time::Duration;

use orbit::server::{
    self, Ctx, Handles, InfoResult, InitResult, Reply, Request, Server, ServerHandle,
};
use orbit::*;
use tokio::sync::{mpsc, oneshot};

/// Guards every wait: a hang fails the test instead of stalling it.
const HANG: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {HANG:?}"))
}

/// A counter with deferred replies; records its lifecycle events.
struct Counter {
    n: u64,
    pending: Vec<ReplyTo<u64>>,
    events: mpsc::UnboundedSender<String>,
}

fn counter() -> (Counter, mpsc::UnboundedReceiver<String>) {
    let (events, rx) = mpsc::unbounded_channel();
    (
        Counter {
            n: 0,
            pending: Vec::new(),
            events,
        },
        rx,
    )
}

impl Server for Counter {
    type Info = String;

    async fn init(&mut self, _ctx: &mut Ctx<Self>) -> InitResult {
        let _ = self.events.send("init".into());
        InitResult::Ok
    }

    async fn handle_info(&mut self, msg: Message<String>, _ctx: &mut Ctx<Self>) -> InfoResult {
        if let Message::Msg(m) = msg {
            let _ = self.events.send(format!("info {m}"));
        }
        InfoResult::Continue
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Ctx<Self>) {
        let _ = self.events.send(format!("terminate {reason}"));
    }
}

struct Get;
impl Request for Get {
    type Reply = u64;
}

struct Add(u64);
impl Request for Add {
    type Reply = ();
}

/// Replies at the next `Flush`.
struct Later;
impl Request for Later {
    type Reply = u64;
}

/// Answers every `Later` with the count; replies how many it answered.
struct Flush;
impl Request for Flush {
    type Reply = usize;
}

/// Drops every deferred `Later` unanswered; replies how many.
struct Forget;
impl Request for Forget {
    type Reply = usize;
}

/// Returns `NoReply` without deferring.
struct Ignore;
impl Request for Ignore {
    type Reply = u64;
}

/// Panics (after deferring the slot into a local, when `true`).
struct Crash(bool);
impl Request for Crash {
    type Reply = u64;
}

/// Stops with `reason`, replying `reply` (after terminate) when `Some`.
struct Halt(Option<u64>);
impl Request for Halt {
    type Reply = u64;
}

/// Reports that it arrived, then waits forever in the handler.
struct Block(Option<oneshot::Sender<()>>);
impl Request for Block {
    type Reply = ();
}

/// Hands the deferred slot to another process.
struct HandOff(mpsc::UnboundedSender<ReplyTo<u64>>);
impl Request for HandOff {
    type Reply = u64;
}

/// Calls the server itself from its handler.
struct CallMyself;
impl Request for CallMyself {
    type Reply = Result<u64, CallError>;
}

/// Replies who called.
struct WhoAmI;
impl Request for WhoAmI {
    type Reply = Option<Pid>;
}

impl Handles<Get> for Counter {
    async fn handle(&mut self, _: Get, _: &mut ReplyTo<u64>, _: &mut Ctx<Self>) -> Reply<u64> {
        Reply::Reply(self.n)
    }
}

impl Handles<Add> for Counter {
    async fn handle(&mut self, Add(k): Add, _: &mut ReplyTo<()>, _: &mut Ctx<Self>) -> Reply<()> {
        self.n += k;
        ().into()
    }
}

impl Handles<Later> for Counter {
    async fn handle(&mut self, _: Later, from: &mut ReplyTo<u64>, _: &mut Ctx<Self>) -> Reply<u64> {
        self.pending.push(from.defer());
        Reply::NoReply
    }
}

impl Handles<Flush> for Counter {
    async fn handle(
        &mut self,
        _: Flush,
        _: &mut ReplyTo<usize>,
        _: &mut Ctx<Self>,
    ) -> Reply<usize> {
        let n = self.pending.len();
        for p in self.pending.drain(..) {
            p.reply(self.n);
        }
        n.into()
    }
}

impl Handles<Forget> for Counter {
    async fn handle(
        &mut self,
        _: Forget,
        _: &mut ReplyTo<usize>,
        _: &mut Ctx<Self>,
    ) -> Reply<usize> {
        let n = self.pending.len();
        self.pending.clear();
        n.into()
    }
}

impl Handles<Ignore> for Counter {
    async fn handle(&mut self, _: Ignore, _: &mut ReplyTo<u64>, _: &mut Ctx<Self>) -> Reply<u64> {
        Reply::NoReply
    }
}

impl Handles<Crash> for Counter {
    async fn handle(
        &mut self,
        Crash(defer): Crash,
        from: &mut ReplyTo<u64>,
        _: &mut Ctx<Self>,
    ) -> Reply<u64> {
        let _kept = defer.then(|| from.defer());
        panic!("boom");
    }
}

impl Handles<Halt> for Counter {
    async fn handle(
        &mut self,
        Halt(reply): Halt,
        _: &mut ReplyTo<u64>,
        _: &mut Ctx<Self>,
    ) -> Reply<u64> {
        Reply::Stop(ExitReason::error("halted"), reply)
    }
}

impl Handles<Block> for Counter {
    async fn handle(
        &mut self,
        Block(tx): Block,
        _: &mut ReplyTo<()>,
        _: &mut Ctx<Self>,
    ) -> Reply<()> {
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
        std::future::pending::<()>().await;
        ().into()
    }
}

impl Handles<HandOff> for Counter {
    async fn handle(
        &mut self,
        HandOff(to): HandOff,
        from: &mut ReplyTo<u64>,
        _: &mut Ctx<Self>,
    ) -> Reply<u64> {
        let _ = to.send(from.defer());
        Reply::NoReply
    }
}

impl Handles<CallMyself> for Counter {
    async fn handle(
        &mut self,
        _: CallMyself,
        _: &mut ReplyTo<Result<u64, CallError>>,
        ctx: &mut Ctx<Self>,
    ) -> Reply<Result<u64, CallError>> {
        Reply::Reply(ctx.server_ref().call(Get).await)
    }
}

impl Handles<WhoAmI> for Counter {
    async fn handle(
        &mut self,
        _: WhoAmI,
        from: &mut ReplyTo<Option<Pid>>,
        _: &mut Ctx<Self>,
    ) -> Reply<Option<Pid>> {
        Reply::Reply(from.caller())
    }
}

async fn next(ev: &mut mpsc::UnboundedReceiver<String>) -> String {
    within("event", ev.recv())
        .await
        .expect("events channel open")
}

/// Waits until `n` calls are deferred in the server (a `Flush` would answer them, so count
/// with a probe request that does not).
async fn wait_pending(s: &ServerHandle<Counter>, n: usize) {
    struct Pending;
    impl Request for Pending {
        type Reply = usize;
    }
    impl Handles<Pending> for Counter {
        async fn handle(
            &mut self,
            _: Pending,
            _: &mut ReplyTo<usize>,
            _: &mut Ctx<Self>,
        ) -> Reply<usize> {
            self.pending.len().into()
        }
    }
    while s.call(Pending).await.unwrap() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_gets_its_own_reply_type() {
    let (c, mut ev) = counter();
    let s = server::start(c).await.unwrap();
    assert_eq!(next(&mut ev).await, "init");
    let () = s.call(Add(2)).await.unwrap();
    s.cast(Add(3));
    let n: u64 = s.call(Get).await.unwrap();
    assert_eq!(n, 5);
    // A cast's slot goes nowhere, and a deferred cast is not an error.
    s.cast(Later);
    s.cast(Ignore);
    assert_eq!(s.call(Flush).await.unwrap(), 1);
    // Plain messages reach handle_info, by ref and by pid.
    s.send("a".into()).unwrap();
    send(s.pid(), String::from("b")).unwrap();
    assert_eq!(next(&mut ev).await, "info a");
    assert_eq!(next(&mut ev).await, "info b");
    // The caller is known inside a process, not outside.
    assert_eq!(s.call(WhoAmI).await.unwrap(), None);
    let s2 = s.clone();
    let (me, caller) = run_in_process(async move { (self_pid(), s2.call(WhoAmI).await.unwrap()) })
        .await
        .unwrap();
    assert_eq!(caller, me);
    s.stop(ExitReason::Normal, HANG).await.unwrap();
    assert_eq!(next(&mut ev).await, "terminate normal");
    // A dead server: noproc, and the cast and send are dropped / refused.
    assert_eq!(s.call(Get).await, Err(CallError::NoProc));
    s.cast(Add(1));
    assert!(s.send("late".into()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_replies_arrive_and_calling_self_is_refused() {
    let (c, _ev) = counter();
    let s = server::start(c).await.unwrap();
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.call(Later).await })
        })
        .collect();
    wait_pending(&s, 3).await;
    s.call(Add(7)).await.unwrap();
    assert_eq!(s.call(Flush).await.unwrap(), 3);
    for w in waiting {
        assert_eq!(within("deferred call", w).await.unwrap(), Ok(7));
    }
    assert_eq!(
        s.call(CallMyself).await.unwrap(),
        Err(CallError::CallingSelf)
    );
    assert!(s.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reply_slot_fails_the_call_at_once() {
    let (c, _ev) = counter();
    let s = server::start(c).await.unwrap();
    // NoReply without deferring: caught at once, even with no timeout at all.
    assert_eq!(
        within("ignored call", s.call_timeout(Ignore, server::INFINITY)).await,
        Err(CallError::NoReply)
    );
    // Deferred, then dropped by a later request: every waiting caller learns it.
    let waiting: Vec<_> = (0..5)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.call_timeout(Later, server::INFINITY).await })
        })
        .collect();
    wait_pending(&s, 5).await;
    assert_eq!(s.call(Forget).await.unwrap(), 5);
    for w in waiting {
        assert_eq!(
            within("forgotten call", w).await.unwrap(),
            Err(CallError::NoReply)
        );
    }
    // Handed to another process, which exits (or is killed) without replying.
    for kill in [false, true] {
        let (tx, mut rx) = mpsc::unbounded_channel::<ReplyTo<u64>>();
        let holder = spawn(move |mut c: Context<()>| async move {
            let slot = rx.recv().await;
            c.recv().await;
            drop(slot);
        })
        .unwrap();
        let call = {
            let s = s.clone();
            tokio::spawn(async move { s.call_timeout(HandOff(tx), server::INFINITY).await })
        };
        // The holder exits on a message, or is killed at any point: holding the slot,
        // or before taking it from the channel (the channel's drop drops it), or before
        // the server handed it over (the send fails and the server drops it). Every
        // path drops the slot unanswered while the server runs.
        if kill {
            exit(holder.pid(), ExitReason::Kill);
        } else {
            holder.send(()).unwrap();
        }
        let r = within("handed-off call", call).await.unwrap();
        assert_eq!(r, Err(CallError::NoReply), "kill: {kill}");
    }
    // The server is unharmed.
    assert_eq!(s.call(Get).await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_gives_every_caller_the_exit_reason() {
    for defer_first in [false, true] {
        let (c, mut ev) = counter();
        let s = server::start(c).await.unwrap();
        // Deferred callers waiting in the state when the server crashes.
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.call_timeout(Later, server::INFINITY).await })
            })
            .collect();
        wait_pending(&s, 4).await;
        let r = within(
            "crashing call",
            s.call_timeout(Crash(defer_first), server::INFINITY),
        )
        .await;
        let Err(CallError::Exit(reason)) = r else {
            panic!("expected the exit reason, got {r:?}")
        };
        assert!(reason.to_string().contains("boom"), "{reason}");
        assert_eq!(next(&mut ev).await, "init");
        assert!(next(&mut ev).await.starts_with("terminate"));
        for w in waiting {
            assert_eq!(
                within("deferred call", w).await.unwrap(),
                Err(CallError::Exit(reason.clone()))
            );
        }
        assert_eq!(s.wait_exit().await, reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_replies_after_terminate_or_gives_the_reason() {
    let (c, mut ev) = counter();
    let s = server::start(c).await.unwrap();
    assert_eq!(s.call(Halt(Some(9))).await, Ok(9));
    assert_eq!(next(&mut ev).await, "init");
    assert!(next(&mut ev).await.starts_with("terminate"));
    let (c, _ev) = counter();
    let s = server::start(c).await.unwrap();
    let waiting = {
        let s = s.clone();
        tokio::spawn(async move { s.call_timeout(Later, server::INFINITY).await })
    };
    wait_pending(&s, 1).await;
    let halted = ExitReason::error("halted");
    assert_eq!(
        s.call(Halt(None)).await,
        Err(CallError::Exit(halted.clone()))
    );
    assert_eq!(
        within("deferred call", waiting).await.unwrap(),
        Err(CallError::Exit(halted))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_call_gives_killed() {
    // Killed while the handler runs.
    let (c, _ev) = counter();
    let s = server::start(c).await.unwrap();
    let (tx, rx) = oneshot::channel();
    let call = {
        let s = s.clone();
        tokio::spawn(async move { s.call_timeout(Block(Some(tx)), server::INFINITY).await })
    };
    rx.await.unwrap();
    exit(s.pid(), ExitReason::Kill);
    assert_eq!(
        within("blocked call", call).await.unwrap(),
        Err(CallError::Exit(ExitReason::Killed))
    );
    // Killed with replies deferred in its state, and calls still queued behind a handler.
    let (c, _ev) = counter();
    let s = server::start(c).await.unwrap();
    let deferred: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.call_timeout(Later, server::INFINITY).await })
        })
        .collect();
    wait_pending(&s, 3).await;
    let (tx, rx) = oneshot::channel();
    let blocked = {
        let s = s.clone();
        tokio::spawn(async move { s.call_timeout(Block(Some(tx)), server::INFINITY).await })
    };
    rx.await.unwrap();
    let queued: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.call_timeout(Get, server::INFINITY).await })
        })
        .collect();
    while process_info(s.pid()).map_or(0, |i| i.message_queue_len) < 3 {
        tokio::task::yield_now().await;
    }
    exit(s.pid(), ExitReason::Kill);
    let killed = Err(CallError::Exit(ExitReason::Killed));
    assert_eq!(
        within("blocked", blocked).await.unwrap(),
        Err(CallError::Exit(ExitReason::Killed))
    );
    for c in deferred {
        assert_eq!(within("deferred", c).await.unwrap(), killed);
    }
    for c in queued {
        assert_eq!(
            within("queued", c).await.unwrap(),
            Err(CallError::Exit(ExitReason::Killed))
        );
    }
}

/// Replies from another task after a few yields, racing the caller's short timeout.
struct Racer;
impl Server for Racer {
    type Info = ();
}

struct Echo(u64);
impl Request for Echo {
    type Reply = u64;
}

impl Handles<Echo> for Racer {
    async fn handle(
        &mut self,
        Echo(n): Echo,
        from: &mut ReplyTo<u64>,
        _: &mut Ctx<Self>,
    ) -> Reply<u64> {
        match n % 4 {
            // Now.
            0 => Reply::Reply(n),
            // Later, from a task, after 0..8 yields.
            _ => {
                let from = from.defer();
                tokio::spawn(async move {
                    for _ in 0..(n % 8) {
                        tokio::task::yield_now().await;
                    }
                    from.reply(n);
                });
                Reply::NoReply
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_racing_replies_end_every_call_exactly_once() {
    const CALLS: u64 = 10_000;
    let s = server::start(Racer).await.unwrap();
    let (mut ok, mut timeout) = (0u64, 0u64);
    let mut tasks = Vec::new();
    for n in 0..CALLS {
        let s = s.clone();
        // Timeouts of 0..50 µs: about as long as a reply takes.
        let limit = Duration::from_micros(n % 50);
        tasks.push(tokio::spawn(async move {
            (n, s.call_timeout(Echo(n), limit).await)
        }));
        if tasks.len() == 200 {
            for t in tasks.drain(..) {
                let (n, r) = within("raced call", t).await.unwrap();
                match r {
                    Ok(v) => {
                        assert_eq!(v, n, "a reply reached the wrong call");
                        ok += 1;
                    }
                    Err(CallError::Timeout) => timeout += 1,
                    Err(e) => panic!("call {n}: {e:?}"),
                }
            }
        }
    }
    for t in tasks {
        let (n, r) = within("raced call", t).await.unwrap();
        match r {
            Ok(v) => {
                assert_eq!(v, n);
                ok += 1;
            }
            Err(CallError::Timeout) => timeout += 1,
            Err(e) => panic!("call {n}: {e:?}"),
        }
    }
    eprintln!("{CALLS} raced calls: {ok} answered, {timeout} timed out");
    assert_eq!(ok + timeout, CALLS);
    // Late replies went nowhere and the server still answers.
    assert_eq!(s.call(Echo(4)).await, Ok(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_linked_and_trapping_servers() {
    // Named: a second start under the name fails; calls by name reach it.
    let (c, _ev) = counter();
    let opts = server::StartOptions {
        name: Some("typed_counter".into()),
        ..Default::default()
    };
    let s = server::start_with(c, opts.clone()).await.unwrap();
    let (c2, _ev2) = counter();
    assert_eq!(
        server::start_with(c2, opts).await.unwrap_err(),
        server::StartError::AlreadyStarted(s.pid())
    );
    server::call::<Counter, _>("typed_counter", Add(4))
        .await
        .unwrap();
    server::cast::<Counter, _>("typed_counter", Add(1));
    assert_eq!(
        server::call::<Counter, _>("typed_counter", Get).await,
        Ok(5)
    );
    assert_eq!(
        ServerHandle::<Counter>::whereis("typed_counter")
            .unwrap()
            .pid(),
        s.pid()
    );
    assert_eq!(
        server::call::<Counter, _>("nobody_here", Get).await,
        Err(CallError::NotRegistered("nobody_here".into()))
    );
    s.stop(ExitReason::Normal, HANG).await.unwrap();
    assert_eq!(whereis("typed_counter"), None);

    // Linked and trapping: the parent's exit stops it through terminate.
    struct Trapper(mpsc::UnboundedSender<String>);
    impl Server for Trapper {
        type Info = ();
        async fn init(&mut self, ctx: &mut Ctx<Self>) -> InitResult {
            ctx.trap_exit(true);
            InitResult::Ok
        }
        async fn terminate(&mut self, reason: &ExitReason, _: &mut Ctx<Self>) {
            let _ = self.0.send(format!("terminate {reason}"));
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (srv_tx, srv_rx) = oneshot::channel();
    let parent = spawn(move |mut c: Context<()>| async move {
        let s = server::start_link(Trapper(tx)).await.unwrap();
        let _ = srv_tx.send(s);
        c.recv().await;
        ExitReason::error("parent died")
    })
    .unwrap();
    let trapper = srv_rx.await.unwrap();
    parent.send(()).unwrap();
    assert_eq!(
        within("trapper exit", trapper.wait_exit()).await,
        ExitReason::error("parent died")
    );
    assert_eq!(next(&mut rx).await, "terminate parent died");

    // Linked: a crashing server takes its (non-trapping) starter down.
    let (c, _ev) = counter();
    let (srv_tx, srv_rx) = oneshot::channel();
    let starter = spawn(move |mut ctx: Context<()>| async move {
        let s = server::start_link(c).await.unwrap();
        let _ = srv_tx.send(s);
        ctx.recv().await;
    })
    .unwrap();
    let s = srv_rx.await.unwrap();
    s.cast(Crash(false));
    let reason = within("starter exit", starter.wait_exit()).await;
    assert!(reason.to_string().contains("boom"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_outcomes() {
    struct Starts(InitResult);
    impl Server for Starts {
        type Info = ();
        async fn init(&mut self, _: &mut Ctx<Self>) -> InitResult {
            std::mem::replace(&mut self.0, InitResult::Ok)
        }
    }
    assert!(server::start(Starts(InitResult::Ok)).await.is_ok());
    assert_eq!(
        server::start(Starts(InitResult::Ignore)).await.unwrap_err(),
        server::StartError::Ignored
    );
    assert_eq!(
        server::start(Starts(InitResult::Stop(ExitReason::error("no"))))
            .await
            .unwrap_err(),
        server::StartError::Init(ExitReason::error("no"))
    );
}
