//! Request timing: per route, the named middleware's own time is told apart from the
//! handler's, a slow middleware is named as the route's bottleneck, unmatched requests
//! are not timed, every timed request emits `[orbit, web, request]`, and the split is
//! recorded at most at its rate while every request is counted (the outer layer alone:
//! counted and timed, no split).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{from_fn, Next};
use axum::routing::get;
use axum::Router;
use orbit_web::Timing;
use tower::ServiceExt;

/// Takes 30 ms on `/slow`, nothing elsewhere.
/// The status of a GET of `path` on `app`.
async fn status(app: &Router, path: &str) -> u16 {
    app.clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn auth(req: Request, next: Next) -> axum::response::Response {
    if req.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    next.run(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_and_handler_time_are_split_per_route() {
    let timing = Timing::new();
    let events = Arc::new(AtomicU64::new(0));
    let e = events.clone();
    orbit::telemetry::attach("timing-test", &["orbit", "web", "request"], move |ev| {
        if ev.meta("route").as_deref() == Some("/slow") && ev.measurement("duration_us").is_some() {
            e.fetch_add(1, Ordering::Relaxed);
        }
    })
    .unwrap();
    let app: Router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(3)).await;
                "slow"
            }),
        )
        .route("/fast", get(|| async { "fast" }))
        .route_layer(timing.handler())
        .layer(timing.timed("auth", from_fn(auth)))
        .layer(timing.layer());
    for path in ["/slow", "/fast", "/slow", "/fast", "/nowhere"] {
        let want = if path == "/nowhere" { 404 } else { 200 };
        assert_eq!(status(&app, path).await, want, "{path}");
    }
    let snap = timing.snapshot();
    let routes: Vec<&str> = snap.iter().map(|r| r.route.as_str()).collect();
    assert_eq!(
        routes,
        vec!["/fast", "/slow"],
        "unmatched paths are not timed"
    );
    let slow = &snap[1];
    assert_eq!(slow.count, 2);
    let (name, auth_mean) = slow.slowest_middleware().expect("auth is the bottleneck");
    assert_eq!(name, "auth");
    assert!(auth_mean >= Duration::from_millis(30), "{auth_mean:?}");
    assert!(
        slow.handler.mean >= Duration::from_millis(3),
        "{:?}",
        slow.handler
    );
    assert!(
        slow.handler.mean < Duration::from_millis(30),
        "{:?}",
        slow.handler
    );
    // Histograms keep 2 significant digits: the parts add up within 2%.
    let parts = auth_mean + slow.handler.mean + slow.other.mean;
    let (t, p) = (slow.total.mean.as_secs_f64(), parts.as_secs_f64());
    assert!((t - p).abs() <= 0.02 * t, "{slow:?}");
    let fast = &snap[0];
    assert_eq!(fast.count, 2);
    assert!(
        fast.slowest_middleware().is_none()
            || fast.middleware[0].1.mean < Duration::from_millis(30)
    );
    assert_eq!(events.load(Ordering::Relaxed), 2);
    orbit::telemetry::detach("timing-test");
}

// One thread: the rate is per thread.
#[tokio::test]
async fn the_split_is_recorded_at_most_at_its_rate_and_every_request_is_counted() {
    // One split request per second per thread after a burst of 64: of 200 quick
    // requests, 64 (plus one per second elapsed) are split; all 200 are counted.
    let limited = Timing::with_split_rate(Some(1));
    let every = Timing::with_split_rate(None);
    let app = |t: &Timing| -> Router {
        Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route_layer(t.handler())
            .layer(t.timed("auth", from_fn(auth)))
            .layer(t.layer())
    };
    let (a, b) = (app(&limited), app(&every));
    let started = std::time::Instant::now();
    for _ in 0..200 {
        for app in [&a, &b] {
            assert_eq!(status(app, "/hello").await, 200);
        }
    }
    let secs = started.elapsed().as_secs();
    let l = &limited.snapshot()[0];
    assert_eq!(l.count, 200);
    assert!(
        l.split >= 64 && l.split <= 64 + 2 * (secs + 1),
        "{} split in {secs} s",
        l.split
    );
    assert!(l.split < 200);
    assert_eq!(l.handler.count, l.split, "{l:?}");
    assert_eq!(l.middleware[0].1.count, l.split);
    let e = &every.snapshot()[0];
    assert_eq!((e.count, e.split), (200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outer_layer_alone_counts_and_times_every_request_without_a_split() {
    // No split stage (handler(), timed()) was made from this Timing: every request is
    // counted with its total, none carries a trace, so the split stays empty.
    let timing = Timing::with_split_rate(None);
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(timing.layer());
    for _ in 0..50 {
        assert_eq!(status(&app, "/hello").await, 200);
    }
    let s = timing.snapshot();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!((s[0].route.as_str(), s[0].count), ("/hello", 50));
    assert_eq!(s[0].total.count, 50, "{:?}", s[0]);
    assert_eq!(s[0].split, 0);
    assert_eq!((s[0].handler.count, s[0].other.count), (0, 0));
    assert!(s[0].middleware.is_empty());
}
