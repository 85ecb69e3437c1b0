//! The capacity curve as data: one row per step, the thresholds it was
//! judged by and how the stepping ended. [`super::report`] builds it; the
//! CSV, the table and the plot read it.

use serde::Serialize;

use super::{
    book::StepLatency,
    judge::{Criterion, Stop},
};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Sustained.
    Passed,
    /// Not sustained.
    Failed,
    /// Cut short (or not judged) because an earlier step failed.
    NotJudged,
    /// Warmed the stack up at the first rate: measured, not judged.
    WarmUp,
}

impl Status {
    /// Its name in `capacity.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::NotJudged => "not_judged",
            Status::WarmUp => "warm_up",
        }
    }
}

/// One watched process during one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepProcess {
    /// Its role.
    pub name: String,
    /// Cores busy on average.
    pub cores: Option<f64>,
    /// CPU time per delivery, µs (per message delivered, in a pair).
    pub cpu_us_per_message: Option<f64>,
}

/// One step of the curve.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    /// Its number, from 0.
    pub step: usize,
    /// The rate asked for, msg/s.
    pub asked_per_s: f64,
    /// How long it sent, seconds (shorter when cut short).
    pub window_s: f64,
    /// Its messages emitted by the time it was judged, per second.
    pub sent_per_s: f64,
    /// Its deliveries (one per message and recipient: in a pair, its
    /// messages delivered) by the time it was judged, per second.
    pub delivered_per_s: f64,
    /// Its messages refused.
    pub rejected: u64,
    /// Accepted-but-undelivered at its end.
    pub backlog_end: Option<u64>,
    /// Fan-out and ack percentiles of its messages (all of them, after the run).
    #[serde(flatten)]
    pub latency: StepLatency,
    /// CPU per watched process.
    pub processes: Vec<StepProcess>,
    /// Cores busy with anything not watched.
    pub other_cores: Option<f64>,
    /// Passed, failed or not judged.
    pub status: Status,
    /// What it failed on.
    pub failed: Vec<Criterion>,
}

/// The whole curve and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    /// Chatters.
    pub users: usize,
    /// Chatters per room: each message has `room_size - 1` deliveries.
    pub room_size: usize,
    /// Acks in flight per socket.
    pub pipeline: usize,
    /// The first step's rate, msg/s.
    pub start_per_s: f64,
    /// The rise per step, msg/s.
    pub step_per_s: f64,
    /// Each step's length, seconds.
    pub step_s: f64,
    /// The fan-out p99 a step may reach, ms.
    pub max_p99_ms: f64,
    /// The highest rate to try, msg/s.
    pub ceiling_per_s: Option<f64>,
    /// The thresholds of the other criteria (see [`super::judge`]).
    pub floors: Floors,
    /// One row per step begun.
    pub steps: Vec<StepRow>,
    /// Why the stepping ended.
    pub stop: Stop,
    /// The same, in words.
    pub stop_reason: String,
    /// The last step that passed before the first failure, msg/s.
    pub sustainable_per_s: Option<f64>,
}

/// The fixed thresholds of [`super::judge`].
#[derive(Debug, Clone, Serialize)]
pub struct Floors {
    /// Share of the asked messages that must leave the tool.
    pub sending: f64,
    /// Share of the sent messages that must be delivered.
    pub delivery: f64,
    /// Backlog growth over a step that fails it, as a share of its messages.
    pub backlog_growth: f64,
    /// Backlog growth that is noise, messages.
    pub backlog_floor: f64,
}

impl CapacityReport {
    /// True when at least one step was judged.
    pub fn measured(&self) -> bool {
        self.steps.iter().any(|row| row.status != Status::NotJudged)
    }
}
