//! Shared helpers for the differential tests against the real BEAM libraries
//! (`../shared/beamlibs`): finding `elixir` and the built libraries, running one
//! long-lived `elixir` script per test that answers one request line with one result
//! line, a fixed proptest seed (overridable with `ORBIT_DIFF_SEED`), and shrinking a
//! failing case against the live oracle.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Default seed of every differential test; `ORBIT_DIFF_SEED=<u64>` overrides it.
pub const DEFAULT_SEED: u64 = 0x0b17_d1ff;

/// The seed in use (printed by the tests so that a failure can be replayed).
pub fn seed() -> u64 {
    std::env::var("ORBIT_DIFF_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// A proptest runner with a deterministic RNG from [`seed`].
pub fn runner() -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed().to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

fn build_script() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ORBIT_BEAMLIBS_BUILD") {
        return Some(PathBuf::from(p));
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../../../shared/beamlibs/build.sh"),
        manifest.join("../../../../shared/beamlibs/build.sh"),
        PathBuf::from("/work/shared/beamlibs/build.sh"),
    ];
    candidates.into_iter().find(|p| p.exists())
}

/// The built libraries' directory (for `ERL_LIBS`), or why the test must be skipped.
pub fn beamlibs() -> Result<PathBuf, String> {
    match Command::new("elixir").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("`elixir` is not on PATH".into()),
    }
    let script = build_script()
        .ok_or("../shared/beamlibs/build.sh not found (set ORBIT_BEAMLIBS_BUILD to its path)")?;
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(dir))
}

/// One `elixir` process running a request/response script: each request is one line
/// on its stdin, each answer one line on its stdout.
pub struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Requests answered so far.
    pub calls: usize,
    dir: PathBuf,
}

impl Oracle {
    /// Starts `script` (Elixir source) with the built libraries, or returns why the test
    /// is skipped. The script must print `ready` once set up.
    pub fn start(name: &str, script: &str) -> Result<Oracle, String> {
        let libs = beamlibs()?;
        let dir = std::env::temp_dir().join(format!("orbit-diff-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{name}.exs"));
        std::fs::write(&path, script).map_err(|e| e.to_string())?;
        let mut child = Command::new("elixir")
            .arg(&path)
            .env("ERL_LIBS", &libs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning elixir: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut o = Oracle {
            child,
            stdin,
            stdout,
            calls: 0,
            dir,
        };
        let first = o.read_line();
        assert_eq!(first, "ready", "the elixir oracle did not start");
        Ok(o)
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading the elixir oracle's answer");
        assert!(!line.is_empty(), "the elixir oracle exited (see stderr)");
        line.trim_end().to_string()
    }

    /// Sends one request line, returns the answer line.
    pub fn ask(&mut self, request: &str) -> String {
        assert!(!request.contains('\n'));
        writeln!(self.stdin, "{request}").expect("writing to the elixir oracle");
        self.stdin.flush().expect("flushing the elixir oracle");
        self.calls += 1;
        self.read_line()
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cases` sequences drawn from `strategy`; `check` returns `Err(description)` when
/// Orbit and the original differ. The first failure is shrunk (proptest's value tree,
/// each candidate checked against the live oracle) and the test panics with the minimal
/// sequence.
pub fn differential<S, F>(name: &str, strategy: S, cases: usize, mut check: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: FnMut(&S::Value) -> Result<(), String>,
{
    let mut runner = runner();
    eprintln!(
        "{name}: seed {} (ORBIT_DIFF_SEED overrides), {cases} cases",
        seed()
    );
    for i in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .expect("generating a sequence");
        let first = match check(&tree.current()) {
            Ok(()) => continue,
            Err(e) => e,
        };
        let mut best = (format!("{:?}", tree.current()), first);
        let mut steps = 0;
        if tree.simplify() {
            while steps < 2000 {
                steps += 1;
                match check(&tree.current()) {
                    Err(e) => {
                        best = (format!("{:?}", tree.current()), e);
                        if !tree.simplify() {
                            break;
                        }
                    }
                    Ok(()) => {
                        if !tree.complicate() {
                            break;
                        }
                    }
                }
            }
        }
        panic!(
            "{name}: case {i} (seed {}) differs from the original; minimal sequence:\n{}\n{}",
            seed(),
            best.0,
            best.1
        );
    }
}
