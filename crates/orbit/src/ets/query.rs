//! Match specifications, Rust-native: a key pattern, a guard closure, a body closure.
//!
//! An Erlang match specification `[{Head, Guards, Body}]` becomes a [`MatchSpec`]: a list
//! of clauses, each a [`Pattern`] (the head's key part as a [`KeyPattern`], everything
//! else as a guard closure over `(&K, &V)`) and a body closure producing the result. The
//! first clause whose pattern matches an object gives that object's result, as in
//! Erlang. No strings are parsed and no terms are interpreted: guards and bodies are
//! compiled Rust.
//!
//! The key pattern is what lets a query avoid a full scan: an exact key is a single
//! lookup on every table type, and on `ordered_set` a key range visits only that range
//! (the hull of all clauses' ranges). A guard-only pattern scans the table.
//!
//! Guards and bodies run while the table's lock (or the current shard's lock) is held:
//! like Erlang match specifications they must not call operations on the same table
//! (that would deadlock); keep them to pure computations on the object.
//!
//! ```
//! use orbit::ets::{MatchSpec, Pattern};
//! // ets:select(T, [{{'$1', '$2'}, [{'>', '$2', 10}], ['$1']}]) over keys 0..100:
//! let spec: MatchSpec<u64, u64, u64> = MatchSpec::new()
//!     .clause(Pattern::range(0..100).when(|_k, v| *v > 10), |k, _v| *k);
//! # let _ = spec;
//! ```

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

type Guard<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;
type Body<K, V, R> = Arc<dyn Fn(&K, &V) -> R + Send + Sync>;
type Clause<K, V, R> = (Pattern<K, V>, Body<K, V, R>);

/// What a pattern says about the key (the head's key position in Erlang).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPattern<K> {
    /// Any key (`'_'` or a variable).
    Any,
    /// Exactly this key (a bound key: one lookup, no scan).
    Key(K),
    /// Keys within the bounds (on `ordered_set`: visits only the range).
    Range(Bound<K>, Bound<K>),
}

impl<K: Ord> KeyPattern<K> {
    /// True when `k` satisfies the pattern.
    pub fn matches(&self, k: &K) -> bool {
        match self {
            KeyPattern::Any => true,
            KeyPattern::Key(x) => x == k,
            KeyPattern::Range(lo, hi) => (lo.as_ref(), hi.as_ref()).contains(k),
        }
    }
}

/// A match pattern over objects `(K, V)`: a key pattern and an optional guard.
///
/// This is `ets:match_object`'s pattern and a match specification's head plus guards.
pub struct Pattern<K, V> {
    pub(crate) key: KeyPattern<K>,
    pub(crate) guard: Option<Guard<K, V>>,
}

impl<K: Clone, V> Clone for Pattern<K, V> {
    fn clone(&self) -> Self {
        Pattern {
            key: self.key.clone(),
            guard: self.guard.clone(),
        }
    }
}

impl<K: fmt::Debug, V> fmt::Debug for Pattern<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("key", &self.key)
            .field("guard", &self.guard.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

impl<K: Ord + Clone, V> Pattern<K, V> {
    /// Matches every object (`{'_', '_'}`).
    pub fn any() -> Self {
        Pattern {
            key: KeyPattern::Any,
            guard: None,
        }
    }

    /// Matches objects with exactly this key.
    pub fn key(k: K) -> Self {
        Pattern {
            key: KeyPattern::Key(k),
            guard: None,
        }
    }

    /// Matches objects whose key lies in `range` (e.g. `10..20`, `..=5`, `(Excluded(a), Unbounded)`).
    pub fn range(range: impl RangeBounds<K>) -> Self {
        Pattern {
            key: KeyPattern::Range(range.start_bound().cloned(), range.end_bound().cloned()),
            guard: None,
        }
    }

    /// Adds a guard: the object matches only if `guard(key, value)` is true as well
    /// (several guards must all hold).
    pub fn when(mut self, guard: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self
    where
        K: 'static,
        V: 'static,
    {
        self.guard = Some(match self.guard.take() {
            None => Arc::new(guard),
            Some(g) => Arc::new(move |k: &K, v: &V| g(k, v) && guard(k, v)),
        });
        self
    }

    /// True when the object `(k, v)` matches.
    #[inline]
    pub fn matches(&self, k: &K, v: &V) -> bool {
        self.key.matches(k)
            && match &self.guard {
                None => true,
                Some(g) => g(k, v),
            }
    }

    /// This pattern as a one-clause match specification whose body is `true` (for
    /// `select_count` and `select_delete`).
    pub fn to_spec(&self) -> MatchSpec<K, V, bool> {
        MatchSpec::new().clause(self.clone(), |_, _| true)
    }
}

/// A match specification: clauses tried in order; the first whose pattern matches gives
/// the object's result.
pub struct MatchSpec<K, V, R> {
    pub(crate) clauses: Vec<Clause<K, V, R>>,
}

impl<K: Clone, V, R> Clone for MatchSpec<K, V, R> {
    fn clone(&self) -> Self {
        MatchSpec {
            clauses: self.clauses.clone(),
        }
    }
}

impl<K: Ord + Clone, V, R> Default for MatchSpec<K, V, R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone, V, R> MatchSpec<K, V, R> {
    /// An empty specification (matches nothing).
    pub fn new() -> Self {
        MatchSpec {
            clauses: Vec::new(),
        }
    }

    /// Adds a clause: objects matching `pattern` give `body(key, value)`.
    pub fn clause(
        mut self,
        pattern: Pattern<K, V>,
        body: impl Fn(&K, &V) -> R + Send + Sync + 'static,
    ) -> Self {
        self.clauses.push((pattern, Arc::new(body)));
        self
    }

    /// The result for one object, or `None` when no clause matches.
    #[inline]
    pub fn eval(&self, k: &K, v: &V) -> Option<R> {
        self.clauses
            .iter()
            .find(|(p, _)| p.matches(k, v))
            .map(|(_, b)| b(k, v))
    }

    /// Which keys can match at all.
    pub(crate) fn scope(&self) -> Scope<'_, K> {
        scope(self.clauses.iter().map(|(p, _)| &p.key))
    }
}

/// The keys a query must visit.
pub(crate) enum Scope<'a, K> {
    /// No key can match.
    Nothing,
    /// Only these keys (sorted, distinct).
    Keys(Vec<&'a K>),
    /// Keys within these bounds (every key when both are unbounded).
    Range(Bound<&'a K>, Bound<&'a K>),
}

pub(crate) fn scope<'a, K: Ord + 'a>(
    pats: impl Iterator<Item = &'a KeyPattern<K>>,
) -> Scope<'a, K> {
    let pats: Vec<&KeyPattern<K>> = pats.collect();
    if pats.is_empty() {
        return Scope::Nothing;
    }
    if pats.iter().all(|p| matches!(p, KeyPattern::Key(_))) {
        let mut keys: Vec<&K> = pats
            .iter()
            .filter_map(|p| match p {
                KeyPattern::Key(k) => Some(k),
                _ => None,
            })
            .collect();
        keys.sort();
        keys.dedup();
        return Scope::Keys(keys);
    }
    let mut lo: Option<Bound<&K>> = None;
    let mut hi: Option<Bound<&K>> = None;
    for p in pats {
        let (l, h) = match p {
            KeyPattern::Any => (Bound::Unbounded, Bound::Unbounded),
            KeyPattern::Key(k) => (Bound::Included(k), Bound::Included(k)),
            KeyPattern::Range(l, h) => (l.as_ref(), h.as_ref()),
        };
        lo = Some(match lo {
            None => l,
            Some(cur) => lower_min(cur, l),
        });
        hi = Some(match hi {
            None => h,
            Some(cur) => upper_max(cur, h),
        });
    }
    Scope::Range(
        lo.unwrap_or(Bound::Unbounded),
        hi.unwrap_or(Bound::Unbounded),
    )
}

fn lower_min<'a, K: Ord>(a: Bound<&'a K>, b: Bound<&'a K>) -> Bound<&'a K> {
    use Bound::*;
    match (a, b) {
        (Unbounded, _) | (_, Unbounded) => Unbounded,
        (Included(x), Included(y)) => Included(x.min(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.min(y)),
        (Included(x), Excluded(y)) | (Excluded(y), Included(x)) => {
            if x <= y {
                Included(x)
            } else {
                Excluded(y)
            }
        }
    }
}

fn upper_max<'a, K: Ord>(a: Bound<&'a K>, b: Bound<&'a K>) -> Bound<&'a K> {
    use Bound::*;
    match (a, b) {
        (Unbounded, _) | (_, Unbounded) => Unbounded,
        (Included(x), Included(y)) => Included(x.max(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.max(y)),
        (Included(x), Excluded(y)) | (Excluded(y), Included(x)) => {
            if x >= y {
                Included(x)
            } else {
                Excluded(y)
            }
        }
    }
}

/// True when a range with these bounds is empty or inverted (`BTreeMap::range` panics on
/// inverted bounds; such a range matches nothing).
pub(crate) fn empty_range<K: Ord>(lo: Bound<&K>, hi: Bound<&K>) -> bool {
    use Bound::*;
    match (lo, hi) {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) => a >= b,
        (Excluded(a), Excluded(b)) => a >= b,
        _ => false,
    }
}
