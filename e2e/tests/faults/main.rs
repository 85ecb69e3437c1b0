//! Fault scenarios with real processes: a backend stopped and restarted
//! under a running service. They share one stack, so they run one at a
//! time (a process-wide lock) and in a test binary of their own, which
//! cargo never runs beside the main suite.

use std::time::Duration;

use e2e::{
    chat::{accepted_id, is_message, join, text_message, wait_for_history, Chatter},
    socket::{Credentials, EVENT_TIMEOUT},
    stack::{Service, Stack},
    Api, Backend, ChatSocket, TestServer,
};
use reqwest::Method;
use tokio::sync::Mutex;

/// One fault at a time.
static STACK_LOCK: Mutex<()> = Mutex::const_new(());

/// Restarts a stopped service even when the test panics half-way.
struct Restore(Service);

impl Drop for Restore {
    fn drop(&mut self) {
        Stack::get().start(self.0);
    }
}

/// Polls `/ready` until its status is `want`.
async fn wait_ready(api: &Api, want: u16, timeout: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer = api.call(Method::GET, "/ready", None, None).await;
        if answer.status.as_u16() == want {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready stayed {} ({})",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_down_a_message_fails_fast_and_flows_again_once_kafka_is_back() {
    if !e2e::controls_processes() {
        return;
    }
    let _one_at_a_time = STACK_LOCK.lock().await;
    let server = TestServer::spawn(Backend::Stack).await;
    let api = Api::new(server.url());
    let alice = Chatter::new(&api).await;
    let mut bob = Chatter::new(&api).await;
    let room = api.room_of(&alice.user, &bob.user).await;
    join(&bob.socket, &room).await;

    Stack::get().stop(Service::Kafka);
    let restore = Restore(Service::Kafka);
    let started = tokio::time::Instant::now();
    let ack = alice
        .socket
        .try_emit_with_ack(
            "message",
            text_message(&room, "into the void", None),
            Duration::from_secs(30),
        )
        .await
        .expect("an answer, not a hang");
    let waited = started.elapsed();
    let ready = wait_ready(&api, 503, Duration::from_secs(30)).await;

    assert_eq!(ack["status"], "error", "{ack}");
    assert!(
        waited < Duration::from_secs(15),
        "answered after {waited:?}"
    );
    assert!(
        ready["message"].as_str().unwrap().contains("kafka"),
        "{ready}"
    );

    drop(restore);
    wait_ready(&api, 200, Duration::from_secs(60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let id = loop {
        // The first publish after a broker restart may wait for the
        // client to reconnect; it must end in an answer either way.
        let ack = alice
            .socket
            .try_emit_with_ack(
                "message",
                text_message(&room, "back again", None),
                Duration::from_secs(30),
            )
            .await
            .expect("an answer after Kafka came back");
        if ack["status"] == "accepted" {
            break accepted_id(&ack);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Kafka back but messages still fail: {ack}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The consumer group rejoins the restarted broker on its own schedule
    // (reconnect back-off, session timeout, then a rebalance): allow it two
    // minutes on a loaded machine.
    let reply = bob
        .socket
        .try_expect_event("reply", &is_message(&id), Duration::from_secs(120))
        .await;
    assert!(
        reply.is_some(),
        "no reply after Kafka came back: {:#?}",
        bob.socket.unmatched()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_new_connections_are_refused_cleanly_and_recover() {
    if !e2e::controls_processes() {
        return;
    }
    let _one_at_a_time = STACK_LOCK.lock().await;
    let server = TestServer::spawn(Backend::Stack).await;
    let api = Api::new(server.url());
    let user = api.new_user().await;

    Stack::get().stop(Service::Redis);
    let restore = Restore(Service::Redis);
    let refused =
        ChatSocket::try_connect(api.base(), Credentials::Header(user.token.clone())).await;
    let me = api.me(&user.token).await;
    let ready = wait_ready(&api, 503, Duration::from_secs(30)).await;

    assert!(refused.is_err(), "a socket connected without Redis");
    assert_eq!(me.status.as_u16(), 503, "{}", me.body);
    assert!(
        ready["message"].as_str().unwrap().contains("redis"),
        "{ready}"
    );

    drop(restore);
    wait_ready(&api, 200, Duration::from_secs(60)).await;
    api.me(&user.token).await.expect(200);
    let socket = ChatSocket::try_connect(api.base(), Credentials::Header(user.token)).await;
    assert!(socket.is_ok(), "{:?}", socket.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cassandra_down_acknowledged_messages_are_kept_and_stored_once_it_returns() {
    if !e2e::controls_processes() {
        return;
    }
    let _one_at_a_time = STACK_LOCK.lock().await;
    // Attempts at 0, +20 s and +60 s: a restart here takes 10 to 30 s, and
    // the driver reconnects within 10 s of it.
    let server =
        TestServer::spawn_with(Backend::Stack, &[("KAFKA_RETRY_BACKOFF_MS", "20000")]).await;
    let api = Api::new(server.url());
    let alice = Chatter::new(&api).await;
    let bob = api.new_user().await;
    let room = api.room_of(&alice.user, &bob).await;
    join(&alice.socket, &room).await;

    Stack::get().stop(Service::Cassandra);
    let restore = Restore(Service::Cassandra);
    let mut accepted = Vec::new();
    for n in 0..5 {
        let ack = alice
            .socket
            .emit_with_ack("message", text_message(&room, &format!("m{n}"), None))
            .await;
        accepted.push(accepted_id(&ack));
    }
    drop(restore);

    let history = wait_for_history(
        &api,
        &bob.token,
        &room,
        10,
        |page| page.len() >= 5,
        Duration::from_secs(120),
    )
    .await;
    let stored: Vec<&str> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = accepted.iter().rev().map(String::as_str).collect();
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_retries_run_out_the_author_hears_chat_500_and_the_message_is_parked() {
    if !e2e::controls_processes() {
        return;
    }
    let _one_at_a_time = STACK_LOCK.lock().await;
    let server = TestServer::spawn_with(Backend::Stack, &[("KAFKA_RETRY_BACKOFF_MS", "200")]).await;
    let api = Api::new(server.url());
    let mut alice = Chatter::new(&api).await;
    let bob = api.new_user().await;
    let room = api.room_of(&alice.user, &bob).await;
    join(&alice.socket, &room).await;

    Stack::get().stop(Service::Cassandra);
    let restore = Restore(Service::Cassandra);
    let ack = alice
        .socket
        .emit_with_ack("message", text_message(&room, "doomed", None))
        .await;
    let id = accepted_id(&ack);
    let error = alice
        .socket
        .try_expect_event(
            "error",
            &|e| e["name"] == "chat_500",
            Duration::from_secs(90),
        )
        .await;
    drop(restore);

    let error = error.expect("chat_500 once the retries are exhausted");
    assert_eq!(error["roomId"], room.as_str());
    let sent = alice
        .socket
        .unmatched()
        .iter()
        .any(|e| e.name == "notification" && is_message(&id)(&e.data));
    assert!(
        !sent,
        "a message that was never stored must not be reported sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_of_two_instances_dies_mid_burst_the_other_keeps_working_and_nothing_is_lost() {
    if !e2e::controls_processes() {
        return;
    }
    let _one_at_a_time = STACK_LOCK.lock().await;
    let mut doomed = TestServer::spawn(Backend::Stack).await;
    let survivor = doomed.spawn_peer().await;
    let (api_doomed, api_survivor) = (Api::new(doomed.url()), Api::new(survivor.url()));
    let alice = api_survivor.new_user().await;
    let bob = api_survivor.new_user().await;
    let room = api_survivor.room_of(&alice, &bob).await;
    let on_doomed = ChatSocket::connect(api_doomed.base(), &alice.token).await;
    let on_survivor = ChatSocket::connect(api_survivor.base(), &alice.token).await;
    let mut bob_socket = ChatSocket::connect(api_survivor.base(), &bob.token).await;
    join(&bob_socket, &room).await;

    let mut accepted = Vec::new();
    for n in 0..10 {
        let ack = on_doomed
            .emit_with_ack("message", text_message(&room, &format!("a{n}"), None))
            .await;
        accepted.push(accepted_id(&ack));
    }
    doomed.kill();
    for n in 0..10 {
        let ack = on_survivor
            .emit_with_ack("message", text_message(&room, &format!("b{n}"), None))
            .await;
        accepted.push(accepted_id(&ack));
    }

    let last = accepted.last().unwrap().clone();
    bob_socket.expect_event("reply", is_message(&last)).await;
    let history = wait_for_history(
        &api_survivor,
        &bob.token,
        &room,
        50,
        |page| page.len() >= 20,
        Duration::from_secs(90),
    )
    .await;
    let stored: Vec<&str> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = accepted.iter().rev().map(String::as_str).collect();
    assert_eq!(stored, expected);
    let _ = EVENT_TIMEOUT;
}
