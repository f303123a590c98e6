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

use std::sync::atomic::Ordering;

use orbit::Pid;
use orbit_term::{atom, Atom, RawTerm, Term};
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeSeq, SerializeTuple, Serializer};

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

impl Sub {
    /// The subscription of a decoded `{Pid, Tag}`.
    fn new(pid: &orbit_term::Pid, tag: Term) -> Sub {
        Sub {
            pid: orbit_dist::from_wire(pid),
            tag,
        }
    }
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
            Term::Pid(p) => Ok(Sub::new(p, e[1].clone())),
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
    raw: &[u8],
    counters: &Counters,
) -> Result<Parsed<E>, &'static str> {
    // The common cases in one typed decode each: an ask, and a `$gen_consumer` event
    // list whose events all decode into `E`. Anything else, including an event list
    // with an event that is not an `E`, ends on the general path.
    match shape(raw) {
        Shape::Pair => {
            if let Ok((kind, (pid, tag), (ask, n))) =
                orbit_term::from_slice_owned::<(Atom, (orbit_term::Pid, Term), (Atom, i64))>(raw)
            {
                if kind.as_str() == GEN_PRODUCER && ask.as_str() == "ask" && n >= 0 {
                    return Ok(Parsed::Ask {
                        from: Sub::new(&pid, tag),
                        n: n as u64,
                    });
                }
            }
        }
        Shape::List => {
            if let Ok((kind, (pid, tag), events)) =
                orbit_term::from_slice_owned::<(Atom, (orbit_term::Pid, Term), Vec<E>)>(raw)
            {
                if kind.as_str() == GEN_CONSUMER {
                    return Ok(Parsed::Events {
                        from: Sub::new(&pid, tag),
                        events,
                    });
                }
            }
            // Some event is not an `E` (or the message is not what it looks like): the
            // list kept as a `RawTerm` and its events typed one by one.
            if let Ok((kind, (pid, tag), body)) =
                orbit_term::from_slice_owned::<(Atom, (orbit_term::Pid, Term), RawTerm)>(raw)
            {
                if kind.as_str() == GEN_CONSUMER && body.is_list() {
                    let events =
                        match body.decode::<Vec<E>>() {
                            Ok(events) => events,
                            Err(_) => match body.to_term() {
                                Ok(Term::List(events)) => typed(events, counters),
                                _ => return Err(
                                    "a $gen_consumer message whose events are not a proper list",
                                ),
                            },
                        };
                    return Ok(Parsed::Events {
                        from: Sub::new(&pid, tag),
                        events,
                    });
                }
            }
        }
        Shape::Other => {}
    }
    parse_general(raw, counters)
}

/// The general path: the whole message decoded into a [`Term`], [`parse`]d, and the
/// events typed one by one.
fn parse_general<E: DeserializeOwned>(
    raw: &[u8],
    counters: &Counters,
) -> Result<Parsed<E>, &'static str> {
    let t = Term::decode(raw).map_err(|_| "a message that is not a valid term")?;
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

/// What a message's third element is, when the message is `{_, {_, _}, Third}`.
enum Shape {
    /// A list (`NIL_EXT`, `STRING_EXT` or `LIST_EXT`): maybe events to a consumer.
    List,
    /// A pair (`SMALL_TUPLE_EXT`, arity 2): maybe an ask.
    Pair,
    /// Anything else, or not that shape.
    Other,
}

/// The shape of `raw`, from tags and lengths only: a 3-tuple (`SMALL_TUPLE_EXT`) whose
/// second element is a pair, and the tag of its third. The typed decodes need it: the
/// decoder also reads a tuple as a sequence and a list as a tuple, where GenStage's
/// patterns match exactly.
fn shape(raw: &[u8]) -> Shape {
    const SMALL_TUPLE_EXT: u8 = 104;
    const NIL_EXT: u8 = 106;
    const STRING_EXT: u8 = 107;
    const LIST_EXT: u8 = 108;
    let third = || {
        if raw.get(1..3) != Some(&[SMALL_TUPLE_EXT, 3]) {
            return None;
        }
        let mut pos = 3;
        for element in 0..2 {
            if element == 1 && raw.get(pos..pos + 2) != Some(&[SMALL_TUPLE_EXT, 2]) {
                return None;
            }
            pos += orbit_term::encoded_len(raw.get(pos..)?).ok()?;
        }
        raw.get(pos..)
    };
    match third() {
        Some(&[NIL_EXT | STRING_EXT | LIST_EXT, ..]) => Shape::List,
        Some(&[SMALL_TUPLE_EXT, 2, ..]) => Shape::Pair,
        _ => Shape::Other,
    }
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

/// `{'$gen_consumer', {Me, Tag}, Events}` for events held in two slices, one after
/// the other (a `VecDeque`'s two halves, or one `Vec` and nothing), written straight
/// into the connection's buffer (no [`Term`] per event).
pub(crate) struct Events<'a, T> {
    me: orbit_term::Pid,
    tag: &'a Term,
    events: (&'a [T], &'a [T]),
}

impl<'a, T: Serialize> Events<'a, T> {
    /// The message carrying `events.0` then `events.1` from `me` for the subscription
    /// `tag`.
    pub(crate) fn new(me: Pid, tag: &'a Term, events: (&'a [T], &'a [T])) -> Self {
        Events {
            me: orbit_dist::to_wire(me),
            tag,
            events,
        }
    }
}

/// The events of an [`Events`] message, as one list.
struct List<'a, T>((&'a [T], &'a [T]));

impl<T: Serialize> Serialize for List<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (a, b) = self.0;
        let mut seq = s.serialize_seq(Some(a.len() + b.len()))?;
        for e in a.iter().chain(b) {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

impl<T: Serialize> Serialize for Events<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&atom!("$gen_consumer"))?;
        t.serialize_element(&(&self.me, self.tag))?;
        t.serialize_element(&List(self.events))?;
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

/// `{'$gen_producer', {Me, Tag}, {ask, N}}`, written straight into the connection's
/// buffer (no [`Term`] built for it).
pub(crate) struct Ask<'a> {
    me: orbit_term::Pid,
    tag: &'a Term,
    n: u64,
}

impl<'a> Ask<'a> {
    /// `me` asks for `n` more events on the subscription `tag`.
    pub(crate) fn new(me: Pid, tag: &'a Term, n: u64) -> Self {
        Ask {
            me: orbit_dist::to_wire(me),
            tag,
            n,
        }
    }
}

impl Serialize for Ask<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&atom!("$gen_producer"))?;
        t.serialize_element(&(&self.me, self.tag))?;
        t.serialize_element(&(atom!("ask"), self.n))?;
        t.end()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wire_pid() -> Term {
        Term::Pid(Box::new(orbit_term::Pid::new(
            atom!("peer@127.0.0.1"),
            77,
            0,
            3,
        )))
    }

    fn raw(t: &Term) -> Vec<u8> {
        t.encode()
    }

    /// `parse_raw` against the general path: same result (shown by `Debug`, which
    /// prints every field) and the same count of undecodable events.
    fn agree(t: &Term) {
        let r = raw(t);
        let (c1, c2) = (Counters::default(), Counters::default());
        let fast = format!("{:?}", parse_raw::<i64>(&r, &c1));
        let slow = format!("{:?}", parse_general::<i64>(&r, &c2));
        assert_eq!(fast, slow, "for {t:?}");
        assert_eq!(
            c1.undecodable.load(Ordering::Relaxed),
            c2.undecodable.load(Ordering::Relaxed),
            "for {t:?}"
        );
    }

    fn msg(kind: &str, body: Term) -> Term {
        Term::tuple(vec![
            Term::atom(kind),
            Term::tuple(vec![wire_pid(), Term::Int(5)]),
            body,
        ])
    }

    #[test]
    fn events_cancels_and_strangers_parse_as_the_general_path_does() {
        let ints = |v: &[i64]| Term::List(v.iter().map(|&i| Term::Int(i)).collect());
        for t in [
            msg(GEN_CONSUMER, ints(&[1, 2, 3])),
            msg(GEN_CONSUMER, ints(&[])),
            msg(GEN_CONSUMER, ints(&[1 << 40, -7, 300])),
            msg(
                GEN_CONSUMER,
                Term::List(vec![Term::Int(1), Term::atom("x"), Term::Int(3)]),
            ),
            msg(GEN_CONSUMER, Term::Binary(b"abc".to_vec())),
            msg(
                GEN_CONSUMER,
                Term::tuple(vec![Term::atom("cancel"), Term::atom("normal")]),
            ),
            msg(GEN_PRODUCER, ints(&[1, 2])),
            msg(
                GEN_PRODUCER,
                Term::tuple(vec![Term::atom("ask"), Term::Int(500)]),
            ),
            msg("other", ints(&[1])),
            Term::tuple(vec![Term::atom(GEN_CONSUMER), Term::Int(1), ints(&[1])]),
            Term::tuple(vec![
                Term::atom(GEN_CONSUMER),
                Term::tuple(vec![Term::Int(1), Term::Int(5)]),
                ints(&[1]),
            ]),
            ints(&[1, 2]),
            // `[Pid, Ref]` is not GenStage's `{Pid, Ref}` (the decoder would read it as
            // a pair), and `{}` is not an event list (it would read it as a sequence).
            Term::tuple(vec![
                Term::atom(GEN_CONSUMER),
                Term::List(vec![wire_pid(), Term::Int(5)]),
                ints(&[1]),
            ]),
            msg(GEN_CONSUMER, Term::tuple(vec![])),
        ] {
            agree(&t);
        }
    }

    #[test]
    fn a_list_of_bytes_erlang_writes_as_a_string_is_events() {
        // `[97, 98, 99]` as OTP writes it: STRING_EXT.
        let mut b = vec![131, 104, 3];
        Term::atom(GEN_CONSUMER).encode_body(&mut b);
        Term::tuple(vec![wire_pid(), Term::Int(5)]).encode_body(&mut b);
        b.extend_from_slice(&[107, 0, 3, 97, 98, 99]);
        let r = b;
        let c = Counters::default();
        match parse_raw::<i64>(&r, &c) {
            Ok(Parsed::Events { events, .. }) => assert_eq!(events, vec![97, 98, 99]),
            other => panic!("{other:?}"),
        }
        let fast = format!("{:?}", parse_raw::<i64>(&r, &c));
        assert_eq!(fast, format!("{:?}", parse_general::<i64>(&r, &c)));
    }

    fn leaf() -> impl Strategy<Value = Term> {
        prop_oneof![
            any::<i64>().prop_map(Term::Int),
            (0i64..300).prop_map(Term::Int),
            Just(Term::atom("x")),
            Just(Term::atom("cancel")),
            Just(Term::atom("ask")),
            Just(wire_pid()),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(Term::Binary),
        ]
    }

    fn term() -> impl Strategy<Value = Term> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Term::List),
                proptest::collection::vec(inner, 0..4).prop_map(Term::tuple),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random protocol-shaped and stray messages: the one-pass decode never
        /// disagrees with the general path.
        #[test]
        fn parse_raw_agrees_with_the_general_path(
            kind in prop_oneof![
                Just(Term::atom(GEN_CONSUMER)),
                Just(Term::atom(GEN_PRODUCER)),
                Just(Term::atom("other")),
                Just(Term::Binary(GEN_CONSUMER.as_bytes().to_vec())),
            ],
            who in prop_oneof![
                Just(Term::tuple(vec![wire_pid(), Term::Int(5)])),
                term().prop_map(|t| Term::tuple(vec![wire_pid(), t])),
                term().prop_map(|t| Term::List(vec![wire_pid(), t])),
                term(),
            ],
            body in prop_oneof![
                any::<i64>().prop_map(|n| Term::tuple(vec![Term::atom("ask"), Term::Int(n)])),
                (0i64..2000).prop_map(|n| Term::tuple(vec![Term::atom("ask"), Term::Int(n)])),
                leaf().prop_map(|t| Term::tuple(vec![Term::atom("ask"), t])),
                leaf().prop_map(|t| Term::tuple(vec![t, Term::Int(3)])),
                proptest::collection::vec(leaf(), 0..6).prop_map(Term::List),
                proptest::collection::vec(any::<i64>().prop_map(Term::Int), 0..6)
                    .prop_map(Term::List),
                term(),
            ],
        ) {
            agree(&Term::tuple(vec![kind, who, body]));
        }

        /// The stage takes messages as they arrived, unchecked: bytes of an event
        /// message cut short, with a byte changed or with bytes after it never panic
        /// the one-pass decode, it never takes what the general path refuses, and what it
        /// takes it reads as the general path does.
        #[test]
        fn damaged_messages_get_what_the_general_path_says(
            events in proptest::collection::vec(any::<i64>(), 0..8),
            cut in any::<proptest::sample::Index>(),
            at in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
            how in 0..3u8,
        ) {
            let t = msg(GEN_CONSUMER, Term::List(events.into_iter().map(Term::Int).collect()));
            let mut b = t.encode();
            match how {
                0 => b.truncate(cut.index(b.len())),
                1 => {
                    let i = at.index(b.len());
                    b[i] = byte;
                }
                _ => b.push(byte),
            }
            let (c1, c2) = (Counters::default(), Counters::default());
            let (fast, slow) = (parse_raw::<i64>(&b, &c1), parse_general::<i64>(&b, &c2));
            // Refused by both (the reasons may differ), or the same result.
            if fast.is_ok() || slow.is_ok() {
                prop_assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
            }
        }
    }

    /// A compressed message (`131, 80, ...`: OTP's `term_to_binary(T, [compressed])`)
    /// reads as the term it holds.
    #[test]
    fn a_compressed_message_reads_as_its_term() {
        let t = msg(GEN_CONSUMER, Term::List((0..200).map(Term::Int).collect()));
        let plain = t.encode();
        let b = t.encode_compressed(6).unwrap();
        assert_eq!(&b[..2], &[131, 80]);
        let c = Counters::default();
        assert_eq!(
            format!("{:?}", parse_raw::<i64>(&b, &c)),
            format!("{:?}", parse_raw::<i64>(&plain, &c))
        );
    }
}
