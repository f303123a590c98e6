//! The exact terms of GenStage's subscription protocol (`gen_stage.ex`, "Message
//! protocol overview"), parsed from and built for the wire.
//!
//! To a producer: `{'$gen_producer', {ConsumerPid, Ref}, {subscribe, Current, Opts}}`,
//! `{..., {ask, N}}`, `{..., {cancel, Reason}}`. To a consumer:
//! `{'$gen_consumer', {ProducerPid, Ref}, [Event, ...]}` and `{..., {cancel, Reason}}`.
//! `Ref` is the subscription's tag (the consumer's monitor reference in GenStage); here any
//! term, compared exactly. Parsing never panics: anything else is [`Parsed::Other`] or an
//! error naming what was wrong, which the stage logs and ignores.
//!
//! Events cost nothing per event beyond their own encoding: [`parse_raw`] decodes the
//! event list of a `$gen_consumer` message straight from its bytes into the stage's
//! type (no [`Term`] per event), and [`Events`] writes the buffered events straight
//! into the connection's buffer. Only when the list does not decode into that type are
//! the events decoded one by one, the bad ones counted and skipped.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use orbit::Pid;
use orbit_term::{atom, Atom, RawTerm, Term};
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeTuple, Serializer};

use super::engine::Counters;

/// The atom GenStage tags messages to a producer with.
pub const GEN_PRODUCER: &str = "$gen_producer";
/// The atom GenStage tags messages to a consumer with.
pub const GEN_CONSUMER: &str = "$gen_consumer";

/// A subscription's peer and tag: `{Pid, Ref}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sub {
    pub pid: Pid,
    pub tag: Term,
}

/// A parsed protocol message, its events of type `E`.
#[derive(Debug)]
pub(crate) enum Parsed<E> {
    /// `{'$gen_producer', From, {subscribe, Current, Opts}}`; `Current` is `nil` or
    /// `{Ref, Reason}`, a subscription of the same consumer to cancel first.
    Subscribe {
        from: Sub,
        current: Option<(Term, Term)>,
        opts: Term,
    },
    /// `{'$gen_producer', From, {ask, N}}`.
    Ask { from: Sub, n: u64 },
    /// `{'$gen_producer', {_, Ref}, {cancel, Reason}}`.
    CancelProducer { tag: Term, reason: Term },
    /// `{'$gen_consumer', From, [Event, ...]}`.
    Events { from: Sub, events: Vec<E> },
    /// `{'$gen_consumer', {_, Ref}, {cancel, Reason}}`.
    CancelConsumer { tag: Term, reason: Term },
    /// Not a GenStage protocol message at all.
    Other(Term),
}

fn from(t: &Term) -> Result<Sub, &'static str> {
    match t {
        Term::Tuple(e) if e.len() == 2 => match &e[0] {
            Term::Pid(p) => Ok(Sub {
                pid: orbit_dist::from_wire(p),
                tag: e[1].clone(),
            }),
            _ => Err("the subscription's first element is not a pid"),
        },
        _ => Err("the subscription is not a {Pid, Ref} pair"),
    }
}

fn tag(t: &Term) -> Result<Term, &'static str> {
    match t {
        Term::Tuple(e) if e.len() == 2 => Ok(e[1].clone()),
        _ => Err("the subscription is not a {Pid, Ref} pair"),
    }
}

/// Parses one incoming message (taking the events out of it without a copy). `Err` is a
/// protocol message of a bad shape (say why).
pub(crate) fn parse(t: Term) -> Result<Parsed<Term>, &'static str> {
    let kind = match &t {
        Term::Tuple(e) if e.len() == 3 => match e[0].as_atom() {
            Some(GEN_PRODUCER) => GEN_PRODUCER,
            Some(GEN_CONSUMER) => GEN_CONSUMER,
            _ => return Ok(Parsed::Other(t)),
        },
        _ => return Ok(Parsed::Other(t)),
    };
    let Term::Tuple(e) = t else {
        return Ok(Parsed::Other(t));
    };
    let mut e = e.into_iter();
    let (_, who, body) = match (e.next(), e.next(), e.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => return Err("a protocol message that is not a 3-tuple"),
    };
    if kind == GEN_PRODUCER {
        match &body {
            Term::Tuple(b) if b.len() == 3 && b[0].as_atom() == Some("subscribe") => {
                let current = match &b[1] {
                    Term::Tuple(c) if c.len() == 2 => Some((c[0].clone(), c[1].clone())),
                    _ => None,
                };
                Ok(Parsed::Subscribe {
                    from: from(&who)?,
                    current,
                    opts: b[2].clone(),
                })
            }
            Term::Tuple(b) if b.len() == 2 && b[0].as_atom() == Some("ask") => {
                let n = match &b[1] {
                    Term::Int(n) if *n >= 0 => *n as u64,
                    _ => return Err("ask with a demand that is not a non-negative integer"),
                };
                Ok(Parsed::Ask {
                    from: from(&who)?,
                    n,
                })
            }
            Term::Tuple(b) if b.len() == 2 && b[0].as_atom() == Some("cancel") => {
                Ok(Parsed::CancelProducer {
                    tag: tag(&who)?,
                    reason: b[1].clone(),
                })
            }
            _ => Err("an unknown $gen_producer request"),
        }
    } else {
        match body {
            Term::List(events) => Ok(Parsed::Events {
                from: from(&who)?,
                events,
            }),
            Term::Tuple(b) if b.len() == 2 && b[0].as_atom() == Some("cancel") => {
                Ok(Parsed::CancelConsumer {
                    tag: tag(&who)?,
                    reason: b[1].clone(),
                })
            }
            _ => Err("a $gen_consumer message that is neither events nor a cancel"),
        }
    }
}

/// Parses one incoming message, still encoded: a `$gen_consumer` event list is decoded
/// straight into `Vec<E>`; when some event does not decode into `E`, each on its own,
/// the bad ones logged, counted in `counters.undecodable` and skipped. Anything else
/// goes through [`parse`].
pub(crate) fn parse_raw<E: DeserializeOwned>(
    raw: &RawTerm,
    counters: &Counters,
) -> Result<Parsed<E>, &'static str> {
    if let Ok((kind, (pid, tag), body)) = raw.decode::<(Atom, (orbit_term::Pid, Term), RawTerm)>() {
        if kind.as_str() == GEN_CONSUMER && body.is_list() {
            let from = Sub {
                pid: orbit_dist::from_wire(&pid),
                tag,
            };
            let events = match body.decode::<Vec<E>>() {
                Ok(events) => events,
                Err(_) => match body.to_term() {
                    Ok(Term::List(events)) => typed(events, counters),
                    _ => return Err("a $gen_consumer message whose events are not a proper list"),
                },
            };
            return Ok(Parsed::Events { from, events });
        }
    }
    let t = raw
        .to_term()
        .map_err(|_| "a message that is not a valid term")?;
    Ok(match parse(t)? {
        Parsed::Events { from, events } => Parsed::Events {
            from,
            events: typed(events, counters),
        },
        Parsed::Subscribe {
            from,
            current,
            opts,
        } => Parsed::Subscribe {
            from,
            current,
            opts,
        },
        Parsed::Ask { from, n } => Parsed::Ask { from, n },
        Parsed::CancelProducer { tag, reason } => Parsed::CancelProducer { tag, reason },
        Parsed::CancelConsumer { tag, reason } => Parsed::CancelConsumer { tag, reason },
        Parsed::Other(t) => Parsed::Other(t),
    })
}

/// Events one by one into `E`, the ones that do not decode logged, counted and skipped.
fn typed<E: DeserializeOwned>(events: Vec<Term>, counters: &Counters) -> Vec<E> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        match orbit_term::from_term::<E>(&e) {
            Ok(v) => out.push(v),
            Err(err) => {
                counters.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::error!(event = %crate::pg::short_term(&e), error = %err, ty = std::any::type_name::<E>(), "GenStage: an event does not decode into the stage's type; skipped");
            }
        }
    }
    out
}

/// `{'$gen_consumer', {Me, Tag}, Events}` for the first `n` events of a buffer, written
/// straight into the connection's buffer (no [`Term`] per event).
pub(crate) struct Events<'a, T> {
    me: orbit_term::Pid,
    tag: &'a Term,
    events: &'a VecDeque<T>,
    n: usize,
}

impl<'a, T: Serialize> Events<'a, T> {
    /// The message carrying `events[..n]` from `me` for the subscription `tag`.
    pub(crate) fn new(me: Pid, tag: &'a Term, events: &'a VecDeque<T>, n: usize) -> Self {
        Events {
            me: orbit_dist::to_wire(me),
            tag,
            events,
            n: n.min(events.len()),
        }
    }
}

/// The events of an [`Events`] message, as a list.
struct List<'a, T>(&'a VecDeque<T>, usize);

impl<T: Serialize> Serialize for List<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.range(..self.1))
    }
}

impl<T: Serialize> Serialize for Events<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&atom!("$gen_consumer"))?;
        t.serialize_element(&(&self.me, self.tag))?;
        t.serialize_element(&List(self.events, self.n))?;
        t.end()
    }
}

fn pid_term(p: Pid) -> Term {
    Term::Pid(Box::new(orbit_dist::to_wire(p)))
}

fn message(kind: &str, me: Pid, tag: &Term, body: Term) -> Term {
    Term::tuple(vec![
        Term::atom(kind),
        Term::tuple(vec![pid_term(me), tag.clone()]),
        body,
    ])
}

/// `{'$gen_producer', {Me, Tag}, {subscribe, nil, Opts}}`.
pub(crate) fn subscribe(me: Pid, tag: &Term, opts: Term) -> Term {
    let body = Term::tuple(vec![Term::atom("subscribe"), Term::nil_atom(), opts]);
    message(GEN_PRODUCER, me, tag, body)
}

/// `{'$gen_producer', {Me, Tag}, {ask, N}}`.
pub(crate) fn ask(me: Pid, tag: &Term, n: u64) -> Term {
    let body = Term::tuple(vec![Term::atom("ask"), Term::Int(n as i64)]);
    message(GEN_PRODUCER, me, tag, body)
}

/// `{'$gen_producer', {Me, Tag}, {cancel, Reason}}` (a consumer cancelling).
pub(crate) fn cancel_upstream(me: Pid, tag: &Term, reason: Term) -> Term {
    let body = Term::tuple(vec![Term::atom("cancel"), reason]);
    message(GEN_PRODUCER, me, tag, body)
}

/// `{'$gen_consumer', {Me, Tag}, {cancel, Reason}}` (a producer cancelling).
pub(crate) fn cancel_downstream(me: Pid, tag: &Term, reason: Term) -> Term {
    let body = Term::tuple(vec![Term::atom("cancel"), reason]);
    message(GEN_CONSUMER, me, tag, body)
}

/// A fresh subscription tag: a reference of this node, made from an Orbit [`orbit::Ref`].
pub(crate) fn new_tag(me: Pid) -> Term {
    let local = orbit_dist::convert::LocalId {
        name: orbit::pid::local_node(),
        creation: orbit_dist::to_wire(me).creation,
    };
    Term::Reference(Box::new(orbit_dist::convert::ref_to_wire(
        orbit::Ref::make(),
        &local,
    )))
}

/// Whether `reason` is a transient shutdown (`normal`, `shutdown`, `{shutdown, _}`).
pub(crate) fn is_transient_shutdown(reason: &Term) -> bool {
    match reason {
        Term::Atom(a) => matches!(a.as_str(), "normal" | "shutdown"),
        Term::Tuple(e) => e.len() == 2 && e[0].as_atom() == Some("shutdown"),
        _ => false,
    }
}
