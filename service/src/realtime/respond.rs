//! [`Responder`]: answers a socket request on its ack when the client asked
//! for one, and with an `error` event otherwise, as the contract requires.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, SocketRef},
    handler::{FromMessageParts, Value as PacketValue},
    socket::Socket,
};

use super::error::Failure;

/// An extractor for the answer to the current request.
pub struct Responder<A: Adapter> {
    socket: SocketRef<A>,
    ack: AckSender<A>,
    wants_ack: bool,
}

impl<A: Adapter> FromMessageParts<A> for Responder<A> {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        value: &mut PacketValue,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self {
            socket: SocketRef::from(socket.clone()),
            ack: AckSender::from_message_parts(socket, value, ack_id)?,
            wants_ack: ack_id.is_some(),
        })
    }
}

impl<A: Adapter> Responder<A> {
    /// Answers success on the ack; without one, success needs no answer.
    pub fn ok(self, body: &Value) {
        if let Err(error) = self.ack.send(body) {
            tracing::debug!(cause = %error, "ack not sent");
        }
    }

    /// Reports `failure` on the ack, or as an `error` event.
    pub fn fail(self, failure: &Failure) {
        tracing::info!(name = failure.error.name(), reason = %failure.error, "request refused");
        let sent = if self.wants_ack {
            self.ack.send(&failure.error.ack_body())
        } else {
            self.socket
                .emit("error", &failure.error.event_body(failure.room))
        };
        if let Err(error) = sent {
            tracing::debug!(cause = %error, "failure not sent");
        }
    }
}
