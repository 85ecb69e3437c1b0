//! The cap on one incoming Socket.IO frame: the largest legal message fits
//! under it, and a frame over it closes its own connection, on either
//! transport, while every other socket keeps being served.

use e2e::{
    chat::{accepted_id, is_message, join, send, text_message, Chatter},
    engine_io::{PollingSession, RawWebSocket},
    socket::EVENT_TIMEOUT,
    Api, TestServer,
};
use service::config::DEFAULT_FRAME_LIMIT;

/// A frame far over the cap.
const OVERSIZED: usize = 3 * 1024 * 1024;

/// A `message` event frame carrying `text`, without an ack.
fn message_frame(room: &str, text: &str) -> String {
    format!(r#"42/chats,["message",{}]"#, text_message(room, text, None))
}

async fn assert_healthy(server: &TestServer) {
    let health = reqwest::get(format!("{}/health", server.url()))
        .await
        .expect("/health answers");
    assert_eq!(health.status().as_u16(), 200);
}

on_both_backends! {
    async fn the_largest_legal_message_fits_in_one_frame_escaped_or_not(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&bob.socket, &room).await;
        let mut raw = RawWebSocket::connect(api.base(), &alice.user.token).await;
        let text = "😀".repeat(4096);
        // Every character escaped as a surrogate pair, as Python's
        // json.dumps writes it: the largest frame a legal message makes.
        let escaped = format!(
            r#"{{"type":"private","roomId":"{room}","content":{{"type":"text","message":"{}"}}}}"#,
            r"\ud83d\ude00".repeat(4096)
        );

        let unescaped_id = send(&alice.socket, &room, &text).await;
        let escaped_id = accepted_id(&raw.emit_with_ack("message", &escaped).await);

        for id in [unescaped_id, escaped_id] {
            let reply = bob.socket.expect_event("reply", is_message(&id)).await;
            assert_eq!(reply["content"]["message"], text.as_str());
        }
    }

    async fn an_oversized_websocket_frame_closes_that_socket_and_no_other(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&bob.socket, &room).await;
        let mut raw = RawWebSocket::connect(api.base(), &alice.user.token).await;

        // The server may reset the connection before the whole frame is
        // written; either way it must end.
        let _ = raw.send_frame(message_frame(&room, &"x".repeat(OVERSIZED))).await;

        assert!(raw.closed_within(EVENT_TIMEOUT).await, "the connection stayed open");
        let id = send(&alice.socket, &room, "still served").await;
        bob.socket.expect_event("reply", is_message(&id)).await;
        assert_healthy(server).await;
    }

    async fn an_oversized_polling_request_is_refused_and_ends_its_session(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let mut bob = Chatter::new(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        join(&bob.socket, &room).await;
        let polling = PollingSession::open(api.base(), &alice.user.token).await;

        let posted = polling.post(message_frame(&room, &"x".repeat(OVERSIZED))).await;

        if e2e::external_target().is_none() {
            assert_eq!(polling.max_payload, DEFAULT_FRAME_LIMIT as u64, "the cap announced in the handshake");
        }
        // 413, or the connection cut before the whole body was sent.
        assert!(matches!(posted, Ok(413) | Err(_)), "the oversized POST got {posted:?}");
        let after = polling.poll().await;
        assert!(
            matches!(&after, Ok((400, body)) if body.contains("Session ID unknown")),
            "the session outlived the oversized POST: {after:?}"
        );
        let id = send(&alice.socket, &room, "still served").await;
        bob.socket.expect_event("reply", is_message(&id)).await;
        assert_healthy(server).await;
    }
}
