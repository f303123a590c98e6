//! Answering `SPAWN_REQUEST`: other nodes' `erpc:call`, `rpc:call`, `erpc:cast` and
//! spawns of registered functions, run by Rust functions of the registry.
//!
//! A request `{29, ReqId, From, GroupLeader, {M, F, Arity}, Opts} ++ Args` (or the
//! `_TT` form with a trace token, ignored) is answered as the BEAM answers it
//! (`erl_dist_protocol`, `erpc.erl`):
//!
//! - a call or cast (`erpc:execute_call/4`, `execute_cast/3`, no `link` option) of a
//!   sync registered function, an unregistered one or bad arguments needs no process:
//!   the function runs at once on the connection's reader, and `SPAWN_REPLY` (with the
//!   pid of an exited process, `orbit::exited_pid`) and the monitor's `MONITOR_P_EXIT`
//!   with the result are queued together (`orbit_dist::spawn::reply_exited`): one write
//!   carries the answers to every request read in one batch. The caller cannot tell it
//!   from a process that ran and exited at once (it learns the pid with the result);
//! - otherwise (an async function, a `link`, a spawn of a registered MFA) a process is
//!   spawned for it; inside, before anything runs, the `link` and
//!   `monitor` options are set up (the request id is the monitor's reference) and
//!   `SPAWN_REPLY {31, ReqId, From, Flags, Pid}` goes out (flags 1 link, 2 monitor), so
//!   the reply always precedes the process's exit on the wire. The reply is queued for
//!   the connection's writer task (not written from the process's thread), so a
//!   function that returns at once has its reply and its exit leave in one write; a
//!   registered sync function that blocks its worker delays its reply with it (sync
//!   functions must not block: see `register_async`);
//! - `{erpc, execute_call, 4}` with `[Res, M, F, A]`: the process runs `M:F/len(A)` and
//!   exits with what `erpc:execute_call/4` exits with: `{Res, return, V}`,
//!   `{Res, throw, T}`, `{Res, exit, X}`, `{Res, error, E, Stack}`; an unregistered
//!   function is `{Res, error, undef, [{M, F, A, []}]}`. The caller's monitor carries
//!   the reason back (`MONITOR_P_EXIT`), and `erpc:call` turns it into its result;
//! - `{erpc, execute_cast, 3}` with `[M, F, A]` (`erpc:cast`, `rpc:cast`): runs it, exits
//!   `normal`; a failure is logged (as the BEAM logs the crash of a cast);
//! - a registered `{M, F, Arity}` itself (`spawn(Node, M, F, A)`): runs it; exits
//!   `normal`, or as a BEAM process whose function failed (`{E, Stack}`,
//!   `{{nocatch, T}, Stack}`, `X`);
//! - anything else (a fun from `Node.spawn(node, fun)`, which only a BEAM can run, an
//!   unregistered MFA): `SPAWN_REPLY` `notsup`, what the caller's node reports as
//!   "Can not start ..." (`spawn_monitor` raises `notsup`, `spawn_request` gets
//!   `{spawn_reply, ReqId, error, notsup}`).
//!
//! The wire reads a request in the shape OTP and Orbit write straight from the bytes
//! and hands it over parsed (`ControlHandler::spawn_request`); any other shape comes as
//! a `Term` (`ControlHandler::control`). Both are checked and answered the same way.
//! An `erpc:call` (no `link`) of a typed function (`register_typed`) has its argument
//! list `[Res, M, F, A]` read straight from the payload's bytes too, `A`'s elements
//! into the function's argument types (`FromArgs::from_bytes`, no `Term` built); any
//! other shape, or arguments that do not decode so, take the `Term` path, which answers
//! as before (`into_fast.rs`; a differential proptest, `into_fast_tests.rs`, checks the
//! two agree).
//!
//! Hostile input never panics: a request whose id or sender is not a reference and a
//! pid cannot be answered and is dropped (logged); any other malformed part (options
//! not a list, arguments not a proper list of `Arity` terms, a non-atom module) is
//! answered with `SPAWN_REPLY` `badarg`. A caller that gives up (`erpc:call` timeout)
//! sends `DEMONITOR_P` (the late result is then dropped by the wire) or, before the
//! reply, exit `abandoned`, which kills the process like any exit signal.

use std::sync::Arc;

use futures::FutureExt;
use orbit::{Context, ExitReason};
use orbit_dist::control as spawn_wire;
use orbit_dist::service::ControlHandler;
use orbit_dist::spawn;
use orbit_term::{Reference, Term};

use super::error::exception_struct;
use super::registry::{self, Func};
use super::ErpcError;

/// The `SPAWN_REQUEST` handler [`super::start`] claims operations 29 and 30 with.
pub(crate) struct SpawnRequests;

impl ControlHandler for SpawnRequests {
    fn control(&self, peer: &str, control: &Term, payload: Option<&[u8]>) {
        answer(peer, parse(control, payload));
    }

    /// The common `SPAWN_REQUEST`, read from the bytes by the wire (no `Term` built for
    /// the control tuple); answered exactly as [`SpawnRequests::control`] answers it.
    fn spawn_request(&self, peer: &str, r: &spawn_wire::SpawnRequest<'_>, payload: Option<&[u8]>) {
        let (link, monitor) = link_and_monitor(r.options().map(Some));
        if !link
            && r.arity == 4
            && r.module.as_str() == "erpc"
            && r.function.as_str() == "execute_call"
        {
            if let Some(reason) = payload.and_then(fast::fast_call_reason) {
                return answered(peer, &r.id, &r.from, monitor, reason);
            }
        }
        let head = Head {
            id: r.id.clone(),
            from: r.from.clone(),
            module: Term::Atom(r.module.clone()),
            function: Term::Atom(r.function.clone()),
            arity: r.arity as i64,
            link,
            monitor,
        };
        answer(peer, with_args(head, payload));
    }
}

/// Runs a request or answers why it cannot run.
fn answer(peer: &str, req: Result<SpawnRequest, Bad>) {
    match req {
        Ok(req) => start(peer, req),
        Err(Bad::Unanswerable(why)) => {
            tracing::warn!(%peer, why, "malformed SPAWN_REQUEST dropped");
        }
        Err(Bad::Answer { id, from, why }) => {
            tracing::warn!(%peer, why, "malformed SPAWN_REQUEST refused with badarg");
            reply(peer, &id, &from, 0, Term::atom("badarg"));
        }
    }
}

/// A parsed request.
struct SpawnRequest {
    id: Reference,
    from: orbit_term::Pid,
    module: Term,
    function: Term,
    args: Vec<Term>,
    link: bool,
    monitor: bool,
}

enum Bad {
    /// No id and sender to answer.
    Unanswerable(&'static str),
    /// Answer `badarg`.
    Answer {
        id: Reference,
        from: orbit_term::Pid,
        why: &'static str,
    },
}

fn parse(control: &Term, payload: Option<&[u8]>) -> Result<SpawnRequest, Bad> {
    let Term::Tuple(el) = control else {
        return Err(Bad::Unanswerable("not a tuple"));
    };
    if el.len() != 6 && el.len() != 7 {
        return Err(Bad::Unanswerable("not 6 or 7 elements"));
    }
    let (Term::Reference(id), Term::Pid(from)) = (&el[1], &el[2]) else {
        return Err(Bad::Unanswerable("no request reference and sender pid"));
    };
    let (id, from) = ((**id).clone(), (**from).clone());
    let bad = |why| Bad::Answer {
        id: id.clone(),
        from: from.clone(),
        why,
    };
    let Term::Tuple(mfa) = &el[4] else {
        return Err(bad("{M, F, Arity} is not a tuple"));
    };
    let [module @ Term::Atom(_), function @ Term::Atom(_), arity] = &mfa[..] else {
        return Err(bad("{M, F, Arity} is not two atoms and an arity"));
    };
    let arity = arity
        .as_i64()
        .ok_or_else(|| bad("arity is not an integer"))?;
    let Term::List(opts) = &el[5] else {
        return Err(bad("options are not a proper list"));
    };
    let (link, monitor) = link_and_monitor(opts.iter().map(Term::as_atom));
    let head = Head {
        id,
        from,
        module: module.clone(),
        function: function.clone(),
        arity,
        link,
        monitor,
    };
    with_args(head, payload)
}

/// Whether the spawn options (atoms, or `None` for any other term) ask for a link and
/// a monitor. Other spawn options (priority, heap sizes, ...) mean nothing here.
fn link_and_monitor<'a>(opts: impl Iterator<Item = Option<&'a str>>) -> (bool, bool) {
    let (mut link, mut monitor) = (false, false);
    for o in opts {
        match o {
            Some("link") => link = true,
            Some("monitor") => monitor = true,
            _ => {}
        }
    }
    (link, monitor)
}

/// A request's control tuple, checked and read (by [`parse`] from a `Term`, or by the
/// wire from the bytes).
struct Head {
    id: Reference,
    from: orbit_term::Pid,
    module: Term,
    function: Term,
    arity: i64,
    link: bool,
    monitor: bool,
}

/// The request with its argument list (the payload), which must be a proper list of
/// `arity` terms.
fn with_args(h: Head, payload: Option<&[u8]>) -> Result<SpawnRequest, Bad> {
    let bad = |why| Bad::Answer {
        id: h.id.clone(),
        from: h.from.clone(),
        why,
    };
    let args = match payload.map(Term::decode) {
        Some(Ok(Term::List(a))) => a,
        Some(Ok(_)) => return Err(bad("arguments are not a proper list")),
        Some(Err(_)) => return Err(bad("arguments do not decode")),
        None => return Err(bad("no argument list")),
    };
    if args.len() as i64 != h.arity {
        return Err(bad("argument count differs from the arity"));
    }
    Ok(SpawnRequest {
        id: h.id,
        from: h.from,
        module: h.module,
        function: h.function,
        args,
        link: h.link,
        monitor: h.monitor,
    })
}

/// `SPAWN_REPLY {31, ReqId, From, Flags, Result}`, written at once.
fn reply(peer: &str, id: &Reference, from: &orbit_term::Pid, flags: i64, result: Term) {
    let ctl = reply_term(id, from, flags, result);
    if let Err(e) = spawn::send_control(peer, &ctl, None) {
        tracing::debug!(%peer, error = %e, "SPAWN_REPLY not sent");
    }
}

fn reply_term(id: &Reference, from: &orbit_term::Pid, flags: i64, result: Term) -> Term {
    Term::Tuple(vec![
        Term::Int(orbit_dist::control::op::SPAWN_REPLY),
        Term::Reference(Box::new(id.clone())),
        Term::Pid(Box::new(from.clone())),
        Term::Int(flags),
        result,
    ])
}

/// What the spawned process runs.
enum Job {
    /// `erpc:execute_call(Res, M, F, A)`.
    Call {
        res: Term,
        module: Term,
        function: Term,
        args: Term,
    },
    /// `erpc:execute_cast(M, F, A)`.
    Cast {
        module: Term,
        function: Term,
        args: Term,
    },
    /// A registered function spawned directly.
    Plain {
        module: Term,
        function: Term,
        args: Vec<Term>,
        func: Func,
    },
}

fn job(req: &mut SpawnRequest) -> Option<Job> {
    let args = std::mem::take(&mut req.args);
    match (req.module.as_atom(), req.function.as_atom(), args.len()) {
        (Some("erpc"), Some("execute_call"), 4) => {
            let [res, module, function, args] = <[Term; 4]>::try_from(args).ok()?;
            Some(Job::Call {
                res,
                module,
                function,
                args,
            })
        }
        (Some("erpc"), Some("execute_cast"), 3) => {
            let [module, function, args] = <[Term; 3]>::try_from(args).ok()?;
            Some(Job::Cast {
                module,
                function,
                args,
            })
        }
        (Some(m), Some(f), n) => {
            let func = registry::lookup(m, f, n)?;
            Some(Job::Plain {
                module: req.module.clone(),
                function: req.function.clone(),
                args,
                func,
            })
        }
        _ => None,
    }
}

fn start(peer: &str, mut req: SpawnRequest) {
    let Some(job) = job(&mut req) else {
        tracing::debug!(
            %peer,
            module = %req.module,
            function = %req.function,
            "SPAWN_REQUEST of a function Orbit cannot run: notsup"
        );
        reply(peer, &req.id, &req.from, 0, Term::atom("notsup"));
        return;
    };
    let job = if req.link {
        job
    } else {
        match answer_now(peer, &req, job) {
            Some(job) => job,
            None => return,
        }
    };
    let peer: Arc<str> = Arc::from(peer);
    let (id, from_wire) = (req.id.clone(), req.from.clone());
    let p = peer.clone();
    let spawned = orbit::Spawn::new()
        .label("erpc")
        .spawn(move |ctx: Context<Term>| async move {
            let me = ctx.pid();
            let from = orbit_dist::from_wire(&req.from);
            let mut flags = 0;
            if req.link && spawn::accept_link(&p, from, me) {
                flags |= 1;
            }
            if req.monitor && spawn::accept_monitor(&p, from, me, &req.id) {
                flags |= 2;
            }
            // Queued for the connection's writer task rather than written from here:
            // a function that returns at once exits before the writer runs, and the
            // reply and the exit's MONITOR_P_EXIT leave in one write (one syscall and
            // one wake-up of the caller's node instead of two). The order on the wire
            // is the same.
            let ctl = reply_term(
                &req.id,
                &req.from,
                flags,
                Term::Pid(Box::new(orbit_dist::to_wire(me))),
            );
            if let Err(e) = spawn::queue_control(&p, &ctl, None) {
                tracing::debug!(peer = %p, error = %e, "SPAWN_REPLY not sent");
            }
            run(&p, job).await
        });
    if let Err(e) = spawned {
        tracing::warn!(%peer, error = %e, "erpc process not spawned: system_limit");
        reply(&peer, &id, &from_wire, 0, Term::atom("system_limit"));
    }
}

/// Answers a call or cast at once, without a process, when its outcome is known without
/// waiting (a sync function, an unregistered one, bad arguments): the function runs
/// here, on the connection's reader, and `SPAWN_REPLY` and the monitor's
/// `MONITOR_P_EXIT` leave together (`orbit_dist::spawn::reply_exited`) under a pid of
/// an exited process. Nobody can tell this from a process that ran and exited at once:
/// its pid is unknown to the caller until both frames arrive, and a later
/// `DEMONITOR_P` or exit signal finds nothing, as for any exited process. The job back
/// when it needs a process (an async function, a spawn of a registered MFA).
fn answer_now(peer: &str, req: &SpawnRequest, job: Job) -> Option<Job> {
    let (res, module, function, args) = match job {
        Job::Call {
            res,
            module,
            function,
            args,
        } => (Some(res), module, function, args),
        Job::Cast {
            module,
            function,
            args,
        } => (None, module, function, args),
        plain @ Job::Plain { .. } => return Some(plain),
    };
    let outcome = match prepare(&module, &function, args) {
        Ready::Now(r) => r,
        Ready::Later { args, .. } => {
            let args = Term::List(args);
            return Some(match res {
                Some(res) => Job::Call {
                    res,
                    module,
                    function,
                    args,
                },
                None => Job::Cast {
                    module,
                    function,
                    args,
                },
            });
        }
    };
    let reason = match res {
        Some(res) => call_reason(res, outcome),
        None => {
            if let Err(r) = outcome {
                tracing::warn!(
                    %peer, %module, %function, class = r.class, reason = %r.reason,
                    "erpc cast failed"
                );
            }
            Term::atom("normal")
        }
    };
    answered(peer, &req.id, &req.from, req.monitor, reason);
    None
}

/// Sends the answers of a request that ran without a process: `SPAWN_REPLY` with a pid
/// of an exited process and, when the caller monitors it, `MONITOR_P_EXIT` with
/// `reason` (see [`answer_now`]).
fn answered(peer: &str, id: &Reference, from: &orbit_term::Pid, monitor: bool, reason: Term) {
    let Ok(pid) = orbit::exited_pid() else {
        tracing::warn!(%peer, "erpc stand-in pid not allocated: system_limit");
        reply(peer, id, from, 0, Term::atom("system_limit"));
        return;
    };
    let down = monitor.then_some(&reason);
    if let Err(e) = spawn::reply_exited(peer, id, from, pid, down) {
        tracing::debug!(%peer, error = %e, "SPAWN_REPLY not sent");
    }
}

/// The exit reason of `erpc:execute_call/4` for the outcome `r`: `{Res, return, V}`,
/// `{Res, error, E, Stack}`, `{Res, throw, T}`, `{Res, exit, X}`.
fn call_reason(res: Term, r: Result<Term, Raised>) -> Term {
    match r {
        Ok(v) => Term::Tuple(vec![res, Term::atom("return"), v]),
        Err(Raised {
            class,
            reason,
            stack,
        }) => match class {
            "error" => Term::Tuple(vec![res, Term::atom("error"), reason, stack]),
            c => Term::Tuple(vec![res, Term::atom(c), reason]),
        },
    }
}

/// Runs the job; the exit reason of the spawned process.
async fn run(peer: &str, job: Job) -> ExitReason {
    match job {
        Job::Call {
            res,
            module,
            function,
            args,
        } => ExitReason::from_term(call_reason(res, call(&module, &function, args).await)),
        Job::Cast {
            module,
            function,
            args,
        } => {
            if let Err(r) = call(&module, &function, args).await {
                tracing::warn!(
                    %peer, %module, %function, class = r.class, reason = %r.reason,
                    "erpc cast failed"
                );
            }
            ExitReason::Normal
        }
        Job::Plain {
            module,
            function,
            args,
            func,
        } => {
            let arity = args.len();
            match apply(&func, args, &module, &function, arity).await {
                Ok(_) => ExitReason::Normal,
                Err(r) => crash_reason(r),
            }
        }
    }
}

/// The exit reason of a BEAM process whose function raised `r`: `{E, Stack}`,
/// `{{nocatch, T}, Stack}`, or the exit reason itself.
fn crash_reason(r: Raised) -> ExitReason {
    let Raised {
        class,
        reason,
        stack,
    } = r;
    ExitReason::from_term(match class {
        "error" => Term::Tuple(vec![reason, stack]),
        "throw" => Term::Tuple(vec![
            Term::Tuple(vec![Term::atom("nocatch"), reason]),
            stack,
        ]),
        _ => reason,
    })
}

/// Runs `M:F(Args)` from the registry as the body of a BEAM process (a task): its
/// value, or the reason such a process exits with when the function fails (`undef`
/// crash for an unregistered one).
pub(crate) async fn run_as_process(
    module: &Term,
    function: &Term,
    args: Vec<Term>,
) -> Result<Term, ExitReason> {
    call(module, function, Term::List(args))
        .await
        .map_err(crash_reason)
}

/// An exception raised by a function: class (`error`, `throw`, `exit`), reason, stack.
struct Raised {
    class: &'static str,
    reason: Term,
    stack: Term,
}

/// A call to this node itself (`erpc:call` to `node()`), run by the caller: the
/// function's value or its exception as the caller sees it.
pub(crate) fn call_local(
    module: &Term,
    function: &Term,
    args: Vec<Term>,
) -> impl std::future::Future<Output = Result<Term, ErpcError>> + Send + 'static {
    let (module, function) = (module.clone(), function.clone());
    async move {
        call(&module, &function, Term::List(args))
            .await
            .map_err(|r| match r.class {
                "throw" => ErpcError::Throw(r.reason),
                "exit" => ErpcError::Exit(r.reason),
                _ => ErpcError::Error {
                    reason: r.reason,
                    stack: r.stack,
                },
            })
    }
}

/// `apply(M, F, A)` for erpc: `undef` when nothing is registered.
async fn call(module: &Term, function: &Term, args: Term) -> Result<Term, Raised> {
    match prepare(module, function, args) {
        Ready::Now(r) => r,
        Ready::Later { func, args } => {
            let arity = args.len();
            apply(&func, args, module, function, arity).await
        }
    }
}

/// Where `apply(M, F, A)` stands before anything is awaited.
enum Ready {
    /// Its outcome: a sync function ran, or there is none to run (`undef`, `badarg`).
    Now(Result<Term, Raised>),
    /// An async function, to run with its arguments.
    Later { func: Func, args: Vec<Term> },
}

/// Runs `apply(M, F, A)` as far as it goes without waiting: a sync function runs here.
fn prepare(module: &Term, function: &Term, args: Term) -> Ready {
    let (Some(m), Some(f), Term::List(args)) = (module.as_atom(), function.as_atom(), args) else {
        // apply/3 with a non-atom module or function, or arguments that are no list.
        return Ready::Now(Err(Raised {
            class: "error",
            reason: Term::atom("badarg"),
            stack: Term::nil(),
        }));
    };
    let arity = args.len();
    Ready::Now(match registry::lookup(m, f, arity) {
        Some(Func::Sync(f)) => {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(args)));
            outcome(out, module, function, arity)
        }
        Some(func @ Func::Async(_)) => return Ready::Later { func, args },
        None => Err(Raised {
            class: "error",
            reason: Term::atom("undef"),
            stack: Term::List(vec![Term::Tuple(vec![
                module.clone(),
                function.clone(),
                Term::List(args),
                Term::nil(),
            ])]),
        }),
    })
}

/// Runs a registered function, a panic included, into a value or an exception.
async fn apply(
    func: &Func,
    args: Vec<Term>,
    module: &Term,
    function: &Term,
    arity: usize,
) -> Result<Term, Raised> {
    let out = match func {
        Func::Sync(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(args))),
        Func::Async(f) => {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(args))) {
                Ok(fut) => std::panic::AssertUnwindSafe(fut).catch_unwind().await,
                Err(p) => Err(p),
            }
        }
    };
    outcome(out, module, function, arity)
}

/// A registered function's value, or what it raised (a panic included) as an exception.
fn outcome(
    out: std::thread::Result<super::registry::Outcome>,
    module: &Term,
    function: &Term,
    arity: usize,
) -> Result<Term, Raised> {
    let e = match out {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e)) => e,
        Err(panic) => {
            let msg = panic_message(&panic);
            tracing::warn!(%module, %function, %msg, "erpc function panicked");
            drop_payload(panic);
            ErpcError::raise(msg)
        }
    };
    let default_stack = || {
        Term::List(vec![Term::Tuple(vec![
            module.clone(),
            function.clone(),
            Term::Int(arity as i64),
            Term::nil(),
        ])])
    };
    Err(match e {
        ErpcError::Error { reason, stack } => Raised {
            class: "error",
            reason,
            stack: match stack {
                Term::List(s) if !s.is_empty() => Term::List(s),
                _ => default_stack(),
            },
        },
        ErpcError::Throw(t) => Raised {
            class: "throw",
            reason: t,
            stack: default_stack(),
        },
        ErpcError::Exit(x) => Raised {
            class: "exit",
            reason: x,
            stack: default_stack(),
        },
        // A nested call's failure passed on: raised as the BEAM raises it; a result
        // that did not encode: a RuntimeError saying so.
        other => {
            let (class, reason) = other.class_reason().unwrap_or_else(|| {
                (
                    "error",
                    exception_struct("Elixir.RuntimeError", &other.to_string()),
                )
            });
            Raised {
                class,
                reason,
                stack: default_stack(),
            }
        }
    })
}

/// Drops a panic payload; one whose destructor keeps panicking is leaked after a few
/// rounds rather than risk unwinding out of here.
fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    let mut payload = payload;
    for _ in 0..4 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(again) => payload = again,
        }
    }
    std::mem::forget(payload);
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(el: Vec<Term>) -> Term {
        Term::Tuple(el)
    }

    #[test]
    fn malformed_requests_are_refused_or_dropped() {
        let args = Term::List(vec![]).encode();
        assert!(matches!(
            parse(&Term::atom("x"), Some(&args)),
            Err(Bad::Unanswerable(_))
        ));
        assert!(matches!(
            parse(&req(vec![Term::Int(29); 6]), Some(&args)),
            Err(Bad::Unanswerable(_))
        ));
        let id = Term::Reference(Box::new(
            Reference::new(orbit_term::Atom::try_new("a@b").unwrap(), 1, &[1, 2, 3]).unwrap(),
        ));
        let from = Term::Pid(Box::new(orbit_term::Pid::new(
            orbit_term::Atom::try_new("a@b").unwrap(),
            1,
            0,
            1,
        )));
        let mfa = Term::Tuple(vec![Term::atom("m"), Term::atom("f"), Term::Int(1)]);
        let good = |opts: Term, mfa: Term| {
            req(vec![
                Term::Int(29),
                id.clone(),
                from.clone(),
                from.clone(),
                mfa,
                opts,
            ])
        };
        // Arity 1 with no arguments.
        assert!(matches!(
            parse(&good(Term::nil(), mfa.clone()), Some(&args)),
            Err(Bad::Answer { .. })
        ));
        // Options that are no list, a bad MFA, a payload that is no term.
        assert!(matches!(
            parse(&good(Term::atom("x"), mfa.clone()), Some(&args)),
            Err(Bad::Answer { .. })
        ));
        assert!(matches!(
            parse(&good(Term::nil(), Term::Int(1)), Some(&args)),
            Err(Bad::Answer { .. })
        ));
        assert!(matches!(
            parse(&good(Term::nil(), mfa.clone()), Some(&[1, 2, 3])),
            Err(Bad::Answer { .. })
        ));
        let one = Term::List(vec![Term::Int(5)]).encode();
        let ok = parse(
            &good(Term::List(vec![Term::atom("monitor")]), mfa),
            Some(&one),
        )
        .ok()
        .expect("well formed");
        assert!(ok.monitor && !ok.link);
    }
}

#[path = "into_fast.rs"]
mod fast;

#[cfg(test)]
#[path = "into_fast_tests.rs"]
mod fast_tests;
