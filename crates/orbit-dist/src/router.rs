//! The runtime's seam: [`orbit::router::Router`] for pids of other nodes.
//!
//! Messages handed to the runtime for a remote pid arrive as `Box<dyn Any>`; the router
//! accepts an [`orbit_term::Term`] (encoded on the way out) or an [`Etf`] (already
//! encoded), and refuses anything else with `NotEncodable` (use [`crate::send`] for
//! serde types). Every operation goes to the peer's connection, starting one when
//! needed; links and monitors are recorded on the connection so that its loss delivers
//! `noconnection`.

use std::any::Any;

use orbit::error::{Error, SendError};
use orbit::router::Router;
use orbit::{ExitReason, Pid, Ref};
use orbit_term::Term;

use crate::connection::FrameError;
use crate::convert;
use crate::node;

/// A message already in ETF (`131, ...`), as `term_to_binary` makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etf(pub Vec<u8>);

type Writer = Box<dyn FnOnce(&mut Vec<u8>) -> Result<(), FrameError> + Send>;

/// A writer for a type-erased message (`131, ...`).
fn encode(msg: Box<dyn Any + Send>) -> Result<Writer, SendError> {
    let msg = match msg.downcast::<Term>() {
        Ok(t) => {
            return Ok(Box::new(move |o: &mut Vec<u8>| {
                t.encode_into(o);
                Ok(())
            }))
        }
        Err(m) => m,
    };
    match msg.downcast::<Etf>() {
        Ok(e) if e.0.first() == Some(&131) => Ok(Box::new(move |o: &mut Vec<u8>| {
            o.extend_from_slice(&e.0);
            Ok(())
        })),
        Ok(_) => Err(SendError::NotEncodable("Etf bytes must start with 131".into())),
        Err(_) => Err(SendError::NotEncodable(
            "only orbit_term::Term or orbit_dist::Etf travel to other nodes; use orbit_dist::send for serde types".into(),
        )),
    }
}

/// The connection to `node`, started if needed; the error says what to check.
fn conn(node: &str) -> Result<std::sync::Arc<crate::connection::Conn>, SendError> {
    node::conn_for(node).ok_or_else(|| {
        SendError::Remote(format!(
            "cannot connect to {node}: check the node name and that this node is started"
        ))
    })
}

/// The router `Node::start` installs.
pub struct DistRouter;

impl Router for DistRouter {
    fn send(&self, from: Option<Pid>, to: Pid, msg: Box<dyn Any + Send>) -> Result<(), SendError> {
        let w = encode(msg)?;
        let c = conn(&to.node())?;
        Ok(c.send_with(from, to, w)?)
    }

    fn send_named(
        &self,
        from: Option<Pid>,
        node: &str,
        name: &str,
        msg: Box<dyn Any + Send>,
    ) -> Result<(), SendError> {
        let w = encode(msg)?;
        let c = conn(node)?;
        Ok(c.reg_send_with(from.unwrap_or_else(node::system_pid), name, w)?)
    }

    fn link(&self, from: Pid, to: Pid) -> Result<(), Error> {
        match conn(&to.node()) {
            Ok(c) => {
                c.track.lock().links.insert((from, to));
                c.link(from, to);
            }
            Err(_) => orbit::signal::deliver_remote_exit(to, from, ExitReason::NoConnection, true),
        }
        Ok(())
    }

    fn unlink(&self, from: Pid, to: Pid) -> Result<(), Error> {
        if let Some(c) = node::Node::current().and_then(|n| n.connection(&to.node())) {
            c.track.lock().links.remove(&(from, to));
            c.unlink(from, to);
        }
        Ok(())
    }

    fn exit(&self, from: Pid, to: Pid, reason: ExitReason, link: bool) -> Result<(), Error> {
        if let Some(c) = node::Node::current().and_then(|n| n.connection(&to.node())) {
            if link {
                c.track.lock().links.remove(&(from, to));
            }
            c.exit(from, to, &convert::reason_to_term(&reason), link);
        }
        Ok(())
    }

    fn monitor(&self, watcher: Pid, target: Pid, r: Ref) -> Result<(), Error> {
        let c = conn(&target.node()).map_err(|_| Error::NotDistributed)?;
        c.track
            .lock()
            .monitors_out
            .insert(r.id(), (r, watcher, target));
        c.monitor(watcher, &convert::pid_term(target, &c.local), r);
        Ok(())
    }

    fn demonitor(&self, watcher: Pid, target: Pid, r: Ref) -> Result<(), Error> {
        if let Some(c) = node::Node::current().and_then(|n| n.connection(&target.node())) {
            if c.track.lock().monitors_out.remove(&r.id()).is_some() {
                c.demonitor(watcher, &convert::pid_term(target, &c.local), r);
            }
        }
        Ok(())
    }

    fn down(&self, _pid: Pid, watcher: Pid, r: Ref, reason: ExitReason) -> Result<(), Error> {
        if let Some(c) = node::Node::current().and_then(|n| n.connection(&watcher.node())) {
            let entry = {
                let mut t = c.track.lock();
                t.monitors_in_by_ref
                    .remove(&r)
                    .and_then(|wire| t.monitors_in.remove(&wire).map(|e| (wire, e)))
            };
            if let Some((wire, (watcher, target, _, _))) = entry {
                c.monitor_exit(&target, watcher, &wire, &convert::reason_to_term(&reason));
            }
        }
        Ok(())
    }
}
