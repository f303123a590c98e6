//! Access modes, owners, heirs, give_away and named tables. Ordering is by events
//! (messages, exits), never by sleeping.

use orbit::ets::{self, EtsError, EtsTransfer, Protection, Table};
use orbit::{run_in_process, spawn, Context, ExitReason, Message, Pid};
use tokio::sync::oneshot;

type T = Table<u32, String>;

/// Runs `f` in a fresh process and returns its result.
async fn in_proc<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    run_in_process(async move { f() }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_modes_are_enforced_against_the_caller() {
    for p in [
        Protection::Public,
        Protection::Protected,
        Protection::Private,
    ] {
        let (tx, rx) = oneshot::channel::<T>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let owner = spawn(move |_ctx: Context<()>| async move {
            let t: T = Table::builder().protection(p).build().unwrap();
            t.insert(1, "one".into()).unwrap();
            tx.send(t).unwrap();
            let _ = done_rx.await;
        })
        .unwrap();
        let t = rx.await.unwrap();
        let t2 = t.clone();
        let (read, write) = in_proc(move || (t2.lookup(&1), t2.insert(2, "two".into()))).await;
        match p {
            Protection::Public => {
                assert_eq!(read.unwrap(), vec![(1, "one".to_string())]);
                write.unwrap();
            }
            Protection::Protected => {
                assert_eq!(read.unwrap(), vec![(1, "one".to_string())]);
                match write {
                    Err(EtsError::AccessDenied { owner: o, op, .. }) => {
                        assert_eq!(o, owner.pid());
                        assert_eq!(op, "write");
                    }
                    other => panic!("expected access denied, got {other:?}"),
                }
            }
            Protection::Private => {
                assert!(matches!(read, Err(EtsError::AccessDenied { .. })));
                assert!(matches!(write, Err(EtsError::AccessDenied { .. })));
                // Outside any process is a non-owner too.
                assert!(matches!(t.lookup(&1), Err(EtsError::AccessDenied { .. })));
            }
        }
        // info is allowed for everyone; its message names the owner.
        let info = t.info().unwrap();
        assert_eq!(info.owner, owner.pid());
        assert_eq!(info.protection, p);
        let msg = EtsError::AccessDenied {
            table: "x".into(),
            op: "write",
            protection: p,
            owner: owner.pid(),
            caller: Pid::NONE,
        }
        .to_string();
        assert!(msg.contains(&owner.pid().to_string()));
        let _ = done_tx.send(());
        owner.wait_exit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_dies_with_its_owner() {
    let (tx, rx) = oneshot::channel::<T>();
    let h = spawn(move |_ctx: Context<()>| async move {
        let t: T = Table::builder()
            .public()
            .named("dies_with_owner")
            .build()
            .unwrap();
        t.insert(1, "x".into()).unwrap();
        tx.send(t).unwrap();
    })
    .unwrap();
    let t = rx.await.unwrap();
    assert_eq!(h.wait_exit().await, ExitReason::Normal);
    // The watcher deletes the table after the DOWN: wait for that event by polling the
    // table's state through yields (no sleeps needed for ordering).
    while t.is_alive() {
        tokio::task::yield_now().await;
    }
    assert!(matches!(t.lookup(&1), Err(EtsError::Deleted(_))));
    assert!(matches!(
        ets::whereis::<u32, String>("dies_with_owner"),
        Err(EtsError::NoSuchName(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heir_inherits_and_gets_ets_transfer() {
    type Msg = EtsTransfer<u32, String, &'static str>;
    let (got_tx, got_rx) = oneshot::channel::<(Pid, &'static str, Vec<(u32, String)>, Pid)>();
    let heir = spawn(move |mut ctx: Context<Msg>| async move {
        if let Message::Msg(tr) = ctx.recv().await {
            // The heir now owns the table: it may write a protected table.
            tr.table.insert(2, "by heir".into()).unwrap();
            let owner = tr.table.owner();
            let objs = tr.table.tab2list().unwrap();
            got_tx.send((tr.from, tr.heir_data, objs, owner)).unwrap();
        }
        // Keep the table alive until told to stop.
        let _ = ctx.recv().await;
    })
    .unwrap();
    let heir_pid = heir.pid();
    let (tx, rx) = oneshot::channel::<T>();
    let owner = spawn(move |_ctx: Context<()>| async move {
        let t: T = Table::builder()
            .ordered_set()
            .heir(heir_pid, "inherit")
            .build()
            .unwrap();
        t.insert(1, "by owner".into()).unwrap();
        tx.send(t).unwrap();
    })
    .unwrap();
    let t = rx.await.unwrap();
    let owner_pid = owner.pid();
    owner.wait_exit().await;
    let (from, data, objs, new_owner) = got_rx.await.unwrap();
    assert_eq!(from, owner_pid);
    assert_eq!(data, "inherit");
    assert_eq!(new_owner, heir_pid);
    assert_eq!(
        objs,
        vec![(1, "by owner".to_string()), (2, "by heir".to_string())]
    );
    assert_eq!(t.info().unwrap().owner, heir_pid);
    // When the heir (now owner, with itself as heir) exits, the table goes.
    heir.send(EtsTransfer {
        table: t.clone(),
        from: Pid::NONE,
        heir_data: "stop",
    })
    .unwrap();
    heir.wait_exit().await;
    while t.is_alive() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heir_with_wrong_mailbox_type_means_deletion() {
    let heir = spawn(|mut ctx: Context<u64>| async move {
        let _ = ctx.recv().await;
    })
    .unwrap();
    let heir_pid = heir.pid();
    let (tx, rx) = oneshot::channel::<T>();
    let owner = spawn(move |_ctx: Context<()>| async move {
        let t: T = Table::builder().heir(heir_pid, ()).build().unwrap();
        tx.send(t).unwrap();
    })
    .unwrap();
    let t = rx.await.unwrap();
    owner.wait_exit().await;
    while t.is_alive() {
        tokio::task::yield_now().await;
    }
    heir.send(0).unwrap();
    heir.wait_exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn give_away_transfers_ownership() {
    type Msg = EtsTransfer<u32, String, u8>;
    let (got_tx, got_rx) = oneshot::channel::<(Pid, u8)>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let receiver = spawn(move |mut ctx: Context<Msg>| async move {
        if let Message::Msg(tr) = ctx.recv().await {
            tr.table.insert(7, "mine now".into()).unwrap();
            got_tx.send((tr.from, tr.heir_data)).unwrap();
        }
        let _ = stop_rx.await;
    })
    .unwrap();
    let rpid = receiver.pid();
    let (tx, rx) = oneshot::channel::<(T, Pid)>();
    let (gone_tx, gone_rx) = oneshot::channel::<()>();
    let giver = spawn(move |_ctx: Context<()>| async move {
        let t: T = Table::new().unwrap();
        // Only the owner may give it away; not to itself; not to a dead pid.
        assert!(matches!(
            t.give_away(orbit::self_pid().unwrap(), 1u8),
            Err(EtsError::AlreadyOwner(_))
        ));
        t.give_away(rpid, 42u8).unwrap();
        // No longer the owner: writes are refused.
        assert!(matches!(
            t.insert(1, "x".into()),
            Err(EtsError::AccessDenied { .. })
        ));
        tx.send((t, orbit::self_pid().unwrap())).unwrap();
        let _ = gone_rx.await;
    })
    .unwrap();
    let (t, giver_pid) = rx.await.unwrap();
    assert_eq!(got_rx.await.unwrap(), (giver_pid, 42));
    // The old owner's exit no longer deletes the table.
    gone_tx.send(()).unwrap();
    giver.wait_exit().await;
    assert_eq!(t.lookup_element(&7).unwrap(), "mine now");
    // An outsider cannot give it away.
    let t2 = t.clone();
    assert!(matches!(
        in_proc(move || t2.give_away(rpid, 0u8)).await,
        Err(EtsError::AccessDenied { .. })
    ));
    // Receiver exits: the table goes with it.
    stop_tx.send(()).unwrap();
    receiver.wait_exit().await;
    while t.is_alive() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn give_away_to_wrong_mailbox_type_keeps_owner() {
    let other = spawn(|mut ctx: Context<u64>| async move {
        let _ = ctx.recv().await;
    })
    .unwrap();
    let opid = other.pid();
    let r = in_proc(move || {
        let t: T = Table::new().unwrap();
        let r = t.give_away(opid, ());
        (
            r.is_err(),
            t.owner() == orbit::self_pid().unwrap(),
            t.insert(1, "still mine".into()).is_ok(),
        )
    })
    .await;
    assert_eq!(r, (true, true, true));
    other.send(0).unwrap();
    other.wait_exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_callers_own_tables_they_create() {
    // Created outside any process: owned by no process, writable from outside,
    // protected against processes.
    let t: T = Table::builder().named("outside_owned").build().unwrap();
    assert_eq!(t.owner(), Pid::NONE);
    t.insert(1, "a".into()).unwrap();
    let t2 = t.clone();
    let (r, w) = in_proc(move || (t2.get(&1), t2.insert(2, "b".into()))).await;
    assert_eq!(r.unwrap(), Some("a".to_string()));
    assert!(matches!(w, Err(EtsError::AccessDenied { .. })));
    // Named lookup, type mismatch, duplicate name.
    let again = ets::whereis::<u32, String>("outside_owned").unwrap();
    assert_eq!(again, t);
    assert!(matches!(
        ets::whereis::<u64, String>("outside_owned"),
        Err(EtsError::NameTypeMismatch { .. })
    ));
    assert!(matches!(
        Table::<u32, String>::builder()
            .named("outside_owned")
            .build(),
        Err(EtsError::NameTaken(_))
    ));
    assert!(ets::named_tables().iter().any(|n| &**n == "outside_owned"));
    t.delete_table().unwrap();
    assert!(matches!(t.insert(1, "x".into()), Err(EtsError::Deleted(_))));
    assert!(ets::whereis::<u32, String>("outside_owned").is_err());
    // The name is free again.
    Table::<u32, String>::builder()
        .named("outside_owned")
        .build()
        .unwrap()
        .delete_table()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_problem() {
    let t: Table<u32, u64> = Table::builder().bag().public().build().unwrap();
    t.insert(1, 1).unwrap();
    let e = t.update_counter(&1, 1).unwrap_err();
    assert!(matches!(e, EtsError::WrongType { .. }));
    assert!(e.to_string().contains("set or ordered_set"));
    let s: Table<u32, u8> = Table::builder().public().build().unwrap();
    assert!(matches!(s.lookup_element(&5), Err(EtsError::NotFound(_))));
    assert!(matches!(
        s.update_counter(&5, 1),
        Err(EtsError::NotFound(_))
    ));
    s.insert(5, 250).unwrap();
    assert!(matches!(
        s.update_counter(&5, 10),
        Err(EtsError::Overflow(_))
    ));
    assert_eq!(s.get(&5).unwrap(), Some(250));
    assert_eq!(
        s.update_counter(&5, orbit::ets::CounterOp::threshold(10, 255, 0))
            .unwrap(),
        0
    );
    assert!(matches!(s.next(&77), Err(EtsError::BadArg(_))));
    let info = s.info().unwrap();
    assert_eq!(info.size, 1);
    assert!(info.memory > 0);
}
