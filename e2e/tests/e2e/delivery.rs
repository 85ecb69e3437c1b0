//! The delivery guarantees: order, at-most-once replies, dedupe by
//! clientMessageId, history equal to what was delivered, many instances,
//! and no acknowledged message lost across a restart.

use std::collections::HashSet;

use e2e::{
    chat::{
        accepted_id, error_name, full_history, is_message, join, send, text_message,
        wait_for_history, Chatter,
    },
    socket::EVENT_TIMEOUT,
    Api, Backend, ChatSocket, TestServer,
};
use serde_json::Value;

on_both_backends! {
    async fn a_resend_with_the_same_client_message_id_creates_no_second_message(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&bob.socket, &room).await;
        let client_id = uuid::Uuid::new_v4().to_string();

        let first = alice.socket.emit_with_ack("message", text_message(&room, "once", Some(&client_id))).await;
        let again = alice.socket.emit_with_ack("message", text_message(&room, "once", Some(&client_id))).await;
        let other = send(&alice.socket, &room, "a different message").await;

        let id = accepted_id(&first);
        assert_eq!(accepted_id(&again), id);
        let reply = bob.socket.expect_event("reply", is_message(&id)).await;
        assert_eq!(reply["clientMessageId"], client_id.as_str());
        bob.socket.expect_event("reply", is_message(&other)).await;
        let duplicates = bob.socket.unmatched().iter().filter(|e| e.name == "reply").count();
        assert_eq!(duplicates, 0);
        let history = wait_for_history(&api, &alice.user.token, &room, 10, |page| page.len() >= 2, EVENT_TIMEOUT).await;
        assert_eq!(history.len(), 2, "{history:?}");
    }

    async fn history_pages_forward_with_after_and_back_with_before(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let bob = api.new_user().await;
        let room = api.room_of(&alice.user, &bob).await;
        let mut sent = Vec::new();
        for n in 0..25 {
            sent.push(send(&alice.socket, &room, &format!("page {n}")).await);
        }
        wait_for_history(&api, &bob.token, &room, 100, |page| page.len() == 25, EVENT_TIMEOUT).await;

        let back: Vec<String> = full_history(&api, &bob.token, &room).await
            .iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
        let first_page = api.history(&bob.token, &room, &format!("context=after&latestMessageId={}&limit=10", sent[0])).await.expect(200);
        let first_page: Vec<&str> = first_page.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();

        let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
        assert_eq!(back, newest_first);
        let expected: Vec<&str> = sent[1..11].iter().rev().map(String::as_str).collect();
        assert_eq!(first_page, expected, "after gives the next ten, newest first");
    }
}

async fn a_burst_of_100_messages_is_delivered_once_each_in_order_and_kept(backend: Backend) {
    if !e2e::controls_processes() {
        return;
    }
    // Above the default per-user rate limit, which a burst would trip.
    let server = TestServer::spawn_with(backend, &[("MESSAGE_RATE_BURST", "200")]).await;
    let api = Api::new(server.url());
    let alice = Chatter::new(&api).await;
    let mut bob = Chatter::new(&api).await;
    let room = api.room_of(&alice.user, &bob.user).await;
    join(&alice.socket, &room).await;
    join(&bob.socket, &room).await;

    let mut sent = Vec::new();
    for n in 0..100 {
        sent.push(send(&alice.socket, &room, &format!("burst {n}")).await);
    }

    let mut delivered = Vec::new();
    for id in &sent {
        let reply = bob.socket.expect_event("reply", |_| true).await;
        assert_eq!(reply["id"], id.as_str(), "replies arrive in the order sent");
        delivered.push(reply);
    }
    let unique: HashSet<&str> = sent.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), 100, "ids are unique");
    let numeric: Vec<u64> = sent.iter().map(|id| id.parse().unwrap()).collect();
    assert!(
        numeric.windows(2).all(|pair| pair[0] < pair[1]),
        "ids grow with time"
    );
    let history = wait_for_history(
        &api,
        &bob.user.token,
        &room,
        100,
        |page| page.len() == 100,
        EVENT_TIMEOUT,
    )
    .await;
    let history_oldest_first: Vec<Value> = history.into_iter().rev().collect();
    assert_eq!(
        history_oldest_first, delivered,
        "history equals what was delivered"
    );
    let extra = bob
        .socket
        .unmatched()
        .iter()
        .filter(|event| event.name == "reply")
        .count();
    assert_eq!(extra, 0, "no reply twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_messages_is_delivered_once_each_in_order_and_kept_in_memory() {
    a_burst_of_100_messages_is_delivered_once_each_in_order_and_kept(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_messages_is_delivered_once_each_in_order_and_kept_on_the_stack() {
    a_burst_of_100_messages_is_delivered_once_each_in_order_and_kept(Backend::Stack).await;
}

async fn over_the_rate_limit_a_user_is_told_rate_limited(backend: Backend) {
    if !e2e::controls_processes() {
        return;
    }
    let limited = [
        ("MESSAGE_RATE_PER_SECOND", "1"),
        ("MESSAGE_RATE_BURST", "3"),
    ];
    let server = TestServer::spawn_with(backend, &limited).await;
    let api = Api::new(server.url());
    let alice = Chatter::new(&api).await;
    let bob = api.new_user().await;
    let room = api.room_of(&alice.user, &bob).await;

    let mut names = Vec::new();
    for n in 0..8 {
        let payload = text_message(&room, &format!("spam {n}"), None);
        let ack = alice.socket.emit_with_ack("message", payload).await;
        names.push(if ack["status"] == "accepted" {
            "accepted".to_owned()
        } else {
            error_name(&ack)
        });
    }

    assert!(
        names.iter().filter(|name| *name == "accepted").count() >= 3,
        "{names:?}"
    );
    assert!(names.iter().any(|name| name == "rate_limited"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_a_user_is_told_rate_limited_in_memory() {
    over_the_rate_limit_a_user_is_told_rate_limited(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_a_user_is_told_rate_limited_on_the_stack() {
    over_the_rate_limit_a_user_is_told_rate_limited(Backend::Stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_exchange_messages_both_ways() {
    if !e2e::controls_processes() {
        return;
    }
    let first = TestServer::spawn(Backend::Stack).await;
    let second = first.spawn_peer().await;
    let (api_one, api_two) = (Api::new(first.url()), Api::new(second.url()));
    let mut alice = Chatter::new(&api_one).await;
    let bob_user = api_two.new_user().await;
    let mut bob = ChatSocket::connect(api_two.base(), &bob_user.token).await;
    let room = api_one.room_of(&alice.user, &bob_user).await;
    join(&alice.socket, &room).await;
    join(&bob, &room).await;

    let to_bob = send(&alice.socket, &room, "from instance one").await;
    let to_alice = send(&bob, &room, "from instance two").await;

    bob.expect_event("reply", is_message(&to_bob)).await;
    alice
        .socket
        .expect_event("reply", is_message(&to_alice))
        .await;
    alice
        .socket
        .expect_event("notification", |n| {
            n["name"] == "sent" && is_message(&to_bob)(n)
        })
        .await;
    bob.expect_event("notification", |n| {
        n["name"] == "sent" && is_message(&to_alice)(n)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_when_the_service_restarts_mid_burst() {
    if !e2e::controls_processes() {
        return;
    }
    // 60 messages in a few seconds: above the default burst, and the rate
    // is counted in Redis, so a restart does not refill it.
    let mut server = TestServer::spawn_with(
        Backend::Stack,
        &[
            ("MESSAGE_RATE_PER_SECOND", "1000"),
            ("MESSAGE_RATE_BURST", "1000"),
        ],
    )
    .await;
    let api = Api::new(server.url());
    let alice = api.new_user().await;
    let bob = api.new_user().await;
    let room = api.room_of(&alice, &bob).await;

    let mut accepted = Vec::new();
    for round in 0..2 {
        let socket = ChatSocket::connect(api.base(), &alice.token).await;
        for n in 0..30 {
            let ack = socket
                .emit_with_ack(
                    "message",
                    text_message(&room, &format!("r{round} m{n}"), None),
                )
                .await;
            accepted.push(accepted_id(&ack));
        }
        if round == 0 {
            // A crash, not a graceful stop: whatever was acknowledged must
            // already be safe in Kafka.
            server.kill();
            server.start().await;
        }
    }

    let history = wait_for_history(
        &api,
        &bob.token,
        &room,
        100,
        |page| page.len() >= accepted.len(),
        std::time::Duration::from_secs(60),
    )
    .await;
    let stored: Vec<&str> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = accepted.iter().rev().map(String::as_str).collect();
    assert_eq!(
        stored, expected,
        "every acknowledged message stored exactly once, in order"
    );
}
