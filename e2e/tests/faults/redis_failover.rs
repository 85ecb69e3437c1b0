//! Redis behind Sentinel, its master SIGKILLed: Sentinel promotes the
//! replica, and the service must follow by itself. The Redis processes are
//! the test's own (`e2e::sentinel`), not the shared stack's; the tests
//! skip, saying so, where `redis-server` is not installed.
//!
//! - The library: commands on a [`RedisLink`] succeed again on the
//!   promoted replica, the adapter's driver is down while no master
//!   answers and up once the new one does, and a subscriber on the driver
//!   gets what is published after the failover; after a manual failover,
//!   which keeps the old master up as a replica, it gets each message once.
//! - The binary: `/ready` says `redis-adapter` is down during the failover
//!   and is 200 after it, and two users chat through the new master.

use e2e::stack::Topology;
use std::time::Duration;

use e2e::{
    chat::{accepted_id, is_message, join, text_message, Chatter},
    sentinel::{SentinelRedis, MASTER_NAME},
    Api, Backend, TestServer,
};
use futures::StreamExt;
use redis::AsyncCommands;
use service::{
    config::{RedisSettings, Settings},
    realtime::redis_driver::{AdapterHealth, HealingDriver},
    redis_link::{LinkOptions, RedisLink},
};
use socketioxide_redis::drivers::Driver;
use tokio::time::Instant;

use crate::one_at_a_time;

/// How long the service may take to follow a failover, from the kill:
/// Sentinel needs 1 s to call the master down, then an election and the
/// promotion; the link asks every 500 ms.
const FOLLOW_WITHIN: Duration = Duration::from_secs(15);
/// How often a condition is looked at again while waiting for it.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long one command of the test may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

fn settings(redis: &SentinelRedis) -> RedisSettings {
    let sentinels = redis.sentinels();
    Settings::from_lookup(|name| match name {
        "CACHE_SENTINELS" => Some(sentinels.clone()),
        "CACHE_SENTINEL_MASTER" => Some(MASTER_NAME.to_owned()),
        _ => None,
    })
    .expect("settings")
    .redis
    .expect("Redis settings")
}

/// Waits until `condition` holds, looking every [`POLL_EVERY`]; how long
/// it took, or `None` past `within`.
async fn wait_until<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut condition: impl FnMut() -> F,
) -> Option<Duration> {
    let start = Instant::now();
    let mut ticks = tokio::time::interval(POLL_EVERY);
    loop {
        ticks.tick().await;
        if condition().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
    }
}

/// A `SET` through the link, bounded.
async fn set(link: &RedisLink, key: &str, value: &str) -> bool {
    let mut link = link.clone();
    let set = link.set::<_, _, ()>(key, value);
    matches!(tokio::time::timeout(COMMAND_TIMEOUT, set).await, Ok(Ok(())))
}

/// Samples `health` until it is up again after having been down; whether
/// it was seen down, and when it was up again (from the start).
async fn watch_health(health: AdapterHealth) -> (bool, Option<Duration>) {
    let start = Instant::now();
    let mut seen_down = false;
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    while start.elapsed() < FOLLOW_WITHIN {
        ticks.tick().await;
        match (health.is_up(), seen_down) {
            (false, _) => seen_down = true,
            (true, true) => return (true, Some(start.elapsed())),
            (true, false) => {}
        }
    }
    (seen_down, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_master_is_killed_commands_and_the_adapters_subscriptions_follow_the_promoted_replica(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let Some(mut redis) = SentinelRedis::start().await else {
        return;
    };
    let settings = settings(&redis);
    let link = RedisLink::connect(&settings, LinkOptions::default())
        .await
        .expect("connecting through Sentinel");
    let driver = HealingDriver::connect(&settings)
        .await
        .expect("connecting the adapter's driver");
    let channel = "failover-test#channel".to_owned();
    let mut messages = driver.subscribe(channel.clone(), 16).await.unwrap();
    assert_eq!(link.master().port, redis.master_port());
    assert!(set(&link, "before", "kept").await);
    // Acknowledged by the replica, such a write survives the failover.
    // WAIT covers the writes of its own connection: the link's.
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut link.clone())
        .await
        .unwrap();
    assert_eq!(replicas, 1);

    let mut swaps = link.swaps();
    let replica = redis.replica_port();
    redis.kill_master();
    let killed = Instant::now();
    let (writable, announced, swapped, (seen_down, adapter_up)) = tokio::join!(
        wait_until(FOLLOW_WITHIN, || set(&link, "after", "written")),
        wait_until(FOLLOW_WITHIN, || async {
            redis.master_per_sentinels().await == Some(replica)
        }),
        async {
            let swapped = tokio::time::timeout(FOLLOW_WITHIN, swaps.changed()).await;
            swapped.is_ok().then(|| killed.elapsed())
        },
        watch_health(driver.health()),
    );

    let writable = writable.expect("no write succeeded within the follow window");
    let announced = announced.expect("the Sentinels named no new master");
    let swapped = swapped.expect("the link did not swap to the new master");
    let adapter_up = adapter_up.expect("the adapter was not up again within the window");
    eprintln!(
        "failover, from the kill: Sentinel names the replica {:.2} s, the link swaps {:.2} s, \
         a write succeeds {:.2} s, the adapter is up {:.2} s",
        announced.as_secs_f64(),
        swapped.as_secs_f64(),
        writable.as_secs_f64(),
        adapter_up.as_secs_f64()
    );
    assert_eq!(link.master().port, redis.replica_port());
    assert_eq!(
        redis.master_per_sentinels().await,
        Some(redis.replica_port())
    );
    assert!(
        seen_down,
        "the adapter never said it was down while no master answered"
    );
    let mut link_connection = link.clone();
    let kept: Option<String> = link_connection.get("before").await.unwrap();
    assert_eq!(kept.as_deref(), Some("kept"));
    let role: redis::Role = redis::cmd("ROLE")
        .query_async(&mut link_connection)
        .await
        .unwrap();
    assert!(matches!(role, redis::Role::Primary { .. }), "{role:?}");

    let mut new_master = redis.node(redis.replica_port()).await.unwrap();
    let _: i64 = new_master
        .publish(&channel, "after the failover")
        .await
        .unwrap();
    let (received_on, payload) = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .expect("nothing received on the adapter's subscription after the failover")
        .expect("the subscription ended");
    assert_eq!(received_on, channel);
    assert_eq!(payload, b"after the failover");
    let mut relay = driver.connection();
    let master_of_relay: redis::Role = redis::cmd("ROLE").query_async(&mut relay).await.unwrap();
    assert!(matches!(master_of_relay, redis::Role::Primary { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_manual_failover_the_old_master_still_up_a_subscriber_gets_each_message_once() {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let Some(redis) = SentinelRedis::start().await else {
        return;
    };
    let settings = settings(&redis);
    let driver = HealingDriver::connect(&settings)
        .await
        .expect("connecting the adapter's driver");
    let channel = "failover-test#manual".to_owned();
    let mut messages = driver.subscribe(channel.clone(), 16).await.unwrap();
    let health = driver.health();

    // The old master becomes a replica of the new one and stays up: its
    // connections stay open and it replicates every publish to them.
    // A Sentinel refuses (NOGOODSLAVE) until it has the replica's recent
    // INFO, which may come a moment after it first listed the replica.
    let sentinel = redis.node(redis.sentinel_ports()[0]).await.unwrap();
    let refusal = std::sync::Mutex::new(None);
    let started = wait_until(FOLLOW_WITHIN, || {
        let (mut sentinel, refusal) = (sentinel.clone(), &refusal);
        async move {
            let failover = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(MASTER_NAME)
                .query_async::<()>(&mut sentinel)
                .await;
            *refusal.lock().unwrap() = failover.as_ref().err().map(ToString::to_string);
            failover.is_ok()
        }
    })
    .await;
    assert!(started.is_some(), "no manual failover: {refusal:?}");
    let moved = wait_until(FOLLOW_WITHIN, || async {
        driver.connection().master().port == redis.replica_port() && health.is_up()
    })
    .await;
    assert!(
        moved.is_some(),
        "the driver did not follow the manual failover"
    );

    let mut new_master = redis.node(redis.replica_port()).await.unwrap();
    for n in 0..3 {
        let _: i64 = new_master.publish(&channel, format!("m{n}")).await.unwrap();
    }
    let mut received = Vec::new();
    while let Ok(Some((_, payload))) =
        tokio::time::timeout(Duration::from_millis(500), messages.next()).await
    {
        received.push(String::from_utf8(payload).unwrap());
    }
    assert_eq!(received, ["m0", "m1", "m2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_failover_ready_names_the_adapter_and_after_it_two_users_chat_through_the_new_master(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let Some(mut redis) = SentinelRedis::start().await else {
        return;
    };
    let sentinels = redis.sentinels();
    let server = TestServer::spawn_with(
        Backend::Memory,
        &[
            ("CACHE_SENTINELS", sentinels.as_str()),
            ("CACHE_SENTINEL_MASTER", MASTER_NAME),
            ("CACHE_PREFIX", "failover:"),
        ],
    )
    .await;
    let api = Api::new(server.url());
    let alice = Chatter::new(&api).await;
    let mut bob = Chatter::new(&api).await;
    let room = api.room_of(&alice.user, &bob.user).await;
    join(&bob.socket, &room).await;
    let ready = format!("{}/ready", server.url());
    let client = reqwest::Client::new();
    let ready_status = || async {
        let answer = client
            .get(&ready)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .expect("/ready answers");
        let status = answer.status().as_u16();
        (status, answer.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(ready_status().await.0, 200);
    // The sessions must be on the replica before the kill. WAIT covers
    // the writes of its own connection up to its last one, and the
    // replication stream is one sequence: a write of the test's after the
    // service's covers those too.
    let mut master = redis.node(redis.master_port()).await.unwrap();
    let _: () = master.set("failover:fence", 1).await.unwrap();
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut master)
        .await
        .unwrap();
    assert_eq!(replicas, 1);

    redis.kill_master();
    let noticed = wait_until(FOLLOW_WITHIN, || async {
        let (status, body) = ready_status().await;
        status == 503 && body["checks"]["redis-adapter"] == "down"
    })
    .await;
    assert!(
        noticed.is_some(),
        "/ready never said redis-adapter was down"
    );
    let ready_again = wait_until(FOLLOW_WITHIN, || async { ready_status().await.0 == 200 })
        .await
        .expect("/ready was not 200 again within the follow window");
    eprintln!(
        "/ready: 503 redis-adapter down {:.2} s after the kill, 200 {:.2} s after that",
        noticed.unwrap().as_secs_f64(),
        ready_again.as_secs_f64()
    );

    // The sessions were replicated before the kill; the resend mark and the
    // relay's mark are written on the new master.
    let ack = alice
        .socket
        .emit_with_ack(
            "message",
            text_message(&room, "after the failover", Some("failover-1")),
        )
        .await;
    let id = accepted_id(&ack);
    let reply = bob.socket.expect_event("reply", is_message(&id)).await;
    assert_eq!(reply["clientMessageId"], "failover-1");
    let mut new_master = redis.node(redis.replica_port()).await.unwrap();
    let marked: bool = new_master
        .exists(format!("failover:delivered:{id}"))
        .await
        .unwrap();
    assert!(marked, "the relay's mark is not on the new master");
}
