//! Request timing from outside the router (`Timing::wrap`, handlers naming their routes
//! with `Timing::route`): requests interleaved on one task are each recorded under their
//! own route, handlers not made with `route` (or made by another `Timing`) and unmatched
//! paths are not timed, the split stages work inside the wrapper, and `axum::serve`
//! serves it over TCP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{from_fn, Next};
use axum::routing::get;
use axum::Router;
use orbit_web::Timing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SLOW: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_requests_are_recorded_under_their_own_routes() {
    let t = Timing::new();
    let events = Arc::new(AtomicU64::new(0));
    let e = events.clone();
    orbit::telemetry::attach(
        "timing-wrap-test",
        &["orbit", "web", "request"],
        move |ev| {
            // The wrapper's clock is the TSC calibrated against the system clock: a
            // 50 ms sleep may read a little under 50 ms (the histograms' 2% below too).
            let slow = ev.measurement("duration_us").unwrap_or(0.0)
                >= SLOW.mul_f64(0.98).as_micros() as f64;
            if ev.meta("route").as_deref() == Some("/w/slow") && slow {
                e.fetch_add(1, Ordering::Relaxed);
            }
        },
    )
    .unwrap();
    let slow = || async {
        tokio::time::sleep(SLOW).await;
        "slow"
    };
    let app = Router::new()
        .route("/w/slow", get(t.route("/w/slow", slow)))
        // The same name twice is one route.
        .route(
            "/w/fast",
            get(t.route("/w/fast", || async { "fast" }))
                .post(t.route("/w/fast", || async { "posted" })),
        )
        .route("/w/untimed", get(|| async { "untimed" }));
    let app = t.wrap(app);
    // One task polls them all: the slow ones wait while the others finish, so their
    // polls interleave on one thread.
    let paths = [
        ("GET", "/w/slow"),
        ("GET", "/w/fast"),
        ("POST", "/w/fast"),
        ("GET", "/w/slow"),
        ("GET", "/w/untimed"),
        ("GET", "/w/nowhere"),
        ("GET", "/w/fast"),
        ("GET", "/w/slow"),
    ];
    let calls = paths.iter().map(|(m, p)| {
        let req = Request::builder()
            .method(*m)
            .uri(*p)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(req)
    });
    let responses = futures::future::join_all(calls).await;
    for ((_, p), r) in paths.iter().zip(responses) {
        let want = if *p == "/w/nowhere" { 404 } else { 200 };
        assert_eq!(r.unwrap().status().as_u16(), want, "{p}");
    }
    let snap = t.snapshot();
    let routes: Vec<(&str, u64)> = snap.iter().map(|r| (r.route.as_str(), r.count)).collect();
    assert_eq!(
        routes,
        vec![("/w/fast", 3), ("/w/slow", 3)],
        "unmatched paths and handlers not made with `route` are not timed"
    );
    let (fast, slow) = (&snap[0], &snap[1]);
    assert_eq!(slow.total.count, 3);
    // Histograms keep 2 significant digits.
    let at_least = SLOW.mul_f64(0.98);
    assert!(slow.total.p50 >= at_least, "{slow:?}");
    assert!(fast.total.max < SLOW, "{fast:?}");
    assert_eq!((slow.split, fast.split), (0, 0), "no split stage was made");
    assert_eq!(events.load(Ordering::Relaxed), 3);
    orbit::telemetry::detach("timing-wrap-test");
}

/// Takes 30 ms.
async fn auth(req: Request, next: Next) -> axum::response::Response {
    tokio::time::sleep(Duration::from_millis(30)).await;
    next.run(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_middleware_and_the_handler_are_split_inside_the_wrapper() {
    let t = Timing::with_split_rate(None);
    let handler = || async {
        tokio::time::sleep(Duration::from_millis(3)).await;
        "done"
    };
    let app = Router::new()
        .route("/w/auth", get(t.route("/w/auth", handler)))
        .route_layer(t.handler())
        .layer(t.timed("auth", from_fn(auth)));
    let app = t.wrap(app);
    for _ in 0..2 {
        let req = Request::get("/w/auth").body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 200);
    }
    let snap = t.snapshot();
    assert_eq!(snap.len(), 1, "{snap:?}");
    let r = &snap[0];
    assert_eq!((r.count, r.split, r.handler.count), (2, 2, 2), "{r:?}");
    let (name, mean) = r.slowest_middleware().expect("auth is the bottleneck");
    assert_eq!(name, "auth");
    assert!(mean >= Duration::from_millis(29), "{mean:?}");
    assert!(r.handler.mean >= Duration::from_micros(2_950), "{r:?}");
    assert!(r.handler.mean < Duration::from_millis(30), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_serve_serves_the_wrapped_router_over_tcp() {
    let t = Timing::new();
    let app = Router::new().route("/hello", get(t.route("/hello", || async { "hello" })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = t.wrap(app);
    let server = tokio::spawn(async move { axum::serve(listener, served).await });
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("hello"), "{text}");
    }
    // Two requests on one kept-alive connection (each connection serves its own copy
    // of the wrapped router; both copies' requests count in the same registry), while
    // another connection is open.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        while !buf.ends_with(b"hello") {
            let mut chunk = [0u8; 512];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        assert!(buf.starts_with(b"HTTP/1.1 200"));
    }
    // A request is recorded when its response is ready, before it is written.
    let snap = t.snapshot();
    assert_eq!(snap.len(), 1, "{snap:?}");
    assert_eq!((snap[0].route.as_str(), snap[0].count), ("/hello", 5));
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    idle.read_to_end(&mut buf).await.unwrap();
    assert!(buf.ends_with(b"hello"));
    assert_eq!(t.snapshot()[0].count, 6);
    server.abort();
}

#[tokio::test]
async fn a_handler_named_by_another_timing_is_not_counted_under_this_one() {
    // Route ids belong to the `Timing` that made them: `other`'s first route has the
    // same id as `t`'s, and must not be counted as `t`'s "/mine".
    let (t, other) = (Timing::new(), Timing::new());
    let app = Router::new()
        .route("/mine", get(t.route("/mine", || async { "mine" })))
        .route(
            "/theirs",
            get(other.route("/theirs", || async { "theirs" })),
        );
    let app = t.wrap(app);
    for path in ["/theirs", "/mine", "/theirs"] {
        let req = Request::get(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 200);
    }
    let snap = t.snapshot();
    let routes: Vec<(&str, u64)> = snap.iter().map(|r| (r.route.as_str(), r.count)).collect();
    assert_eq!(routes, vec![("/mine", 1)]);
    assert!(other.snapshot().is_empty(), "`other` wraps nothing");
}
