//! One websocket connection speaking Phoenix's socket protocol (`Phoenix.Socket`): the
//! heartbeat, joins and leaves, events routed to their channel, channel ends reported,
//! and the limits.
//!
//! Per socket: a reader (this task) and a writer task that drains the socket's
//! [`Outbox`]. The reader answers `heartbeat` on topic `phoenix`, starts a channel per
//! `phx_join` (a second join of a joined topic closes the first channel, `phx_close`,
//! then joins again), forwards other events to the topic's channel when their
//! `join_ref` is the channel's (or `null`; a stale one is ignored), and answers events
//! for topics not joined with `{"status": "error", "response": {"reason": "unmatched
//! topic"}}` (`phx_leave` with `ok`), as Phoenix does. A frame that is not a V2 message
//! or is binary closes the socket (1003); a frame over the limit closes it (1009, by the
//! websocket layer); silence longer than the timeout closes it (1000); when the socket
//! closes, each channel stops with `{shutdown, closed}`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use orbit::ExitReason;
use orbit_term::Term;
use serde_json::{json, Value};

use crate::channel::{ChannelDown, ChannelMsg, Downs, JoinArgs, Joined, SocketInfo};
use crate::endpoint::Inner;
use crate::message::{self, Frame};
use crate::outbox::Outbox;

struct ChannelEntry {
    join_ref: Option<String>,
    channel: Joined,
}

struct Socket {
    ep: Arc<Inner>,
    info: SocketInfo,
    outbox: Outbox,
    channels: HashMap<String, ChannelEntry>,
    downs: Arc<Downs>,
}

/// Why the reader stopped.
enum End {
    Closed,
    Malformed(String),
    Error,
    Idle,
    Overflow,
}

pub(crate) async fn serve(ws: WebSocket, ep: Arc<Inner>, params: Vec<(String, String)>) {
    let id = ep.next_id();
    let outbox = Outbox::new(ep.limits.outbox, ep.limits.overflow);
    ep.live.lock().insert(id, outbox.clone());
    ep.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let (sink, mut stream) = ws.split();
    let writer = tokio::spawn(write(sink, outbox.clone()));
    let downs = Arc::new(Downs::default());
    let mut s = Socket {
        info: SocketInfo {
            id,
            params: Arc::new(params),
        },
        outbox: outbox.clone(),
        channels: HashMap::new(),
        downs: downs.clone(),
        ep: ep.clone(),
    };
    let timeout = ep.limits.timeout;
    let end = loop {
        tokio::select! {
            frame = tokio::time::timeout(timeout, stream.next()) => match frame {
                Err(_) => break End::Idle,
                Ok(None) | Ok(Some(Ok(WsMessage::Close(_)))) => break End::Closed,
                Ok(Some(Err(_))) => break End::Error,
                Ok(Some(Ok(WsMessage::Text(t)))) => match message::decode(t.as_str()) {
                    Ok(m) => s.handle(m).await,
                    Err(e) => break End::Malformed(e.to_string()),
                },
                Ok(Some(Ok(WsMessage::Binary(_)))) => {
                    break End::Malformed("a binary frame (only the V2 JSON serializer is supported)".into())
                }
                Ok(Some(Ok(_))) => {} // ping/pong: answered by the websocket layer
            },
            ends = downs.next() => for d in ends { s.channel_down(d) },
            _ = outbox.wait_closed() => break if outbox.overflowed() { End::Overflow } else { End::Error },
        }
    };
    // The close frame is decided here, once: the first code given to the outbox wins (a
    // full outbox may have given 1013 already), and the writer sends that one.
    let (code, reason) = match &end {
        End::Closed => (1000, ""),
        End::Malformed(_) => (1003, "not a Phoenix V2 message"),
        End::Error => (1009, "frame too large or broken"),
        End::Idle => (1000, "idle"),
        End::Overflow => (1013, "outbox full"),
    };
    let (code, _) = outbox.close_with(code, reason);
    let c = &ep.counters;
    match (&end, code) {
        (_, 1013) => c.overflow_closes.fetch_add(1, Ordering::Relaxed),
        (End::Malformed(why), _) => {
            tracing::warn!(socket = id, "orbit-web: closing a socket that sent {why}");
            c.malformed_closes.fetch_add(1, Ordering::Relaxed)
        }
        (End::Error, _) => c.error_closes.fetch_add(1, Ordering::Relaxed),
        (End::Idle, _) => c.idle_closes.fetch_add(1, Ordering::Relaxed),
        (End::Closed | End::Overflow, _) => 0,
    };
    for (topic, j) in s.channels.drain() {
        ep.hub.unsubscribe(&topic, id);
        (j.channel.send)(ChannelMsg::Shutdown(closed_reason()));
        c.channels.fetch_sub(1, Ordering::Relaxed);
    }
    // The writer sends what is queued, then the close frame; a client that does not
    // read gets no more than the timeout.
    let abort = writer.abort_handle();
    if tokio::time::timeout(timeout, writer).await.is_err() {
        abort.abort();
    }
    ep.live.lock().remove(&id);
    c.dropped.fetch_add(outbox.dropped(), Ordering::Relaxed);
}

/// The writer: drains the outbox in batches (written, then flushed once), then sends
/// the close frame the outbox was closed with (1000 when none was given).
async fn write(mut sink: SplitSink<WebSocket, WsMessage>, outbox: Outbox) {
    let mut frames = Vec::new();
    while outbox.take(&mut frames).await {
        let mut ok = true;
        for f in frames.drain(..) {
            ok = ok && sink.feed(WsMessage::Text(f.as_ref().into())).await.is_ok();
        }
        if !ok || sink.flush().await.is_err() {
            outbox.close();
            return;
        }
    }
    // Free the batch's buffer before a possibly long wait on a slow client.
    drop(frames);
    let (code, reason) = outbox.close_frame().unwrap_or((1000, ""));
    let _ = sink
        .send(WsMessage::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    let _ = sink.close().await;
}

fn closed_reason() -> ExitReason {
    ExitReason::shutdown_with_term(Term::atom("closed"))
}

impl Socket {
    fn push(&self, frame: String) {
        self.outbox.push(Arc::from(frame));
    }

    async fn handle(&mut self, m: Frame) {
        if m.topic == "phoenix" && m.event == "heartbeat" {
            self.push(message::reply(
                None,
                m.r#ref.as_deref(),
                "phoenix",
                true,
                &json!({}),
            ));
            return;
        }
        if m.event == "phx_join" {
            return self.join(m).await;
        }
        let Some(j) = self.channels.get(&m.topic) else {
            // Not joined (or the server dropped the channel meanwhile).
            let ok = m.event == "phx_leave";
            let response = if ok {
                json!({})
            } else {
                json!({"reason": "unmatched topic"})
            };
            let join_ref = if ok { m.join_ref.as_deref() } else { None };
            self.push(message::reply(
                join_ref,
                m.r#ref.as_deref(),
                &m.topic,
                ok,
                &response,
            ));
            return;
        };
        if m.join_ref.is_some() && m.join_ref != j.join_ref {
            return; // a stale message for an earlier join: ignored, as Phoenix
        }
        let msg = if m.event == "phx_leave" {
            ChannelMsg::Leave(m.r#ref)
        } else {
            ChannelMsg::In {
                event: m.event,
                payload: m.payload,
                r#ref: m.r#ref,
            }
        };
        (j.channel.send)(msg);
    }

    async fn join(&mut self, m: Frame) {
        let ep = self.ep.clone();
        if let Some(old) = self.channels.remove(&m.topic) {
            // A duplicate join: the old channel closes first.
            ep.hub.unsubscribe(&m.topic, self.info.id);
            (old.channel.send)(ChannelMsg::Shutdown(ExitReason::shutdown_with_term(
                Term::atom("duplicate_join"),
            )));
            ep.counters.channels.fetch_sub(1, Ordering::Relaxed);
            let r = old.join_ref.as_deref();
            self.push(message::encode(r, r, &m.topic, "phx_close", &json!({})));
        }
        let refuse = |s: &Self, why: Value| {
            s.push(message::reply(
                m.join_ref.as_deref(),
                m.r#ref.as_deref(),
                &m.topic,
                false,
                &why,
            ))
        };
        let Some(factory) = ep.factory(&m.topic) else {
            tracing::warn!(topic = %m.topic, "orbit-web: ignoring unmatched topic");
            let response = json!({"reason": "unmatched topic"});
            self.push(message::reply(
                None,
                m.r#ref.as_deref(),
                &m.topic,
                false,
                &response,
            ));
            return;
        };
        if self.channels.len() >= ep.limits.max_channels {
            return refuse(self, json!({"reason": "too many channels joined"}));
        }
        let args = JoinArgs {
            topic: m.topic.clone(),
            join_ref: m.join_ref.clone(),
            payload: m.payload,
            socket: self.info.clone(),
            outbox: self.outbox.clone(),
            hub: ep.hub.clone(),
            downs: self.downs.clone(),
        };
        match factory(args).await {
            Ok((response, channel)) => {
                // Subscribed before the reply leaves: a broadcast the client sends
                // after its join reply reaches it.
                ep.hub
                    .subscribe(&m.topic, self.info.id, self.outbox.clone());
                ep.counters.channels.fetch_add(1, Ordering::Relaxed);
                self.push(message::reply(
                    m.join_ref.as_deref(),
                    m.r#ref.as_deref(),
                    &m.topic,
                    true,
                    &response,
                ));
                self.channels.insert(
                    m.topic,
                    ChannelEntry {
                        join_ref: m.join_ref,
                        channel,
                    },
                );
            }
            Err(why) => refuse(self, why),
        }
    }

    /// A channel process ended: `phx_close` for a clean stop, `phx_error` otherwise,
    /// unless it was already replaced or removed.
    fn channel_down(&mut self, d: ChannelDown) {
        let current = self
            .channels
            .get(&d.topic)
            .is_some_and(|j| j.channel.pid == d.pid);
        if !current {
            return;
        }
        self.channels.remove(&d.topic);
        self.ep.hub.unsubscribe(&d.topic, self.info.id);
        self.ep.counters.channels.fetch_sub(1, Ordering::Relaxed);
        let r = d.join_ref.as_deref();
        if d.graceful {
            self.push(message::encode(r, r, &d.topic, "phx_close", &json!({})));
        } else {
            let payload = json!({"reason": "channel_crash"});
            self.push(message::encode(r, r, &d.topic, "phx_error", &payload));
        }
    }
}
