//! Samples the watched processes (service, backends, this tool) and the
//! machine every second, and exactly at the start and near the end of the
//! sending window, while every socket is still held.

use std::{collections::BTreeMap, sync::atomic::Ordering, sync::Arc, time::Duration};

use serde::Serialize;
use tokio::{
    sync::oneshot,
    time::{sleep_until, Instant},
};

use crate::{
    procstat::{self, ProcSample},
    state::RunState,
};

/// How long before the end of sending the "window end" sample is taken:
/// chatters start closing sockets right after the end.
const END_MARGIN: Duration = Duration::from_millis(500);

/// A process the report accounts for.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    /// Its role (`service`, `cassandra`, `loadtest`, ...).
    pub name: String,
    /// Its pid.
    pub pid: u32,
}

/// Everything measured at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Seconds since the run began.
    pub at_s: f64,
    /// Sockets open.
    pub sockets_open: u64,
    /// Busy CPU time of the machine so far (all cores), seconds.
    pub machine_busy_s: f64,
    /// Total CPU time of the machine so far (all cores), seconds.
    pub machine_total_s: f64,
    /// One reading per watched process, in [`Samples::watched`] order.
    pub processes: Vec<Option<ProcSample>>,
}

/// The sampler's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Samples {
    /// What was watched.
    pub watched: Vec<Watched>,
    /// Before any chatter started.
    pub baseline: Snapshot,
    /// When sending started.
    pub window_start: Option<Snapshot>,
    /// Just before sending ended.
    pub window_end: Option<Snapshot>,
    /// The service's requests to each backend so far
    /// (`backend_requests_total` by `backend`), when sending started.
    pub requests_start: Option<BTreeMap<String, f64>>,
    /// The same, just before sending ended.
    pub requests_end: Option<BTreeMap<String, f64>>,
    /// One per second.
    pub series: Vec<Snapshot>,
}

/// The processes to watch: the service and the `LOAD_WATCH_PIDS` ones when
/// set, and this tool.
pub fn watched(run: &RunState) -> Vec<Watched> {
    let settings = &run.settings;
    let mut watched: Vec<Watched> = settings
        .service_pid
        .map(|pid| Watched {
            name: "service".to_owned(),
            pid,
        })
        .into_iter()
        .collect();
    watched.extend(settings.watch_pids.iter().map(|(name, pid)| Watched {
        name: name.clone(),
        pid: *pid,
    }));
    watched.push(Watched {
        name: "loadtest".to_owned(),
        pid: std::process::id(),
    });
    watched
}

/// Samples until `stop` fires.
pub async fn run(run: Arc<RunState>, mut stop: oneshot::Receiver<()>) -> Samples {
    let watched = watched(&run);
    let snapshot = || take(&run, &watched);
    let baseline = snapshot();
    let mut series = Vec::new();
    let mut window_start = None;
    let mut window_end = None;
    let (mut requests_start, mut requests_end) = (None, None);
    let http = reqwest::Client::new();
    let requests = || async {
        crate::run::scrape(&http, &run.settings.metrics_url)
            .await
            .map(|scrape| scrape.totals_by("backend_requests_total", "backend"))
    };
    let mut start: Option<Instant> = None;
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    let decided = run.gate.decided_start();
    tokio::pin!(decided);
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        let start_at = start.unwrap_or(far);
        let end_at = start.map_or(far, |start| {
            run.send_end(start)
                .checked_sub(END_MARGIN)
                .unwrap_or(start)
                .max(start)
        });
        tokio::select! {
            _ = &mut stop => break,
            _ = every_second.tick() => series.push(snapshot()),
            decided_start = &mut decided, if start.is_none() => start = Some(decided_start),
            () = sleep_until(start_at), if start.is_some() && window_start.is_none() => {
                window_start = Some(snapshot());
                requests_start = requests().await;
            }
            () = sleep_until(end_at), if window_start.is_some() && window_end.is_none() => {
                window_end = Some(snapshot());
                requests_end = requests().await;
            }
        }
    }
    Samples {
        watched,
        baseline,
        window_start,
        window_end,
        requests_start,
        requests_end,
        series,
    }
}

fn take(run: &RunState, watched: &[Watched]) -> Snapshot {
    let (machine_busy_s, machine_total_s) = procstat::machine().unwrap_or_default();
    Snapshot {
        at_s: run.began.elapsed().as_secs_f64(),
        sockets_open: run.counters.sockets_open.load(Ordering::SeqCst),
        machine_busy_s,
        machine_total_s,
        processes: watched.iter().map(|w| procstat::sample(w.pid)).collect(),
    }
}
