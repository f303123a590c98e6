//! The Prometheus exporter: orbit-observe's `metrics` recorder and its text exposition.
//!
//! Contract: [`PrometheusExporter::install`] makes a Prometheus recorder the program's
//! global `metrics` recorder, once; later calls return the same exporter. It fails with
//! [`ObserveError::RecorderTaken`] when another recorder was installed first. Every
//! histogram is exposed as a Prometheus histogram (buckets from 1 µs to 10 s for
//! `_seconds` series), not as a summary. Handles that Orbit registers when a pool or
//! cache starts bind to the recorder installed *at that moment*: install the exporter
//! before starting them, or their series stay empty.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::ObserveError;

/// Histogram buckets, in seconds (1 µs .. 10 s, about three per decade).
const BUCKETS: &[f64] = &[
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static INSTALLED: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The installed Prometheus recorder: renders the exposition served at `/metrics`.
#[derive(Clone)]
pub struct PrometheusExporter {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for PrometheusExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusExporter")
    }
}

impl PrometheusExporter {
    /// Installs the Prometheus recorder as the global `metrics` recorder (once per
    /// program; later calls return the same exporter).
    pub fn install() -> Result<PrometheusExporter, ObserveError> {
        let r = INSTALLED.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .map_err(|e| format!("buckets: {e}"))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|_| TAKEN.to_string())?;
            Ok(handle)
        });
        match r {
            Ok(handle) => Ok(PrometheusExporter {
                handle: handle.clone(),
            }),
            Err(e) if e == TAKEN => Err(ObserveError::RecorderTaken),
            Err(e) => Err(ObserveError::Recorder(e.clone())),
        }
    }

    /// The current exposition, Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram buffers and expires idle series; the collector calls it each
    /// tick so memory stays bounded.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

const TAKEN: &str = "taken";
