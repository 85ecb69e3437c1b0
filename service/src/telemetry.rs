//! What the process tells about itself: logs (human-readable by default,
//! JSON with `LOG_FORMAT=json`) and the Prometheus recorder behind
//! `/metrics`.

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::locks::LockExt;

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

/// The steps one operation went through and when each began, to say where
/// a slow one spent its time. Holds up to [`Steps::MAX`] steps; later
/// ones are folded into the last.
pub struct Steps {
    steps: [(&'static str, Instant); Steps::MAX],
    len: usize,
}

impl Steps {
    const MAX: usize = 8;

    /// An operation that began at `began`, in a first step `first`.
    pub fn since(began: Instant, first: &'static str) -> Self {
        Self {
            steps: [(first, began); Self::MAX],
            len: 1,
        }
    }

    /// The operation moves on to `step` now.
    pub fn begin(&mut self, step: &'static str) {
        if self.len < Self::MAX {
            self.steps[self.len] = (step, Instant::now());
            self.len += 1;
        }
    }

    /// How long the operation has taken so far.
    pub fn elapsed(&self) -> Duration {
        self.steps[0].1.elapsed()
    }

    /// Each step and how long it took; the last one lasts until now.
    pub fn durations(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        let now = Instant::now();
        let steps = &self.steps[..self.len];
        steps.iter().enumerate().map(move |(i, (name, start))| {
            let end = steps.get(i + 1).map_or(now, |next| next.1);
            (*name, end.saturating_duration_since(*start))
        })
    }

    /// `claim 2ms, publish 1.41s`: the steps that took any time.
    pub fn describe(&self) -> String {
        self.durations()
            .filter(|(_, took)| *took >= Duration::from_millis(1))
            .map(|(name, took)| format!("{name} {took:.0?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How long the service's repeated warnings stay muted after one went out.
pub const MUTE_FOR: Duration = Duration::from_secs(30);

/// A warning that every request of an outage would repeat, let out at
/// most once per period.
pub struct Muted {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Muted {
    /// Lets one warning out per `every`.
    pub const fn every(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
        }
    }

    /// True when none went out in the last period; this one then does.
    pub fn may_log(&self) -> bool {
        let mut last = self.last.lock_or_recover();
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            return false;
        }
        *last = Some(now);
        true
    }
}

impl Default for Muted {
    /// Muted for [`MUTE_FOR`].
    fn default() -> Self {
        Self::every(MUTE_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_end_where_the_next_begins_and_the_last_runs_until_now() {
        let began = Instant::now() - Duration::from_millis(30);
        let mut steps = Steps::since(began, "queued");
        steps.begin("publish");
        let durations: Vec<_> = steps.durations().collect();
        assert_eq!(durations.len(), 2);
        assert_eq!(durations[0].0, "queued");
        assert!(durations[0].1 >= Duration::from_millis(30));
        assert_eq!(durations[1].0, "publish");
        assert!(steps.describe().starts_with("queued "));
    }

    #[test]
    fn a_muted_warning_goes_out_once_per_period() {
        let muted = Muted::every(Duration::from_secs(60));
        assert!(muted.may_log());
        assert!(!muted.may_log());
        assert!(Muted::every(Duration::ZERO).may_log());
    }

    #[test]
    fn steps_past_the_cap_fold_into_the_last() {
        let mut steps = Steps::since(Instant::now(), "first");
        for _ in 0..20 {
            steps.begin("more");
        }
        assert_eq!(steps.durations().count(), Steps::MAX);
    }
}
