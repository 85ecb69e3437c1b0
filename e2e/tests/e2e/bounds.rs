//! Abuse past the bounds that take a smaller setting to reach in a test:
//! the login throttle's map (50,000 usernames by default), what one
//! catch-up holds (1,000 live deliveries) and how long its replay may
//! take (30 s). Each test runs a service with the bound lowered, drives a
//! client past it, and asserts what the client gets, the gauge that
//! reports the structure on `/metrics`, and that resident memory stayed
//! bounded. The README's limits table names the settings.

use std::time::Duration;

use e2e::{
    chat::{send_all, Chatter},
    engine_io::PollingSession,
    unique_name, Api, Backend, TestServer,
};
use serde_json::{json, Value};

const MIB: f64 = 1024.0 * 1024.0;

/// Waits until `metric` satisfies `done`, or panics after 20 s.
async fn wait_for_metric(server: &TestServer, metric: &str, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let value = server.metric(metric).await;
        if done(value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{metric} stayed at {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_memory_bounded(server: &TestServer, before: f64, what: &str) {
    let after = server.metric("process_resident_memory_bytes").await / MIB;
    eprintln!("{what}: resident {before:.0} -> {after:.0} MiB");
    assert!(
        after - before <= 64.0,
        "{what}: resident memory grew from {before:.0} to {after:.0} MiB"
    );
}

/// What a polling session has read: the `reply` events' message ids, in
/// order, and the acks by id.
#[derive(Default)]
struct Read {
    replies: Vec<String>,
    acks: Vec<(u64, Value)>,
}

impl Read {
    /// Polls once and sorts out what came, answering a ping.
    async fn poll(&mut self, session: &PollingSession) {
        let (status, body) = session.poll().await.expect("poll");
        assert_eq!(status, 200, "poll answered {status}: {body}");
        for packet in body.split('\u{1e}') {
            if packet == "2" {
                assert_eq!(session.post("3".to_owned()).await, Ok(200), "pong");
            } else if let Some(event) = packet.strip_prefix("42/chats,") {
                let event: Value = serde_json::from_str(event).expect("event");
                if event[0] == "reply" {
                    self.replies
                        .push(event[1]["id"].as_str().expect("id").to_owned());
                }
            } else if let Some(ack) = packet.strip_prefix("43/chats,") {
                let at = ack.find('[').expect("ack payload");
                let answer: Value = serde_json::from_str(&ack[at..]).expect("ack");
                self.acks
                    .push((ack[..at].parse().expect("ack id"), answer[0].clone()));
            }
        }
    }

    /// Polls until ack `id` came; panics after 20 s.
    async fn until_ack(&mut self, session: &PollingSession, id: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((_, ack)) = self.acks.iter().find(|(n, _)| *n == id) {
                return ack.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "no ack {id}");
            self.poll(session).await;
        }
    }

    /// Polls until the reply of `message` came; panics after 20 s.
    async fn until_reply(&mut self, session: &PollingSession, message: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !self.replies.iter().any(|id| id == message) {
            assert!(tokio::time::Instant::now() < deadline, "no reply {message}");
            self.poll(session).await;
        }
    }
}

fn join_since(ack: u64, room: &str, since: &str) -> String {
    format!(
        "42/chats,{ack}{}",
        json!(["join", { "roomId": room, "since": since }])
    )
}

/// The throttle's map tracks at most `LOGIN_THROTTLE_MAX_TRACKED`
/// usernames (here 50): failed logins for 150 others leave it at 50, the
/// oldest window dropped. In memory that window was the only count, so
/// the throttled user may try again; on the stack Redis keeps the count
/// (the map is its fallback), so the user stays throttled.
async fn the_login_throttle_tracks_at_most_its_bound(backend: Backend) {
    let server = TestServer::spawn_with(backend, &[("LOGIN_THROTTLE_MAX_TRACKED", "50")]).await;
    let api = Api::new(server.url());
    let victim = api.new_user().await;
    let wrong = json!({"username": victim.username, "password": "wrong-password"});
    for _ in 0..10 {
        api.login(wrong.clone()).await.expect_error(401);
    }
    api.login(wrong.clone()).await.expect_error(429);

    let before = server.metric("process_resident_memory_bytes").await / MIB;
    for _ in 0..15 {
        let attempts = (0..10).map(|_| {
            let api = api.clone();
            async move {
                api.login(json!({"username": unique_name("nobody"), "password": "password123"}))
                    .await
                    .expect_error(401);
            }
        });
        futures::future::join_all(attempts).await;
    }
    let tracked = server.metric("login_throttle_usernames").await;
    assert_eq!(tracked, 50.0, "usernames tracked after 151 of them failed");
    assert_memory_bounded(&server, before, "150 usernames failing").await;

    let again = api.login(wrong).await;
    match backend {
        Backend::Memory => again.expect_error(401),
        Backend::Stack => again.expect_error(429),
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_throttle_tracks_at_most_its_bound_in_memory() {
    if e2e::external_target().is_none() {
        the_login_throttle_tracks_at_most_its_bound(Backend::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_throttle_tracks_at_most_its_bound_on_the_stack() {
    if e2e::controls_processes() {
        the_login_throttle_tracks_at_most_its_bound(Backend::Stack).await;
    }
}

/// A service whose sockets hold 32 events, whose catch-ups hold 5 live
/// deliveries and replay for `within_s` seconds at most.
async fn small_catch_ups(backend: Backend, within_s: &str) -> TestServer {
    TestServer::spawn_with(
        backend,
        &[
            ("SOCKET_EVENT_BUFFER", "32"),
            ("CATCH_UP_MAX_HELD", "5"),
            ("CATCH_UP_WITHIN_SECONDS", within_s),
            ("MESSAGE_RATE_BURST", "200"),
        ],
    )
    .await
}

/// A client that stops reading during a catch-up of 40 messages (its
/// socket holds 32): the 10 messages sent meanwhile are held up to the
/// bound (5), and when it reads again it gets the 40, then the 5, and
/// `complete: false` (it pages the rest).
async fn a_catch_up_holds_at_most_its_bound_of_live_messages(backend: Backend) {
    // Time enough for the 10 sends on a busy machine: the replay must
    // still be waiting when they arrive.
    let server = small_catch_ups(backend, "30").await;
    let api = Api::new(server.url());
    let (mut alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
    let room = api.room_of(&alice.user, &bob.user).await;
    let history = send_all(&bob.socket, &room, 41).await;
    // Delivered here, not only stored: a delivery of the history that
    // came during the catch-up would be held too (and then not replayed
    // twice), and take a place of the 5. A room's deliveries are in order.
    let last = &history[40];
    alice
        .socket
        .expect_event("notification", |n| n["content"]["messageId"] == *last)
        .await;
    let before = server.metric("process_resident_memory_bytes").await / MIB;

    let session = PollingSession::open(api.base(), &alice.user.token).await;
    session.answer_first_ping().await;
    let posted = session.post(join_since(1, &room, &history[0])).await;
    assert_eq!(posted, Ok(200));
    // The replay has read the history, filled the socket's 32 and waits:
    // what is sent from here on is held.
    wait_for_metric(&server, "catch_up_replays_waiting", |n| n == 1.0).await;
    let live = send_all(&bob.socket, &room, 10).await;
    // All 10 delivered on this instance, not only accepted: 5 held, 5 past
    // the bound. One delivered only once the client reads would come
    // after the 5 were emitted, and be held in their place (CI, once).
    // A delivery records for the catch-up before it notifies.
    let newest = &live[9];
    alice
        .socket
        .expect_event("notification", |n| n["content"]["messageId"] == *newest)
        .await;
    assert_eq!(server.metric("catch_up_held_deliveries").await, 5.0);
    assert_eq!(server.metric("catch_up_replays_waiting").await, 1.0);

    let mut read = Read::default();
    let ack = read.until_ack(&session, 1).await;
    assert_eq!(ack["status"], "ok", "{ack}");
    assert_eq!(ack["replayed"], 40, "{ack}");
    assert_eq!(
        ack["complete"], false,
        "held deliveries were dropped: {ack}"
    );
    let mut expected = history[1..].to_vec();
    expected.extend_from_slice(&live[..5]);
    assert_eq!(
        read.replies, expected,
        "the replay, then the held, in order"
    );
    assert_eq!(server.metric("catch_up_held_deliveries").await, 0.0);
    assert_eq!(server.metric("catch_up_replays_waiting").await, 0.0);
    assert_memory_bounded(&server, before, "a catch-up past its held bound").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_holds_at_most_its_bound_of_live_messages_in_memory() {
    if e2e::external_target().is_none() {
        a_catch_up_holds_at_most_its_bound_of_live_messages(Backend::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_holds_at_most_its_bound_of_live_messages_on_the_stack() {
    if e2e::controls_processes() {
        a_catch_up_holds_at_most_its_bound_of_live_messages(Backend::Stack).await;
    }
}

/// A client that never reads during a catch-up: the replay stops at its
/// time bound (5 s), the catch-up ends, and the socket is in the room
/// (what it did not get, it pages over HTTP).
async fn a_replay_to_a_client_that_does_not_read_ends_within_its_time(backend: Backend) {
    let server = small_catch_ups(backend, "5").await;
    let api = Api::new(server.url());
    let (alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
    let room = api.room_of(&alice.user, &bob.user).await;
    let history = send_all(&bob.socket, &room, 41).await;
    e2e::chat::wait_for_history(
        &api,
        &alice.user.token,
        &room,
        41,
        |page| page.len() == 41,
        Duration::from_secs(20),
    )
    .await;

    let session = PollingSession::open(api.base(), &alice.user.token).await;
    session.answer_first_ping().await;
    let started = tokio::time::Instant::now();
    let posted = session.post(join_since(1, &room, &history[0])).await;
    assert_eq!(posted, Ok(200));
    // Waiting for the end rather than for the start and the end: a start
    // seen late on a busy machine would not make the test fail.
    wait_for_metric(&server, "catch_ups_total", |n| n == 1.0).await;
    let ran = started.elapsed();
    assert_eq!(server.metric("catch_ups_running").await, 0.0);
    assert!(
        ran >= Duration::from_secs(4),
        "the replay ended after {ran:?}"
    );

    let mut read = Read::default();
    read.poll(&session).await;
    let got = read.replies.len();
    assert!(
        got > 0 && got < 40,
        "{got} of 40 replayed before the time ran out"
    );
    assert_eq!(read.replies, history[1..=got], "what came, came in order");
    // The catch-up ended by joining the room: the next message is live.
    let next = send_all(&bob.socket, &room, 1).await;
    read.until_reply(&session, &next[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_to_a_client_that_does_not_read_ends_within_its_time_in_memory() {
    if e2e::external_target().is_none() {
        a_replay_to_a_client_that_does_not_read_ends_within_its_time(Backend::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_to_a_client_that_does_not_read_ends_within_its_time_on_the_stack() {
    if e2e::controls_processes() {
        a_replay_to_a_client_that_does_not_read_ends_within_its_time(Backend::Stack).await;
    }
}

/// What the catch-ups of an instance keep (the replayed ids, so the live
/// stream does not bring them again) stays within
/// `CATCH_UP_MAX_KEPT_IDS` (here 30): four sockets replayed 9 messages
/// each (10 kept, with their `since`) keep 30, the oldest socket's
/// dropped; their disconnects drop the rest.
async fn replayed_ids_kept_stay_within_their_bound(backend: Backend) {
    let server = TestServer::spawn_with(backend, &[("CATCH_UP_MAX_KEPT_IDS", "30")]).await;
    let api = Api::new(server.url());
    let (alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
    let room = api.room_of(&alice.user, &bob.user).await;
    let history = send_all(&bob.socket, &room, 10).await;
    e2e::chat::wait_for_history(
        &api,
        &alice.user.token,
        &room,
        10,
        |page| page.len() == 10,
        Duration::from_secs(20),
    )
    .await;
    let mut sockets = Vec::new();
    for n in 1..=4 {
        let socket = e2e::ChatSocket::connect(api.base(), &alice.user.token).await;
        let ack = socket
            .emit_with_ack("join", json!({ "roomId": room, "since": history[0] }))
            .await;
        assert_eq!(ack["replayed"], 9, "{ack}");
        let kept = server.metric("catch_up_kept_ids").await;
        assert_eq!(kept, f64::from(10 * n.min(3)), "after {n} catch-ups");
        sockets.push(socket);
    }
    for socket in sockets {
        socket.disconnect().await;
    }
    wait_for_metric(&server, "catch_up_kept_ids", |n| n == 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_ids_kept_stay_within_their_bound_in_memory() {
    if e2e::external_target().is_none() {
        replayed_ids_kept_stay_within_their_bound(Backend::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_ids_kept_stay_within_their_bound_on_the_stack() {
    if e2e::controls_processes() {
        replayed_ids_kept_stay_within_their_bound(Backend::Stack).await;
    }
}
