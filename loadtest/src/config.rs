//! Settings of a run: goose's own command line plus a few environment
//! variables for what goose has no flag for.
//!
//! Goose parses `--host`, `--users`, `--increase-rate`, `--report-file` and
//! the rest; this module fills in this tool's defaults where they were not
//! given, takes this tool's own `--room-size` ([`room_size`]),
//! `--mark-read` ([`command_line`]) and `--reconnect` ([`reconnect`]) and
//! reads the `LOAD_*` variables (see
//! `loadtest/README.md`).

use std::{env, path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use goose::config::GooseConfiguration;

mod capacity;
mod chaos;
pub mod command_line;
pub mod reconnect;
pub mod room_size;

pub use capacity::CapacitySettings;
pub use chaos::{ChaosSettings, ScaleSettings};
pub use command_line::OwnFlags;

use crate::{coord::Rooms, plan::RatePlan};

/// Target when `--host` is not given.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:3000";
/// Chatters when `--users` is not given.
pub const DEFAULT_USERS: usize = 1_000;
/// Users started per second when neither `--increase-rate` nor
/// `--increase-time` is given.
pub const DEFAULT_INCREASE_RATE: f64 = 100.0;
/// Messages per second per chatter when `LOAD_RATE` is not set.
pub const DEFAULT_RATE_PER_CHATTER: f64 = 0.5;

/// Everything a run needs besides goose's own configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the service (`--host`): registrations and room lookups.
    pub host: String,
    /// Where sockets go (`LOAD_HOSTS`, default the host): chatter `i` opens
    /// its socket on `hosts[i % len]`, so partners sit on different
    /// instances when there are two.
    pub hosts: Vec<String>,
    /// Number of chatters (`--users`); a multiple of the room size.
    pub users: usize,
    /// Chatters per room (`--room-size`, `LOAD_ROOM_SIZE`, default 2): 2 is
    /// a pair in its private room, more a group room.
    pub room_size: usize,
    /// Users started per second (`--increase-rate`, or derived from `--increase-time`).
    pub increase_rate: f64,
    /// Messages per second, all chatters together (`LOAD_RATE`).
    pub rate: f64,
    /// How long the chatters send (`LOAD_DURATION`).
    pub duration: Duration,
    /// How long to wait for late deliveries once sending stopped (`LOAD_GRACE`).
    pub grace: Duration,
    /// How long past the expected end of the ramp a chatter waits for its
    /// partner and for the others before sending starts anyway (`LOAD_SETUP_TIMEOUT`).
    pub setup_timeout: Duration,
    /// How long a `message` may wait for its ack (`LOAD_ACK_TIMEOUT`).
    pub ack_timeout: Duration,
    /// Characters of text per message (`LOAD_MESSAGE_BYTES`).
    pub message_bytes: usize,
    /// Where the reports go (`LOAD_REPORT_DIR`).
    pub report_dir: PathBuf,
    /// The service's process, for RSS and CPU time (`LOAD_SERVICE_PID`).
    pub service_pid: Option<u32>,
    /// More processes to account CPU and RSS for, as `name=pid` pairs
    /// (`LOAD_WATCH_PIDS`, e.g. `cassandra=123,kafka=456,redis=789`).
    pub watch_pids: Vec<(String, u32)>,
    /// The service's Prometheus endpoint (`LOAD_METRICS_URL`, default `<host>/metrics`).
    pub metrics_url: String,
    /// The service's fan-out histogram (`LOAD_SERVER_METRIC`).
    pub server_metric: String,
    /// A tag unique to this run, in every username.
    pub run_tag: String,
    /// Acks each socket may have in flight (`LOAD_PIPELINE`, default 1):
    /// past one, messages leave on schedule without waiting for the
    /// previous answer, on this tool's own Socket.IO client.
    pub pipeline: usize,
    /// Chatters mark their room read as they receive (`--mark-read`,
    /// `LOAD_MARK_READ=1`): a `read` up to the newest message at most once
    /// a second each, its ack counted (see [`crate::conversation`]).
    pub mark_read: bool,
    /// The share of chatters that drop their socket now and then and
    /// catch up with `join {"since"}` (`--reconnect`, `LOAD_RECONNECT`);
    /// `None` when off.
    pub reconnect: Option<f64>,
    /// The chaos mode (`LOAD_CHAOS=1`): faults during the load, clients
    /// that reconnect and catch up, and a per-fault verdict.
    pub chaos: Option<ChaosSettings>,
    /// The capacity mode (`LOAD_CAPACITY=1`): the rate rises in steps until
    /// the service stops keeping up.
    pub capacity: Option<CapacitySettings>,
}

impl Settings {
    /// Fills goose's configuration with this tool's defaults and reads the
    /// environment; `own` are this tool's flags. The report files goose
    /// writes are put in the report directory unless `--report-file` was
    /// given.
    pub fn resolve(goose: &mut GooseConfiguration, own: &OwnFlags) -> anyhow::Result<Self> {
        let host = goose
            .host
            .get_or_insert_with(|| DEFAULT_HOST.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let users = *goose.users.get_or_insert(DEFAULT_USERS);
        let room_size = room_size::resolve(own.room_size.as_deref(), users)?;
        let increase_rate = match (&goose.increase_rate, &goose.increase_time) {
            (Some(rate), _) => rate
                .parse::<f64>()
                .ok()
                .filter(|rate| *rate > 0.0)
                .with_context(|| format!("--increase-rate {rate:?} is not a positive number"))?,
            (None, Some(time)) => {
                let time = parse_duration(time).context("--increase-time")?;
                users as f64 / time.as_secs_f64().max(1.0)
            }
            (None, None) => {
                goose.increase_rate = Some(DEFAULT_INCREASE_RATE.to_string());
                DEFAULT_INCREASE_RATE
            }
        };
        if goose.run_time.is_some() {
            bail!("--run-time is not used: the run lasts LOAD_DURATION plus LOAD_GRACE after the ramp");
        }
        // One iteration of the scenario is a chatter's whole life; the run
        // ends when every chatter is done.
        goose.iterations = Some(1);

        let rate = match env_value("LOAD_RATE")? {
            Some(rate) => rate
                .parse::<f64>()
                .ok()
                .filter(|rate| *rate > 0.0)
                .with_context(|| format!("LOAD_RATE {rate:?} is not a positive number"))?,
            None => users as f64 * DEFAULT_RATE_PER_CHATTER,
        };
        let run_tag = run_tag();
        let chaos = ChaosSettings::from_env()?;
        let duration_set = env_value("LOAD_DURATION")?
            .map(|_| env_duration("LOAD_DURATION", Duration::ZERO))
            .transpose()?;
        let capacity = CapacitySettings::from_env(duration_set)?;
        let pipeline = env_number("LOAD_PIPELINE", 1)?;
        if pipeline == 0 {
            bail!("LOAD_PIPELINE must be at least 1");
        }
        if chaos.is_some() && capacity.is_some() {
            bail!("LOAD_CHAOS and LOAD_CAPACITY are separate runs");
        }
        if chaos.is_some() && room_size > 2 {
            // The history, the catch-up and the checker follow one partner.
            bail!("LOAD_CHAOS runs with pairs: leave --room-size (LOAD_ROOM_SIZE) at 2");
        }
        if chaos.is_some() && pipeline > 1 {
            // A lost socket sends its one unanswered message again; the
            // chaos client is built around one message in flight.
            bail!("LOAD_CHAOS runs with one ack in flight: leave LOAD_PIPELINE unset");
        }
        let mark_read = own.mark_read || env_switch("LOAD_MARK_READ")?;
        if mark_read {
            check_mark_read(pipeline, chaos.is_some())?;
        }
        let reconnect = reconnect::resolve(own.reconnect.as_deref())?;
        if reconnect.is_some() {
            // Either client works: a chatter drops its socket only with no
            // ack in flight, and sends nothing until the new one is joined,
            // so the `join` is the one ack in flight on rust_socketio too.
            reconnect::check(chaos.is_some(), capacity.is_some())?;
        }
        // In chaos mode the nemesis ends the sending; LOAD_DURATION is a cap.
        // In capacity mode it is a cap on the steps, which make the duration.
        let (duration, grace) = match (&chaos, &capacity) {
            (Some(_), _) => (Duration::from_secs(30 * 60), Duration::from_secs(30)),
            (None, Some(capacity)) => (capacity.duration(), Duration::from_secs(10)),
            (None, None) => (Duration::from_secs(90), Duration::from_secs(10)),
        };
        let duration = match (&capacity, duration_set) {
            (None, Some(set)) => set,
            _ => duration,
        };
        let rate = match &capacity {
            Some(capacity) => capacity.start,
            None => rate,
        };
        let hosts = match env_value("LOAD_HOSTS")? {
            Some(list) => words(&list)
                .into_iter()
                .map(|host| host.trim_end_matches('/').to_owned())
                .collect(),
            None => vec![host.clone()],
        };
        if hosts.is_empty() {
            bail!("LOAD_HOSTS names no host");
        }
        let report_dir = match env_value("LOAD_REPORT_DIR")? {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from("reports/load")
                .join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()),
        };
        if goose.report_file.is_empty() {
            for extension in ["html", "json", "md"] {
                goose.report_file.push(
                    report_dir
                        .join(format!("goose.{extension}"))
                        .display()
                        .to_string(),
                );
            }
        }
        Ok(Self {
            metrics_url: env_value("LOAD_METRICS_URL")?
                .unwrap_or_else(|| format!("{host}/metrics")),
            host,
            hosts,
            users,
            room_size,
            increase_rate,
            rate,
            duration,
            grace: env_duration("LOAD_GRACE", grace)?,
            setup_timeout: env_duration("LOAD_SETUP_TIMEOUT", Duration::from_secs(60))?,
            ack_timeout: env_duration("LOAD_ACK_TIMEOUT", Duration::from_secs(10))?,
            message_bytes: env_number("LOAD_MESSAGE_BYTES", 100)?,
            report_dir,
            service_pid: env_value("LOAD_SERVICE_PID")?
                .map(|pid| {
                    pid.parse::<u32>()
                        .with_context(|| format!("LOAD_SERVICE_PID {pid:?}"))
                })
                .transpose()?,
            watch_pids: parse_watch_pids(&env_value("LOAD_WATCH_PIDS")?.unwrap_or_default())?,
            server_metric: env_value("LOAD_SERVER_METRIC")?
                .unwrap_or_else(|| "fanout_latency_seconds".to_owned()),
            run_tag,
            pipeline,
            mark_read,
            reconnect,
            chaos,
            capacity,
        })
    }

    /// The total send rate over time: `LOAD_RATE` throughout, or the
    /// capacity mode's steps.
    pub fn plan(&self) -> RatePlan {
        match &self.capacity {
            Some(capacity) => capacity.plan(),
            None => RatePlan::fixed(self.rate),
        }
    }

    /// How the chatters are put in rooms.
    pub fn rooms(&self) -> Rooms {
        Rooms::new(self.room_size)
    }

    /// How long the ramp should take at the configured rate.
    pub fn expected_ramp(&self) -> Duration {
        Duration::from_secs_f64(self.users as f64 / self.increase_rate)
    }
}

/// A non-empty environment variable, trimmed.
fn env_value(name: &str) -> anyhow::Result<Option<String>> {
    match env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value.trim().to_owned())),
        Err(env::VarError::NotPresent) => Ok(None),
        Err(error) => Err(error).with_context(|| format!("{name} is not valid UTF-8")),
    }
}

/// `1` or `0` (unset is `0`).
fn env_switch(name: &str) -> anyhow::Result<bool> {
    match env_value(name)?.as_deref() {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => bail!("{name}={other:?}: expected 1 or 0"),
    }
}

/// Marking rooms read needs a client that carries a `read` ack beside the
/// `message` acks, and a mode that has a place for it.
fn check_mark_read(pipeline: usize, chaos: bool) -> anyhow::Result<()> {
    if chaos {
        // The recording client and its checker know only messages.
        bail!("LOAD_MARK_READ (--mark-read) is not for the chaos mode: leave it unset with LOAD_CHAOS");
    }
    if pipeline < 2 {
        // rust_socketio picks ack ids at random and hands an ack to every
        // callback waiting with that id: a read beside a message could get
        // the message's ack, or the reader panic (socket/library.rs).
        bail!(
            "LOAD_MARK_READ (--mark-read) needs this tool's own Socket.IO client, which numbers its acks: \
             set LOAD_PIPELINE to 2 or more (and the same in the run you compare with). \
             With LOAD_PIPELINE=1 the chatters run on rust_socketio, which carries one ack at a time, \
             so a read would hold up the messages due behind it"
        );
    }
    Ok(())
}

fn env_duration(name: &str, default: Duration) -> anyhow::Result<Duration> {
    env_value(name)?.map_or(Ok(default), |value| {
        parse_duration(&value).with_context(|| format!("{name}={value:?}"))
    })
}

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    env_value(name)?.map_or(Ok(default), |value| {
        value
            .parse()
            .with_context(|| format!("{name}={value:?} is not a number"))
    })
}

/// Parses `90`, `90s`, `1500ms`, `2m`, `1m30s` or `1h`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds >= 0.0 && seconds.is_finite() {
            return Ok(Duration::from_secs_f64(seconds));
        }
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => bail!("unknown unit {c:?} in duration {text:?}"),
            }
        };
        let value: f64 = number
            .parse()
            .with_context(|| format!("no number before {c:?} in duration {text:?}"))?;
        total += Duration::from_secs_f64(value * unit);
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        bail!("duration {text:?} should look like 90s, 2m or 1m30s");
    }
    Ok(total)
}

/// Splits a list on commas and white space.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `name=pid,name=pid`.
fn parse_watch_pids(text: &str) -> anyhow::Result<Vec<(String, u32)>> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, pid) = pair
                .split_once('=')
                .with_context(|| format!("LOAD_WATCH_PIDS entry {pair:?} is not name=pid"))?;
            let pid = pid
                .trim()
                .parse()
                .with_context(|| format!("LOAD_WATCH_PIDS entry {pair:?}: bad pid"))?;
            Ok((name.trim().to_owned(), pid))
        })
        .collect()
}

/// A short tag, unique enough per run: the start time in base 36.
fn run_tag() -> String {
    let mut millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    let mut tag = Vec::new();
    while millis > 0 {
        let digit = u8::try_from(millis % 36).unwrap_or_default();
        tag.push(if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        });
        millis /= 36;
    }
    tag.reverse();
    String::from_utf8(tag).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_usual_forms() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn lists_split_on_commas_and_spaces() {
        assert_eq!(
            words("redis, cassandra kafka,,instance-2"),
            vec!["redis", "cassandra", "kafka", "instance-2"]
        );
        assert!(words(" , ").is_empty());
    }

    #[test]
    fn marking_read_needs_the_pipelined_client_and_no_chaos() {
        assert!(check_mark_read(2, false).is_ok());
        assert!(check_mark_read(16, false).is_ok());
        let error = check_mark_read(1, false).unwrap_err().to_string();
        assert!(error.contains("set LOAD_PIPELINE to 2 or more"), "{error}");
        let error = check_mark_read(2, true).unwrap_err().to_string();
        assert!(error.contains("chaos"), "{error}");
    }

    #[test]
    fn watch_pids_are_name_pid_pairs() {
        assert_eq!(
            parse_watch_pids("kafka=12, redis=34").unwrap(),
            vec![("kafka".to_owned(), 12), ("redis".to_owned(), 34)]
        );
        assert!(parse_watch_pids("kafka").is_err());
        assert!(parse_watch_pids("").unwrap().is_empty());
    }
}
