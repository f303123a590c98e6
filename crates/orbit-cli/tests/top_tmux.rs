//! `orbit node --dashboard` serves the dashboard and `/metrics`; `orbit top` attached
//! to it, driven in tmux (send-keys / capture-pane): it shows the node's processes,
//! refreshes, re-sorts on `t`, opens a process on Enter, closes it on Esc and quits on
//! `q`. Skips (printing `SKIP`) when tmux is missing. `orbit top` against nothing exits 1
//! saying so.

use std::io::{Read, Write};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn tmux(args: &[&str]) -> std::process::Output {
    StdCommand::new("tmux")
        .args(args)
        .output()
        .expect("tmux runs")
}

fn capture(session: &str) -> String {
    String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", session]).stdout).to_string()
}

/// Waits until the pane shows what `want` accepts.
fn until(session: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let t0 = Instant::now();
    loop {
        let screen = capture(session);
        if want(&screen) {
            return screen;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}; the pane shows:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn refresh_count(screen: &str) -> u64 {
    screen
        .split("[refresh ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the dashboard");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbit_top_in_tmux_against_orbit_node_dashboard() {
    if StdCommand::new("tmux").arg("-V").output().is_err() {
        println!("SKIP orbit_top_in_tmux: tmux is not installed (apt-get install -y tmux)");
        return;
    }
    let mut node = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args([
            "node",
            "--name",
            "top_node@127.0.0.1",
            "--cookie",
            "top_cookie",
        ])
        .args(["--dashboard", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn orbit node");
    let mut out = BufReader::new(node.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = out.next_line().await {
            if let Some(u) = line.strip_prefix("dashboard ") {
                return u.trim().to_string();
            }
        }
        panic!("orbit node ended without printing its dashboard address");
    })
    .await
    .expect("orbit node prints its dashboard address within 30 s");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    // /metrics beside the dashboard, with the node's named `echo` process.
    let a = addr.clone();
    let metrics = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        loop {
            let m = http_get(&a, "/metrics");
            if m.contains("orbit_process_mailbox_len{name=\"echo\"}")
                || t0.elapsed() > Duration::from_secs(20)
            {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("orbit_process_mailbox_len{name=\"echo\"}"),
        "{metrics}"
    );

    let session = format!("orbit-top-{}", std::process::id());
    let cmd = format!(
        "{} top {url} --interval-ms 200",
        env!("CARGO_BIN_EXE_orbit")
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "140",
        "-y",
        "40",
        &cmd,
    ]);
    assert!(started.status.success(), "tmux new-session: {started:?}");
    let s = session.clone();
    tokio::task::spawn_blocking(move || {
        let screen = until(&s, "the process table", |t| {
            t.contains("processes by mailbox") && t.contains("echo")
        });
        assert!(screen.contains("MAILBOX▼"), "{screen}");
        assert!(screen.contains("top_node@127.0.0.1"), "{screen}");
        // Live: the refresh count moves.
        let first = refresh_count(&screen);
        until(&s, "a later refresh", |t| refresh_count(t) >= first + 2);
        // `t` sorts by handling time.
        tmux(&["send-keys", "-t", &s, "t"]);
        let screen = until(&s, "sorted by time", |t| t.contains("processes by time"));
        assert!(screen.contains("TIME ms▼"), "{screen}");
        // Enter opens the selected process, Esc closes it.
        tmux(&["send-keys", "-t", &s, "Enter"]);
        let screen = until(&s, "the process pane", |t| {
            t.contains("process (Esc: back)")
        });
        assert!(screen.contains("links:"), "{screen}");
        tmux(&["send-keys", "-t", &s, "Escape"]);
        until(&s, "the pane closed", |t| {
            !t.contains("process (Esc: back)")
        });
        // `q` quits: the session ends with the program.
        tmux(&["send-keys", "-t", &s, "q"]);
        let t0 = Instant::now();
        while tmux(&["has-session", "-t", &s]).status.success() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "orbit top did not quit on q"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .inspect_err(|_| {
        let _ = tmux(&["kill-session", "-t", &session]);
    })
    .unwrap();
    let _ = node.start_kill();
}

#[test]
fn orbit_top_without_a_node_exits_1_saying_so() {
    let out = StdCommand::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["top", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the dashboard"), "{err}");
    let out = StdCommand::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["top", "http://127.0.0.1:1", "--sort", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sort bogus"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_tokens_from_the_command_line() {
    // Beyond loopback without a token: orbit node refuses to start, saying why.
    let out = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["node", "--name", "open_node@127.0.0.1", "--cookie", "c"])
        .args(["--dashboard", "0.0.0.0:0"])
        .env_remove("ORBIT_DASHBOARD_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without a token"), "{err}");

    // With a token: orbit top needs it too.
    let token = "a-long-enough-token-123";
    let mut node = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["node", "--name", "tok_node@127.0.0.1", "--cookie", "c"])
        .args(["--dashboard", "127.0.0.1:0", "--dashboard-token", token])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(u) = l.strip_prefix("dashboard ") {
                return u.trim().to_string();
            }
        }
        panic!("no dashboard line");
    })
    .await
    .expect("the dashboard address within 30 s");
    let out = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["top", &url])
        .env_remove("ORBIT_DASHBOARD_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token"), "{err}");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let a = addr.clone();
    let denied = tokio::task::spawn_blocking(move || http_get(&a, "/metrics"))
        .await
        .unwrap();
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let path = format!("/metrics?token={token}");
    let ok = tokio::task::spawn_blocking(move || http_get(&addr, &path))
        .await
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let _ = node.start_kill();
}
