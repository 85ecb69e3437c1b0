//! The Socket.IO `/chats` namespace: handshake, join/leave, message, and
//! the events each participant receives.

use e2e::{
    chat::{
        accepted_id, error_name, is_message, join, send, text_message, wait_for_history, Chatter,
    },
    socket::{Credentials, EVENT_TIMEOUT},
    Api, ChatSocket, TestServer,
};
use serde_json::{json, Value};

on_both_backends! {
    async fn a_handshake_without_a_valid_token_is_refused_as_unauthorized(server: &TestServer) {
        let api = Api::new(server.url());
        for credentials in [
            Credentials::None,
            Credentials::Header("no-such-token-but-long-enough".to_owned()),
            Credentials::Auth("no-such-token-but-long-enough".to_owned()),
            Credentials::Header(format!("{}:password", uuid::Uuid::new_v4())),
        ] {
            let refusal = ChatSocket::try_connect(api.base(), credentials.clone()).await.err();
            let refusal = refusal.unwrap_or_else(|| panic!("{credentials:?} was accepted"));
            assert!(refusal.contains("unauthorized"), "{credentials:?}: {refusal}");
        }
    }

    async fn a_token_is_accepted_as_header_bearer_header_or_auth_payload(server: &TestServer) {
        let api = Api::new(server.url());
        let user = api.new_user().await;

        for credentials in [
            Credentials::Header(user.token.clone()),
            Credentials::Header(format!("Bearer {}", user.token)),
            Credentials::Auth(user.token.clone()),
        ] {
            let socket = ChatSocket::try_connect(api.base(), credentials.clone()).await;
            assert!(socket.is_ok(), "{credentials:?}: {:?}", socket.err());
        }
    }

    async fn a_logged_out_token_can_no_longer_connect(server: &TestServer) {
        let api = Api::new(server.url());
        let user = api.new_user().await;
        api.logout(&user.token).await.expect(204);

        let refusal = ChatSocket::try_connect(api.base(), Credentials::Header(user.token)).await;

        assert!(refusal.is_err());
    }

    async fn only_participants_may_join_a_room(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, mallory) = (api.new_user().await, api.new_user().await, Chatter::new(&api).await);
        let room = api.room_of(&alice, &bob).await;

        let foreign = mallory.socket.emit_with_ack("join", json!({"roomId": room})).await;
        let unknown = mallory.socket.emit_with_ack("join", json!({"roomId": uuid::Uuid::new_v4()})).await;
        let malformed = mallory.socket.emit_with_ack("join", json!({"roomId": "nope"})).await;

        assert_eq!(error_name(&foreign), "chat_404");
        assert_eq!(error_name(&unknown), "chat_404");
        assert_eq!(error_name(&malformed), "bad_request");
    }

    async fn a_message_reaches_the_room_but_the_sending_socket(server: &TestServer) {
        let api = Api::new(server.url());
        let mut alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let mut alice_phone = alice.second_device(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        for socket in [&alice.socket, &bob.socket, &alice_phone] {
            join(socket, &room).await;
        }

        let first = send(&alice.socket, &room, "hello bob").await;
        let second = send(&bob.socket, &room, "hello alice").await;

        let reply = bob.socket.expect_event("reply", is_message(&first)).await;
        assert_eq!(reply["roomId"], room.as_str());
        assert_eq!(reply["authorId"], alice.user.id.as_str());
        assert_eq!(reply["type"], "private");
        assert_eq!(reply["content"], json!({"type": "text", "message": "hello bob"}));
        assert!(reply["createdAt"].as_str().unwrap().ends_with('Z'));
        alice_phone.expect_event("reply", is_message(&first)).await;
        // Replies of one room arrive in order, so by the time the sender
        // sees the second message, a reply of its own first would be there.
        alice.socket.expect_event("reply", is_message(&second)).await;
        let own: Vec<_> = alice.socket.unmatched().iter()
            .filter(|event| event.name == "reply" && is_message(&first)(&event.data))
            .cloned()
            .collect();
        assert!(own.is_empty(), "the sending socket got its own reply: {own:?}");
    }

    async fn the_author_is_told_sent_and_an_absent_peer_gets_an_inbox_notification(server: &TestServer) {
        let api = Api::new(server.url());
        let mut alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&alice.socket, &room).await;

        let id = send(&alice.socket, &room, "are you there?").await;

        let sent = alice.socket.expect_event("notification", |n| n["name"] == "sent").await;
        assert_eq!(sent["content"], json!({"roomId": room, "messageId": id, "message": "message sent"}));
        let inbox = bob.socket.expect_event("notification", |n| n["name"] == "inbox").await;
        assert_eq!(
            inbox["content"],
            json!({"roomId": room, "messageId": id, "authorId": alice.user.id, "message": "new message received"})
        );
    }

    async fn after_leave_a_participant_gets_inbox_instead_of_reply(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&alice.socket, &room).await;
        join(&bob.socket, &room).await;

        let ack = bob.socket.emit_with_ack("leave", json!({"roomId": room})).await;
        let id = send(&alice.socket, &room, "knock knock").await;

        assert_eq!(ack["status"], "ok");
        bob.socket.expect_event("notification", |n| n["name"] == "inbox" && is_message(&id)(n)).await;
        let replies = bob.socket.unmatched().iter().filter(|e| e.name == "reply").count();
        assert_eq!(replies, 0);
    }

    async fn a_message_from_a_non_participant_is_refused_and_nothing_is_stored(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let mut mallory = Chatter::new(&api).await;
        let room = api.room_of(&alice, &bob).await;

        let ack = mallory.socket.emit_with_ack("message", text_message(&room, "let me in", None)).await;
        mallory.socket.emit("message", text_message(&room, "no ack", None)).await;

        assert_eq!(error_name(&ack), "chat_404");
        let event = mallory.socket.expect_event("error", |e| e["name"] == "chat_404").await;
        assert_eq!(event["roomId"], room.as_str());
        assert_eq!(api.history(&alice.token, &room, "").await.expect(200), json!([]));
    }

    async fn every_malformed_message_is_a_bad_request_and_stores_nothing(server: &TestServer) {
        let api = Api::new(server.url());
        let mut alice = Chatter::new(&api).await;
        let bob = api.new_user().await;
        let room = api.room_of(&alice.user, &bob).await;
        let good = text_message(&room, "ok", None);
        let with = |path: &[&str], value: Value| {
            let mut payload = good.clone();
            let mut target = &mut payload;
            for key in &path[..path.len() - 1] {
                target = &mut target[*key];
            }
            target[path[path.len() - 1]] = value;
            payload
        };
        let without = |key: &str| {
            let mut payload = good.clone();
            payload.as_object_mut().unwrap().remove(key);
            payload
        };
        let cases: Vec<(&str, Value)> = vec![
            ("empty text", with(&["content", "message"], json!(""))),
            ("blank text", with(&["content", "message"], json!("  \n "))),
            ("4097 characters", with(&["content", "message"], json!("x".repeat(4097)))),
            ("text is a number", with(&["content", "message"], json!(42))),
            ("text is null", with(&["content", "message"], Value::Null)),
            ("unknown content type", with(&["content", "type"], json!("image"))),
            ("unknown message type", with(&["type"], json!("group"))),
            ("room id not a uuid", with(&["roomId"], json!("room-1"))),
            ("room id a number", with(&["roomId"], json!(7))),
            ("content a string", with(&["content"], json!("hello"))),
            ("clientMessageId an object", with(&["clientMessageId"], json!({"a": 1}))),
            ("no roomId", without("roomId")),
            ("no content", without("content")),
            ("no type", without("type")),
            ("an array", json!(["private", room])),
            ("a string", json!("hello")),
            ("a number", json!(12)),
            ("null", Value::Null),
        ];
        for (case, payload) in &cases {
            let ack = alice.socket.emit_with_ack("message", payload.clone()).await;
            assert_eq!(error_name(&ack), "bad_request", "{case}: {ack}");
        }
        alice.socket.emit("message", json!("no ack asked")).await;
        alice.socket.expect_event("error", |e| e["name"] == "bad_request").await;

        // A valid message after them all is the only one stored.
        let ok = alice.socket.emit_with_ack("message", text_message(&room, &"é".repeat(4096), None)).await;
        let id = accepted_id(&ok);
        let history = wait_for_history(&api, &alice.user.token, &room, 100, |page| !page.is_empty(), EVENT_TIMEOUT).await;
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0]["id"], id.as_str());
    }

    async fn the_pipeline_reports_its_counters_and_fan_out_latency_in_metrics(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&bob.socket, &room).await;
        let id = send(&alice.socket, &room, "counted").await;
        bob.socket.expect_event("reply", is_message(&id)).await;

        let mut wanted = vec![
            "messages_accepted_total",
            "messages_stored_total",
            "messages_delivered_total",
            "sockets_connected",
            "fanout_latency_seconds_bucket",
        ];
        if server.backend() == e2e::Backend::Stack {
            // librdkafka reports statistics every 5 s.
            wanted.push("kafka_consumer_lag");
        }
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let text = reqwest::get(format!("{}/metrics", server.url()))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let missing: Vec<_> = wanted.iter().filter(|name| !text.contains(*name)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "missing {missing:?} in:\n{text}");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}
