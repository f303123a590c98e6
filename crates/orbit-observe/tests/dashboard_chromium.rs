//! The dashboard in a real browser: headless Chromium (Debian's `/usr/bin/chromium`)
//! driven over the DevTools protocol. The pages load with no console error or
//! exception, live values change under load, sorting works from the URL and from the
//! column headers, a process page opens, the tables page lists a table; screenshots go to
//! `target/observe-screenshots/`. Skips (printing `SKIP`) when Chromium is missing.

mod common;
#[path = "support/devtools.rs"]
mod devtools;

use std::time::Duration;

use devtools::{Browser, CHROMIUM};
use orbit::{Context, Message};
use orbit_observe::{serve, ObserveOptions};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium() {
    if !std::path::Path::new(CHROMIUM).exists() {
        println!(
            "SKIP dashboard_in_chromium: {CHROMIUM} is not installed (apt-get install chromium)"
        );
        return;
    }
    let dash =
        serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()).tick(Duration::from_millis(250)))
            .await
            .unwrap();
    let base = format!("http://{}/", dash.local_addr());

    // Load: a named worker fed in waves, and a process whose mailbox grows.
    let worker = orbit::spawn(|mut ctx: Context<u64>| async move {
        while let Message::Msg(_) = ctx.recv().await {}
    })
    .unwrap();
    orbit::register("chromium_worker", worker.pid()).unwrap();
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let stuck = orbit::spawn(move |mut ctx: Context<u64>| async move {
        let _ = go_rx.await;
        while let Message::Msg(_) = ctx.recv().await {}
    })
    .unwrap();
    for i in 0..500 {
        stuck.send(i).unwrap();
    }
    let feeder = tokio::spawn(async move {
        let mut i = 0u64;
        loop {
            for _ in 0..(i % 5 + 1) * 200 {
                let _ = worker.send(i);
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let mut b = Browser::start("observe-screenshots").await;

    // Home: samples arrive over server-sent events and the figures change.
    b.goto(&base).await;
    b.until(
        "three live samples",
        "Number(document.getElementById('status').dataset.ticks) >= 3",
    )
    .await;
    let cards = "JSON.stringify([...document.querySelectorAll('.card')].map(c => c.dataset.value))";
    // The tick and the cards read together, then both must move.
    let tick = "document.getElementById('status').dataset.handled";
    let pair: Vec<Value> =
        serde_json::from_value(b.eval(&format!("[{tick}, {cards}]")).await).unwrap();
    let (tick0, first) = (pair[0].clone(), pair[1].clone());
    b.until(
        "the tick moves and the rendered values change",
        &format!(
            "{tick} !== {} && {cards} !== {}",
            serde_json::to_string(&tick0).unwrap(),
            serde_json::to_string(&first).unwrap()
        ),
    )
    .await;
    let rate = b
        .eval("Number(document.getElementById('card-messages_per_second').dataset.value)")
        .await;
    assert!(
        rate.as_f64().unwrap() > 0.0,
        "messages/s under load: {rate}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('.card').length").await,
        json!(9)
    );
    let shot = b.screenshot("home.png").await;

    // Processes sorted from the URL: mailbox first.
    b.goto(&format!("{base}?sort=mailbox#/processes")).await;
    b.until(
        "the processes table",
        "!!document.querySelector('table#processes')",
    )
    .await;
    assert_eq!(
        b.eval("document.querySelector('table#processes').dataset.sort")
            .await,
        json!("mailbox")
    );
    let mailboxes = b
        .eval("[...document.querySelectorAll('table#processes tr[data-mailbox]')].map(r => Number(r.dataset.mailbox))")
        .await;
    let mb: Vec<u64> = serde_json::from_value(mailboxes).unwrap();
    assert!(mb.len() >= 2 && mb[0] >= 500, "{mb:?}");
    assert!(
        mb.windows(2).all(|w| w[0] >= w[1]),
        "sorted by mailbox: {mb:?}"
    );
    assert_eq!(
        b.eval("document.querySelector('table#processes td a').textContent")
            .await,
        json!(stuck.pid().to_string())
    );
    // ... and by rate from the URL.
    b.goto(&format!("{base}?sort=rate#/processes")).await;
    b.until(
        "sorted by rate",
        "document.querySelector('table#processes')?.dataset.sort === 'rate'",
    )
    .await;
    // Clicking a column header sorts by it and puts it in the URL.
    b.eval("document.querySelector('a[data-sort=time]').click()")
        .await;
    b.until(
        "sorted by handling time after a click",
        "document.querySelector('table#processes')?.dataset.sort === 'time' && location.search.includes('sort=time')",
    )
    .await;
    let times: Vec<f64> = serde_json::from_value(
        b.eval("[...document.querySelectorAll('table#processes tr[data-time]')].map(r => Number(r.dataset.time))")
            .await,
    )
    .unwrap();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "sorted by time: {times:?}"
    );
    b.screenshot("processes.png").await;

    // A process page, by clicking its pid.
    b.eval("document.querySelector('table#processes td a').click()")
        .await;
    b.until("the process page", "!!document.getElementById('kill')")
        .await;
    // Its recent handling times fill in as the page refreshes on each tick.
    b.until(
        "recent handling intervals on the process page",
        "Number(document.querySelector('#recent p[data-intervals]')?.dataset.intervals) >= 1 && !!document.getElementById('recent-chart')",
    )
    .await;
    b.screenshot("process.png").await;

    // Resources and cluster pages render.
    let sup = orbit::Supervisor::start(
        vec![orbit::ChildSpec::worker("sleeper", || async {
            orbit::spawn_link(|mut ctx: Context<u64>| async move {
                while let Message::Msg(_) = ctx.recv().await {}
            })
        })],
        orbit::SupervisorOptions {
            name: Some("chromium_sup".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    b.goto(&format!("{base}#/resources")).await;
    b.until(
        "the resources page with the supervision tree",
        "document.body.innerText.includes('Named processes') && document.body.innerText.includes('chromium_sup') && document.body.innerText.includes('sleeper')",
    )
    .await;
    b.screenshot("resources.png").await;
    drop(sup);
    // The tables page lists a named table with its size.
    let table: orbit::ets::Table<u64, u64> = orbit::ets::Table::builder()
        .public()
        .named("chromium_table")
        .build()
        .unwrap();
    for i in 0..250 {
        table.insert(i, i).unwrap();
    }
    b.goto(&format!("{base}#/tables")).await;
    b.until(
        "the tables page with the named table",
        "document.querySelector('table.tables tr[data-table=chromium_table]')?.dataset.size === '250'",
    )
    .await;
    b.screenshot("tables.png").await;
    table.delete_table().unwrap();
    b.goto(&format!("{base}#/cluster")).await;
    b.until(
        "the cluster page",
        "document.body.innerText.includes('Other nodes')",
    )
    .await;

    let errors = b
        .eval("document.getElementById('errors').textContent")
        .await;
    assert_eq!(errors, json!(""), "errors shown by the page");
    let problems = b.problems();
    assert!(
        problems.is_empty(),
        "console errors or exceptions: {problems:#?}"
    );
    println!("screenshots in {}", shot.parent().unwrap().display());
    feeder.abort();
    let _ = go.send(());
    dash.stop();
}
