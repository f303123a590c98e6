//! `orbit node --no-connect-all`: the node tells peers it keeps out of the mesh. A real
//! `erl` node asks it what Orbit's mesh asks (`application:get_env(kernel,
//! connect_all)` through `rex`) and gets `{ok,false}`, and `{ok,true}` without the flag.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const COOKIE: &str = "orbit_node_connect_all";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn erl_available() -> bool {
    Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .status()
        .is_ok_and(|s| s.success())
}

/// What an `erl` node gets for `get_env(kernel, connect_all)` from an `orbit node`.
fn answer(flag: bool) -> String {
    let name = format!(
        "nca{}_{}@127.0.0.1",
        if flag { "f" } else { "t" },
        std::process::id()
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orbit"));
    cmd.args(["node", "--name", &name, "--cookie", COOKIE]);
    if flag {
        cmd.arg("--no-connect-all");
    }
    let mut node = Killed(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start orbit node"),
    );
    let out = node.0.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(out)
        .read_line(&mut first)
        .expect("read the node's first line");
    assert!(first.starts_with("started "), "{first}");
    let code = format!(
        "R = gen_server:call({{rex, '{name}'}}, {{call, application, get_env, [kernel, connect_all], user}}, 10000), \
         io:format(\"~p~n\", [R]), halt()."
    );
    let o = Command::new("erl")
        .args([
            "-noshell",
            "-name",
            &format!("ncaerl_{}@127.0.0.1", std::process::id()),
            "-setcookie",
            COOKIE,
            "-eval",
            &code,
        ])
        .output()
        .expect("run erl");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn no_connect_all_is_what_peers_are_told() {
    if !erl_available() {
        println!("SKIP orbit node --no-connect-all: `erl` is not on PATH");
        return;
    }
    assert_eq!(answer(true), "{ok,false}");
    assert_eq!(answer(false), "{ok,true}");
}
