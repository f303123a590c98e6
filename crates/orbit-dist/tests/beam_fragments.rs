//! `DFLAG_FRAGMENTS` with a real Erlang node: a 10 MB binary each way arrives intact
//! while small messages from another process keep flowing: they arrive in order, and
//! BEAM -> Orbit they keep arriving while the big one is on the wire; Orbit -> BEAM,
//! small messages queued after the big one (erl frozen, so the big one cannot be out
//! yet) all arrive before it is complete.

mod common;

use std::time::Duration;

use common::*;
use orbit_dist::handshake::flags;
use orbit_term::Term;

const BIG: usize = 10_000_000;

/// An Orbit process registered as `name` that forwards what it receives.
fn inbox(name: &str) -> tokio::sync::mpsc::UnboundedReceiver<Term> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    rt().block_on(async {
        let p = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            loop {
                if let orbit::Message::Msg(t) = ctx.recv().await {
                    if tx.send(t).is_err() {
                        break;
                    }
                }
            }
        })
        .unwrap()
        .pid();
        orbit::register(name, p).unwrap();
    });
    rx
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Term>) -> Term {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a message within 30s")
        .expect("inbox alive")
}

#[test]
fn ten_megabytes_each_way_while_small_messages_flow() {
    let node = node("orbit_frag");
    let me = node.name();
    let rt = rt();
    let mut rx = inbox("frag_inbox");
    // erl: a process streams small {small, N} messages; another sends a marker, then
    // 10 MB of 2s. Then erl waits for Orbit's 10 MB and reports how many of Orbit's
    // small messages came before it, and whether they were in order.
    let code = format!(
        r#"
        register(frag_erl, self()),
        io:format("up~n"),
        pong = net_adm:ping('{me}'),
        Me = self(),
        Small = spawn(fun() -> Loop = fun L(N) when N > 2000 -> ok;
                                           L(N) -> {{frag_inbox, '{me}'}} ! {{small, N}},
                                                   case N rem 50 of 0 -> timer:sleep(1); _ -> ok end,
                                                   L(N + 1) end,
                                     Loop(1) end),
        spawn(fun() -> {{frag_inbox, '{me}'}} ! big_begin,
                       {{frag_inbox, '{me}'}} ! {{big, binary:copy(<<2>>, {BIG})}} end),
        io:format("sent~n"),
        Wait = fun W(Before, Last) ->
            receive
              {{small, N}} when N =:= Last + 1 -> W(Before + 1, N);
              {{small, N}} -> io:format("small out of order ~p after ~p~n", [N, Last]), W(Before, N);
              {{big, B}} -> {{Before, Last, byte_size(B), B =:= binary:copy(<<3>>, {BIG})}}
            after 30000 -> timeout
            end
        end,
        R = Wait(0, 0),
        io:format("big ~p~n", [R]),
        Rest = fun Z(Last) -> receive {{small, N}} when N =:= Last + 1 -> Z(N) after 5000 -> Last end end,
        io:format("smalls ~p~n", [Rest(element(2, R))]),
        receive stop -> ok end.
        "#
    );
    let mut erl = Peer::erl("erl_frag", COOKIE, &code);
    erl.expect("up", 30);
    erl.expect("sent", 30);
    let erlname = erl.name.clone();
    rt.block_on(async {
        let c = node.connection(&erlname).expect("connected");
        assert!(c.flags() & flags::FRAGMENTS != 0, "FRAGMENTS negotiated");
        // BEAM -> Orbit.
        let mut last = 0;
        let mut between = None;
        let mut big_ok = false;
        while !(big_ok && last == 2000) {
            match next(&mut rx).await {
                Term::Tuple(t) if t[0] == Term::atom("small") => {
                    let Term::Int(n) = t[1] else { panic!("{t:?}") };
                    assert_eq!(n, last + 1, "small messages in order");
                    last = n;
                    if let Some(b) = between.as_mut() {
                        *b += 1;
                    }
                }
                Term::Atom(a) if a.as_str() == "big_begin" => between = Some(0),
                Term::Tuple(t) if t[0] == Term::atom("big") => {
                    let Term::Binary(b) = &t[1] else {
                        panic!("big is a binary")
                    };
                    assert_eq!(b.len(), BIG);
                    assert!(b.iter().all(|x| *x == 2), "big arrived intact");
                    assert!(between.is_some(), "big_begin came first (same sender)");
                    eprintln!("smalls between big_begin and big: {between:?}");
                    big_ok = true;
                }
                other => panic!("unexpected {other}"),
            }
        }
        // Orbit -> BEAM, with erl frozen (SIGSTOP) so that it reads nothing: the big
        // one from one process, then, once it is queued (the send returns at once), 300
        // small ones from another. The socket takes a few MB at most while erl does not
        // read, so most of the 10 MB is still queued when the small ones are: every small
        // one must reach erl before the big one is complete.
        signal(&erl, "-STOP");
        let erlname2 = erlname.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        orbit::spawn(move |_ctx: orbit::Context<Term>| async move {
            let b = vec![3u8; BIG];
            let tag = orbit_term::Atom::try_new("big").unwrap();
            orbit_dist::send_named(&erlname, "frag_erl", &(tag, serde_bytes::Bytes::new(&b)))
                .unwrap();
            orbit::spawn(move |_ctx: orbit::Context<Term>| async move {
                let tag = orbit_term::Atom::try_new("small").unwrap();
                for n in 1..=300i64 {
                    orbit_dist::send_named(&erlname2, "frag_erl", &(tag.clone(), n)).unwrap();
                }
                let _ = done_tx.send(());
            })
            .unwrap();
        })
        .unwrap();
        done_rx.await.expect("the small sender finished");
        signal(&erl, "-CONT");
    });
    let l = erl.expect("big ", 60);
    // {SmallsBeforeBig, LastSmall, Size, Intact}
    let inner = l.trim_start_matches("big {").trim_end_matches('}');
    let parts: Vec<&str> = inner.split(',').collect();
    assert_eq!(parts.len(), 4, "{l}");
    assert_eq!(parts[2], BIG.to_string(), "{l}");
    assert_eq!(parts[3], "true", "intact: {l}");
    assert_eq!(
        parts[0], "300",
        "all 300 small messages, queued behind the 10 MB one, overtook it: {l}"
    );
    assert!(
        !erl.seen.iter().any(|s| s.contains("out of order")),
        "{:?}",
        erl.seen
    );
    assert_eq!(erl.expect("smalls ", 30), "smalls 300");
}

/// Sends `kill SIG` to the erl node's OS process.
fn signal(erl: &Peer, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &erl.pid().to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill {sig} failed");
}
