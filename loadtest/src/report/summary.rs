//! The run's summary: configuration, throughput, latencies, counts,
//! resources and a verdict, written as `summary.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    capacity::curve::CapacityReport,
    config::Settings,
    latency::{Kind, Percentiles, SecondPoint},
    ledger::Tally,
    procstat,
    report::{reads::Reads, rejoins::Rejoins, server::ServerLatency},
    sampler::{Samples, Snapshot},
    state::{CountersSnapshot, RunState},
};

/// Which kind of run it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One rate for `LOAD_DURATION`.
    Fixed,
    /// The rate rising in steps (`LOAD_CAPACITY=1`).
    Capacity,
    /// Faults during the load (`LOAD_CHAOS=1`).
    Chaos,
}

/// What was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Fixed rate, capacity steps or chaos.
    pub mode: Mode,
    /// Target.
    pub host: String,
    /// Chatters.
    pub users: usize,
    /// Chatters per room: 2 for pairs in private rooms, more for group rooms.
    pub room_size: usize,
    /// Users started per second.
    pub increase_rate: f64,
    /// Messages per second, all chatters together (the first step's in
    /// capacity mode).
    pub rate: f64,
    /// Acks in flight per socket at most (`LOAD_PIPELINE`).
    pub pipeline: usize,
    /// The chatters marked their room read (`LOAD_MARK_READ`).
    pub mark_read: bool,
    /// The share of chatters that reconnected (`LOAD_RECONNECT`), if any.
    pub reconnect: Option<f64>,
    /// Sending time, seconds.
    pub duration_s: f64,
    /// Grace period, seconds.
    pub grace_s: f64,
    /// Characters per message.
    pub message_bytes: usize,
    /// Tag in every username.
    pub run_tag: String,
    /// When the run started (UTC).
    pub started_at: String,
    /// Seconds from the first chatter to the common start.
    pub setup_s: Option<f64>,
}

/// The sockets.
#[derive(Debug, Clone, Serialize)]
pub struct Sockets {
    /// Chatters asked for.
    pub requested: usize,
    /// Open just before sending ended.
    pub held_at_window_end: Option<u64>,
    /// Most open at once.
    pub peak: u64,
}

/// Messages per second over the sending window.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// The sending window, seconds.
    pub window_s: f64,
    /// The configured rate (averaged over the steps in capacity mode).
    pub target_per_s: f64,
    /// Emitted.
    pub sent_per_s: f64,
    /// Acknowledged `accepted`.
    pub accepted_per_s: f64,
    /// Delivered to every other member of the room (unique messages; the
    /// partner, in a pair).
    pub delivered_per_s: f64,
    /// Deliveries: first copies, one per message and recipient (the room
    /// size - 1 per message; in a pair the same as `delivered_per_s`).
    pub deliveries_per_s: f64,
    /// Lowest deliveries in one whole second of the window, leaving out the
    /// first and last seconds.
    pub delivered_per_s_min: Option<u64>,
}

/// Client-side latencies, from the scheduled send time.
#[derive(Debug, Clone, Serialize)]
pub struct ClientLatency {
    /// Send → a recipient's `reply`: every delivery.
    pub fanout: Percentiles,
    /// Send → the `reply` of each message's first recipient.
    pub fanout_first: Percentiles,
    /// Send → the `reply` of each message's last recipient (messages that
    /// reached every other member). In a pair, first and last are `fanout`.
    pub fanout_last: Percentiles,
    /// Send → ack `accepted`.
    pub ack: Percentiles,
    /// Send → the author's `sent` notification.
    pub sent_notice: Percentiles,
    /// Scheduled send → emitted: the load tool's own lag, part of the others.
    pub send_lag: Percentiles,
    /// The service's `createdAt` (ms, wall clock) → `reply` received.
    pub created_to_reply: Percentiles,
}

/// One process over the sending window.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUse {
    /// Role.
    pub name: String,
    /// Pid.
    pub pid: u32,
    /// CPU seconds used during the window.
    pub cpu_s: f64,
    /// Average cores busy (cpu_s / window).
    pub cores: f64,
    /// Share of the machine's CPU capacity (all cores), percent.
    pub machine_share_pct: f64,
    /// RSS just before sending ended, MiB.
    pub rss_mib: f64,
    /// RSS growth since before the run, MiB.
    pub rss_growth_mib: f64,
    /// Peak RSS (`VmHWM`), MiB.
    pub rss_peak_mib: f64,
    /// CPU µs per accepted message: cores busy over messages accepted per
    /// second (in group rooms each makes room size - 1 deliveries).
    pub cpu_us_per_message: Option<f64>,
}

/// CPU and memory during the window.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    /// Window the CPU figures cover, seconds.
    pub window_s: f64,
    /// Cores of the machine.
    pub cores: usize,
    /// Busy share of the whole machine, percent.
    pub machine_busy_pct: Option<f64>,
    /// Cores busy with processes not watched (builds, other tests, the
    /// kernel): the noise under the figures.
    pub other_cores: Option<f64>,
    /// Per process.
    pub processes: Vec<ProcessUse>,
    /// Service RSS divided by sockets held, KiB.
    pub service_rss_per_socket_kib: Option<f64>,
    /// Service RSS growth since before the run divided by sockets held, KiB.
    pub service_rss_growth_per_socket_kib: Option<f64>,
    /// Requests the service sent to each backend during the window, per
    /// accepted message (from its `backend_requests_total`; empty when
    /// `/metrics` has none).
    pub backend_requests_per_message: BTreeMap<String, f64>,
}

/// Pass or fail, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// No loss and no integrity problem.
    pub ok: bool,
    /// Accepted messages never delivered.
    pub lost: u64,
    /// Everything that went wrong, in words.
    pub problems: Vec<String>,
}

/// The whole summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Configuration.
    pub run: RunInfo,
    /// Sockets.
    pub sockets: Sockets,
    /// Throughput.
    pub throughput: Throughput,
    /// Message counts.
    pub messages: Tally,
    /// Other counters.
    pub counters: CountersSnapshot,
    /// Client-side latencies.
    pub latency: ClientLatency,
    /// The reads, when the chatters marked their rooms read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<Reads>,
    /// The reconnects, when a share of the chatters reconnected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejoins: Option<Rejoins>,
    /// The service's own fan-out histogram.
    pub server: ServerLatency,
    /// CPU and memory.
    pub resources: Resources,
    /// Verdict.
    pub verdict: Verdict,
    /// Latency per second of the window.
    pub series: Vec<SecondPoint>,
    /// The capacity curve, in capacity mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
}

impl Summary {
    /// Puts the run's figures together.
    pub fn build(
        run: &RunState,
        started_at: String,
        samples: &Samples,
        server: ServerLatency,
    ) -> Self {
        let settings = &run.settings;
        let messages = run.tally();
        let counters = run.counters.snapshot();
        let window = run.sending_window();
        let window_s = window.as_secs_f64();
        let series = run.latencies.series();
        let per_s = |count: u64| count as f64 / window_s.max(1e-9);
        let full_seconds = window.as_secs() as usize;
        let delivered_per_s_min = (full_seconds > 2)
            .then(|| {
                (1..full_seconds - 1)
                    .map(|second| series.get(second).map_or(0, |point| point.delivered))
                    .min()
            })
            .flatten();
        let setup_s = samples.window_start.as_ref().map(|snapshot| snapshot.at_s);
        let accepted_per_s = per_s(messages.accepted);
        let resources = resources(samples, accepted_per_s);
        let reads = settings
            .mark_read
            .then(|| Reads::build(run, &messages, window_s));
        let rejoins = settings.reconnect.map(|share| Rejoins::build(run, share));
        let mut verdict = verdict(&messages, &counters, reads.as_ref(), settings);
        if let Some(rejoins) = &rejoins {
            verdict.problems.extend(rejoins.problems(window_s));
            verdict.ok = verdict.problems.is_empty();
        }
        let mode = if settings.chaos.is_some() {
            Mode::Chaos
        } else if settings.capacity.is_some() {
            Mode::Capacity
        } else {
            Mode::Fixed
        };
        Self {
            run: RunInfo {
                mode,
                host: settings.host.clone(),
                users: settings.users,
                room_size: settings.room_size,
                increase_rate: settings.increase_rate,
                rate: settings.rate,
                pipeline: settings.pipeline,
                mark_read: settings.mark_read,
                reconnect: settings.reconnect,
                duration_s: window_s,
                grace_s: settings.grace.as_secs_f64(),
                message_bytes: settings.message_bytes,
                run_tag: settings.run_tag.clone(),
                started_at,
                setup_s,
            },
            sockets: Sockets {
                requested: settings.users,
                held_at_window_end: samples.window_end.as_ref().map(|s| s.sockets_open),
                peak: counters.sockets_peak,
            },
            throughput: Throughput {
                window_s,
                target_per_s: settings.plan().mean_rate(window),
                sent_per_s: per_s(messages.sent),
                accepted_per_s,
                delivered_per_s: per_s(messages.delivered),
                deliveries_per_s: per_s(messages.deliveries),
                delivered_per_s_min,
            },
            latency: ClientLatency {
                fanout: run.latencies.percentiles(Kind::Fanout),
                fanout_first: run.latencies.percentiles(Kind::FanoutFirst),
                fanout_last: run.latencies.percentiles(Kind::FanoutLast),
                ack: run.latencies.percentiles(Kind::Ack),
                sent_notice: run.latencies.percentiles(Kind::SentNotice),
                send_lag: run.latencies.percentiles(Kind::SendLag),
                created_to_reply: run.latencies.percentiles(Kind::CreatedToReply),
            },
            messages,
            counters,
            reads,
            rejoins,
            server,
            resources,
            verdict,
            series,
            capacity: None,
        }
    }
}

/// CPU and memory over the window; `accepted_per_s` gives the CPU per
/// message.
fn resources(samples: &Samples, accepted_per_s: f64) -> Resources {
    let cores = procstat::cores();
    let (Some(start), Some(end)) = (&samples.window_start, &samples.window_end) else {
        return Resources {
            window_s: 0.0,
            cores,
            machine_busy_pct: None,
            other_cores: None,
            processes: Vec::new(),
            service_rss_per_socket_kib: None,
            service_rss_growth_per_socket_kib: None,
            backend_requests_per_message: BTreeMap::new(),
        };
    };
    let window_s = (end.at_s - start.at_s).max(1e-9);
    let machine_total = end.machine_total_s - start.machine_total_s;
    let machine_busy_pct = (machine_total > 0.0)
        .then(|| 100.0 * (end.machine_busy_s - start.machine_busy_s) / machine_total);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let processes: Vec<ProcessUse> = samples
        .watched
        .iter()
        .enumerate()
        .filter_map(|(i, watched)| {
            let first = process(start, i)?;
            let last = process(end, i)?;
            let before = process(&samples.baseline, i).unwrap_or(first);
            let cpu_s = (last.cpu_seconds - first.cpu_seconds).max(0.0);
            let busy = cpu_s / window_s;
            Some(ProcessUse {
                name: watched.name.clone(),
                pid: watched.pid,
                cpu_s,
                cores: busy,
                machine_share_pct: 100.0 * cpu_s / (window_s * cores as f64),
                rss_mib: mib(last.rss_kib),
                rss_growth_mib: mib(last.rss_kib) - mib(before.rss_kib),
                rss_peak_mib: mib(last.rss_peak_kib),
                cpu_us_per_message: (accepted_per_s > 0.0)
                    .then(|| busy * 1_000_000.0 / accepted_per_s),
            })
        })
        .collect();
    let watched_cores: f64 = processes.iter().map(|p| p.cores).sum();
    let other_cores = (machine_total > 0.0)
        .then(|| ((end.machine_busy_s - start.machine_busy_s) / window_s - watched_cores).max(0.0));
    let service = samples.watched.iter().position(|w| w.name == "service");
    let per_socket = |kib: f64| (end.sockets_open > 0).then(|| kib / end.sockets_open as f64);
    let service_end = service.and_then(|i| process(end, i));
    let service_before = service.and_then(|i| process(&samples.baseline, i));
    Resources {
        window_s,
        cores,
        machine_busy_pct,
        other_cores,
        processes,
        service_rss_per_socket_kib: service_end.and_then(|s| per_socket(s.rss_kib as f64)),
        service_rss_growth_per_socket_kib: service_end
            .zip(service_before)
            .and_then(|(end, before)| per_socket(end.rss_kib as f64 - before.rss_kib as f64)),
        backend_requests_per_message: requests_per_message(samples, accepted_per_s * window_s),
    }
}

/// Each backend's requests during the window divided by `accepted`.
fn requests_per_message(samples: &Samples, accepted: f64) -> BTreeMap<String, f64> {
    let (Some(start), Some(end)) = (&samples.requests_start, &samples.requests_end) else {
        return BTreeMap::new();
    };
    if accepted <= 0.0 {
        return BTreeMap::new();
    }
    end.iter()
        .map(|(backend, total)| {
            let before = start.get(backend).copied().unwrap_or(0.0);
            (backend.clone(), (total - before).max(0.0) / accepted)
        })
        .collect()
}

fn process(snapshot: &Snapshot, index: usize) -> Option<procstat::ProcSample> {
    snapshot.processes.get(index).copied().flatten()
}

fn verdict(
    messages: &Tally,
    counters: &CountersSnapshot,
    reads: Option<&Reads>,
    settings: &Settings,
) -> Verdict {
    let mut problems = Vec::new();
    let mut note = |count: u64, what: &str| {
        if count > 0 {
            problems.push(format!("{count} {what}"));
        }
    };
    let lost = if settings.rooms().is_group() {
        "deliveries of accepted messages never happened (LOST)"
    } else {
        "accepted messages were never delivered (LOST)"
    };
    note(messages.lost, lost);
    note(messages.duplicated, "duplicate deliveries");
    note(messages.out_of_order, "deliveries out of order");
    note(
        messages.unconfirmed,
        "messages neither acknowledged nor delivered",
    );
    note(
        messages.delivered_rejected,
        "messages delivered although refused",
    );
    note(messages.rejected, "messages refused by the service");
    note(counters.unsent, "messages never sent (socket closed)");
    note(counters.setup_failed.total(), "chatters failed to set up");
    note(counters.disconnects, "sockets closed during the run");
    note(
        counters.sent_notices_missing,
        "`sent` notifications missing",
    );
    if let Some(reads) = reads {
        problems.extend(reads.problems(messages.deliveries));
    }
    if messages.sent == 0 {
        let users = settings.users;
        problems.push(format!("no message was sent by {users} chatters"));
    }
    Verdict {
        ok: problems.is_empty(),
        lost: messages.lost,
        problems,
    }
}
