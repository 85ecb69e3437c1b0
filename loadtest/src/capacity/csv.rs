//! `capacity.csv`: the curve, one line per step.

use std::fmt::Write;

use super::{book::Edge, curve::CapacityReport};

/// The columns of fan-out to the first and to the last recipient, after
/// the ones that came before them (so readers by position keep working).
const EDGES: [&str; 2] = ["fanout_first", "fanout_last"];
/// The figures of each.
const EDGE_FIGURES: [&str; 4] = ["p50_ms", "p95_ms", "p99_ms", "max_ms"];

/// One line per step; the per-process columns are named after the process.
/// `delivered_per_s` counts deliveries: one per message and recipient.
pub fn render(report: &CapacityReport) -> String {
    let mut out = String::from(
        "step,asked_per_s,window_s,sent_per_s,delivered_per_s,rejected,backlog_end,\
         fanout_p50_ms,fanout_p99_ms,ack_p50_ms,ack_p99_ms",
    );
    let names: Vec<&str> = report
        .steps
        .first()
        .map(|row| row.processes.iter().map(|p| p.name.as_str()).collect())
        .unwrap_or_default();
    for name in &names {
        let _ = write!(out, ",{name}_cores,{name}_cpu_us_per_msg");
    }
    out.push_str(",other_cores,status,failed");
    for edge in EDGES {
        for figure in EDGE_FIGURES {
            let _ = write!(out, ",{edge}_{figure}");
        }
    }
    out.push('\n');
    for row in &report.steps {
        let _ = write!(
            out,
            "{},{:.1},{:.3},{:.2},{:.2},{},{},{},{},{},{}",
            row.step,
            row.asked_per_s,
            row.window_s,
            row.sent_per_s,
            row.delivered_per_s,
            row.rejected,
            row.backlog_end.map_or_else(String::new, |b| b.to_string()),
            number(row.latency.fanout_p50_ms),
            number(row.latency.fanout_p99_ms),
            number(row.latency.ack_p50_ms),
            number(row.latency.ack_p99_ms),
        );
        for process in &row.processes {
            let _ = write!(
                out,
                ",{},{}",
                number(process.cores),
                number(process.cpu_us_per_message)
            );
        }
        let failed: Vec<&str> = row.failed.iter().map(|c| c.name()).collect();
        let _ = write!(
            out,
            ",{},{},{}",
            number(row.other_cores),
            row.status.name(),
            failed.join("+")
        );
        for edge in [&row.latency.fanout_first, &row.latency.fanout_last] {
            write_edge(&mut out, edge);
        }
        out.push('\n');
    }
    out
}

fn write_edge(out: &mut String, edge: &Edge) {
    for value in [edge.p50_ms, edge.p95_ms, edge.p99_ms, edge.max_ms] {
        let _ = write!(out, ",{}", number(value));
    }
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| format!("{v:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{
        book::StepLatency,
        curve::{Floors, Status, StepRow},
        judge::Stop,
    };

    fn report(latency: StepLatency) -> CapacityReport {
        CapacityReport {
            users: 100,
            room_size: 10,
            pipeline: 1,
            start_per_s: 50.0,
            step_per_s: 50.0,
            step_s: 5.0,
            max_p99_ms: 50.0,
            ceiling_per_s: None,
            floors: Floors {
                sending: 0.95,
                delivery: 0.95,
                backlog_growth: 0.01,
                backlog_floor: 20.0,
            },
            steps: vec![StepRow {
                step: 0,
                asked_per_s: 50.0,
                window_s: 5.0,
                sent_per_s: 50.0,
                delivered_per_s: 450.0,
                rejected: 0,
                backlog_end: Some(0),
                latency,
                processes: Vec::new(),
                other_cores: None,
                status: Status::Passed,
                failed: Vec::new(),
            }],
            stop: Stop::Ceiling,
            stop_reason: String::new(),
            sustainable_per_s: Some(50.0),
        }
    }

    #[test]
    fn every_line_has_a_value_or_a_blank_under_each_column() {
        let latency = StepLatency {
            fanout_first: Edge {
                p50_ms: Some(1.0),
                p95_ms: Some(2.0),
                p99_ms: Some(3.0),
                max_ms: Some(4.0),
            },
            ..StepLatency::default()
        };
        let csv = render(&report(latency));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        let header: Vec<&str> = lines[0].split(',').collect();
        let values: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(header.len(), values.len());
        let column = |name: &str| {
            let at = header.iter().position(|h| *h == name).expect(name);
            values[at]
        };
        assert_eq!(column("delivered_per_s"), "450.00");
        assert_eq!(column("fanout_first_p95_ms"), "2.000");
        assert_eq!(column("fanout_first_max_ms"), "4.000");
        assert_eq!(column("fanout_last_p99_ms"), "");
        assert_eq!(column("status"), "passed");
    }
}
