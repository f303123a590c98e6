//! Telemetry: the numbers that find a bottleneck — requests per second, latency, CPU,
//! memory, file descriptors, processes, mailboxes — and what "normal" is for each.
//!
//! The seed's method is: measure, know what normal is, find the bottleneck. This module
//! gives the measuring pieces; `orbit lab` (crate `orbit-cli`) shows them at work.
//!
//! - [`Rate`]: events per second over sliding windows of a second, a minute and an hour
//!   (ring buffers of buckets; marking is one short lock).
//! - [`Latency`]: a latency histogram (HdrHistogram, 2 significant digits, 1 ns to one
//!   hour) with p50/p90/p99/max. Hot loops record into a plain
//!   [`hdrhistogram::Histogram`] of their own ([`Latency::local`]) and
//!   [`merge`](Latency::merge) it now and then, so recording never contends.
//! - [`SystemSampler`]: a [`Snapshot`] of the process — CPU % since the last sample,
//!   resident memory, open file descriptors against their limit, Orbit process count,
//!   the largest mailboxes ([`crate::top`]) and long handlers
//!   ([`crate::clock::long_handler_total`]). System figures come from `/proc` and are
//!   `None` where it does not exist.
//! - [`Baseline`]: learns mean and spread of each series over a warm-up window, then
//!   flags a sample outside its normal range as a [`Deviation`] naming the metric, the
//!   range and the observed value.
//!
//! Everything is also published through the [`metrics`] facade (gauges named
//! `orbit_*`; see [`Snapshot::publish`], [`Rate::publish`], [`Latency::publish`]), so any
//! `metrics` exporter (Prometheus, statsd) sees them.
//!
//! Time comes from a [`Clock`]: [`SystemClock`] by default, [`ManualClock`] in tests.
//! The same clock drives [`ConCache`](crate::cache::ConCache) TTLs (one clock type for
//! the crate: a test moves rates, baselines and expiry with one `ManualClock`).
//!
//! - [`events`]: `:telemetry`-style events ([`attach`], [`detach`], [`execute`]), emitted
//!   by pools, caches, stages, supervisors and distribution (the list is in that module).
//!
//! Not for: per-message accounting inside processes (that is [`crate::process_info`],
//! kept by the runtime at a few nanoseconds a message) or tracing individual requests.

mod baseline;
mod clock;
pub mod events;
mod latency;
mod rate;
mod system;

pub use baseline::{Baseline, BaselineOptions, Deviation, Normal};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use events::{attach, detach, enabled, execute, list_handlers, Event, TelemetryError};
pub use latency::{summarize, Latency, LatencySummary};
pub use rate::{Rate, RateSnapshot};
pub use system::{
    cpu_time, cpu_time_of, fd_limit, open_fds, rss_bytes, rss_bytes_of, MailboxInfo, Snapshot,
    SystemSampler,
};
