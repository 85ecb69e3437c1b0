//! Reading the service's `/metrics` (Prometheus text format) and deriving
//! percentiles from a histogram's bucket counts.
//!
//! The load tool scrapes before and after a run; the difference of the two
//! histograms holds exactly the run's observations, so its percentiles are
//! the server's view of the same messages the clients timed. A summary (what
//! `metrics-exporter-prometheus` renders when no buckets are configured) has
//! no deltas: its quantiles cover the exporter's rolling window, and only
//! `_count` and `_sum` can be differenced.

use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, with any `_bucket`/`_sum`/`_count` suffix.
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample line, comments left out.
    pub samples: Vec<Sample>,
}

/// Cumulative bucket counts of a histogram (all label sets summed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// `(upper bound, observations at or below it)`, ascending; the last
    /// bound is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

/// A summary's quantiles as the exporter last computed them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// `(quantile, value)`, ascending.
    pub quantiles: Vec<(f64, f64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

impl Scrape {
    /// Parses the text format; lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// The histogram `name` (from `name_bucket`, `name_sum`, `name_count`),
    /// summed over every label set; `None` when it has no buckets.
    pub fn histogram(&self, name: &str) -> Option<Histogram> {
        let bucket_name = format!("{name}_bucket");
        let mut buckets: BTreeMap<OrderedBound, f64> = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| s.name == bucket_name) {
            let Some(bound) = sample.label("le").and_then(parse_value) else {
                continue;
            };
            *buckets.entry(OrderedBound(bound)).or_default() += sample.value;
        }
        if buckets.is_empty() {
            return None;
        }
        Some(Histogram {
            buckets: buckets.into_iter().map(|(b, c)| (b.0, c)).collect(),
            sum: self.total(&format!("{name}_sum")),
            count: self.total(&format!("{name}_count")),
        })
    }

    /// The summary `name`; `None` when it has no quantile lines. With several
    /// label sets the first one's quantiles are kept (they cannot be merged).
    pub fn summary(&self, name: &str) -> Option<Summary> {
        let mut quantiles: Vec<(f64, f64)> = Vec::new();
        for sample in self.samples.iter().filter(|s| s.name == name) {
            let Some(q) = sample.label("quantile").and_then(parse_value) else {
                continue;
            };
            if quantiles.iter().all(|(seen, _)| *seen != q) {
                quantiles.push((q, sample.value));
            }
        }
        if quantiles.is_empty() {
            return None;
        }
        quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Summary {
            quantiles,
            sum: self.total(&format!("{name}_sum")),
            count: self.total(&format!("{name}_count")),
        })
    }

    /// The samples named `name`, summed by the value of their `label`
    /// (a sample without it is left out).
    pub fn totals_by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut totals = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| s.name == name) {
            if let Some(value) = sample.label(label) {
                *totals.entry(value.to_owned()).or_default() += sample.value;
            }
        }
        totals
    }

    /// The sum of every sample named `name` (a counter over all its labels).
    pub fn total(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }
}

impl Histogram {
    /// The observations made between `before` and `self`: bucket by bucket
    /// differences. Buckets missing from `before` count as empty there (the
    /// exporter only renders a histogram once it has a value).
    pub fn since(&self, before: Option<&Histogram>) -> Histogram {
        let Some(before) = before else {
            return self.clone();
        };
        let earlier = |bound: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(bound, count)| (bound, (count - earlier(bound)).max(0.0)))
                .collect(),
            sum: (self.sum - before.sum).max(0.0),
            count: (self.count - before.count).max(0.0),
        }
    }

    /// The `q` quantile (0..=1) as Prometheus' `histogram_quantile` computes
    /// it: the bucket holding the rank, linearly interpolated within it. A
    /// rank in the `+Inf` bucket yields the highest finite bound. `None`
    /// without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let mut lower_bound = 0.0;
        let mut lower_count = 0.0;
        for (index, &(bound, count)) in self.buckets.iter().enumerate() {
            if count >= rank && count > lower_count {
                if bound.is_infinite() {
                    return Some(if index == 0 { 0.0 } else { lower_bound });
                }
                if index == 0 && bound <= 0.0 {
                    return Some(bound);
                }
                let within = (rank - lower_count) / (count - lower_count);
                return Some(lower_bound + (bound - lower_bound) * within);
            }
            lower_bound = bound;
            lower_count = count;
        }
        Some(lower_bound)
    }

    /// Mean of the observations, from `_sum` and `_count`.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

impl Summary {
    /// The value the exporter gave for quantile `q`, if it renders that one.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles
            .iter()
            .find(|(quantile, _)| (quantile - q).abs() < 1e-9)
            .map(|(_, value)| *value)
    }
}

/// A bucket bound that sorts, `+Inf` last.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedBound(f64);

impl Eq for OrderedBound {}

impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, Vec::new(), rest)
        }
    };
    // A timestamp may follow the value.
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
# HELP fanout_latency_seconds accepted to emitted
# TYPE fanout_latency_seconds histogram
fanout_latency_seconds_bucket{le="0.005"} 10
fanout_latency_seconds_bucket{le="0.01"} 20
fanout_latency_seconds_bucket{le="0.025"} 20
fanout_latency_seconds_bucket{le="+Inf"} 20
fanout_latency_seconds_sum 0.1
fanout_latency_seconds_count 20
"#;

    const AFTER: &str = r#"
fanout_latency_seconds_bucket{le="0.005"} 60
fanout_latency_seconds_bucket{le="0.01"} 110
fanout_latency_seconds_bucket{le="0.025"} 119
fanout_latency_seconds_bucket{le="+Inf"} 120
fanout_latency_seconds_sum 0.9
fanout_latency_seconds_count 120
"#;

    #[test]
    fn bucket_deltas_hold_only_the_runs_observations() {
        let before = Scrape::parse(BEFORE).histogram("fanout_latency_seconds");
        let after = Scrape::parse(AFTER)
            .histogram("fanout_latency_seconds")
            .unwrap();
        let run = after.since(before.as_ref());
        assert_eq!(
            run.buckets,
            vec![
                (0.005, 50.0),
                (0.01, 90.0),
                (0.025, 99.0),
                (f64::INFINITY, 100.0)
            ]
        );
        assert_eq!(run.count, 100.0);
        assert!((run.mean().unwrap() - 0.008).abs() < 1e-12);
    }

    #[test]
    fn percentiles_interpolate_within_the_bucket_holding_the_rank() {
        let run = Histogram {
            buckets: vec![
                (0.005, 50.0),
                (0.01, 90.0),
                (0.025, 99.0),
                (f64::INFINITY, 100.0),
            ],
            sum: 0.8,
            count: 100.0,
        };
        // Rank 50 is the top of the first bucket.
        assert!((run.quantile(0.5).unwrap() - 0.005).abs() < 1e-12);
        // Rank 70 is half way through (0.005, 0.01].
        assert!((run.quantile(0.7).unwrap() - 0.0075).abs() < 1e-12);
        // Rank 99 is the top of (0.01, 0.025].
        assert!((run.quantile(0.99).unwrap() - 0.025).abs() < 1e-12);
        // Rank 99.9 is in +Inf: the highest finite bound is all we know.
        assert_eq!(run.quantile(0.999), Some(0.025));
    }

    #[test]
    fn the_first_bucket_interpolates_from_zero() {
        let run = Histogram {
            buckets: vec![(0.01, 10.0), (f64::INFINITY, 10.0)],
            sum: 0.05,
            count: 10.0,
        };
        assert!((run.quantile(0.5).unwrap() - 0.005).abs() < 1e-12);
    }

    #[test]
    fn empty_buckets_between_ranks_are_skipped() {
        let run = Histogram {
            buckets: vec![(0.005, 0.0), (0.01, 0.0), (0.05, 4.0), (f64::INFINITY, 4.0)],
            sum: 0.1,
            count: 4.0,
        };
        // Interpolates over (0.01, 0.05], not from an empty bucket.
        assert!((run.quantile(0.5).unwrap() - 0.03).abs() < 1e-12);
    }

    #[test]
    fn no_observations_give_no_percentile() {
        let before = Scrape::parse(BEFORE)
            .histogram("fanout_latency_seconds")
            .unwrap();
        let run = before.since(Some(&before));
        assert_eq!(run.quantile(0.5), None);
        assert_eq!(run.mean(), None);
    }

    #[test]
    fn a_histogram_absent_before_the_run_counts_from_zero() {
        let after = Scrape::parse(AFTER)
            .histogram("fanout_latency_seconds")
            .unwrap();
        assert_eq!(after.since(None), after);
    }

    #[test]
    fn label_sets_are_summed_bucket_by_bucket() {
        let text = r#"
m_bucket{node="a",le="1"} 1
m_bucket{node="b",le="1"} 2
m_bucket{node="a",le="+Inf"} 3
m_bucket{node="b",le="+Inf"} 4
m_sum{node="a"} 1
m_sum{node="b"} 2
m_count{node="a"} 3
m_count{node="b"} 4
"#;
        let histogram = Scrape::parse(text).histogram("m").unwrap();
        assert_eq!(histogram.buckets, vec![(1.0, 3.0), (f64::INFINITY, 7.0)]);
        assert_eq!((histogram.sum, histogram.count), (3.0, 7.0));
    }

    #[test]
    fn a_summary_is_read_when_the_exporter_has_no_buckets() {
        let text = r#"
# TYPE fanout_latency_seconds summary
fanout_latency_seconds{quantile="0.5"} 0.004
fanout_latency_seconds{quantile="0.99"} 0.02
fanout_latency_seconds_sum 1.5
fanout_latency_seconds_count 300
messages_delivered_total 300 1700000000000
"#;
        let scrape = Scrape::parse(text);
        assert!(scrape.histogram("fanout_latency_seconds").is_none());
        let summary = scrape.summary("fanout_latency_seconds").unwrap();
        assert_eq!(summary.quantile(0.99), Some(0.02));
        assert_eq!(summary.count, 300.0);
        assert_eq!(scrape.total("messages_delivered_total"), 300.0);
    }

    #[test]
    fn escaped_label_values_parse() {
        let sample = parse_line(r#"x{path="/a\"b",le="0.1"} 2"#).unwrap();
        assert_eq!(sample.label("path"), Some("/a\"b"));
        assert_eq!(sample.label("le"), Some("0.1"));
        assert_eq!(sample.value, 2.0);
    }

    #[test]
    fn a_counter_is_summed_by_one_label() {
        let scrape = Scrape::parse(
            "backend_requests_total{backend=\"redis\"} 3\nbackend_requests_total{backend=\"kafka\",client=\"a\"} 2\nbackend_requests_total{backend=\"kafka\",client=\"b\"} 5\nbackend_requests_total 9\nother{backend=\"redis\"} 1\n",
        );
        let totals = scrape.totals_by("backend_requests_total", "backend");
        assert_eq!(totals.len(), 2);
        assert_eq!(totals["redis"], 3.0);
        assert_eq!(totals["kafka"], 7.0);
    }
}
