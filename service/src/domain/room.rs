use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ParseError, RoomId, UserId};

/// Longest group name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 100;

/// The two kinds of room: a private room of two users, made once per pair
/// and never changed, or a named group whose members come and go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// Two users, for good.
    Private,
    /// A name and up to `ROOM_MAX_MEMBERS` members.
    Group,
}

impl RoomKind {
    /// As messages and rooms spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Group => "group",
        }
    }

    /// `"private"` or `"group"`.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "private" => Ok(Self::Private),
            "group" => Ok(Self::Group),
            other => Err(ParseError::new(format!("unknown message type {other:?}"))),
        }
    }
}

/// The name of a group: 1 to 100 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RoomName(String);

impl RoomName {
    /// Checks the rules of the contract.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.trim().is_empty() {
            return Err(ParseError::new("name must not be blank"));
        }
        if raw.chars().count() > MAX_ROOM_NAME_CHARS {
            return Err(ParseError::new(format!(
                "name must be at most {MAX_ROOM_NAME_CHARS} characters"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// Its id.
    pub room_id: RoomId,
    /// Private or group.
    #[serde(rename = "type")]
    pub kind: RoomKind,
    /// A group's name; private rooms have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<RoomName>,
    /// Its members, in id order.
    pub participant_ids: Vec<UserId>,
    /// When it was made.
    #[serde(with = "super::message::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
}

/// Who hears of a message besides the sockets joined to its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A private room: the other participant.
    Peer(UserId),
    /// A group: its members at the time the message is stored.
    Group,
}

impl Audience {
    /// The kind of room this audience belongs to.
    pub fn kind(self) -> RoomKind {
        match self {
            Self::Peer(_) => RoomKind::Private,
            Self::Group => RoomKind::Group,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_present_and_bounded() {
        assert!(RoomName::parse("team").is_ok());
        assert!(RoomName::parse(&"é".repeat(MAX_ROOM_NAME_CHARS)).is_ok());
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("  \t").is_err());
        assert!(RoomName::parse(&"a".repeat(MAX_ROOM_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn kinds_round_trip_and_nothing_else_parses() {
        for kind in [RoomKind::Private, RoomKind::Group] {
            assert_eq!(RoomKind::parse(kind.as_str()).unwrap(), kind);
        }
        assert!(RoomKind::parse("Group").is_err());
        assert!(RoomKind::parse("channel").is_err());
    }
}
