//! The gateway's error type, mapped once to the contract's socket shapes:
//! the ack `{"status": "error", "error": {"name", "message"}}` and the
//! `error` event `{"name", "message", "roomId"?}`.

use serde_json::{json, Value};

use crate::{
    domain::{ParseError, RoomId},
    pipeline::accept::AcceptError,
    read_state::ReadError,
    store::StoreError,
};

/// Every way a socket request can fail.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The payload breaks a rule (`bad_request`); the text says which.
    #[error("{0}")]
    BadRequest(String),
    /// The room is unknown or the user is not a participant (`chat_404`).
    #[error("room not found")]
    RoomNotFound,
    /// The room has no such message (`chat_404`).
    #[error("message not found")]
    MessageNotFound,
    /// The user sends faster than allowed (`rate_limited`).
    #[error("too many messages; slow down")]
    RateLimited,
    /// The socket or user joins (or catches up) faster than allowed
    /// (`rate_limited`).
    #[error("too many joins; slow down")]
    TooManyJoins,
    /// A backend (Kafka, Redis, Cassandra) did not answer in time
    /// (`chat_503`); the client may retry, with the same `clientMessageId`.
    #[error("service unavailable; try again")]
    Unavailable,
}

impl SocketError {
    /// The `name` clients switch on.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::RoomNotFound | Self::MessageNotFound => "chat_404",
            Self::RateLimited | Self::TooManyJoins => "rate_limited",
            Self::Unavailable => "chat_503",
        }
    }

    /// The answer on an ack.
    pub fn ack_body(&self) -> Value {
        json!({
            "status": "error",
            "error": { "name": self.name(), "message": self.to_string() },
        })
    }

    /// The payload of an `error` event.
    pub fn event_body(&self, room: Option<RoomId>) -> Value {
        let mut body = json!({ "name": self.name(), "message": self.to_string() });
        if let Some(room) = room {
            body["roomId"] = json!(room);
        }
        body
    }
}

impl From<ParseError> for SocketError {
    fn from(error: ParseError) -> Self {
        Self::BadRequest(error.0)
    }
}

impl From<StoreError> for SocketError {
    fn from(error: StoreError) -> Self {
        tracing::warn!(cause = %error, "backend call failed");
        Self::Unavailable
    }
}

impl From<ReadError> for SocketError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::RoomNotFound => Self::RoomNotFound,
            ReadError::MessageNotFound => Self::MessageNotFound,
            ReadError::Store(error) => error.into(),
        }
    }
}

impl From<AcceptError> for SocketError {
    fn from(error: AcceptError) -> Self {
        tracing::warn!(cause = %error, "message not accepted");
        Self::Unavailable
    }
}

/// A failure together with the room it concerned, when known.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: SocketError,
    /// The room of the request, if the payload named a valid one.
    pub room: Option<RoomId>,
}

impl Failure {
    /// `error` about `room`.
    pub fn new(error: impl Into<SocketError>, room: Option<RoomId>) -> Self {
        Self {
            error: error.into(),
            room,
        }
    }

    /// A payload that is not a JSON object the server could read.
    pub fn bad_shape() -> Self {
        Self::new(
            SocketError::BadRequest("payload must be a JSON object".to_owned()),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_contract_names_and_shapes() {
        let room = RoomId::random();
        let event = SocketError::RoomNotFound.event_body(Some(room));
        assert_eq!(event["name"], "chat_404");
        assert_eq!(event["roomId"], room.to_string());
        let ack = SocketError::BadRequest("why".into()).ack_body();
        assert_eq!(ack["status"], "error");
        assert_eq!(ack["error"]["name"], "bad_request");
        assert_eq!(ack["error"]["message"], "why");
        assert!(SocketError::RateLimited
            .event_body(None)
            .get("roomId")
            .is_none());
    }
}
