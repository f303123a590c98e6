//! Channel broadcasts across a cluster with a real Elixir node running phoenix_pubsub
//! (from /work/shared/beamlibs): a `%Phoenix.Socket.Broadcast{}` broadcast on the Elixir
//! node's Phoenix.PubSub reaches a websocket client of the Orbit node, and a broadcast
//! from an Orbit channel reaches an Elixir subscriber as that struct.

#[path = "../../orbit-cluster/tests/beam/mod.rs"]
mod beam;

use std::time::Duration;

use beam::*;
use futures::{SinkExt, StreamExt};
use orbit_cluster::pubsub::PubSub;
use orbit_term::Term;
use orbit_web::{Channel, ChannelCtx, Endpoint, InReply, SocketInfo};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Ws;

struct Room;

impl Channel for Room {
    type Info = ();
    async fn join(_t: &str, _p: Value, _s: &SocketInfo) -> Result<(Self, Value), Value> {
        Ok((Room, json!({})))
    }
    async fn handle_in(
        &mut self,
        event: &str,
        payload: Value,
        ctx: &mut ChannelCtx<Self>,
    ) -> InReply {
        ctx.broadcast(event, &payload);
        InReply::NoReply
    }
}

fn text(t: Option<&Term>) -> String {
    String::from_utf8_lossy(t.and_then(Term::as_binary).unwrap_or_default()).into_owned()
}

#[test]
fn broadcasts_cross_between_elixir_pubsub_and_orbit_sockets() {
    if !have("elixir") {
        println!("SKIP broadcasts_cross_between_elixir_pubsub_and_orbit_sockets: elixir is not installed");
        return;
    }
    let Some(libs) = beamlibs() else {
        println!("SKIP broadcasts_cross_between_elixir_pubsub_and_orbit_sockets: no beamlibs");
        return;
    };
    let o = orbit("web_ps");
    let mut b = Beam::elixir("web_ex", o, &libs);
    let ps = rt()
        .block_on(PubSub::start("OrbitTest.PubSub1", 1))
        .unwrap();
    let g = ps.groups()[0].clone();
    eventually("Elixir lists Orbit's PubSub worker", 20, || {
        let t = b.eval(o, &format!(":pg.get_members(Phoenix.PubSub, :\"{g}\")"));
        pids(&t).iter().any(|p| p.is_local())
    });
    let scope = orbit_cluster::pg::scope(orbit_cluster::pubsub::SCOPE).unwrap();
    eventually("Orbit lists the Elixir PubSub worker", 20, || {
        scope.get_members(g.as_str()).iter().any(|p| !p.is_local())
    });

    let ep = Endpoint::builder()
        .channel::<Room>("room:*")
        .pubsub(ps.clone())
        .build();
    let url = rt().block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = ep.router("/socket");
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("ws://{addr}/socket/websocket?vsn=2.0.0")
    });
    let mut c = rt().block_on(async {
        let mut c = tokio_tungstenite::connect_async(&url).await.unwrap().0;
        c.send(Ws::Text(
            json!(["1", "1", "room:x", "phx_join", {}])
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        c
    });
    let next = |c: &mut tokio_tungstenite::WebSocketStream<_>| -> Value {
        rt().block_on(async {
            loop {
                let m = tokio::time::timeout(Duration::from_secs(15), c.next())
                    .await
                    .expect("a frame within 15 s")
                    .unwrap()
                    .unwrap();
                if let Ws::Text(t) = m {
                    return serde_json::from_str(t.as_str()).unwrap();
                }
            }
        })
    };
    assert_eq!(next(&mut c)[4]["status"], json!("ok"));
    eventually("the hub subscribed to room:x", 10, || {
        !ps.subscribers("room:x").is_empty()
    });

    // Elixir -> Orbit sockets.
    b.eval(
        o,
        r#"Phoenix.PubSub.broadcast(OrbitTest.PubSub1, "room:x", %{__struct__: Phoenix.Socket.Broadcast, topic: "room:x", event: "from_elixir", payload: %{n: 1, who: "ex"}})"#,
    );
    assert_eq!(
        next(&mut c),
        json!([null, null, "room:x", "from_elixir", {"n": 1, "who": "ex"}])
    );
    // Something that is not a Broadcast is dropped and counted, the socket stays.
    b.eval(
        o,
        r#"Phoenix.PubSub.broadcast(OrbitTest.PubSub1, "room:x", {:not, :a_broadcast})"#,
    );
    eventually("the hub counted the malformed message", 10, || {
        ep.hub().stats().malformed == 1
    });

    // Orbit channel -> Elixir subscriber.
    b.eval(o, r#"s = T.sub(OrbitTest.PubSub1, "room:x", orbit)"#);
    rt().block_on(async {
        c.send(Ws::Text(
            json!(["1", "2", "room:x", "shout", {"k": [1, 2]}])
                .to_string()
                .into(),
        ))
        .await
        .unwrap()
    });
    // The client gets its own broadcast too.
    assert_eq!(
        next(&mut c),
        json!([null, null, "room:x", "shout", {"k": [1, 2]}])
    );
    let got = match o.event(15) {
        Term::Tuple(mut e) if e.len() == 3 => e.remove(2),
        other => panic!("unexpected {other}"),
    };
    assert_eq!(
        got.map_get(&Term::atom("__struct__"))
            .and_then(Term::as_atom),
        Some("Elixir.Phoenix.Socket.Broadcast"),
        "{got}"
    );
    assert_eq!(text(got.map_get(&Term::atom("event"))), "shout");
    assert_eq!(text(got.map_get(&Term::atom("topic"))), "room:x");
    let payload = got.map_get(&Term::atom("payload")).expect("payload");
    assert_eq!(
        payload.map_get(&Term::Binary(b"k".to_vec())),
        Some(&Term::List(vec![Term::Int(1), Term::Int(2)])),
        "{payload}"
    );
}
