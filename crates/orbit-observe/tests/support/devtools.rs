//! A headless Chromium page driven over the DevTools protocol (flattened session):
//! navigate, evaluate, wait for a condition, take a screenshot (saved under
//! `target/<dir>/`, the directory given to [`Browser::start`]), and every console error
//! or uncaught exception seen. One driver for the dashboard's test
//! (`dashboard_chromium.rs`) and orbit-cli's lab report test (`#[path]`-included there).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// One page of a headless Chromium, over a flattened DevTools session.
pub struct Browser {
    child: tokio::process::Child,
    out: mpsc::UnboundedSender<String>,
    replies: mpsc::UnboundedReceiver<Value>,
    /// Console errors and exceptions seen so far.
    problems: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
    session: String,
    next_id: u64,
    pending: HashMap<u64, Value>,
    /// Where screenshots go, under the workspace's `target/`.
    screenshots: &'static str,
    _profile: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// Starts Chromium on a blank page; screenshots go to `target/<screenshots>/`.
    pub async fn start(screenshots: &'static str) -> Browser {
        let profile = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{}-chromium-{}",
            env!("CARGO_PKG_NAME"),
            std::process::id()
        ));
        let mut child = tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-extensions",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let ws_url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = err.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return line[at..].trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools address");
        })
        .await
        .expect("chromium prints its DevTools address within 60 s");
        // Keep draining stderr so Chromium never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(&ws_url)
            .await
            .expect("DevTools websocket");
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(Ws::Text(m.into())).await.is_err() {
                    break;
                }
            }
        });
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let problems = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let p = problems.clone();
        tokio::spawn(async move {
            while let Some(Ok(Ws::Text(t))) = stream.next().await {
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                match v["method"].as_str() {
                    Some("Runtime.exceptionThrown") => p
                        .lock()
                        .push(format!("exception: {}", v["params"]["exceptionDetails"])),
                    Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => p
                        .lock()
                        .push(format!("console.error: {}", v["params"]["args"])),
                    Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                        p.lock().push(format!("log: {}", v["params"]["entry"]))
                    }
                    _ => {
                        if v.get("id").is_some() {
                            let _ = reply_tx.send(v);
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            out,
            replies,
            problems,
            session: String::new(),
            next_id: 1,
            pending: HashMap::new(),
            screenshots,
            _profile: TempDir(profile),
        };
        let target = b
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime.enable", "Page.enable", "Log.enable"] {
            b.call(domain, json!({})).await;
        }
        b
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.out.send(msg.to_string()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.pending.remove(&id) {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let v = tokio::time::timeout(left, self.replies.recv())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer within 30 s"))
                .expect("the DevTools connection stays open");
            if let Some(e) = v.get("error") {
                panic!("{method}: {e}");
            }
            let got = v["id"].as_u64().unwrap_or(0);
            self.pending.insert(got, v["result"].clone());
        }
    }

    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    pub async fn until(&mut self, what: &str, expr: &str) {
        let t0 = Instant::now();
        loop {
            if self.eval(expr).await == json!(true) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        self.capture(name, json!({"format": "png"})).await
    }

    /// A screenshot of the whole page, below the fold included.
    pub async fn full_page_screenshot(&mut self, name: &str) -> PathBuf {
        self.capture(
            name,
            json!({"format": "png", "captureBeyondViewport": true}),
        )
        .await
    }

    async fn capture(&mut self, name: &str, params: Value) -> PathBuf {
        let r = self.call("Page.captureScreenshot", params).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target")
            .join(self.screenshots);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
