//! The group leader sent with this node's erpc requests: answers the Erlang I/O
//! protocol so that a remote function that prints does not block.
//!
//! A BEAM process sends its output to its group leader as `{io_request, From, ReplyAs,
//! Request}` and waits for `{io_reply, ReplyAs, Reply}`. A function run on another node
//! for an Orbit caller has this process as its group leader (the spawn request names
//! it): output requests (`put_chars` in every form, also inside `{requests, [...]}`) are
//! answered `ok` and logged with `tracing` at info level, target
//! `orbit_cluster::erpc::io` (the text when it is plain characters, else the request
//! term, e.g. `io:format`'s `{put_chars, unicode, io_lib, format, [Fmt, Args]}`, which
//! only a BEAM can format); input requests are answered `{error, enotsup}`, `getopts`
//! `[]`, `setopts` `ok`, anything else `{error, request}` (the I/O protocol's answer to
//! an unknown request).

use std::sync::OnceLock;

use orbit::{Context, Message};
use orbit_term::Term;

/// The group leader's pid as a wire term (the node's system pid when the process could
/// not be started: no runtime).
pub(crate) fn pid_term() -> Term {
    Term::Pid(Box::new(orbit_dist::to_wire(pid())))
}

/// The group leader's pid (the node's system pid when the process could not be
/// started: no runtime).
pub(crate) fn pid() -> orbit::Pid {
    static PID: OnceLock<orbit::Pid> = OnceLock::new();
    match PID.get() {
        Some(p) => *p,
        None => match start() {
            Some(p) => *PID.get_or_init(|| p),
            None => orbit_dist::spawn::system_pid(),
        },
    }
}

fn start() -> Option<orbit::Pid> {
    tokio::runtime::Handle::try_current().ok()?;
    let h = orbit::Spawn::new()
        .label("erpc group leader")
        .spawn(|mut ctx: Context<Term>| async move {
            loop {
                if let Message::Msg(t) = ctx.recv().await {
                    serve(t);
                }
            }
            #[allow(unreachable_code)]
            ()
        })
        .ok()?;
    Some(h.pid())
}

/// Answers one message (anything but an I/O request is ignored).
fn serve(msg: Term) {
    let Term::Tuple(el) = msg else { return };
    let [tag, Term::Pid(from), reply_as, request] = &el[..] else {
        return;
    };
    if tag.as_atom() != Some("io_request") {
        return;
    }
    let reply = Term::Tuple(vec![
        Term::atom("io_reply"),
        reply_as.clone(),
        answer(request),
    ]);
    if let Err(e) = orbit::send(orbit_dist::from_wire(from), reply) {
        tracing::debug!(error = %e, "io_reply not sent");
    }
}

fn answer(request: &Term) -> Term {
    let Term::Tuple(el) = request else {
        return match request.as_atom() {
            Some("getopts") => Term::nil(),
            _ => error("request"),
        };
    };
    match el.first().and_then(Term::as_atom) {
        Some("put_chars") => {
            match el.len() {
                // {put_chars, Encoding, Chars} / {put_chars, Chars}
                2 | 3 => match text(&el[el.len() - 1]) {
                    Some(s) => tracing::info!(target: "orbit_cluster::erpc::io", "{s}"),
                    None => tracing::info!(target: "orbit_cluster::erpc::io", "{request}"),
                },
                _ => tracing::info!(target: "orbit_cluster::erpc::io", "{request}"),
            }
            Term::atom("ok")
        }
        Some("requests") => match el.get(1) {
            Some(Term::List(rs)) => {
                let mut last = Term::atom("ok");
                for r in rs {
                    last = answer(r);
                    if matches!(&last, Term::Tuple(e) if e.first().and_then(Term::as_atom) == Some("error"))
                    {
                        break;
                    }
                }
                last
            }
            _ => error("request"),
        },
        Some("get_chars" | "get_line" | "get_until" | "get_password" | "get_geometry") => {
            error("enotsup")
        }
        Some("setopts") => Term::atom("ok"),
        _ => error("request"),
    }
}

fn error(why: &str) -> Term {
    Term::Tuple(vec![Term::atom("error"), Term::atom(why)])
}

/// Plain characters (a binary, or a list of code points and binaries) as text.
fn text(t: &Term) -> Option<String> {
    fn walk(t: &Term, out: &mut String, depth: usize) -> Option<()> {
        if depth > 64 {
            return None;
        }
        match t {
            Term::Binary(b) => out.push_str(&String::from_utf8_lossy(b)),
            Term::Int(c) => out.push(char::from_u32(u32::try_from(*c).ok()?)?),
            Term::List(l) => {
                for e in l {
                    walk(e, out, depth + 1)?;
                }
            }
            _ => return None,
        }
        Some(())
    }
    let mut s = String::new();
    walk(t, &mut s, 0)?;
    Some(s.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_requests_are_answered() {
        let put = Term::Tuple(vec![
            Term::atom("put_chars"),
            Term::atom("unicode"),
            Term::Binary(b"hi\n".to_vec()),
        ]);
        assert_eq!(answer(&put), Term::atom("ok"));
        assert_eq!(
            answer(&Term::Tuple(vec![Term::atom("get_line"), Term::nil()])),
            error("enotsup")
        );
        assert_eq!(answer(&Term::atom("x")), error("request"));
        assert_eq!(
            answer(&Term::Tuple(vec![
                Term::atom("requests"),
                Term::List(vec![put])
            ])),
            Term::atom("ok")
        );
        assert_eq!(
            text(&Term::List(vec![
                Term::Int(104),
                Term::Binary(b"i".to_vec())
            ]))
            .as_deref(),
            Some("hi")
        );
        assert_eq!(text(&Term::Int(-1)), None);
    }
}
