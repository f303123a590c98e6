//! Which local processes take typed messages from the wire: the table [`serve`] fills.
//!
//! A process declared with [`serve::<M>`](serve) gets its payloads deserialized into
//! `M` ([`serve_with`]: turned into `M` by the process's own function of the bytes as
//! they arrived); any other process receives an [`orbit_term::Term`]. The table maps pids and
//! registered names to handlers ([`Handler`]); [`crate::gen_call`] installs its own
//! handlers here for served GenServers, and [`crate::dispatch`] looks them up for each
//! incoming message. Below both: it imports nothing of the delivery layer.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use orbit::Pid;
use orbit_term::Term;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;

/// What a local process needs to take a message from the wire.
pub(crate) struct Incoming<'a> {
    /// The sender, when known.
    #[allow(dead_code)]
    pub from: Option<Pid>,
    /// The local destination.
    pub to: Pid,
    /// The message (`131, ...`).
    pub bytes: &'a [u8],
}

/// Delivers one message to a local process; errors are logged, never fatal to the
/// connection.
pub(crate) type Handler = Arc<dyn Fn(&Incoming<'_>) -> Result<(), Undeliverable> + Send + Sync>;

/// Why a message from another node did not reach a local process (logged; the sender is
/// not told, as in Erlang).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Undeliverable {
    /// The bytes are not a term.
    #[error("the message is not a valid term: {0}")]
    NotATerm(orbit_term::Error),
    /// The term does not decode into the type the destination declared with [`serve`].
    #[error(
        "a message for {to} does not decode into {type_name}, the type it was served \
         with: {reason}"
    )]
    WrongType {
        /// The destination.
        to: Pid,
        /// The declared message type.
        type_name: &'static str,
        /// What the decoder said.
        reason: orbit_term::Error,
    },
    /// The local send failed (the process is gone, or takes another type).
    #[error(transparent)]
    Send(#[from] orbit::SendError),
    /// The destination process has exited.
    #[error("{0} is not alive; the message was dropped")]
    NoProc(Pid),
    /// A served GenServer got something other than `$gen_call`/`$gen_cast`, or its pid
    /// is not a GenServer of the served type.
    #[error("{0}")]
    NotForServer(String),
}

/// Handlers by pid and by registered name (seeded foldhash: looked up for every
/// message that arrives, issue 17).
#[derive(Default)]
pub(crate) struct Handlers {
    pub by_pid: HashMap<Pid, Handler, foldhash::fast::RandomState>,
    pub by_name: HashMap<String, Handler, foldhash::fast::RandomState>,
}

/// The process-wide table.
pub(crate) fn handlers() -> &'static RwLock<Handlers> {
    static H: OnceLock<RwLock<Handlers>> = OnceLock::new();
    H.get_or_init(Default::default)
}

/// How messages for a local process are decoded.
#[derive(Debug, Clone)]
pub enum Target {
    /// This pid.
    Pid(Pid),
    /// The process registered under this name (looked up per message).
    Name(String),
}

impl From<Pid> for Target {
    fn from(p: Pid) -> Self {
        Target::Pid(p)
    }
}

impl From<&str> for Target {
    fn from(n: &str) -> Self {
        Target::Name(n.to_string())
    }
}

/// Declares that messages from other nodes to `target` are deserialized into `M` (the
/// process's message type). Without it a process receives [`orbit_term::Term`]s.
pub fn serve<M: DeserializeOwned + Any + Send>(target: impl Into<Target>) {
    crate::codec::register_decode::<M>();
    serve_with::<M>(target, orbit_term::from_slice_owned::<M>);
}

/// Declares that messages from other nodes to `target` become `M` through `decode`,
/// which gets each message exactly as it arrived (`131, ...`: not walked, not checked,
/// possibly compressed). For a process that reads its messages in one pass itself,
/// where [`serve`] with a type holding an [`orbit_term::RawTerm`] would first walk the
/// whole message to find its end. The bytes are untrusted: `decode` must check them
/// and return an error for what it cannot take (the message is then logged and
/// dropped, as with [`serve`]).
pub fn serve_with<M: Any + Send>(
    target: impl Into<Target>,
    decode: fn(&[u8]) -> Result<M, orbit_term::Error>,
) {
    // The typed handle of the last destination: messages go straight into its mailbox,
    // with no table lookup and no boxing.
    let last: parking_lot::Mutex<Option<orbit::Handle<M>>> = parking_lot::Mutex::new(None);
    let h: Handler = Arc::new(move |inc: &Incoming<'_>| {
        let m: M = decode(inc.bytes).map_err(|reason| Undeliverable::WrongType {
            to: inc.to,
            type_name: std::any::type_name::<M>(),
            reason,
        })?;
        let mut last = last.lock();
        if last.as_ref().map(|h| h.pid()) != Some(inc.to) {
            *last = orbit::Handle::<M>::from_pid(inc.to);
        }
        match last.as_ref() {
            Some(h) => h.send(m).map_err(|e| Undeliverable::NoProc(e.pid)),
            None => Ok(orbit::send(inc.to, m)?),
        }
    });
    install(target.into(), h);
}

/// Installs `h` for `t`, replacing any earlier handler.
pub(crate) fn install(t: Target, h: Handler) {
    let mut w = handlers().write();
    match t {
        Target::Pid(p) => {
            w.by_pid.insert(p, h);
        }
        Target::Name(n) => {
            w.by_name.insert(n, h);
        }
    }
}

/// Forgets what [`serve`] declared for `target`.
pub fn unserve(target: impl Into<Target>) {
    let mut w = handlers().write();
    match target.into() {
        Target::Pid(p) => {
            w.by_pid.remove(&p);
        }
        Target::Name(n) => {
            w.by_name.remove(&n);
        }
    }
}

/// Delivers an encoded message to a local process as if it came from the wire.
pub(crate) fn deliver_local(to: Pid, bytes: &[u8]) -> Result<(), orbit::SendError> {
    let h = handlers().read().by_pid.get(&to).cloned();
    let inc = Incoming {
        from: orbit::self_pid(),
        to,
        bytes,
    };
    match h {
        Some(h) => h(&inc).map_err(|e| match e {
            Undeliverable::Send(e) => e,
            e => orbit::SendError::NotEncodable(e.to_string()),
        }),
        None => {
            let t =
                Term::decode(bytes).map_err(|e| orbit::SendError::NotEncodable(e.to_string()))?;
            orbit::send(to, t)
        }
    }
}
