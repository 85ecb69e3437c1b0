//! The capacity curve as an SVG, drawn like `latency.svg` (see
//! [`crate::report::plot`]) but against the rate asked: latency, throughput
//! and CPU per process, one point per judged step. The curves rise to the
//! right, so the legends sit where they do not: lower right for latency
//! (above the floor) and throughput (under the diagonal), upper left for CPU.

use std::path::Path;

use plotters::prelude::*;

use super::curve::{CapacityReport, Status, StepRow};
use crate::report::plot::{legend_at, to_anyhow};

/// Lowest latency drawn on the log axis, ms.
const FLOOR_MS: f64 = 0.1;

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// A line of a chart: label, colour and the value it draws for a step.
type Line<T> = (&'static str, RGBColor, fn(&StepRow) -> T);

/// Draws the curve to `path`.
pub fn draw(path: &Path, report: &CapacityReport) -> anyhow::Result<()> {
    let rows: Vec<&StepRow> = report
        .steps
        .iter()
        .filter(|row| !matches!(row.status, Status::NotJudged | Status::WarmUp))
        .collect();
    let root = SVGBackend::new(path, (1200, 960)).into_drawing_area();
    root.fill(&WHITE).map_err(to_anyhow)?;
    let title = format!(
        "capacity: {} chatters, pipeline {} — sustainable {}; {}",
        report.users,
        report.pipeline,
        report
            .sustainable_per_s
            .map_or_else(|| "none".to_owned(), |rate| format!("{rate:.0} msg/s")),
        report.stop_reason
    );
    let root = root.titled(&title, ("sans-serif", 18)).map_err(to_anyhow)?;
    let panels = root.split_evenly((3, 1));
    let x_max = rows
        .iter()
        .map(|row| row.asked_per_s)
        .fold(report.start_per_s, f64::max)
        + report.step_per_s / 2.0;
    let x_min = (report.start_per_s - report.step_per_s / 2.0).max(0.0);
    latency_panel(&panels[0], &rows, report, x_min..x_max)?;
    throughput_panel(&panels[1], &rows, x_min..x_max)?;
    cpu_panel(&panels[2], &rows, x_min..x_max)?;
    root.present().map_err(to_anyhow)?;
    Ok(())
}

fn latency_panel(
    area: &Area<'_>,
    rows: &[&StepRow],
    report: &CapacityReport,
    x: std::ops::Range<f64>,
) -> anyhow::Result<()> {
    let y_max = rows
        .iter()
        .flat_map(|row| [row.latency.fanout_p99_ms, row.latency.ack_p99_ms])
        .flatten()
        .fold(report.max_p99_ms, f64::max)
        * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "latency per step (ms, log scale; from the scheduled send time)",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone(), (FLOOR_MS..y_max).log_scale())
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .x_desc("msg/s asked")
        .y_desc("ms")
        .draw()
        .map_err(to_anyhow)?;
    let lines: [Line<Option<f64>>; 4] = [
        ("fan-out p50", BLUE, |row| row.latency.fanout_p50_ms),
        ("fan-out p99", RED, |row| row.latency.fanout_p99_ms),
        ("ack p50", CYAN, |row| row.latency.ack_p50_ms),
        ("ack p99", GREEN, |row| row.latency.ack_p99_ms),
    ];
    for (label, color, value) in lines {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|row| Some((row.asked_per_s, value(row)?.max(FLOOR_MS))))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            .map_err(to_anyhow)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    let limit = report.max_p99_ms;
    chart
        .draw_series(DashedLineSeries::new(
            [(x.start, limit), (x.end, limit)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(to_anyhow)?
        .label("p99 limit")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    if let Some(rate) = report.sustainable_per_s {
        chart
            .draw_series(DashedLineSeries::new(
                [(rate, FLOOR_MS), (rate, y_max)],
                6,
                4,
                MAGENTA.stroke_width(1),
            ))
            .map_err(to_anyhow)?
            .label("sustainable rate")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MAGENTA.stroke_width(1)));
    }
    legend_at(&mut chart, SeriesLabelPosition::LowerRight)
}

fn throughput_panel(
    area: &Area<'_>,
    rows: &[&StepRow],
    x: std::ops::Range<f64>,
) -> anyhow::Result<()> {
    let y_max = rows
        .iter()
        .map(|row| row.sent_per_s.max(row.delivered_per_s))
        .fold(x.end, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "messages per second of each step (by scheduled send time, counted when judged)",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone(), 0.0..y_max)
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .x_desc("msg/s asked")
        .y_desc("msg/s")
        .draw()
        .map_err(to_anyhow)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(x.start, x.start), (x.end, x.end)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(to_anyhow)?
        .label("asked")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    let lines: [Line<f64>; 2] = [
        ("sent/s", GREEN, |row| row.sent_per_s),
        ("delivered/s", BLUE, |row| row.delivered_per_s),
    ];
    for (label, color, value) in lines {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|row| (row.asked_per_s, value(row)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            .map_err(to_anyhow)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend_at(&mut chart, SeriesLabelPosition::LowerRight)
}

fn cpu_panel(area: &Area<'_>, rows: &[&StepRow], x: std::ops::Range<f64>) -> anyhow::Result<()> {
    let y_max = rows
        .iter()
        .flat_map(|row| {
            row.processes
                .iter()
                .filter_map(|process| process.cores)
                .chain(row.other_cores)
        })
        .fold(1.0, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption("CPU (cores busy) per process", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x, 0.0..y_max)
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .x_desc("msg/s asked")
        .y_desc("cores")
        .draw()
        .map_err(to_anyhow)?;
    let names: Vec<String> = rows
        .first()
        .map(|row| row.processes.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let points = rows
                .iter()
                .filter_map(|row| Some((row.asked_per_s, row.processes.get(index)?.cores?)))
                .collect();
            (name.clone(), points)
        })
        .collect();
    lines.push((
        "other (not watched)".to_owned(),
        rows.iter()
            .filter_map(|row| Some((row.asked_per_s, row.other_cores?)))
            .collect(),
    ));
    for (index, (name, points)) in lines.into_iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            .map_err(to_anyhow)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend_at(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{
        book::StepLatency,
        curve::{Floors, StepProcess},
        judge::{Criterion, Stop},
    };

    fn row(step: usize, asked: f64, status: Status) -> StepRow {
        StepRow {
            step,
            asked_per_s: asked,
            window_s: 5.0,
            sent_per_s: asked,
            delivered_per_s: asked * 0.99,
            rejected: 0,
            backlog_end: Some(3),
            latency: StepLatency {
                fanout_p50_ms: Some(1.5),
                fanout_p99_ms: Some(asked / 10.0),
                ack_p50_ms: Some(1.4),
                ack_p99_ms: Some(asked / 11.0),
                ..StepLatency::default()
            },
            processes: vec![StepProcess {
                name: "service".to_owned(),
                cores: Some(asked / 1000.0),
                cpu_us_per_message: Some(200.0),
            }],
            other_cores: Some(0.3),
            status,
            failed: match status {
                Status::Failed => vec![Criterion::Latency],
                _ => Vec::new(),
            },
        }
    }

    fn report(steps: Vec<StepRow>) -> CapacityReport {
        CapacityReport {
            users: 200,
            room_size: 2,
            pipeline: 1,
            start_per_s: 100.0,
            step_per_s: 100.0,
            step_s: 5.0,
            max_p99_ms: 50.0,
            ceiling_per_s: Some(600.0),
            floors: Floors {
                sending: 0.95,
                delivery: 0.95,
                backlog_growth: 0.01,
                backlog_floor: 20.0,
            },
            steps,
            stop: Stop::NotMeasured,
            stop_reason: "test".to_owned(),
            sustainable_per_s: Some(200.0),
        }
    }

    #[test]
    fn the_curve_is_drawn_with_steps_and_without() {
        let dir = std::env::temp_dir().join(format!("capacity-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let curve = report(vec![
            row(0, 100.0, Status::Passed),
            row(1, 200.0, Status::Passed),
            row(2, 300.0, Status::Failed),
            row(3, 400.0, Status::NotJudged),
        ]);
        draw(&dir.join("curve.svg"), &curve).unwrap();
        let svg = std::fs::read_to_string(dir.join("curve.svg")).unwrap();
        assert!(svg.contains("sustainable 200 msg/s"));
        draw(&dir.join("empty.svg"), &report(Vec::new())).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
