//! Timing a whole axum [`Router`] from outside ([`Timing::wrap`]), the route learned
//! from its handler ([`Timing::route`]).
//!
//! `Router::layer` applies a layer to every route, and axum pays for it per request
//! (the route's service and its future are boxed once more). Around the router, a
//! [`TimedRouter`] adds no box, but it cannot see the route axum matched: the request
//! has moved into the router. The handler tells it instead: a [`RouteHandler`] carries
//! its route's id, resolved once when it was made, and writes it into a per-thread
//! slot when axum calls it; axum calls a handler while the router's future is polled,
//! so the [`TimedRouterFuture`] empties the slot before each poll of the router's
//! future until it has a route, and reads it after (one request's poll never
//! interleaves with another's on a thread; the previous content is put back, for nested
//! routers). A handler called on another task (a middleware that spawns the rest of
//! the request) is not seen, and its request is not timed.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Bytes, HttpBody};
use axum::extract::Request;
use axum::handler::Handler;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::{BoxError, Router};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::trace::TraceRef;
use super::Timing;

/// No route in the slot.
const NO_ROUTE: u32 = u32::MAX;

thread_local! {
    /// Where a [`RouteHandler`] writes its route's id for the [`TimedRouterFuture`]
    /// polling it, with the registry the id belongs to (`Timing::owner`, never 0): a
    /// handler made by another `Timing` is not counted under this one's routes.
    static SLOT: Cell<(usize, u32)> = const { Cell::new((0, NO_ROUTE)) };
}

/// A handler that tells [`Timing::wrap`] its route ([`Timing::route`]); otherwise the
/// handler it wraps, unchanged.
#[derive(Clone, Copy, Debug)]
pub struct RouteHandler<H> {
    handler: H,
    route: u32,
    owner: usize,
}

impl<H> RouteHandler<H> {
    pub(super) fn new(handler: H, route: u32, owner: usize) -> RouteHandler<H> {
        RouteHandler {
            handler,
            route,
            owner,
        }
    }
}

impl<H, T, S> Handler<T, S> for RouteHandler<H>
where
    H: Handler<T, S>,
{
    // The handler's own future, unwrapped: the route is all it tells (the handler's
    // time under a split comes from `Timing::handler`, as under `Timing::layer`).
    type Future = H::Future;

    fn call(self, req: Request, state: S) -> Self::Future {
        SLOT.set((self.owner, self.route));
        self.handler.call(req, state)
    }
}

/// An axum [`Router`] timed from outside ([`Timing::wrap`]): a tower service for
/// requests, and a make-service for `axum::serve` (like `Router` itself).
///
/// Each connection `axum::serve` accepts gets its own reference count on the `Timing`
/// (one allocation per connection): hyper clones the service per request and the
/// request's future keeps a reference to the `Timing`, so the counts updated per
/// request are the connection's own, not one counter shared by every worker thread
/// (whose cache line would move between the cores on every request).
#[derive(Clone, Debug)]
pub struct TimedRouter {
    router: Router,
    /// The `Timing`, behind a reference count of this connection's own.
    timing: Arc<Timing>,
}

impl TimedRouter {
    pub(super) fn new(router: Router, timing: Timing) -> TimedRouter {
        // What `axum::serve` does per connection for a `Router`: turn every handler
        // into a route now rather than per request.
        TimedRouter {
            router: router.with_state(()),
            timing: Arc::new(timing),
        }
    }
}

impl<B> Service<Request<B>> for TimedRouter
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TimedRouterFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let timing = &self.timing;
        let start = timing.now_raw();
        let trace = timing.split_raw(start).then(|| {
            let t = TraceRef::default();
            req.extensions_mut().insert(t.clone());
            t
        });
        // axum calls the handler when the router's future is first polled, not here.
        TimedRouterFuture {
            timing: self.timing.clone(),
            start,
            trace,
            route: NO_ROUTE,
            inner: self.router.call(req),
        }
    }
}

impl<L> Service<axum::serve::IncomingStream<'_, L>> for TimedRouter
where
    L: axum::serve::Listener,
{
    type Response = TimedRouter;
    type Error = Infallible;
    type Future = std::future::Ready<Result<TimedRouter, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        // The connection's own reference count (see the type's docs).
        std::future::ready(Ok(TimedRouter {
            router: self.router.clone(),
            timing: Arc::new(Timing::clone(&self.timing)),
        }))
    }
}

pin_project! {
    /// The future of a [`TimedRouter`]: the router's, then the request recorded under
    /// the route its handler told.
    pub struct TimedRouterFuture {
        timing: Arc<Timing>,
        start: u64,
        trace: Option<TraceRef>,
        route: u32,
        #[pin]
        inner: RouteFuture<Infallible>,
    }
}

impl Future for TimedRouterFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let timing: &Timing = this.timing;
        let r = if *this.route == NO_ROUTE {
            // Empty the slot, poll (a handler called meanwhile writes its route), put
            // the previous content back (a router polled inside this one).
            SLOT.with(|slot| {
                let prev = slot.replace((0, NO_ROUTE));
                let r = this.inner.poll(cx);
                let (owner, route) = slot.replace(prev);
                if owner == timing.owner() {
                    *this.route = route;
                }
                r
            })
        } else {
            this.inner.poll(cx)
        };
        let resp = match r {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(resp)) => resp,
            Poll::Ready(Err(never)) => match never {},
        };
        if *this.route != NO_ROUTE {
            let (route, start) = (*this.route, *this.start);
            let status = resp.status().as_u16();
            match this.trace.take() {
                Some(t) => timing.finish_id(route, status, start, Some(&t.0.lock())),
                None => timing.finish_id(route, status, start, None),
            }
            // Recorded once, even if polled again.
            *this.route = NO_ROUTE;
        }
        Poll::Ready(Ok(resp))
    }
}
