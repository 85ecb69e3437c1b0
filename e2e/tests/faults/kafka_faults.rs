//! Kafka away: killed under traffic, and paused long enough for a publish
//! to time out (the ambiguous `chat_503`).

use e2e::stack::Topology;
use std::time::Duration;

use e2e::{chat::full_history, stack::Service};

use crate::{
    checker::check,
    client::{open_lanes, LaneInfo, Traffic},
    deployment::Deployment,
    history::{Clock, FaultLog, Outcome},
    nemesis::{Broken, Fault},
    one_at_a_time,
    scenario::{
        assert_names, backend_fault_under_traffic, judge, report, Plan, FLOWING, RECOVERY, WARM_UP,
    },
};

/// The contract's bound on an answer, whatever Kafka does.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// A consumer group rejoins a restarted broker on its own schedule
/// (reconnect back-off, session timeout, then a rebalance).
const KAFKA_SETTLE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_kafka_is_killed_for_90_s_under_traffic_senders_hear_accepted_or_chat_503_within_2_s_and_every_accepted_message_is_delivered(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let plan = Plan {
        service: Service::Kafka,
        fault: Fault::Kill,
        // Long enough for every client-library timer to run out: the
        // consumers must come back by themselves.
        outage: Duration::from_secs(90),
        env: &[],
        settle: KAFKA_SETTLE,
        try_new_socket: false,
        // Senders that do not wait for each ack: while a publish times
        // out, the messages behind it queue on the service's side, and
        // each must still be answered within 2 s.
        window: 8,
    };

    let run = backend_fault_under_traffic(&plan).await;

    let history = &run.finished.history;
    let verdict = check(history);
    report("kafka Kill", history, &verdict);
    assert_names(&run.ready_while_broken, "kafka");
    verdict.assert_clean(false);
    let other_errors: Vec<&String> = verdict
        .refused
        .keys()
        .filter(|name| *name != "chat_503")
        .collect();
    assert!(
        other_errors.is_empty(),
        "refused with {:?}",
        verdict.refused
    );
    assert!(
        verdict.max_ack_wait <= ANSWER_WITHIN,
        "an ack took {:?}",
        verdict.max_ack_wait
    );
}

/// A publish that times out is answered `chat_503`, yet it may still reach
/// Kafka afterwards. A client that resends with the same
/// `clientMessageId` must end with one message, delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_an_ambiguous_chat_503_yields_one_message_delivered_once() {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let deployment = Deployment::spawn(&[("KAFKA_PUBLISH_TIMEOUT_MS", "2000")]).await;
    let mut lanes = open_lanes(&deployment.apis, &[0, 1, 0]).await;
    let probe_lane = lanes.pop().expect("three lanes");
    let clock = Clock::start();
    let mut log = FaultLog::default();
    let mut traffic = Traffic::new(clock);
    let mut infos: Vec<LaneInfo> = lanes.into_iter().map(|lane| traffic.run(lane)).collect();
    let background: Vec<usize> = infos.iter().map(|lane| lane.index).collect();
    let (probe, mut socket, recorder) = traffic.watch(probe_lane);
    traffic
        .wait_accepted(&background, FLOWING, Duration::ZERO, WARM_UP)
        .await;
    let client_message_id = uuid::Uuid::new_v4().to_string();

    let broken = Broken::inject(Service::Kafka, Fault::Pause, clock, &mut log).await;
    let first = recorder
        .send(&mut socket, &client_message_id, "sent while Kafka hangs")
        .await;
    broken.heal(clock, &mut log).await;
    let deadline = tokio::time::Instant::now() + RECOVERY;
    let id = loop {
        match recorder
            .send(&mut socket, &client_message_id, "sent while Kafka hangs")
            .await
        {
            Outcome::Accepted(id) => break id,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the resend still fails after {RECOVERY:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    log.note(clock.now(), "the resend was accepted");
    // A later message of the room: the watchers wait for it, and the
    // room's order puts any second copy of the probe before it.
    let after = format!("{client_message_id}-after");
    assert!(matches!(
        recorder.send(&mut socket, &after, "after the probe").await,
        Outcome::Accepted(_)
    ));
    traffic
        .wait_accepted(&background, FLOWING, clock.now(), RECOVERY)
        .await;
    let mut finished = traffic.finish(KAFKA_SETTLE, &[]).await;

    let history = &mut finished.history;
    history.faults = log;
    infos.push(probe.clone());
    let verdict = judge(
        "kafka Pause, resend after chat_503",
        history,
        &deployment.apis[1],
        &infos,
    )
    .await;
    assert_eq!(first, Outcome::Refused("chat_503".to_owned()));
    verdict.assert_clean(false);
    for watch in history
        .watches
        .iter()
        .filter(|watch| watch.lane == probe.index)
    {
        let copies: Vec<&str> = watch
            .deliveries
            .iter()
            .filter(|d| d.client_message_id.as_deref() == Some(client_message_id.as_str()))
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(copies, [id.as_str()], "{}", watch.label);
    }
    let stored = full_history(&deployment.apis[0], &probe.peer.token, &probe.room).await;
    let stored_copies = stored
        .iter()
        .filter(|message| message["clientMessageId"] == client_message_id.as_str())
        .count();
    assert_eq!(stored_copies, 1, "{stored:#?}");
}
