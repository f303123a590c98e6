//! Control messages out (`SEND`, `LINK`, `MONITOR_P`, ...) and the links and
//! monitors the connection tracks so that its loss delivers `noconnection`.

use super::*;

// ---- control messages out ------------------------------------------------------------

impl Conn {
    /// `SEND` (or `SEND_SENDER` when negotiated) of a message written by `msg`
    /// (`131, ...`).
    #[inline]
    pub(crate) fn send_with(
        &self,
        from: Option<Pid>,
        to: Pid,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        let sender = from.filter(|_| self.flags() & flags::SEND_SENDER != 0);
        self.try_frame(from, |o, l| {
            control::tuple(o, 3);
            match sender {
                Some(f) => {
                    control::small(o, 22);
                    control::pid_w(o, f, l);
                }
                None => {
                    control::small(o, 2);
                    control::atom(o, "");
                }
            }
            control::pid_w(o, to, l);
            let at = o.len();
            msg(o)?;
            Ok(Some(at))
        })
    }

    /// `REG_SEND` to `name` on the peer.
    pub(crate) fn reg_send_with(
        &self,
        from: Pid,
        name: &str,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        self.try_frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, 6);
            control::pid_w(o, from, l);
            control::atom(o, "");
            control::atom(o, name);
            let at = o.len();
            msg(o)?;
            Ok(Some(at))
        })
    }

    /// `ALIAS_SEND` to a reference.
    pub(crate) fn alias_send_with(
        &self,
        from: Pid,
        alias: &Reference,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        self.try_frame(Some(from), |o, l| {
            control::tuple(o, 3);
            control::small(o, 33);
            control::pid_w(o, from, l);
            Term::Reference(Box::new(alias.clone())).encode_body(o);
            let at = o.len();
            msg(o)?;
            Ok(Some(at))
        })
    }

    /// `LINK`.
    pub(crate) fn link(&self, from: Pid, to: Pid) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 3);
            control::small(o, 1);
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
        });
    }

    /// `UNLINK_ID` (or the old `UNLINK`).
    pub(crate) fn unlink(&self, from: Pid, to: Pid) {
        if self.flags() & flags::UNLINK_ID != 0 {
            let id = self.next_unlink_id();
            self.frame(Some(from), |o, l| {
                control::tuple(o, 4);
                control::small(o, 35);
                Term::Int(id as i64).encode_body(o);
                control::pid_w(o, from, l);
                control::pid_w(o, to, l);
            });
        } else {
            self.frame(Some(from), |o, l| {
                control::tuple(o, 3);
                control::small(o, 4);
                control::pid_w(o, from, l);
                control::pid_w(o, to, l);
            });
        }
    }

    /// `UNLINK_ID_ACK`.
    pub(crate) fn unlink_ack(&self, id: &Term, from: Pid, to: Pid) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, 36);
            id.encode_body(o);
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
        });
    }

    /// `EXIT` (along a link) or `EXIT2` (`exit/2`).
    pub(crate) fn exit(&self, from: Pid, to: Pid, reason: &Term, link: bool) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, if link { 3 } else { 8 });
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
            reason.encode_body(o);
        });
    }

    /// `MONITOR_P` from local `from` on `target` (a pid or a name term) with `r`.
    pub(crate) fn monitor(&self, from: Pid, target: &Term, r: Ref) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, 19);
            control::pid_w(o, from, l);
            target.encode_body(o);
            control::ref_w(o, r, l);
        });
    }

    /// `DEMONITOR_P`.
    pub(crate) fn demonitor(&self, from: Pid, target: &Term, r: Ref) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, 20);
            control::pid_w(o, from, l);
            target.encode_body(o);
            control::ref_w(o, r, l);
        });
    }

    /// Forgets the monitor a remote watcher holds on a local process under the wire
    /// reference `r` (both maps, and the local side of it); returns the watcher and the
    /// target as it was monitored, when there was one.
    pub(crate) fn forget_monitor_in(&self, r: &Reference) -> Option<(Pid, Term)> {
        let (watcher, target, local, lr) = {
            let mut t = self.track.lock();
            let e = t.monitors_in.remove(r)?;
            t.monitors_in_by_ref.remove(&e.3);
            e
        };
        orbit::signal::remove_remote_monitor(local, lr);
        Some((watcher, target))
    }

    /// Records the monitor remote `watcher` holds on local process `pid` (monitored as
    /// `target`: the pid or the name it was asked under) with wire reference `r`, as an
    /// incoming `MONITOR_P` does; false (nothing recorded) when `pid` is not alive.
    pub(crate) fn monitor_in(&self, watcher: Pid, target: Term, pid: Pid, r: &Reference) -> bool {
        let lr = Ref::make();
        // Recorded first: an exit right after the monitor is added finds the record.
        {
            let mut t = self.track.lock();
            t.monitors_in.insert(r.clone(), (watcher, target, pid, lr));
            t.monitors_in_by_ref.insert(lr, r.clone());
        }
        if orbit::signal::add_remote_monitor(pid, watcher, lr) {
            return true;
        }
        let mut t = self.track.lock();
        t.monitors_in.remove(r);
        t.monitors_in_by_ref.remove(&lr);
        false
    }

    /// Links remote `from` to local `to`, as an incoming `LINK` does; false when `to` is
    /// not alive.
    pub(crate) fn link_in(&self, from: Pid, to: Pid) -> bool {
        self.track.lock().links.insert((to, from));
        if orbit::signal::add_remote_link(to, from) {
            return true;
        }
        self.track.lock().links.remove(&(to, from));
        false
    }

    /// `MONITOR_P_EXIT`: the local process (`target` as it was monitored) exited.
    pub(crate) fn monitor_exit(&self, target: &Term, watcher: Pid, r: &Reference, reason: &Term) {
        self.frame(None, |o, l| {
            control::tuple(o, 5);
            control::small(o, 21);
            target.encode_body(o);
            control::pid_w(o, watcher, l);
            Term::Reference(Box::new(r.clone())).encode_body(o);
            reason.encode_body(o);
        });
    }
}
