//! Web requests: where a route's time goes, middleware or handler — the seed's "Plug
//! overhead" on a real axum stack timed by `orbit_web::Timing`.
//!
//! One app, two routes behind the same named middleware `session` (a session lookup in
//! a slow store: 2 ms, only where a session is needed) and the same light handler:
//! `/health` needs no session, `/report` does. Clients call the app through its tower
//! stack in-process (no network: the lab measures the app, not loopback TCP). The
//! verdict names the route whose own time is mostly a middleware's.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{from_fn, Next};
use axum::routing::get;
use axum::Router;
use orbit::Context;
use orbit_web::{RouteTiming, Timing};
use serde_json::{json, Map};
use tower::ServiceExt;

use super::measure::{closed_loop, spawn_clients, watch, Probe, VariantResult};
use super::report::dur;
use super::{Error, Lab, Report};

const SCENARIO: &str = "web";
const SESSION: Duration = Duration::from_millis(2);

async fn session(req: Request, next: Next) -> axum::response::Response {
    if req.uri().path() == "/report" {
        tokio::time::sleep(SESSION).await;
    }
    next.run(req).await
}

async fn handler() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"ok": true}))
}

/// Runs the scenario.
pub async fn run(lab: &Lab) -> Result<Report, Error> {
    let timing = Timing::new();
    let app: Router = Router::new()
        .route("/health", get(handler))
        .route("/report", get(handler))
        .route_layer(timing.handler())
        .layer(timing.timed("session", from_fn(session)))
        .layer(timing.layer());
    let mut results = Vec::new();
    for path in ["/health", "/report"] {
        results.push(variant(lab, path, app.clone()).await?);
    }
    Ok(verdict(&timing.snapshot(), results))
}

async fn variant(lab: &Lab, path: &'static str, app: Router) -> Result<VariantResult, Error> {
    let probe = Probe::new();
    let clients = spawn_clients(
        lab.clients(),
        &probe,
        move |_, probe: Arc<Probe>, _ctx: Context<()>| {
            let app = app.clone();
            async move {
                closed_loop(probe, || {
                    let app = app.clone();
                    async move {
                        if let Ok(req) = Request::get(path).body(Body::empty()) {
                            let _ = app.oneshot(req).await;
                        }
                    }
                })
                .await
            }
        },
    )?;
    Ok(watch(
        lab,
        SCENARIO,
        path,
        lab.duration(),
        &probe,
        &clients,
        |_| {},
    )
    .await)
}

fn verdict(routes: &[RouteTiming], results: Vec<VariantResult>) -> Report {
    let mut facts = Map::new();
    for r in routes {
        let k = r.route.trim_start_matches('/');
        let mw: Duration = r.middleware.iter().map(|(_, s)| s.mean).sum();
        facts.insert(format!("{k}_requests"), json!(r.count));
        facts.insert(
            format!("{k}_handler_mean_us"),
            json!(r.handler.mean.as_micros() as u64),
        );
        facts.insert(
            format!("{k}_middleware_mean_us"),
            json!(mw.as_micros() as u64),
        );
        facts.insert(
            format!("{k}_total_mean_us"),
            json!(r.total.mean.as_micros() as u64),
        );
    }
    let flagged = routes
        .iter()
        .filter_map(|r| r.slowest_middleware().map(|(m, d)| (r, m.to_string(), d)))
        .max_by_key(|(_, _, d)| *d);
    let (bottleneck, verdict) = match flagged {
        Some((r, m, d)) => {
            facts.insert("flagged_route".into(), json!(r.route));
            facts.insert("flagged_middleware".into(), json!(m));
            let share = d.as_secs_f64() / r.total.mean.as_secs_f64().max(1e-9) * 100.0;
            (
                format!("middleware `{m}` on {}", r.route),
                format!(
                    "bottleneck: middleware `{m}` on {} — {} of its {} per request ({share:.0}%), the handler {}: move the work out of the request path (cache the session, or skip it where it is not needed)",
                    r.route,
                    dur(d),
                    dur(r.total.mean),
                    dur(r.handler.mean),
                ),
            )
        }
        None => (
            "none".into(),
            "no route spends more time in a middleware than in its handler".into(),
        ),
    };
    facts.insert("flagged".into(), json!(bottleneck != "none"));
    Report {
        scenario: SCENARIO,
        title: "two routes of one axum app behind a named `session` middleware, timed by orbit_web::Timing".into(),
        bottleneck,
        verdict,
        results,
        facts,
    }
}
