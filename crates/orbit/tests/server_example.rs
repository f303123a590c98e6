//! How `DynamicSupervisor`'s client API reads on `orbit::server` (issue 18 item 5): one
//! request type per operation, each naming its reply, so the wrappers are one line each
//! and need no `unreachable!` arms (today's `DynCall`/`DynReply` need four). A test-only
//! sketch with plain processes as children, not a port: restarts and shutdown order are
//! left out.

use std::time::Duration;

use orbit::server::{self, Ctx, Handles, Reply, Request, Server, ServerHandle};
use orbit::*;

/// The children, in the order they were started; linked and trapped, so a child's exit
/// removes it.
#[derive(Default)]
struct MiniSup {
    children: Vec<Pid>,
    max: usize,
}

impl Server for MiniSup {
    type Info = ();

    async fn init(&mut self, ctx: &mut Ctx<Self>) -> server::InitResult {
        ctx.trap_exit(true);
        server::InitResult::Ok
    }

    async fn handle_info(&mut self, msg: Message<()>, _: &mut Ctx<Self>) -> server::InfoResult {
        if let Message::Exit { from, .. } = msg {
            self.children.retain(|c| *c != from);
        }
        server::InfoResult::Continue
    }
}

/// Starts a child that runs until told to stop (or killed).
struct StartChild;
impl Request for StartChild {
    type Reply = Result<Pid, String>;
}

/// Kills a child and removes it.
struct TerminateChild(Pid);
impl Request for TerminateChild {
    type Reply = Result<(), String>;
}

struct WhichChildren;
impl Request for WhichChildren {
    type Reply = Vec<Pid>;
}

struct CountChildren;
impl Request for CountChildren {
    type Reply = usize;
}

impl Handles<StartChild> for MiniSup {
    async fn handle(
        &mut self,
        _: StartChild,
        _: &mut ReplyTo<Result<Pid, String>>,
        _: &mut Ctx<Self>,
    ) -> Reply<Result<Pid, String>> {
        if self.children.len() >= self.max {
            return Err("max_children".to_string()).into();
        }
        let child = Spawn::new()
            .link()
            .spawn(|mut c: Context<()>| async move {
                c.recv().await;
            })
            .map(|h| h.pid())
            .map_err(|e| e.to_string());
        if let Ok(pid) = child {
            self.children.push(pid);
        }
        child.into()
    }
}

impl Handles<TerminateChild> for MiniSup {
    async fn handle(
        &mut self,
        TerminateChild(pid): TerminateChild,
        _: &mut ReplyTo<Result<(), String>>,
        _: &mut Ctx<Self>,
    ) -> Reply<Result<(), String>> {
        let Some(i) = self.children.iter().position(|c| *c == pid) else {
            return Err("not_found".to_string()).into();
        };
        self.children.remove(i);
        let _ = unlink(pid);
        exit(pid, ExitReason::Kill);
        Ok(()).into()
    }
}

impl Handles<WhichChildren> for MiniSup {
    async fn handle(
        &mut self,
        _: WhichChildren,
        _: &mut ReplyTo<Vec<Pid>>,
        _: &mut Ctx<Self>,
    ) -> Reply<Vec<Pid>> {
        self.children.clone().into()
    }
}

impl Handles<CountChildren> for MiniSup {
    async fn handle(
        &mut self,
        _: CountChildren,
        _: &mut ReplyTo<usize>,
        _: &mut Ctx<Self>,
    ) -> Reply<usize> {
        self.children.len().into()
    }
}

/// The client API: each wrapper is the call itself.
struct MiniSupRef(ServerHandle<MiniSup>);

const FOREVER: Duration = server::INFINITY;

impl MiniSupRef {
    async fn start_child(&self) -> Result<Result<Pid, String>, CallError> {
        self.0.call_timeout(StartChild, FOREVER).await
    }
    async fn terminate_child(&self, pid: Pid) -> Result<Result<(), String>, CallError> {
        self.0.call_timeout(TerminateChild(pid), FOREVER).await
    }
    async fn which_children(&self) -> Result<Vec<Pid>, CallError> {
        self.0.call_timeout(WhichChildren, FOREVER).await
    }
    async fn count_children(&self) -> Result<usize, CallError> {
        self.0.call_timeout(CountChildren, FOREVER).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_shaped_api_needs_no_unreachable_arms() {
    let sup = MiniSupRef(
        server::start(MiniSup {
            max: 2,
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let a = sup.start_child().await.unwrap().unwrap();
    let b = sup.start_child().await.unwrap().unwrap();
    assert_eq!(sup.start_child().await.unwrap(), Err("max_children".into()));
    assert_eq!(sup.which_children().await.unwrap(), vec![a, b]);
    sup.terminate_child(a).await.unwrap().unwrap();
    assert_eq!(
        sup.terminate_child(a).await.unwrap(),
        Err("not_found".into())
    );
    assert_eq!(sup.count_children().await.unwrap(), 1);
    // A child that exits on its own is removed (its EXIT reaches handle_info).
    let hb = Handle::<()>::from_pid(b).unwrap();
    hb.send(()).unwrap();
    hb.wait_exit().await;
    // The link's EXIT is queued (as a signal, served before messages) before
    // `wait_exit` returns: the next call sees it handled.
    assert_eq!(sup.count_children().await.unwrap(), 0);
    assert!(sup.which_children().await.unwrap().is_empty());
}
