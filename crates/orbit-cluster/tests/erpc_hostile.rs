//! Hostile erpc input: malformed `SPAWN_REQUEST`s and stray `SPAWN_REPLY`s sent raw to
//! an Orbit node (a child running this binary) are refused with `badarg` where they name
//! someone to answer, dropped where they do not, and never take the node, its
//! connection or later calls down. Bad arguments of the Rust API are clean errors. (A
//! `SPAWN_REQUEST` frame without its argument list breaks the framing itself: the wire
//! closes such a connection as a protocol violation, as for any control message
//! missing its payload.)

mod beam;

use std::sync::Arc;
use std::time::Duration;

use beam::*;
use orbit_cluster::erpc::{self, ErpcError};
use orbit_dist::control::op;
use orbit_dist::service::{claim_control, ControlHandler};
use orbit_dist::spawn;
use orbit_term::Term;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

fn child_main(parent: String, name: String) {
    let rt = rt();
    rt.block_on(async {
        let node = orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
            .await
            .unwrap();
        orbit_cluster::start(&node).unwrap();
        erpc::register_typed("Elixir.Calc", "add", |(a, b): (i64, i64)| {
            Ok::<_, ErpcError>(a + b)
        })
        .unwrap();
        assert!(node.connect(&parent).await);
    });
    serve_parent(&parent, |_| Term::atom("alive"));
}

#[test]
fn child() {
    if let (Ok(parent), Ok(name)) = (std::env::var("ORBIT_NODE"), std::env::var("ERPC_CHILD")) {
        child_main(parent, name);
    }
}

/// Records the SPAWN_REPLYs this node receives.
struct Recorder(UnboundedSender<Term>);

impl ControlHandler for Recorder {
    fn control(&self, _peer: &str, control: &Term, _payload: Option<&[u8]>) {
        let _ = self.0.send(control.clone());
    }
}

fn new_ref() -> Term {
    Term::Reference(Box::new(spawn::new_ref().unwrap()))
}

fn me() -> Term {
    Term::Pid(Box::new(orbit_dist::to_wire(spawn::system_pid())))
}

fn mfa(m: Term, f: &str, a: i64) -> Term {
    Term::tuple(vec![m, Term::atom(f), Term::Int(a)])
}

fn request(id: &Term, mfa: Term, opts: Term) -> Term {
    Term::tuple(vec![
        Term::Int(op::SPAWN_REQUEST),
        id.clone(),
        me(),
        me(),
        mfa,
        opts,
    ])
}

#[test]
fn hostile_spawn_requests() {
    if std::env::var("ERPC_CHILD").is_ok() {
        return;
    }
    // Bad arguments of the API, before anything is sent.
    let o = orbit("erpc_hostile");
    orbit_cluster::start(&o.node).unwrap();
    let long = "m".repeat(300);
    let r: Result<Term, _> = rt().block_on(erpc::call(
        "x@127.0.0.1",
        &long,
        "f",
        (),
        Duration::from_secs(1),
    ));
    assert!(matches!(r, Err(ErpcError::BadArg(_))), "{r:?}");
    let r: Result<Term, _> = rt().block_on(erpc::call(
        "not a node name",
        "m",
        "f",
        (),
        Duration::from_secs(1),
    ));
    assert!(matches!(r, Err(ErpcError::NoConnection { .. })), "{r:?}");
    assert!(erpc::cast("x@127.0.0.1", "m", &long, ()).is_err());
    assert!(erpc::register("m", "f", 300, |_| Ok(Term::nil())).is_err());

    let mut c = Beam::orbit_child(o, "erpc_hostile_child", "ERPC_CHILD", &[]);
    let name = c.name.clone();

    let (tx, mut rx) = unbounded_channel();
    claim_control(op::SPAWN_REPLY, Arc::new(Recorder(tx))).unwrap();
    let send = |ctl: Term, payload: Option<Term>| {
        spawn::send_control(&name, &ctl, payload.as_ref()).unwrap();
    };
    let mut next = |what: &str| -> Term {
        rt().block_on(async {
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no SPAWN_REPLY for {what}"))
                .unwrap()
        })
    };
    let result_of = |t: &Term| match t {
        Term::Tuple(el) if el.len() == 5 => el[4].clone(),
        other => panic!("not a SPAWN_REPLY: {other}"),
    };
    let erpc_call = mfa(Term::atom("erpc"), "execute_call", 4);
    let monitor = Term::List(vec![Term::atom("monitor")]);

    // Unanswerable: no reference, a short tuple. Dropped, the connection stays up.
    send(
        Term::tuple(vec![
            Term::Int(op::SPAWN_REQUEST),
            Term::atom("no_ref"),
            me(),
            me(),
            erpc_call.clone(),
            Term::nil(),
        ]),
        Some(Term::nil()),
    );
    send(
        Term::tuple(vec![Term::Int(op::SPAWN_REQUEST), new_ref()]),
        Some(Term::nil()),
    );
    // Answerable and malformed: badarg.
    let cases: Vec<(&str, Term, Option<Term>)> = vec![
        (
            "options not a list",
            request(&new_ref(), erpc_call.clone(), Term::atom("x")),
            Some(Term::nil()),
        ),
        (
            "too few arguments",
            request(&new_ref(), erpc_call.clone(), monitor.clone()),
            Some(Term::List(vec![Term::Int(1), Term::Int(2)])),
        ),
        (
            "arguments not a list",
            request(&new_ref(), erpc_call.clone(), monitor.clone()),
            Some(Term::atom("x")),
        ),
        (
            "module not an atom",
            request(
                &new_ref(),
                mfa(Term::Binary(b"m".to_vec()), "f", 0),
                Term::nil(),
            ),
            Some(Term::nil()),
        ),
        (
            "MFA not a tuple",
            request(&new_ref(), Term::Int(1), Term::nil()),
            Some(Term::nil()),
        ),
        (
            "improper option list",
            request(
                &new_ref(),
                erpc_call.clone(),
                Term::improper_list(vec![Term::atom("monitor")], Term::atom("x")),
            ),
            Some(Term::nil()),
        ),
    ];
    for (what, ctl, payload) in cases {
        send(ctl, payload);
        assert_eq!(result_of(&next(what)), Term::atom("badarg"), "{what}");
    }
    // Well-formed requests with nonsense inside: run, and fail as erpc would.
    let id = new_ref();
    let res = new_ref();
    send(
        request(&id, erpc_call.clone(), monitor.clone()),
        Some(Term::List(vec![
            res.clone(),
            Term::Binary(b"not an atom".to_vec()),
            Term::atom("f"),
            Term::atom("not a list"),
        ])),
    );
    assert!(matches!(result_of(&next("nonsense call")), Term::Pid(_)));
    // An unregistered plain MFA and a fun: notsup.
    send(
        request(&new_ref(), mfa(Term::atom("nomod"), "f", 0), Term::nil()),
        Some(Term::nil()),
    );
    assert_eq!(result_of(&next("unregistered MFA")), Term::atom("notsup"));
    send(
        request(
            &new_ref(),
            mfa(Term::atom("erlang"), "apply", 2),
            Term::nil(),
        ),
        Some(Term::List(vec![Term::atom("not_a_fun"), Term::nil()])),
    );
    assert_eq!(result_of(&next("apply")), Term::atom("notsup"));
    // The trace-token form is served like the plain one.
    let mut tt = match request(&new_ref(), erpc_call.clone(), monitor.clone()) {
        Term::Tuple(el) => el,
        _ => unreachable!(),
    };
    tt[0] = Term::Int(op::SPAWN_REQUEST_TT);
    tt.push(Term::atom("token"));
    send(
        Term::Tuple(tt),
        Some(Term::List(vec![
            new_ref(),
            Term::atom("Elixir.Calc"),
            Term::atom("add"),
            Term::List(vec![Term::Int(1), Term::Int(2)]),
        ])),
    );
    let r = next("trace token");
    assert!(matches!(result_of(&r), Term::Pid(_)), "{r}");
    assert_eq!(
        match &r {
            Term::Tuple(el) => el[3].clone(),
            _ => unreachable!(),
        },
        Term::Int(2),
        "the monitor flag"
    );
    // Arguments nested deeper than a peer's message may be (512): refused; large ones
    // run (and fail to decode as the typed function's integers).
    let mut deep = Term::nil();
    for _ in 0..1000 {
        deep = Term::List(vec![deep]);
    }
    send(
        request(&new_ref(), erpc_call.clone(), monitor.clone()),
        Some(Term::List(vec![
            new_ref(),
            Term::atom("Elixir.Calc"),
            Term::atom("add"),
            Term::List(vec![deep, Term::Int(1)]),
        ])),
    );
    assert_eq!(result_of(&next("deep arguments")), Term::atom("badarg"));
    send(
        request(&new_ref(), erpc_call.clone(), monitor.clone()),
        Some(Term::List(vec![
            new_ref(),
            Term::atom("Elixir.Calc"),
            Term::atom("add"),
            Term::List(vec![Term::Binary(vec![7; 1 << 20]), Term::Int(1)]),
        ])),
    );
    let r = next("large arguments");
    assert!(matches!(result_of(&r), Term::Pid(_)), "{r}");
    // Stray replies to the child: ignored.
    for bad in [
        Term::tuple(vec![Term::Int(op::SPAWN_REPLY)]),
        Term::tuple(vec![
            Term::Int(op::SPAWN_REPLY),
            new_ref(),
            me(),
            Term::Int(2),
            me(),
        ]),
        Term::tuple(vec![
            Term::Int(op::SPAWN_REPLY_TT),
            Term::atom("x"),
            Term::atom("y"),
            Term::atom("z"),
            Term::atom("w"),
            Term::atom("t"),
        ]),
    ] {
        send(bad, None);
    }

    // The child, its connection and erpc still work.
    assert_eq!(c.eval(o, "ping"), Term::atom("alive"));
    erpc::start().unwrap();
    let sum: i64 = rt()
        .block_on(erpc::call(
            &name,
            "Elixir.Calc",
            "add",
            (1, 2),
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_eq!(sum, 3);
    assert!(o.node.list().contains(&name));
}
