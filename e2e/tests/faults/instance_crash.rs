//! One of two instances crashes (SIGKILL) while both carry traffic: the
//! survivor keeps accepting and delivering, and its sockets connected
//! before the crash get every accepted message once and in order, also
//! those the dead instance had accepted. And an instance that crashed and
//! came back reads again what it had not committed, without delivering it
//! again.

use e2e::stack::Topology;
use std::time::{Duration, Instant};

use e2e::{
    chat::{is_message, join, send},
    Api, Backend, ChatSocket, TestServer,
};

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
    if !crate::on_topology(Topology::Single) {
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

/// The only instance crashes right after it delivered a message whose
/// offset it had not committed. Restarted, it reads the message again
/// from the last commit, once its old member's session lapsed; by then
/// the users' sockets are back, new ones, and joined. Their users had the
/// message: it must not reach them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_again_after_a_crash_does_not_reach_the_restarted_instances_new_sockets() {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    // Nothing is committed before the crash, and the restarted member waits
    // six seconds for the dead one's session: time for the sockets to
    // come back before the message is read again.
    let mut server = TestServer::spawn_with(
        Backend::Stack,
        &[
            ("KAFKA_COMMIT_INTERVAL_MS", "600000"),
            ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ],
    )
    .await;
    let api = Api::new(server.url());
    let (alice, bob) = (api.new_user().await, api.new_user().await);
    let room = api.room_of(&alice, &bob).await;
    let alice_socket = ChatSocket::connect(api.base(), &alice.token).await;
    let mut bob_socket = ChatSocket::connect(api.base(), &bob.token).await;
    join(&bob_socket, &room).await;
    let before = send(&alice_socket, &room, "before the crash").await;
    bob_socket.expect_event("reply", is_message(&before)).await;

    server.kill();
    server.start().await;
    let alice_socket = ChatSocket::connect(api.base(), &alice.token).await;
    let mut bob_socket = ChatSocket::connect(api.base(), &bob.token).await;
    join(&bob_socket, &room).await;
    assert_eq!(
        repeats(&server).await,
        0,
        "the message was read again before the sockets joined: the test proves nothing"
    );
    // Until the restarted instance skips the message as published before,
    // watch that it does not reach Bob (as it did before the relay
    // published once).
    let deadline = Instant::now() + Duration::from_secs(60);
    while repeats(&server).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the restarted instance never read the message again"
        );
        let again = bob_socket
            .try_expect_event("reply", &is_message(&before), Duration::from_millis(100))
            .await;
        assert!(
            again.is_none(),
            "the message read again reached a new socket"
        );
    }
    let after = send(&alice_socket, &room, "after the restart").await;
    bob_socket.expect_event("reply", is_message(&after)).await;
    let again = bob_socket
        .unmatched()
        .iter()
        .filter(|event| event.name == "reply" && is_message(&before)(&event.data))
        .count();
    assert_eq!(again, 0, "the message read again reached a new socket");
}

/// The instance's count of deliveries it skipped as published before.
async fn repeats(server: &TestServer) -> u64 {
    server.metric("deliveries_repeated_total").await as u64
}
