//! Pools, caches, stages, links, supervisors and named processes, as the dashboard
//! shows them: read back from the Prometheus exposition, so the page and `/metrics`
//! never disagree and a pool is shown whatever its worker type.
//!
//! Contract: [`group`] parses the exposition with a Prometheus text parser and groups
//! every `orbit_pool_*`, `orbit_cache_*`, `orbit_stage_*`, `orbit_dist_*`,
//! `orbit_supervisor_*` and `orbit_process_*` sample by its instance label (`pool`,
//! `cache`, `stage`, `peer`, `supervisor`/`child`, `name`); a field is the metric name
//! without its prefix (a histogram gives `NAME_count` and `NAME_mean`). Samples it does
//! not understand are skipped, never an error.

use std::collections::BTreeMap;

use prometheus_parse::{Scrape, Value};
use serde::Serialize;

/// Instance → field → value.
pub type Instances = BTreeMap<String, BTreeMap<String, f64>>;

/// The grouped series.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resources {
    /// Pools by `pool` label.
    pub pools: Instances,
    /// Caches by `cache` label.
    pub caches: Instances,
    /// Stages by `stage` label.
    pub stages: Instances,
    /// Distribution links by `peer` label.
    pub links: Instances,
    /// Supervisor children by `supervisor/child`.
    pub supervisors: Instances,
    /// Named processes by `name`.
    pub named: Instances,
}

/// Groups an exposition; see the module docs.
pub fn group(exposition: &str) -> Resources {
    let mut r = Resources::default();
    let lines = exposition.lines().map(|l| Ok(l.to_string()));
    let Ok(scrape) = Scrape::parse(lines) else {
        return r;
    };
    // Histogram sums arrive as separate samples named `NAME_sum`.
    let mut sums: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for s in &scrape.samples {
        let Some((kind, prefix, label)) = [
            ("pools", "orbit_pool_", "pool"),
            ("caches", "orbit_cache_", "cache"),
            ("stages", "orbit_stage_", "stage"),
            ("links", "orbit_dist_", "peer"),
            ("supervisors", "orbit_supervisor_", "supervisor"),
            ("named", "orbit_process_", "name"),
        ]
        .into_iter()
        .find(|(_, p, _)| s.metric.starts_with(p)) else {
            continue;
        };
        let Some(instance) = s.labels.get(label) else {
            continue;
        };
        let instance = match s.labels.get("child") {
            Some(child) if kind == "supervisors" => format!("{instance}/{child}"),
            _ => instance.to_string(),
        };
        let field = s.metric[prefix.len()..].to_string();
        let map = match kind {
            "pools" => &mut r.pools,
            "caches" => &mut r.caches,
            "stages" => &mut r.stages,
            "links" => &mut r.links,
            "supervisors" => &mut r.supervisors,
            _ => &mut r.named,
        };
        let entry = map.entry(instance.clone()).or_default();
        match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                if let Some(base) = field.strip_suffix("_sum") {
                    sums.insert((kind.to_string(), instance, base.to_string()), *v);
                } else {
                    entry.insert(field, *v);
                }
            }
            Value::Histogram(buckets) => {
                let count = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
                entry.insert(format!("{field}_count"), count);
            }
            Value::Summary(_) => {}
        }
    }
    for ((kind, instance, base), sum) in sums {
        let map = match kind.as_str() {
            "pools" => &mut r.pools,
            "caches" => &mut r.caches,
            "stages" => &mut r.stages,
            "links" => &mut r.links,
            "supervisors" => &mut r.supervisors,
            _ => &mut r.named,
        };
        let Some(entry) = map.get_mut(&instance) else {
            continue;
        };
        if let Some(&count) = entry.get(&format!("{base}_count")) {
            if count > 0.0 {
                entry.insert(format!("{base}_mean"), sum / count);
            }
        }
    }
    r
}
