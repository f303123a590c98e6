//! `orbit lab --scenario db` end to end against a throwaway PostgreSQL: one result per
//! pool size, no failed request, a verdict naming a knee among the sizes tried.

use std::process::Command;

use serde_json::Value;

#[test]
fn lab_db_marks_a_knee_among_the_pool_sizes() {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.path().join("bin/initdb").exists())
        })
        .unwrap_or(false);
    if !installed && std::env::var_os("ORBIT_LAB_DATABASE_URL").is_none() {
        println!("SKIP: no PostgreSQL (scripts/test installs the Debian package postgresql)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args([
            "lab",
            "--scenario",
            "db",
            "--duration",
            "300ms",
            "--clients",
            "20",
            "--json",
        ])
        .output()
        .expect("run orbit lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "orbit lab db failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let results: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "result").collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut sizes = vec![1, cores, 2 * cores, 10, 25, 50];
    sizes.sort_unstable();
    sizes.dedup();
    let names: Vec<String> = sizes.iter().map(|s| format!("pool {s}")).collect();
    let got: Vec<&str> = results
        .iter()
        .filter_map(|r| r["variant"].as_str())
        .collect();
    assert_eq!(got, names);
    for r in &results {
        assert!(r["rps"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    }
    let verdict = lines
        .iter()
        .find(|v| v["kind"] == "verdict" && v["scenario"] == "db")
        .expect("a verdict");
    let knee = verdict["facts"]["knee_pool_size"].as_u64().expect("knee") as usize;
    assert!(sizes.contains(&knee), "{verdict}");
    assert_eq!(verdict["facts"]["errors"].as_u64(), Some(0), "{verdict}");
    let text = verdict["verdict"].as_str().unwrap_or_default();
    assert!(text.contains("knee"), "{text}");
}
