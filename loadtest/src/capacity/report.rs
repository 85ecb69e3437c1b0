//! Building the capacity curve from the steps once the run is over, and
//! writing it as `capacity.csv` and `capacity.svg`. The curve itself is
//! [`super::curve`]; it is also the `capacity` section of `summary.json`
//! and a table on the terminal.

use std::{fs, path::Path, time::Duration};

use anyhow::Context;

use super::{
    book::{StepCounts, StepLatency},
    controller::{Outcome, Reading, StepRecord},
    csv,
    curve::{CapacityReport, Floors, Status, StepProcess, StepRow},
    judge, plot,
};
use crate::{sampler::Watched, state::RunState};

impl CapacityReport {
    /// Puts the curve together once the run is over (latencies include the
    /// messages that arrived after their step was judged).
    pub fn build(run: &RunState, outcome: &Outcome) -> Option<Self> {
        let settings = run.settings.capacity.as_ref()?;
        let capacity = run.capacity.as_ref()?;
        let steps: Vec<StepRow> = outcome
            .steps
            .iter()
            .map(|step| {
                let counts = match &step.judged {
                    Some(judged) => judged.counts,
                    None => capacity.book.counts(step.index, settings.max_p99),
                };
                let latency = capacity.book.latency(step.index);
                row(
                    step,
                    &outcome.watched,
                    counts,
                    latency,
                    settings.step_duration,
                    step.index < settings.warmup_steps,
                )
            })
            .collect();
        let curve: Vec<(f64, bool)> = steps
            .iter()
            .filter(|row| !matches!(row.status, Status::NotJudged | Status::WarmUp))
            .map(|row| (row.asked_per_s, row.status == Status::Passed))
            .collect();
        Some(Self {
            users: run.settings.users,
            room_size: run.settings.room_size,
            pipeline: run.settings.pipeline,
            start_per_s: settings.start,
            step_per_s: settings.step,
            step_s: settings.step_duration.as_secs_f64(),
            max_p99_ms: settings.max_p99.as_secs_f64() * 1000.0,
            ceiling_per_s: settings.ceiling,
            floors: Floors {
                sending: judge::SENDING_FLOOR,
                delivery: judge::DELIVERY_FLOOR,
                backlog_growth: judge::BACKLOG_GROWTH,
                backlog_floor: judge::BACKLOG_FLOOR,
            },
            steps,
            stop_reason: outcome.stop.describe(),
            stop: outcome.stop.clone(),
            sustainable_per_s: judge::sustainable(&curve),
        })
    }
}

/// One step's row. Rates are over the step's planned length when it was
/// judged (its messages are those due in it), CPU over the time between
/// the two readings.
fn row(
    step: &StepRecord,
    watched: &[Watched],
    counts: StepCounts,
    latency: StepLatency,
    planned: Duration,
    warming: bool,
) -> StepRow {
    let measured_s = step
        .ended
        .as_ref()
        .map_or(0.0, |ended| ended.at_s - step.began.at_s)
        .max(1e-9);
    let window_s = match step.judged {
        Some(_) => planned.as_secs_f64(),
        None => measured_s,
    };
    let per_s = |count: u64| count as f64 / window_s;
    let delivered_per_s = per_s(counts.delivered);
    let used = |cpu: fn(&Reading, usize) -> Option<f64>, index: usize| {
        let ended = step.ended.as_ref()?;
        Some((cpu(ended, index)? - cpu(&step.began, index)?).max(0.0))
    };
    let process_cpu = |reading: &Reading, index: usize| reading.cpu_s.get(index).copied().flatten();
    let processes: Vec<StepProcess> = watched
        .iter()
        .enumerate()
        .map(|(index, watched)| {
            let cpu_s = used(process_cpu, index);
            StepProcess {
                name: watched.name.clone(),
                cores: cpu_s.map(|cpu| cpu / measured_s),
                cpu_us_per_message: cpu_s
                    .filter(|_| counts.delivered > 0)
                    .map(|cpu| cpu * 1e6 / counts.delivered as f64),
            }
        })
        .collect();
    let watched_cores: f64 = processes.iter().filter_map(|process| process.cores).sum();
    let other_cores = used(|reading, _| reading.machine_busy_s, 0)
        .map(|busy| (busy / measured_s - watched_cores).max(0.0));
    let (status, failed) = match &step.judged {
        Some(judged) if warming => (Status::WarmUp, judged.failed.clone()),
        Some(judged) if judged.failed.is_empty() => (Status::Passed, Vec::new()),
        Some(judged) => (Status::Failed, judged.failed.clone()),
        None => (Status::NotJudged, Vec::new()),
    };
    StepRow {
        step: step.index,
        asked_per_s: step.asked,
        window_s,
        sent_per_s: per_s(counts.sent),
        delivered_per_s,
        rejected: counts.rejected,
        backlog_end: step.backlog.last().copied(),
        latency,
        processes,
        other_cores,
        status,
        failed,
    }
}

/// Writes `capacity.csv` and `capacity.svg` into `dir`.
pub fn write(dir: &Path, report: &CapacityReport) -> anyhow::Result<()> {
    fs::write(dir.join("capacity.csv"), csv::render(report)).context("writing capacity.csv")?;
    plot::draw(&dir.join("capacity.svg"), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::controller::Judged;

    fn reading(at_s: f64, cpu_s: Vec<Option<f64>>, busy_s: f64) -> Reading {
        Reading {
            at_s,
            cpu_s,
            machine_busy_s: Some(busy_s),
        }
    }

    fn watched() -> Vec<Watched> {
        ["service", "loadtest"]
            .into_iter()
            .enumerate()
            .map(|(pid, name)| Watched {
                name: name.to_owned(),
                pid: pid as u32,
            })
            .collect()
    }

    #[test]
    fn a_step_row_turns_cpu_time_into_cores_and_microseconds_per_message() {
        // 10 s at 100 msg/s: the service used 2 s of CPU, the tool 1 s, the
        // machine 4 s in all.
        let step = StepRecord {
            index: 3,
            asked: 100.0,
            began: reading(30.0, vec![Some(5.0), Some(1.0)], 50.0),
            ended: Some(reading(40.0, vec![Some(7.0), Some(2.0)], 54.0)),
            backlog: vec![1, 2, 0, 3],
            judged: Some(Judged {
                counts: StepCounts {
                    sent: 1_000,
                    accepted: 1_000,
                    rejected: 0,
                    delivered: 1_000,
                    slow: 0,
                },
                failed: Vec::new(),
            }),
        };
        let counts = step.judged.as_ref().unwrap().counts;
        let row = row(
            &step,
            &watched(),
            counts,
            StepLatency::default(),
            Duration::from_secs(10),
            false,
        );
        assert_eq!(row.status, Status::Passed);
        assert!((row.sent_per_s - 100.0).abs() < 1e-9);
        assert_eq!(row.backlog_end, Some(3));
        let service = &row.processes[0];
        assert!((service.cores.unwrap() - 0.2).abs() < 1e-9);
        assert!((service.cpu_us_per_message.unwrap() - 2_000.0).abs() < 1e-6);
        assert!((row.processes[1].cpu_us_per_message.unwrap() - 1_000.0).abs() < 1e-6);
        assert!((row.other_cores.unwrap() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_step_cut_short_is_reported_over_the_time_it_ran_and_not_judged() {
        let step = StepRecord {
            index: 4,
            asked: 200.0,
            began: reading(40.0, vec![None, Some(2.0)], 54.0),
            ended: Some(reading(41.0, vec![None, Some(2.5)], 55.0)),
            backlog: Vec::new(),
            judged: None,
        };
        let counts = StepCounts {
            sent: 200,
            delivered: 150,
            ..StepCounts::default()
        };
        let row = row(
            &step,
            &watched(),
            counts,
            StepLatency::default(),
            Duration::from_secs(10),
            false,
        );
        assert_eq!(row.status, Status::NotJudged);
        assert!((row.sent_per_s - 200.0).abs() < 1e-9);
        assert!((row.delivered_per_s - 150.0).abs() < 1e-9);
        assert_eq!(row.processes[0].cores, None);
        assert_eq!(row.backlog_end, None);
    }
}
