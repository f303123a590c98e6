//! A cache in a supervision tree: its child spec, and finding it by name or owner pid.
//!
//! As Elixir's `{ConCache, opts}` child: the cache's owner process is linked to the
//! supervisor, which restarts it (with a new, empty table) when it crashes and stops it
//! with a `shutdown` exit signal. A supervised cache is kept alive by its owner process,
//! not by its handles (a plain [`ConCache::start`] cache stops when its last handle is
//! dropped): nobody holds a handle to a child, callers find it with
//! [`ConCache::whereis`]. Its [`CacheOptions::name`](super::CacheOptions::name) then becomes a
//! registered process name (of the owner), so after a restart the name leads to the
//! new cache.
//!
//! Defaults as ConCache's child spec: permanent, kind supervisor (ConCache is one),
//! shutdown infinity.

use super::error::CacheError;
use super::{CacheOptions, ConCache};
use crate::ets::{Key, Value};
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::supervisor::ChildSpec;

impl<K: Key, V: Value> ConCache<K, V> {
    /// A child spec that starts this cache linked to the supervisor with `opts` at each
    /// (re)start: permanent, kind supervisor, shutdown infinity (ConCache's). Name it
    /// with [`CacheOptions::name`](super::CacheOptions::name) to find it with
    /// [`ConCache::whereis`]; the cache lives until its owner exits (stopped by the
    /// supervisor, [`ConCache::stop`], or a crash), whether or not handles remain.
    pub fn child_spec(id: impl Into<String>, opts: CacheOptions<K, V>) -> ChildSpec {
        let name = opts.name.as_ref().map(|n| n.to_string());
        let spec = ChildSpec::supervisor(id, move || {
            let opts = opts.clone();
            async move {
                let cache = ConCache::start_link(opts).await.map_err(start_error)?;
                let owner = cache.owner();
                // The owner keeps its cache alive; dropped when the owner exits.
                crate::attachment::attach(owner, Box::new(cache))
                    .map_err(|e| ExitReason::error(e.to_string()))?;
                Ok::<Pid, ExitReason>(owner)
            }
        });
        ChildSpec { name, ..spec }
    }

    /// The cache whose owner process is `owner`, if that process is a cache of this
    /// type started by [`ConCache::child_spec`] and still runs.
    pub fn from_pid(owner: Pid) -> Option<ConCache<K, V>> {
        crate::attachment::attached::<ConCache<K, V>>(owner)
    }

    /// The supervised cache registered as `name` (its `CacheOptions::name`), if it runs:
    /// after a supervisor restarted it, the new cache. `None` for a cache of other key
    /// or value types, or one started with [`ConCache::start`] (not registered).
    pub fn whereis(name: impl Into<crate::registry::Dest>) -> Option<ConCache<K, V>> {
        name.into().whereis().and_then(Self::from_pid)
    }
}

fn start_error(e: CacheError) -> ExitReason {
    ExitReason::error(format!("the cache did not start: {e}"))
}

impl ChildSpec {
    /// A ConCache as a child: [`ConCache::child_spec`].
    pub fn cache<K: Key, V: Value>(id: impl Into<String>, opts: CacheOptions<K, V>) -> ChildSpec {
        ConCache::child_spec(id, opts)
    }
}
