//! One of two instances crashes (SIGKILL) while both carry traffic: the
//! survivor keeps accepting and delivering, and its sockets connected
//! before the crash get every accepted message once and in order, also
//! those the dead instance had accepted.

use std::time::Duration;

use crate::{
    client::{open_lanes, LaneInfo, Traffic},
    deployment::{wait_ready, Deployment},
    history::{Clock, FaultLog, Outcome},
    one_at_a_time,
    scenario::{judge, FLOWING, RECOVERY, WARM_UP},
};

/// Instance A dies; B survives.
const DOOMED: usize = 0;
const SURVIVOR: usize = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_of_two_instances_dies_mid_burst_the_survivor_keeps_working_and_its_sockets_lose_nothing(
) {
    if !e2e::controls_processes() {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let mut deployment = Deployment::spawn(&[]).await;
    // Lane 0 sends through the doomed instance, lane 1 through the survivor.
    let lanes = open_lanes(&deployment.apis, &[DOOMED, SURVIVOR]).await;
    let clock = Clock::start();
    let mut log = FaultLog::default();
    let mut traffic = Traffic::new(clock);
    let lanes: Vec<LaneInfo> = lanes.into_iter().map(|lane| traffic.run(lane)).collect();
    traffic
        .wait_accepted(&[0, 1], 2 * FLOWING, Duration::ZERO, WARM_UP)
        .await;

    let killed_at = clock.now();
    log.note(killed_at, "SIGKILL instance A");
    deployment.servers[DOOMED].kill();
    wait_ready(&deployment.apis[SURVIVOR], 200, RECOVERY).await;
    traffic
        .wait_accepted(&[1], 2 * FLOWING, clock.now(), RECOVERY)
        .await;
    log.note(clock.now(), "instance B accepted more messages");
    let mut finished = traffic.finish(Duration::from_secs(90), &[DOOMED]).await;

    let history = &mut finished.history;
    history.faults = log;
    history.crashed_senders.push((0, killed_at));
    let verdict = judge(
        "instance A SIGKILL",
        history,
        &deployment.apis[SURVIVOR],
        &lanes,
    )
    .await;
    verdict.assert_clean(true);
    let lost_on_the_survivor = history
        .ops
        .iter()
        .filter(|op| op.lane == 1 && matches!(op.outcome, Outcome::ConnectionLost(_)))
        .count();
    assert_eq!(
        lost_on_the_survivor, 0,
        "the survivor's sender lost its connection"
    );
}
