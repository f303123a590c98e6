//! A GenServer's process: starting it (spawn, register, wait for `init`), its receive
//! loop, and stopping it.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::oneshot;

use super::*;
use crate::process::{self, Handle, Spawn};

pub(super) async fn start_inner<G: GenServer>(
    server: G,
    link: bool,
    timeout: Option<Duration>,
    name: Option<Dest>,
) -> Result<ServerRef<G>, StartError> {
    let (ack_tx, ack_rx) = oneshot::channel();
    let parent = if link { process::self_pid() } else { None };
    let mut spawn = Spawn::new().label("gen_server");
    if link {
        spawn = spawn.link();
    }
    let handle = process::spawn_with(spawn, Some(adapt::<G>), move |ctx| {
        run(server, ServerContext { ctx, parent }, name, ack_tx)
    })?;
    await_init(&handle, ack_rx, timeout).await?;
    Ok(ServerRef { handle })
}

/// Waits for a starting server's `init` to answer (up to `timeout`, then the server is
/// killed); a server that exits without answering gives its exit reason.
pub(crate) async fn await_init<M: Send + 'static>(
    handle: &Handle<M>,
    ack_rx: oneshot::Receiver<Result<(), StartError>>,
    timeout: Option<Duration>,
) -> Result<(), StartError> {
    let ack = match timeout {
        None => ack_rx.await,
        Some(t) => match crate::deadline::timeout(t, ack_rx).await {
            Ok(a) => a,
            Err(_) => {
                crate::signal::exit(handle.pid(), ExitReason::Kill);
                return Err(StartError::Init(ExitReason::error("init timed out")));
            }
        },
    };
    match ack {
        Ok(r) => r,
        Err(_) => Err(StartError::Init(handle.wait_exit().await)),
    }
}

/// Registers the starting server (the calling process) under `name`.
fn register_name(name: &Dest, me: Pid) -> Result<(), StartError> {
    match name {
        Dest::Local(n) => crate::registry::register(n, me).map_err(|e| match e {
            Error::NameTaken { pid, .. } => StartError::AlreadyStarted(pid),
            other => StartError::Spawn(other),
        }),
        Dest::Via(v) => v.register_self().map_err(|e| match e {
            crate::registry::RegistryError::AlreadyRegistered(pid) => {
                StartError::AlreadyStarted(pid)
            }
            other => StartError::Init(ExitReason::error(other.to_string())),
        }),
        Dest::Pid(p) => Err(StartError::Init(ExitReason::error(format!(
            "{p} is a pid, not a name: start with a local or via name"
        )))),
        Dest::Remote { .. } => Err(StartError::Init(ExitReason::error(format!(
            "{name} names a process of another node: start with a local or via name"
        )))),
    }
}

/// Sends a server its stop message and waits up to `timeout` for it to exit.
pub(crate) async fn stop_and_wait<M: Send + 'static>(
    handle: &Handle<M>,
    stop: M,
    timeout: Duration,
) -> Result<(), CallError> {
    if handle.send(stop).is_err() {
        return Err(CallError::NoProc);
    }
    match crate::deadline::timeout(timeout, handle.wait_exit()).await {
        Ok(_) => Ok(()),
        Err(_) => Err(CallError::Timeout),
    }
}

pub(crate) async fn guarded<T>(f: impl Future<Output = T>) -> Result<T, ExitReason> {
    AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(ExitReason::from_panic)
}

/// A server's `init` failed (or its name was taken): it is stopping, and, as in OTP 26,
/// the starter gets the error from `start` and no exit signal too.
pub(crate) fn init_failed(parent: Option<Pid>) {
    process::mark_stopping();
    if let Some(p) = parent {
        let _ = crate::signal::unlink(p);
    }
}

/// Registers a starting server under `name` (if any). On failure answers the starter
/// (`AlreadyStarted` or the spawn error) and returns `None`: the server then exits
/// `normal` without running `init`.
pub(crate) fn register_at_start<N: Into<Dest>>(
    name: Option<N>,
    pid: Pid,
    parent: Option<Pid>,
    ack: oneshot::Sender<Result<(), StartError>>,
) -> Option<oneshot::Sender<Result<(), StartError>>> {
    let Some(n) = name else { return Some(ack) };
    match register_name(&n.into(), pid) {
        Ok(()) => Some(ack),
        Err(err) => {
            init_failed(parent);
            let _ = ack.send(Err(err));
            None
        }
    }
}

async fn run<G: GenServer>(
    mut g: G,
    mut ctx: ServerContext<G>,
    name: Option<Dest>,
    ack: oneshot::Sender<Result<(), StartError>>,
) -> ExitReason {
    let init_failed = |ctx: &ServerContext<G>| init_failed(ctx.parent);
    let Some(ack) = register_at_start(name.as_ref(), ctx.pid(), ctx.parent, ack) else {
        return ExitReason::Normal;
    };
    let mut cont = match guarded(g.init(&mut ctx)).await {
        Ok(Init::Ok) => None,
        Ok(Init::Continue(c)) => Some(c),
        Ok(Init::Ignore) => {
            init_failed(&ctx);
            let _ = ack.send(Err(StartError::Ignored));
            return ExitReason::Normal;
        }
        Ok(Init::Stop(r)) | Err(r) => {
            init_failed(&ctx);
            let _ = ack.send(Err(StartError::Init(r.clone())));
            return r;
        }
    };
    let _ = ack.send(Ok(()));
    loop {
        let step = if let Some(c) = cont.take() {
            guarded(g.handle_continue(c, &mut ctx)).await
        } else {
            match ctx.ctx.recv().await {
                Message::Msg(ServerMsg::Call(req, mut from)) => {
                    match guarded(g.handle_call(req, &mut from, &mut ctx)).await {
                        Ok(CallReply::Reply(r)) => {
                            from.send(r);
                            Ok(Next::NoReply)
                        }
                        Ok(CallReply::ReplyContinue(r, c)) => {
                            from.send(r);
                            Ok(Next::Continue(c))
                        }
                        Ok(CallReply::NoReply) => Ok(Next::NoReply),
                        Ok(CallReply::NoReplyContinue(c)) => Ok(Next::Continue(c)),
                        Ok(CallReply::Stop(reason, reply)) => {
                            process::mark_stopping();
                            let _ = guarded(g.terminate(&reason, &mut ctx)).await;
                            if let Some(r) = reply {
                                from.send(r);
                            }
                            return reason;
                        }
                        Err(e) => {
                            // Before `from` is dropped: the caller gets the exit reason.
                            process::mark_stopping();
                            Err(e)
                        }
                    }
                }
                Message::Msg(ServerMsg::Cast(m)) => guarded(g.handle_cast(m, &mut ctx)).await,
                Message::Msg(ServerMsg::Info(m)) => {
                    guarded(g.handle_info(Message::Msg(m), &mut ctx)).await
                }
                Message::Msg(ServerMsg::Stop(r)) => Ok(Next::Stop(r)),
                Message::Exit { from, reason } if Some(from) == ctx.parent => {
                    Ok(Next::Stop(reason))
                }
                Message::Exit { from, reason } => {
                    guarded(g.handle_info(Message::Exit { from, reason }, &mut ctx)).await
                }
                Message::Down(d) => guarded(g.handle_info(Message::Down(d), &mut ctx)).await,
            }
        };
        match step {
            Ok(Next::NoReply) => {}
            Ok(Next::Continue(c)) => cont = Some(c),
            Ok(Next::Stop(reason)) | Err(reason) => {
                process::mark_stopping();
                let _ = guarded(g.terminate(&reason, &mut ctx)).await;
                return reason;
            }
        }
        if let Some(size) = g.state_size() {
            ctx.ctx.report_state_size(size);
        }
    }
}
