//! The capacity mode's live part, run beside the chatters: it samples the
//! backlog once a second, reads the watched processes' CPU time at every
//! step boundary, judges each step once its messages have had time to
//! arrive, and ends the sending at the first step that failed.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use tokio::time::{sleep_until, Instant};

use super::{
    book::StepCounts,
    judge::{self, Criterion, Observed, Stop},
    CapacityRun,
};
use crate::{
    config::CapacitySettings,
    procstat,
    sampler::{self, Watched},
    state::RunState,
};

/// How long after the latency limit past a step's end it is judged: its
/// last messages are due at its end, so any still missing then is slower
/// than the limit.
const JUDGE_MARGIN: Duration = Duration::from_secs(1);
/// How often the backlog is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long after a step failed the sending ends: every chatter (which
/// looks at least four times a second) and the sampler (once a second)
/// hear of the end before it comes, so no message is due after it and the
/// window-end sample still sees every socket.
const STOP_LEAD: Duration = Duration::from_secs(2);

/// The watched processes and the machine at one instant.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Seconds since sending started.
    pub at_s: f64,
    /// CPU seconds of each watched process so far (`None`: unreadable).
    pub cpu_s: Vec<Option<f64>>,
    /// Busy CPU seconds of the whole machine so far.
    pub machine_busy_s: Option<f64>,
}

/// What a step's judgement saw and decided.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The step's messages when it was judged.
    pub counts: StepCounts,
    /// The criteria it failed; empty when it passed.
    pub failed: Vec<Criterion>,
}

/// One step as it ran.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// Its number, from 0.
    pub index: usize,
    /// The rate asked for, msg/s.
    pub asked: f64,
    /// When it began.
    pub began: Reading,
    /// When it ended (or was cut short).
    pub ended: Option<Reading>,
    /// Deliveries of accepted messages still to come, once a second.
    pub backlog: Vec<u64>,
    /// The judgement, unless the run stopped first.
    pub judged: Option<Judged>,
}

/// What the controller leaves for the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The processes whose CPU time was read, in [`Reading::cpu_s`] order.
    pub watched: Vec<Watched>,
    /// Every step begun.
    pub steps: Vec<StepRecord>,
    /// Why the stepping ended.
    pub stop: Stop,
}

impl Outcome {
    /// Nothing measured: sending never started.
    pub fn not_measured(run: &RunState) -> Self {
        Self {
            watched: sampler::watched(run),
            steps: Vec::new(),
            stop: Stop::NotMeasured,
        }
    }
}

/// Follows the steps from the common start until the run stops stepping up.
pub async fn run(run: Arc<RunState>) -> Outcome {
    let (Some(settings), Some(capacity)) = (run.settings.capacity.clone(), run.capacity.as_ref())
    else {
        return Outcome::not_measured(&run);
    };
    let start = run.gate.decided_start().await;
    sleep_until(start).await;
    let mut follower = Follower {
        judge_after: settings.max_p99 + JUDGE_MARGIN,
        settings,
        capacity,
        start,
        watched: sampler::watched(&run),
        steps: Vec::new(),
        waiting: VecDeque::new(),
        next_sample: start + SAMPLE_EVERY,
    };
    let first = follower.read();
    follower.open(0, first);
    // Set once a step failed: why, and when sending ends.
    let mut stopping: Option<(Stop, Instant)> = None;
    loop {
        let open = follower.open_step();
        let boundary = open.map(|index| follower.boundary(index));
        let wake = [
            open.map(|_| follower.next_sample),
            boundary,
            follower.waiting.front().map(|(_, at)| *at),
            stopping.as_ref().map(|(_, end)| *end),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(wake) = wake else {
            return follower.outcome(Stop::NotMeasured);
        };
        sleep_until(wake).await;
        let now = Instant::now();
        if let Some((stop, end)) = stopping.take() {
            if now >= end {
                follower.cut_short();
                return follower.outcome(stop);
            }
            stopping = Some((stop, end));
        }
        if let Some(index) = open {
            if now >= follower.next_sample {
                follower.sample(index);
            }
            if boundary.is_some_and(|boundary| now >= boundary) {
                follower.close(index);
            }
        }
        while stopping.is_none() {
            let stop = match follower.judge_due(now) {
                Judging::NoneDue => break,
                Judging::GoOn => continue,
                Judging::Stop(stop) => stop,
            };
            println!("capacity: {}", stop.describe());
            if !matches!(stop, Stop::Failed { .. }) {
                // The plan is done: sending ended with its last step.
                return follower.outcome(stop);
            }
            let end = now + STOP_LEAD;
            run.end_sending_at(end);
            stopping = Some((stop, end));
        }
    }
}

/// What judging the next step came to.
enum Judging {
    /// No step is due for judgement.
    NoneDue,
    /// A step was judged; the run goes on.
    GoOn,
    /// A step was judged; the run stops stepping up.
    Stop(Stop),
}

/// The controller's state while the steps run.
struct Follower<'a> {
    settings: CapacitySettings,
    capacity: &'a CapacityRun,
    start: Instant,
    judge_after: Duration,
    watched: Vec<Watched>,
    steps: Vec<StepRecord>,
    /// Steps ended and not judged yet, with when they are judged.
    waiting: VecDeque<(usize, Instant)>,
    next_sample: Instant,
}

impl Follower<'_> {
    /// The step under way, if any.
    fn open_step(&self) -> Option<usize> {
        self.steps
            .last()
            .filter(|step| step.ended.is_none())
            .map(|step| step.index)
    }

    /// When step `index` ends.
    fn boundary(&self, index: usize) -> Instant {
        let (begin, end) = self.capacity.plan.window(index);
        self.start + end.unwrap_or(begin)
    }

    fn open(&mut self, index: usize, began: Reading) {
        self.steps.push(StepRecord {
            index,
            asked: self.capacity.plan.rate(index),
            began,
            ended: None,
            backlog: Vec::new(),
            judged: None,
        });
    }

    /// The backlog, into the step under way.
    fn sample(&mut self, index: usize) {
        self.steps[index].backlog.push(self.capacity.backlog());
        self.next_sample += SAMPLE_EVERY;
    }

    /// Step `index` reached its end: read the CPU, queue its judgement and
    /// begin the next one if the plan has it.
    fn close(&mut self, index: usize) {
        let reading = self.read();
        self.steps[index].ended = Some(reading.clone());
        self.waiting
            .push_back((index, self.boundary(index) + self.judge_after));
        if index + 1 < self.settings.steps {
            self.open(index + 1, reading);
        }
    }

    /// Sending ended early: the steps under way end here.
    fn cut_short(&mut self) {
        let reading = self.read();
        for step in self.steps.iter_mut().filter(|step| step.ended.is_none()) {
            step.ended = Some(reading.clone());
        }
    }

    /// Judges the next step due at `now`, if any.
    fn judge_due(&mut self, now: Instant) -> Judging {
        let Some(&(index, at)) = self.waiting.front() else {
            return Judging::NoneDue;
        };
        if now < at {
            return Judging::NoneDue;
        }
        self.waiting.pop_front();
        let plan = &self.capacity.plan;
        let (begin, end) = plan.window(index);
        let window_s = end.map_or(0.0, |end| (end - begin).as_secs_f64());
        let counts = self.capacity.book.counts(index, self.settings.max_p99);
        let step = &mut self.steps[index];
        let failed = judge::judge(&Observed {
            asked: step.asked,
            window_s,
            counts,
            recipients: self.capacity.recipients,
            backlog: &step.backlog,
        });
        say(step, window_s, &counts, &failed, self.capacity);
        step.judged = Some(Judged {
            counts,
            failed: failed.clone(),
        });
        let at_ceiling = self
            .settings
            .ceiling
            .is_some_and(|ceiling| plan.rate(index + 1) > ceiling + 1e-9);
        // A warm-up step is measured and said, but it does not stop the run.
        let counted: &[Criterion] = if index < self.settings.warmup_steps {
            &[]
        } else {
            &failed
        };
        match judge::after_step(index, counted, self.settings.steps, at_ceiling) {
            Some(stop) => Judging::Stop(stop),
            None => Judging::GoOn,
        }
    }

    fn read(&self) -> Reading {
        reading(self.start, &self.watched)
    }

    fn outcome(self, stop: Stop) -> Outcome {
        Outcome {
            watched: self.watched,
            steps: self.steps,
            stop,
        }
    }
}

/// One line per judged step, so a long run shows its progress.
fn say(
    step: &StepRecord,
    window_s: f64,
    counts: &StepCounts,
    failed: &[Criterion],
    capacity: &CapacityRun,
) {
    let per_s = |count: u64| count as f64 / window_s.max(1e-9);
    let p99 = capacity
        .book
        .latency(step.index)
        .fanout_p99_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
    let verdict = if failed.is_empty() {
        "passed".to_owned()
    } else {
        let names: Vec<&str> = failed
            .iter()
            .map(|criterion| criterion.describe())
            .collect();
        format!("FAILED: {}", names.join("; "))
    };
    println!(
        "capacity: step {} at {:.0} msg/s: sent {:.1}/s, delivered {:.1}/s, backlog {}, fan-out p99 {p99} -> {verdict}",
        step.index,
        step.asked,
        per_s(counts.sent),
        per_s(counts.delivered),
        step.backlog.last().copied().unwrap_or_default(),
    );
}

fn reading(start: Instant, watched: &[Watched]) -> Reading {
    Reading {
        at_s: Instant::now()
            .saturating_duration_since(start)
            .as_secs_f64(),
        cpu_s: watched
            .iter()
            .map(|process| procstat::sample(process.pid).map(|sample| sample.cpu_seconds))
            .collect(),
        machine_busy_s: procstat::machine().map(|(busy, _)| busy),
    }
}
