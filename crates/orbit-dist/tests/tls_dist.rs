//! TLS distribution against real Erlang nodes started with `-proto_dist inet_tls
//! -ssl_dist_optfile F` and mutual certificate verification (`verify verify_peer`,
//! `fail_if_no_peer_cert true`): ping and messages both ways; a plain-TCP node, a node
//! whose certificate no trusted CA signed, and an Orbit dial to such a node are refused.
//! Certificates are generated here with rcgen (a CA, and leaf certificates for
//! `127.0.0.1` signed by it or by a stranger CA).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use orbit_dist::tls::pki_types::{CertificateDer, PrivateKeyDer};
use orbit_dist::{NodeEvent, Options, Ping, TlsOptions};
use orbit_term::Term;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

/// A CA: its certificate and key.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate for 127.0.0.1 / localhost signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.subject_alt_names
        .push(SanType::DnsName("127.0.0.1".try_into().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Files for one node: cert, key, the CA it trusts, and an `-ssl_dist_optfile`.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn write(tag: &str, leaf: &(String, String), trusted: &Ca) -> Files {
        let dir = std::env::temp_dir().join(format!("orbit-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), &leaf.0).unwrap();
        std::fs::write(dir.join("key.pem"), &leaf.1).unwrap();
        std::fs::write(dir.join("ca.pem"), trusted.cert.pem()).unwrap();
        let p = |f: &str| dir.join(f).display().to_string();
        let conf = format!(
            "[{{server, [{{certfile, \"{c}\"}}, {{keyfile, \"{k}\"}}, {{cacertfile, \"{a}\"}},\n\
             {{verify, verify_peer}}, {{fail_if_no_peer_cert, true}}, {{secure_renegotiate, true}}]}},\n\
             {{client, [{{certfile, \"{c}\"}}, {{keyfile, \"{k}\"}}, {{cacertfile, \"{a}\"}},\n\
             {{verify, verify_peer}}, {{secure_renegotiate, true}}]}}].\n",
            c = p("cert.pem"),
            k = p("key.pem"),
            a = p("ca.pem"),
        );
        std::fs::write(dir.join("ssl_dist.conf"), conf).unwrap();
        Files { dir }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The trusted CA of this binary and the Orbit node's files (made once).
fn pki() -> &'static (Ca, (String, String)) {
    static P: std::sync::OnceLock<(Ca, (String, String))> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let ca = new_ca("orbit test CA");
        let l = leaf(&ca);
        (ca, l)
    })
}

fn tls_node() -> orbit_dist::Node {
    let (ca, (cert, key)) = pki();
    let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let roots = vec![ca.cert.der().clone()];
    let opts = Options {
        tls: Some(TlsOptions::new(certs, key, roots)),
        ..Options::cookie(COOKIE)
    };
    node_with("orbit_tls", opts)
}

use orbit_dist::tls::pki_types::pem::PemObject;

/// `erl -name NAME -proto_dist inet_tls -ssl_dist_optfile CONF` (or plain TCP when
/// `conf` is `None`).
fn erl_tls(prefix: &str, conf: Option<&Path>, code: &str) -> Peer {
    let name = unique(prefix);
    let mut cmd = Command::new("erl");
    cmd.args(["-noshell", "-name", &name, "-setcookie", COOKIE]);
    if let Some(conf) = conf {
        cmd.args(["-proto_dist", "inet_tls", "-ssl_dist_optfile"])
            .arg(conf);
    }
    cmd.args(["-eval", code]);
    Peer::command(cmd, name)
}

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

#[test]
fn erl_over_tls_both_ways_with_mutual_verification() {
    let node = tls_node();
    let me = node.name();
    let rt = rt();
    let mut events = node.monitor_nodes();
    let mut rx = inbox("tls_inbox");
    let (ca, _) = pki();
    let files = Files::write("erl", &leaf(ca), ca);
    // erl -> Orbit: ping, then a message to a registered Orbit process, then it waits
    // for a message from Orbit and echoes it back.
    let code = format!(
        "io:format(\"up~n\"), \
         io:format(\"ping ~p~n\", [net_adm:ping('{me}')]), \
         {{tls_inbox, '{me}'}} ! {{hello, self()}}, \
         receive {{echo, X}} -> {{tls_inbox, '{me}'}} ! {{echoed, X}} after 20000 -> io:format(\"no echo~n\") end, \
         io:format(\"proto ~p~n\", [init:get_argument(proto_dist)]), \
         receive stop -> ok end."
    );
    let mut erl = erl_tls("erl_tls", Some(&files.path("ssl_dist.conf")), &code);
    erl.expect("up", 30);
    assert_eq!(erl.expect("ping ", 30), "ping pong");
    let erlname = erl.name.clone();
    rt.block_on(async {
        wait_event(&mut events, 10, |e| {
            *e == NodeEvent::NodeUp(erlname.clone())
        })
        .await;
        let hello = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("hello within 15s")
            .unwrap();
        let Term::Tuple(t) = &hello else {
            panic!("expected {{hello, Pid}}, got {hello}")
        };
        let erl_pid = t[1].clone();
        // Orbit -> erl over the same TLS connection, and the answer comes back.
        let msg = Term::tuple(vec![Term::atom("echo"), Term::Binary(b"over tls".to_vec())]);
        let Term::Pid(wp) = &erl_pid else {
            panic!("expected a pid, got {erl_pid}")
        };
        orbit::send(orbit_dist::convert::pid_from_wire(wp), msg).unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("echo within 15s")
            .unwrap();
        assert_eq!(
            echoed,
            Term::tuple(vec![
                Term::atom("echoed"),
                Term::Binary(b"over tls".to_vec())
            ])
        );
    });
    let l = erl.expect("proto ", 10);
    assert!(l.contains("inet_tls"), "{l}");
    erl.kill();
    rt.block_on(async {
        wait_event(
            &mut events,
            20,
            |e| matches!(e, NodeEvent::NodeDown(n, _) if *n == erlname),
        )
        .await;
    });

    // Orbit dials: a fresh erl TLS node that only waits.
    let mut erl2 = erl_tls(
        "erl_tls_in",
        Some(&files.path("ssl_dist.conf")),
        "io:format(\"up~n\"), receive stop -> ok end.",
    );
    erl2.expect("up", 30);
    let name2 = erl2.name.clone();
    rt.block_on(async {
        assert_eq!(node.ping(&name2).await, Ping::Pong);
    });
}

#[test]
fn plain_tcp_and_untrusted_certificates_are_refused() {
    let node = tls_node();
    let me = node.name();
    let rt = rt();
    let (ca, _) = pki();
    // A plain-TCP erl: its handshake reaches a TLS-only node and is refused.
    let code = format!(
        "io:format(\"up~n\"), io:format(\"ping ~p~n\", [net_adm:ping('{me}')]), receive stop -> ok end."
    );
    let mut plain = erl_tls("erl_plain", None, &code);
    plain.expect("up", 30);
    assert_eq!(plain.expect("ping ", 30), "ping pang");
    // Orbit dialing a plain-TCP node fails (the TLS handshake gets no answer it can
    // use), within the setup time rather than hanging.
    let plain_name = plain.name.clone();
    rt.block_on(async {
        let t0 = std::time::Instant::now();
        assert_eq!(node.ping(&plain_name).await, Ping::Pang);
        assert!(t0.elapsed() < Duration::from_secs(15));
    });

    // A TLS erl whose certificate a stranger CA signed (it trusts our CA, so only its
    // own certificate is wrong): refused both ways.
    let stranger = new_ca("stranger CA");
    let files = Files::write("untrusted", &leaf(&stranger), ca);
    let mut bad = erl_tls("erl_untrusted", Some(&files.path("ssl_dist.conf")), &code);
    bad.expect("up", 30);
    assert_eq!(bad.expect("ping ", 30), "ping pang");
    let bad_name = bad.name.clone();
    rt.block_on(async {
        assert_eq!(node.ping(&bad_name).await, Ping::Pang);
        assert!(!node.list().contains(&bad_name));
        assert!(!node.list().contains(&plain_name));
    });
}
