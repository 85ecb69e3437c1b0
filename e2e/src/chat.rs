//! Helpers for chat scenarios: a user with an open socket, and payloads.

use serde_json::{json, Value};

use crate::{Api, ChatSocket, TestUser};

/// A user with a connected `/chats` socket.
pub struct Chatter {
    /// The account.
    pub user: TestUser,
    /// Its socket.
    pub socket: ChatSocket,
}

impl Chatter {
    /// Registers a user and connects a socket for it.
    pub async fn new(api: &Api) -> Self {
        let user = api.new_user().await;
        let socket = ChatSocket::connect(api.base(), &user.token).await;
        Self { user, socket }
    }

    /// Another device of the same user.
    pub async fn second_device(&self, api: &Api) -> ChatSocket {
        ChatSocket::connect(api.base(), &self.user.token).await
    }
}

/// A `message` payload with text and an optional client message id.
pub fn text_message(room: &str, text: &str, client_message_id: Option<&str>) -> Value {
    let mut payload = json!({
        "type": "private",
        "roomId": room,
        "content": {"type": "text", "message": text},
    });
    if let Some(id) = client_message_id {
        payload["clientMessageId"] = json!(id);
    }
    payload
}

/// A `message` payload of type `group` with text.
pub fn group_message(room: &str, text: &str) -> Value {
    let mut payload = text_message(room, text, None);
    payload["type"] = json!("group");
    payload
}

/// Sends a text message to a group room and returns the accepted message id.
pub async fn send_group(socket: &ChatSocket, room: &str, text: &str) -> String {
    let ack = socket
        .emit_with_ack("message", group_message(room, text))
        .await;
    accepted_id(&ack)
}

/// Joins `room` and asserts the `ok` ack.
pub async fn join(socket: &ChatSocket, room: &str) {
    let ack = socket
        .emit_with_ack("join", json!({ "roomId": room }))
        .await;
    assert_eq!(ack["status"], "ok", "join ack: {ack}");
}

/// Sends a text message and returns the accepted message id.
pub async fn send(socket: &ChatSocket, room: &str, text: &str) -> String {
    let ack = socket
        .emit_with_ack("message", text_message(room, text, None))
        .await;
    accepted_id(&ack)
}

/// Sends `count` text messages one after another, waiting out the rate
/// limit as a client would; the accepted ids, in order.
pub async fn send_all(socket: &ChatSocket, room: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let ack = socket
            .emit_with_ack(
                "message",
                text_message(room, &format!("m{}", ids.len()), None),
            )
            .await;
        if ack["status"] == "error" && ack["error"]["name"] == "rate_limited" {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        ids.push(accepted_id(&ack));
    }
    ids
}

/// The `messageId` of an `accepted` ack, asserting its shape.
#[track_caller]
pub fn accepted_id(ack: &Value) -> String {
    assert_eq!(ack["status"], "accepted", "ack: {ack}");
    let id = ack["messageId"].as_str().expect("messageId is a string");
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "messageId {id}"
    );
    id.to_owned()
}

/// The error name of an `error` ack.
#[track_caller]
pub fn error_name(ack: &Value) -> String {
    assert_eq!(ack["status"], "error", "ack: {ack}");
    ack["error"]["name"]
        .as_str()
        .expect("error.name")
        .to_owned()
}

/// Whether `data` is the reply (or notification) for message `id`.
pub fn is_message(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |data| data["id"] == id || data["content"]["messageId"] == id
}

/// Polls a room's newest `limit` messages until `done` holds for them, or
/// panics after `timeout`. History is written by the pipeline after the
/// ack, so tests wait for it rather than read it once.
pub async fn wait_for_history(
    api: &Api,
    token: &str,
    room: &str,
    limit: usize,
    done: impl Fn(&[Value]) -> bool,
    timeout: std::time::Duration,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // A 503 while a backend comes back is waited out like any other
        // unfinished state.
        let answer = api.history(token, room, &format!("limit={limit}")).await;
        let page = match answer.status.as_u16() {
            200 => answer.body.as_array().cloned().unwrap_or_default(),
            503 => Vec::new(),
            other => panic!("history answered {other}: {}", answer.body),
        };
        if answer.status.as_u16() == 200 && done(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never satisfied the condition; last answer: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Reads a room's whole history, newest first, paging with `before`.
pub async fn full_history(api: &Api, token: &str, room: &str) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let query = match all.last() {
            Some(oldest) => format!(
                "limit=100&context=before&latestMessageId={}",
                oldest["id"].as_str().unwrap_or_default()
            ),
            None => "limit=100".to_owned(),
        };
        let page = api.history(token, room, &query).await.expect(200);
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}
