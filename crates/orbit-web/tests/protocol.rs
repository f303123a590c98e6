//! The Phoenix socket protocol against a real websocket client (tokio-tungstenite),
//! frame by frame: heartbeat, join (ok, refused, unmatched, duplicate), pushes with
//! replies, server pushes, broadcasts (and broadcast_from), leave, a crashing channel
//! (`phx_error`), stale join refs, malformed and oversized frames, the serializer
//! version, the idle timeout and a full outbox; and the close code each client gets,
//! counted over many connections closing at once.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use orbit_web::{Channel, ChannelCtx, Endpoint, InReply, Limits, Overflow, SocketInfo};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

struct Room;

impl Channel for Room {
    type Info = ();

    async fn join(topic: &str, payload: Value, _s: &SocketInfo) -> Result<(Self, Value), Value> {
        if topic == "room:secret" {
            return Err(json!({"reason": "unauthorized"}));
        }
        if payload.get("panic").is_some() {
            panic!("join panics on request");
        }
        Ok((Room, json!({"welcome": topic})))
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Value,
        ctx: &mut ChannelCtx<Self>,
    ) -> InReply {
        match event {
            "echo" => InReply::Reply(Ok(payload)),
            "refuse" => InReply::Reply(Err(json!({"no": true}))),
            "push" => {
                ctx.push("pushed", &payload);
                InReply::NoReply
            }
            "shout" => {
                ctx.broadcast("shout", &payload);
                InReply::NoReply
            }
            "shout_from" => {
                ctx.broadcast_from("shout", &payload);
                InReply::NoReply
            }
            "burst" => {
                for i in 0..payload["n"].as_u64().unwrap_or(0) {
                    ctx.push("burst", &json!({ "i": i }));
                }
                InReply::NoReply
            }
            "crash" => panic!("handle_in crashes on request"),
            "stop" => InReply::Stop(orbit::ExitReason::Normal, Some(Ok(json!({"bye": 1})))),
            _ => InReply::NoReply,
        }
    }
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn server(limits: Limits) -> (String, Endpoint) {
    let ep = Endpoint::builder()
        .channel::<Room>("room:*")
        .limits(limits)
        .build();
    let app = ep.router("/socket");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("ws://{addr}/socket/websocket?vsn=2.0.0"), ep)
}

async fn connect(url: &str) -> Client {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

async fn send(c: &mut Client, v: Value) {
    c.send(Ws::Text(v.to_string().into())).await.expect("send");
}

/// The next text frame as JSON, within 5 s.
async fn next(c: &mut Client) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), c.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("a frame");
        match m {
            Ws::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Ws::Close(f) => panic!("closed: {f:?}"),
            _ => continue,
        }
    }
}

/// The close frame's code, within 5 s (frames before it are skipped).
async fn close_code(c: &mut Client) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), c.next()).await {
            Err(_) => panic!("no close within 5 s"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Ws::Close(f)))) => return f.map(|f| f.code.into()),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_join_push_reply_leave() {
    let (url, ep) = server(Limits::default()).await;
    let mut c = connect(&url).await;
    send(&mut c, json!([null, "1", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!([null, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
    send(&mut c, json!(["1", "2", "room:lobby", "phx_join", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["1", "2", "room:lobby", "phx_reply", {"status": "ok", "response": {"welcome": "room:lobby"}}])
    );
    send(&mut c, json!(["1", "3", "room:lobby", "echo", {"a": 1}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["1", "3", "room:lobby", "phx_reply", {"status": "ok", "response": {"a": 1}}])
    );
    send(&mut c, json!(["1", "4", "room:lobby", "refuse", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["1", "4", "room:lobby", "phx_reply", {"status": "error", "response": {"no": true}}])
    );
    send(&mut c, json!(["1", "5", "room:lobby", "push", {"p": 2}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["1", null, "room:lobby", "pushed", {"p": 2}])
    );
    // A stale join_ref is ignored: the next frame is the reply to the heartbeat.
    send(&mut c, json!(["0", "6", "room:lobby", "echo", {}])).await;
    send(&mut c, json!([null, "7", "phoenix", "heartbeat", {}])).await;
    assert_eq!(next(&mut c).await[1], json!("7"));
    assert_eq!(ep.stats().channels, 1);
    send(&mut c, json!(["1", "8", "room:lobby", "phx_leave", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["1", "8", "room:lobby", "phx_reply", {"status": "ok", "response": {}}])
    );
    assert_eq!(
        next(&mut c).await,
        json!(["1", "1", "room:lobby", "phx_close", {}])
    );
    // Not joined any more: events get "unmatched topic".
    send(&mut c, json!(["1", "9", "room:lobby", "echo", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!([null, "9", "room:lobby", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
    assert_eq!(ep.stats().channels, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_unmatched_crashing_and_duplicate_joins() {
    let (url, ep) = server(Limits::default()).await;
    let mut c = connect(&url).await;
    send(&mut c, json!(["1", "1", "room:secret", "phx_join", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["1", "1", "room:secret", "phx_reply", {"status": "error", "response": {"reason": "unauthorized"}}])
    );
    send(&mut c, json!(["2", "2", "nowhere", "phx_join", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!([null, "2", "nowhere", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
    send(
        &mut c,
        json!(["3", "3", "room:a", "phx_join", {"panic": true}]),
    )
    .await;
    assert_eq!(next(&mut c).await[4]["status"], json!("error"));
    // A crash in handle_in: phx_error, and the topic can be joined again.
    send(&mut c, json!(["4", "4", "room:a", "phx_join", {}])).await;
    assert_eq!(next(&mut c).await[4]["status"], json!("ok"));
    send(&mut c, json!(["4", "5", "room:a", "crash", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["4", "4", "room:a", "phx_error", {"reason": "channel_crash"}])
    );
    // A duplicate join closes the first channel.
    send(&mut c, json!(["5", "6", "room:a", "phx_join", {}])).await;
    assert_eq!(next(&mut c).await[4]["status"], json!("ok"));
    send(&mut c, json!(["6", "7", "room:a", "phx_join", {}])).await;
    assert_eq!(
        next(&mut c).await,
        json!(["5", "5", "room:a", "phx_close", {}])
    );
    assert_eq!(next(&mut c).await[4]["status"], json!("ok"));
    // A stop with a reply: the reply, then phx_close.
    send(&mut c, json!(["6", "8", "room:a", "stop", {}])).await;
    assert_eq!(
        next(&mut c).await[4],
        json!({"status": "ok", "response": {"bye": 1}})
    );
    assert_eq!(
        next(&mut c).await,
        json!(["6", "6", "room:a", "phx_close", {}])
    );
    assert_eq!(ep.stats().channels, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_reach_every_joined_socket() {
    let (url, ep) = server(Limits::default()).await;
    let mut a = connect(&url).await;
    let mut b = connect(&url).await;
    for c in [&mut a, &mut b] {
        send(c, json!(["1", "1", "room:x", "phx_join", {}])).await;
        assert_eq!(next(c).await[4]["status"], json!("ok"));
    }
    send(&mut a, json!(["1", "2", "room:x", "shout", {"n": 1}])).await;
    for c in [&mut a, &mut b] {
        assert_eq!(
            next(c).await,
            json!([null, null, "room:x", "shout", {"n": 1}])
        );
    }
    // broadcast_from: not to the sender (its next frame is the heartbeat reply).
    send(&mut a, json!(["1", "3", "room:x", "shout_from", {"n": 2}])).await;
    assert_eq!(
        next(&mut b).await,
        json!([null, null, "room:x", "shout", {"n": 2}])
    );
    send(&mut a, json!([null, "4", "phoenix", "heartbeat", {}])).await;
    assert_eq!(next(&mut a).await[1], json!("4"));
    ep.broadcast("room:x", "from_server", &json!({"s": true}));
    for c in [&mut a, &mut b] {
        assert_eq!(
            next(c).await,
            json!([null, null, "room:x", "from_server", {"s": true}])
        );
    }
    assert_eq!(ep.hub().subscribers("room:x"), 2);
    drop(a);
    // The closed socket's channel ends and its subscription goes.
    for _ in 0..500 {
        if ep.hub().subscribers("room:x") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ep.hub().subscribers("room:x"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_the_socket_cleanly() {
    let limits = Limits {
        max_frame: 1024,
        ..Limits::default()
    };
    let (url, ep) = server(limits).await;
    let mut c = connect(&url).await;
    c.send(Ws::Text("not json".into())).await.unwrap();
    assert_eq!(close_code(&mut c).await, Some(1003));
    let mut c = connect(&url).await;
    c.send(Ws::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(close_code(&mut c).await, Some(1003));
    let mut c = connect(&url).await;
    let big = json!([null, "1", "phoenix", "heartbeat", {"x": "y".repeat(4096)}]);
    let _ = c.send(Ws::Text(big.to_string().into())).await;
    let _ = close_code(&mut c).await; // the websocket layer closes it
    assert_eq!(ep.stats().malformed_closes, 2);
    assert!(ep.stats().error_closes >= 1, "{:?}", ep.stats());
    // The wrong serializer version is refused before the upgrade.
    let v1 = url.replace("vsn=2.0.0", "vsn=1.0.0");
    assert!(tokio_tungstenite::connect_async(v1).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_times_out() {
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (url, ep) = server(limits).await;
    let mut c = connect(&url).await;
    assert_eq!(close_code(&mut c).await, Some(1000));
    assert_eq!(ep.stats().idle_closes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_grow_the_queue() {
    // Drop-oldest: a client that never reads; broadcasts keep coming.
    let limits = Limits {
        outbox: 8,
        overflow: Overflow::DropOldest,
        ..Limits::default()
    };
    let (url, ep) = server(limits).await;
    let mut c = connect(&url).await;
    send(&mut c, json!(["1", "1", "room:slow", "phx_join", {}])).await;
    assert_eq!(next(&mut c).await[4]["status"], json!("ok"));
    let payload = json!({"pad": "z".repeat(8 * 1024)});
    for _ in 0..2000 {
        ep.broadcast("room:slow", "flood", &payload);
    }
    // Sent (into socket buffers) + queued (at most 8) + dropped = 2000.
    let s = ep.stats();
    assert!(s.dropped > 0, "{s:?}");
    assert_eq!(s.overflow_closes, 0);

    // Disconnect: the socket is closed instead.
    let limits = Limits {
        outbox: 8,
        overflow: Overflow::Disconnect,
        ..Limits::default()
    };
    let (url, ep) = server(limits).await;
    let mut c = connect(&url).await;
    send(&mut c, json!(["1", "1", "room:slow", "phx_join", {}])).await;
    assert_eq!(next(&mut c).await[4]["status"], json!("ok"));
    for _ in 0..2000 {
        ep.broadcast("room:slow", "flood", &payload);
    }
    for _ in 0..500 {
        if ep.stats().overflow_closes == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ep.stats().overflow_closes, 1, "{:?}", ep.stats());
}

/// One client provoking one kind of close; the code it got.
async fn provoke(url: String, kind: u16) -> Option<u16> {
    let mut c = connect(&url).await;
    match kind {
        1003 => send(&mut c, json!("not a V2 message")).await,
        1009 => {
            let big = json!([null, "1", "phoenix", "heartbeat", {"x": "y".repeat(4096)}]);
            let _ = c.send(Ws::Text(big.to_string().into())).await;
        }
        1013 => {
            send(&mut c, json!(["1", "1", "room:burst", "phx_join", {}])).await;
            send(&mut c, json!(["1", "2", "room:burst", "burst", {"n": 64}])).await;
        }
        _ => {} // 1000: silent until the idle timeout
    }
    close_code(&mut c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_the_close_code_of_its_end() {
    // Per kind of end, its own server (the idle one with a short timeout); all the
    // connections of all kinds close at once, so the reader and writer of each socket
    // race to the end while the runtime is busy.
    const N: usize = 40;
    let base = Limits {
        max_frame: 1024,
        outbox: 4,
        overflow: Overflow::Disconnect,
        ..Limits::default()
    };
    let idle = Limits {
        timeout: Duration::from_millis(300),
        ..base
    };
    let mut servers = Vec::new();
    for (kind, limits) in [(1003, base), (1009, base), (1013, base), (1000, idle)] {
        servers.push((kind, server(limits).await));
    }
    let mut clients = Vec::new();
    for _ in 0..N {
        for (kind, (url, _)) in &servers {
            clients.push((*kind, tokio::spawn(provoke(url.clone(), *kind))));
        }
    }
    let mut wrong = Vec::new();
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for (kind, c) in clients {
        let got = c.await.expect("client task");
        if got == Some(kind) {
            *seen.entry(kind).or_default() += 1;
        } else {
            wrong.push((kind, got));
        }
    }
    assert!(
        wrong.is_empty(),
        "wanted code, got: {wrong:?} (right: {seen:?})"
    );
    assert_eq!(seen.values().sum::<usize>(), 4 * N);
    // The counters agree, once every socket has ended.
    for (kind, (_, ep)) in &servers {
        for _ in 0..500 {
            if ep.stats().sockets == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = ep.stats();
        let counted = match kind {
            1003 => s.malformed_closes,
            1009 => s.error_closes,
            1013 => s.overflow_closes,
            _ => s.idle_closes,
        };
        assert_eq!(counted, N as u64, "{kind}: {s:?}");
    }
}
