//! Parsing of client payloads by hand, from `serde_json::Value`, so that
//! every wrong shape gets a `bad_request` that says what is wrong (a typed
//! `Data<T>` would drop it without an answer).

use serde_json::{Map, Value};
use socketioxide::ParserError;

use super::error::Failure;
use crate::domain::{MessageId, MessageText, ParseError, RoomId, RoomKind};

/// Longest accepted `clientMessageId`, in characters.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;

/// A valid `message` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The kind of room the client says it sends to.
    pub kind: RoomKind,
    /// The room it goes to.
    pub room: RoomId,
    /// Its text.
    pub text: MessageText,
    /// The client's id for it, if any.
    pub client_message_id: Option<String>,
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ParseError> {
    value
        .as_object()
        .ok_or_else(|| ParseError(format!("{what} must be an object")))
}

fn string<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, ParseError> {
    match fields.get(name) {
        None | Some(Value::Null) => Err(ParseError(format!("{name} is required"))),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ParseError(format!("{name} must be a string"))),
    }
}

/// The room of a `join` / `leave` payload `{"roomId"}`.
pub fn parse_room(value: &Value) -> Result<RoomId, ParseError> {
    let fields = object(value, "payload")?;
    RoomId::parse(string(fields, "roomId")?)
}

/// The room of a `leave` or `typing` event's payload, as the socket read it.
pub fn room_of(payload: Result<Value, ParserError>) -> Result<RoomId, Failure> {
    let value = payload.map_err(|_| Failure::bad_shape())?;
    parse_room(&value).map_err(|error| Failure::new(error, None))
}

/// A `join` payload `{"roomId", "since"?}`.
pub fn parse_join(value: &Value) -> Result<(RoomId, Option<MessageId>), ParseError> {
    let fields = object(value, "payload")?;
    let room = RoomId::parse(string(fields, "roomId")?)?;
    let since = match fields.get("since") {
        None | Some(Value::Null) => None,
        Some(Value::String(since)) => {
            Some(MessageId::parse(since).map_err(|e| ParseError(format!("since: {e}")))?)
        }
        Some(_) => return Err(ParseError("since must be a message id string".to_owned())),
    };
    Ok((room, since))
}

/// A `read` payload `{"roomId", "messageId"}`.
pub fn parse_read(value: &Value) -> Result<(RoomId, MessageId), ParseError> {
    let fields = object(value, "payload")?;
    let room = RoomId::parse(string(fields, "roomId")?)?;
    let message = MessageId::parse(string(fields, "messageId")?)
        .map_err(|e| ParseError(format!("messageId: {e}")))?;
    Ok((room, message))
}

/// The room named by a payload, if it names a valid one (for error events).
pub fn room_hint(value: &Value) -> Option<RoomId> {
    value
        .get("roomId")
        .and_then(Value::as_str)
        .and_then(|raw| RoomId::parse(raw).ok())
}

/// A `message` payload:
/// `{"type": "private" | "group", "roomId", "content": {"type": "text", "message"}, "clientMessageId"?}`.
pub fn parse_message(value: &Value) -> Result<SendRequest, ParseError> {
    let fields = object(value, "payload")?;
    let kind = RoomKind::parse(string(fields, "type")?)?;
    let room = RoomId::parse(string(fields, "roomId")?)?;
    let content = match fields.get("content") {
        None | Some(Value::Null) => return Err(ParseError("content is required".to_owned())),
        Some(content) => object(content, "content")?,
    };
    let content_kind = string(content, "type").map_err(|e| ParseError(format!("content.{e}")))?;
    if content_kind != "text" {
        return Err(ParseError(format!("unknown content type {content_kind:?}")));
    }
    let text = string(content, "message").map_err(|e| ParseError(format!("content.{e}")))?;
    let text = MessageText::parse(text)?;
    let client_message_id = match fields.get("clientMessageId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id))
            if !id.trim().is_empty() && id.chars().count() <= MAX_CLIENT_MESSAGE_ID_CHARS =>
        {
            Some(id.clone())
        }
        Some(_) => {
            return Err(ParseError(format!(
                "clientMessageId must be a string of 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} characters"
            )))
        }
    };
    Ok(SendRequest {
        kind,
        room,
        text,
        client_message_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid(room: RoomId) -> Value {
        json!({
            "type": "private",
            "roomId": room.to_string(),
            "content": {"type": "text", "message": "hello"},
            "clientMessageId": "c-1",
        })
    }

    #[test]
    fn a_valid_message_parses() {
        let room = RoomId::random();
        let request = parse_message(&valid(room)).unwrap();
        assert_eq!(request.kind, RoomKind::Private);
        assert_eq!(request.room, room);
        assert_eq!(request.text.as_str(), "hello");
        assert_eq!(request.client_message_id.as_deref(), Some("c-1"));
    }

    #[test]
    fn every_bad_shape_is_refused_with_a_reason() {
        let room = RoomId::random();
        let mut cases = vec![json!(null), json!("text"), json!(42), json!([valid(room)])];
        let edits: Vec<(&str, Value)> = vec![
            ("/type", json!("channel")),
            ("/type", json!("Private")),
            ("/type", json!(1)),
            ("/roomId", json!("not-a-uuid")),
            ("/roomId", json!(7)),
            ("/content", json!("hello")),
            ("/content/type", json!("image")),
            ("/content/message", json!("")),
            ("/content/message", json!("   ")),
            ("/content/message", json!(12)),
            ("/content/message", json!("a".repeat(4097))),
            ("/clientMessageId", json!(5)),
            ("/clientMessageId", json!("")),
        ];
        for (pointer, replacement) in edits {
            let mut case = valid(room);
            *case.pointer_mut(pointer).unwrap() = replacement;
            cases.push(case);
        }
        for field in ["type", "roomId", "content"] {
            let mut case = valid(room);
            case.as_object_mut().unwrap().remove(field);
            cases.push(case);
        }
        for case in cases {
            let error = parse_message(&case).expect_err(&case.to_string());
            assert!(!error.0.is_empty());
        }
    }

    #[test]
    fn a_missing_client_message_id_is_fine() {
        let mut case = valid(RoomId::random());
        case.as_object_mut().unwrap().remove("clientMessageId");
        assert_eq!(parse_message(&case).unwrap().client_message_id, None);
    }

    #[test]
    fn read_needs_a_room_and_a_message_id() {
        let room = RoomId::random();
        let (parsed, message) =
            parse_read(&json!({"roomId": room.to_string(), "messageId": "42"})).unwrap();
        assert_eq!((parsed, message.as_i64()), (room, 42));
        for bad in [
            json!({"roomId": room.to_string()}),
            json!({"roomId": room.to_string(), "messageId": 42}),
            json!({"roomId": room.to_string(), "messageId": "-1"}),
            json!({"roomId": "x", "messageId": "42"}),
            json!("42"),
        ] {
            assert!(parse_read(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn join_needs_an_object_with_a_room_uuid() {
        let room = RoomId::random();
        assert_eq!(
            parse_room(&json!({"roomId": room.to_string()})).unwrap(),
            room
        );
        assert!(parse_room(&json!({"roomId": "x"})).is_err());
        assert!(parse_room(&json!({})).is_err());
        assert!(parse_room(&json!(room.to_string())).is_err());
    }
}
