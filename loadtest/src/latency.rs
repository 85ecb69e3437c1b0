//! Latency histograms (HDR, microseconds) for the whole run and per second
//! of it, fed by every chatter.
//!
//! Goose gets the same samples through `record_custom_request_duration`;
//! these histograms exist because goose's reports round to milliseconds and
//! stop at p99, while a fan-out goal is about p99 and p99.9.

use std::{sync::Mutex, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency kept exactly; longer ones are clamped to it.
const HIGHEST_MICROS: u64 = 600_000_000;

/// What was timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Scheduled send → a recipient's `reply`: every delivery, to each
    /// other member of the room.
    Fanout,
    /// Scheduled send → the `reply` of the message's first recipient.
    FanoutFirst,
    /// Scheduled send → the `reply` of its last recipient, when every other
    /// member of the room has it. In a pair, first and last are the
    /// partner's one `reply`.
    FanoutLast,
    /// Scheduled send → the ack `accepted`.
    Ack,
    /// Scheduled send → the author's `sent` notification.
    SentNotice,
    /// The service's `createdAt` (its accept time, whole ms, wall clock) →
    /// a recipient's `reply`: the server-side part of fan-out plus the
    /// delivery over the socket, without this tool's send path.
    CreatedToReply,
    /// Scheduled send → the emit actually leaving this process: the load
    /// tool's own lag (timer wake-up, CPU contention, waiting for the
    /// previous ack), included in the other three.
    SendLag,
    /// A `read` emitted → its ack `ok` (`LOAD_MARK_READ`).
    ReadAck,
    /// A socket dropped → the `join {"since"}` on its replacement
    /// acknowledged (`LOAD_RECONNECT`).
    Rejoin,
    /// How long a message due while its chatter reconnected waited for the
    /// new socket: from its due time (or the drop, if later) to the rejoin
    /// (`LOAD_RECONNECT`).
    HeldForRejoin,
}

impl Kind {
    /// The name used in goose's reports and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fanout => "fanout",
            Kind::FanoutFirst => "fanout_first",
            Kind::FanoutLast => "fanout_last",
            Kind::Ack => "ack",
            Kind::SentNotice => "sent_notice",
            Kind::CreatedToReply => "created_to_reply",
            Kind::SendLag => "send_lag",
            Kind::ReadAck => "read_ack",
            Kind::Rejoin => "rejoin",
            Kind::HeldForRejoin => "held_for_rejoin",
        }
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p90_ms: ms(histogram.value_at_quantile(0.9)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone)]
struct Second {
    fanout: Histogram<u64>,
    ack: Histogram<u64>,
}

/// One second of the run, as plotted.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SecondPoint {
    /// Seconds since sending started.
    pub second: u64,
    /// Deliveries (`reply` events) received in this second.
    pub delivered: u64,
    /// Acks received in this second.
    pub acked: u64,
    /// Fan-out p50 (ms).
    pub fanout_p50_ms: f64,
    /// Fan-out p99 (ms).
    pub fanout_p99_ms: f64,
    /// Fan-out max (ms).
    pub fanout_max_ms: f64,
    /// Ack p99 (ms).
    pub ack_p99_ms: f64,
}

/// The run's latency histograms.
pub struct Latencies {
    fanout: Mutex<Histogram<u64>>,
    fanout_first: Mutex<Histogram<u64>>,
    fanout_last: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
    sent_notice: Mutex<Histogram<u64>>,
    created_to_reply: Mutex<Histogram<u64>>,
    send_lag: Mutex<Histogram<u64>>,
    read_ack: Mutex<Histogram<u64>>,
    rejoin: Mutex<Histogram<u64>>,
    held_for_rejoin: Mutex<Histogram<u64>>,
    seconds: Mutex<Vec<Second>>,
}

impl Latencies {
    /// Empty histograms.
    pub fn new() -> Self {
        let whole =
            || Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("constant bounds are valid");
        Self {
            fanout: Mutex::new(whole()),
            fanout_first: Mutex::new(whole()),
            fanout_last: Mutex::new(whole()),
            ack: Mutex::new(whole()),
            sent_notice: Mutex::new(whole()),
            created_to_reply: Mutex::new(whole()),
            send_lag: Mutex::new(whole()),
            read_ack: Mutex::new(whole()),
            rejoin: Mutex::new(whole()),
            held_for_rejoin: Mutex::new(whole()),
            seconds: Mutex::new(Vec::new()),
        }
    }

    /// Records one sample; `second` is the second of the run it ended in.
    pub fn record(&self, kind: Kind, latency: Duration, second: u64) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, HIGHEST_MICROS);
        lock(self.whole(kind)).saturating_record(micros);
        if !matches!(kind, Kind::Fanout | Kind::Ack) {
            return;
        }
        let mut seconds = lock(&self.seconds);
        let index = usize::try_from(second).unwrap_or(usize::MAX).min(100_000);
        while seconds.len() <= index {
            seconds.push(Second {
                fanout: per_second(),
                ack: per_second(),
            });
        }
        let slot = &mut seconds[index];
        match kind {
            Kind::Fanout => slot.fanout.saturating_record(micros),
            _ => slot.ack.saturating_record(micros),
        }
    }

    /// Percentiles over the whole run.
    pub fn percentiles(&self, kind: Kind) -> Percentiles {
        Percentiles::of(&lock(self.whole(kind)))
    }

    fn whole(&self, kind: Kind) -> &Mutex<Histogram<u64>> {
        match kind {
            Kind::Fanout => &self.fanout,
            Kind::FanoutFirst => &self.fanout_first,
            Kind::FanoutLast => &self.fanout_last,
            Kind::Ack => &self.ack,
            Kind::SentNotice => &self.sent_notice,
            Kind::CreatedToReply => &self.created_to_reply,
            Kind::SendLag => &self.send_lag,
            Kind::ReadAck => &self.read_ack,
            Kind::Rejoin => &self.rejoin,
            Kind::HeldForRejoin => &self.held_for_rejoin,
        }
    }

    /// One point per second of the run.
    pub fn series(&self) -> Vec<SecondPoint> {
        let ms = |micros: u64| micros as f64 / 1000.0;
        lock(&self.seconds)
            .iter()
            .enumerate()
            .map(|(second, slot)| SecondPoint {
                second: second as u64,
                delivered: slot.fanout.len(),
                acked: slot.ack.len(),
                fanout_p50_ms: ms(slot.fanout.value_at_quantile(0.5)),
                fanout_p99_ms: ms(slot.fanout.value_at_quantile(0.99)),
                fanout_max_ms: ms(slot.fanout.max()),
                ack_p99_ms: ms(slot.ack.value_at_quantile(0.99)),
            })
            .collect()
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// A coarser histogram for one second: 2 significant figures are plenty for
/// a plot and keep a long run's series small.
fn per_second() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 2).expect("constant bounds are valid")
}

/// Locks, recovering from a poisoned lock: a panicking chatter must not take
/// the run's figures with it.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let latencies = Latencies::new();
        for ms in 1..=100 {
            latencies.record(Kind::Fanout, Duration::from_millis(ms), 0);
        }
        let p = latencies.percentiles(Kind::Fanout);
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p95_ms - 95.0).abs() < 0.1, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max_ms - 100.0).abs() < 0.1, "{p:?}");
        assert_eq!(latencies.percentiles(Kind::Ack).count, 0);
    }

    #[test]
    fn the_series_has_one_point_per_second() {
        let latencies = Latencies::new();
        latencies.record(Kind::Fanout, Duration::from_millis(5), 0);
        latencies.record(Kind::Ack, Duration::from_millis(2), 2);
        let series = latencies.series();
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].delivered, 1);
        assert_eq!(series[1].delivered, 0);
        assert_eq!(series[2].acked, 1);
    }
}
