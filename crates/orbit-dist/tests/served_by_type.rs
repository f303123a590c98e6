//! `remote_server::<G>()` serves every process of type `G` to other nodes, by whatever
//! name it is registered under and after a restart under a new pid, with no
//! `serve_gen_server` per name; a GenServer of a type never registered stays unserved
//! (a BEAM caller gets no reply, as from a BEAM process that is not a gen_server).

mod common;

use common::*;

async fn start_counter(name: &str, total: i64) -> orbit::ServerRef<Counter> {
    orbit::gen_server::start_with(
        Counter(total),
        orbit::gen_server::StartOptions {
            name: Some(name.into()),
            link: false,
            timeout: None,
        },
    )
    .await
    .expect("start the counter")
}

/// A GenServer type nobody registers for the wire.
struct Unserved;
impl orbit::SimpleServer for Unserved {
    type Call = i64;
    type Reply = i64;
    type Cast = ();
    fn call(&mut self, n: i64) -> i64 {
        n
    }
}

fn elixir_calls(me: &str, names: &[&str]) -> Vec<String> {
    let calls: String = names
        .iter()
        .map(|n| {
            format!(
                r#"r = try do
                     GenServer.call({{:{n}, orbit}}, %{{op: "add", n: 2}}, 1000)
                   catch
                     :exit, {{:timeout, _}} -> :timeout
                   end
                   IO.puts("{n} #{{inspect(r)}}")
                "#
            )
        })
        .collect();
    let code = format!("orbit = :\"{me}\"\ntrue = Node.connect(orbit)\n{calls}IO.puts(\"done\")");
    let mut ex = Peer::elixir("typed_ex", COOKIE, &code);
    ex.expect("done", 60);
    ex.seen.clone()
}

#[test]
fn a_registered_type_is_served_under_any_name_and_after_a_restart() {
    let node = node("orbit_typed");
    let me = node.name();
    let rt = rt();
    if std::process::Command::new("elixir")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP a_registered_type_is_served_under_any_name_and_after_a_restart: no elixir");
        return;
    }
    orbit_dist::remote_server::<Counter>();
    let a = rt.block_on(start_counter("typed_a", 0));
    rt.block_on(start_counter("typed_b", 40));
    rt.block_on(async {
        orbit::gen_server::start_with(
            Unserved,
            orbit::gen_server::StartOptions {
                name: Some("typed_unserved".into()),
                link: false,
                timeout: None,
            },
        )
        .await
        .expect("start")
    });
    let seen = elixir_calls(&me, &["typed_a", "typed_b", "typed_unserved"]);
    assert!(seen.contains(&"typed_a 2".to_string()), "{seen:?}");
    assert!(seen.contains(&"typed_b 42".to_string()), "{seen:?}");
    assert!(
        seen.contains(&"typed_unserved :timeout".to_string()),
        "{seen:?}"
    );

    // A restart: a new process under the same name, never seen by the wire.
    rt.block_on(async {
        a.stop(orbit::ExitReason::Normal, std::time::Duration::from_secs(5))
            .await
            .expect("stop the counter");
        let b = start_counter("typed_a", 100).await;
        assert_ne!(b.pid(), a.pid());
    });
    let seen = elixir_calls(&me, &["typed_a"]);
    assert!(seen.contains(&"typed_a 102".to_string()), "{seen:?}");
}
