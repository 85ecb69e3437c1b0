//! Domain types. Each parses its input once, at the edge of the service,
//! so code past the edge cannot hold an invalid value.

mod account;
mod ids;
mod message;
mod room;

pub use account::{DisplayName, Password, User, Username};
pub use ids::{MessageId, MessageIdGenerator, RoomId, UserId};
pub use message::{HistoryPage, Message, MessageContent, MessageText, MAX_MESSAGE_CHARS};
pub use room::{Audience, Room, RoomKind, RoomName, MAX_ROOM_NAME_CHARS};

/// Why an input was refused; the text is shown to the client as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
