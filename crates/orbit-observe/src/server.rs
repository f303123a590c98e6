//! The HTTP side: the dashboard page, its JSON API, server-sent events and `/metrics`,
//! as one axum router, with the token check.
//!
//! Routes (all `GET` unless said):
//!
//! | route | answers |
//! |---|---|
//! | `/` | the dashboard page (one HTML file with its script, no build step) |
//! | `/metrics` | the Prometheus exposition (text format 0.0.4) |
//! | `/api/node` | the latest [`NodeSample`](crate::NodeSample) |
//! | `/api/history` | the kept samples, oldest first |
//! | `/api/events` | server-sent events: one `sample` event per collector tick |
//! | `/api/processes?sort=mailbox\|memory\|time\|rate&limit=N` | a [`Ranking`](crate::Ranking) |
//! | `/api/process/{pid}` | a [`ProcessPage`](crate::ProcessPage); 404 when gone |
//! | `POST /api/process/{pid}/kill` | kills it (exit reason `kill`); needs the header `x-orbit-action: kill` |
//! | `/api/resources` | pools, caches, stages, links, supervisors, named processes ([`Resources`](crate::Resources)) |
//! | `/api/supervisors` | the supervision trees ([`SupervisorNode`](crate::SupervisorNode)) |
//! | `/api/tables[?node=NAME]` | the ETS tables of this node, or of the connected node `NAME` over `rex` ([`TablesView`](crate::TablesView)) |
//! | `/api/cluster` | the other nodes, BEAM ones read over `rex` ([`PeerNode`](crate::PeerNode)) |
//!
//! Auth: without a token (loopback only) a request whose `Host` is not a loopback
//! address or `localhost` is refused (403), so a page that rebinds its DNS name to
//! 127.0.0.1 gets nothing. With a token set, every route needs it, as `?token=T`, `Authorization: Bearer T`
//! or `x-orbit-token: T` (compared in constant time); a wrong or missing token is 401.
//! [`serve`](crate::serve) refuses a non-loopback address without a token. The kill
//! route's custom header means a cross-site form cannot post it (a browser sends a
//! custom header only after a CORS preflight, which this server never approves).

use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::processes::{self, SortKey};
use crate::Observer;

const PAGE: &str = include_str!("../assets/dashboard.html");

#[derive(Deserialize)]
struct TablesQuery {
    node: Option<String>,
}

#[derive(Deserialize)]
struct ProcessQuery {
    sort: Option<String>,
    limit: Option<usize>,
}

/// The router serving everything in the module docs.
pub(crate) fn router(obs: Observer) -> Router {
    let token = obs.token.clone();
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/metrics", get(metrics_route))
        .route("/api/node", get(node))
        .route("/api/history", get(history))
        .route("/api/events", get(events))
        .route("/api/processes", get(process_list))
        .route("/api/process/{pid}", get(process_page))
        .route("/api/process/{pid}/kill", post(kill))
        .route("/api/resources", get(resources))
        .route("/api/cluster", get(cluster))
        .route("/api/supervisors", get(supervisors))
        .route("/api/tables", get(tables))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let token = token.clone();
            async move { check_token(token.as_deref(), req, next).await }
        }))
        .with_state(obs)
}

async fn check_token(token: Option<&str>, req: Request, next: Next) -> Response {
    let Some(want) = token else {
        // No token means loopback only: refuse names other than loopback ones, so a web
        // page that rebinds its own DNS name to 127.0.0.1 cannot read or kill.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !loopback_host(host) {
            return (
                StatusCode::FORBIDDEN,
                "this dashboard has no token and answers only to loopback addresses \
                 (http://127.0.0.1:PORT or http://localhost:PORT); give it a token to use another name\n",
            )
                .into_response();
        }
        return next.run(req).await;
    };
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v.to_string())
    });
    let h = req.headers();
    let from_header = h
        .get("x-orbit-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            h.get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        });
    let ok = [from_query, from_header]
        .into_iter()
        .flatten()
        .any(|given| constant_time_eq(given.as_bytes(), want.as_bytes()));
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "this dashboard needs its token: add ?token=... or the header x-orbit-token\n",
        )
            .into_response()
    }
}

/// `127.x.x.x`, `[::1]` or `localhost`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics_route(State(obs): State<Observer>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        obs.exporter.render(),
    )
        .into_response()
}

async fn node(State(obs): State<Observer>) -> Response {
    match obs.collector.latest() {
        Some(s) => Json(&*s).into_response(),
        None => {
            let c = obs.collector.clone();
            match tokio::task::spawn_blocking(move || c.tick()).await {
                Ok(s) => Json(&*s).into_response(),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "sampling failed\n").into_response(),
            }
        }
    }
}

async fn history(State(obs): State<Observer>) -> Response {
    let h = obs.collector.history();
    Json(h.iter().map(|s| &**s).collect::<Vec<_>>()).into_response()
}

async fn events(
    State(obs): State<Observer>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let first = obs.collector.latest();
    let rx = obs.collector.subscribe();
    let initial = futures::stream::iter(first.into_iter().map(Ok));
    let stream = initial
        .chain(BroadcastStream::new(rx))
        // A lagging subscriber skips samples.
        .filter_map(|r| async move { r.ok() })
        .filter_map(|s| async move {
            serde_json::to_string(&*s)
                .ok()
                .map(|j| Ok(Event::default().event("sample").data(j)))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn process_list(State(obs): State<Observer>, Query(q): Query<ProcessQuery>) -> Response {
    let sort = match q.sort.as_deref() {
        None => SortKey::Mailbox,
        Some(s) => match SortKey::parse(s) {
            Some(k) => k,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown sort {s:?}: use mailbox, memory, time or rate\n"),
                )
                    .into_response()
            }
        },
    };
    let limit = q.limit.unwrap_or(50);
    let ranker = obs.ranker.clone();
    match tokio::task::spawn_blocking(move || ranker.top(sort, limit)).await {
        Ok(r) => Json(r).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ranking failed\n").into_response(),
    }
}

async fn process_page(Path(pid): Path<String>) -> Response {
    let found =
        tokio::task::spawn_blocking(move || processes::find_pid(&pid).and_then(processes::page))
            .await;
    match found {
        Ok(Some(p)) => Json(p).into_response(),
        _ => (StatusCode::NOT_FOUND, "no such live local process\n").into_response(),
    }
}

async fn kill(Path(pid): Path<String>, headers: HeaderMap) -> Response {
    if headers.get("x-orbit-action").and_then(|v| v.to_str().ok()) != Some("kill") {
        return (
            StatusCode::FORBIDDEN,
            "a kill needs the header x-orbit-action: kill\n",
        )
            .into_response();
    }
    let found = tokio::task::spawn_blocking(move || processes::find_pid(&pid)).await;
    match found {
        Ok(Some(p)) => {
            tracing::warn!(pid = %p, "killed from the dashboard");
            orbit::exit(p, orbit::ExitReason::Kill);
            (StatusCode::OK, format!("killed {p}\n")).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such live local process\n").into_response(),
    }
}

async fn resources(State(obs): State<Observer>) -> Response {
    Json(crate::resources::group(&obs.exporter.render())).into_response()
}

async fn supervisors() -> Response {
    Json(crate::supervisors::trees(Duration::from_secs(1)).await).into_response()
}

async fn cluster() -> Response {
    Json(crate::beam::peers(10, Duration::from_secs(2)).await).into_response()
}

async fn tables(Query(q): Query<TablesQuery>) -> Response {
    match q.node {
        Some(node) if node != crate::node_name() => {
            let connected = orbit_dist::Node::current()
                .is_some_and(|n| n.list().contains(&node) || n.list_hidden().contains(&node));
            if !connected {
                return (
                    StatusCode::NOT_FOUND,
                    format!("{node:?} is not a connected node: see /api/cluster for the nodes\n"),
                )
                    .into_response();
            }
            Json(crate::tables::beam(&node, Duration::from_secs(2)).await).into_response()
        }
        _ => match tokio::task::spawn_blocking(crate::tables::local).await {
            Ok(v) => Json(v).into_response(),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the tables failed\n",
            )
                .into_response(),
        },
    }
}
