//! The nemesis: the fault schedule, run while the chatters talk.
//!
//! After a calm warm-up it takes each target in turn: `<ctl> kill
//! <target>` (SIGKILL), a few seconds down, `<ctl> start <target>` (which
//! returns once the target answers), then a settling time still counted to
//! the fault. Each fault's window is recorded on the run's clock; what the
//! chatters did meanwhile is the history's business, and what it means is
//! the checker's. After the last fault the chatters send for a calm tail,
//! then stop.
//!
//! Alongside that schedule, not in turn with it, the scale nemesis
//! ([`super::scale`]) adds and removes service instances, as autoscaling
//! and rolling updates do whatever the backends are going through.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use tokio::time::{sleep, sleep_until, Instant};

use crate::{clock, config::ChaosSettings, history::FaultWindow, latency::lock, state::RunState};

/// How often `/ready` is asked while a fault settles.
const READY_POLL: Duration = Duration::from_millis(500);

/// Runs the schedule once sending has started, recording each fault in
/// `windows` as it ends, and ends the sending after the tail.
pub async fn run(run: Arc<RunState>) {
    let (Some(settings), Some(chaos)) = (run.settings.chaos.clone(), run.chaos.as_ref()) else {
        return;
    };
    let start = run.gate.decided_start().await;
    let start_us = clock::micros(start.into_std());
    let cap = start + run.settings.duration;
    let log_path = run.settings.report_dir.join("nemesis.log");
    let say = |text: String| {
        let at = clock::now_micros().saturating_sub(start_us) as f64 / 1e6;
        println!("chaos: +{at:.1}s {text}");
        append(&log_path, &format!("==== +{at:.1}s {text}\n"));
    };
    sleep_until(start + settings.warmup).await;
    let (done, schedule_done) = tokio::sync::watch::channel(false);
    let scaling = async {
        if let Some(scale) = &settings.scale {
            super::scale::run(chaos, &settings, scale, schedule_done, &say, &log_path).await;
        }
    };
    let schedule = async {
        faults(&run, &settings, cap, &say, &log_path).await;
        let _ = done.send(true);
    };
    tokio::join!(schedule, scaling);
    say(format!(
        "schedule done; sending for {:?} more",
        settings.tail
    ));
    run.end_sending_at(Instant::now() + settings.tail);
}

/// Each backend fault in turn, until the last or one that did not come back.
async fn faults(
    run: &RunState,
    settings: &ChaosSettings,
    cap: Instant,
    say: &impl Fn(String),
    log_path: &Path,
) {
    let Some(chaos) = run.chaos.as_ref() else {
        return;
    };
    for target in &settings.faults {
        if Instant::now() + settings.down + settings.settle >= cap {
            say(format!(
                "LOAD_DURATION reached; {target} and later faults skipped"
            ));
            break;
        }
        let window = fault(run, settings, target, say, log_path).await;
        let broken = window.up_us.is_none();
        lock(&chaos.windows).push(window);
        if broken {
            say(format!(
                "{target} did not come back; the schedule stops here"
            ));
            break;
        }
    }
}

async fn fault(
    run: &RunState,
    settings: &ChaosSettings,
    target: &str,
    say: &impl Fn(String),
    log_path: &Path,
) -> FaultWindow {
    let mut failure = None;
    let started_us = clock::now_micros();
    say(format!("kill {target}"));
    let killed = command(settings, "kill", target, log_path).await;
    let killed_us = match killed {
        Ok(()) => Some(clock::now_micros()),
        Err(error) => {
            say(format!("kill {target} failed: {error}"));
            failure = Some(format!("kill: {error}"));
            None
        }
    };
    sleep(settings.down).await;
    let restarting_us = clock::now_micros();
    say(format!("start {target}"));
    let up_us = match command(settings, "start", target, log_path).await {
        Ok(()) => {
            let up_us = clock::now_micros();
            say(format!(
                "{target} up after {:.1}s",
                up_us.saturating_sub(restarting_us) as f64 / 1e6
            ));
            Some(up_us)
        }
        Err(error) => {
            say(format!("start {target} failed: {error}"));
            failure.get_or_insert(format!("start: {error}"));
            None
        }
    };
    let settled = Instant::now() + settings.settle;
    let ready_us = match up_us {
        Some(_) => ready(run, settled).await,
        None => None,
    };
    match ready_us {
        Some(at) => say(format!(
            "every instance ready {:.1}s after {target} was up",
            at.saturating_sub(up_us.unwrap_or(at)) as f64 / 1e6
        )),
        None => say(format!(
            "not every instance is ready after {:?}",
            settings.settle
        )),
    }
    sleep_until(settled).await;
    FaultWindow {
        target: target.to_owned(),
        started_us,
        killed_us,
        restarting_us: Some(restarting_us),
        up_us,
        ready_us,
        ended_us: clock::now_micros(),
        failure,
        concurrent: false,
    }
}

/// Runs `<ctl> <verb> <target>`, its output appended to the nemesis log.
pub(super) async fn command(
    settings: &ChaosSettings,
    verb: &str,
    target: &str,
    log_path: &Path,
) -> Result<(), String> {
    let output = || -> Stdio {
        log_file(log_path)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    let (program, args) = settings
        .ctl
        .split_first()
        .ok_or_else(|| "LOAD_CHAOS_CTL is empty".to_owned())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .arg(verb)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    match tokio::time::timeout(settings.command_timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{verb} {target}: {status} (see nemesis.log)")),
        Ok(Err(error)) => Err(format!("{verb} {target}: {error}")),
        Err(_) => Err(format!(
            "{verb} {target}: no answer in {:?}",
            settings.command_timeout
        )),
    }
}

/// Polls every instance's `/ready` until all answer 200 or `deadline`.
async fn ready(run: &RunState, deadline: Instant) -> Option<u64> {
    let chaos = run.chaos.as_ref()?;
    loop {
        let mut all = true;
        for host in &run.settings.hosts {
            let answer = chaos
                .http
                .get(format!("{host}/ready"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            all &= matches!(answer, Ok(response) if response.status().is_success());
        }
        if all {
            return Some(clock::now_micros());
        }
        if Instant::now() + READY_POLL >= deadline {
            return None;
        }
        sleep(READY_POLL).await;
    }
}

fn log_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn append(path: &Path, text: &str) {
    if let Ok(mut file) = log_file(path) {
        let _ = file.write_all(text.as_bytes());
    }
}
