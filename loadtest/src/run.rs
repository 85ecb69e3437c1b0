//! One run from start to finish: settings, the `/metrics` scrape before,
//! the goose attack (with the nemesis in chaos mode, the step controller in
//! capacity mode), the scrape after, the reports and the verdict.

use std::{fs, process::ExitCode, time::Duration};

use anyhow::Context;
use goose::GooseAttack;

use crate::{
    capacity::{self, controller::Outcome, curve::CapacityReport},
    chaos::{self, nemesis},
    chatter, clock,
    config::{command_line, Settings},
    prometheus::Scrape,
    report::{self, server::ServerLatency, summary::Summary, table},
    sampler,
    state::{self, RunState},
};

/// Exit status when accepted messages were lost.
const EXIT_LOST: u8 = 2;
/// Exit status for other problems (duplicates, disorder, failed setups, ...).
const EXIT_PROBLEMS: u8 = 3;

/// Runs the load test described by the command line and environment.
pub async fn run() -> anyhow::Result<ExitCode> {
    clock::origin();
    let (mut goose_config, own_flags) = command_line::parse()?;
    let settings = Settings::resolve(&mut goose_config, &own_flags)?;
    fs::create_dir_all(&settings.report_dir)
        .with_context(|| format!("creating {}", settings.report_dir.display()))?;
    warn_about_file_limit(settings.users);
    announce(&settings);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("http client")?;
    let before = scrape(&http, &settings.metrics_url).await;
    let started_at = chrono::Utc::now().to_rfc3339();
    let report_dir = settings.report_dir.clone();
    let server_metric = settings.server_metric.clone();
    let metrics_url = settings.metrics_url.clone();
    let chaos_mode = settings.chaos.is_some();
    let capacity_mode = settings.capacity.is_some();
    let run = state::install(RunState::new(settings)?);

    let (stop_sampler, stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sampler::run(run.clone(), stopped));
    let nemesis = chaos_mode.then(|| tokio::spawn(nemesis::run(run.clone())));
    let controller = capacity_mode.then(|| tokio::spawn(capacity::controller::run(run.clone())));
    let attack = GooseAttack::initialize_with_config(goose_config)
        .context("goose configuration")?
        .register_scenario(chatter::scenario())
        .execute()
        .await;
    let _ = stop_sampler.send(());
    let samples = sampler.await.context("sampler task")?;
    if let Some(nemesis) = nemesis {
        if run.gate.decided().is_none() {
            // Sending never started, so nothing was killed.
            nemesis.abort();
        } else {
            // It ended the sending, so it is done, or finishing a fault:
            // it must not leave a target down.
            nemesis.await.context("nemesis task")?;
        }
    }
    let outcome = match controller {
        // Sending never started: nothing to follow.
        Some(controller) if run.gate.decided().is_none() => {
            controller.abort();
            Some(Outcome::not_measured(&run))
        }
        // It judges the last step shortly after sending ends.
        Some(controller) => Some(controller.await.context("capacity controller")?),
        None => None,
    };
    attack.context("goose attack")?;

    let after = scrape(&http, &metrics_url).await;
    let server = ServerLatency::derive(&server_metric, before.as_ref(), after.as_ref());
    let mut summary = Summary::build(&run, started_at, &samples, server);
    summary.capacity = outcome
        .as_ref()
        .and_then(|outcome| CapacityReport::build(&run, outcome));
    print!("{}", table::render(&summary));
    if let Some(curve) = &summary.capacity {
        print!("{}", capacity::table::render(curve));
    }
    report::write(&report_dir, &summary, &samples)?;
    if chaos_mode {
        let verdict = chaos::finish(&run).await?;
        println!("reports: {}", report_dir.display());
        let total = &verdict.total;
        return Ok(if total.lost + total.silent + total.double_outcomes > 0 {
            ExitCode::from(EXIT_LOST)
        } else if !verdict.ok {
            ExitCode::from(EXIT_PROBLEMS)
        } else {
            ExitCode::SUCCESS
        });
    }
    println!("reports: {}", report_dir.display());
    if let Some(curve) = &summary.capacity {
        return Ok(capacity_exit(&summary, curve));
    }

    Ok(if summary.verdict.lost > 0 {
        ExitCode::from(EXIT_LOST)
    } else if !summary.verdict.ok {
        ExitCode::from(EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

/// A capacity run is a measurement: it succeeds when it drew the curve,
/// whatever the curve says. Lost messages still fail it (2); so do
/// duplicates, disorder and deliveries of refused messages, which no load
/// excuses, and a curve without a single judged step (3).
fn capacity_exit(summary: &Summary, curve: &CapacityReport) -> ExitCode {
    let messages = &summary.messages;
    if messages.lost > 0 {
        ExitCode::from(EXIT_LOST)
    } else if !curve.measured()
        || messages.duplicated > 0
        || messages.out_of_order > 0
        || messages.delivered_rejected > 0
    {
        ExitCode::from(EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    }
}

/// The run's shape, before it starts.
fn announce(settings: &Settings) {
    let rate = match &settings.capacity {
        Some(capacity) => format!(
            "capacity mode: {:.0} msg/s in total, +{:.0} every {:?}, {} steps at most, fan-out p99 limit {:?},",
            capacity.start, capacity.step, capacity.step_duration, capacity.steps, capacity.max_p99
        ),
        None => format!(
            "{:.1} msg/s in total ({:.2} per chatter) for {:?},",
            settings.rate,
            settings.rate / settings.users as f64,
            settings.duration
        ),
    };
    let rooms = match settings.room_size {
        2 => "in pairs".to_owned(),
        size => format!("in group rooms of {size}"),
    };
    let reads = if settings.mark_read {
        ", marking rooms read (each chatter at most once a second)"
    } else {
        ""
    };
    println!(
        "load: {} chatters {rooms} at {} users/s, {rate} {:?} grace, {} ack(s) in flight per socket{reads}, against {}; reports in {}",
        settings.users,
        settings.increase_rate,
        settings.grace,
        settings.pipeline,
        settings.host,
        settings.report_dir.display()
    );
}

/// `GET /metrics`; `None` (with a note) when it cannot be read.
pub(crate) async fn scrape(http: &reqwest::Client, url: &str) -> Option<Scrape> {
    let response = match http.get(url).send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            eprintln!(
                "load: {url} answered {}; no server-side figures",
                response.status()
            );
            return None;
        }
        Err(error) => {
            eprintln!("load: cannot read {url}: {error}; no server-side figures");
            return None;
        }
    };
    match response.text().await {
        Ok(text) => Some(Scrape::parse(&text)),
        Err(error) => {
            eprintln!("load: reading {url}: {error}");
            None
        }
    }
}

/// Each socket is a file descriptor: warn when the limit cannot hold them.
fn warn_about_file_limit(users: usize) {
    let Ok(limits) = fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok());
    if let Some(soft) = soft {
        if soft < users * 2 + 256 {
            eprintln!(
                "load: WARNING: open-file limit {soft} is low for {users} chatters; run `ulimit -n 65535` first"
            );
        }
    }
}
