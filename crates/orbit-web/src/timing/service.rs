//! The timing stages as tower services: one generic service, [`TimingService`], asks
//! its [`Probe`] what to note when a request enters the stage and what to record when
//! the inner service's response comes back; [`ProbeLayer`] wraps a service in it.
//!
//! The four probes are the four places [`Timing`] measures: [`RequestProbe`] (the
//! outermost layer: starts the request's trace, records the whole request per route),
//! [`EnterProbe`] and [`InsideProbe`] (around and inside a named middleware: its own
//! time is the time between them), and [`HandlerProbe`] (the handler). No future is
//! boxed: [`TimingFuture`] is the inner service's future plus the probe's mark.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::trace::TraceRef;
use super::Timing;

/// What a timing stage notes and records around the service it wraps.
pub trait Probe: Clone + Send + Sync + 'static {
    /// What [`enter`](Probe::enter) hands to [`exit`](Probe::exit): a start time, the
    /// request's trace.
    type Mark: Send + 'static;

    /// The request enters the stage; called before the inner service is.
    fn enter(&self, req: &mut Request) -> Self::Mark;

    /// The inner service answered: with `Some(response)`, or `None` on an error.
    fn exit(mark: Self::Mark, response: Option<&Response>);
}

/// A layer wrapping a service in a [`TimingService`] with probe `P`.
#[derive(Clone, Debug)]
pub struct ProbeLayer<P> {
    pub(super) probe: P,
}

impl<S, P: Probe> Layer<S> for ProbeLayer<P> {
    type Service = TimingService<S, P>;
    fn layer(&self, inner: S) -> Self::Service {
        TimingService {
            inner,
            probe: self.probe.clone(),
        }
    }
}

/// `S`, timed by the probe `P`.
#[derive(Clone, Debug)]
pub struct TimingService<S, P> {
    inner: S,
    probe: P,
}

impl<S, P> Service<Request> for TimingService<S, P>
where
    S: Service<Request, Response = Response>,
    P: Probe,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimingFuture<S::Future, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let mark = self.probe.enter(&mut req);
        TimingFuture {
            inner: self.inner.call(req),
            mark: Some(mark),
        }
    }
}

pin_project! {
    /// The future of a [`TimingService`]: the inner service's, then the probe's exit.
    pub struct TimingFuture<F, P: Probe> {
        #[pin]
        inner: F,
        mark: Option<P::Mark>,
    }
}

impl<F, E, P> Future for TimingFuture<F, P>
where
    F: Future<Output = Result<Response, E>>,
    P: Probe,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let r = ready!(this.inner.poll(cx));
        if let Some(mark) = this.mark.take() {
            P::exit(mark, r.as_ref().ok());
        }
        Poll::Ready(r)
    }
}

/// The outermost stage ([`Timing::layer`]): records the whole request under its matched
/// route, and starts the request's trace when the request is split
/// ([`Timing::with_split_rate`]). Requests that matched no route are not timed.
#[derive(Clone, Debug)]
pub struct RequestProbe {
    pub(super) timing: Timing,
}

impl Probe for RequestProbe {
    type Mark = Option<(Timing, MatchedPath, Option<TraceRef>, Instant)>;

    fn enter(&self, req: &mut Request) -> Self::Mark {
        let path = req.extensions().get::<MatchedPath>()?.clone();
        let start = Instant::now();
        // Only a split request carries a trace: the inner stages of the others find
        // none and read no clock.
        let trace = self.timing.split_now(start).then(|| {
            let t = TraceRef::default();
            req.extensions_mut().insert(t.clone());
            t
        });
        Some((self.timing.clone(), path, trace, start))
    }

    fn exit(mark: Self::Mark, response: Option<&Response>) {
        if let (Some((timing, path, trace, start)), Some(resp)) = (mark, response) {
            let total = start.elapsed();
            let status = resp.status().as_u16();
            match trace {
                Some(t) => timing.finish(&path, status, total, Some(&t.0.lock())),
                None => timing.finish(&path, status, total, None),
            }
        }
    }
}

/// Where a request enters a named middleware ([`Timing::timed`]): adds the
/// middleware's frame to the trace, and at the end turns the inner time its
/// [`InsideProbe`] noted into the middleware's own time.
#[derive(Clone, Copy, Debug)]
pub struct EnterProbe {
    pub(super) name: &'static str,
}

impl Probe for EnterProbe {
    type Mark = Option<(TraceRef, usize, Instant)>;

    fn enter(&self, req: &mut Request) -> Self::Mark {
        let trace = req.extensions().get::<TraceRef>()?.clone();
        let frame = {
            let mut t = trace.0.lock();
            t.layers.push((self.name, Duration::ZERO));
            t.layers.len() - 1
        };
        Some((trace, frame, Instant::now()))
    }

    fn exit(mark: Self::Mark, _: Option<&Response>) {
        if let Some((trace, frame, start)) = mark {
            let total = start.elapsed();
            if let Some(f) = trace.0.lock().layers.get_mut(frame) {
                f.1 = total.saturating_sub(f.1);
            }
        }
    }
}

/// Where a named middleware calls the next service: notes the time spent inside.
#[derive(Clone, Copy, Debug)]
pub struct InsideProbe;

impl Probe for InsideProbe {
    type Mark = Option<(TraceRef, usize, Instant)>;

    fn enter(&self, req: &mut Request) -> Self::Mark {
        let trace = req.extensions().get::<TraceRef>()?.clone();
        // The innermost frame is this middleware's: frames are pushed outermost
        // first, and the ones inside it are pushed after this call.
        let frame = trace.0.lock().layers.len().checked_sub(1)?;
        Some((trace, frame, Instant::now()))
    }

    fn exit(mark: Self::Mark, _: Option<&Response>) {
        if let Some((trace, frame, start)) = mark {
            let inside = start.elapsed();
            if let Some(f) = trace.0.lock().layers.get_mut(frame) {
                f.1 = inside;
            }
        }
    }
}

/// The handler's stage ([`Timing::handler`]).
#[derive(Clone, Copy, Debug)]
pub struct HandlerProbe;

impl Probe for HandlerProbe {
    type Mark = Option<(TraceRef, Instant)>;

    fn enter(&self, req: &mut Request) -> Self::Mark {
        let trace = req.extensions().get::<TraceRef>()?.clone();
        Some((trace, Instant::now()))
    }

    fn exit(mark: Self::Mark, _: Option<&Response>) {
        if let Some((trace, start)) = mark {
            let d = start.elapsed();
            trace.0.lock().handler = Some(d);
        }
    }
}

/// The outermost timing layer ([`Timing::layer`]).
pub type TimingLayer = ProbeLayer<RequestProbe>;

/// The handler's timing layer ([`Timing::handler`]).
pub type HandlerLayer = ProbeLayer<HandlerProbe>;

/// A middleware timed under a name ([`Timing::timed`]): the middleware `L` wraps an
/// [`InsideProbe`] stage and is wrapped by an [`EnterProbe`] stage.
#[derive(Clone, Debug)]
pub struct Timed<L> {
    pub(super) name: &'static str,
    pub(super) layer: L,
}

impl<S, L> Layer<S> for Timed<L>
where
    L: Layer<TimingService<S, InsideProbe>>,
{
    type Service = TimingService<L::Service, EnterProbe>;
    fn layer(&self, inner: S) -> Self::Service {
        let inside = TimingService {
            inner,
            probe: InsideProbe,
        };
        TimingService {
            inner: self.layer.layer(inside),
            probe: EnterProbe { name: self.name },
        }
    }
}
