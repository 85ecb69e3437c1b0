//! Latency, throughput and CPU over time, as one SVG (plotters' SVG
//! backend: no font or image libraries needed).

use std::path::Path;

use plotters::prelude::*;

use crate::{latency::SecondPoint, sampler::Samples};

/// A line of a chart: label, colour and the value it draws.
type Line<T> = (&'static str, RGBColor, fn(&SecondPoint) -> T);

/// Lowest latency drawn on the log axis, ms.
const FLOOR_MS: f64 = 0.1;

/// Draws `series` (per second of sending) and the CPU samples to `path`.
/// `start_s` is when sending started, in the sampler's seconds.
pub fn draw(
    path: &Path,
    title: &str,
    series: &[SecondPoint],
    samples: &Samples,
    start_s: f64,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 960)).into_drawing_area();
    root.fill(&WHITE).map_err(to_anyhow)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(to_anyhow)?;
    let panels = root.split_evenly((3, 1));
    let cpu = cpu_series(samples, start_s);
    let x_min = cpu
        .first()
        .and_then(|(_, points)| points.first())
        .map_or(0.0, |p| p.0)
        .min(0.0);
    let x_max = (series.len() as f64)
        .max(
            cpu.iter()
                .filter_map(|(_, points)| points.last())
                .map(|p| p.0)
                .fold(1.0, f64::max),
        )
        .max(1.0);

    latency_panel(&panels[0], series, x_min, x_max)?;
    throughput_panel(&panels[1], series, x_min, x_max)?;
    cpu_panel(&panels[2], &cpu, x_min, x_max)?;
    root.present().map_err(to_anyhow)?;
    Ok(())
}

fn latency_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[SecondPoint],
    x_min: f64,
    x_max: f64,
) -> anyhow::Result<()> {
    let y_max = series
        .iter()
        .map(|p| p.fanout_max_ms.max(p.ack_p99_ms))
        .fold(10.0, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "latency per second (ms, log scale; from the scheduled send time)",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, (FLOOR_MS..y_max).log_scale())
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .x_desc("seconds since sending started")
        .y_desc("ms")
        .draw()
        .map_err(to_anyhow)?;
    let lines: [Line<f64>; 4] = [
        ("fan-out p50", BLUE, |p| p.fanout_p50_ms),
        ("fan-out p99", RED, |p| p.fanout_p99_ms),
        ("fan-out max", MAGENTA, |p| p.fanout_max_ms),
        ("ack p99", GREEN, |p| p.ack_p99_ms),
    ];
    for (label, color, value) in lines {
        let points = series
            .iter()
            .filter(|p| p.delivered > 0 || p.acked > 0)
            .map(|p| (p.second as f64 + 0.5, value(p).max(FLOOR_MS)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(to_anyhow)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn throughput_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[SecondPoint],
    x_min: f64,
    x_max: f64,
) -> anyhow::Result<()> {
    let y_max = series
        .iter()
        .map(|p| p.delivered.max(p.acked))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption("messages per second", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .x_desc("seconds since sending started")
        .y_desc("msg/s")
        .draw()
        .map_err(to_anyhow)?;
    let lines: [Line<u64>; 2] = [
        ("delivered (reply received)", BLUE, |p| p.delivered),
        ("accepted (ack received)", GREEN, |p| p.acked),
    ];
    for (label, color, value) in lines {
        let points = series
            .iter()
            .map(|p| (p.second as f64 + 0.5, value(p) as f64));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(to_anyhow)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn cpu_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    cpu: &[(String, Vec<(f64, f64)>)],
    x_min: f64,
    x_max: f64,
) -> anyhow::Result<()> {
    let y_max = cpu
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption("CPU (cores busy) per process", ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .x_desc("seconds since sending started")
        .y_desc("cores")
        .draw()
        .map_err(to_anyhow)?;
    for (index, (name, points)) in cpu.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(to_anyhow)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    legend_at(chart, SeriesLabelPosition::UpperRight)
}

/// Draws the legend of a chart at `position`.
pub(crate) fn legend_at<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(to_anyhow)
}

/// Cores busy per process between consecutive samples, at the midpoint,
/// in seconds since sending started.
fn cpu_series(samples: &Samples, start_s: f64) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = samples
        .watched
        .iter()
        .enumerate()
        .map(|(index, watched)| {
            let points = samples
                .series
                .windows(2)
                .filter_map(|pair| {
                    let before = pair[0].processes.get(index).copied().flatten()?;
                    let after = pair[1].processes.get(index).copied().flatten()?;
                    let elapsed = pair[1].at_s - pair[0].at_s;
                    (elapsed > 0.0).then(|| {
                        (
                            (pair[0].at_s + pair[1].at_s) / 2.0 - start_s,
                            (after.cpu_seconds - before.cpu_seconds).max(0.0) / elapsed,
                        )
                    })
                })
                .collect();
            (watched.name.clone(), points)
        })
        .collect();
    // What the machine did besides the watched processes.
    let other = samples
        .series
        .windows(2)
        .enumerate()
        .filter_map(|(index, pair)| {
            let elapsed = pair[1].at_s - pair[0].at_s;
            let busy = (pair[1].machine_busy_s - pair[0].machine_busy_s) / elapsed;
            let watched: f64 = lines
                .iter()
                .filter_map(|(_, points)| points.get(index).map(|p| p.1))
                .sum();
            (elapsed > 0.0).then(|| {
                (
                    (pair[0].at_s + pair[1].at_s) / 2.0 - start_s,
                    (busy - watched).max(0.0),
                )
            })
        })
        .collect();
    lines.push(("other (not watched)".to_owned(), other));
    lines
}

/// plotters' errors as `anyhow` errors.
pub(crate) fn to_anyhow(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {error}")
}
