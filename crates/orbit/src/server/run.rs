//! The server's process: its mailbox message, the type-erased request envelope, and the
//! receive loop.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::oneshot;

use super::{Ctx, Handles, InfoResult, InitResult, Reply, ReplyTo, Request, Server, StartError};
use crate::exit::ExitReason;
use crate::gen_server::guarded;
use crate::process;
use crate::signal::Message;

/// What travels in a server's mailbox.
pub(crate) enum Msg<S: Server> {
    /// A call or cast: the request and its reply slot, type-erased.
    Req(Box<dyn Erased<S>>),
    /// A plain message for `handle_info`.
    Info(S::Info),
    /// A stop request from `ServerHandle::stop`.
    Stop(ExitReason),
}

/// What handling one message decided.
pub(crate) enum Step {
    Continue,
    /// Stop with this reason; then send the reply, if any (after `terminate`).
    Stop(ExitReason, Option<Box<dyn FnOnce() + Send>>),
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Step> + Send + 'a>>;

/// A request of some type the server handles, with its reply slot.
pub(crate) trait Erased<S: Server>: Send {
    /// Runs the handler and settles the reply slot.
    fn handle<'a>(self: Box<Self>, server: &'a mut S, ctx: &'a mut Ctx<S>) -> StepFuture<'a>;
}

/// A request and where its reply goes.
pub(crate) struct Envelope<R: Request> {
    request: R,
    from: ReplyTo<R::Reply>,
}

impl<R: Request> Envelope<R> {
    /// The mailbox message carrying `request` to a server that handles it.
    pub(crate) fn message<S: Handles<R>>(request: R, from: ReplyTo<R::Reply>) -> Msg<S> {
        Msg::Req(Box::new(Envelope { request, from }))
    }
}

impl<S: Handles<R>, R: Request> Erased<S> for Envelope<R> {
    fn handle<'a>(self: Box<Self>, server: &'a mut S, ctx: &'a mut Ctx<S>) -> StepFuture<'a> {
        let Envelope { request, mut from } = *self;
        Box::pin(async move {
            match guarded(server.handle(request, &mut from, ctx)).await {
                Ok(Reply::Reply(r)) => {
                    from.send(r);
                    Step::Continue
                }
                // `from` is dropped here unless the handler deferred it: then the caller
                // learns at once that no reply will come (see `ReplyTo`).
                Ok(Reply::NoReply) => Step::Continue,
                Ok(Reply::Stop(reason, reply)) => {
                    // Before `from` can be dropped: its caller then gets the exit reason.
                    process::mark_stopping();
                    let send = reply.map(|r| {
                        Box::new(move || {
                            from.send(r);
                        }) as Box<dyn FnOnce() + Send>
                    });
                    Step::Stop(reason, send)
                }
                Err(reason) => {
                    process::mark_stopping();
                    Step::Stop(reason, None)
                }
            }
        })
    }
}

/// Plain messages sent by pid reach `handle_info` if they are of the server's `Info` type.
pub(crate) fn adapt<S: Server>(msg: Box<dyn Any + Send>) -> Result<Msg<S>, Box<dyn Any + Send>> {
    msg.downcast::<S::Info>().map(|m| Msg::Info(*m))
}

async fn info<S: Server>(server: &mut S, msg: Message<S::Info>, ctx: &mut Ctx<S>) -> Step {
    match guarded(server.handle_info(msg, ctx)).await {
        Ok(InfoResult::Continue) => Step::Continue,
        Ok(InfoResult::Stop(reason)) | Err(reason) => Step::Stop(reason, None),
    }
}

/// The server's process body.
pub(crate) async fn run<S: Server>(
    mut server: S,
    mut ctx: Ctx<S>,
    name: Option<String>,
    ack: oneshot::Sender<Result<(), StartError>>,
) -> ExitReason {
    let init_failed = |ctx: &Ctx<S>| crate::gen_server::init_failed(ctx.parent);
    let Some(ack) =
        crate::gen_server::register_at_start(name.as_deref(), ctx.pid(), ctx.parent, ack)
    else {
        return ExitReason::Normal;
    };
    match guarded(server.init(&mut ctx)).await {
        Ok(InitResult::Ok) => {}
        Ok(InitResult::Ignore) => {
            init_failed(&ctx);
            let _ = ack.send(Err(StartError::Ignored));
            return ExitReason::Normal;
        }
        Ok(InitResult::Stop(r)) | Err(r) => {
            init_failed(&ctx);
            let _ = ack.send(Err(StartError::Init(r.clone())));
            return r;
        }
    }
    let _ = ack.send(Ok(()));
    loop {
        let step = match ctx.ctx.recv().await {
            Message::Msg(Msg::Req(req)) => req.handle(&mut server, &mut ctx).await,
            Message::Msg(Msg::Info(m)) => info(&mut server, Message::Msg(m), &mut ctx).await,
            Message::Msg(Msg::Stop(r)) => Step::Stop(r, None),
            Message::Exit { from, reason } if Some(from) == ctx.parent => Step::Stop(reason, None),
            Message::Exit { from, reason } => {
                info(&mut server, Message::Exit { from, reason }, &mut ctx).await
            }
            Message::Down(d) => info(&mut server, Message::Down(d), &mut ctx).await,
        };
        if let Step::Stop(reason, reply) = step {
            // Reply slots dropped from now on (deferred ones in the state, queued
            // requests) give their callers this exit reason.
            process::mark_stopping();
            let _ = guarded(server.terminate(&reason, &mut ctx)).await;
            if let Some(send) = reply {
                send();
            }
            return reason;
        }
    }
}
