//! Cassandra away: killed under traffic for longer than the store retries'
//! back-off, and killed right after a fresh keyspace's schema was applied.

use e2e::stack::Topology;
use std::time::Duration;

use e2e::{
    stack::{Service, Stack},
    Backend, TestServer,
};

use crate::{
    client::{open_lanes, LaneInfo, Traffic},
    deployment::{wait_ready, Deployment},
    history::{Clock, FaultLog},
    nemesis::{Broken, Fault},
    one_at_a_time,
    scenario::{
        assert_names, backend_fault_under_traffic, judge, Plan, FLOWING, RECOVERY, WARM_UP,
    },
};

/// An outage is not a poison message: with 200 ms of back-off, three store
/// attempts would be spent in under a second, and a Cassandra restart
/// takes ten seconds or more. The consumer must wait it out instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_cassandra_is_killed_under_traffic_every_accepted_message_is_stored_and_delivered_in_order_without_chat_500(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let plan = Plan {
        service: Service::Cassandra,
        fault: Fault::Kill,
        outage: Duration::from_secs(3),
        env: &[("KAFKA_RETRY_BACKOFF_MS", "200")],
        settle: Duration::from_secs(120),
        try_new_socket: false,
        window: 1,
    };

    let mut run = backend_fault_under_traffic(&plan).await;

    let history = &mut run.finished.history;
    let verdict = judge(
        "cassandra Kill",
        history,
        &run.deployment.apis[0],
        &run.lanes,
    )
    .await;
    assert_names(&run.ready_while_broken, "cassandra");
    verdict.assert_clean(false);
    assert!(
        !verdict.refused.contains_key("chat_500"),
        "{:?}",
        verdict.refused
    );
    for sender in &mut run.finished.senders {
        let told_500: Vec<_> = sender
            .unmatched()
            .iter()
            .filter(|event| event.name == "error" && event.data["name"] == "chat_500")
            .map(|event| event.data.clone())
            .collect();
        assert!(
            told_500.is_empty(),
            "an outage spent a message's attempts: {told_500:?}"
        );
    }
}

/// A crash right after `CREATE KEYSPACE` and the tables must not leave the
/// keyspace listed but unusable: the local stack keeps schema changes
/// across a crash. The deployment gets a keyspace of its own, created by
/// instance A at start-up; Cassandra is killed the moment A answers.
/// Traffic cannot run during this fault (the users live in the keyspace
/// being created), so it runs after: on both instances, with sockets
/// opened after the restart, checked like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_cassandra_is_killed_right_after_a_fresh_keyspace_is_created_the_service_becomes_ready_and_stores_messages(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let keyspace = format!(
        "{}_fresh_{}",
        Stack::get().run.keyspace,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let clock = Clock::start();
    let mut log = FaultLog::default();

    let first = TestServer::spawn_with(Backend::Stack, &[("CASSANDRA_KEYSPACE", &keyspace)]).await;
    log.note(
        clock.now(),
        format!("instance A applied the schema of {keyspace}"),
    );
    let broken = Broken::inject(Service::Cassandra, Fault::Kill, clock, &mut log).await;
    broken.heal(clock, &mut log).await;
    let api = e2e::Api::new(first.url());
    wait_ready(&api, 200, RECOVERY).await;
    log.note(clock.now(), "/ready 200 on instance A");
    // Instance B applies the migrations again on the restarted node.
    let deployment = Deployment::around(first).await;
    deployment.wait_ready(200, RECOVERY).await;
    log.note(clock.now(), "instance B started; /ready 200 on both");

    let lanes = open_lanes(&deployment.apis, &[0, 1]).await;
    let mut traffic = Traffic::new(clock);
    let lanes: Vec<LaneInfo> = lanes.into_iter().map(|lane| traffic.run(lane)).collect();
    let all: Vec<usize> = lanes.iter().map(|lane| lane.index).collect();
    traffic
        .wait_accepted(&all, 2 * FLOWING, Duration::ZERO, WARM_UP)
        .await;
    let mut finished = traffic.finish(Duration::from_secs(60), &[]).await;

    let history = &mut finished.history;
    history.faults = log;
    let verdict = judge(
        "cassandra Kill after a fresh keyspace",
        history,
        &deployment.apis[1],
        &lanes,
    )
    .await;
    verdict.assert_clean(false);
}
