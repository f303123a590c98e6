//! The kernel's scheduler counters of this process's threads, from
//! `/proc/self/task/TID/sched` and `.../comm`: how often each thread was switched out
//! voluntarily (it parked: a wake-up to come), involuntarily (preempted), and moved to
//! another CPU, and the CPU time it ran. A snapshot before and after a round, grouped by thread name, says what a
//! round's threads did besides the work: whether the two workers of a GenServer call
//! round ping-ponged (a park and a wake-up per call) or shared one worker, and whether
//! another runtime's threads (the dashboard's) woke during the round.
//!
//! Reading costs a few hundred microseconds: take snapshots outside the timed part.

use std::collections::HashMap;

/// One thread's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Times switched out while waiting (parks, blocking reads).
    pub voluntary: u64,
    /// Times preempted.
    pub involuntary: u64,
    /// Moves to another CPU.
    pub migrations: u64,
    /// CPU time run, nanoseconds (`se.sum_exec_runtime`).
    pub cpu_ns: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.voluntary += o.voluntary;
        self.involuntary += o.involuntary;
        self.migrations += o.migrations;
        self.cpu_ns += o.cpu_ns;
    }

    fn since(self, before: Counts) -> Counts {
        Counts {
            voluntary: self.voluntary.saturating_sub(before.voluntary),
            involuntary: self.involuntary.saturating_sub(before.involuntary),
            migrations: self.migrations.saturating_sub(before.migrations),
            cpu_ns: self.cpu_ns.saturating_sub(before.cpu_ns),
        }
    }
}

/// Every thread of this process: `tid -> (name, counters)`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(HashMap<u64, (String, Counts)>);

impl Snapshot {
    /// Reads every thread's counters now (threads whose files vanish while being read
    /// are left out; an unreadable `/proc` gives an empty snapshot).
    pub fn now() -> Snapshot {
        let mut out = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return Snapshot(out);
        };
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let p = e.path();
            let (Ok(sched), Ok(comm)) = (
                std::fs::read_to_string(p.join("sched")),
                std::fs::read_to_string(p.join("comm")),
            ) else {
                continue;
            };
            out.insert(tid, (comm.trim().to_string(), parse(&sched)));
        }
        Snapshot(out)
    }

    /// What the threads alive in both snapshots did between them, summed per thread name
    /// for the names `pick` accepts (threads started or ended in between are left out).
    pub fn since(&self, before: &Snapshot, pick: impl Fn(&str) -> bool) -> Counts {
        let mut sum = Counts::default();
        for (tid, (name, now)) in &self.0 {
            if !pick(name) {
                continue;
            }
            if let Some((_, then)) = before.0.get(tid) {
                sum.add(now.since(*then));
            }
        }
        sum
    }
}

/// The counters of one `sched` file (0 for a field it lacks).
fn parse(sched: &str) -> Counts {
    let mut c = Counts::default();
    for line in sched.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "se.sum_exec_runtime" {
            // Milliseconds with a fraction.
            c.cpu_ns = v.parse::<f64>().map_or(0, |ms| (ms * 1e6).max(0.0) as u64);
            continue;
        }
        let v = v.parse::<u64>().unwrap_or(0);
        match k {
            "nr_voluntary_switches" => c.voluntary = v,
            "nr_involuntary_switches" => c.involuntary = v,
            "se.nr_migrations" => c.migrations = v,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_and_ignores_the_rest() {
        let text = "bash (10850, #threads: 1)\n---\nse.exec_start :  1.5\n\
                    se.sum_exec_runtime : 64.027653\n\
                    se.nr_migrations : 16\nnr_switches : 197\n\
                    nr_voluntary_switches : 166\nnr_involuntary_switches : 31\n";
        assert_eq!(
            parse(text),
            Counts {
                voluntary: 166,
                involuntary: 31,
                migrations: 16,
                cpu_ns: 64_027_653,
            }
        );
        assert_eq!(parse("garbage"), Counts::default());
    }

    #[test]
    fn a_parked_thread_counts_its_voluntary_switches() {
        // A thread that sleeps 20 times switches out at least 20 times (a sleep always
        // blocks; a channel receive may not, std's channels spin before they park).
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("sched-test-pp".into())
            .spawn(move || {
                let _ = ready_tx.send(());
                if go_rx.recv().is_ok() {
                    for _ in 0..20 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    let _ = done_tx.send(());
                }
                // Stays alive (and listed in /proc) until the test has its snapshot.
                let _ = go_rx.recv();
            })
            .unwrap();
        ready_rx.recv().unwrap();
        let before = Snapshot::now();
        go_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        let after = Snapshot::now();
        drop(go_tx);
        t.join().unwrap();
        let c = after.since(&before, |n| n == "sched-test-pp");
        assert!(c.voluntary >= 20, "{c:?}");
        assert_eq!(
            after.since(&before, |n| n == "no-such-thread"),
            Counts::default()
        );
    }
}
