//! What most scenarios share: a two-instance deployment with traffic on
//! both instances, one backend broken and healed on a schedule, the
//! history handed back for the verdict; and the report printed beside it.

use std::time::Duration;

use e2e::{chat::full_history, socket::Credentials, stack::Service, Api, ChatSocket};
use serde_json::Value;

use crate::{
    checker::Verdict,
    client::{open_lanes, Finished, LaneInfo, Traffic},
    deployment::Deployment,
    history::{Clock, Delivery, FaultLog, History, Outcome, Watch},
    nemesis::{Broken, Fault},
};

/// How long traffic may take to get going on a fresh deployment.
pub const WARM_UP: Duration = Duration::from_secs(30);
/// How long `/ready` may take to notice a broken backend (its probes time
/// out after 2 s).
pub const NOTICE: Duration = Duration::from_secs(30);
/// How long the service may take to recover once the backend answers:
/// reconnects, a consumer group rejoining a restarted broker.
pub const RECOVERY: Duration = Duration::from_secs(120);
/// Messages each lane must get accepted before the fault, and again after.
pub const FLOWING: usize = 5;

/// One backend fault under traffic.
pub struct Plan {
    /// The backend to break.
    pub service: Service,
    /// How.
    pub fault: Fault,
    /// How long it stays broken once every instance's `/ready` says so.
    pub outage: Duration,
    /// Extra environment of the deployment.
    pub env: &'static [(&'static str, &'static str)],
    /// How long deliveries may take to settle once the traffic stops.
    pub settle: Duration,
    /// Whether to open a new socket while the backend is broken, and again
    /// once it is healed (see [`Run::new_sockets`]).
    pub try_new_socket: bool,
    /// Answers a sender may have outstanding: 1 waits for each ack; more
    /// pipelines (see [`crate::pipelining`]; such senders are not handed
    /// back in [`Finished::senders`]).
    pub window: usize,
}

/// What a run leaves for the scenario's own checks.
pub struct Run {
    /// The two instances.
    pub deployment: Deployment,
    /// The lanes (lane 0 sends from A, lane 1 from B).
    pub lanes: Vec<LaneInfo>,
    /// The history, and the clients' sockets.
    pub finished: Finished,
    /// `/ready`'s bodies while the backend was broken, one per instance.
    pub ready_while_broken: Vec<Value>,
    /// With [`Plan::try_new_socket`]: how opening a socket on instance A
    /// went while the backend was broken, then after it was healed (`Err`
    /// holds the refusal, or the timeout when nothing answered).
    pub new_sockets: Option<(Result<(), String>, Result<(), String>)>,
}

/// Runs traffic on both instances, breaks `plan.service` once messages
/// flow, waits until `/ready` notices on both, keeps it broken for
/// `plan.outage`, heals it, waits until both are ready and messages are
/// accepted again, then stops the traffic and lets deliveries settle.
pub async fn backend_fault_under_traffic(plan: &Plan) -> Run {
    let deployment = Deployment::spawn(plan.env).await;
    let lanes = open_lanes(&deployment.apis, &[0, 1]).await;
    let clock = Clock::start();
    let mut log = FaultLog::default();
    let mut traffic = Traffic::new(clock);
    let mut infos: Vec<LaneInfo> = Vec::new();
    for lane in lanes {
        infos.push(match plan.window {
            0 | 1 => traffic.run(lane),
            window => traffic.run_pipelined(lane, window).await,
        });
    }
    let lanes = infos;
    let all: Vec<usize> = lanes.iter().map(|lane| lane.index).collect();
    traffic
        .wait_accepted(&all, FLOWING, Duration::ZERO, WARM_UP)
        .await;

    let broken = Broken::inject(plan.service, plan.fault, clock, &mut log).await;
    let ready_while_broken = deployment.wait_ready(503, NOTICE).await;
    log.note(clock.now(), "/ready 503 on both instances");
    let outage_ends = tokio::time::Instant::now() + plan.outage;
    let while_broken = if plan.try_new_socket {
        Some(new_socket(&deployment.apis[0], &lanes[0]).await)
    } else {
        None
    };
    broken.hold_until(outage_ends).await;
    broken.heal(clock, &mut log).await;
    deployment.wait_ready(200, RECOVERY).await;
    let ready_again = clock.now();
    log.note(ready_again, "/ready 200 on both instances");
    let new_sockets = match while_broken {
        Some(while_broken) => Some((
            while_broken,
            new_socket(&deployment.apis[0], &lanes[0]).await,
        )),
        None => None,
    };
    traffic
        .wait_accepted(&all, FLOWING, ready_again, RECOVERY)
        .await;
    log.note(clock.now(), "messages accepted again on every lane");

    let mut finished = traffic.finish(plan.settle, &[]).await;
    log.note(clock.now(), "traffic stopped, deliveries settled");
    finished.history.faults = log;
    Run {
        deployment,
        lanes,
        finished,
        ready_while_broken,
        new_sockets,
    }
}

/// Opens (and closes) one more socket for the lane's peer.
async fn new_socket(api: &Api, lane: &LaneInfo) -> Result<(), String> {
    let credentials = Credentials::Header(lane.peer.token.clone());
    let socket = ChatSocket::try_connect(api.base(), credentials).await?;
    socket.disconnect().await;
    Ok(())
}

/// Asserts each `/ready` body is a 503 naming `backend`.
#[track_caller]
pub fn assert_names(ready: &[Value], backend: &str) {
    for body in ready {
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(backend),
            "/ready should name {backend}: {body}"
        );
    }
}

/// Adds each lane's stored history (oldest first) to the history as a
/// watcher that must hold every accepted message once, in order.
pub async fn add_stored(history: &mut History, api: &Api, lanes: &[LaneInfo]) {
    for lane in lanes {
        let stored = full_history(api, &lane.peer.token, &lane.room).await;
        history.watches.push(Watch {
            label: format!("lane {} stored history", lane.index),
            lane: lane.index,
            must_see_all: true,
            deliveries: stored
                .iter()
                .rev()
                .map(|message| Delivery::from_message(message, Duration::ZERO))
                .collect(),
            transport_error: None,
        });
    }
}

/// The verdict on `history`, with each lane's stored history (read
/// through `api`) as a watcher that must hold every accepted message,
/// reported under `name`.
pub async fn judge(name: &str, history: &mut History, api: &Api, lanes: &[LaneInfo]) -> Verdict {
    add_stored(history, api, lanes).await;
    let verdict = crate::checker::check(history);
    report(name, history, &verdict);
    verdict
}

/// Prints the schedule, what clients saw while the backend was broken, and
/// the verdict (shown with `--nocapture`, and for a failing test).
pub fn report(name: &str, history: &History, verdict: &Verdict) {
    eprintln!("== {name}");
    for (at, what) in &history.faults.events {
        eprintln!("   {:>7.1}s  {what}", at.as_secs_f64());
    }
    if let (Some((from, _)), Some((to, _))) = (
        history.faults.events.first(),
        history
            .faults
            .events
            .iter()
            .find(|(_, what)| what.contains("/ready 200")),
    ) {
        let during: Vec<_> = history
            .ops
            .iter()
            .filter(|op| op.sent_at >= *from && op.sent_at <= *to)
            .collect();
        let accepted = during
            .iter()
            .filter(|op| matches!(op.outcome, Outcome::Accepted(_)))
            .count();
        let longest_wait = during
            .iter()
            .map(|op| op.ended_at - op.sent_at)
            .max()
            .unwrap_or_default();
        eprintln!(
            "   from the fault to /ready 200 ({:.1}s): {} sent, {accepted} accepted, \
             the rest refused or unanswered; longest ack wait {longest_wait:.1?}",
            (*to - *from).as_secs_f64(),
            during.len()
        );
    }
    eprintln!("   {verdict}");
}
