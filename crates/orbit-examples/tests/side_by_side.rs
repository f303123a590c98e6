//! The side-by-side app (docs/side-by-side.md) prints the same lines in Elixir and in
//! Orbit, including a remote call each way: the Orbit node calls the Elixir node's
//! counter and the Elixir node calls the Orbit node's.
//!
//! Runs `docs/side-by-side/app.exs` with `elixir` (skipped, with a message, when `elixir`
//! or the beamlibs build is missing) and the `side_by_side` example binary, which
//! `cargo test -p orbit-examples` builds (with `--test side_by_side` alone, build it first:
//! `cargo build -p orbit-examples --example side_by_side`; a binary older than its source
//! fails the test rather than compare stale output).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TIMEOUT: Duration = Duration::from_secs(120);

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `ERL_LIBS` for poolboy and ConCache: `ORBIT_BEAMLIBS` names the beamlibs folder; else
/// `../shared/beamlibs` beside the checkout (a worktree under /work/wt or the main one).
fn beamlibs() -> Result<String, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let build = std::env::var_os("ORBIT_BEAMLIBS")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["../../../shared/beamlibs", "../../../../shared/beamlibs"]
                .iter()
                .map(|p| manifest.join(p)),
        )
        .map(|p| p.join("build.sh"))
        .find(|p| p.exists())
        .ok_or("no beamlibs build.sh (set ORBIT_BEAMLIBS to ../shared/beamlibs)")?;
    let out = std::process::Command::new(&build)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", build.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            build.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The example binary beside this test's (`target/<profile>/examples/side_by_side`).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("examples/side_by_side");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p orbit-examples --example side_by_side`",
        bin.display()
    );
    let src = workspace().join("crates/orbit-examples/examples/side_by_side.rs");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    assert!(
        modified(&bin) >= modified(&src),
        "{} is older than its source: rebuild it with `cargo build -p orbit-examples --example side_by_side`",
        bin.display()
    );
    bin
}

/// Starts `cmd` with piped stdin/stdout; `NAME`/`PEER` make it a node that calls `peer`.
fn start(mut cmd: Command, name: &str, peer: &str) -> Child {
    cmd.env("NAME", name)
        .env("PEER", peer)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// The lines `child` prints up to and including its `remote counter:` line.
async fn lines_until_remote(child: &mut Child, who: &str) -> Vec<String> {
    let out = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(out).lines();
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(l))) => {
                let done = l.starts_with("remote counter:");
                seen.push(l);
                if done {
                    return seen;
                }
            }
            other => panic!("{who}: no `remote counter:` line within {TIMEOUT:?} ({other:?}); printed so far: {seen:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elixir_and_orbit_print_the_same_results_and_call_each_other() {
    if !on_path("elixir") {
        eprintln!(
            "SKIPPED: elixir is not on PATH (install elixir to compare the side-by-side app)"
        );
        return;
    }
    let libs = match beamlibs() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED: the Elixir app needs poolboy and ConCache: {e}");
            return;
        }
    };
    let bin = example_binary();
    // The Elixir app starts its node at run time (Node.start), which needs an EPMD;
    // `epmd -daemon` is a no-op when one runs (the Orbit node's embedded one included).
    if on_path("epmd") {
        let _ = std::process::Command::new("epmd").arg("-daemon").status();
    }
    let id = std::process::id();
    let orbit_name = format!("orbit_sbs_{id}@127.0.0.1");
    let ex_name = format!("ex_sbs_{id}@127.0.0.1");

    let mut ex_cmd = Command::new("elixir");
    ex_cmd
        .arg(workspace().join("docs/side-by-side/app.exs"))
        .env("ERL_LIBS", &libs);
    let mut ex = start(ex_cmd, &ex_name, &orbit_name);
    let mut orbit = start(Command::new(&bin), &orbit_name, &ex_name);

    let (ex_lines, orbit_lines) = tokio::join!(
        lines_until_remote(&mut ex, "the Elixir app"),
        lines_until_remote(&mut orbit, "the Orbit app")
    );
    // Both have called each other: closing stdin ends them.
    drop(ex.stdin.take());
    drop(orbit.stdin.take());
    for (child, who) in [(&mut ex, "elixir"), (&mut orbit, "orbit")] {
        let status = tokio::time::timeout(TIMEOUT, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{who} did not exit after stdin closed"))
            .expect("wait");
        assert!(status.success(), "{who} exited with {status}");
    }

    assert_eq!(
        orbit_lines, ex_lines,
        "Orbit's output differs from Elixir's"
    );
    assert_eq!(
        orbit_lines,
        [
            "counter: 6",
            "pool: 49",
            "tasks: [1, 4, 9, 16, 25]",
            "cache: hello",
            "cache after ttl: nil",
            "remote counter: 6",
        ]
    );
}
