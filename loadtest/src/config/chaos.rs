//! The chaos mode's settings (`LOAD_CHAOS=1`); see [`crate::chaos`].

use std::time::Duration;

use anyhow::bail;

use super::{env_duration, env_value, words};

/// What the nemesis kills when `LOAD_CHAOS_FAULTS` is not set.
pub const DEFAULT_CHAOS_FAULTS: &str = "redis,cassandra,kafka,instance-2";
/// The instances the scale nemesis adds and removes when
/// `LOAD_CHAOS_SCALE` is not set.
pub const DEFAULT_CHAOS_SCALE: &str = "extra-3";
/// The command the nemesis runs when `LOAD_CHAOS_CTL` is not set.
pub const DEFAULT_CHAOS_CTL: &str = "bash loadtest/chaos.sh ctl";

/// The chaos mode's settings; see [`crate::chaos`].
#[derive(Debug, Clone)]
pub struct ChaosSettings {
    /// What the nemesis kills, in order (`LOAD_CHAOS_FAULTS`).
    pub faults: Vec<String>,
    /// The command that kills and restarts a target (`LOAD_CHAOS_CTL`),
    /// run as `<ctl> kill <target>` and `<ctl> start <target>`.
    pub ctl: Vec<String>,
    /// Calm after sending starts, before the first fault (`LOAD_CHAOS_WARMUP`).
    pub warmup: Duration,
    /// How long a killed target stays down (`LOAD_CHAOS_DOWN`).
    pub down: Duration,
    /// Calm after a target is back, still counted to its fault (`LOAD_CHAOS_SETTLE`).
    pub settle: Duration,
    /// Calm after the last fault before sending stops (`LOAD_CHAOS_TAIL`).
    pub tail: Duration,
    /// Longest a `kill` or `start` may take (`LOAD_CHAOS_COMMAND_TIMEOUT`).
    pub command_timeout: Duration,
    /// The scale nemesis, alongside the faults; `None` when
    /// `LOAD_CHAOS_SCALE` is `none`.
    pub scale: Option<ScaleSettings>,
}

/// The scale nemesis's settings: instances that join and leave the
/// deployment, one after another, for as long as the faults run.
#[derive(Debug, Clone)]
pub struct ScaleSettings {
    /// The instances, taken in turn (`LOAD_CHAOS_SCALE`), run as
    /// `<ctl> join|leave|crash <instance>`.
    pub instances: Vec<String>,
    /// How long a joined instance stays (`LOAD_CHAOS_SCALE_STAY`).
    pub stay: Duration,
    /// How long after a leave the next join comes (`LOAD_CHAOS_SCALE_GAP`).
    pub gap: Duration,
    /// Counted to a join or leave after its command returned: the time the
    /// consumer groups take to rebalance (`LOAD_CHAOS_SCALE_SETTLE`).
    pub settle: Duration,
}

impl ChaosSettings {
    /// `None` unless `LOAD_CHAOS` is `1`.
    pub(super) fn from_env() -> anyhow::Result<Option<Self>> {
        match env_value("LOAD_CHAOS")?.as_deref() {
            None | Some("0") => return Ok(None),
            Some("1") => {}
            Some(other) => bail!("LOAD_CHAOS={other:?}: expected 1 or 0"),
        }
        let faults = words(
            &env_value("LOAD_CHAOS_FAULTS")?.unwrap_or_else(|| DEFAULT_CHAOS_FAULTS.to_owned()),
        );
        let ctl =
            words(&env_value("LOAD_CHAOS_CTL")?.unwrap_or_else(|| DEFAULT_CHAOS_CTL.to_owned()));
        if ctl.is_empty() {
            bail!("LOAD_CHAOS_CTL is empty");
        }
        Ok(Some(Self {
            faults,
            ctl,
            warmup: env_duration("LOAD_CHAOS_WARMUP", Duration::from_secs(20))?,
            down: env_duration("LOAD_CHAOS_DOWN", Duration::from_secs(8))?,
            settle: env_duration("LOAD_CHAOS_SETTLE", Duration::from_secs(20))?,
            tail: env_duration("LOAD_CHAOS_TAIL", Duration::from_secs(20))?,
            command_timeout: env_duration("LOAD_CHAOS_COMMAND_TIMEOUT", Duration::from_secs(300))?,
            scale: ScaleSettings::from_env()?,
        }))
    }
}

impl ScaleSettings {
    fn from_env() -> anyhow::Result<Option<Self>> {
        let instances = words(
            &env_value("LOAD_CHAOS_SCALE")?.unwrap_or_else(|| DEFAULT_CHAOS_SCALE.to_owned()),
        );
        if instances == ["none"] {
            return Ok(None);
        }
        Ok(Some(Self {
            instances,
            stay: env_duration("LOAD_CHAOS_SCALE_STAY", Duration::from_secs(15))?,
            gap: env_duration("LOAD_CHAOS_SCALE_GAP", Duration::from_secs(5))?,
            settle: env_duration("LOAD_CHAOS_SCALE_SETTLE", Duration::from_secs(10))?,
        }))
    }
}
