//! JSON payloads ↔ Erlang terms, as Phoenix carries them between channels and
//! Phoenix.PubSub: a JSON object is a map with binary (string) keys, a string a binary,
//! `true`/`false` the atoms, `null` the atom `nil`, a number an integer or a float, an
//! array a list.
//!
//! From terms (a payload broadcast by an Elixir node), as Jason encodes them: atom and
//! binary keys become strings, `nil` is `null`, other atoms are strings, a binary that is
//! not UTF-8 is refused (Jason raises), as are pids, references, funs and ports; a tuple
//! is refused too (Jason has no encoding for it). Depth is bounded by
//! [`MAX_DEPTH`] both ways, so a hostile payload cannot overflow the stack.

use orbit_term::Term;
use serde_json::{Map, Number, Value};

/// The deepest nesting converted.
pub const MAX_DEPTH: usize = 128;

/// Why a term has no JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the term has no JSON form: {0}")]
pub struct NotJson(pub String);

/// The term of a JSON value.
pub fn to_term(v: &Value) -> Result<Term, NotJson> {
    to_term_at(v, 0)
}

fn to_term_at(v: &Value, depth: usize) -> Result<Term, NotJson> {
    if depth > MAX_DEPTH {
        return Err(NotJson(format!("nested deeper than {MAX_DEPTH}")));
    }
    Ok(match v {
        Value::Null => Term::atom("nil"),
        Value::Bool(b) => Term::atom(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Term::Int(i),
            (None, Some(f)) => Term::Float(f),
            _ => return Err(NotJson(format!("number {n}"))),
        },
        Value::String(s) => Term::Binary(s.as_bytes().to_vec()),
        Value::Array(a) => Term::List(
            a.iter()
                .map(|e| to_term_at(e, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Term::Map(
            o.iter()
                .map(|(k, e)| {
                    Ok((
                        Term::Binary(k.as_bytes().to_vec()),
                        to_term_at(e, depth + 1)?,
                    ))
                })
                .collect::<Result<_, NotJson>>()?,
        ),
    })
}

/// The JSON value of a term.
pub fn to_json(t: &Term) -> Result<Value, NotJson> {
    to_json_at(t, 0)
}

fn key(t: &Term) -> Result<String, NotJson> {
    match t {
        Term::Atom(a) => Ok(a.as_str().to_string()),
        Term::Binary(b) => {
            String::from_utf8(b.clone()).map_err(|_| NotJson("a key that is not UTF-8".into()))
        }
        Term::Int(i) => Ok(i.to_string()),
        other => Err(NotJson(format!("map key {other}"))),
    }
}

fn to_json_at(t: &Term, depth: usize) -> Result<Value, NotJson> {
    if depth > MAX_DEPTH {
        return Err(NotJson(format!("nested deeper than {MAX_DEPTH}")));
    }
    Ok(match t {
        Term::Int(i) => Value::Number((*i).into()),
        Term::BigInt(b) => Value::Number(
            b.to_string()
                .parse::<Number>()
                .map_err(|_| NotJson("a big integer".into()))?,
        ),
        Term::Float(f) => Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| NotJson("a float that is not finite".into()))?,
        Term::Atom(a) => match a.as_str() {
            "nil" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            s => Value::String(s.to_string()),
        },
        Term::Binary(b) => Value::String(
            String::from_utf8(b.clone())
                .map_err(|_| NotJson("a binary that is not UTF-8".into()))?,
        ),
        Term::List(l) => Value::Array(
            l.iter()
                .map(|e| to_json_at(e, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Term::Map(m) => {
            let mut o = Map::new();
            for (k, v) in m {
                let k = key(k)?;
                if k == "__struct__" {
                    continue;
                }
                o.insert(k, to_json_at(v, depth + 1)?);
            }
            Value::Object(o)
        }
        other => return Err(NotJson(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_terms() {
        let v = json!({"a": [1, 2.5, "x", null, true, false], "b": {"c": {}}});
        assert_eq!(to_json(&to_term(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn terms_without_json_are_refused_and_deep_nesting_is_bounded() {
        assert!(to_json(&Term::tuple(vec![Term::Int(1)])).is_err());
        assert!(to_json(&Term::Binary(vec![0xff])).is_err());
        let mut t = Term::List(vec![]);
        for _ in 0..1000 {
            t = Term::List(vec![t]);
        }
        assert!(to_json(&t).is_err());
        let deep: Value = (0..1000).fold(json!(1), |v, _| json!([v]));
        assert!(to_term(&deep).is_err());
    }
}
