//! The capacity curve as a table for the terminal: rates and latencies per
//! step, then CPU per process and step, then the sustainable rate.

use std::fmt::Write;

use super::curve::{CapacityReport, Status};

/// The curve as a table for the terminal.
pub fn render(report: &CapacityReport) -> String {
    let mut out = String::new();
    let rule = "=".repeat(78);
    let _ = writeln!(out, "{rule}");
    let group = report.room_size > 2;
    let rooms = if group {
        format!(" in rooms of {}", report.room_size)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "capacity: {} chatters{rooms}, pipeline {}, steps of {:.0}s from {:.0} msg/s by +{:.0}{}, fan-out p99 limit {:.0} ms",
        report.users,
        report.pipeline,
        report.step_s,
        report.start_per_s,
        report.step_per_s,
        report
            .ceiling_per_s
            .map_or_else(String::new, |ceiling| format!(" up to {ceiling:.0}")),
        report.max_p99_ms
    );
    let _ = writeln!(out, "{rule}");
    if group {
        let _ = writeln!(
            out,
            "deliv/s and backlog count deliveries ({} per message); fan p50/p99 time every delivery, 1st/last p99 a message's first and last recipient",
            report.room_size - 1
        );
    }
    let edges = if group {
        format!("{:>9}{:>9}", "1st p99", "last p99")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{:>4}{:>8}{:>9}{:>9}{:>8}{:>9}{:>9}{:>9}{:>9}{edges}  result",
        "step", "asked", "sent/s", "deliv/s", "backlog", "fan p50", "fan p99", "ack p50", "ack p99"
    );
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for row in &report.steps {
        let result = match row.status {
            Status::Passed => "passed".to_owned(),
            Status::NotJudged => "not judged (cut short)".to_owned(),
            Status::WarmUp if row.failed.is_empty() => "warm-up (would pass)".to_owned(),
            Status::WarmUp => {
                let names: Vec<&str> = row.failed.iter().map(|c| c.name()).collect();
                format!("warm-up (would fail: {})", names.join(", "))
            }
            Status::Failed => {
                let names: Vec<&str> = row.failed.iter().map(|c| c.name()).collect();
                format!("FAILED ({})", names.join(", "))
            }
        };
        let edges = if group {
            format!(
                "{:>9}{:>9}",
                ms(row.latency.fanout_first.p99_ms),
                ms(row.latency.fanout_last.p99_ms)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:>4}{:>8.0}{:>9.1}{:>9.1}{:>8}{:>9}{:>9}{:>9}{:>9}{edges}  {result}",
            row.step,
            row.asked_per_s,
            row.sent_per_s,
            row.delivered_per_s,
            row.backlog_end
                .map_or_else(|| "-".to_owned(), |b| b.to_string()),
            ms(row.latency.fanout_p50_ms),
            ms(row.latency.fanout_p99_ms),
            ms(row.latency.ack_p50_ms),
            ms(row.latency.ack_p99_ms),
        );
    }
    render_cpu(&mut out, report);
    let _ = writeln!(out, "{rule}");
    match report.sustainable_per_s {
        Some(rate) => {
            let _ = writeln!(out, "SUSTAINABLE RATE: {rate:.0} msg/s");
        }
        None => {
            let _ = writeln!(
                out,
                "SUSTAINABLE RATE: below {:.0} msg/s (no step passed)",
                report.start_per_s
            );
        }
    }
    let _ = writeln!(out, "stopped: {}", report.stop_reason);
    let _ = writeln!(out, "{rule}");
    out
}

/// Cores and CPU µs per delivered message, per process and step.
fn render_cpu(out: &mut String, report: &CapacityReport) {
    let Some(first) = report.steps.first() else {
        return;
    };
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU per step: cores busy / CPU µs per delivery (per delivered message, in pairs)"
    );
    let _ = write!(out, "{:>4}{:>8}", "step", "asked");
    for process in &first.processes {
        let _ = write!(out, "{:>18}", process.name);
    }
    let _ = writeln!(out, "{:>8}", "other");
    for row in &report.steps {
        let _ = write!(out, "{:>4}{:>8.0}", row.step, row.asked_per_s);
        for process in &row.processes {
            let cell = match (process.cores, process.cpu_us_per_message) {
                (Some(cores), Some(us)) => format!("{cores:.2} / {us:.0}"),
                (Some(cores), None) => format!("{cores:.2} / -"),
                _ => "-".to_owned(),
            };
            let _ = write!(out, "{cell:>18}");
        }
        let other = row
            .other_cores
            .map_or_else(|| "-".to_owned(), |cores| format!("{cores:.2}"));
        let _ = writeln!(out, "{other:>8}");
    }
}
