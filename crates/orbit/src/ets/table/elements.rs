//! Tables of tuple objects (`Table<K, Term>`): `update_counter` and `update_element`
//! at Erlang element positions.

use super::*;

// ---- tuple objects: update_counter/update_element with positions -----------------------

/// The elements of a `Term` object's value: `V = Term::Tuple([e2, .., en])` stands for the
/// Erlang object `{Key, e2, .., en}` (key position 1).
fn object_elements<'a>(
    v: &'a mut orbit_term::Term,
    label: &dyn Fn() -> String,
) -> Result<&'a mut Vec<orbit_term::Term>> {
    match v {
        orbit_term::Term::Tuple(es) => Ok(es),
        _ => Err(EtsError::BadArg(format!(
            "the object under this key in table {} is not a tuple: positions need V = Term::Tuple([element 2, element 3, ..])",
            label()
        ))),
    }
}

/// The index in the value tuple of Erlang position `pos` (1 is the key).
fn element_index(pos: usize, len: usize, what: &str, label: &dyn Fn() -> String) -> Result<usize> {
    if pos == 1 {
        return Err(EtsError::BadArg(format!(
            "{what} at position 1 of table {}: position 1 is the key, which cannot be updated",
            label()
        )));
    }
    if pos < 2 || pos - 2 >= len {
        return Err(EtsError::BadArg(format!(
            "{what} at position {pos} of table {}: the object has {} elements (the key is position 1)",
            label(),
            len + 1
        )));
    }
    Ok(pos - 2)
}

impl<K: Key> Table<K, orbit_term::Term> {
    /// `ets:update_counter/3` with `{Pos, Incr}` or `{Pos, Incr, Threshold, SetValue}` on a
    /// table of tuple objects (`V = Term::Tuple([element 2, ..])`, the key is position 1):
    /// returns the new counter. [`EtsError::NotFound`] when the key is missing,
    /// [`EtsError::BadArg`] (nothing changed) when `pos` is 1, beyond the object, or not an
    /// integer, [`EtsError::WrongType`] on bags.
    pub fn update_counter_at<Q>(
        &self,
        key: &Q,
        pos: usize,
        op: impl Into<CounterOp>,
    ) -> Result<orbit_term::Term>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        let mut r = self.update_counters_inner(key, &[(pos, op.into())], None)?;
        Ok(r.pop().unwrap_or(orbit_term::Term::Int(0)))
    }

    /// `ets:update_counter/3` with a list of `{Pos, Incr}` / `{Pos, Incr, Threshold,
    /// SetValue}`: applied in order, all or nothing; returns the new counters in order.
    /// Errors as [`update_counter_at`](Self::update_counter_at).
    pub fn update_counters<Q>(
        &self,
        key: &Q,
        ops: &[(usize, CounterOp)],
    ) -> Result<Vec<orbit_term::Term>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.update_counters_inner(key, ops, None)
    }

    /// `ets:update_counter/4`: as [`update_counters`](Self::update_counters), inserting
    /// `(key, default)` first when the key is missing (nothing is inserted if an operation
    /// fails on the default).
    pub fn update_counters_or(
        &self,
        key: &K,
        ops: &[(usize, CounterOp)],
        default: orbit_term::Term,
    ) -> Result<Vec<orbit_term::Term>> {
        self.update_counters_inner(key, ops, Some((key.clone(), default)))
    }

    fn update_counters_inner<Q>(
        &self,
        key: &Q,
        ops: &[(usize, CounterOp)],
        default: Option<(K, orbit_term::Term)>,
    ) -> Result<Vec<orbit_term::Term>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        use orbit_term::{BigInt, Term};
        self.check_write()?;
        let label = || self.label();
        let r = self.set_write(key, |m| {
            let (mut obj, new_key) = match (m.get_mut_v(key), default) {
                (Some(v), _) => (v.clone(), None),
                (None, Some((k, d))) => (d, Some(k)),
                (None, None) => return Err(EtsError::NotFound(label())),
            };
            let es = object_elements(&mut obj, &label)?;
            let mut out = Vec::with_capacity(ops.len());
            for (pos, op) in ops {
                let i = element_index(*pos, es.len(), "update_counter", &label)?;
                let cur = match &es[i] {
                    Term::Int(n) => BigInt::from(*n),
                    Term::BigInt(b) => (**b).clone(),
                    _ => {
                        return Err(EtsError::BadArg(format!(
                            "update_counter at position {pos} of table {}: the element is not an integer",
                            label()
                        )))
                    }
                };
                let new = Term::big(op.apply_big(&cur));
                es[i] = new.clone();
                out.push(new);
            }
            match new_key {
                Some(k) => m.insert_v(k, obj),
                None => {
                    if let Some(v) = m.get_mut_v(key) {
                        *v = obj;
                    }
                }
            }
            Ok(out)
        });
        r.unwrap_or_else(|| {
            Err(self.wrong_type("update_counter", "counters need a set or ordered_set table"))
        })
    }

    /// `ets:update_element/3` with `{Pos, Value}` on a table of tuple objects
    /// (`V = Term::Tuple([element 2, ..])`, the key is position 1): false when the key is
    /// missing; [`EtsError::BadArg`] (nothing changed) when `pos` is 1 or beyond the
    /// object; [`EtsError::WrongType`] on bags.
    pub fn update_element_at<Q>(&self, key: &Q, pos: usize, value: orbit_term::Term) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.update_elements(key, &[(pos, value)])
    }

    /// `ets:update_element/3` with a list of `{Pos, Value}`: applied in order (a position
    /// given twice gets the last value), all or nothing. Errors as
    /// [`update_element_at`](Self::update_element_at).
    pub fn update_elements<Q>(&self, key: &Q, updates: &[(usize, orbit_term::Term)]) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + Ord,
    {
        self.check_write()?;
        let label = || self.label();
        let r = self.set_write(key, |m| {
            let Some(v) = m.get_mut_v(key) else {
                return Ok(false);
            };
            let mut obj = v.clone();
            let es = object_elements(&mut obj, &label)?;
            for (pos, value) in updates {
                let i = element_index(*pos, es.len(), "update_element", &label)?;
                es[i] = value.clone();
            }
            *v = obj;
            Ok(true)
        });
        r.unwrap_or_else(|| {
            Err(self.wrong_type(
                "update_element",
                "update bag objects by delete_object + insert",
            ))
        })
    }
}
