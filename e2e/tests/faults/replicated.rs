//! One node of a replicated backend SIGKILLed under traffic and started
//! again (`E2E_TOPOLOGY=replicated`, the stack of
//! `STACK_TOPOLOGY=replicated stack/stack.sh up`).
//!
//! Two instances, pipelining senders on both, sockets connected before the
//! fault on both. The fault comes once every lane's answers are steady
//! ([`Traffic::wait_steady`]): a CI run killed `cassandra-2` 1.8 s into
//! the first test on a fresh stack, while a cold Kafka still took 100 to
//! 300 ms per publish, and 28 answers queued past the deadline. Each run
//! prints its slow answers and what the instances logged.
//!
//! For a Cassandra node and for the Kafka broker that leads the busy
//! partition the goal is that clients notice nothing: every
//! message accepted, none refused, none lost, each delivered once and in
//! order, `/ready` 200 throughout, and the p99 delivery delay of the
//! messages sent during the fault under 2 s; the Cassandra test holds the
//! service to it, the Kafka one to the contract and the delay, since a
//! slow follower can still cost refusals (see there). For the Redis master
//! (Sentinel promotes the replica) nothing may be lost or silent; what the
//! failover costs in refusals and delay is printed for the README.

use std::time::Duration;

use e2e::stack::{node_at, Service, Stack, Topology, SENTINEL_MASTER};
use tokio::time::Instant;

use crate::{
    checker::Verdict,
    client::{open_lanes, LaneInfo, Traffic},
    deployment::{wait_ready, Deployment},
    history::{Clock, FaultLog, Outcome},
    on_topology, one_at_a_time,
    scenario::{judge, FLOWING, RECOVERY, WARM_UP},
};

/// How long the node stays dead while traffic flows.
const OUTAGE: Duration = Duration::from_secs(20);
/// What a steady answer takes at most, before the fault (a warm stack's
/// take 10 to 50 ms here).
const STEADY_WITHIN: Duration = Duration::from_millis(250);
/// How long a fresh stack may take to answer steadily.
const STEADY_TIMEOUT: Duration = Duration::from_secs(90);
/// Answers a sender may have outstanding.
const WINDOW: usize = 8;
/// The contract's bound on an answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// The bound on the p99 delivery delay while a node of a replicated
/// Cassandra or Kafka is down.
const P99_WITHIN: Duration = Duration::from_secs(2);
/// Answers slower than this are printed (a healthy one takes some 20 ms).
const SLOW_ANSWER: Duration = Duration::from_millis(250);
/// How many of each instance's warnings a run prints.
const WARNINGS_SHOWN: usize = 20;
/// How long deliveries may take to settle after the traffic stops.
const SETTLE: Duration = Duration::from_secs(60);
/// How long Sentinel may take to promote the replica.
const FAILOVER_WITHIN: Duration = Duration::from_secs(30);

/// What a run leaves for the scenario's checks.
struct NodeRun {
    verdict: Verdict,
    /// When the kill was issued, and when the node answered again.
    fault: (Duration, Duration),
    /// `/ready` statuses seen on each instance while the node was down.
    ready_statuses: Vec<u16>,
}

/// Which node dies: picked once traffic flows, from what the deployment
/// sees (the busy partition's leader, the current master).
enum Victim {
    /// A Cassandra node, by number.
    Cassandra(u8),
    /// The broker leading partition 0 of the message topic (the only one:
    /// the deployment runs with one partition, so it carries every room).
    KafkaLeader,
    /// The Redis master, as the Sentinels name it.
    RedisMaster,
}

async fn node_killed_under_traffic(victim: Victim, name: &str) -> NodeRun {
    let deployment = Deployment::spawn(&[("KAFKA_TOPIC_PARTITIONS", "1")]).await;
    let lanes = open_lanes(&deployment.apis, &[0, 1, 0, 1]).await;
    let clock = Clock::start();
    let mut log = FaultLog::default();
    let mut traffic = Traffic::new(clock);
    let mut infos: Vec<LaneInfo> = Vec::new();
    for lane in lanes {
        infos.push(traffic.run_pipelined(lane, WINDOW).await);
    }
    let all: Vec<usize> = infos.iter().map(|lane| lane.index).collect();
    traffic
        .wait_accepted(&all, FLOWING, Duration::ZERO, WARM_UP)
        .await;
    traffic
        .wait_steady(&all, STEADY_WITHIN, STEADY_TIMEOUT)
        .await;

    let node = match victim {
        Victim::Cassandra(n) => format!("cassandra-{n}"),
        Victim::KafkaLeader => {
            let host = deployment
                .partition_leader("chats.message-created", 0)
                .await;
            node_at(Service::Kafka, &host)
        }
        Victim::RedisMaster => node_at(Service::Redis, &redis_master().await.0),
    };
    let killed_at = clock.now();
    log.note(killed_at, format!("SIGKILL {node}"));
    let target = node.clone();
    blocking(move || Stack::get().kill_node(&target)).await;
    log.note(clock.now(), format!("{node} is gone"));
    let outage_ends = Instant::now() + OUTAGE;
    if matches!(victim, Victim::RedisMaster) {
        let old = redis_master().await;
        let promoted = wait_for_new_master(&old).await;
        log.note(
            clock.now(),
            format!("Sentinel names {}:{} the master", promoted.0, promoted.1),
        );
    }
    let mut ready_statuses = Vec::new();
    while Instant::now() < outage_ends {
        for api in &deployment.apis {
            let answer = api.call(reqwest::Method::GET, "/ready", None, None).await;
            ready_statuses.push(answer.status.as_u16());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    log.note(clock.now(), format!("starting {node}"));
    let target = node.clone();
    blocking(move || Stack::get().start_node(&target)).await;
    let back_at = clock.now();
    log.note(back_at, format!("{node} answers again"));
    for api in &deployment.apis {
        wait_ready(api, 200, RECOVERY).await;
    }
    traffic
        .wait_accepted(&all, FLOWING, back_at, RECOVERY)
        .await;
    log.note(clock.now(), "messages accepted again on every lane");
    let mut finished = traffic.finish(SETTLE, &[]).await;
    log.note(clock.now(), "traffic stopped, deliveries settled");
    let history = &mut finished.history;
    history.faults = log;
    let verdict = judge(name, history, &deployment.apis[0], &infos).await;
    for op in history
        .ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Refused(_)))
    {
        eprintln!(
            "   refused: lane {} seq {} sent at {:.2?}, answered after {:.2?}: {:?}",
            op.lane,
            op.seq,
            op.sent_at,
            op.ended_at.saturating_sub(op.sent_at),
            op.outcome
        );
    }
    print_slow_answers(&history.ops);
    print_warnings(&deployment);
    let fault = (killed_at, back_at);
    eprintln!(
        "== {name}: p50 {:?}, p99 {:?}, max {:?} delivery delay of the messages sent while {node} was down",
        verdict.delivery_delay_quantile(fault.0, fault.1, 0.5),
        verdict.delivery_delay_quantile(fault.0, fault.1, 0.99),
        verdict.delivery_delay_quantile(fault.0, fault.1, 1.0),
    );
    NodeRun {
        verdict,
        fault,
        ready_statuses,
    }
}

/// Prints the answers that took longer than [`SLOW_ANSWER`], lane by lane
/// as runs of consecutive sends: where a fault cost time, and how much.
fn print_slow_answers(ops: &[crate::history::Op]) {
    /// Consecutive slow answers of one lane.
    struct Run {
        lane: usize,
        seqs: (usize, usize),
        sent: (Duration, Duration),
        slowest: Duration,
    }
    let mut slow: Vec<&crate::history::Op> = ops
        .iter()
        .filter(|op| op.ended_at.saturating_sub(op.sent_at) > SLOW_ANSWER)
        .collect();
    slow.sort_by_key(|op| (op.lane, op.seq));
    let mut runs: Vec<Run> = Vec::new();
    for op in slow {
        let wait = op.ended_at.saturating_sub(op.sent_at);
        match runs.last_mut() {
            Some(run) if run.lane == op.lane && run.seqs.1 + 1 == op.seq => {
                run.seqs.1 = op.seq;
                run.sent.1 = op.sent_at;
                run.slowest = run.slowest.max(wait);
            }
            _ => runs.push(Run {
                lane: op.lane,
                seqs: (op.seq, op.seq),
                sent: (op.sent_at, op.sent_at),
                slowest: wait,
            }),
        }
    }
    for run in runs {
        eprintln!(
            "   slow answers: lane {} seq {}..={} sent {:.2?} to {:.2?}, slowest {:.2?}",
            run.lane, run.seqs.0, run.seqs.1, run.sent.0, run.sent.1, run.slowest
        );
    }
}

/// Prints the first [`WARNINGS_SHOWN`] warnings and errors each instance
/// logged: what the service saw of the fault.
fn print_warnings(deployment: &Deployment) {
    for server in &deployment.servers {
        let log = server.log();
        let warnings: Vec<&String> = log
            .iter()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect();
        eprintln!("   {} logged {} warnings", server.url(), warnings.len());
        for line in warnings.iter().take(WARNINGS_SHOWN) {
            eprintln!("     {line}");
        }
    }
}

/// The Redis master as the first Sentinel that answers names it.
async fn redis_master() -> (String, u16) {
    blocking_value(|| {
        let sentinels = Stack::get()
            .sentinels
            .clone()
            .expect("the replicated topology has Sentinels");
        for sentinel in sentinels.split(',') {
            let Ok(client) = redis::Client::open(format!("redis://{sentinel}/")) else {
                continue;
            };
            let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(2))
            else {
                continue;
            };
            let answer: redis::RedisResult<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(SENTINEL_MASTER)
                .query(&mut connection);
            if let Ok(master) = answer {
                return master;
            }
        }
        panic!("no Sentinel of {sentinels} names a master");
    })
    .await
}

/// Waits until the Sentinels name a master other than `old`.
async fn wait_for_new_master(old: &(String, u16)) -> (String, u16) {
    let deadline = Instant::now() + FAILOVER_WITHIN;
    loop {
        let master = redis_master().await;
        if master != *old {
            return master;
        }
        assert!(
            Instant::now() < deadline,
            "Sentinel still names {}:{} {FAILOVER_WITHIN:?} after it died",
            old.0,
            old.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts the p99 delivery delay of the messages sent during the fault.
#[track_caller]
fn assert_delay_within_bound(run: &NodeRun) {
    let p99 = run
        .verdict
        .delivery_delay_quantile(run.fault.0, run.fault.1, 0.99);
    assert!(
        p99 < P99_WITHIN,
        "p99 delivery delay during the fault {p99:?}"
    );
}

/// Asserts what "clients notice nothing" means.
#[track_caller]
fn assert_unnoticed(run: &NodeRun) {
    let verdict = &run.verdict;
    verdict.assert_clean(false);
    assert!(
        verdict.refused.is_empty(),
        "messages were refused: {:?}",
        verdict.refused
    );
    assert_eq!(
        verdict.accepted, verdict.sent,
        "every message should be accepted"
    );
    assert!(
        verdict.max_ack_wait <= ANSWER_WITHIN,
        "an ack took {:?}",
        verdict.max_ack_wait
    );
    assert_delay_within_bound(run);
    assert!(
        run.ready_statuses.iter().all(|status| *status == 200),
        "/ready answered {:?} while one node was down",
        run.ready_statuses
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_of_three_cassandra_nodes_is_killed_under_traffic_no_client_notices() {
    if !on_topology(Topology::Replicated) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    // Not the first contact point: the one the driver learnt the ring from
    // is the harder case for a new connection, and node 2 is as busy.
    let run = node_killed_under_traffic(Victim::Cassandra(2), "cassandra node SIGKILL").await;
    assert_unnoticed(&run);
}

/// The broker leading the room's partition dies: the controller fences it
/// after 0.6 s and names a new leader, to which the producer sends what it
/// had in flight (it is not librdkafka's idempotent producer, which would
/// time those out first), and the consumers follow the leader and, when
/// the dead broker was their group's coordinator, the coordinator. The
/// clients' metadata refresh (`KAFKA_METADATA_REFRESH_MS`, 250 ms) bounds
/// how long librdkafka may leave the partition on its internal broker
/// after the leader moved (it otherwise waits for its 1 s topic scan:
/// delivery p99 1.55 to 2.20 s in four runs, 0.68 to 1.13 s with it in
/// twelve). The test holds the service to the contract (every message
/// answered within 2 s, nothing lost, silent, duplicated or out of order,
/// only `chat_503` refusals) and to the p99 bound, and prints the
/// refusals: a follower that asks the new leader before that broker took
/// over retries after `replica.fetch.backoff.ms` (100 ms in the stack,
/// 1 s by default, which cost 19 to 66 `chat_503` in some runs); with it,
/// 0 in four runs of five and 10 in the fifth (docs/SCALING.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_kafka_broker_leading_the_busy_partition_is_killed_under_traffic_every_message_is_answered_and_delivered_within_2_s(
) {
    if !on_topology(Topology::Replicated) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let run = node_killed_under_traffic(Victim::KafkaLeader, "kafka leader SIGKILL").await;
    assert_answered(&run.verdict);
    assert_delay_within_bound(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_redis_master_is_killed_sentinel_promotes_the_replica_and_nothing_is_lost_or_silent(
) {
    if !on_topology(Topology::Replicated) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let run = node_killed_under_traffic(Victim::RedisMaster, "redis master SIGKILL").await;
    assert_answered(&run.verdict);
}

/// Asserts the contract through a fault: nothing lost, silent, duplicated
/// or out of order, every answer within 2 s, and only `chat_503` refusals.
#[track_caller]
fn assert_answered(verdict: &Verdict) {
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

/// Runs a stack verb off the async workers.
async fn blocking(verb: impl FnOnce() + Send + 'static) {
    blocking_value(verb).await;
}

async fn blocking_value<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("the blocking call panicked")
}
