//! Telemetry: sliding-window rates on a manual clock, histogram percentiles, system
//! snapshots, and the baseline learner.

use std::sync::Arc;
use std::time::Duration;

use orbit::telemetry::{Baseline, BaselineOptions, Latency, ManualClock, Rate, SystemSampler};

const MS: Duration = Duration::from_millis(1);

#[test]
fn rate_per_second_slides_out_old_buckets() {
    let clock = Arc::new(ManualClock::new());
    let rate = Rate::with_clock(clock.clone());
    clock.advance(Duration::from_secs(120));
    // 100 events every 100 ms for 2 s: 1000/s. The second's window is the current
    // 100 ms bucket and the 9 before it.
    for _ in 0..20 {
        clock.advance(100 * MS);
        rate.mark(100);
    }
    let s = rate.snapshot();
    assert_eq!(s.per_second, 1000.0);
    assert_eq!(s.total, 2000);
    assert!((s.per_minute - 2000.0 / 60.0).abs() < 1e-9);
    // Quiet for 600 ms: the last 4 marks are still within the second's 10 buckets.
    clock.advance(600 * MS);
    assert_eq!(rate.snapshot().per_second, 400.0);
    // Quiet for a full second more: nothing in the last second, still in the minute.
    clock.advance(Duration::from_secs(1));
    let s = rate.snapshot();
    assert_eq!(s.per_second, 0.0);
    assert!((s.per_minute - 2000.0 / 60.0).abs() < 1e-9);
    // After a minute the minute window is empty too; the hour still counts.
    clock.advance(Duration::from_secs(61));
    let s = rate.snapshot();
    assert_eq!(s.per_minute, 0.0);
    // The hour window is longer than the rate has existed (184.6 s): over its age.
    assert!((s.per_hour - 2000.0 / 184.6).abs() < 1e-9, "{}", s.per_hour);
}

#[test]
fn rate_of_a_young_counter_is_over_its_age() {
    let clock = Arc::new(ManualClock::new());
    let rate = Rate::with_clock(clock.clone());
    rate.mark(50);
    clock.advance(500 * MS);
    // 50 events in the 0.5 s the rate has existed: 100/s, in every window.
    let s = rate.snapshot();
    assert_eq!(s.per_second, 100.0);
    assert_eq!(s.per_minute, 100.0);
    assert_eq!(s.per_hour, 100.0);
}

#[test]
fn rate_jump_far_ahead_clears_everything() {
    let clock = Arc::new(ManualClock::new());
    let rate = Rate::with_clock(clock.clone());
    rate.mark(7);
    clock.advance(Duration::from_secs(3 * 3600));
    let s = rate.snapshot();
    assert_eq!((s.per_second, s.per_minute, s.per_hour), (0.0, 0.0, 0.0));
    assert_eq!(s.total, 7);
}

#[test]
fn histogram_percentiles() {
    let lat = Latency::new();
    for us in 1..=1000u64 {
        lat.record(Duration::from_micros(us));
    }
    let s = lat.summary();
    assert_eq!(s.count, 1000);
    let within = |d: Duration, us: f64| {
        let got = d.as_secs_f64() * 1e6;
        assert!(
            (got - us).abs() <= us * 0.01 + 0.001,
            "{got} µs, expected ~{us} µs"
        );
    };
    within(s.p50, 500.0);
    within(s.p90, 900.0);
    within(s.p99, 990.0);
    within(s.max, 1000.0);
    within(s.mean, 500.5);
}

#[test]
fn histogram_merge_and_take() {
    let lat = Latency::new();
    let mut local = Latency::local();
    for _ in 0..99 {
        Latency::record_local(&mut local, Duration::from_micros(10));
    }
    Latency::record_local(&mut local, Duration::from_secs(2));
    lat.merge(&local);
    lat.record(Duration::from_micros(10));
    let s = lat.take();
    assert_eq!(s.count, 101);
    assert!(s.p99 < Duration::from_micros(11), "{:?}", s.p99);
    assert!(s.max >= Duration::from_millis(1990), "{:?}", s.max);
    assert_eq!(lat.summary().count, 0, "take empties the histogram");
    // Values beyond an hour are clamped, not lost.
    lat.record(Duration::from_secs(10_000));
    assert_eq!(lat.summary().count, 1);
    assert!(lat.summary().max <= Duration::from_secs(3700));
}

#[test]
fn baseline_flags_a_deviation_with_metric_range_and_value() {
    let mut b = Baseline::new(BaselineOptions {
        warmup: 10,
        sigmas: 3.0,
        relative: 0.0,
        floor: 0.0,
    });
    let warm = [
        98.0, 102.0, 100.0, 99.0, 101.0, 100.0, 97.0, 103.0, 100.0, 100.0,
    ];
    for v in warm {
        assert!(b.observe("rps", v).is_none(), "no judgement while learning");
    }
    assert!(!b.is_learning("rps"));
    let n = b.normal("rps").expect("learned");
    assert!((n.mean - 100.0).abs() < 1e-9);
    assert!((n.stddev - 1.7638342073763937).abs() < 1e-9, "{}", n.stddev);
    assert!(b.observe("rps", 104.0).is_none(), "within 3 sigma");
    let d = b.observe("rps", 500.0).expect("a burst is flagged");
    assert_eq!(d.metric, "rps");
    assert_eq!(d.observed, 500.0);
    assert!(d.is_high());
    assert!((d.normal.low - (100.0 - 3.0 * n.stddev)).abs() < 1e-9);
    assert!((d.normal.high - (100.0 + 3.0 * n.stddev)).abs() < 1e-9);
    assert!((d.ratio() - 5.0).abs() < 1e-9);
    let text = d.to_string();
    assert!(
        text.starts_with("rps = 500 is above its normal range 94.71..105.29"),
        "{text}"
    );
    let low = b.observe("rps", 10.0).expect("a drop is flagged too");
    assert!(!low.is_high());
    // The normal range stays fixed after the warm-up.
    assert_eq!(b.normal("rps"), Some(n));
}

#[test]
fn baseline_floor_keeps_a_flat_warmup_from_flagging_jitter() {
    let mut b = Baseline::new(BaselineOptions {
        warmup: 5,
        ..Default::default()
    });
    b.floor("mailbox", 10.0);
    for _ in 0..5 {
        b.observe("mailbox", 0.0);
        b.observe("other", 0.0);
    }
    assert!(b.observe("mailbox", 8.0).is_none());
    let d = b.observe("mailbox", 11.0).expect("above the floor");
    assert_eq!((d.normal.low, d.normal.high), (-10.0, 10.0));
    assert!(
        b.observe("other", 1.0).is_some(),
        "no floor: any change flags"
    );
    assert!(b.observe("nan", f64::NAN).is_none());
    b.reset();
    assert!(b.is_learning("mailbox"));
}

#[tokio::test]
async fn system_snapshot_reads_the_process() {
    let mut sampler = SystemSampler::new().top(3);
    let h = orbit::spawn(|mut ctx: orbit::Context<()>| async move {
        let _ = ctx.recv().await;
    })
    .expect("spawn");
    let s = sampler.sample();
    assert!(s.processes >= 1);
    assert!(s.largest_mailboxes.len() <= 3);
    if cfg!(target_os = "linux") {
        assert!(s.rss_bytes.unwrap() > 1 << 20);
        let fds = s.open_fds.unwrap();
        assert!(fds >= 3 && fds <= s.fd_limit.unwrap());
        assert!(s.cpu_percent.unwrap() >= 0.0);
    }
    s.publish();
    h.send(()).expect("alive");
    h.wait_exit().await;
}
