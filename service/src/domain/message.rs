use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{MessageId, ParseError, RoomId, UserId};

/// Longest text message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// The text of a message: 1 to 4,096 characters, not blank, without NUL
/// characters (which many clients and terminals cut the text at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Checks the rules of the contract.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.trim().is_empty() {
            return Err(ParseError::new("message must not be empty"));
        }
        if raw.contains('\0') {
            return Err(ParseError::new("message must not contain NUL characters"));
        }
        if raw.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ParseError::new(format!(
                "message must be at most {MAX_MESSAGE_CHARS} characters"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The content of a message; only text exists today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContent {
    /// Always `"text"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub message: String,
}

/// A stored message, in the shape clients receive over HTTP and Socket.IO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Unique, time-ordered id.
    pub id: MessageId,
    /// The room it was sent to.
    pub room_id: RoomId,
    /// Who sent it.
    pub author_id: UserId,
    /// The room's kind: `"private"` or `"group"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What was said.
    pub content: MessageContent,
    /// When the id was made (RFC 3339, UTC, milliseconds).
    #[serde(with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    /// The sender's own id for the message, used to drop resends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
}

impl Message {
    /// A private text message whose creation time is read from its id.
    pub fn new_text(
        id: MessageId,
        room_id: RoomId,
        author_id: UserId,
        text: &MessageText,
        client_message_id: Option<String>,
    ) -> Self {
        Self {
            id,
            room_id,
            author_id,
            kind: "private".to_owned(),
            content: MessageContent {
                kind: "text".to_owned(),
                message: text.as_str().to_owned(),
            },
            created_at: Utc
                .timestamp_millis_opt(id.unix_millis())
                .single()
                .unwrap_or_default(),
            client_message_id,
        }
    }

    /// The same message, sent to a room of `kind`.
    pub fn in_room_of(mut self, kind: super::RoomKind) -> Self {
        kind.as_str().clone_into(&mut self.kind);
        self
    }
}

/// Which slice of a room's history to read. Results are always newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// The newest `limit` messages.
    Latest { limit: usize },
    /// The `limit` messages just older than the id.
    Before { id: MessageId, limit: usize },
    /// The `limit` messages just newer than the id.
    After { id: MessageId, limit: usize },
}

impl HistoryPage {
    /// How many messages the page holds at most.
    pub fn limit(self) -> usize {
        match self {
            Self::Latest { limit } | Self::Before { limit, .. } | Self::After { limit, .. } => {
                limit
            }
        }
    }
}

pub(crate) mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageIdGenerator;

    #[test]
    fn text_must_be_present_and_bounded() {
        assert!(MessageText::parse("hi").is_ok());
        assert!(MessageText::parse("").is_err());
        assert!(MessageText::parse(" \n\t").is_err());
        assert!(MessageText::parse("a\0b").is_err());
        assert!(MessageText::parse("line one\nline two").is_ok());
        assert!(MessageText::parse(&"ü".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(MessageText::parse(&"a".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
    }

    #[test]
    fn a_message_serializes_in_the_contract_shape() {
        let id = MessageIdGenerator::new(1).next_id();
        let text = MessageText::parse("hello").unwrap();
        let message = Message::new_text(id, RoomId::random(), UserId::random(), &text, None);
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["id"], id.to_string());
        assert_eq!(json["type"], "private");
        assert_eq!(json["content"]["type"], "text");
        assert_eq!(json["content"]["message"], "hello");
        assert!(json["createdAt"].as_str().unwrap().ends_with('Z'));
        assert!(json.get("clientMessageId").is_none());
        let back: Message = serde_json::from_value(json).unwrap();
        assert_eq!(back, message);
    }
}
