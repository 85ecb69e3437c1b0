//! Instances come and go under traffic, as they do in a rolling update,
//! an autoscaler's decisions or a crash: the consumer group rebalances
//! each time, and the partitions a leaving member held move while their
//! rooms have messages queued. Ten senders pipeline 100 messages a second
//! between them (up to eight answers outstanding each). The sockets
//! connected before (on the two instances that stay) get every accepted
//! message once and in order,
//! every message is answered within the contract's 2 s, and an instance
//! stopped with SIGTERM exits by itself within its stop timeout, even with
//! every backend frozen.

use e2e::stack::Topology;
use std::time::{Duration, Instant};

use e2e::{stack::Service, TestServer};

use crate::{
    client::{open_lanes, LaneInfo, Traffic},
    deployment::Deployment,
    history::{Clock, FaultLog},
    nemesis::{Broken, Fault},
    one_at_a_time,
    scenario::{judge, FLOWING, RECOVERY, WARM_UP},
};

/// The contract's bound on an answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// The stop timeout the scaling instances run with.
const STOP_TIMEOUT: Duration = Duration::from_secs(8);
/// Join and leave cycles.
const CYCLES: usize = 5;
/// Lanes of traffic, each sending 10 messages a second: 100 a second.
const LANES: usize = 10;
/// Answers each sender may have outstanding.
const WINDOW: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_joining_leaving_and_dying_under_traffic_lose_nothing_and_answer_every_message_in_time(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let stop_timeout = STOP_TIMEOUT.as_secs().to_string();
    let env = [("STOP_TIMEOUT_SECONDS", stop_timeout.as_str())];
    // No wait for settled groups: the test is the rebalances.
    let mut deployment = Deployment::spawn_unsettled(&env).await;
    // Half the lanes send through each instance that stays.
    let senders_on: Vec<usize> = (0..LANES).map(|lane| lane % 2).collect();
    let lanes = open_lanes(&deployment.apis, &senders_on).await;
    let clock = Clock::start();
    let mut log = FaultLog::default();
    let mut traffic = Traffic::new(clock);
    let mut infos: Vec<LaneInfo> = Vec::new();
    for lane in lanes {
        infos.push(traffic.run_pipelined(lane, WINDOW).await);
    }
    let lanes = infos;
    let all: Vec<usize> = (0..LANES).collect();
    traffic
        .wait_accepted(&all, FLOWING, Duration::ZERO, WARM_UP)
        .await;

    let mut stops = Vec::new();
    for cycle in 0..CYCLES {
        let joined = deployment.servers[0].spawn_peer().await;
        deployment.servers.push(joined);
        log.note(clock.now(), format!("cycle {cycle}: an instance joined"));
        traffic
            .wait_accepted(&all, FLOWING, clock.now(), RECOVERY)
            .await;
        let mut leaving = deployment.servers.pop().expect("the instance that joined");
        if cycle % 2 == 0 {
            log.note(clock.now(), format!("cycle {cycle}: SIGTERM to it"));
            stops.push(stop(leaving, STOP_TIMEOUT + Duration::from_secs(2)).await);
        } else {
            log.note(clock.now(), format!("cycle {cycle}: SIGKILL to it"));
            leaving.kill();
        }
        traffic
            .wait_accepted(&all, FLOWING, clock.now(), RECOVERY)
            .await;
    }
    log.note(clock.now(), "messages accepted after the last cycle");
    let mut finished = traffic.finish(Duration::from_secs(60), &[]).await;

    let history = &mut finished.history;
    history.faults = log;
    let verdict = judge(
        "instances join, leave and die",
        history,
        &deployment.apis[1],
        &lanes,
    )
    .await;
    verdict.assert_clean(false);
    let late: Vec<_> = history
        .ops
        .iter()
        .filter(|op| op.ended_at - op.sent_at > ANSWER_WITHIN)
        .map(|op| (op.lane, op.ended_at - op.sent_at, op.outcome.clone()))
        .collect();
    assert!(
        late.is_empty(),
        "answered after {ANSWER_WITHIN:?}: {late:?}"
    );
    for (took, exited) in &stops {
        assert!(
            *exited,
            "a SIGTERMed instance had to be killed after {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_told_to_stop_while_every_backend_is_frozen_exits_within_its_stop_timeout() {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let stop_timeout = STOP_TIMEOUT.as_secs().to_string();
    let mut deployment =
        Deployment::spawn(&[("STOP_TIMEOUT_SECONDS", stop_timeout.as_str())]).await;
    let clock = Clock::start();
    let mut log = FaultLog::default();
    let mut frozen = Vec::new();
    for service in [Service::Kafka, Service::Redis, Service::Cassandra] {
        frozen.push(Broken::inject(service, Fault::Pause, clock, &mut log).await);
    }

    let stopping = deployment.servers.pop().expect("instance B");
    let (took, exited) = stop(stopping, STOP_TIMEOUT + Duration::from_secs(5)).await;

    for broken in frozen {
        broken.heal(clock, &mut log).await;
    }
    assert!(
        exited,
        "still running {took:?} after SIGTERM (stop timeout {STOP_TIMEOUT:?})"
    );
    assert!(
        took <= STOP_TIMEOUT + Duration::from_secs(2),
        "exited {took:?} after SIGTERM (stop timeout {STOP_TIMEOUT:?})"
    );
}

/// SIGTERMs `server` and waits up to `timeout` off the async workers (the
/// clients keep running): how long it took, and whether it exited by itself.
async fn stop(mut server: TestServer, timeout: Duration) -> (Duration, bool) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let exited = server.stop_within(timeout);
        (started.elapsed(), exited)
    })
    .await
    .expect("the stop panicked")
}
