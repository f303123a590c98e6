//! Running the BEAM side of a comparison: compiles `shared/beam/*.erl` with `erlc`, runs
//! an Erlang module or snippet with `erl -noshell`, and parses its `key value` output.
//!
//! The Erlang sources are this crate's `beam/` folder (copies of `../shared/beam`, changed
//! for issue 17: one test per run, `--scale` honoured, CPU printed); the shared folder
//! (`../shared/beam`, or `ORBIT_SHARED`) is the fallback. Every `erl` runs with `+S N:N`,
//! N = [`crate::util::WORKERS`], the Rust subjects' worker count. [`run_one`] runs one
//! test per call, so scenarios run the BEAM inside every round; the modules are
//! compiled once per bench invocation into a temporary directory. [`run_elixir`] runs
//! this crate's `beam/*.exs` scripts against the real libraries (ConCache, poolboy,
//! NimblePool, GenStage) built by `shared/beamlibs/build.sh` ([`beamlibs`]). No figure
//! is a constant: every BEAM figure printed comes from a run in the same invocation.
//!
//! When `erl` (or `elixir`) is not on the PATH nothing here panics: one note goes to
//! stderr, the functions return `None`, and scenarios skip their beam subject and ratios.
//!
//! Output format understood by [`parse_kv`]: whitespace-separated tokens on each line,
//! read as `key value` pairs, e.g. `spawn_per_s 120000 bytes_per_idle_process 2684`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Figures parsed from Erlang output, by key.
pub type Values = BTreeMap<String, f64>;

/// How long one `erl` run may take before it is killed.
pub const ERL_TIMEOUT: Duration = Duration::from_secs(600);

/// The emulator flags that turn a BEAM node's schedulers' busy wait off (the BEAM spins
/// before sleeping by default; Orbit's runtime does not).
pub const NO_BUSY_WAIT: [&str; 6] = ["+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"];

/// The folder holding the shared Erlang sources (`beam_bench.erl`, ...), if found.
pub fn beam_src_dir() -> Option<PathBuf> {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("beam");
    let from_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/beam");
    let mut candidates = vec![own, from_manifest];
    if let Some(s) = std::env::var_os("ORBIT_SHARED") {
        let s = PathBuf::from(s);
        candidates.push(s.join("beam"));
        candidates.push(s);
    }
    candidates
        .into_iter()
        .find(|d| d.join("beam_bench.erl").is_file())
        .map(|d| d.canonicalize().unwrap_or(d))
}

/// True when `erl` and `erlc` can be run.
pub fn erl_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        ["erl", "erlc"].iter().all(|tool| {
            std::env::var_os("PATH")
                .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        })
    })
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("orbit-bench-beam-{}", std::process::id()))
}

/// Compiles every `*.erl` of the shared folder once; returns the folder of the `.beam`s.
pub fn compiled_dir() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !erl_available() {
            return Err("erl/erlc not found on PATH".into());
        }
        let src = beam_src_dir().ok_or_else(|| {
            "shared/beam not found (set ORBIT_SHARED to the shared folder)".to_string()
        })?;
        let out = temp_dir();
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
            .map_err(|e| format!("{}: {e}", src.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "erl"))
            .collect();
        files.sort();
        let status = Command::new("erlc")
            .arg("-o")
            .arg(&out)
            .args(&files)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("erlc: {e}"))?;
        if !status.success() {
            return Err(format!("erlc failed ({status})"));
        }
        Ok(out)
    })
    .as_ref()
    .map(|p| p.as_path())
    .map_err(Clone::clone)
}

/// Runs `erl -pa DIR -noshell +P 4000000 ARGS -s init stop` and returns its standard
/// output. `+P` lifts the default process limit (262,144), which the 1M-process spawn
/// test needs; crash dumps are switched off.
///
/// `args` are extra `erl` arguments, e.g. `["-s", "beam_bench", "main"]`, `["-eval",
/// "..."]` or `["-sname", "a"]`. Fails (never panics) when erl is missing, the run fails
/// or it exceeds [`ERL_TIMEOUT`].
pub fn run_erl(args: &[&str]) -> Result<String, String> {
    match run_erl_partial(args)? {
        (true, out) => Ok(out),
        (false, out) => Err(format!("erl failed; its output: {out}")),
    }
}

/// Like [`run_erl`], but a failed run still hands back what it printed: `(ok, stdout)`.
pub fn run_erl_partial(args: &[&str]) -> Result<(bool, String), String> {
    let dir = compiled_dir()?;
    let mut child = Command::new("erl")
        .arg("-pa")
        .arg(dir)
        .args(["-noshell", "+P", "4000000"])
        .arg("+S")
        .arg(format!("{0}:{0}", crate::util::WORKERS))
        .args(args)
        .args(["-s", "init", "stop"])
        .env("ERL_CRASH_DUMP_SECONDS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("erl: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if t0.elapsed() > ERL_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("erl timed out after {ERL_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("erl: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    Ok((status.success(), out))
}

/// Parses `key value [key value ...]` lines; tokens that do not form a numeric pair are
/// skipped. A later duplicate key wins.
pub fn parse_kv(text: &str) -> Values {
    let mut values = Values::new();
    for line in text.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        let mut i = 0;
        while i + 1 < toks.len() {
            match toks[i + 1].parse::<f64>() {
                Ok(v) if toks[i].parse::<f64>().is_err() => {
                    values.insert(toks[i].to_string(), v);
                    i += 2;
                }
                _ => i += 1,
            }
        }
    }
    values
}

/// One BEAM test's figures from its own `erl` run: `rate` (operations per second) and
/// `cpu_s` (CPU seconds of the whole emulator during the measured part), plus
/// test-specific keys. `test` is one of `pingpong`, `oneway`, `gen_calls`, `spawn` of
/// `beam_bench:run/1`. `None` (with a note on stderr) when erl is missing or the run
/// failed.
pub fn run_one(test: &str, n: u64) -> Option<Values> {
    if !erl_available() {
        static NOTE: OnceLock<()> = OnceLock::new();
        NOTE.get_or_init(|| {
            eprintln!("note: erl not found on PATH; skipping the beam subjects and their ratios")
        });
        return None;
    }
    match run_erl(&["-s", "beam_bench", "run", test, &n.to_string()]) {
        Ok(out) => Some(parse_kv(&out)).filter(|v| v.contains_key("rate")),
        Err(e) => {
            eprintln!("note: beam_bench run {test} failed: {e}");
            None
        }
    }
}

/// The compiled real BEAM libraries (ConCache, GenStage, poolboy, NimblePool): runs
/// `shared/beamlibs/build.sh` once per invocation and caches its output folder (for
/// `ERL_LIBS`). `None` (with one note) when `elixir` or the script is missing.
pub fn beamlibs() -> Option<&'static str> {
    static LIBS: OnceLock<Option<String>> = OnceLock::new();
    LIBS.get_or_init(|| {
        let on_path = |tool: &str| {
            std::env::var_os("PATH")
                .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        };
        if !on_path("elixir") {
            eprintln!(
                "note: elixir not found on PATH; skipping the real-library BEAM subjects (ConCache, poolboy, NimblePool, GenStage) and their ratios"
            );
            return None;
        }
        // `../shared` of the repository root, or of the folder holding a worktree.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut candidates = vec![
            root.join("../../../shared/beamlibs/build.sh"),
            root.join("../../../../shared/beamlibs/build.sh"),
        ];
        if let Some(s) = std::env::var_os("ORBIT_SHARED") {
            candidates.insert(0, PathBuf::from(s).join("beamlibs/build.sh"));
        }
        let Some(script) = candidates.into_iter().find(|p| p.is_file()) else {
            eprintln!("note: shared/beamlibs/build.sh not found (set ORBIT_SHARED); skipping the real-library BEAM subjects");
            return None;
        };
        let out = Command::new(&script).stdin(Stdio::null()).output().ok()?;
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || dir.is_empty() {
            eprintln!(
                "note: {} failed; skipping the real-library BEAM subjects",
                script.display()
            );
            return None;
        }
        Some(dir)
    })
    .as_deref()
}

/// Runs this crate's `beam/SCRIPT` with `elixir --erl "+S N:N"` and the real libraries on
/// `ERL_LIBS`, and parses its `key value` output. `None` (with a note) on any failure.
pub fn run_elixir(script: &str, args: &[&str]) -> Option<Values> {
    let libs = beamlibs()?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("beam")
        .join(script);
    let out = Command::new("elixir")
        .arg("--erl")
        .arg(format!("+S {0}:{0}", crate::util::WORKERS))
        .arg(&path)
        .args(args)
        .env("ERL_LIBS", libs)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| eprintln!("note: elixir {script}: {e}"))
        .ok()?;
    if !out.status.success() {
        eprintln!("note: elixir {script} failed ({})", out.status);
        return None;
    }
    Some(parse_kv(&String::from_utf8_lossy(&out.stdout)))
}

/// Starts this crate's `beam/SCRIPT` as [`run_elixir`] does, with its stdout piped, for
/// a caller that acts on lines as they come (a script printing a marker when its
/// measured part starts). `None` (with a note) when it cannot start.
pub fn spawn_elixir(script: &str, args: &[&str]) -> Option<std::process::Child> {
    let libs = beamlibs()?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("beam")
        .join(script);
    Command::new("elixir")
        .arg("--erl")
        .arg(format!("+S {0}:{0}", crate::util::WORKERS))
        .arg(&path)
        .args(args)
        .env("ERL_LIBS", libs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| eprintln!("note: elixir {script}: {e}"))
        .ok()
}

/// Removes the temporary folder of compiled modules, if one was made.
pub fn cleanup() {
    let _ = std::fs::remove_dir_all(temp_dir());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_skips_noise() {
        let v = parse_kv(
            "pingpong_roundtrips_per_s 1300000\nspawn_per_s 120000 bytes_per_idle_process 2684\nnoise here\nets_inserts_per_s 1 ets_lookups_per_s_2readers 2.5\n",
        );
        assert_eq!(v["pingpong_roundtrips_per_s"], 1_300_000.0);
        assert_eq!(v["spawn_per_s"], 120_000.0);
        assert_eq!(v["bytes_per_idle_process"], 2684.0);
        assert_eq!(v["ets_lookups_per_s_2readers"], 2.5);
        assert_eq!(v.len(), 5);
    }
}
