//! The processes API: rankings by each column, the process page (links, name), kill
//! (only with its header), server-sent events, and a ranking of many processes.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, get, http};
use orbit::{Context, ExitReason, Message};
use orbit_observe::{serve, ObserveOptions};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn json(addr: std::net::SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Receives forever.
async fn sink(mut ctx: Context<u64>) {
    loop {
        ctx.recv().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_page_kill_and_events() {
    let dash =
        serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()).tick(Duration::from_millis(100)))
            .await
            .unwrap();
    let addr = dash.local_addr();

    // A process that does not read: its mailbox grows.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let stuck = orbit::spawn(move |mut ctx: Context<u64>| async move {
        let _ = go_rx.await;
        while let Message::Msg(_) = ctx.recv().await {}
    })
    .unwrap();
    for i in 0..1000 {
        stuck.send(i).unwrap();
    }
    // A busy one, and a named one linked to it.
    let busy = orbit::spawn(sink).unwrap();
    let busy_pid = busy.pid();
    let (linked_tx, linked_rx) = tokio::sync::oneshot::channel();
    let named = orbit::spawn(move |mut ctx: Context<u64>| async move {
        orbit::link(busy_pid).unwrap();
        let _ = linked_tx.send(());
        while let Message::Msg(_) = ctx.recv().await {}
    })
    .unwrap();
    linked_rx.await.unwrap();
    orbit::register("observed_named", named.pid()).unwrap();

    // By mailbox: the stuck one first.
    let r = json(addr, "/api/processes?sort=mailbox&limit=5").await;
    assert_eq!(r["sort"], "mailbox");
    assert!(r["total"].as_u64().unwrap() >= 3);
    let rows = r["rows"].as_array().unwrap();
    assert!(rows.len() <= 5);
    assert_eq!(rows[0]["pid"], stuck.pid().to_string(), "{r}");
    assert_eq!(rows[0]["mailbox"], 1000);
    let mb: Vec<u64> = rows
        .iter()
        .map(|x| x["mailbox"].as_u64().unwrap())
        .collect();
    assert!(
        mb.windows(2).all(|w| w[0] >= w[1]),
        "sorted by mailbox: {mb:?}"
    );

    // By rate: load the busy one between two rankings.
    json(addr, "/api/processes?sort=rate&limit=5").await;
    for i in 0..20_000 {
        busy.send(i).unwrap();
    }
    eventually(
        "the busy process is top by rate",
        Duration::from_secs(10),
        || async {
            let r = json(addr, "/api/processes?sort=rate&limit=3").await;
            r["rows"][0]["pid"] == busy.pid().to_string()
                && r["rows"][0]["rate"].as_f64().unwrap() > 0.0
        },
    )
    .await;
    // By handling time and by memory answer, sorted.
    for sort in ["time", "memory"] {
        let r = json(addr, &format!("/api/processes?sort={sort}&limit=10")).await;
        assert_eq!(r["sort"], sort);
        let key = if sort == "time" {
            "handling_ms"
        } else {
            "memory"
        };
        let v: Vec<f64> = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[key].as_f64().unwrap())
            .collect();
        assert!(v.windows(2).all(|w| w[0] >= w[1]), "{sort}: {v:?}");
    }
    let (status, body) = get(addr, "/api/processes?sort=bogus").await;
    assert_eq!(status, 400);
    assert!(body.contains("mailbox"), "{body}");

    // The named process's page: name and link.
    let pid = named
        .pid()
        .to_string()
        .replace('#', "%23")
        .replace('<', "%3C")
        .replace('>', "%3E");
    let page = json(addr, &format!("/api/process/{pid}")).await;
    assert_eq!(page["row"]["name"], "observed_named");
    assert_eq!(page["links"][0], busy_pid.to_string(), "{page}");
    assert_eq!(
        get(addr, "/api/process/%23PID%3C0.999999.7%3E").await.0,
        404
    );
    assert_eq!(get(addr, "/api/process/garbage").await.0, 404);

    // Kill: refused without the header, done with it.
    assert_eq!(
        http(addr, "POST", &format!("/api/process/{pid}/kill"), &[])
            .await
            .0,
        403
    );
    assert!(named.is_alive());
    let (status, body) = http(
        addr,
        "POST",
        &format!("/api/process/{pid}/kill"),
        &[("x-orbit-action", "kill")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(named.wait_exit().await, ExitReason::Killed);
    // Linked: the busy one went with it.
    busy.wait_exit().await;

    // Server-sent events: samples keep coming, ticks increase.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut ticks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ticks.len() < 3 {
        assert!(Instant::now() < deadline, "three samples within 20 s");
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line within 20 s")
            .unwrap()
            .expect("the stream stays open");
        if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            ticks.push(v["tick"].as_u64().unwrap());
        }
    }
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "ticks increase: {ticks:?}"
    );
    let _ = go_tx.send(());
    dash.stop();
}

/// Many processes rank fast (a million is the bench's job: `orbit-bench observe`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranks_a_hundred_thousand_processes() {
    let dash = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = dash.local_addr();
    let n = 100_000;
    let mut hs = Vec::with_capacity(n);
    for i in 0..n {
        let h = orbit::spawn(sink).unwrap();
        if i % 1000 == 0 {
            h.send(1).unwrap();
        }
        hs.push(h);
    }
    let t0 = Instant::now();
    let r = json(addr, "/api/processes?sort=time&limit=20").await;
    let took = t0.elapsed();
    assert!(r["total"].as_u64().unwrap() >= n as u64);
    assert_eq!(r["rows"].as_array().unwrap().len(), 20);
    // Generous: a debug build on a loaded machine; the release figure is in the bench.
    assert!(took < Duration::from_secs(10), "ranking {n} took {took:?}");
    eprintln!(
        "ranked {} processes in {took:?} (server: {} ms)",
        r["total"], r["took_ms"]
    );
    for h in &hs {
        orbit::exit(h.pid(), ExitReason::Kill);
    }
    dash.stop();
}

/// The process page's recent handling times: each read samples the process's running
/// totals; an interval in which it handled 20 messages of about 10 ms each shows them,
/// with p50/p99 of the interval means.
///
/// Handling time is read from the runtime's 1 ms coarse clock, whose thread can be
/// preempted on a loaded machine: the sum over back-to-back messages is off by the
/// clock's lag at its two ends. 200 ms of handling keeps a lag of tens of milliseconds
/// inside the 25% slack below (1 ms messages failed in CI with p50 under 900 µs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_page_shows_recent_handling_times() {
    let dash = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = dash.local_addr();
    // Each message but the last (`u64::MAX`) takes about 10 ms of work.
    let worker = orbit::spawn(|mut ctx: Context<u64>| async move {
        while let Message::Msg(i) = ctx.recv().await {
            if i == u64::MAX {
                continue;
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(10) {
                std::hint::spin_loop();
            }
        }
    })
    .unwrap();
    let pid = worker
        .pid()
        .to_string()
        .replace('#', "%23")
        .replace('<', "%3C")
        .replace('>', "%3E");
    let path = format!("/api/process/{pid}");
    let first = json(addr, &path).await;
    assert_eq!(
        first["recent"]["intervals"].as_array().unwrap().len(),
        0,
        "{first}"
    );
    assert!(first["recent"]["p50_us"].is_null(), "{first}");
    for i in 0..20 {
        worker.send(i).unwrap();
    }
    // A message's time is added when the process takes the next one: the 21st (no
    // work) being taken means the 20th is accounted.
    worker.send(u64::MAX).unwrap();
    eventually("the 21 messages taken", Duration::from_secs(20), || async {
        orbit::process_info(worker.pid()).is_some_and(|i| i.messages_handled >= 21)
    })
    .await;
    let page = std::sync::Arc::new(parking_lot::Mutex::new(Value::Null));
    eventually(
        "an interval with the 21 messages",
        Duration::from_secs(10),
        || {
            let (path, page) = (path.clone(), page.clone());
            async move {
                let p = json(addr, &path).await;
                let done = p["recent"]["intervals"].as_array().is_some_and(|iv| {
                    iv.iter()
                        .map(|i| i["handled"].as_u64().unwrap())
                        .sum::<u64>()
                        >= 21
                });
                *page.lock() = p;
                done
            }
        },
    )
    .await;
    let page = page.lock().clone();
    let recent = &page["recent"];
    let p50 = recent["p50_us"].as_f64().unwrap();
    let p99 = recent["p99_us"].as_f64().unwrap();
    // 20 x 10 ms over 21 messages is 9.5 ms each; 25% slack for the clock's lag.
    assert!(p50 >= 7_100.0, "about 9.5 ms per message: {recent}");
    assert!(p99 >= p50, "{recent}");
    let iv = recent["intervals"].as_array().unwrap();
    assert!(
        iv.iter().all(|i| i["seconds"].as_f64().unwrap() >= 0.2),
        "{recent}"
    );
    dash.stop();
}
