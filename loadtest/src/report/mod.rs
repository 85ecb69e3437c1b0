//! What a run leaves behind: `summary.json`, `latency.svg` and a table on
//! the terminal (goose writes its own HTML/JSON/Markdown next to them).

pub mod plot;
pub mod reads;
pub mod rejoins;
pub mod server;
pub mod summary;
pub mod table;

use std::{fs, path::Path};

use anyhow::Context;

use crate::{
    capacity,
    report::summary::{Mode, Summary},
    sampler::Samples,
};

/// Writes `summary.json`, `samples.json` and `latency.svg` into `dir`, and
/// in capacity mode `capacity.csv` and `capacity.svg`.
pub fn write(dir: &Path, summary: &Summary, samples: &Samples) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(summary)?;
    fs::write(dir.join("summary.json"), json).context("writing summary.json")?;
    let json = serde_json::to_string_pretty(samples)?;
    fs::write(dir.join("samples.json"), json).context("writing samples.json")?;
    if let Some(curve) = &summary.capacity {
        capacity::report::write(dir, curve)?;
    }
    let rate = match summary.run.mode {
        Mode::Capacity => format!("from {:.0} msg/s up", summary.run.rate),
        Mode::Fixed | Mode::Chaos => format!("{:.0} msg/s", summary.run.rate),
    };
    let rooms = match summary.run.room_size {
        2 => String::new(),
        size => format!(" in rooms of {size}"),
    };
    let marking = if summary.run.mark_read {
        ", marking read"
    } else {
        ""
    };
    let reconnecting = summary
        .rejoins
        .as_ref()
        .map_or_else(String::new, |rejoins| {
            format!(", {:.0}% reconnecting", rejoins.share * 100.0)
        });
    let title = format!(
        "{} chatters{rooms}, {rate}, pipeline {}{marking}{reconnecting}, {:.0}s — fan-out p99 {:.1} ms, lost {}",
        summary.run.users,
        summary.run.pipeline,
        summary.run.duration_s,
        summary.latency.fanout.p99_ms,
        summary.messages.lost
    );
    let start_s = summary.run.setup_s.unwrap_or(0.0);
    plot::draw(
        &dir.join("latency.svg"),
        &title,
        &summary.series,
        samples,
        start_s,
    )
}
