//! The runtime's seam: [`orbit::router::Router`] for processes of other nodes.
//!
//! Messages and requests handed to the runtime for another node ([`orbit::send`] to a
//! remote pid or `(name, node)`, `orbit::gen_server::call`/`cast` to one) arrive
//! type-erased ([`Payload`]); they are encoded by the serde codec registered for their
//! type ([`crate::codec`]: built in for common types, [`orbit_term::Term`] and [`Etf`],
//! filled by every serde entry point, or [`crate::remote`]). A type with no codec fails
//! at the call with `NotEncodable` (sends) or `CallError::Encode` (calls) naming the type
//! and the fix. Every operation goes to the peer's connection, starting one when needed;
//! links and monitors are recorded on the connection so that its loss delivers
//! `noconnection`.

use std::time::Duration;

use orbit::error::{Error, SendError};
use orbit::router::{CallFuture, Payload, ReplyType, Router};
use orbit::{CallError, Dest, ExitReason, Pid, Ref};

use crate::codec;
use crate::convert;
use crate::peers;

pub use crate::codec::Etf;

/// The connection to `node`, started if needed; the error names the node.
fn conn(node: &str) -> Result<std::sync::Arc<crate::connection::Conn>, SendError> {
    peers::conn_for(node).ok_or_else(|| SendError::NoConnection {
        node: node.to_string(),
    })
}

/// The router `Node::start` installs.
pub struct DistRouter;

impl Router for DistRouter {
    fn send(&self, from: Option<Pid>, to: Pid, msg: Payload) -> Result<(), SendError> {
        let w = codec::writer(msg)?;
        let c = to.with_node(conn)?;
        Ok(c.send_with(from, to, w)?)
    }

    fn send_named(
        &self,
        from: Option<Pid>,
        node: &str,
        name: &str,
        msg: Payload,
    ) -> Result<(), SendError> {
        let w = codec::writer(msg)?;
        let c = conn(node)?;
        Ok(c.reg_send_with(from.unwrap_or_else(peers::system_pid), name, w)?)
    }

    fn call(&self, to: Dest, request: Payload, reply: ReplyType, timeout: Duration) -> CallFuture {
        let prepared = codec::decoder(reply)
            .and_then(|dec| codec::encode_request(&request).map(|req| (dec, req)));
        Box::pin(async move {
            let (dec, req) = prepared?;
            let bytes = crate::gen_call::call_encoded(to, req, timeout).await?;
            dec(&bytes).map_err(|reason| CallError::Decode {
                type_name: reply.name,
                reason,
            })
        })
    }

    fn cast(&self, to: Dest, request: Payload) -> Result<(), CallError> {
        crate::gen_call::cast_encoded(to, codec::encode_request(&request)?)
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
        if let Some(c) = peers::connection(&to.node()) {
            c.track.lock().links.remove(&(from, to));
            c.unlink(from, to);
        }
        Ok(())
    }

    fn exit(&self, from: Pid, to: Pid, reason: ExitReason, link: bool) -> Result<(), Error> {
        if let Some(c) = peers::connection(&to.node()) {
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
        if let Some(c) = peers::connection(&target.node()) {
            if c.track.lock().monitors_out.remove(&r.id()).is_some() {
                c.demonitor(watcher, &convert::pid_term(target, &c.local), r);
            }
        }
        Ok(())
    }

    fn down(&self, _pid: Pid, watcher: Pid, r: Ref, reason: ExitReason) -> Result<(), Error> {
        if let Some(c) = peers::connection(&watcher.node()) {
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
