//! Processes, links, monitors, names and timers: otp-semantics §1.

use std::time::Duration;

use orbit::*;
use tokio::sync::oneshot;

/// A process that answers `Some(reply_to)` pings and reports trapped exits / DOWNs.
enum Probe {
    Ping(oneshot::Sender<()>),
}

async fn echo_loop(mut ctx: Context<Probe>, events: tokio::sync::mpsc::UnboundedSender<String>) {
    loop {
        match ctx.recv().await {
            Message::Msg(Probe::Ping(tx)) => {
                let _ = tx.send(());
            }
            Message::Exit { from, reason } => {
                let _ = events.send(format!("EXIT {from} {reason}"));
            }
            Message::Down(d) => {
                let _ = events.send(format!("DOWN {} {}", d.pid, d.reason));
            }
        }
    }
}

async fn idle<M: Send + 'static>(c: &mut Context<M>) {
    loop {
        c.recv().await;
    }
}

async fn ping(h: &Handle<Probe>) -> bool {
    let (tx, rx) = oneshot::channel();
    h.send(Probe::Ping(tx)).is_ok() && rx.await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_propagates_along_a_link() {
    let (child_tx, child_rx) = oneshot::channel::<Handle<()>>();
    let parent = spawn(|_ctx: Context<()>| async move {
        let child = spawn_link(|mut ctx: Context<()>| async move {
            ctx.recv().await;
            if true {
                panic!("boom");
            }
        })
        .unwrap();
        let _ = child_tx.send(child);
        std::future::pending::<()>().await;
    })
    .unwrap();
    let child = child_rx.await.unwrap();
    child.send(()).unwrap();
    assert_eq!(child.wait_exit().await, ExitReason::Panic("boom".into()));
    assert_eq!(parent.wait_exit().await, ExitReason::Panic("boom".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_exit_turns_exit_signals_into_messages() {
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (child_tx, child_rx) = oneshot::channel::<Handle<()>>();
    let parent = spawn(move |ctx: Context<Probe>| async move {
        ctx.trap_exit(true);
        let child = spawn_link(|mut c: Context<()>| async move {
            c.recv().await;
            ExitReason::error("bad")
        })
        .unwrap();
        let _ = child_tx.send(child);
        echo_loop(ctx, events_tx).await
    })
    .unwrap();
    let child = child_rx.await.unwrap();
    child.send(()).unwrap();
    let ev = events.recv().await.unwrap();
    assert_eq!(ev, format!("EXIT {} bad", child.pid()));
    assert!(ping(&parent).await, "a trapping process survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_exit_does_not_kill_a_linked_process() {
    let (events_tx, _events) = tokio::sync::mpsc::unbounded_channel();
    let (child_tx, child_rx) = oneshot::channel::<Handle<()>>();
    let parent = spawn(move |ctx: Context<Probe>| async move {
        let child = spawn_link(|mut c: Context<()>| async move {
            c.recv().await;
        })
        .unwrap();
        let _ = child_tx.send(child);
        echo_loop(ctx, events_tx).await
    })
    .unwrap();
    let child = child_rx.await.unwrap();
    child.send(()).unwrap();
    assert_eq!(child.wait_exit().await, ExitReason::Normal);
    // The exit signal was delivered before wait_exit returned.
    assert!(ping(&parent).await);
    assert!(process_info(parent.pid()).unwrap().links.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_cannot_be_trapped_and_links_see_killed() {
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (victim_tx, victim_rx) = oneshot::channel::<Pid>();
    let watcher = spawn(move |ctx: Context<Probe>| async move {
        ctx.trap_exit(true);
        let victim = Spawn::new()
            .link()
            .trap_exit()
            .spawn(|mut c: Context<()>| async move { idle(&mut c).await })
            .unwrap();
        let _ = victim_tx.send(victim.pid());
        echo_loop(ctx, events_tx).await
    })
    .unwrap();
    let victim = victim_rx.await.unwrap();
    exit(victim, ExitReason::Shutdown); // trapped: the victim lives on
    exit(victim, ExitReason::Kill);
    assert_eq!(
        events.recv().await.unwrap(),
        format!("EXIT {victim} killed")
    );
    assert!(ping(&watcher).await);
    assert!(process_info(victim).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_signal_kills_a_non_trapping_process_with_the_reason() {
    let h = spawn(|mut c: Context<()>| async move {
        c.recv().await;
    })
    .unwrap();
    exit(h.pid(), ExitReason::Normal); // ignored: normal does not kill another process
    exit(h.pid(), ExitReason::error("told to die"));
    assert_eq!(h.wait_exit().await, ExitReason::error("told to die"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_on_a_dead_pid_gives_noproc() {
    let dead = spawn(|_c: Context<()>| async {}).unwrap();
    dead.wait_exit().await;
    let dead_pid = dead.pid();
    let got = run_in_process(async move {
        let r = monitor(dead.pid()).unwrap();
        let mut found = None;
        // The DOWN was queued at once; the process's own mailbox is reached via a fresh
        // process below.
        let (tx, rx) = oneshot::channel();
        let h = spawn(move |mut c: Context<()>| async move {
            let r2 = monitor(dead.pid()).unwrap();
            if let Message::Down(d) = c.recv().await {
                let _ = tx.send((r2, d));
            }
        })
        .unwrap();
        if let Ok((r2, d)) = rx.await {
            found = Some((r2 == d.monitor, d.pid, d.reason));
        }
        h.wait_exit().await;
        let _ = r;
        found
    })
    .await
    .unwrap();
    assert_eq!(got, Some((true, dead_pid, ExitReason::NoProc)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exited_pid_names_no_process_now_or_later() {
    let stand_in = exited_pid().unwrap();
    assert!(stand_in.is_local());
    assert!(process_info(stand_in).is_none());
    // Exit signals find nothing, a monitor gets noproc.
    exit(stand_in, ExitReason::Kill);
    let (tx, rx) = oneshot::channel();
    let h = spawn(move |mut c: Context<()>| async move {
        let r = monitor(stand_in).unwrap();
        if let Message::Down(d) = c.recv().await {
            let _ = tx.send((r == d.monitor, d.pid, d.reason));
        }
    })
    .unwrap();
    let (same_ref, pid, reason) = rx.await.unwrap();
    h.wait_exit().await;
    assert!(same_ref);
    assert_eq!((pid, reason), (stand_in, ExitReason::NoProc));
    // The slot is reused with a new serial: no later process gets the pid.
    let later: Vec<_> = (0..64)
        .map(|_| spawn(|_c: Context<()>| async {}).unwrap())
        .collect();
    assert!(later.iter().all(|p| p.pid() != stand_in));
    assert!(exited_pid().unwrap() != stand_in);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_fires_exactly_once_with_the_reason() {
    let target = spawn(|mut c: Context<()>| async move {
        c.recv().await;
        ExitReason::error("done")
    })
    .unwrap();
    let t = target.clone();
    let (tx, rx) = oneshot::channel();
    let watcher = spawn(move |mut c: Context<u8>| async move {
        let r = monitor(t.pid()).unwrap();
        let r_twice = monitor(t.pid()).unwrap();
        t.send(()).unwrap();
        let mut downs = vec![];
        while downs.len() < 2 {
            if let Message::Down(d) = c.recv().await {
                downs.push(d);
            }
        }
        // After both DOWNs, a plain message must be next: no third DOWN.
        let next = c.recv().await;
        let _ = tx.send((r, r_twice, downs, matches!(next, Message::Msg(7))));
    })
    .unwrap();
    target.wait_exit().await;
    watcher.send(7).unwrap();
    let (r, r2, downs, then_msg) = rx.await.unwrap();
    assert_eq!(downs.len(), 2);
    assert_eq!(downs[0].monitor, r);
    assert_eq!(downs[1].monitor, r2);
    assert!(downs.iter().all(|d| d.reason == ExitReason::error("done")));
    assert!(then_msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demonitor_with_flush_removes_a_pending_down() {
    let target = spawn(|mut c: Context<()>| async move {
        c.recv().await;
    })
    .unwrap();
    let t = target.clone();
    let (tx, rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let watcher = spawn(move |mut c: Context<u8>| async move {
        let r = monitor(t.pid()).unwrap();
        t.send(()).unwrap();
        let _ = go_rx.await; // the target has exited: its DOWN is queued
        let flushed = demonitor(r, true).unwrap();
        let next = c.recv().await;
        let _ = tx.send((flushed, matches!(next, Message::Msg(1))));
    })
    .unwrap();
    target.wait_exit().await;
    go_tx.send(()).unwrap();
    watcher.send(1).unwrap();
    assert_eq!(rx.await.unwrap(), (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_register_resolve_and_free_on_death() {
    let h = spawn(|mut c: Context<u32>| async move {
        while let Message::Msg(n) = c.recv().await {
            if n == 0 {
                break;
            }
        }
    })
    .unwrap();
    register("names_test_a", h.pid()).unwrap();
    assert_eq!(whereis("names_test_a"), Some(h.pid()));
    assert!(matches!(
        register("names_test_a", h.pid()),
        Err(Error::NameTaken { .. })
    ));
    assert!(matches!(
        register("names_test_b", h.pid()),
        Err(Error::AlreadyNamed { .. })
    ));
    assert!(process_info(h.pid()).unwrap().registered_name.as_deref() == Some("names_test_a"));
    send_named("names_test_a", 5u32).unwrap();
    assert_eq!(
        send_named("names_test_a", "wrong type"),
        Err(SendError::WrongType(h.pid()))
    );
    send_named("names_test_a", 0u32).unwrap();
    h.wait_exit().await;
    assert_eq!(whereis("names_test_a"), None);
    assert!(matches!(
        send_named("names_test_a", 1u32),
        Err(SendError::NotRegistered(_))
    ));
    assert!(matches!(
        unregister("names_test_a"),
        Err(Error::NotRegistered(_))
    ));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn send_after_delivers_and_cancel_timer_prevents_delivery() {
    let (tx, rx) = oneshot::channel();
    let h = spawn(move |mut c: Context<u32>| async move {
        if let Message::Msg(n) = c.recv().await {
            let _ = tx.send(n);
        }
    })
    .unwrap();
    let t1 = send_after(&h, 1, Duration::from_millis(50)).unwrap();
    let _t2 = send_after(&h, 2, Duration::from_millis(100)).unwrap();
    let left = cancel_timer(&t1).unwrap();
    assert!(left <= Duration::from_millis(50));
    assert_eq!(rx.await.unwrap(), 2, "the cancelled timer never fired");
    assert_eq!(cancel_timer(&t1), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_crash_and_the_runtime_survives() {
    let h = spawn(|_c: Context<()>| async move {
        if true {
            panic!("kaboom");
        }
    })
    .unwrap();
    assert_eq!(h.wait_exit().await, ExitReason::Panic("kaboom".into()));
    let ok = spawn(|_c: Context<()>| async move { ExitReason::Shutdown }).unwrap();
    assert_eq!(ok.wait_exit().await, ExitReason::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_a_dead_process_is_reported() {
    let h = spawn(|_c: Context<u8>| async {}).unwrap();
    h.wait_exit().await;
    assert!(h.send(1).is_err());
    assert_eq!(send(h.pid(), 1u8), Err(SendError::NoProc(h.pid())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_pids_need_distribution() {
    let remote = Pid::remote("elixir@127.0.0.1", 100, 0, 1);
    assert_eq!(send(remote, 1u8), Err(SendError::NotDistributed));
    let r = run_in_process(async move { link(remote) }).await.unwrap();
    assert_eq!(r, Err(Error::NotDistributed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_only_calls_fail_clearly_outside_a_process() {
    assert_eq!(self_pid(), None);
    assert_eq!(link(Pid::NONE), Err(Error::NotInProcess));
    assert!(matches!(
        spawn_link(|_c: Context<()>| async {}),
        Err(Error::NotInProcess)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_to_a_dead_process_sends_noproc() {
    let dead = spawn(|_c: Context<()>| async {}).unwrap();
    dead.wait_exit().await;
    let dead_pid = dead.pid();
    let (tx, rx) = oneshot::channel();
    let h = spawn(move |mut c: Context<()>| async move {
        c.trap_exit(true);
        link(dead_pid).unwrap();
        if let Message::Exit { from, reason } = c.recv().await {
            let _ = tx.send((from, reason));
        }
    })
    .unwrap();
    assert_eq!(rx.await.unwrap(), (dead_pid, ExitReason::NoProc));
    h.wait_exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_info_reports_mailbox_and_counters() {
    let (tx, rx) = oneshot::channel::<()>();
    let (handled_tx, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let h = Spawn::new()
        .label("probe")
        .spawn(move |mut c: Context<u32>| async move {
            let _ = rx.await; // hold messages in the mailbox until released
            while let Message::Msg(n) = c.recv().await {
                let _ = handled_tx.send(n);
            }
        })
        .unwrap();
    for i in 0..10 {
        h.send(i).unwrap();
    }
    let info = process_info(h.pid()).unwrap();
    assert_eq!(info.message_queue_len, 10);
    assert_eq!(info.messages_in, 10);
    assert_eq!(info.label, Some("probe"));
    assert_eq!(top(1)[0].pid, h.pid());
    assert!(processes().contains(&h.pid()));
    tx.send(()).unwrap();
    for _ in 0..10 {
        handled.recv().await.unwrap();
    }
    // A message counts as handled when the process takes it; all ten were reported
    // through the channel, so at least nine (and in fact ten) are counted.
    let info = process_info(h.pid()).unwrap();
    assert!(info.messages_handled >= 9, "{info:?}");
    assert!(info.message_queue_len <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_handlers_are_counted() {
    set_long_handler_threshold(Duration::from_millis(5));
    let (tx, rx) = oneshot::channel();
    let h = spawn(move |mut c: Context<u8>| async move {
        let _ = c.recv().await;
        std::thread::sleep(Duration::from_millis(20)); // the long handler under test
        let _ = c.recv().await;
        let _ = tx.send(process_info(c.pid()).unwrap().long_handlers);
    })
    .unwrap();
    h.send(1).unwrap();
    h.send(2).unwrap();
    assert_eq!(rx.await.unwrap(), 1);
    set_long_handler_threshold(Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_monitor_reports_the_exit() {
    let r = run_in_process(async {
        let (tx, rx) = oneshot::channel();
        let outer = spawn(move |mut c: Context<()>| async move {
            let (h, r) = spawn_monitor(|_c: Context<()>| async { ExitReason::error("x") }).unwrap();
            if let Message::Down(d) = c.recv().await {
                let _ = tx.send((d.monitor == r, d.pid == h.pid(), d.reason));
            }
        })
        .unwrap();
        let got = rx.await.unwrap();
        outer.wait_exit().await;
        got
    })
    .await
    .unwrap();
    assert_eq!(r, (true, true, ExitReason::error("x")));
}

/// Pids name process-table slots that are reused with a new serial: a pid kept after
/// its process exited never reaches the process that reuses the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_pid_never_reaches_the_process_reusing_its_slot() {
    let mut seen = std::collections::HashMap::new();
    let mut reused = 0;
    let mut prev: Option<Pid> = None;
    for _ in 0..200 {
        let h = spawn(|mut c: Context<u32>| async move {
            let _ = c.recv().await;
        })
        .unwrap();
        let pid = h.pid();
        // The previous process's slot is most likely this one's: its pid stays dead.
        if let Some(p) = prev {
            assert!(process_info(p).is_none());
            assert!(
                orbit::send(p, 2u32).is_err(),
                "a stale pid reached a process"
            );
        }
        // Serials only grow for a slot: no pid is ever handed out twice.
        if let Some(old_serial) = seen.insert(pid.id(), pid.serial()) {
            assert!(pid.serial() > old_serial, "{pid} reused a serial");
            reused += 1;
        }
        assert!(processes().contains(&pid));
        h.send(1).unwrap();
        assert_eq!(h.wait_exit().await, ExitReason::Normal);
        assert!(process_info(pid).is_none());
        assert!(
            orbit::send(pid, 2u32).is_err(),
            "a dead pid must not accept a send"
        );
        prev = Some(pid);
    }
    // Slots of exited processes are reused (other tests spawn concurrently, so not
    // every slot comes back here, but most do).
    assert!(reused > 0, "no slot was reused in 200 spawn/exit cycles");
}

/// Spawns and exits racing on both workers: the table's free-slot stack never hands one
/// slot to two live processes, and every slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spawns_and_exits_never_share_a_live_pid() {
    let before = process_count();
    let churn = |rounds: usize| async move {
        let mut seen = Vec::new();
        for _ in 0..rounds {
            let batch: Vec<_> = (0..50)
                .map(|_| {
                    spawn(|mut c: Context<()>| async move {
                        let _ = c.recv().await;
                    })
                    .unwrap()
                })
                .collect();
            for h in &batch {
                seen.push(h.pid());
            }
            // While the whole batch lives, its pids are distinct live processes.
            let live: std::collections::HashSet<Pid> = batch.iter().map(|h| h.pid()).collect();
            assert_eq!(live.len(), batch.len());
            for h in &batch {
                assert!(process_info(h.pid()).is_some());
                h.send(()).unwrap();
            }
            for h in &batch {
                assert_eq!(h.wait_exit().await, ExitReason::Normal);
            }
        }
        seen
    };
    let (a, b) = tokio::join!(tokio::spawn(churn(40)), tokio::spawn(churn(40)));
    let (a, b) = (a.unwrap(), b.unwrap());
    // No (id, serial) pair was ever handed out twice, across both spawners.
    let all: std::collections::HashSet<Pid> = a.iter().chain(b.iter()).copied().collect();
    assert_eq!(all.len(), a.len() + b.len());
    // Slots were reused (4,000 spawns, at most 100 alive at once per round pair)...
    let ids: std::collections::HashSet<u32> = all.iter().map(|p| p.id()).collect();
    assert!(ids.len() < all.len(), "no slot was reused");
    // ...and every one came back: the table holds what it held before (other tests in
    // this binary may be running, so allow for their processes).
    for p in &all {
        assert!(process_info(*p).is_none());
    }
    assert!(process_count() <= before + 200);
}
