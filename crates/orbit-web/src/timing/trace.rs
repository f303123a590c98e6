//! One request's trace: what the inner timing stages measured (each named middleware's
//! own time, the handler's), read by the outermost stage when the response is ready.
//!
//! It travels in the request's extensions, shared (the request moves inward, the
//! figures flow back out); the named middleware are kept inline up to [`INLINE`]
//! so that a trace costs one allocation.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use smallvec::SmallVec;

/// Named middleware kept without a further allocation.
pub(crate) const INLINE: usize = 4;

/// The figures of one request.
#[derive(Default)]
pub(crate) struct Trace {
    /// Per named middleware, outermost first: its name, and the time the next service
    /// took inside it (set by its inner stage), then its own time (set by its entry
    /// stage).
    pub layers: SmallVec<[(&'static str, Duration); INLINE]>,
    /// The handler's time, when a handler stage is attached.
    pub handler: Option<Duration>,
}

/// A request's shared trace, as stored in its extensions (opaque: the marks of the
/// timing stages hold it).
#[derive(Clone, Default)]
pub struct TraceRef(pub(crate) Arc<Mutex<Trace>>);
