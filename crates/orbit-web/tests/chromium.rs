//! The official `phoenix` JavaScript client (npm package `phoenix`, fetched with `npm pack`
//! into the target directory) in headless Chromium against the `chat` example: the page
//! connects and joins, pushes and gets its reply, receives broadcasts (its own and a
//! Rust client's), and after the server is killed and started again on the same port,
//! reconnects, rejoins and works again. No page error or console error is allowed; a
//! screenshot is saved under target/.
//!
//! Chromium is driven over the DevTools protocol (a websocket) by the small client below.
//! Skipped, with a message, without /usr/bin/chromium or when npm cannot fetch the client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const CHROMIUM: &str = "/usr/bin/chromium";
const PHOENIX_VERSION: &str = "1.8.16";

/// `target/<profile>`, where the examples are.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// phoenix.js from the npm package, or why it is not available.
fn phoenix_js() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("ORBIT_PHOENIX_JS") {
        return Ok(PathBuf::from(p));
    }
    let dir = target_dir().join(format!("phoenix-js-{PHOENIX_VERSION}"));
    let js = dir.join("package/priv/static/phoenix.js");
    if js.exists() {
        return Ok(js);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = Command::new("npm")
        .args(["pack", &format!("phoenix@{PHOENIX_VERSION}"), "--silent"])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("npm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm pack failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tgz = dir.join(format!("phoenix-{PHOENIX_VERSION}.tgz"));
    let st = Command::new("tar")
        .arg("xzf")
        .arg(&tgz)
        .current_dir(&dir)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() || !js.exists() {
        return Err("unpacking the phoenix package failed".into());
    }
    Ok(js)
}

/// A child process killed (and waited for) on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the chat example on `port` (0: any) and returns it with its address.
fn chat(js: &Path, port: u16) -> (Kid, String) {
    let bin = target_dir().join("examples/chat");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test -p orbit-web` builds it (or `cargo build -p orbit-web --example chat`)",
        bin.display()
    );
    let mut child = Command::new(bin)
        .arg(port.to_string())
        .env("PHOENIX_JS", js)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the chat example");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("a line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Kid(child), addr)
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A DevTools protocol client attached to one page.
struct Cdp {
    ws: Socket,
    next: u64,
    session: String,
    /// Page errors and console errors seen so far.
    problems: Vec<String>,
}

impl Cdp {
    async fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Ws::Text(msg.to_string().into()))
            .await
            .expect("cdp send");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("a DevTools answer within 30 s")
                .expect("DevTools open")
                .expect("a DevTools frame");
            let Ws::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("DevTools JSON");
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.event(&v);
        }
    }

    fn event(&mut self, v: &Value) {
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => self
                .problems
                .push(format!("page error: {}", v["params"]["exceptionDetails"])),
            Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => self
                .problems
                .push(format!("console error: {}", v["params"]["args"])),
            _ => {}
        }
    }

    async fn open(browser_ws: &str, url: &str) -> Cdp {
        let ws = tokio_tungstenite::connect_async(browser_ws)
            .await
            .expect("DevTools")
            .0;
        let mut c = Cdp {
            ws,
            next: 0,
            session: String::new(),
            problems: Vec::new(),
        };
        let t = c
            .send("Target.createTarget", json!({"url": "about:blank"}), None)
            .await;
        let a = c
            .send(
                "Target.attachToTarget",
                json!({"targetId": t["targetId"], "flatten": true}),
                None,
            )
            .await;
        c.session = a["sessionId"].as_str().expect("a session").to_string();
        let s = c.session.clone();
        c.send("Runtime.enable", json!({}), Some(&s)).await;
        c.send("Page.enable", json!({}), Some(&s)).await;
        c.send("Page.navigate", json!({"url": url}), Some(&s)).await;
        c
    }

    /// Evaluates `expr` in the page; its JSON value.
    async fn eval(&mut self, expr: &str) -> Value {
        let s = self.session.clone();
        let r = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
                Some(&s),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page, at most `secs`.
    async fn until(&mut self, expr: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.eval(expr).await == json!(true) {
                return;
            }
            let state = self.eval("JSON.stringify(window.orbitTest)").await;
            assert!(
                Instant::now() < deadline,
                "{expr} not true within {secs}s; state {state}"
            );
            // The page changes on its own socket's events; poll it gently.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Headless Chromium with a DevTools port; its browser websocket address.
fn chromium(profile: &Path) -> (Kid, String) {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start chromium");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(l) = line else { break };
            if let Some(ws) = l.split("DevTools listening on ").nth(1) {
                let _ = tx.send(ws.trim().to_string());
            }
        }
    });
    let ws = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("chromium printed its DevTools address");
    (Kid(child), ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phoenix_js_client_joins_pushes_receives_and_rejoins_after_a_restart() {
    if !Path::new(CHROMIUM).exists() {
        println!("SKIP: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    let js = match phoenix_js() {
        Ok(js) => js,
        Err(e) => {
            println!("SKIP: the phoenix npm package is not available: {e}");
            return;
        }
    };
    let (server, addr) = chat(&js, 0);
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let profile = target_dir().join(format!("chromium-profile-{}", std::process::id()));
    let (_browser, browser_ws) = chromium(&profile);
    let mut page = Cdp::open(&browser_ws, &format!("http://{addr}/")).await;

    page.until("window.orbitTest && orbitTest.joined === 1", 30)
        .await;
    page.eval("orbitTest.send('hello from the page')").await;
    page.until("orbitTest.replies.includes('hello from the page')", 10)
        .await;
    page.until("orbitTest.received.includes('hello from the page')", 10)
        .await;

    // Another client (Rust) broadcasts into the room.
    let (mut rust, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket/websocket?vsn=2.0.0"))
            .await
            .expect("connect");
    rust.send(Ws::Text(
        json!(["1", "1", "room:lobby", "phx_join", {}])
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    rust.send(Ws::Text(
        json!(["1", "2", "room:lobby", "new_msg", {"body": "from rust"}])
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    page.until("orbitTest.received.includes('from rust')", 10)
        .await;
    drop(rust);

    // The server goes away and comes back on the same port: phoenix.js reconnects and
    // rejoins by itself.
    drop(server);
    page.until("orbitTest.errors >= 1", 15).await;
    let (_server, _) = chat(&js, port);
    page.until("orbitTest.joined === 2", 30).await;
    page.eval("orbitTest.send('after the restart')").await;
    page.until("orbitTest.received.includes('after the restart')", 10)
        .await;

    let s = page.session.clone();
    let shot = page
        .send("Page.captureScreenshot", json!({"format": "png"}), Some(&s))
        .await;
    if let Some(b64) = shot["data"].as_str() {
        let png = target_dir().join("orbit-web-chat.png");
        use base64::Engine;
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
            let _ = std::fs::write(&png, bytes);
            println!("screenshot: {}", png.display());
        }
    }
    assert!(page.problems.is_empty(), "{:?}", page.problems);
    let _ = std::fs::remove_dir_all(&profile);
}
