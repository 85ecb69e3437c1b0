//! What the process tells about itself: logs (human-readable by default,
//! JSON with `LOG_FORMAT=json`) and the Prometheus recorder behind
//! `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global tracing subscriber. `RUST_LOG` sets the filter
/// (default `info`); `LOG_FORMAT=json` switches to one JSON object a line.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,scylla=warn,rdkafka=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = fmt().with_env_filter(filter).with_target(true);
    // A second init (tests) is harmless, so its error is ignored.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Bucket bounds of every `*_seconds` histogram: fine around the 25 ms
/// fan-out goal, coarse above a second.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
    0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Real histograms (not summaries), so latency percentiles can be
            // aggregated across instances and read as deltas by the load tool.
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                    .expect("bucket list is not empty")
            };
            builder()
                .install_recorder()
                .unwrap_or_else(|_| builder().build_recorder().handle())
        })
        .clone()
}
