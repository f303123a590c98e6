//! The collector learns each figure's normal band over its warm-up ticks, then flags a
//! burst of messages as a deviation of `messages_per_second` (the dashboard marks it).

use std::time::Duration;

use orbit::{Context, Message};
use orbit_observe::Collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_after_a_quiet_warm_up_is_flagged() {
    let c = Collector::new();
    let sink = orbit::spawn(|mut ctx: Context<u64>| async move {
        while let Message::Msg(_) = ctx.recv().await {}
    })
    .unwrap();
    // Warm-up: 25 quiet ticks (the first has no rates and is not learned).
    let mut last = None;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        last = Some(c.tick());
    }
    let quiet = last.unwrap();
    let band = quiet
        .normal
        .iter()
        .find(|b| b.metric == "messages_per_second")
        .expect("a band for messages/s");
    assert!(!band.learning, "{band:?}");
    assert!(band.low >= 0.0 && band.high >= band.low, "{band:?}");
    assert!(
        quiet.normal.iter().all(|b| b.low >= 0.0),
        "no negative bounds: {:?}",
        quiet.normal
    );

    // A burst: 200k messages handled within one tick.
    for i in 0..200_000 {
        sink.send(i).unwrap();
    }
    let t0 = std::time::Instant::now();
    while orbit::process_info(sink.pid()).unwrap().message_queue_len > 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the sink drains");
        tokio::task::yield_now().await;
    }
    let burst = c.tick();
    assert!(
        burst.messages_per_second > band.high,
        "{} vs band {band:?}",
        burst.messages_per_second
    );
    assert!(
        burst
            .deviations
            .iter()
            .any(|d| d.metric == "messages_per_second" && d.observed > d.high),
        "flagged: {:?}",
        burst.deviations
    );
    assert_eq!(c.latest().unwrap().tick, burst.tick);
    assert_eq!(c.history().len(), 26);
}
