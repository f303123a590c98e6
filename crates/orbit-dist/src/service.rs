//! The seam through which system services register under their names.
//!
//! OTP runs `net_kernel`, `rex`, `global_name_server`, `pg`, ... as processes above its
//! distribution driver. Orbit's wire (this crate) does not know them: a service is a
//! [`Service`] registered here under the name peers send to, and the delivery layer
//! hands it every message that arrives for that name (`REG_SEND`, `$gen_call`s
//! included), on the connection's reader, in arrival order. A registered name is also a
//! live process for peers: `MONITOR_P` on it is accepted (it lives as long as the node),
//! where an unknown name is answered `noproc`. Adding a service touches no wire code.
//!
//! A service may also claim control operations the wire does not act on itself
//! ([`claim_control`]): `SPAWN_REQUEST`/`SPAWN_REPLY` (29-32), for erpc (the primitives
//! such a service uses are in [`crate::spawn`]). Orbit advertises `DFLAG_SPAWN`; an
//! unclaimed `SPAWN_REQUEST` is answered `notsup`, an unclaimed `SPAWN_REPLY` dropped.
//!
//! Contract:
//! - a service's [`Service::message`] runs on the connection's reader task: it must not
//!   block (spawn or send to a process for long work); a panic is caught and logged
//!   (the message is lost, the connection stays up);
//! - registering a name again replaces the service (the old one is returned): this is
//!   how a fuller service (e.g. `orbit-cluster`'s) takes over a built-in one;
//! - a name registered here shadows a local process registered under the same name for
//!   messages from other nodes;
//! - the lookup costs one atomic load per `REG_SEND` to a name of a length no service
//!   has (most names), else one read-locked hash lookup; messages to pids never look
//!   here.
//!
//! Built in (registered by [`crate::Node::start`], so that a bare node answers what BEAM
//! peers ask of every node): `net_kernel` (`net_adm:ping`) and `global_name_server`'s
//! lock protocol (see `global`'s module docs for why a node must answer it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use orbit::Pid;
use orbit_term::Term;
use parking_lot::RwLock;

use crate::control::{op, SpawnReply, SpawnRequest};
use crate::gen_call::{self, GenCall};
use crate::peers;

/// A system service: receives the messages other nodes send to its registered name.
pub trait Service: Send + Sync + 'static {
    /// One message for the service's name. Runs on the connection's reader: must not
    /// block. A panic is caught and logged; the connection stays up.
    fn message(&self, msg: Inbound<'_>);
}

/// A message for a service.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The sending process (on the peer).
    pub from: Pid,
    /// The peer node's name.
    pub peer: &'a str,
    /// The name the message was sent to.
    pub name: &'a str,
    /// The message, in ETF (`131, ...`).
    pub bytes: &'a [u8],
}

/// What a message for a service is, read once.
#[derive(Debug)]
pub enum ServiceRequest {
    /// `{'$gen_call', {From, Tag}, Request}`: answer with [`Call::reply`].
    Call(Call),
    /// `{'$gen_cast', Request}`.
    Cast(Term),
    /// Any other term (a plain message).
    Info(Term),
}

/// A `$gen_call` to a service, with what is needed to answer it.
pub struct Call {
    inner: GenCall,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("from", &self.inner.from)
            .field("request", &self.inner.request)
            .finish()
    }
}

impl Call {
    /// The request term.
    pub fn request(&self) -> &Term {
        &self.inner.request
    }

    /// The calling process.
    pub fn from(&self) -> Pid {
        self.inner.from
    }

    /// Sends `reply` to the caller as `{Tag, Reply}` (from the node's system pid).
    pub fn reply(&self, reply: &Term) {
        gen_call::answer(peers::system_pid(), &self.inner, reply);
    }
}

impl Inbound<'_> {
    /// Decodes the message: a call, a cast or a plain term; `None` when the bytes are
    /// not a term.
    pub fn request(&self) -> Option<ServiceRequest> {
        match gen_call::parse(self.bytes) {
            Some(Ok(call)) => Some(ServiceRequest::Call(Call { inner: call })),
            Some(Err(cast)) => Some(ServiceRequest::Cast(cast)),
            None => Term::decode(self.bytes).ok().map(ServiceRequest::Info),
        }
    }
}

/// Handles control operations a service claimed ([`claim_control`]).
///
/// Every claimed control reaches [`ControlHandler::control`] as a `Term`, except the
/// shapes the wire reads straight from the bytes (`control::parse_fast`): a
/// `SPAWN_REQUEST` (29) or `SPAWN_REPLY` (31) in the form Orbit and OTP write comes
/// parsed through [`ControlHandler::spawn_request`] / [`ControlHandler::spawn_reply`],
/// whose default methods build the same `Term` the general path would have and call
/// `control`. A handler overrides them to skip that.
pub trait ControlHandler: Send + Sync + 'static {
    /// One control message from `peer`: the whole control tuple and, for operations
    /// that carry one, the payload (`131, ...`). Runs on the connection's reader.
    fn control(&self, peer: &str, control: &Term, payload: Option<&[u8]>);

    /// A `SPAWN_REQUEST` (29) read from the bytes, with its argument list (`131, ...`).
    /// The default calls [`ControlHandler::control`] with the tuple as a `Term`.
    fn spawn_request(&self, peer: &str, request: &SpawnRequest<'_>, payload: Option<&[u8]>) {
        self.control(peer, &request.to_term(), payload);
    }

    /// A `SPAWN_REPLY` (31) read from the bytes. The default calls
    /// [`ControlHandler::control`] with the tuple as a `Term`.
    fn spawn_reply(&self, peer: &str, reply: &SpawnReply<'_>) {
        self.control(peer, &reply.to_term(), None);
    }
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Only the operations the wire hands up can be claimed.
    #[error(
        "control operation {0} cannot be claimed: only SPAWN_REQUEST (29, 30) and \
         SPAWN_REPLY (31, 32) are handed to services"
    )]
    NotClaimable(i64),
    /// The name is not an atom Erlang accepts (empty or over 255 characters).
    #[error("service name {0:?} is not a valid atom (1 to 255 characters)")]
    BadName(String),
}

#[derive(Default)]
struct Registry {
    by_name: HashMap<Box<str>, Arc<dyn Service>>,
    controls: HashMap<i64, Arc<dyn ControlHandler>>,
}

/// Bit `min(len, 63)` is set when a service name of that length is registered: the
/// hot path skips the lock for other names.
static LENGTHS: AtomicU64 = AtomicU64::new(0);

fn length_bit(name: &str) -> u64 {
    1u64 << name.len().min(63)
}

/// Recomputes [`LENGTHS`] (called with the registry write-locked).
fn update_lengths(r: &Registry) {
    let m = r.by_name.keys().fold(0, |m, k| m | length_bit(k));
    LENGTHS.store(m, Ordering::Release);
}

fn registry() -> &'static RwLock<Registry> {
    static R: OnceLock<RwLock<Registry>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Registers `service` under `name`; returns the service it replaces, if any.
pub fn register(
    name: &str,
    service: Arc<dyn Service>,
) -> Result<Option<Arc<dyn Service>>, ServiceError> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ServiceError::BadName(name.to_string()));
    }
    let mut r = registry().write();
    let old = r.by_name.insert(name.into(), service);
    update_lengths(&r);
    Ok(old)
}

/// Registers `service` under `name` unless a service already has it (built-ins use
/// this, so that a service registered before the node started is kept).
pub fn register_default(name: &str, service: Arc<dyn Service>) -> Result<(), ServiceError> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ServiceError::BadName(name.to_string()));
    }
    let mut r = registry().write();
    r.by_name.entry(name.into()).or_insert(service);
    update_lengths(&r);
    Ok(())
}

/// Removes the service registered under `name`; returns it.
pub fn unregister(name: &str) -> Option<Arc<dyn Service>> {
    let mut r = registry().write();
    let old = r.by_name.remove(name);
    update_lengths(&r);
    old
}

/// True when a service is registered under `name`.
pub fn is_registered(name: &str) -> bool {
    LENGTHS.load(Ordering::Acquire) & length_bit(name) != 0
        && registry().read().by_name.contains_key(name)
}

/// The service registered under `name`.
pub(crate) fn lookup(name: &str) -> Option<Arc<dyn Service>> {
    if LENGTHS.load(Ordering::Acquire) & length_bit(name) == 0 {
        return None;
    }
    registry().read().by_name.get(name).cloned()
}

/// Claims control operation `op` (`SPAWN_REQUEST` 29/30, `SPAWN_REPLY` 31/32) for
/// `handler`; returns the handler it replaces.
pub fn claim_control(
    op: i64,
    handler: Arc<dyn ControlHandler>,
) -> Result<Option<Arc<dyn ControlHandler>>, ServiceError> {
    if !matches!(
        op,
        op::SPAWN_REQUEST | op::SPAWN_REQUEST_TT | op::SPAWN_REPLY | op::SPAWN_REPLY_TT
    ) {
        return Err(ServiceError::NotClaimable(op));
    }
    Ok(registry().write().controls.insert(op, handler))
}

/// Gives up control operation `op`.
pub fn release_control(op: i64) -> Option<Arc<dyn ControlHandler>> {
    registry().write().controls.remove(&op)
}

/// The handler that claimed `op`.
pub(crate) fn control_handler(op: i64) -> Option<Arc<dyn ControlHandler>> {
    registry().read().controls.get(&op).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nop;
    impl Service for Nop {
        fn message(&self, _: Inbound<'_>) {}
    }
    impl ControlHandler for Nop {
        fn control(&self, _: &str, _: &Term, _: Option<&[u8]>) {}
    }

    #[test]
    fn registering_replaces_and_default_keeps() {
        assert!(register("seam_test_a", Arc::new(Nop)).unwrap().is_none());
        assert!(register("seam_test_a", Arc::new(Nop)).unwrap().is_some());
        register_default("seam_test_a", Arc::new(Nop)).unwrap();
        assert!(is_registered("seam_test_a"));
        assert!(lookup("seam_test_a").is_some());
        assert!(lookup("seam_test_b").is_some() == is_registered("seam_test_b"));
        assert!(unregister("seam_test_a").is_some());
        assert!(!is_registered("seam_test_a"));
        assert!(lookup("seam_test_a").is_none());
        // A long name (length bit 63 shared by every name of 63+ bytes).
        let long = "l".repeat(100);
        register(&long, Arc::new(Nop)).unwrap();
        assert!(lookup(&long).is_some());
        assert!(lookup(&"l".repeat(99)).is_none());
        unregister(&long);
        assert!(register("", Arc::new(Nop)).is_err());
        assert!(register(&"x".repeat(256), Arc::new(Nop)).is_err());
    }

    #[test]
    fn only_spawn_operations_can_be_claimed() {
        assert!(matches!(
            claim_control(op::SEND, Arc::new(Nop)),
            Err(ServiceError::NotClaimable(2))
        ));
        assert!(claim_control(op::SPAWN_REQUEST, Arc::new(Nop)).is_ok());
        assert!(control_handler(op::SPAWN_REQUEST).is_some());
        assert!(release_control(op::SPAWN_REQUEST).is_some());
        assert!(control_handler(op::SPAWN_REQUEST).is_none());
    }
}
