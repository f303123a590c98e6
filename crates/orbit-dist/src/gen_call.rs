//! GenServer calls and casts across nodes, in both directions (`lib/stdlib/src/gen.erl`).
//!
//! On the wire a call is `{'$gen_call', {From, Tag}, Request}` and its reply
//! `{Tag, Reply}`; a cast is `{'$gen_cast', Request}`.
//!
//! - **Calling out** ([`call`]): the tag is a reference of this node; the caller also
//!   monitors the server under that same reference, so a dead server (`noproc`), a lost
//!   node (`noconnection`) or a crash ends the call at once instead of at the timeout.
//!   The reply is taken off the wire before any mailbox, so a reply arriving after a
//!   timeout is dropped and never reaches a process.
//! - **Serving** ([`serve_gen_server`]): a BEAM (or Orbit) caller's request is decoded
//!   with serde into the server's `Call` type and called locally; the reply goes back as
//!   `{Tag, Reply}`. OTP 24+ callers use the tag `[alias | Ref]`: the reply then goes to
//!   the alias (`ALIAS_SEND`), as OTP's own servers do; other tags are answered with a
//!   plain send to `From`. Elixir structs decode into Rust structs (their `__struct__`
//!   key is ignored like any unknown field) or into [`orbit_term::ExStruct`] (which
//!   keeps the module). A request that does not decode never reaches the server: it
//!   is logged, and the call ends at once with exit reason `{bad_request, Why}`
//!   (`Why` a binary naming the request, the expected type and the mismatch), sent
//!   through the monitor the caller holds on the server for this call (the tag's
//!   reference), the way a crashed server's reason reaches its callers; the server
//!   lives on. A caller without such a monitor waits for its timeout. The server sees
//!   the remote caller as `ReplyTo::caller()` (OTP's `From`). The caller's timeout is
//!   not on the wire: a served call is abandoned after [`ServeOptions::call_timeout`]
//!   (default [`SERVED_CALL_TIMEOUT`], 5 s, OTP's default call timeout); a server that
//!   exits during the call reaches the caller through its monitor, with the exact
//!   reason term.
//! - **Errors**: calls out fail with [`orbit::CallError`], the type of local calls:
//!   `NoConnection { node }`, `Timeout`, `NoProc`, `Exit(reason)` (the server's reason
//!   term, exactly), `Encode`/`Decode` naming the Rust type.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orbit::{CallError, Dest, ExitReason, GenServer, Pid, Ref, ServerRef};
use orbit_term::{DecodeLimits, Term};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::control::{self, VERSION};
use crate::convert;
use crate::peers as node;
use crate::serve::{self as dispatch, Handler, Incoming, Target, Undeliverable};

/// Where a call or cast to another node goes: the remote pid or `{name, node}`.
enum To<'a> {
    Pid(Pid),
    Name(&'a str),
}

/// The node and target of `dest`, or the error for a destination on this node.
fn target(dest: &Dest) -> Result<(Arc<str>, To<'_>), CallError> {
    match dest {
        Dest::Pid(p) if !p.is_local() => Ok((p.node(), To::Pid(*p))),
        Dest::Remote { name, node } => Ok((node.clone(), To::Name(name))),
        local => Err(CallError::NotRegistered(format!(
            "{local} is on this node; orbit_dist::call and cast reach other nodes: \
             call a local server with orbit::gen_server::call"
        ))),
    }
}

struct Pending {
    node: Arc<str>,
    tx: oneshot::Sender<Result<Vec<u8>, CallError>>,
}

static COUNT: AtomicUsize = AtomicUsize::new(0);

fn pending() -> &'static Mutex<HashMap<u64, Pending>> {
    static P: OnceLock<Mutex<HashMap<u64, Pending>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

fn take(id: u64) -> Option<Pending> {
    let p = pending().lock().remove(&id);
    if p.is_some() {
        COUNT.fetch_sub(1, Ordering::Relaxed);
    }
    p
}

/// Takes `{Ref, Reply}` when `Ref` tags a call this node is waiting on.
pub(crate) fn take_reply(bytes: &[u8]) -> bool {
    if COUNT.load(Ordering::Relaxed) == 0 || bytes.len() < 4 || bytes[1..4] != [104, 2, 90] {
        return false;
    }
    let Some(n) = node::get() else { return false };
    let Ok((Term::Reference(r), _)) = Term::decode_body(&bytes[3..], &DecodeLimits::DEFAULT) else {
        return false;
    };
    let Some(id) = convert::ref_from_wire(&r, &n.id) else {
        return false;
    };
    match take(id) {
        Some(p) => {
            let _ = p.tx.send(Ok(bytes.to_vec()));
            true
        }
        None => false,
    }
}

/// Ends a call whose server monitor fired; true when `id` was a call.
pub(crate) fn monitor_fired(id: u64, reason: &ExitReason) -> bool {
    match take(id) {
        Some(p) => {
            let node = p.node.to_string();
            let e = match reason {
                ExitReason::NoConnection => CallError::NoConnection { node },
                r => match not_served_reason(r) {
                    Some(server) => CallError::NotServed { node, server },
                    None if *r == ExitReason::NoProc => CallError::on_node(node, CallError::NoProc),
                    None => CallError::on_node(node, CallError::Exit(r.clone())),
                },
            };
            let _ = p.tx.send(Err(e));
            true
        }
        None => false,
    }
}

/// Fails every call waiting on `node`.
pub(crate) fn node_down(node: &str) {
    let gone: Vec<u64> = pending()
        .lock()
        .iter()
        .filter(|(_, p)| &*p.node == node)
        .map(|(k, _)| *k)
        .collect();
    for id in gone {
        if let Some(p) = take(id) {
            let _ = p.tx.send(Err(CallError::NoConnection {
                node: node.to_string(),
            }));
        }
    }
}

/// Calls the GenServer at `dest` (another node's, BEAM or Orbit: a remote pid or
/// `("name", "node@host")`) with `request` and waits up to `timeout` for its reply
/// (`GenServer.call/3`). `Req` may borrow; `Rep` is registered for the wire (see
/// [`crate::remote`]).
///
/// Errors: [`CallError::NoConnection`] (naming the node), [`CallError::Remote`] with
/// `NoProc`, `Timeout` or `Exit(reason)` (the node and the server's reason term),
/// [`CallError::NotServed`] for an Orbit process that runs but is not served,
/// `Encode`/`Decode` naming the Rust type.
pub async fn call<Req, Rep>(
    dest: impl Into<Dest>,
    request: &Req,
    timeout: Duration,
) -> Result<Rep, CallError>
where
    Req: Serialize + ?Sized,
    Rep: DeserializeOwned + Send + 'static,
{
    crate::codec::register_decode::<Rep>();
    let req = encode(request)?;
    let bytes = call_encoded(dest.into(), req, timeout).await?;
    orbit_term::from_slice_owned(&bytes).map_err(|e| CallError::Decode {
        type_name: std::any::type_name::<Rep>(),
        reason: e.to_string(),
    })
}

/// Calls `dest` with an encoded request (`131, ...`); the reply's ETF (`131, ...`).
pub(crate) async fn call_encoded(
    dest: Dest,
    req: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let (node_name, to) = target(&dest)?;
    let no_connection = || CallError::NoConnection {
        node: node_name.to_string(),
    };
    let timed_out = || CallError::on_node(&*node_name, CallError::Timeout);
    let conn = node::conn_for(&node_name).ok_or_else(no_connection)?;
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    match until(deadline, conn.wait_up()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(no_connection()),
        Err(_) => return Err(timed_out()),
    }
    let r = Ref::make();
    let from = orbit::self_pid().unwrap_or_else(node::system_pid);
    let (tx, rx) = oneshot::channel();
    pending().lock().insert(
        r.id(),
        Pending {
            node: node_name.clone(),
            tx,
        },
    );
    COUNT.fetch_add(1, Ordering::Relaxed);
    let target = match to {
        To::Pid(p) => convert::pid_term(p, &conn.local),
        To::Name(name) => Term::atom(name),
    };
    conn.monitor(from, &target, r);
    let write = |o: &mut Vec<u8>| {
        // {'$gen_call', {From, Ref}, Request}
        o.push(VERSION);
        control::tuple(o, 3);
        control::atom(o, "$gen_call");
        control::tuple(o, 2);
        control::pid_w(o, from, &conn.local);
        control::ref_w(o, r, &conn.local);
        o.extend_from_slice(&req[1..]);
        Ok(())
    };
    let sent = match to {
        To::Pid(p) => conn.send_with(Some(from), p, write),
        To::Name(name) => conn.reg_send_with(from, name, write),
    };
    if sent.is_err() {
        take(r.id());
        return Err(no_connection());
    }
    let out = until(deadline, rx).await;
    let res = match out {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(no_connection()),
        Err(_) => {
            take(r.id());
            Err(timed_out())
        }
    };
    // A call ended by the monitor (the server or the connection is gone) needs no
    // demonitor; every other outcome does.
    let monitor_fired = match &res {
        Err(e) => matches!(
            e.cause(),
            CallError::NoProc
                | CallError::NoConnection { .. }
                | CallError::Exit(_)
                | CallError::NotServed { .. }
        ),
        Ok(_) => false,
    };
    if !monitor_fired {
        conn.demonitor(from, &target, r);
    }
    reply_body(&res?).ok_or_else(|| CallError::Decode {
        type_name: "{Tag, Reply}",
        reason: "the reply is not a {Tag, Reply} pair".into(),
    })
}

/// The `Reply` of `{Tag, Reply}` (`131, 104, 2, Tag, Reply`), as its own ETF.
fn reply_body(bytes: &[u8]) -> Option<Vec<u8>> {
    let (_, tag_len) = Term::decode_body(bytes.get(3..)?, &DecodeLimits::DEFAULT).ok()?;
    let rest = bytes.get(3 + tag_len..)?;
    let mut out = Vec::with_capacity(rest.len() + 1);
    out.push(VERSION);
    out.extend_from_slice(rest);
    Some(out)
}

/// Encodes a request, naming its type when it does not encode.
fn encode<Req: Serialize + ?Sized>(request: &Req) -> Result<Vec<u8>, CallError> {
    orbit_term::to_vec(request).map_err(|e| CallError::Encode {
        type_name: std::any::type_name::<Req>(),
        reason: e.to_string(),
    })
}

/// Runs `f` until `deadline` (`None`: a timeout too large to represent, i.e. never).
async fn until<F: std::future::Future>(
    deadline: Option<tokio::time::Instant>,
    f: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await,
        None => Ok(f.await),
    }
}

/// Casts `request` to the GenServer at `dest` (a remote pid or `("name",
/// "node@host")`; `GenServer.cast/2`). Never fails once encoded and connected: a cast to
/// a dead server is dropped, as in OTP. `Req` may borrow.
pub fn cast<Req: Serialize + ?Sized>(
    dest: impl Into<Dest>,
    request: &Req,
) -> Result<(), CallError> {
    cast_encoded(dest.into(), encode(request)?)
}

/// Casts an encoded request (`131, ...`) to `dest`.
pub(crate) fn cast_encoded(dest: Dest, req: Vec<u8>) -> Result<(), CallError> {
    let (node_name, to) = target(&dest)?;
    let no_connection = || CallError::NoConnection {
        node: node_name.to_string(),
    };
    let conn = node::conn_for(&node_name).ok_or_else(no_connection)?;
    let from = orbit::self_pid().unwrap_or_else(node::system_pid);
    let write = |o: &mut Vec<u8>| {
        o.push(VERSION);
        control::tuple(o, 2);
        control::atom(o, "$gen_cast");
        o.extend_from_slice(&req[1..]);
        Ok(())
    };
    match to {
        To::Pid(p) => conn.send_with(Some(from), p, write),
        To::Name(name) => conn.reg_send_with(from, name, write),
    }
    .map_err(|_| no_connection())
}

/// Sends `{Tag, Reply}` (already encoded reply, `131, ...`) to a caller on another node.
pub(crate) fn reply(server: Pid, from: Pid, tag: &Term, reply: &[u8]) {
    let Some(conn) = from.with_node(node::conn_for) else {
        return;
    };
    let write = |o: &mut Vec<u8>| {
        o.push(VERSION);
        control::tuple(o, 2);
        tag.encode_body(o);
        o.extend_from_slice(&reply[1..]);
        Ok(())
    };
    let _ = match alias_of(tag) {
        Some(alias) => conn.alias_send_with(server, alias, write),
        None => conn.send_with(Some(server), from, write),
    };
}

/// The alias in an OTP 24+ tag `[alias | Ref]`.
fn alias_of(tag: &Term) -> Option<&orbit_term::Reference> {
    match tag {
        Term::ImproperList(l) => match (&l.elements[..], &l.tail) {
            ([a], Term::Reference(r)) if a.as_atom() == Some("alias") => Some(r),
            _ => None,
        },
        _ => None,
    }
}

/// How long a call from another node waits for the served GenServer's reply: OTP's
/// default call timeout, 5 s ([`orbit::gen_server::DEFAULT_CALL_TIMEOUT`]). The caller's
/// own timeout is not on the wire; after this long the served call is abandoned with
/// [`CallError::Timeout`] (logged), the server's late reply is dropped, and the caller
/// waits for its own timeout, as a BEAM caller of a slow BEAM server does. Callers with
/// longer timeouts need [`serve_gen_server_with`] and a longer
/// [`ServeOptions::call_timeout`].
pub const SERVED_CALL_TIMEOUT: Duration = orbit::gen_server::DEFAULT_CALL_TIMEOUT;

/// A decoded `{'$gen_call', {From, Tag}, Request}`.
pub(crate) struct GenCall {
    pub from: Pid,
    pub tag: Term,
    pub request: Term,
}

/// Reads a `$gen_call` or `$gen_cast` message: `Ok(Ok(call))`, `Ok(Err(cast request))`.
pub(crate) fn parse(bytes: &[u8]) -> Option<Result<GenCall, Term>> {
    let t = Term::decode(bytes).ok()?;
    let Term::Tuple(mut el) = t else { return None };
    match (el.len(), el.first().and_then(Term::as_atom)) {
        (3, Some("$gen_call")) => {
            let request = el.pop()?;
            let Term::Tuple(mut ft) = el.pop()? else {
                return None;
            };
            if ft.len() != 2 {
                return None;
            }
            let tag = ft.pop()?;
            let Term::Pid(p) = ft.pop()? else { return None };
            Some(Ok(GenCall {
                from: convert::pid_from_wire(&p),
                tag,
                request,
            }))
        }
        (2, Some("$gen_cast")) => Some(Err(el.pop()?)),
        _ => None,
    }
}

/// Options for [`serve_gen_server_with`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a call from another node waits for the server's reply before it is
    /// abandoned (logged as [`CallError::Timeout`]; a later reply is dropped). The
    /// caller's own timeout is not on the wire, so set this to the longest timeout your
    /// callers use ([`orbit::gen_server::INFINITY`] never abandons a call). Default:
    /// [`SERVED_CALL_TIMEOUT`], 5 s.
    pub call_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            call_timeout: SERVED_CALL_TIMEOUT,
        }
    }
}

/// Lets callers on other nodes reach the GenServer `G` registered as `name`:
/// `GenServer.call({name, node}, request)` decodes `request` into `G::Call` with serde,
/// calls the server and encodes the reply; `GenServer.cast` decodes into `G::Cast`.
/// A call request that does not decode is logged and the call ends at once with exit
/// reason `{bad_request, Why}` (see the module docs); a cast that does not decode is
/// logged and dropped. The server never sees either.
///
/// The server sees the remote caller as [`orbit::ReplyTo::caller`] (OTP's `from`), and
/// waits [`SERVED_CALL_TIMEOUT`] for the reply; [`serve_gen_server_with`] sets another.
pub fn serve_gen_server<G>(name: &str)
where
    G: GenServer,
    G::Call: DeserializeOwned,
    G::Cast: DeserializeOwned,
    G::Reply: Serialize,
{
    serve_gen_server_with::<G>(name, ServeOptions::default())
}

/// [`serve_gen_server`] with options (how long a served call may take).
pub fn serve_gen_server_with<G>(name: &str, opts: ServeOptions)
where
    G: GenServer,
    G::Call: DeserializeOwned,
    G::Cast: DeserializeOwned,
    G::Reply: Serialize,
{
    crate::codec::register_decode::<G::Call>();
    crate::codec::register_decode::<G::Cast>();
    crate::codec::register_encode::<G::Reply>();
    let h = gen_handler::<G>(name.to_string(), opts.call_timeout);
    dispatch::install(Target::Name(name.to_string()), h.clone());
    if let Some(pid) = orbit::whereis(name) {
        dispatch::install(Target::Pid(pid), h);
    }
}

/// Registers the GenServer type `G` for the wire, both ways:
/// - calls from this node to a `G` on another node through
///   `orbit::gen_server::call::<G>(("name", "node@host"), request)` and `cast` (its `Call`
///   and `Cast` types are encoded, its `Reply` decoded);
/// - calls and casts from other nodes to any process of this node that is a `G`, by
///   registered name or by pid, served as [`serve_gen_server`] serves one name (whatever
///   name it is registered under, and after restarts).
///
/// One call per type per OS process, typically at startup; later calls cost a lookup.
pub fn remote_server<G>()
where
    G: GenServer,
    G::Call: Serialize + DeserializeOwned,
    G::Cast: Serialize + DeserializeOwned,
    G::Reply: Serialize + DeserializeOwned,
{
    crate::codec::remote::<G::Call>();
    crate::codec::remote::<G::Cast>();
    crate::codec::remote::<G::Reply>();
    let id = std::any::TypeId::of::<G>();
    let mut types = SERVED_TYPES.write();
    if types.iter().any(|t| t.id == id) {
        return;
    }
    types.push(ServedType {
        id,
        is: |pid| ServerRef::<G>::from_pid(pid).is_some(),
        handler: gen_handler::<G>(std::any::type_name::<G>().to_string(), SERVED_CALL_TIMEOUT),
    });
}

/// A GenServer type given to [`remote_server`]: how to recognise its processes, and the
/// handler that serves them.
struct ServedType {
    id: std::any::TypeId,
    is: fn(Pid) -> bool,
    handler: Handler,
}

static SERVED_TYPES: parking_lot::RwLock<Vec<ServedType>> = parking_lot::RwLock::new(Vec::new());

/// A message that a plain send could not deliver, to a process of a type given to
/// [`remote_server`]: that type's handler serves the pid from now on. `None` when the
/// process is of no such type.
pub(crate) fn served_by_type(inc: &Incoming<'_>) -> Option<Result<(), Undeliverable>> {
    let h = SERVED_TYPES
        .read()
        .iter()
        .find(|t| (t.is)(inc.to))
        .map(|t| t.handler.clone())?;
    dispatch::install(Target::Pid(inc.to), h.clone());
    Some(h(inc))
}

/// The handler serving `$gen_call`/`$gen_cast` to a `G` (see [`serve_gen_server`]);
/// `n` names it in the logs.
fn gen_handler<G>(n: String, call_timeout: Duration) -> Handler
where
    G: GenServer,
    G::Call: DeserializeOwned,
    G::Cast: DeserializeOwned,
    G::Reply: Serialize,
{
    Arc::new(move |inc: &Incoming<'_>| {
        let server = ServerRef::<G>::from_pid(inc.to).ok_or_else(|| {
            Undeliverable::NotForServer(format!(
                "{} is not a GenServer of the served type {}",
                inc.to,
                std::any::type_name::<G>()
            ))
        })?;
        match parse(inc.bytes) {
            Some(Ok(call)) => {
                let req: G::Call = match orbit_term::from_term(&call.request) {
                    Ok(r) => r,
                    Err(e) => {
                        let why = mismatch::<G::Call>("call", &call.request, &e);
                        tracing::warn!(server = %n, caller = %call.from, "{why}");
                        refuse(&call, &why);
                        return Ok(());
                    }
                };
                crate::peers::spawn(async move {
                    match server.call_as(call.from, req, call_timeout).await {
                        Ok(rep) => match orbit_term::to_vec(&rep) {
                            Ok(bytes) => reply(server.pid(), call.from, &call.tag, &bytes),
                            Err(e) => tracing::warn!(
                                caller = %call.from,
                                error = %e,
                                "the reply to a call from another node does not encode as a \
                                 term; the caller gets no reply and times out"
                            ),
                        },
                        // An exit reaches the caller through its monitor on the server.
                        Err(CallError::Exit(_) | CallError::NoProc) => {}
                        Err(e) => tracing::warn!(
                            caller = %call.from,
                            error = %e,
                            "a call from another node was abandoned; the caller gets no reply"
                        ),
                    }
                });
                Ok(())
            }
            Some(Err(req)) => {
                let req: G::Cast = match orbit_term::from_term(&req) {
                    Ok(r) => r,
                    Err(e) => {
                        let why = mismatch::<G::Cast>("cast", &req, &e);
                        tracing::warn!(server = %n, "{why}; the cast is dropped");
                        return Ok(());
                    }
                };
                server.cast(req);
                Ok(())
            }
            None => Err(Undeliverable::NotForServer(format!(
                "{n}: a GenServer served to other nodes takes only $gen_call and $gen_cast \
                 messages; send plain messages to a process declared with orbit_dist::serve"
            ))),
        }
    })
}

/// Says what did not decode into what: the request (shortened), the type, serde's error.
fn mismatch<T>(kind: &str, request: &Term, e: &orbit_term::Error) -> String {
    let mut shown = request.to_string();
    if shown.len() > 300 {
        let mut cut = 300;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    format!(
        "{kind} request {shown} does not decode into {}: {e}",
        std::any::type_name::<T>()
    )
}

/// Ends a refused call at once: `MONITOR_P_EXIT` with `{bad_request, Why}` for the
/// monitor the caller set on the server under the call's reference (`gen:do_call`
/// monitors, then tags the call with that reference or `[alias | it]`). The monitor is
/// forgotten here as it is on the caller's side.
fn refuse(call: &GenCall, why: &str) {
    end_call(
        call,
        &Term::tuple(vec![
            Term::atom("bad_request"),
            Term::Binary(why.as_bytes().to_vec()),
        ]),
    );
}

/// Ends a call at once through the caller's monitor on the server (see [`refuse`]),
/// with `reason`.
fn end_call(call: &GenCall, reason: &Term) {
    let mref = match &call.tag {
        Term::Reference(r) => &**r,
        tag => match alias_of(tag) {
            Some(r) => r,
            None => return,
        },
    };
    let Some(conn) = call.from.with_node(node::conn_for) else {
        return;
    };
    let Some((watcher, target)) = conn.forget_monitor_in(mref) else {
        return;
    };
    conn.monitor_exit(&target, watcher, mref, reason);
}

/// The atom of the reason an Orbit node ends a call to a process it does not serve
/// with: `{'$orbit_not_served', <<"server">>}`.
const NOT_SERVED: &str = "$orbit_not_served";

/// The server named by a not-served reason ([`NOT_SERVED`]).
fn not_served_reason(r: &ExitReason) -> Option<String> {
    match r.as_term()? {
        Term::Tuple(el) if el.len() == 2 && el[0].as_atom() == Some(NOT_SERVED) => {
            Some(String::from_utf8_lossy(el[1].as_binary()?).into_owned())
        }
        _ => None,
    }
}

/// A `$gen_call` or `$gen_cast` from another node reached a local process that takes
/// neither (`e` says the plain delivery failed for the message's type: a GenServer that
/// nobody served with [`serve_gen_server`]). Logs a warning naming the server and the
/// fix; an Orbit caller (its tag is a plain reference: OTP 24+ `gen:call` tags with
/// `[alias | Ref]`) gets its call ended at once with [`CallError::NotServed`], through
/// the monitor it holds for the call. A BEAM caller gets OTP's behaviour, no reply (it
/// times out), as when a BEAM process that is not a gen_server is called. True when the
/// message was such a call or cast.
pub(crate) fn not_served(inc: &Incoming<'_>, e: &Undeliverable) -> bool {
    if !matches!(e, Undeliverable::Send(orbit::SendError::WrongType(_))) {
        return false;
    }
    let Some(msg) = parse(inc.bytes) else {
        return false;
    };
    let server = orbit::process_info(inc.to)
        .and_then(|i| i.registered_name)
        .map_or_else(|| inc.to.to_string(), |n| n.to_string());
    let (kind, caller) = match &msg {
        Ok(call) => ("call", Some(call.from)),
        Err(_) => ("cast", inc.from),
    };
    tracing::warn!(
        server = %server,
        caller = ?caller,
        caller_node = %caller.map_or_else(Default::default, |p| p.node()),
        "a GenServer {kind} from another node reached {server}, which is not served to other \
         nodes: call orbit_dist::remote_server::<YourServer>() once, or \
         orbit_dist::serve_gen_server::<YourServer>(\"{server}\") after starting it"
    );
    if let Ok(call) = &msg {
        if matches!(call.tag, Term::Reference(_)) {
            end_call(
                call,
                &Term::tuple(vec![
                    Term::atom(NOT_SERVED),
                    Term::Binary(server.into_bytes()),
                ]),
            );
        }
    }
    true
}

/// Answers a `$gen_call` addressed to a system server with `reply` (a term).
pub(crate) fn answer(server: Pid, call: &GenCall, reply_term: &Term) {
    reply(server, call.from, &call.tag, &reply_term.encode());
}
