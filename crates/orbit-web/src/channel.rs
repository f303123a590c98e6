//! Channels: one Orbit process per joined topic per socket, with Phoenix.Channel's
//! callbacks.
//!
//! The contract, as `Phoenix.Channel` defines it:
//! - [`Channel::join`] runs in the new channel process when a client sends `phx_join`;
//!   `Ok((state, response))` joins and replies `{"status": "ok", "response": response}`,
//!   `Err(response)` refuses with `{"status": "error", ...}` and the process ends.
//! - [`Channel::handle_in`] gets every event the client pushes on the topic, one at a
//!   time, and may reply (`phx_reply` with the push's `ref`), not reply, or stop.
//! - [`Channel::handle_info`] gets the messages other processes send to the channel
//!   ([`ChannelHandle::info`]).
//! - [`Channel::terminate`] runs when the channel stops: the client left
//!   (`phx_leave`, reason `{shutdown, left}`), the socket closed (`{shutdown, closed}`),
//!   the topic was joined again on the same socket (`{shutdown, duplicate_join}`), or a
//!   callback returned `Stop`. It does not run after a panic or a kill, as in OTP.
//! - The client then gets `phx_close` for a stop with reason `normal` or `shutdown` /
//!   `{shutdown, _}`, and `phx_error` (`{"reason": "channel_crash"}`, after which
//!   phoenix.js rejoins) for any other end, a panic included.
//!
//! From a callback, [`ChannelCtx::push`] sends an event to this client,
//! [`ChannelCtx::broadcast`] to every client joined to the topic on every node, and
//! [`ChannelCtx::broadcast_from`] to all of them but this one.

use std::future::Future;
use std::sync::Arc;

use orbit::{Context, ExitReason, Handle, Message, Pid};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use crate::hub::Hub;
use crate::message;
use crate::outbox::Outbox;

/// What a client push's handler decided.
#[derive(Debug)]
pub enum InReply {
    /// `{:reply, {:ok | :error, response}, socket}`: reply to the push.
    Reply(Result<Value, Value>),
    /// `{:noreply, socket}`.
    NoReply,
    /// `{:stop, reason, socket}` or, with a reply, `{:stop, reason, reply, socket}`.
    Stop(ExitReason, Option<Result<Value, Value>>),
}

/// What `handle_info` decided.
#[derive(Debug)]
pub enum InfoNext {
    /// `{:noreply, socket}`.
    Continue,
    /// `{:stop, reason, socket}`.
    Stop(ExitReason),
}

/// What the socket knows of itself, given to [`Channel::join`].
#[derive(Debug, Clone)]
pub struct SocketInfo {
    /// This socket's id on this node.
    pub id: u64,
    /// The query parameters of the websocket request (phoenix.js sends `params` there).
    pub params: Arc<Vec<(String, String)>>,
}

/// A Phoenix channel's callbacks. The implementing type is the channel's state
/// (Phoenix's socket assigns).
pub trait Channel: Sized + Send + 'static {
    /// Messages other processes send to the channel.
    type Info: Send + 'static;

    /// `join/3`: `Ok((state, response))` joins, `Err(response)` refuses.
    fn join(
        topic: &str,
        payload: Value,
        socket: &SocketInfo,
    ) -> impl Future<Output = Result<(Self, Value), Value>> + Send;

    /// `handle_in/3`: an event the client pushed. By default, no reply.
    fn handle_in(
        &mut self,
        event: &str,
        payload: Value,
        ctx: &mut ChannelCtx<Self>,
    ) -> impl Future<Output = InReply> + Send {
        let _ = (event, payload, ctx);
        async { InReply::NoReply }
    }

    /// `handle_info/2`. By default, ignored.
    fn handle_info(
        &mut self,
        msg: Self::Info,
        ctx: &mut ChannelCtx<Self>,
    ) -> impl Future<Output = InfoNext> + Send {
        let _ = (msg, ctx);
        async { InfoNext::Continue }
    }

    /// `terminate/2`.
    fn terminate(&mut self, reason: &ExitReason) {
        let _ = reason;
    }
}

/// What a channel process receives.
pub enum ChannelMsg<I> {
    /// A client event (`ref` to reply with).
    In {
        /// The event.
        event: String,
        /// Its payload.
        payload: Value,
        /// The push's reference.
        r#ref: Option<String>,
    },
    /// `phx_leave` from the client.
    Leave(Option<String>),
    /// The socket closed, or the topic was joined again: stop with this reason.
    Shutdown(ExitReason),
    /// A message from another process.
    Info(I),
}

/// A running channel, to send it messages ([`Channel::handle_info`]).
pub struct ChannelHandle<C: Channel> {
    handle: Handle<ChannelMsg<C::Info>>,
}

impl<C: Channel> Clone for ChannelHandle<C> {
    fn clone(&self) -> Self {
        ChannelHandle {
            handle: self.handle.clone(),
        }
    }
}

impl<C: Channel> std::fmt::Debug for ChannelHandle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChannelHandle({})", self.handle.pid())
    }
}

impl<C: Channel> ChannelHandle<C> {
    /// The channel's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// Sends `msg` to the channel's `handle_info`; when it has ended, the message back.
    pub fn info(&self, msg: C::Info) -> Result<(), C::Info> {
        match self.handle.send(ChannelMsg::Info(msg)) {
            Err(orbit::Undelivered {
                msg: ChannelMsg::Info(m),
                ..
            }) => Err(m),
            // The message given back is the one sent, an `Info`.
            _ => Ok(()),
        }
    }
}

/// The channel's view of its socket and topic, given to its callbacks.
pub struct ChannelCtx<C: Channel> {
    ctx: Context<ChannelMsg<C::Info>>,
    topic: String,
    join_ref: Option<String>,
    socket: SocketInfo,
    outbox: Outbox,
    hub: Hub,
}

impl<C: Channel> ChannelCtx<C> {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// This channel's pid.
    pub fn pid(&self) -> Pid {
        self.ctx.pid()
    }

    /// A handle to send this channel messages.
    pub fn handle(&self) -> ChannelHandle<C> {
        ChannelHandle {
            handle: self.ctx.handle(),
        }
    }

    /// The socket.
    pub fn socket(&self) -> &SocketInfo {
        &self.socket
    }

    /// `push/3`: sends `event` to this client; false when the socket is gone.
    pub fn push(&self, event: &str, payload: &Value) -> bool {
        let frame = message::encode(self.join_ref.as_deref(), None, &self.topic, event, payload);
        self.outbox.push(Arc::from(frame))
    }

    /// `broadcast/3`: `event` to every client joined to the topic, on every node.
    pub fn broadcast(&self, event: &str, payload: &Value) {
        self.hub.broadcast(&self.topic, event, payload, None);
    }

    /// `broadcast_from/3`: as [`broadcast`](Self::broadcast), but not to this client.
    pub fn broadcast_from(&self, event: &str, payload: &Value) {
        self.hub
            .broadcast(&self.topic, event, payload, Some(self.socket.id));
    }

    fn reply(&self, r#ref: Option<&str>, reply: &Result<Value, Value>) {
        let (ok, v) = match reply {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        };
        let frame = message::reply(self.join_ref.as_deref(), r#ref, &self.topic, ok, v);
        self.outbox.push(Arc::from(frame));
    }
}

/// How a channel process ended, as the socket reports it to the client.
#[derive(Debug)]
pub(crate) struct ChannelDown {
    pub topic: String,
    pub join_ref: Option<String>,
    pub pid: Pid,
    /// `phx_close` (a normal or shutdown stop) rather than `phx_error`.
    pub graceful: bool,
}

/// The ends of a socket's channels, waiting for its reader: a plain list and a
/// wake-up (an idle socket holds an empty list, not a channel's preallocated block).
#[derive(Default)]
pub(crate) struct Downs {
    list: Mutex<Vec<ChannelDown>>,
    ready: Notify,
}

impl Downs {
    fn push(&self, d: ChannelDown) {
        self.list.lock().push(d);
        // A stored permit when the reader is not waiting: no end is missed.
        self.ready.notify_one();
    }

    /// Waits until an end was pushed since the last wait, then takes every end.
    pub async fn next(&self) -> Vec<ChannelDown> {
        loop {
            let ends = std::mem::take(&mut *self.list.lock());
            if !ends.is_empty() {
                return ends;
            }
            self.ready.notified().await;
        }
    }
}

/// Sends the socket its channel's end when dropped: a panic or a kill unwinds through
/// it too, and is then reported as a crash.
struct DownGuard {
    down: Option<ChannelDown>,
    to: Arc<Downs>,
}

impl Drop for DownGuard {
    fn drop(&mut self) {
        if let Some(d) = self.down.take() {
            self.to.push(d);
        }
    }
}

fn graceful(reason: &ExitReason) -> bool {
    reason.is_clean()
}

/// What starting a channel gives the socket.
pub(crate) struct Joined {
    /// Sends the channel a client event or a shutdown.
    pub send: Box<dyn Fn(ChannelMsg<()>) -> bool + Send + Sync>,
    pub pid: Pid,
}

/// Everything a channel process needs from its socket.
pub(crate) struct JoinArgs {
    pub topic: String,
    pub join_ref: Option<String>,
    pub payload: Value,
    pub socket: SocketInfo,
    pub outbox: Outbox,
    pub hub: Hub,
    pub downs: Arc<Downs>,
}

/// Starts a `C` for a `phx_join`: the join's answer (`Ok` with the response and the
/// running channel, `Err` with the refusal's response).
pub(crate) async fn start<C: Channel>(args: JoinArgs) -> Result<(Value, Joined), Value> {
    let (tx, rx) = oneshot::channel::<Result<Value, Value>>();
    let spawned = orbit::spawn(move |ctx: Context<ChannelMsg<C::Info>>| run::<C>(ctx, args, tx));
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => return Err(serde_json::json!({ "reason": format!("cannot start: {e}") })),
    };
    match rx.await {
        Ok(Ok(response)) => {
            let h = handle.clone();
            let send = move |m: ChannelMsg<()>| {
                let m = match m {
                    ChannelMsg::In {
                        event,
                        payload,
                        r#ref,
                    } => ChannelMsg::In {
                        event,
                        payload,
                        r#ref,
                    },
                    ChannelMsg::Leave(r) => ChannelMsg::Leave(r),
                    ChannelMsg::Shutdown(r) => ChannelMsg::Shutdown(r),
                    ChannelMsg::Info(()) => return true,
                };
                h.send(m).is_ok()
            };
            Ok((
                response,
                Joined {
                    send: Box::new(send),
                    pid: handle.pid(),
                },
            ))
        }
        Ok(Err(refusal)) => Err(refusal),
        // The process ended during join (a panic in `join`).
        Err(_) => Err(serde_json::json!({ "reason": "join crashed" })),
    }
}

async fn run<C: Channel>(
    ctx: Context<ChannelMsg<C::Info>>,
    args: JoinArgs,
    joined: oneshot::Sender<Result<Value, Value>>,
) {
    let JoinArgs {
        topic,
        join_ref,
        payload,
        socket,
        outbox,
        hub,
        downs,
    } = args;
    let state = C::join(&topic, payload, &socket).await;
    let mut state = match state {
        Ok((state, response)) => {
            if joined.send(Ok(response)).is_err() {
                return;
            }
            state
        }
        Err(refusal) => {
            let _ = joined.send(Err(refusal));
            return;
        }
    };
    let mut guard = DownGuard {
        down: Some(ChannelDown {
            topic: topic.clone(),
            join_ref: join_ref.clone(),
            pid: ctx.pid(),
            graceful: false,
        }),
        to: downs,
    };
    let mut cx = ChannelCtx::<C> {
        ctx,
        topic,
        join_ref,
        socket,
        outbox,
        hub,
    };
    let reason = loop {
        let msg = match cx.ctx.recv().await {
            Message::Msg(m) => m,
            _ => continue,
        };
        match msg {
            ChannelMsg::In {
                event,
                payload,
                r#ref,
            } => match state.handle_in(&event, payload, &mut cx).await {
                InReply::Reply(r) => cx.reply(r#ref.as_deref(), &r),
                InReply::NoReply => {}
                InReply::Stop(reason, reply) => {
                    if let Some(r) = reply {
                        cx.reply(r#ref.as_deref(), &r);
                    }
                    break reason;
                }
            },
            ChannelMsg::Leave(r#ref) => {
                cx.reply(r#ref.as_deref(), &Ok(Value::Object(Default::default())));
                break ExitReason::shutdown_with_term(orbit_term::Term::atom("left"));
            }
            ChannelMsg::Shutdown(reason) => break reason,
            ChannelMsg::Info(m) => match state.handle_info(m, &mut cx).await {
                InfoNext::Continue => {}
                InfoNext::Stop(reason) => break reason,
            },
        }
    };
    state.terminate(&reason);
    if let Some(d) = guard.down.as_mut() {
        d.graceful = graceful(&reason);
    }
    drop(guard);
}
