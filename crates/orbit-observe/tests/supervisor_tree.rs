//! `/api/supervisors`: a root supervisor with a worker and a child supervisor (itself
//! with a worker) comes back as one tree, the child supervisor nested, not a root.

mod common;

use common::get;
use orbit::{ChildSpec, SimpleServer, Supervisor, SupervisorOptions};
use orbit_observe::{serve, ObserveOptions};

struct W;

impl SimpleServer for W {
    type Call = ();
    type Reply = ();
    type Cast = ();
    fn call(&mut self, _: ()) {}
    fn cast(&mut self, _: ()) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_tree_nests_child_supervisors() {
    let dash = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let inner = Supervisor::child_spec(
        "inner",
        vec![ChildSpec::gen_server("leaf", || W)],
        SupervisorOptions::default(),
    );
    let root = Supervisor::start(
        vec![ChildSpec::gen_server("worker", || W), inner],
        SupervisorOptions {
            name: Some("tree_root".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (status, body) = get(dash.local_addr(), "/api/supervisors").await;
    assert_eq!(status, 200, "{body}");
    let trees: serde_json::Value = serde_json::from_str(&body).unwrap();
    let roots = trees.as_array().unwrap();
    let t = roots
        .iter()
        .find(|t| t["name"] == "tree_root")
        .unwrap_or_else(|| panic!("tree_root is a root: {trees}"));
    assert_eq!(
        roots.len(),
        1,
        "the inner supervisor is not a root: {trees}"
    );
    let kids = t["children"].as_array().unwrap();
    assert_eq!(kids.len(), 2, "{t}");
    assert_eq!(kids[0]["id"], "worker");
    assert_eq!(kids[0]["kind"], "worker");
    assert_eq!(kids[1]["id"], "inner");
    assert_eq!(kids[1]["kind"], "supervisor");
    assert_eq!(kids[1]["supervisor"]["children"][0]["id"], "leaf", "{t}");
    drop(root);
    dash.stop();
}
