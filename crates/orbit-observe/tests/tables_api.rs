//! The tables view: `/api/tables` lists this node's named ETS tables (type,
//! protection, objects, memory, owner and its name), follows a table's growth and its
//! deletion; `/api/tables?node=N` reads a real `erl` node's tables over `rex`
//! (`ets:all()` + `ets:info/1`), named and unnamed. The erl half skips (printing
//! `SKIP`) when `erl` is missing.

mod common;

use common::get;
use orbit::ets::{Table, TableType};
use orbit::{Context, Message};
use orbit_dist::{Node, Options};
use orbit_observe::{serve, ObserveOptions};
use serde_json::Value;

const COOKIE: &str = "observe_tables_cookie";

async fn json(addr: std::net::SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn row<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_named_tables_are_listed() {
    let dash = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = dash.local_addr();

    // A named owner process creates a public ordered_set and fills it.
    let (made_tx, made_rx) = tokio::sync::oneshot::channel::<Table<u64, String>>();
    let owner = orbit::spawn(move |mut ctx: Context<()>| async move {
        let t: Table<u64, String> = Table::builder()
            .kind(TableType::OrderedSet)
            .public()
            .named("observed_table")
            .build()
            .unwrap();
        let _ = made_tx.send(t);
        while let Message::Msg(()) = ctx.recv().await {}
    })
    .unwrap();
    orbit::register("observed_table_owner", owner.pid()).unwrap();
    let t = made_rx.await.unwrap();
    for i in 0..1000 {
        t.insert(i, format!("value {i}")).unwrap();
    }

    let v = json(addr, "/api/tables").await;
    assert_eq!(v["reachable"], true, "{v}");
    let r = row(&v, "observed_table").unwrap_or_else(|| panic!("listed: {v}"));
    assert_eq!(r["kind"], "ordered_set", "{r}");
    assert_eq!(r["protection"], "public", "{r}");
    assert_eq!(r["named"], true, "{r}");
    assert_eq!(r["size"], 1000, "{r}");
    assert!(r["memory"].as_i64().unwrap() > 0, "{r}");
    assert_eq!(r["owner"], owner.pid().to_string(), "{r}");
    assert_eq!(r["owner_name"], "observed_table_owner", "{r}");
    let before = r["memory"].as_i64().unwrap();

    // It grows, and the view follows.
    for i in 1000..20_000 {
        t.insert(i, format!("value {i}")).unwrap();
    }
    let v = json(addr, "/api/tables").await;
    let r = row(&v, "observed_table").unwrap();
    assert_eq!(r["size"], 20_000, "{r}");
    assert!(r["memory"].as_i64().unwrap() > before, "{r}");

    // Deleted: gone from the list.
    t.delete_table().unwrap();
    let v = json(addr, "/api/tables").await;
    assert!(row(&v, "observed_table").is_none(), "{v}");

    // A node that is not connected is refused with a hint.
    let (status, body) = get(addr, "/api/tables?node=nobody@nowhere").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("/api/cluster"), "{body}");
    dash.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beam_node_tables_are_read_over_rex() {
    if std::process::Command::new("erl")
        .arg("-version")
        .output()
        .is_err()
    {
        println!("SKIP beam_node_tables_are_read_over_rex: erl is not installed");
        return;
    }
    let beam = "beam_tables@127.0.0.1";
    // A registered owner with a named bag of 300 objects and an unnamed set of 7.
    let code = r#"
        Self = self(),
        register(table_keeper, spawn(fun() ->
            T = ets:new(beam_named_bag, [bag, named_table, public]),
            [ets:insert(T, {X rem 10, X}) || X <- lists:seq(1, 300)],
            U = ets:new(beam_unnamed, [set, private]),
            [ets:insert(U, {X}) || X <- lists:seq(1, 7)],
            Self ! made,
            receive never -> ok end
        end)),
        receive made -> ok end,
        io:format("ready~n"),
        receive stop -> ok end."#;
    let mut erl = common::start_erl(beam, COOKIE, code).await;

    let node = Node::start("observe_tables@127.0.0.1", Options::cookie(COOKIE))
        .await
        .unwrap();
    assert!(node.connect(beam).await, "connect to {beam}");
    let dash = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = dash.local_addr();

    let v = json(addr, &format!("/api/tables?node={beam}")).await;
    assert_eq!(v["node"], beam, "{v}");
    assert_eq!(v["reachable"], true, "{v}");
    // OTP's own tables are there too (e.g. the code server's).
    assert!(v["total"].as_u64().unwrap() > 2, "{v}");
    let bag = row(&v, "beam_named_bag").unwrap_or_else(|| panic!("named bag: {v}"));
    assert_eq!(bag["kind"], "bag", "{bag}");
    assert_eq!(bag["named"], true, "{bag}");
    assert_eq!(bag["protection"], "public", "{bag}");
    assert_eq!(bag["size"], 300, "{bag}");
    assert!(bag["memory"].as_i64().unwrap() > 300 * 8, "{bag}");
    assert_eq!(bag["owner_name"], "table_keeper", "{bag}");
    assert!(
        bag["owner"]
            .as_str()
            .unwrap()
            .starts_with(&format!("<{beam}.")),
        "{bag}"
    );
    let unnamed = row(&v, "beam_unnamed").unwrap_or_else(|| panic!("unnamed set: {v}"));
    assert_eq!(unnamed["named"], false, "{unnamed}");
    assert_eq!(unnamed["kind"], "set", "{unnamed}");
    assert_eq!(unnamed["protection"], "private", "{unnamed}");
    assert_eq!(unnamed["size"], 7, "{unnamed}");
    assert!(
        unnamed["id"].as_str().unwrap().starts_with("#Ref<"),
        "{unnamed}"
    );
    // Most memory first.
    let mem: Vec<i64> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["memory"].as_i64().unwrap())
        .collect();
    assert!(mem.windows(2).all(|w| w[0] >= w[1]), "{mem:?}");

    dash.stop();
    node.disconnect(beam);
    let _ = erl.start_kill();
}
