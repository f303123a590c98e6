//! Lesson 4: fan work out to many processes, with bounded concurrency, under a
//! supervisor.
//!
//! Run: `cargo run -p orbit-examples --example async_stream_fanout`
//! (bigger run: `ORBIT_EXAMPLE_SCALE=10 cargo run -p orbit-examples --example async_stream_fanout`)
//!
//! Elixir: `Task.Supervisor.async_stream_nolink(sup, items, fun, max_concurrency: 4,
//! ordered: false, timeout: 100, on_timeout: :kill_task)`. Each item runs in its own
//! process under the `Task.Supervisor`; at most `max_concurrency` run at once; results
//! come in input order (`ordered: true`) or as they finish; a task that exceeds the
//! timeout is killed and yields `{:exit, :timeout}` (`TaskError::Timeout`), and a task
//! that crashes yields its exit reason without taking the caller down (nolink).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orbit::task::TaskError;
use orbit::{OnTimeout, StreamOptions, TaskSupervisor};
use orbit_examples::scaled;

const MS: Duration = Duration::from_millis(1);

/// The work for one item: takes (item % 5 + 1) x 2 ms, returns its square.
async fn work(item: u64, running: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> u64 {
    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
    peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(2 * MS * (item % 5 + 1) as u32).await;
    running.fetch_sub(1, Ordering::SeqCst);
    item * item
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sup = TaskSupervisor::start().expect("the task supervisor starts");
    let items = scaled(20);

    for ordered in [true, false] {
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let opts = StreamOptions {
            max_concurrency: 4,
            ordered,
            timeout: Duration::from_secs(5),
            on_timeout: OnTimeout::KillTask,
        };
        let t0 = Instant::now();
        let (r, p) = (running.clone(), peak.clone());
        let results: Vec<u64> = sup
            .async_stream(0..items, move |i| work(i, r.clone(), p.clone()), opts)
            .map(|r| r.expect("every task finishes in time"))
            .collect()
            .await;
        let peak = peak.load(Ordering::SeqCst);
        println!(
            "ordered: {ordered:<5} max_concurrency 4: {} results in {:?}, at most {peak} ran at once",
            results.len(),
            t0.elapsed()
        );
        println!("  first results: {:?}", &results[..results.len().min(10)]);
        assert!(peak <= 4, "max_concurrency is a bound");
        assert_eq!(results.len() as u64, items);
        if ordered {
            assert!(results.windows(2).all(|w| w[0] < w[1]), "input order");
        }
    }

    // Timeouts and crashes: item 3 hangs, item 5 panics; the others still come back.
    let opts = StreamOptions {
        max_concurrency: 8,
        ordered: true,
        timeout: 500 * MS,
        on_timeout: OnTimeout::KillTask,
    };
    let outcomes: Vec<Result<u64, TaskError>> = sup
        .async_stream(
            0..8u64,
            |i| async move {
                match i {
                    3 => tokio::time::sleep(Duration::from_secs(60)).await,
                    5 => panic!("item 5 is poison"),
                    _ => tokio::time::sleep(MS).await,
                }
                i
            },
            opts,
        )
        .collect()
        .await;
    println!("\ntimeout 500 ms, on_timeout: KillTask (item 3 hangs, item 5 panics):");
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            Ok(v) => println!("  item {i}: ok {v}"),
            Err(e) => println!("  item {i}: {e} ({e:?})"),
        }
    }
    assert!(
        matches!(outcomes[3], Err(TaskError::Timeout)),
        "item 3: {:?}",
        outcomes[3]
    );
    assert!(
        matches!(outcomes[5], Err(TaskError::Exit(_))),
        "item 5: {:?}",
        outcomes[5]
    );
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 6);

    // on_timeout: Exit ends the whole stream at the first timeout.
    let opts = StreamOptions {
        on_timeout: OnTimeout::Exit,
        ..opts
    };
    let n = sup
        .async_stream(
            0..8u64,
            |i| async move {
                if i == 2 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                i
            },
            opts,
        )
        .count()
        .await;
    println!("on_timeout: Exit (item 2 hangs): the stream ended after {n} outcomes");
    assert_eq!(n, 3, "items 0, 1, then the timeout of item 2");

    // Nothing is left running: the late tasks were killed.
    let left = sup.children().len();
    println!("tasks still running under the supervisor: {left}");
    sup.stop().await;
}
