//! A fake [`Connector`]: records connect attempts, fails the first N per node, and
//! lets the test drop connections and emit node events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use orbit_cluster::strategy::Connector;
use orbit_dist::NodeEvent;
use parking_lot::Mutex;
use tokio::sync::mpsc;

#[derive(Default)]
struct State {
    connected: HashSet<String>,
    fail: HashMap<String, u32>,
    subs: Vec<mpsc::UnboundedSender<NodeEvent>>,
}

/// See the module doc.
pub struct Fake {
    name: String,
    state: Mutex<State>,
    attempts: mpsc::UnboundedSender<(String, bool, tokio::time::Instant)>,
}

impl Fake {
    /// A fake node `name`; attempts arrive on the receiver.
    pub fn new(
        name: &str,
    ) -> (
        Arc<Fake>,
        mpsc::UnboundedReceiver<(String, bool, tokio::time::Instant)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Fake {
                name: name.into(),
                state: Mutex::default(),
                attempts: tx,
            }),
            rx,
        )
    }

    /// The next `n` connects to `node` fail.
    pub fn fail_next(&self, node: &str, n: u32) {
        self.state.lock().fail.insert(node.into(), n);
    }

    /// The connection to `node` drops (a `NodeDown` is emitted).
    pub fn drop_node(&self, node: &str) {
        let mut s = self.state.lock();
        if s.connected.remove(node) {
            let ev = NodeEvent::NodeDown(node.into(), "connection_closed".into());
            s.subs.retain(|t| t.send(ev.clone()).is_ok());
        }
    }

    /// The connection to `node` is gone, and no event says so.
    pub fn disconnect_silently(&self, node: &str) {
        self.state.lock().connected.remove(node);
    }

    /// Whether `node` counts as connected.
    pub fn is_connected(&self, node: &str) -> bool {
        self.state.lock().connected.contains(node)
    }
}

impl Connector for Fake {
    fn self_name(&self) -> String {
        self.name.clone()
    }
    fn connected(&self) -> Vec<String> {
        self.state.lock().connected.iter().cloned().collect()
    }
    fn connect(&self, node: &str) -> BoxFuture<'static, bool> {
        let ok = {
            let mut s = self.state.lock();
            let f = s.fail.entry(node.into()).or_insert(0);
            let ok = if *f > 0 {
                *f -= 1;
                false
            } else {
                true
            };
            if ok && s.connected.insert(node.into()) {
                let ev = NodeEvent::NodeUp(node.into());
                s.subs.retain(|t| t.send(ev.clone()).is_ok());
            }
            ok
        };
        let _ = self
            .attempts
            .send((node.into(), ok, tokio::time::Instant::now()));
        Box::pin(async move { ok })
    }
    fn disconnect(&self, node: &str) -> bool {
        self.state.lock().connected.remove(node)
    }
    fn events(&self) -> mpsc::UnboundedReceiver<NodeEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.state.lock().subs.push(tx);
        rx
    }
}
