//! The capacity mode's settings (`LOAD_CAPACITY=1`): the send rate rises in
//! steps until the service stops keeping up; see [`crate::capacity`].

use std::time::Duration;

use anyhow::{bail, Context};

use super::{env_duration, env_value};
use crate::plan::RatePlan;

/// The first step's rate when `LOAD_CAPACITY_START` is not set, msg/s.
pub const DEFAULT_START: f64 = 250.0;
/// The rise per step when `LOAD_CAPACITY_STEP` is not set, msg/s.
pub const DEFAULT_STEP: f64 = 250.0;
/// A step's length when `LOAD_CAPACITY_STEP_DURATION` is not set.
pub const DEFAULT_STEP_DURATION: Duration = Duration::from_secs(20);
/// The fan-out p99 a step may reach when `LOAD_CAPACITY_MAX_P99_MS` is not set.
pub const DEFAULT_MAX_P99: Duration = Duration::from_millis(50);
/// Steps at the first rate before the rise when `LOAD_CAPACITY_WARMUP_STEPS`
/// is not set: a fresh keyspace and cold JVMs fail a first step that a
/// second run passes.
pub const DEFAULT_WARMUP_STEPS: usize = 1;
/// How long a capacity run may send when `LOAD_DURATION` is not set.
pub const DEFAULT_CAP: Duration = Duration::from_secs(30 * 60);

/// How the rate rises and when a step fails.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySettings {
    /// The first step's rate, msg/s (`LOAD_CAPACITY_START`).
    pub start: f64,
    /// Added at each step, msg/s (`LOAD_CAPACITY_STEP`).
    pub step: f64,
    /// How long each step sends (`LOAD_CAPACITY_STEP_DURATION`).
    pub step_duration: Duration,
    /// The fan-out p99 a step may reach and still pass (`LOAD_CAPACITY_MAX_P99_MS`).
    pub max_p99: Duration,
    /// The highest rate to try, msg/s (`LOAD_CAPACITY_MAX`); none: until a
    /// step fails or `LOAD_DURATION` runs out.
    pub ceiling: Option<f64>,
    /// Steps at the first rate before the rise, reported but not judged
    /// (`LOAD_CAPACITY_WARMUP_STEPS`).
    pub warmup_steps: usize,
    /// Steps planned, the warm-up included: up to the ceiling, and no more
    /// than fit in `LOAD_DURATION`.
    pub steps: usize,
}

impl CapacitySettings {
    /// `None` unless `LOAD_CAPACITY` is `1`. `cap` is `LOAD_DURATION`
    /// when set: the longest the steps may take together.
    pub(super) fn from_env(cap: Option<Duration>) -> anyhow::Result<Option<Self>> {
        match env_value("LOAD_CAPACITY")?.as_deref() {
            None | Some("0") => return Ok(None),
            Some("1") => {}
            Some(other) => bail!("LOAD_CAPACITY={other:?}: expected 1 or 0"),
        }
        if env_value("LOAD_RATE")?.is_some() {
            bail!("LOAD_RATE is not used in capacity mode: set LOAD_CAPACITY_START and LOAD_CAPACITY_STEP");
        }
        let start = env_rate("LOAD_CAPACITY_START", DEFAULT_START)?;
        let step = env_rate("LOAD_CAPACITY_STEP", DEFAULT_STEP)?;
        let ceiling = env_value("LOAD_CAPACITY_MAX")?
            .map(|_| env_rate("LOAD_CAPACITY_MAX", 0.0))
            .transpose()?;
        let step_duration = env_duration("LOAD_CAPACITY_STEP_DURATION", DEFAULT_STEP_DURATION)?;
        if step_duration < Duration::from_secs(2) {
            bail!("LOAD_CAPACITY_STEP_DURATION must be at least 2s (the backlog is sampled once a second)");
        }
        let max_p99 = match env_value("LOAD_CAPACITY_MAX_P99_MS")? {
            Some(ms) => ms
                .parse::<f64>()
                .ok()
                .filter(|ms| *ms > 0.0 && ms.is_finite())
                .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                .with_context(|| {
                    format!("LOAD_CAPACITY_MAX_P99_MS={ms:?} is not a positive number")
                })?,
            None => DEFAULT_MAX_P99,
        };
        let warmup_steps = match env_value("LOAD_CAPACITY_WARMUP_STEPS")? {
            Some(steps) => steps.parse::<usize>().with_context(|| {
                format!("LOAD_CAPACITY_WARMUP_STEPS={steps:?} is not a whole number")
            })?,
            None => DEFAULT_WARMUP_STEPS,
        };
        let steps = planned_steps(
            start,
            step,
            ceiling,
            step_duration,
            cap.unwrap_or(DEFAULT_CAP),
            warmup_steps,
        )?;
        Ok(Some(Self {
            start,
            step,
            step_duration,
            max_p99,
            ceiling,
            warmup_steps,
            steps,
        }))
    }

    /// The rates and step times.
    pub fn plan(&self) -> RatePlan {
        RatePlan::stepped(self.start, self.step, self.step_duration).with_warmup(self.warmup_steps)
    }

    /// How long the planned steps send.
    pub fn duration(&self) -> Duration {
        self.step_duration * u32::try_from(self.steps).unwrap_or(u32::MAX)
    }
}

/// Steps up to `ceiling` (if any) after `warmup` that fit in `cap`.
fn planned_steps(
    start: f64,
    step: f64,
    ceiling: Option<f64>,
    step_duration: Duration,
    cap: Duration,
    warmup: usize,
) -> anyhow::Result<usize> {
    let fit = (cap.as_secs_f64() / step_duration.as_secs_f64()).floor() as usize;
    if fit <= warmup {
        bail!(
            "LOAD_DURATION {cap:?} has no room for a judged step after {warmup} warm-up step(s) of {step_duration:?}"
        );
    }
    let Some(ceiling) = ceiling else {
        return Ok(fit);
    };
    if ceiling < start {
        bail!("LOAD_CAPACITY_MAX {ceiling} is below LOAD_CAPACITY_START {start}");
    }
    // A little slack, so 100 + 5 × 100 reaches a ceiling of 600 exactly.
    let to_ceiling = ((ceiling - start) / step + 1e-9).floor() as usize + 1;
    Ok((warmup + to_ceiling).min(fit))
}

fn env_rate(name: &str, default: f64) -> anyhow::Result<f64> {
    env_value(name)?.map_or(Ok(default), |value| {
        value
            .parse::<f64>()
            .ok()
            .filter(|rate| *rate > 0.0 && rate.is_finite())
            .with_context(|| format!("{name}={value:?} is not a positive number of msg/s"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ceiling_plans_the_steps_up_to_it() {
        let step = Duration::from_secs(5);
        let cap = Duration::from_secs(3600);
        assert_eq!(
            planned_steps(100.0, 100.0, Some(600.0), step, cap, 0).unwrap(),
            6
        );
        assert_eq!(
            planned_steps(100.0, 100.0, Some(650.0), step, cap, 0).unwrap(),
            6
        );
        assert_eq!(
            planned_steps(100.0, 100.0, Some(100.0), step, cap, 0).unwrap(),
            1
        );
        assert!(planned_steps(100.0, 100.0, Some(50.0), step, cap, 0).is_err());
    }

    #[test]
    fn the_duration_caps_the_steps_in_whole_steps() {
        let step = Duration::from_secs(20);
        let cap = Duration::from_secs(90);
        assert_eq!(planned_steps(250.0, 250.0, None, step, cap, 0).unwrap(), 4);
        assert_eq!(
            planned_steps(250.0, 250.0, Some(10_000.0), step, cap, 0).unwrap(),
            4
        );
        assert!(planned_steps(250.0, 250.0, None, step, Duration::from_secs(10), 0).is_err());
    }

    #[test]
    fn warm_up_steps_come_first_and_leave_room_for_a_judged_one() {
        let step = Duration::from_secs(20);
        let cap = Duration::from_secs(90);
        assert_eq!(
            planned_steps(250.0, 250.0, Some(500.0), step, cap, 1).unwrap(),
            3
        );
        assert_eq!(planned_steps(250.0, 250.0, None, step, cap, 1).unwrap(), 4);
        assert!(planned_steps(250.0, 250.0, None, step, Duration::from_secs(20), 1).is_err());
        let plan = RatePlan::stepped(250.0, 250.0, step).with_warmup(1);
        assert_eq!(
            (plan.rate(0), plan.rate(1), plan.rate(2)),
            (250.0, 250.0, 500.0)
        );
    }
}
