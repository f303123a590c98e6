//! One measured figure, printed as a JSON line or a table row.

use serde_json::json;

/// One figure: which scenario, who was measured, what was counted, and the value.
#[derive(Debug, Clone)]
pub struct Record {
    /// Scenario name, e.g. `send`.
    pub scenario: String,
    /// Lowercase system or crate name (`orbit`, `beam`, `tokio`, ...) or `ratio`.
    pub subject: String,
    /// What was counted (`msgs_per_s`, ...). For ratios: `GOAL_NAME` describing the pair.
    pub metric: String,
    /// The figure.
    pub value: f64,
}

/// Where a scenario sends its figures.
pub struct Reporter {
    json: bool,
    /// Every record emitted so far, in order.
    pub records: Vec<Record>,
}

impl Reporter {
    /// A reporter printing JSON lines when `json` is set, a readable table otherwise.
    pub fn new(json: bool) -> Self {
        Reporter {
            json,
            records: Vec::new(),
        }
    }

    /// Prints and keeps one figure.
    pub fn emit(&mut self, scenario: &str, subject: &str, metric: &str, value: f64) {
        let r = Record {
            scenario: scenario.into(),
            subject: subject.into(),
            metric: metric.into(),
            value,
        };
        if self.json {
            println!(
                "{}",
                json!({"scenario": r.scenario, "subject": r.subject, "metric": r.metric, "value": r.value})
            );
        } else {
            println!(
                "{:<10} {:<10} {:<40} {:>16.2}",
                r.scenario, r.subject, r.metric, r.value
            );
        }
        self.records.push(r);
    }

    /// The value of an earlier record, if one was emitted.
    pub fn get(&self, scenario: &str, subject: &str, metric: &str) -> Option<f64> {
        self.records
            .iter()
            .rev()
            .find(|r| r.scenario == scenario && r.subject == subject && r.metric == metric)
            .map(|r| r.value)
    }

    /// Emits `subject: ratio` with `metric` = `NAME` as `a / b` when both figures exist.
    pub fn ratio(&mut self, scenario: &str, name: &str, a: Option<f64>, b: Option<f64>) {
        if let (Some(a), Some(b)) = (a, b) {
            if b > 0.0 {
                self.emit(scenario, "ratio", name, a / b);
            }
        }
    }
}
