//! The scale nemesis: service instances join and leave the deployment
//! while the backend faults run, as autoscaling and rolling updates do.
//!
//! It takes each instance of `LOAD_CHAOS_SCALE` in turn: `<ctl> join
//! <instance>` (it returns once the instance answers `/ready`), a stay,
//! then `<ctl> leave <instance>` (SIGTERM) or `<ctl> crash <instance>`
//! (SIGKILL), alternately, and a gap before the next join. Every join and
//! leave makes the consumer groups rebalance under load. Each event is
//! recorded as a concurrent window: from the command to its return plus
//! the settling time. The instances carry no chatters: what is tested is
//! what the others go through. When the backend schedule is done, an
//! instance still in leaves, and the scale nemesis stops.

use std::{path::Path, time::Duration};

use tokio::sync::watch;

use super::nemesis::command;
use crate::{
    clock,
    config::{ChaosSettings, ScaleSettings},
    history::FaultWindow,
    latency::lock,
    state::ChaosRun,
};

/// How a joined instance goes.
#[derive(Clone, Copy)]
enum Leave {
    /// SIGTERM: it hands its partitions back.
    Term,
    /// SIGKILL: the group notices by the session timeout.
    Kill,
}

impl Leave {
    fn verb(self) -> &'static str {
        match self {
            Self::Term => "leave",
            Self::Kill => "crash",
        }
    }

    fn next(self) -> Self {
        match self {
            Self::Term => Self::Kill,
            Self::Kill => Self::Term,
        }
    }
}

/// Joins and leaves until `schedule_done` turns true (or a command fails),
/// recording each event in the run's windows.
pub async fn run(
    chaos: &ChaosRun,
    settings: &ChaosSettings,
    scale: &ScaleSettings,
    mut schedule_done: watch::Receiver<bool>,
    say: &impl Fn(String),
    log_path: &Path,
) {
    let mut leave = Leave::Term;
    for instance in scale.instances.iter().cycle() {
        if *schedule_done.borrow() {
            break;
        }
        let joined = event(chaos, settings, scale, "join", instance, say, log_path).await;
        if !joined {
            break;
        }
        let done = wait(&mut schedule_done, scale.stay).await;
        let verb = if done { "leave" } else { leave.verb() };
        let left = event(chaos, settings, scale, verb, instance, say, log_path).await;
        leave = leave.next();
        if done || !left || wait(&mut schedule_done, scale.gap).await {
            break;
        }
    }
    say("scale nemesis done".to_owned());
}

/// Runs `<ctl> <verb> <instance>` and records its window; false when the
/// command failed (the nemesis stops then: the failure fails the run).
async fn event(
    chaos: &ChaosRun,
    settings: &ChaosSettings,
    scale: &ScaleSettings,
    verb: &str,
    instance: &str,
    say: &impl Fn(String),
    log_path: &Path,
) -> bool {
    let target = format!("{verb} {instance}");
    let started_us = clock::now_micros();
    say(format!("scale: {target}"));
    let result = command(settings, verb, instance, log_path).await;
    let returned_us = clock::now_micros();
    let failure = match result {
        Ok(()) => {
            say(format!(
                "scale: {target} done after {:.1}s",
                returned_us.saturating_sub(started_us) as f64 / 1e6
            ));
            None
        }
        Err(error) => {
            say(format!("scale: {target} failed: {error}"));
            Some(error)
        }
    };
    let ok = failure.is_none();
    let settle_us = u64::try_from(scale.settle.as_micros()).unwrap_or(u64::MAX);
    let (killed_us, up_us) = match verb {
        "join" => (None, ok.then_some(returned_us)),
        _ => (ok.then_some(returned_us), None),
    };
    lock(&chaos.windows).push(FaultWindow {
        target,
        started_us,
        killed_us,
        restarting_us: None,
        up_us,
        ready_us: None,
        ended_us: returned_us.saturating_add(settle_us),
        failure,
        concurrent: true,
    });
    ok
}

/// Waits `duration`, or less if the schedule ends first; true when it did.
async fn wait(schedule_done: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    let ended = tokio::time::timeout(duration, schedule_done.wait_for(|done| *done)).await;
    matches!(ended, Ok(Ok(_)))
}
