//! Engine.IO v4 and Socket.IO v5 text packets, as far as the lean client
//! needs them: no binary attachments, no long polling.
//!
//! A WebSocket text frame holds one Engine.IO packet: a type digit (`0`
//! open, `1` close, `2` ping, `3` pong, `4` message, `6` noop) and its
//! data. A message holds one Socket.IO packet: a type digit (`0` connect,
//! `1` disconnect, `2` event, `3` ack, `4` connect error), the namespace
//! and a comma unless it is `/`, the ack id if any, then JSON.

use serde_json::Value;

/// The chat's namespace.
pub const NAMESPACE: &str = "/chats";
/// The Engine.IO answer to a ping.
pub const PONG: &str = "3";

/// An Engine.IO packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine<'a> {
    /// The handshake, with its JSON.
    Open(&'a str),
    /// The server closes the connection.
    Close,
    /// The server's heartbeat; answer [`PONG`].
    Ping,
    /// A Socket.IO packet.
    Message(&'a str),
    /// Anything else (pong, noop, upgrade, unknown).
    Other,
}

/// Reads the Engine.IO packet of a text frame.
pub fn engine(frame: &str) -> Engine<'_> {
    let Some(kind) = frame.chars().next() else {
        return Engine::Other;
    };
    let data = &frame[kind.len_utf8()..];
    match kind {
        '0' => Engine::Open(data),
        '1' => Engine::Close,
        '2' => Engine::Ping,
        '4' => Engine::Message(data),
        _ => Engine::Other,
    }
}

/// A Socket.IO packet from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// The namespace accepted the connection.
    Connect(Value),
    /// The server left the namespace.
    Disconnect,
    /// An event and its first argument.
    Event {
        /// The event's name.
        name: String,
        /// Its first argument (`Null` if none).
        data: Value,
    },
    /// The answer to an emit that asked for one.
    Ack {
        /// The id the emit carried.
        id: u64,
        /// The ack's first argument (`Null` if none).
        data: Value,
    },
    /// The namespace refused the connection.
    ConnectError(Value),
    /// A packet type this client does not handle (binary ones).
    Unsupported(char),
}

/// Reads a Socket.IO packet (the data of an Engine.IO message): its
/// namespace and what it says; `None` when it is malformed.
pub fn parse(text: &str) -> Option<(&str, Packet)> {
    let kind = text.chars().next()?;
    let mut rest = &text[kind.len_utf8()..];
    let namespace = match rest.strip_prefix('/') {
        Some(_) => {
            let end = rest.find(',').unwrap_or(rest.len());
            let namespace = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
            namespace
        }
        None => "/",
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let id = (digits > 0)
        .then(|| rest[..digits].parse::<u64>())
        .transpose()
        .ok()?;
    let json = &rest[digits..];
    let data = if json.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(json).ok()?
    };
    let packet = match kind {
        '0' => Packet::Connect(data),
        '1' => Packet::Disconnect,
        '2' => {
            let Value::Array(mut args) = data else {
                return None;
            };
            if args.is_empty() {
                return None;
            }
            let name = match args.remove(0) {
                Value::String(name) => name,
                _ => return None,
            };
            Packet::Event {
                name,
                data: args.into_iter().next().unwrap_or(Value::Null),
            }
        }
        '3' => Packet::Ack {
            id: id?,
            data: super::first_of(data),
        },
        '4' => Packet::ConnectError(data),
        other => Packet::Unsupported(other),
    };
    Some((namespace, packet))
}

/// The frame that joins `namespace`.
pub fn connect(namespace: &str) -> String {
    format!("40{namespace},")
}

/// The frame that leaves `namespace`.
pub fn disconnect(namespace: &str) -> String {
    format!("41{namespace},")
}

/// The frame of event `name` with one argument, asking for an ack with `id`.
pub fn event(namespace: &str, id: u64, name: &str, data: &Value) -> String {
    let args = Value::Array(vec![Value::String(name.to_owned()), data.clone()]);
    format!("42{namespace},{id}{args}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn engine_packets_are_told_apart_by_their_first_digit() {
        assert_eq!(engine("0{\"sid\":\"a\"}"), Engine::Open("{\"sid\":\"a\"}"));
        assert_eq!(engine("2"), Engine::Ping);
        assert_eq!(engine("1"), Engine::Close);
        assert_eq!(
            engine("42/chats,[\"x\"]"),
            Engine::Message("2/chats,[\"x\"]")
        );
        assert_eq!(engine("6"), Engine::Other);
        assert_eq!(engine(""), Engine::Other);
    }

    #[test]
    fn an_emit_with_an_ack_id_is_framed_as_socket_io_writes_it() {
        let frame = event(NAMESPACE, 17, "message", &json!({"roomId": "r"}));
        assert_eq!(frame, "42/chats,17[\"message\",{\"roomId\":\"r\"}]");
        assert_eq!(connect(NAMESPACE), "40/chats,");
        assert_eq!(disconnect(NAMESPACE), "41/chats,");
    }

    #[test]
    fn acks_events_and_connects_are_read_with_their_namespace() {
        assert_eq!(
            parse("3/chats,17[{\"status\":\"accepted\",\"messageId\":\"9\"}]"),
            Some((
                "/chats",
                Packet::Ack {
                    id: 17,
                    data: json!({"status": "accepted", "messageId": "9"}),
                }
            ))
        );
        assert_eq!(
            parse("2/chats,[\"reply\",{\"id\":\"1\"}]"),
            Some((
                "/chats",
                Packet::Event {
                    name: "reply".to_owned(),
                    data: json!({"id": "1"}),
                }
            ))
        );
        assert_eq!(
            parse("0/chats,{\"sid\":\"abc\"}"),
            Some(("/chats", Packet::Connect(json!({"sid": "abc"}))))
        );
        assert_eq!(
            parse("4/chats,{\"message\":\"unauthorized\"}"),
            Some((
                "/chats",
                Packet::ConnectError(json!({"message": "unauthorized"}))
            ))
        );
        assert_eq!(parse("1/chats,"), Some(("/chats", Packet::Disconnect)));
        assert_eq!(parse("0{\"sid\":\"x\"}").map(|(ns, _)| ns), Some("/"));
    }

    #[test]
    fn malformed_packets_are_not_read() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("3/chats,[{}]"), None, "an ack without an id");
        assert_eq!(parse("2/chats,{\"not\":\"an array\"}"), None);
        assert_eq!(parse("2/chats,[\"reply\""), None);
    }
}
