//! Walking a table: folds, key-order traversal (`first`/`next`/...) and match-spec
//! queries (`select`, `match_object` and their deleting and replacing forms).

use super::*;

impl<K: Key, V: Value> Table<K, V> {
    /// `ets:foldl/3`: folds over every object. `f` runs on copies with no lock held, so
    /// it may read and write this table; every object present for the whole fold is seen
    /// exactly once.
    pub fn foldl<A>(&self, acc: A, f: impl FnMut(A, &K, &V) -> A) -> Result<A> {
        self.fold(acc, false, f)
    }

    /// `ets:foldr/3`: as [`foldl`](Self::foldl) in reverse order (descending keys on
    /// ordered_set).
    pub fn foldr<A>(&self, acc: A, f: impl FnMut(A, &K, &V) -> A) -> Result<A> {
        self.fold(acc, true, f)
    }

    fn fold<A>(&self, mut acc: A, rev: bool, mut f: impl FnMut(A, &K, &V) -> A) -> Result<A> {
        self.check_read()?;
        const CHUNK: usize = 1024;
        match &self.inner.store {
            Store::Set(s) => {
                let order: Vec<usize> = if rev {
                    (0..s.len()).rev().collect()
                } else {
                    (0..s.len()).collect()
                };
                for i in order {
                    let snap: Vec<(K, V)> = s
                        .read(i)
                        .map
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let it: Box<dyn Iterator<Item = &(K, V)>> = if rev {
                        Box::new(snap.iter().rev())
                    } else {
                        Box::new(snap.iter())
                    };
                    for (k, v) in it {
                        acc = f(acc, k, v);
                    }
                }
            }
            Store::Bag(s) => {
                let order: Vec<usize> = if rev {
                    (0..s.len()).rev().collect()
                } else {
                    (0..s.len()).collect()
                };
                for i in order {
                    let snap: Vec<(K, Vec<V>)> = s
                        .read(i)
                        .map
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let it: Box<dyn Iterator<Item = &(K, Vec<V>)>> = if rev {
                        Box::new(snap.iter().rev())
                    } else {
                        Box::new(snap.iter())
                    };
                    for (k, vs) in it {
                        let vit: Box<dyn Iterator<Item = &V>> = if rev {
                            Box::new(vs.iter().rev())
                        } else {
                            Box::new(vs.iter())
                        };
                        for v in vit {
                            acc = f(acc, k, v);
                        }
                    }
                }
            }
            Store::Ordered(m) => {
                // Chunks of keys copied under the lock, then folded with no lock held.
                let mut from: Option<K> = None;
                loop {
                    let chunk: Vec<(K, V)> = {
                        let g = m.read();
                        let cl = |(k, v): (&K, &V)| (k.clone(), v.clone());
                        match (&from, rev) {
                            (None, false) => g.iter().take(CHUNK).map(cl).collect(),
                            (None, true) => g.iter().rev().take(CHUNK).map(cl).collect(),
                            (Some(k), false) => g
                                .range::<K, _>((Bound::Excluded(k), Bound::Unbounded))
                                .take(CHUNK)
                                .map(cl)
                                .collect(),
                            (Some(k), true) => g
                                .range::<K, _>((Bound::Unbounded, Bound::Excluded(k)))
                                .rev()
                                .take(CHUNK)
                                .map(cl)
                                .collect(),
                        }
                    };
                    let Some((last, _)) = chunk.last() else { break };
                    let last = last.clone();
                    let n = chunk.len();
                    for (k, v) in &chunk {
                        acc = f(acc, k, v);
                    }
                    if n < CHUNK {
                        break;
                    }
                    from = Some(last);
                }
            }
        }
        Ok(acc)
    }

    // ---- traversal ---------------------------------------------------------------

    /// `ets:first/1`: the first key (smallest on ordered_set), `None` when empty
    /// (`'$end_of_table'`).
    pub fn first(&self) -> Result<Option<K>> {
        self.check_read()?;
        Ok(match &self.inner.store {
            Store::Ordered(m) => m.read().keys().next().cloned(),
            Store::Set(s) => {
                (0..s.len()).find_map(|i| s.read(i).map.get_index(0).map(|(k, _)| k.clone()))
            }
            Store::Bag(s) => {
                (0..s.len()).find_map(|i| s.read(i).map.get_index(0).map(|(k, _)| k.clone()))
            }
        })
    }

    /// `ets:last/1`: the largest key on ordered_set; on hash tables the same as `first`.
    pub fn last(&self) -> Result<Option<K>> {
        self.check_read()?;
        match &self.inner.store {
            Store::Ordered(m) => Ok(m.read().keys().next_back().cloned()),
            _ => self.first(),
        }
    }

    /// `ets:next/2`: the key after `key`, `None` at the end. On ordered_set `key` need
    /// not exist. On hash tables it must (else [`EtsError::BadArg`]): a key deleted
    /// meanwhile ends the walk, as in Erlang without `safe_fixtable`.
    pub fn next<Q>(&self, key: &Q) -> Result<Option<K>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_read()?;
        Ok(match &self.inner.store {
            Store::Ordered(m) => m
                .read()
                .range::<Q, _>((Bound::Excluded(key), Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone()),
            Store::Set(s) => {
                let i = s.index(key);
                let pos = s.read(i).map.get_index_of(key);
                hash_next(s.len(), i, pos, |j, p| {
                    s.read(j).map.get_index(p).map(|(k, _)| k.clone())
                })
                .ok_or_else(|| self.missing_key("next"))?
            }
            Store::Bag(s) => {
                let i = s.index(key);
                let pos = s.read(i).map.get_index_of(key);
                hash_next(s.len(), i, pos, |j, p| {
                    s.read(j).map.get_index(p).map(|(k, _)| k.clone())
                })
                .ok_or_else(|| self.missing_key("next"))?
            }
        })
    }

    /// `ets:prev/2`: the key before `key` on ordered_set; on hash tables the same as `next`.
    pub fn prev<Q>(&self, key: &Q) -> Result<Option<K>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_read()?;
        match &self.inner.store {
            Store::Ordered(m) => Ok(m
                .read()
                .range::<Q, _>((Bound::Unbounded, Bound::Excluded(key)))
                .next_back()
                .map(|(k, _)| k.clone())),
            _ => self.next(key),
        }
    }

    fn missing_key(&self, op: &str) -> EtsError {
        EtsError::BadArg(format!(
            "{op} on hash table {}: the key is not in the table (deleted during the walk?); \
             walk with foldl or tab2list to be safe under concurrent deletes",
            self.label()
        ))
    }

    // ---- queries -------------------------------------------------------------------

    /// `ets:select/2`: the results of `spec` for every matching object (key order on
    /// ordered_set).
    pub fn select<R>(&self, spec: &MatchSpec<K, V, R>) -> Result<Vec<R>> {
        self.select_dir(spec, false)
    }

    /// `ets:select_reverse/2`: as `select`, descending key order on ordered_set (the same
    /// as `select` on hash tables).
    pub fn select_reverse<R>(&self, spec: &MatchSpec<K, V, R>) -> Result<Vec<R>> {
        self.select_dir(spec, true)
    }

    fn select_dir<R>(&self, spec: &MatchSpec<K, V, R>, rev: bool) -> Result<Vec<R>> {
        self.check_read()?;
        let mut out = Vec::new();
        self.inner.store.visit(&spec.scope(), rev, &mut |k, v| {
            if let Some(r) = spec.eval(k, v) {
                out.push(r)
            }
        });
        Ok(out)
    }

    /// `ets:select_count/2`: the number of objects for which `spec` gives `true`.
    pub fn select_count(&self, spec: &MatchSpec<K, V, bool>) -> Result<usize> {
        self.check_read()?;
        let mut n = 0;
        self.inner.store.visit(&spec.scope(), false, &mut |k, v| {
            if spec.eval(k, v) == Some(true) {
                n += 1
            }
        });
        Ok(n)
    }

    /// `ets:match_object/2`: every object matching `pattern`, copied.
    pub fn match_object(&self, pattern: &Pattern<K, V>) -> Result<Vec<(K, V)>> {
        self.match_with(pattern, |k, v| (k.clone(), v.clone()))
    }

    /// `ets:match/2`: for every object matching `pattern`, what `bindings` extracts from
    /// it (Erlang returns the `'$N'` variables' values; here you pick them).
    pub fn match_with<R>(
        &self,
        pattern: &Pattern<K, V>,
        bindings: impl Fn(&K, &V) -> R,
    ) -> Result<Vec<R>> {
        self.check_read()?;
        let mut out = Vec::new();
        self.inner
            .store
            .visit(&scope(std::iter::once(&pattern.key)), false, &mut |k, v| {
                if pattern.matches(k, v) {
                    out.push(bindings(k, v))
                }
            });
        Ok(out)
    }

    /// `ets:match_delete/2`: deletes every object matching `pattern`.
    pub fn match_delete(&self, pattern: &Pattern<K, V>) -> Result<usize> {
        self.select_delete(&pattern.to_spec())
    }

    /// `ets:select_delete/2`: deletes every object for which `spec` gives `true`; returns
    /// how many. Each shard is processed atomically.
    pub fn select_delete(&self, spec: &MatchSpec<K, V, bool>) -> Result<usize> {
        self.check_write()?;
        let mut n = 0;
        self.inner.store.visit_mut(&spec.scope(), &mut |k, v| {
            if spec.eval(k, v) == Some(true) {
                n += 1;
                false
            } else {
                true
            }
        });
        Ok(n)
    }

    /// `ets:select_replace/2`: replaces the value of every matching object with what
    /// `spec` gives; returns how many. The key cannot change (the body returns only the
    /// value), which Erlang checks at run time. Not on bag tables (as in Erlang).
    pub fn select_replace(&self, spec: &MatchSpec<K, V, V>) -> Result<usize> {
        self.check_write()?;
        if self.inner.kind == TableType::Bag {
            return Err(self.wrong_type(
                "select_replace",
                "bag tables are not supported (as in Erlang); delete_object + insert",
            ));
        }
        let mut n = 0;
        self.inner.store.visit_mut(&spec.scope(), &mut |k, v| {
            if let Some(new) = spec.eval(k, v) {
                *v = new;
                n += 1;
            }
            true
        });
        Ok(n)
    }
}

/// The key after position `pos` of shard `i` in a hash table's order, walking on to
/// later shards. `None` when `pos` is `None` (the key is missing); `Some(None)` at the end.
fn hash_next<K>(
    shards: usize,
    i: usize,
    pos: Option<usize>,
    at: impl Fn(usize, usize) -> Option<K>,
) -> Option<Option<K>> {
    let pos = pos?;
    if let Some(k) = at(i, pos + 1) {
        return Some(Some(k));
    }
    Some(((i + 1)..shards).find_map(|j| at(j, 0)))
}
