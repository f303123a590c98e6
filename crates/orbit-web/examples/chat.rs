//! A chat room over Phoenix channels, for the official `phoenix` JavaScript client: a page
//! at `/`, the client at `/phoenix.js` (read from the file `PHOENIX_JS` names: the npm
//! package's `priv/static/phoenix.js`), the socket at `/socket`, and a timed `/hello`
//! route whose timing `/timing` reports.
//!
//! Run: `PHOENIX_JS=path/to/phoenix.js cargo run -p orbit-web --example chat [PORT]`, then
//! open <http://127.0.0.1:4000/> in two windows. It prints `listening on http://ADDR`.

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use orbit_web::{Channel, ChannelCtx, Endpoint, InReply, SocketInfo, Timing};
use serde_json::{json, Value};

/// Every `room:*` topic: `new_msg` is broadcast to the room and acknowledged.
struct Room;

impl Channel for Room {
    type Info = ();

    async fn join(_topic: &str, _payload: Value, _s: &SocketInfo) -> Result<(Self, Value), Value> {
        Ok((Room, json!({})))
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Value,
        ctx: &mut ChannelCtx<Self>,
    ) -> InReply {
        match (event, payload.get("body").and_then(Value::as_str)) {
            ("new_msg", Some(body)) => {
                ctx.broadcast("new_msg", &json!({ "body": body }));
                InReply::Reply(Ok(json!({ "echo": body })))
            }
            _ => InReply::Reply(Err(json!({ "reason": "expected new_msg with a body" }))),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(4000), |p| p.parse())?;
    let phoenix_js = match std::env::var("PHOENIX_JS") {
        Ok(p) => std::fs::read_to_string(&p).map_err(|e| format!("PHOENIX_JS={p}: {e}"))?,
        Err(_) => "document.body.textContent = 'set PHOENIX_JS to phoenix.js from the npm package phoenix';".into(),
    };
    let endpoint = Endpoint::builder().channel::<Room>("room:*").build();
    let timing = Timing::new();
    let t = timing.clone();
    let app = Router::new()
        .route("/", get(|| async { Html(include_str!("chat/index.html")) }))
        .route(
            "/phoenix.js",
            get(move || async move {
                ([("content-type", "text/javascript")], phoenix_js).into_response()
            }),
        )
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/timing",
            get(move || async move { format!("{:#?}", t.snapshot()) }),
        )
        .route_layer(timing.handler())
        .layer(timing.layer())
        .merge(endpoint.router("/socket"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
