//! The service seam with a real `erl` peer: a service registered under a name gets the
//! `$gen_call`s, casts and plain messages sent to that name, in order and once each; a
//! monitor on its name is accepted while it is registered and answered `noproc` once
//! it is not; registering a name again replaces the service.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use orbit_dist::service::{self, Inbound, Service, ServiceRequest};
use orbit_term::Term;
use tokio::sync::mpsc;

/// Answers calls with `{Tag, Request}` and reports everything it receives.
struct Probe {
    tag: &'static str,
    seen: mpsc::UnboundedSender<String>,
}

impl Service for Probe {
    fn message(&self, msg: Inbound<'_>) {
        let what = match msg.request() {
            Some(ServiceRequest::Call(c)) => {
                c.reply(&Term::tuple(vec![
                    Term::atom(self.tag),
                    c.request().clone(),
                ]));
                format!("call {}", c.request())
            }
            Some(ServiceRequest::Cast(t)) => format!("cast {t}"),
            Some(ServiceRequest::Info(t)) => format!("info {t}"),
            None => "undecodable".into(),
        };
        let _ = self.seen.send(format!("{} {what}", msg.name));
    }
}

#[test]
fn a_registered_service_gets_its_messages_and_can_be_replaced() {
    let node = node("orbit_seam");
    let me = node.name();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        tag: "one",
        seen: tx.clone(),
    });
    assert!(service::register("seam_probe", probe).unwrap().is_none());
    let code = format!(
        "Orbit = '{me}', true = net_kernel:connect_node(Orbit), \
         io:format(\"call ~p~n\", [gen_server:call({{seam_probe, Orbit}}, hello, 5000)]), \
         gen_server:cast({{seam_probe, Orbit}}, c1), {{seam_probe, Orbit}} ! m1, \
         M = erlang:monitor(process, {{seam_probe, Orbit}}), \
         receive {{'DOWN', M, _, _, R}} -> io:format(\"down ~p~n\", [R]) \
         after 500 -> io:format(\"alive~n\") end, \
         io:get_line(\"\"), \
         io:format(\"call2 ~p~n\", [gen_server:call({{seam_probe, Orbit}}, again, 5000)]), \
         io:get_line(\"\"), \
         io:format(\"gone ~p~n\", [catch gen_server:call({{seam_probe, Orbit}}, x, 2000)]), \
         halt()."
    );
    let mut erl = Peer::erl("erl_seam", COOKIE, &code);
    assert_eq!(erl.expect("call ", 20), "call {one,hello}");
    let got: Vec<String> = rt().block_on(async {
        let mut v = Vec::new();
        for _ in 0..3 {
            let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the service hears each message")
                .unwrap();
            v.push(m);
        }
        v
    });
    assert_eq!(
        got,
        vec![
            "seam_probe call hello",
            "seam_probe cast c1",
            "seam_probe info m1"
        ]
    );
    // A monitor on a registered service's name is accepted (no DOWN).
    let l = erl.expect("", 10);
    assert_eq!(l, "alive", "no DOWN for a live service");

    // Replaced: the new service answers.
    let old = service::register(
        "seam_probe",
        Arc::new(Probe {
            tag: "two",
            seen: tx,
        }),
    )
    .unwrap();
    assert!(old.is_some(), "the first service is returned");
    erl.say("");
    assert_eq!(erl.expect("call2 ", 10), "call2 {two,again}");
    rt().block_on(async {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(m.unwrap().unwrap(), "seam_probe call again");
    });

    // Unregistered: the name is unknown again, the call exits with noproc.
    assert!(service::unregister("seam_probe").is_some());
    erl.say("");
    let gone = erl.expect("gone ", 10);
    assert!(gone.contains("noproc"), "{gone}");
    rt().block_on(async {
        assert!(rx.try_recv().is_err(), "nothing after unregister");
    });
}
