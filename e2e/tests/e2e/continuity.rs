//! Catch-up after a reconnect (`join` with `since`) and typing indicators.

use std::time::Duration;

use e2e::{
    chat::{error_name, join, send, send_all, Chatter},
    Api, Backend, ChatSocket, TestServer,
};
use serde_json::{json, Value};

/// A negative check's wait, once the socket got what it was owed.
const GRACE: Duration = Duration::from_millis(500);

async fn rejoin(socket: &ChatSocket, room: &str, since: &str) -> Value {
    let ack = socket
        .emit_with_ack("join", json!({ "roomId": room, "since": since }))
        .await;
    assert_eq!(ack["status"], "ok", "join ack: {ack}");
    ack
}

/// A well-formed message id made `ahead` from now (41 bits of
/// milliseconds since 2024-01-01, then 22 of node and sequence).
fn future_id(ahead: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let millis = (now + ahead).as_millis() as i64 - 1_704_067_200_000;
    (millis << 22).to_string()
}

/// Takes the next `reply` of `room`, in arrival order.
async fn next_reply(socket: &mut ChatSocket, room: &str) -> String {
    let reply = socket
        .expect_event("reply", |data| data["roomId"] == room)
        .await;
    reply["id"].as_str().expect("reply id").to_owned()
}

on_both_backends! {
    async fn rejoining_with_since_over_and_over_leaves_no_gap_and_no_duplicate(server: &TestServer) {
        let api = Api::new(server.url());
        let peer = server.second_instance().await;
        let receiver_api = peer.as_ref().map_or_else(|| api.clone(), |peer| Api::new(peer.url()));
        let alice = Chatter::new(&api).await;
        let bob = receiver_api.new_user().await;
        let room = api.room_of(&alice.user, &bob).await;
        let socket = ChatSocket::connect(receiver_api.base(), &bob.token).await;
        join(&socket, &room).await;

        const TOTAL: usize = 120;
        let receiving = async {
            let mut socket = socket;
            let mut received: Vec<String> = Vec::new();
            // Drop the connection after every few messages and come back
            // with `since` while the stream keeps flowing.
            for round in 0..8 {
                for _ in 0..(3 + round % 4) {
                    received.push(next_reply(&mut socket, &room).await);
                }
                socket.disconnect().await;
                socket = ChatSocket::connect(receiver_api.base(), &bob.token).await;
                let ack = rejoin(&socket, &room, received.last().unwrap()).await;
                assert_eq!(ack["complete"], true, "{ack}");
            }
            (socket, received)
        };
        let (sent, (mut socket, mut received)) =
            tokio::join!(send_all(&alice.socket, &room, TOTAL), receiving);
        while received.len() < sent.len() {
            received.push(next_reply(&mut socket, &room).await);
        }
        assert_eq!(received, sent, "the receiver's sequence differs from what was sent");
        let extra = socket.try_expect_event("reply", &|data: &Value| data["roomId"] == room, GRACE).await;
        assert!(extra.is_none(), "a reply after the last one: {extra:?}");
    }

    async fn a_join_with_since_replays_oldest_first_and_then_goes_live(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, mut bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        let first = send(&alice.socket, &room, "before").await;
        let missed = send_all(&alice.socket, &room, 5).await;
        e2e::chat::wait_for_history(&api, &bob.user.token, &room, 10, |page| page.len() == 6, Duration::from_secs(20)).await;

        let ack = rejoin(&bob.socket, &room, &first).await;
        assert_eq!(ack["replayed"], 5, "{ack}");
        assert_eq!(ack["complete"], true);
        for id in &missed {
            assert_eq!(&next_reply(&mut bob.socket, &room).await, id);
        }
        let live = send(&alice.socket, &room, "live").await;
        assert_eq!(next_reply(&mut bob.socket, &room).await, live);

        // Nothing newer than the newest: nothing replayed, still live.
        let ack = rejoin(&bob.socket, &room, &live).await;
        assert_eq!(ack["replayed"], 0, "{ack}");
        let after = send(&alice.socket, &room, "after").await;
        assert_eq!(next_reply(&mut bob.socket, &room).await, after);
    }

    async fn a_since_from_the_future_or_not_an_id_is_bad_request_and_a_member_only_matter(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (Chatter::new(&api).await, Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        let in_an_hour = future_id(Duration::from_secs(3_600));
        for since in [json!(in_an_hour), json!("x"), json!("0"), json!("-5"), json!(5)] {
            let ack = bob.socket.emit_with_ack("join", json!({ "roomId": room, "since": since })).await;
            assert_eq!(error_name(&ack), "bad_request", "since {since}: {ack}");
        }
        let other = api.room_of(&alice.user, &carol.user).await;
        let elsewhere = send(&alice.socket, &other, "elsewhere").await;
        let stranger = carol.socket.emit_with_ack("join", json!({ "roomId": room, "since": elsewhere })).await;
        assert_eq!(error_name(&stranger), "chat_404");
        // A position among ids, whichever room made it: before the room
        // existed means from its start.
        let ack = rejoin(&bob.socket, &room, "123").await;
        assert_eq!(ack["replayed"], 0, "{ack}");
    }

    async fn rejoining_at_once_with_the_id_of_your_own_ack_is_accepted_and_misses_nothing(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&bob.socket, &room).await;
        let mut alice_socket = alice.socket;
        for round in 0..5 {
            // Alice's ack, then at once a new socket rejoining from it:
            // before the pipeline may have stored the message.
            let mine = send(&alice_socket, &room, &format!("mine {round}")).await;
            alice_socket.disconnect().await;
            alice_socket = ChatSocket::connect(api.base(), &alice.user.token).await;
            let ack = rejoin(&alice_socket, &room, &mine).await;
            assert_eq!(ack["complete"], true, "{ack}");
            let answer = send(&bob.socket, &room, &format!("answer {round}")).await;
            // Her own message is not replayed to her; Bob's answer comes next.
            assert_eq!(next_reply(&mut alice_socket, &room).await, answer, "round {round}");
        }
    }

    async fn typing_reaches_the_room_once_a_second_and_only_from_members(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, mut bob, eve) = (Chatter::new(&api).await, Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&alice.socket, &room).await;
        join(&bob.socket, &room).await;

        for _ in 0..3 {
            let ack = alice.socket.emit_with_ack("typing", json!({ "roomId": room })).await;
            assert_eq!(ack["status"], "ok", "{ack}");
        }
        let typing = bob.socket.expect_event("typing", |data| data["roomId"] == room).await;
        assert_eq!(typing["userId"], alice.user.id.as_str());
        let again = bob.socket.try_expect_event("typing", &|data: &Value| data["roomId"] == room, GRACE).await;
        assert!(again.is_none(), "a second typing within the second: {again:?}");

        let ack = eve.socket.emit_with_ack("typing", json!({ "roomId": room })).await;
        assert_eq!(error_name(&ack), "chat_404");
        let ack = alice.socket.emit_with_ack("typing", json!({ "roomId": "nope" })).await;
        assert_eq!(error_name(&ack), "bad_request");
        // Never stored.
        let history = api.history(&alice.user.token, &room, "limit=10").await.expect(200);
        assert_eq!(history, json!([]));
    }
}

/// 1,005 messages, then a join with `since` the first: 1,000 replayed,
/// `complete: false`, and the rest is there to page with `context=after`.
async fn the_replay_stops_at_1000(backend: Backend) {
    let server = TestServer::spawn_with(
        backend,
        &[
            ("MESSAGE_RATE_PER_SECOND", "100000"),
            ("MESSAGE_RATE_BURST", "100000"),
        ],
    )
    .await;
    let api = Api::new(server.url());
    let (alice, mut bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
    let room = api.room_of(&alice.user, &bob.user).await;
    let sent = send_all(&alice.socket, &room, 1_005).await;
    e2e::chat::wait_for_history(
        &api,
        &bob.user.token,
        &room,
        1,
        |page| {
            page.first()
                .is_some_and(|m| m["id"] == sent[1_004].as_str())
        },
        Duration::from_secs(60),
    )
    .await;

    let ack = rejoin(&bob.socket, &room, &sent[0]).await;
    assert_eq!(ack["replayed"], 1_000, "{ack}");
    assert_eq!(ack["complete"], false);
    for id in &sent[1..1_001] {
        assert_eq!(&next_reply(&mut bob.socket, &room).await, id);
    }
    let rest = api
        .history(
            &bob.user.token,
            &room,
            &format!("context=after&latestMessageId={}&limit=100", sent[1_000]),
        )
        .await
        .expect(200);
    let rest: Vec<&str> = rest
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rest,
        sent[1_001..].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_stops_at_1000_in_memory() {
    if e2e::external_target().is_none() {
        the_replay_stops_at_1000(Backend::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_stops_at_1000_on_the_stack() {
    if e2e::controls_processes() {
        the_replay_stops_at_1000(Backend::Stack).await;
    }
}
