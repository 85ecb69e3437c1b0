//! The summary as a plain-text table for the terminal.

use std::fmt::Write;

use crate::{
    latency::Percentiles,
    report::summary::{Mode, Summary},
};

/// The ack window in words.
fn pipeline(acks: usize) -> String {
    match acks {
        1 => "one ack in flight per socket".to_owned(),
        acks => format!("pipelined: up to {acks} acks in flight per socket"),
    }
}

/// Renders the summary for a terminal.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let run = &summary.run;
    let rule = "=".repeat(78);
    let _ = writeln!(out, "{rule}");
    let rate = match run.mode {
        Mode::Capacity => format!("steps from {:.0} msg/s", run.rate),
        Mode::Fixed | Mode::Chaos => format!("{:.0} msg/s", run.rate),
    };
    let group = run.room_size > 2;
    let rooms = if group {
        format!(" in rooms of {}", run.room_size)
    } else {
        String::new()
    };
    let marking = if run.mark_read { ", marking read" } else { "" };
    let reconnecting = run.reconnect.map_or_else(String::new, |share| {
        format!(", {:.0}% reconnecting", share * 100.0)
    });
    let _ = writeln!(
        out,
        "chat-service load: {} chatters{rooms}, {rate} for {:.0}s (grace {:.0}s), {}{marking}{reconnecting} against {}",
        run.users,
        run.duration_s,
        run.grace_s,
        pipeline(run.pipeline),
        run.host
    );
    let _ = writeln!(out, "{rule}");
    let sockets = &summary.sockets;
    let _ = writeln!(
        out,
        "sockets held at window end: {} of {} (peak {})",
        sockets
            .held_at_window_end
            .map_or_else(|| "?".to_owned(), |held| held.to_string()),
        sockets.requested,
        sockets.peak
    );
    let t = &summary.throughput;
    let lowest = t
        .delivered_per_s_min
        .map_or_else(|| "-".to_owned(), |min| min.to_string());
    let m = &summary.messages;
    if group {
        let _ = writeln!(
            out,
            "throughput (msg/s): target {:.1}  sent {:.1}  accepted {:.1}  delivered to all {:.1}; deliveries/s {:.1} (lowest second {lowest})",
            t.target_per_s, t.sent_per_s, t.accepted_per_s, t.delivered_per_s, t.deliveries_per_s,
        );
        let _ = writeln!(
            out,
            "messages: sent {}  accepted {}  rejected {}  delivered to all {}  unconfirmed {}",
            m.sent, m.accepted, m.rejected, m.delivered, m.unconfirmed
        );
        let _ = writeln!(
            out,
            "deliveries ({} per message): {}  LOST {}  duplicated {}  out-of-order {}",
            run.room_size - 1,
            m.deliveries,
            m.lost,
            m.duplicated,
            m.out_of_order
        );
    } else {
        let _ = writeln!(
            out,
            "throughput (msg/s): target {:.1}  sent {:.1}  accepted {:.1}  delivered {:.1}  (lowest second {lowest})",
            t.target_per_s, t.sent_per_s, t.accepted_per_s, t.delivered_per_s,
        );
        let _ = writeln!(
            out,
            "messages: sent {}  accepted {}  rejected {}  delivered {}  LOST {}  duplicated {}  out-of-order {}  unconfirmed {}",
            m.sent, m.accepted, m.rejected, m.delivered, m.lost, m.duplicated, m.out_of_order, m.unconfirmed
        );
    }
    let c = &summary.counters;
    let _ = writeln!(
        out,
        "acks: timed out {}  late {}; messages that waited for the ack window ({}): {}",
        c.ack_timeouts, c.late_acks, run.pipeline, c.queued_behind_ack
    );
    if let Some(reads) = &summary.reads {
        let r = &reads.counts;
        let per_message = reads
            .per_message
            .map_or_else(|| "-".to_owned(), |per| format!("{per:.2}"));
        let _ = writeln!(
            out,
            "reads (each chatter at most 1/s): sent {}  ok {}  failed {}  unanswered {}  late {}; {:.1} sent/s, {:.1} ok/s, {per_message} per message",
            r.sent, r.ok, r.failed, r.unanswered, r.late, reads.sent_per_s, reads.ok_per_s
        );
    }
    if let Some(rejoins) = &summary.rejoins {
        let r = &rejoins.counts;
        let _ = writeln!(
            out,
            "reconnects: done {}  failed {}; replayed {}  incomplete {} (paged {}, {} live already paged)  held messages {}  stale replies {}",
            r.done, r.failed, r.replayed, r.incomplete, r.paged, r.paged_overlap, r.held, r.stale
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<22}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "latency (ms)", "count", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"
    );
    let mut row = |name: &str, p: &Percentiles| {
        let _ = writeln!(
            out,
            "{:<22}{:>9}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
            name, p.count, p.mean_ms, p.p50_ms, p.p90_ms, p.p95_ms, p.p99_ms, p.p999_ms, p.max_ms
        );
    };
    row("client fan-out", &summary.latency.fanout);
    row("  to first recipient", &summary.latency.fanout_first);
    row("  to last recipient", &summary.latency.fanout_last);
    row("client ack", &summary.latency.ack);
    row("client sent notice", &summary.latency.sent_notice);
    row("  of which send lag", &summary.latency.send_lag);
    row("createdAt → reply", &summary.latency.created_to_reply);
    if let Some(reads) = &summary.reads {
        row("read ack (from emit)", &reads.ack);
    }
    if let Some(rejoins) = &summary.rejoins {
        row("drop → rejoin ack", &rejoins.drop_to_ack);
        row("  held for new socket", &rejoins.held);
    }
    let server = &summary.server;
    let cell = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let _ = writeln!(
        out,
        "{:<22}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "server fan-out",
        server.count as u64,
        cell(server.mean_ms),
        cell(server.p50_ms),
        cell(server.p90_ms),
        "-",
        cell(server.p99_ms),
        cell(server.p999_ms),
        "-"
    );
    let _ = writeln!(
        out,
        "  (server: {} from {:?}; it times accepted → emitted in whole ms, the client times scheduled send → received)",
        server.metric, server.source
    );
    if let Some(store) = server.store_mean_ms {
        let _ = writeln!(out, "  (server: mean Cassandra write {store:.2} ms)");
    }
    let resources = &summary.resources;
    if !resources.processes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "CPU and memory over {:.0}s of sending ({} cores, machine busy {}):",
            resources.window_s,
            resources.cores,
            resources
                .machine_busy_pct
                .map_or_else(|| "?".to_owned(), |busy| format!("{busy:.0}%"))
        );
        let _ = writeln!(
            out,
            "  {:<12}{:>8}{:>8}{:>10}{:>10}{:>10}{:>10}",
            "process", "cores", "share", "RSS MiB", "+RSS MiB", "peak MiB", "µs/msg"
        );
        for p in &resources.processes {
            let per_message = p
                .cpu_us_per_message
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"));
            let _ = writeln!(
                out,
                "  {:<12}{:>8.2}{:>7.0}%{:>10.0}{:>10.0}{:>10.0}{:>10}",
                p.name,
                p.cores,
                p.machine_share_pct,
                p.rss_mib,
                p.rss_growth_mib,
                p.rss_peak_mib,
                per_message
            );
        }
        if let Some(other) = resources.other_cores {
            let _ = writeln!(
                out,
                "  {:<12}{:>8.2}{:>7.0}%   (everything not watched: builds, other tests, kernel)",
                "other",
                other,
                100.0 * other / resources.cores as f64
            );
        }
        let _ = writeln!(
            out,
            "  (µs/msg: CPU µs per accepted message, cores busy ÷ accepted/s)"
        );
        if let Some(per_socket) = resources.service_rss_per_socket_kib {
            let _ = writeln!(
                out,
                "  service RSS per socket: {per_socket:.0} KiB ({} KiB growth per socket)",
                resources
                    .service_rss_growth_per_socket_kib
                    .map_or_else(|| "?".to_owned(), |growth| format!("{growth:.0}"))
            );
        }
        if !resources.backend_requests_per_message.is_empty() {
            let each: Vec<String> = resources
                .backend_requests_per_message
                .iter()
                .map(|(backend, per)| format!("{backend} {per:.2}"))
                .collect();
            let _ = writeln!(
                out,
                "  service requests per accepted message: {} (a Redis pipeline or script counts one)",
                each.join(", ")
            );
        }
    }
    let _ = writeln!(out, "{rule}");
    if summary.verdict.ok {
        let everybody = if group { " to every member" } else { "" };
        let reads = if summary.reads.is_some() {
            "; every read was answered ok"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "OK: every accepted message was delivered{everybody} once, in order{reads}."
        );
    } else {
        if summary.verdict.lost > 0 {
            let what = if group { "DELIVERIES" } else { "MESSAGES" };
            let _ = writeln!(
                out,
                "!!!!!!!! {} {what} LOST !!!!!!!!",
                summary.verdict.lost
            );
        }
        for problem in &summary.verdict.problems {
            let _ = writeln!(out, "PROBLEM: {problem}");
        }
    }
    let _ = writeln!(out, "{rule}");
    out
}
