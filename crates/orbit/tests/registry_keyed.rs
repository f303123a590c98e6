//! Keyed registries (Elixir's `Registry`), `via` names and `Dest`: registration
//! semantics, entries removed however the owner exits, and races between registering
//! and exiting, checked with counts.

use std::time::Duration;

use orbit::gen_server::{self, CallReply, GenServer, ReplyTo, ServerContext, StartError};
use orbit::registry::RegistryError;
use orbit::{Context, Dest, ExitReason, Keys, Message, Pid, Registry, Via};
use tokio::sync::{mpsc, oneshot};

/// A process that registers `keys` with `value`, reports, then waits for an order:
/// 0 = return, 1 = panic, anything else is ignored (to be killed).
fn owner(
    reg: Registry<String, u32>,
    keys: Vec<String>,
    value: u32,
    ready: mpsc::UnboundedSender<Result<(), RegistryError>>,
) -> orbit::Handle<u8> {
    orbit::spawn(move |mut ctx: Context<u8>| async move {
        let mut res = Ok(());
        for k in keys {
            if let Err(e) = reg.register(k, value) {
                res = Err(e);
            }
        }
        let _ = ready.send(res);
        loop {
            match ctx.recv().await {
                Message::Msg(0) => return,
                Message::Msg(1) => panic!("owner told to panic"),
                _ => {}
            }
        }
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_keys_semantics() {
    let reg: Registry<String, u32> = Registry::start(Keys::Unique, "kr_unique").unwrap();
    assert_eq!(
        Registry::<String, u32>::start(Keys::Unique, "kr_unique").unwrap_err(),
        RegistryError::NameTaken("kr_unique".into())
    );
    // Outside a process: refused.
    assert_eq!(
        reg.register("x".into(), 1),
        Err(RegistryError::NotInProcess)
    );
    let r = reg.clone();
    let (me, second) = orbit::run_in_process(async move {
        let me = orbit::self_pid().unwrap();
        r.register("a".into(), 7).unwrap();
        let second = r.register("a".into(), 8);
        r.register("b".into(), 9).unwrap();
        assert_eq!(r.lookup(&"a".to_string()), vec![(me, 7)]);
        let mut keys = r.keys(me);
        keys.sort();
        assert_eq!(keys, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(r.count(), 2);
        r.unregister(&"b".to_string()).unwrap();
        assert_eq!(r.keys(me), vec!["a".to_string()]);
        assert_eq!(r.count(), 1);
        // Another process cannot take "a".
        let r2 = r.clone();
        let other = orbit::run_in_process(async move { r2.register("a".into(), 1) })
            .await
            .unwrap();
        assert_eq!(other, Err(RegistryError::AlreadyRegistered(me)));
        (me, second)
    })
    .await
    .unwrap();
    assert_eq!(second, Err(RegistryError::AlreadyRegistered(me)));
    // run_in_process returns before its process finishes: wait on the exit.
    wait_dead(me).await;
    assert_eq!(reg.count(), 0);
    assert!(reg.lookup(&"a".to_string()).is_empty());
    assert!(reg.keys(me).is_empty());
    assert!(Registry::<String, u32>::named("kr_unique").is_some());
    assert!(Registry::<String, u64>::named("kr_unique").is_none());
    reg.stop();
    assert!(Registry::<String, u32>::named("kr_unique").is_none());
}

/// Waits until `pid` has exited, through a monitor.
async fn wait_dead(pid: Pid) {
    let (tx, rx) = oneshot::channel();
    orbit::spawn(move |mut ctx: Context<()>| async move {
        orbit::monitor(pid).unwrap();
        loop {
            if let Message::Down(d) = ctx.recv().await {
                if d.pid == pid {
                    let _ = tx.send(());
                    return;
                }
            }
        }
    })
    .unwrap();
    rx.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_select_match_dispatch() {
    let reg: Registry<String, u32> = Registry::start(Keys::Duplicate, "kr_dup").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut hs = Vec::new();
    for i in 0..10u32 {
        // Each registers "topic" twice and "own-i" once.
        let keys = vec!["topic".into(), "topic".into(), format!("own-{i}")];
        hs.push(owner(reg.clone(), keys, i, tx.clone()));
    }
    for _ in 0..10 {
        rx.recv().await.unwrap().unwrap();
    }
    assert_eq!(reg.count(), 30);
    assert_eq!(reg.count_key(&"topic".to_string()), 20);
    assert_eq!(reg.lookup(&"topic".to_string()).len(), 20);
    let odd = reg.match_values(&"topic".to_string(), |v| v % 2 == 1);
    assert_eq!(odd.len(), 10);
    let own = reg.select(|k, _, _| k.starts_with("own-"));
    assert_eq!(own.len(), 10);
    let mut seen = 0;
    let n = reg.dispatch(&"topic".to_string(), |entries| {
        for (pid, _) in entries {
            orbit::send(*pid, 7u8).ok();
            seen += 1;
        }
    });
    assert_eq!((n, seen), (20, 20));
    // Nothing under the key: the function is not called.
    assert_eq!(
        reg.dispatch(&"none".to_string(), |_| panic!("no entries")),
        0
    );
    // Kill half, let the other half return: no entries left.
    for (i, h) in hs.iter().enumerate() {
        if i % 2 == 0 {
            orbit::exit(h.pid(), ExitReason::Kill);
        } else {
            h.send(0).ok();
        }
    }
    for h in &hs {
        h.wait_exit().await;
    }
    assert_eq!(reg.count(), 0);
    assert!(reg.select(|_, _, _| true).is_empty());
    reg.stop();
}

/// Many owners exit in every way while others look up: after each exit is observed,
/// none of its entries remain, and the count ends at zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_go_away_however_the_owner_exits() {
    let reg: Registry<String, u32> = Registry::start(Keys::Unique, "kr_exits").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    const N: u32 = 300;
    let mut hs = Vec::new();
    for i in 0..N {
        hs.push(owner(
            reg.clone(),
            vec![format!("k{i}"), format!("j{i}")],
            i,
            tx.clone(),
        ));
    }
    for _ in 0..N {
        rx.recv().await.unwrap().unwrap();
    }
    assert_eq!(reg.count(), 2 * N as usize);
    for (i, h) in hs.iter().enumerate() {
        match i % 3 {
            0 => orbit::exit(h.pid(), ExitReason::Kill),
            1 => {
                h.send(1).ok();
            }
            _ => {
                h.send(0).ok();
            }
        }
    }
    let mut panics = 0;
    for (i, h) in hs.iter().enumerate() {
        let reason = h.wait_exit().await;
        if matches!(reason, ExitReason::Panic(_)) {
            panics += 1;
        }
        // Observed exited: its entries are gone already.
        assert!(reg.lookup(&format!("k{i}")).is_empty(), "stale k{i}");
        assert!(reg.keys(h.pid()).is_empty());
    }
    assert_eq!(panics, N / 3);
    assert_eq!(reg.select(|_, _, _| true), vec![]);
    assert_eq!(reg.count(), 0);
    reg.stop();
}

/// Registering races the owner's own death by an exit signal: every run ends with no
/// entry left, whichever came first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_racing_a_kill_leaves_nothing() {
    let reg: Registry<u32, ()> = Registry::start(Keys::Duplicate, "kr_race").unwrap();
    const N: u32 = 500;
    let mut hs = Vec::new();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    for i in 0..N {
        let r = reg.clone();
        let started = started_tx.clone();
        hs.push(
            orbit::spawn(move |_ctx: Context<()>| async move {
                let _ = started.send(());
                // Register in a loop, yielding so the kill lands between registrations.
                for j in 0..50u32 {
                    let _ = r.register(i * 100 + j % 3, ());
                    tokio::task::yield_now().await;
                }
                std::future::pending::<()>().await;
            })
            .unwrap(),
        );
    }
    // Every process is running its registration loop: the kills land between two
    // registrations (each yields), racing the registry's cleanup of earlier ones.
    for _ in 0..N {
        started_rx.recv().await.unwrap();
    }
    let mut seen_registered = 0;
    for h in &hs {
        seen_registered += usize::from(!reg.keys(h.pid()).is_empty());
        orbit::exit(h.pid(), ExitReason::Kill);
    }
    for h in &hs {
        assert_eq!(h.wait_exit().await, ExitReason::Killed);
        assert!(reg.keys(h.pid()).is_empty());
    }
    assert!(seen_registered > 0);
    assert_eq!(reg.count(), 0);
    assert!(reg.select(|_, _, _| true).is_empty());
    reg.stop();
}

struct Echo(u64);

impl GenServer for Echo {
    type Call = u64;
    type Reply = u64;
    type Cast = u64;
    type Info = u64;
    type Continue = ();

    async fn handle_call(
        &mut self,
        n: u64,
        _from: &mut ReplyTo<u64>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<u64, ()> {
        CallReply::Reply(self.0 + n)
    }
    async fn handle_cast(&mut self, n: u64, _ctx: &mut ServerContext<Self>) -> orbit::Next<()> {
        self.0 += n;
        orbit::Next::NoReply
    }
    async fn handle_info(
        &mut self,
        m: Message<u64>,
        _ctx: &mut ServerContext<Self>,
    ) -> orbit::Next<()> {
        if let Message::Msg(n) = m {
            self.0 += n;
        }
        orbit::Next::NoReply
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genserver_by_via_name_call_cast_send() {
    let reg: Registry<String, ()> = Registry::start(Keys::Unique, "kr_via").unwrap();
    let name = Via::new("kr_via", "echo".to_string());
    let s = gen_server::start_named(Echo(0), name.clone(), false)
        .await
        .unwrap();
    assert_eq!(orbit::whereis(name.clone()), Some(s.pid()));
    assert_eq!(reg.lookup(&"echo".to_string()), vec![(s.pid(), ())]);
    // A second server under the same name is refused, naming the holder.
    let again = gen_server::start_named(Echo(0), name.clone(), false).await;
    assert_eq!(again.unwrap_err(), StartError::AlreadyStarted(s.pid()));
    gen_server::cast::<Echo>(name.clone(), 2);
    orbit::send(name.clone(), 3u64).unwrap();
    assert_eq!(
        gen_server::call::<Echo>(name.clone(), 10).await.unwrap(),
        15
    );
    // Pid and local names through the same functions.
    assert_eq!(gen_server::call::<Echo>(s.pid(), 0).await.unwrap(), 5);
    orbit::register("kr_via_local", s.pid()).unwrap();
    assert_eq!(
        gen_server::call::<Echo>("kr_via_local", 1).await.unwrap(),
        6
    );
    s.stop(ExitReason::Normal, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(orbit::whereis(name.clone()), None);
    assert_eq!(reg.count(), 0);
    // Calls and sends through a name nobody holds fail saying so.
    assert!(matches!(
        gen_server::call::<Echo>(name.clone(), 0).await,
        Err(gen_server::CallError::NotRegistered(_))
    ));
    assert!(matches!(
        orbit::send(name.clone(), 1u64),
        Err(orbit::SendError::NotRegistered(_))
    ));
    // A via name on a registry that does not exist, or of another key type.
    assert_eq!(orbit::whereis(Via::new("kr_nope", 1u32)), None);
    assert_eq!(orbit::whereis(Via::new("kr_via", 1u32)), None);
    let bad = gen_server::start_named(Echo(0), Via::new("kr_via", 1u32), false).await;
    assert!(matches!(bad, Err(StartError::Init(_))));
    // The server's replacement under the same name is reached through it.
    let s2 = gen_server::start_named(Echo(40), name.clone(), false)
        .await
        .unwrap();
    assert_eq!(gen_server::call::<Echo>(name.clone(), 2).await.unwrap(), 42);
    let dest: Dest = name.into();
    assert_eq!(dest.whereis(), Some(s2.pid()));
    s2.stop(ExitReason::Normal, Duration::from_secs(5))
        .await
        .unwrap();
    reg.stop();
}

/// Via on a duplicate registry is refused (as Elixir does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_needs_unique_keys() {
    let reg: Registry<String, ()> = Registry::start(Keys::Duplicate, "kr_via_dup").unwrap();
    let r = gen_server::start_named(Echo(0), Via::new("kr_via_dup", "x".to_string()), false).await;
    assert!(matches!(r, Err(StartError::Init(_))));
    assert_eq!(reg.count(), 0);
    reg.stop();
}

/// `send_after_to` a via name: the name is resolved when the timer fires, so the
/// process registered then gets it (the one registered when it was set has exited).
/// Paused time: the timer can only fire once every task waits, so the handover always
/// comes first, however slow the machine.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn send_after_to_resolves_the_name_when_it_fires() {
    let reg: Registry<&'static str, ()> = Registry::start(Keys::Unique, "kr_timer").unwrap();
    let name = Via::new("kr_timer", "t");
    let listener = |tx: oneshot::Sender<(Pid, u64)>| {
        let name = name.clone();
        let (ready_tx, ready) = oneshot::channel();
        let h = orbit::spawn(move |mut ctx: Context<u64>| async move {
            let _ = ready_tx.send(name.register_self());
            if let Message::Msg(n) = ctx.recv().await {
                let _ = tx.send((ctx.pid(), n));
            }
        })
        .unwrap();
        (h, ready)
    };
    let (tx1, rx1) = oneshot::channel();
    let (first, ready) = listener(tx1);
    ready.await.unwrap().unwrap();
    // With time paused the handover below completes before the timer fires (a timer
    // firing before it would drop the message, and the wait below would fail).
    orbit::send_after_to(name.clone(), 5u64, Duration::from_millis(300)).unwrap();
    // The first holder exits before the timer fires; a second one takes the name.
    orbit::exit(first.pid(), ExitReason::Kill);
    first.wait_exit().await;
    drop(rx1);
    let (tx2, rx2) = oneshot::channel();
    let (second, ready) = listener(tx2);
    ready.await.unwrap().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx2).await;
    assert_eq!(got.expect("timer message").unwrap(), (second.pid(), 5));
    // A local name works the same way.
    let (tx3, rx3) = oneshot::channel();
    let third = orbit::spawn(move |mut ctx: Context<u64>| async move {
        if let Message::Msg(n) = ctx.recv().await {
            let _ = tx3.send(n);
        }
    })
    .unwrap();
    orbit::register("kr_timer_local", third.pid()).unwrap();
    orbit::send_after_to("kr_timer_local", 9u64, Duration::from_millis(1)).unwrap();
    assert_eq!(rx3.await.unwrap(), 9);
    second.wait_exit().await;
    assert_eq!(reg.count(), 0);
    reg.stop();
}
