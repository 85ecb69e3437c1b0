//! The service's own view of fan-out latency, from its `/metrics` before and
//! after the run.

use serde::Serialize;

use crate::prometheus::Scrape;

/// Where the server-side figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Bucket differences between the two scrapes: exactly this run.
    HistogramDelta,
    /// The exporter's summary quantiles after the run: its rolling window
    /// (the last minute or so), not exactly this run.
    SummaryWindow,
    /// The metric was not found, or `/metrics` could not be read.
    Absent,
}

/// Server-side fan-out latency (accepted → emitted), in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct ServerLatency {
    /// The metric read.
    pub metric: String,
    /// How the percentiles were derived.
    pub source: Source,
    /// Observations during the run (`_count` difference).
    pub count: f64,
    /// Mean (`_sum`/`_count` differences).
    pub mean_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// `messages_delivered_total` difference.
    pub delivered: f64,
    /// `messages_failed_total` difference (all stages).
    pub failed: f64,
    /// Mean Cassandra write of a message during the run
    /// (`message_store_duration_seconds` `_sum`/`_count` differences), ms.
    pub store_mean_ms: Option<f64>,
}

impl ServerLatency {
    /// Derives the figures from the scrapes around the run.
    pub fn derive(metric: &str, before: Option<&Scrape>, after: Option<&Scrape>) -> Self {
        let counter = |name: &str| {
            let after = after.map_or(0.0, |scrape| scrape.total(name));
            let before = before.map_or(0.0, |scrape| scrape.total(name));
            (after - before).max(0.0)
        };
        let mut figures = Self {
            metric: metric.to_owned(),
            source: Source::Absent,
            count: 0.0,
            mean_ms: None,
            p50_ms: None,
            p90_ms: None,
            p99_ms: None,
            p999_ms: None,
            delivered: counter("messages_delivered_total"),
            failed: counter("messages_failed_total"),
            store_mean_ms: {
                let count = counter("message_store_duration_seconds_count");
                let sum = counter("message_store_duration_seconds_sum");
                (count > 0.0).then(|| sum / count * 1000.0)
            },
        };
        let Some(after) = after else {
            return figures;
        };
        let ms = |seconds: Option<f64>| seconds.map(|s| s * 1000.0);
        if let Some(histogram) = after.histogram(metric) {
            let run = histogram.since(before.and_then(|b| b.histogram(metric)).as_ref());
            figures.source = Source::HistogramDelta;
            figures.count = run.count;
            figures.mean_ms = ms(run.mean());
            figures.p50_ms = ms(run.quantile(0.5));
            figures.p90_ms = ms(run.quantile(0.9));
            figures.p99_ms = ms(run.quantile(0.99));
            figures.p999_ms = ms(run.quantile(0.999));
        } else if let Some(summary) = after.summary(metric) {
            let earlier = before.and_then(|b| b.summary(metric));
            let count = summary.count - earlier.as_ref().map_or(0.0, |e| e.count);
            let sum = summary.sum - earlier.as_ref().map_or(0.0, |e| e.sum);
            figures.source = Source::SummaryWindow;
            figures.count = count.max(0.0);
            figures.mean_ms = (count > 0.0).then(|| sum / count * 1000.0);
            figures.p50_ms = ms(summary.quantile(0.5));
            figures.p90_ms = ms(summary.quantile(0.9));
            figures.p99_ms = ms(summary.quantile(0.99));
            figures.p999_ms = ms(summary.quantile(0.999));
        }
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_deltas_become_run_percentiles_in_milliseconds() {
        let before = Scrape::parse(
            "f_bucket{le=\"0.01\"} 5\nf_bucket{le=\"0.1\"} 5\nf_bucket{le=\"+Inf\"} 5\nf_sum 0.01\nf_count 5\nmessages_delivered_total 5\n",
        );
        let after = Scrape::parse(
            "f_bucket{le=\"0.01\"} 55\nf_bucket{le=\"0.1\"} 105\nf_bucket{le=\"+Inf\"} 105\nf_sum 2.51\nf_count 105\nmessages_delivered_total 105\n",
        );
        let figures = ServerLatency::derive("f", Some(&before), Some(&after));
        assert_eq!(figures.source, Source::HistogramDelta);
        assert_eq!(figures.count, 100.0);
        assert_eq!(figures.delivered, 100.0);
        assert!((figures.p50_ms.unwrap() - 10.0).abs() < 1e-9);
        assert!((figures.mean_ms.unwrap() - 25.0).abs() < 1e-9);
    }

    #[test]
    fn a_summary_gives_window_quantiles_and_run_counts() {
        let before = Scrape::parse("f{quantile=\"0.5\"} 0.001\nf_sum 1\nf_count 10\n");
        let after = Scrape::parse(
            "f{quantile=\"0.5\"} 0.004\nf{quantile=\"0.99\"} 0.02\nf_sum 3\nf_count 110\n",
        );
        let figures = ServerLatency::derive("f", Some(&before), Some(&after));
        assert_eq!(figures.source, Source::SummaryWindow);
        assert_eq!(figures.count, 100.0);
        assert!((figures.p99_ms.unwrap() - 20.0).abs() < 1e-9);
        assert!((figures.mean_ms.unwrap() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn no_scrape_means_absent() {
        let figures = ServerLatency::derive("f", None, None);
        assert_eq!(figures.source, Source::Absent);
        assert_eq!(figures.p99_ms, None);
    }
}
