//! Redis away under traffic: killed (a crash) or stopped cleanly, back
//! five seconds later. Sockets connected before the fault, on both
//! instances, must get every accepted message once and in order, also
//! after Redis returns (the adapter reconnects and resubscribes);
//! `/ready` must tell the truth meanwhile, and a new socket must be
//! answered (accepted or refused, never left hanging) during the outage
//! and accepted after it.

use e2e::stack::Topology;
use std::time::Duration;

use e2e::stack::Service;

use crate::{
    checker::check,
    nemesis::Fault,
    one_at_a_time,
    scenario::{assert_names, backend_fault_under_traffic, report, Plan},
};

async fn redis_away_under_traffic(fault: Fault) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let plan = Plan {
        service: Service::Redis,
        fault,
        outage: Duration::from_secs(5),
        env: &[],
        settle: Duration::from_secs(60),
        try_new_socket: true,
        window: 1,
    };

    let run = backend_fault_under_traffic(&plan).await;

    let history = &run.finished.history;
    let verdict = check(history);
    report(&format!("redis {fault:?}"), history, &verdict);
    assert_names(&run.ready_while_broken, "redis");
    verdict.assert_clean(false);
    let (while_broken, after) = run.new_sockets.expect("new sockets were tried");
    // Refusing a new socket without Redis is fine; hanging is not.
    if let Err(refusal) = while_broken {
        assert!(!refusal.contains("timeout"), "a new socket hung: {refusal}");
    }
    assert!(
        after.is_ok(),
        "no new socket after Redis returned: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_is_killed_under_traffic_sockets_connected_before_get_every_accepted_message_on_both_instances(
) {
    redis_away_under_traffic(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_is_stopped_under_traffic_sockets_connected_before_get_every_accepted_message_on_both_instances(
) {
    redis_away_under_traffic(Fault::Stop).await;
}
