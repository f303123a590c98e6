//! The scenario registry: every benchmark scenario, the groups it belongs to, and the
//! context it reports through.
//!
//! A scenario is a function that measures its subjects in interleaved rounds (orbit,
//! then each peer and the BEAM, then orbit again, ...), emits per subject the median of
//! rounds with best, min, max and CPU per unit ([`Ctx::emit_rounds`])
//! and one `"subject": "ratio"` line per goal. Add a scenario by writing a module with a
//! `run(&mut Ctx)` function and listing it in [`SCENARIOS`]; list `runtime` among its
//! groups if it belongs to the runtime suite. `all` runs every scenario.

use crate::report::Reporter;

pub mod cache;
pub mod call;
pub mod call_timer;
#[cfg(feature = "dist")]
pub mod cluster_stage;
pub mod contention;
pub mod counters;
pub mod db;
#[cfg(feature = "dist")]
pub mod dist;
#[cfg(feature = "dist")]
pub mod dist_fragments;
#[cfg(feature = "dist")]
pub mod dist_nodes;
#[cfg(feature = "dist")]
pub mod erpc;
pub mod ets;
pub mod mesh;
pub mod observe;
#[cfg(feature = "dist")]
pub mod pg;
pub mod pingpong;
pub mod pool;
pub mod send;
pub mod spawn;
pub mod stage;
pub mod term;
pub mod timeouts;
pub mod web;

/// What a scenario reports through and how many rounds it runs.
pub struct Ctx {
    /// Where figures go.
    pub rep: Reporter,
    /// Interleaved rounds per subject (the median is the headline, best and spread beside).
    pub rounds: usize,
    /// Scale factor for message and process counts (1.0 = the counts of the issue).
    pub scale: f64,
}

impl Ctx {
    /// `n` scaled by `--scale`, at least 1.
    pub fn n(&self, n: u64) -> u64 {
        ((n as f64 * self.scale) as u64).max(1)
    }

    /// Emits `name` = `a / b` as a goal ratio line when both figures exist.
    pub fn goal(&mut self, scenario: &str, name: &str, a: Option<f64>, b: Option<f64>) {
        self.rep.ratio(scenario, name, a, b);
    }

    /// Emits `subject`'s figures of `metric` from `r`: `metric` = the median of rounds
    /// (the headline), `metric_best`, `metric_min`, `metric_max`, `rounds`, and
    /// `cpu_us_per_UNIT` (median CPU microseconds per unit of work) when recorded, and
    /// the subject's `workers` (`schedulers_S` for the BEAM): [`crate::util::WORKERS`].
    pub fn emit_rounds(
        &mut self,
        scenario: &str,
        subject: &str,
        metric: &str,
        unit: &str,
        r: &crate::util::Rounds,
    ) {
        self.emit_rounds_on(scenario, subject, metric, unit, r, crate::util::WORKERS);
    }

    /// [`emit_rounds`](Self::emit_rounds) for a subject that ran with `workers` worker
    /// threads (or `+S workers:workers`) rather than [`crate::util::WORKERS`].
    pub fn emit_rounds_on(
        &mut self,
        scenario: &str,
        subject: &str,
        metric: &str,
        unit: &str,
        r: &crate::util::Rounds,
        workers: usize,
    ) {
        let xs = r.of(subject);
        if xs.is_empty() {
            return;
        }
        self.emit_opt(scenario, subject, metric, r.median(subject));
        self.emit_opt(
            scenario,
            subject,
            &format!("{metric}_best"),
            r.best(subject),
        );
        self.emit_opt(
            scenario,
            subject,
            &format!("{metric}_min"),
            r.least(subject),
        );
        self.emit_opt(scenario, subject, &format!("{metric}_max"), r.best(subject));
        self.rep.emit(
            scenario,
            subject,
            &format!("{metric}_rounds"),
            xs.len() as f64,
        );
        let cpu = r.cpu_median(subject);
        self.emit_opt(scenario, subject, &format!("cpu_us_per_{unit}"), cpu);
        // Workers / schedulers the subject ran with (`+S N:N` for the BEAM).
        let workers = workers as f64;
        let key = if subject.starts_with("beam") {
            "schedulers_S"
        } else {
            "workers"
        };
        self.rep.emit(scenario, subject, key, workers);
    }

    /// Runs BEAM test `test` (see [`crate::beam::run_one`]) as one round of subject
    /// `beam` in `r`: its rate and CPU microseconds per unit (`n` units). Returns the
    /// other figures it printed.
    pub fn beam_round(
        &self,
        r: &mut crate::util::Rounds,
        test: &str,
        n: u64,
    ) -> Option<crate::beam::Values> {
        let v = crate::beam::run_one(test, n)?;
        r.add("beam", v["rate"]);
        if let Some(c) = v.get("cpu_s") {
            r.add_cpu("beam", c * 1e6 / n.max(1) as f64);
        }
        Some(v)
    }

    /// Emits a figure when it exists.
    pub fn emit_opt(&mut self, scenario: &str, subject: &str, metric: &str, v: Option<f64>) {
        if let Some(v) = v {
            self.rep.emit(scenario, subject, metric, v);
        }
    }

    /// Emits the spread of `xs` (e.g. same-round ratios) as `{metric}_min` and
    /// `{metric}_max`; nothing when `xs` is empty.
    pub fn emit_spread(&mut self, scenario: &str, subject: &str, metric: &str, xs: &[f64]) {
        self.emit_opt(
            scenario,
            subject,
            &format!("{metric}_min"),
            crate::util::least(xs),
        );
        self.emit_opt(
            scenario,
            subject,
            &format!("{metric}_max"),
            crate::util::best(xs),
        );
    }

    /// Emits the 1-minute load average as `host` `loadavg_1m_{at}` (`at`: `start` or
    /// `end`), so a reader sees how busy the machine was around the figures.
    pub fn emit_loadavg(&mut self, scenario: &str, at: &str) {
        let metric = format!("loadavg_1m_{at}");
        self.emit_opt(scenario, "host", &metric, crate::util::loadavg_1m());
    }
}

/// One registered scenario.
pub struct Scenario {
    /// Name given on the command line.
    pub name: &'static str,
    /// Groups (besides `all`) that include it, e.g. `runtime`.
    pub groups: &'static [&'static str],
    /// One line on what it measures.
    pub about: &'static str,
    /// Runs it.
    pub run: fn(&mut Ctx),
}

/// Every scenario, in the order `all` and the groups run them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "web",
        groups: &[],
        about: "orbit-web vs plain axum: Timing's overhead (wrk), websocket memory per idle connection and broadcast fan-out to 10k clients",
        run: web::run,
    },
    Scenario {
        name: "send",
        groups: &["runtime"],
        about: "5M one-way messages, one sender to one receiver",
        run: send::run,
    },
    Scenario {
        name: "pingpong",
        groups: &["runtime"],
        about: "1M round trips between two processes",
        run: pingpong::run,
    },
    Scenario {
        name: "call",
        groups: &["runtime"],
        about: "1M sequential GenServer calls to a counter",
        run: call::run,
    },
    Scenario {
        name: "timeouts",
        groups: &[],
        about: "when call timeouts fire against a silent server (1-20 ms, 1000 callers): lateness, earliest, lost, early; orbit from tasks and processes vs tokio::time::timeout",
        run: timeouts::run,
    },
    Scenario {
        name: "call_timer",
        groups: &[],
        about: "the call scenario's orbit call under each timer design: library, none, fresh Sleep, per-thread spare, task-owned, tokio::time::timeout",
        run: call_timer::run,
    },
    Scenario {
        name: "spawn",
        groups: &["runtime"],
        about: "1M idle processes: spawns/s and resident bytes each",
        run: spawn::run,
    },
    Scenario {
        name: "counters",
        groups: &["runtime"],
        about: "cost of orbit's per-process counters (send, pingpong; off vs on)",
        run: counters::run,
    },
    Scenario {
        name: "contention",
        groups: &[],
        about: "8 senders into one receiver: p50/p99/p99.9 latency, throughput and CPU per message, saturated and paced, vs tokio mpsc and flume",
        run: contention::run,
    },
    Scenario {
        name: "stage",
        groups: &[],
        about: "GenStage pipelines: 5M events producer->consumer and ->producer_consumer->; broadcast, partition",
        run: stage::run,
    },
    Scenario {
        name: "ets",
        groups: &[],
        about: "ETS tables: inserts, 2-reader lookups, memory, GenServer vs table",
        run: ets::run,
    },
    Scenario {
        name: "term",
        groups: &[],
        about:
            "ETF encode/decode: orbit-term vs eetf vs the BEAM; typed serde vs bincode, rmp-serde",
        run: term::run,
    },
    Scenario {
        name: "cache",
        groups: &[],
        about: "ConCache vs moka (TTL on): get, put (1 and 2 writers), get_or_store, isolated update, bytes per entry",
        run: cache::run,
    },
    Scenario {
        name: "db",
        groups: &[],
        about: "PostgreSQL pools on one throwaway server: orbit-db vs deadpool-postgres, bb8-postgres, Postgrex+DBConnection (pool 10, 32 clients, point query)",
        run: db::run,
    },
    Scenario {
        name: "pool",
        groups: &[],
        about: "worker and resource pools vs deadpool, bb8, poolboy, NimblePool; a 2 ms call behind 1 process, a pool, tasks",
        run: pool::run,
    },
    #[cfg(feature = "dist")]
    Scenario {
        name: "dist",
        groups: &[],
        about: "distribution on loopback: two Orbit nodes vs two BEAM nodes (dist_bench.erl); Orbit -> BEAM beside",
        run: dist::run,
    },
    #[cfg(feature = "dist")]
    Scenario {
        name: "pg",
        groups: &["cluster"],
        about: "pg broadcast to 1,000 members over two nodes (500 local, 500 remote): deliveries/s, Orbit vs OTP pg (pg_bench.erl)",
        run: pg::run,
    },
    #[cfg(feature = "dist")]
    Scenario {
        name: "erpc",
        groups: &["cluster"],
        about: "erpc calls/s on loopback: BEAM -> Orbit vs BEAM -> BEAM, Orbit -> Orbit (erpc_bench.erl)",
        run: erpc::run,
    },
    #[cfg(feature = "dist")]
    Scenario {
        name: "dist_fragments",
        groups: &[],
        about: "small round trips' p50/p99 to a node with and without a concurrent 10 MB message stream, DFLAG_FRAGMENTS on and off",
        run: dist_fragments::run,
    },
    #[cfg(feature = "dist")]
    Scenario {
        name: "cluster_stage",
        groups: &["cluster"],
        about: "events/s through a 3-node GenStage pipeline (producer, producer_consumer, consumer on three nodes): Orbit vs real GenStage on three BEAM nodes",
        run: cluster_stage::run,
    },
    Scenario {
        name: "mesh",
        groups: &[],
        about: "the cost of a mesh against N (`orbit lab mesh`): Orbit nodes up to 32 and BEAM nodes up to 8, full/star/ring: time to connect, connections, RSS and idle CPU per node, broadcast latency",
        run: mesh::run,
    },
    Scenario {
        name: "observe",
        groups: &[],
        about: "the dashboard + Prometheus on vs off (send, call, spawn), and top-N of 1M processes over HTTP",
        run: observe::run,
    },
];

/// The scenarios a command-line name selects: one scenario, a group, or `all`.
pub fn select(name: &str) -> Vec<&'static Scenario> {
    SCENARIOS
        .iter()
        .filter(|s| name == "all" || s.name == name || s.groups.contains(&name))
        .collect()
}

/// Every name accepted on the command line.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = SCENARIOS.iter().map(|s| s.name).collect();
    for s in SCENARIOS {
        for g in s.groups {
            if !v.contains(g) {
                v.push(g);
            }
        }
    }
    v.push("all");
    v
}
