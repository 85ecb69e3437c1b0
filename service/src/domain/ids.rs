use std::{
    fmt,
    str::FromStr,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::ParseError;

use crate::locks::LockExt;

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ": a UUID, written as a string.")]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the textual form of a UUID.
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(raw.trim())
                    .map(Self)
                    .map_err(|_| ParseError::new(concat!($what, " id must be a UUID")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(raw: &str) -> Result<Self, ParseError> {
                Self::parse(raw)
            }
        }
    };
}

uuid_id!(UserId, "user");
uuid_id!(RoomId, "room");

/// Milliseconds since the Unix epoch at which message ids start counting
/// (2024-01-01T00:00:00Z). 41 bits of milliseconds last until 2093.
const ID_EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
/// How many service instances can hand out ids at once.
pub const MAX_NODES: u16 = 1 << NODE_BITS;
const SEQUENCE_MASK: i64 = (1 << SEQUENCE_BITS) - 1;

/// A message id: a positive 64-bit integer, unique and ordered by time
/// (Snowflake layout: 41 bits of milliseconds, 10 of node, 12 of sequence).
/// On the wire it is a decimal string, since JavaScript numbers lose
/// precision above 2^53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(i64);

impl MessageId {
    /// Wraps a stored id; ids that no generator could make are refused.
    pub fn from_i64(raw: i64) -> Result<Self, ParseError> {
        if raw <= 0 {
            return Err(ParseError::new("message id must be a positive integer"));
        }
        Ok(Self(raw))
    }

    /// Parses the decimal form clients send.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let raw = raw.trim();
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new("message id must be a decimal integer"));
        }
        raw.parse::<i64>()
            .map_err(|_| ParseError::new("message id is out of range"))
            .and_then(Self::from_i64)
    }

    /// The integer value, as stored.
    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// When the id was made, in milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        (self.0 >> (NODE_BITS + SEQUENCE_BITS)) + ID_EPOCH_MS
    }

    /// The smallest id of `unix_millis` (node and sequence 0), or of the
    /// id epoch for an earlier time: a point in time among ids.
    pub fn floor_at(unix_millis: i64) -> Self {
        let since_epoch = (unix_millis - ID_EPOCH_MS).max(0);
        Self((since_epoch << (NODE_BITS + SEQUENCE_BITS)).max(1))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Makes message ids for one node. Two generators with different node ids
/// never make the same id; one generator never makes the same id twice,
/// even when the wall clock steps back.
#[derive(Debug)]
pub struct MessageIdGenerator {
    node: i64,
    state: Mutex<(i64, i64)>,
}

impl MessageIdGenerator {
    /// A generator for `node`, which must be below [`MAX_NODES`].
    pub fn new(node: u16) -> Self {
        assert!(node < MAX_NODES, "node id {node} is out of range");
        Self {
            node: i64::from(node),
            state: Mutex::new((0, 0)),
        }
    }

    /// The node id this generator stamps into its ids.
    pub fn node(&self) -> u16 {
        self.node as u16
    }

    /// The next id.
    pub fn next_id(&self) -> MessageId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64)
            - ID_EPOCH_MS;
        let mut state = self.state.lock_or_recover();
        let (last, sequence) = *state;
        // A clock that steps back keeps the last millisecond, so ids stay
        // ordered; a full millisecond borrows the next one.
        let (millis, sequence) = if now > last {
            (now, 0)
        } else if sequence < SEQUENCE_MASK {
            (last, sequence + 1)
        } else {
            (last + 1, 0)
        };
        *state = (millis, sequence);
        MessageId((millis << (NODE_BITS + SEQUENCE_BITS)) | (self.node << SEQUENCE_BITS) | sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_from_one_generator_are_unique_and_increasing() {
        let generator = MessageIdGenerator::new(7);
        let ids: Vec<_> = (0..20_000).map(|_| generator.next_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn two_nodes_never_share_an_id() {
        let (a, b) = (MessageIdGenerator::new(1), MessageIdGenerator::new(2));
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
    }

    #[test]
    fn an_id_knows_when_it_was_made() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let id = MessageIdGenerator::new(0).next_id();
        assert!((id.unix_millis() - before).abs() < 1_000);
    }

    #[test]
    fn message_ids_travel_as_decimal_strings() {
        let id = MessageId::parse("9007199254740993").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"9007199254740993\"");
        for bad in ["", "-1", "0", "1.5", "1e3", "abc", "99999999999999999999"] {
            assert!(MessageId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uuids_parse_and_garbage_does_not() {
        assert!(RoomId::parse("not-a-uuid").is_err());
        let id = RoomId::random();
        assert_eq!(RoomId::parse(&id.to_string()).unwrap(), id);
    }
}
