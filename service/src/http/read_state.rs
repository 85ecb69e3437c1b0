//! The conversation list (`GET /api/v1/rooms` without `peerId`) and
//! `POST /api/v1/rooms/{roomId}/read`. The rules live in
//! [`crate::read_state`].

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;

use super::{
    error::{ApiError, Result},
    extract::{parse_limit, AuthUser, Json},
    state::AppState,
};
use crate::{
    domain::{MessageId, RoomId},
    read_state::{
        conversations::{Conversation, Cursor},
        ReadError,
    },
};

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::RoomNotFound | ReadError::MessageNotFound => {
                Self::NotFound(error.to_string())
            }
            ReadError::Store(error) => error.into(),
        }
    }
}

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

/// The caller's rooms, latest activity first.
pub(super) async fn conversations(
    state: &AppState,
    caller: &AuthUser,
    limit: Option<&str>,
    before: Option<&str>,
) -> Result<Vec<Conversation>> {
    let limit = parse_limit(limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = before.map(Cursor::parse).transpose()?;
    Ok(state.conversations.list(caller.id, limit, before).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MarkRead {
    message_id: Option<String>,
}

/// `POST /api/v1/rooms/{roomId}/read {"messageId"}`: 204; the room's
/// members' sockets (the caller's included) hear `read` when the marker
/// moved.
#[tracing::instrument(skip_all, fields(user_id = %caller.id, room_id = %room_id))]
pub(super) async fn mark_read(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(room_id): Path<String>,
    Json(body): Json<MarkRead>,
) -> Result<StatusCode> {
    let room = RoomId::parse(&room_id)?;
    let message = body
        .message_id
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("messageId is required".to_owned()))?;
    let message =
        MessageId::parse(message).map_err(|e| ApiError::BadRequest(format!("messageId: {e}")))?;
    if let Some(moved) = state.reading.mark(caller.id, room, message).await? {
        if let Err(error) = state
            .sockets
            .emit(moved.to, Vec::new(), "notification", &moved.payload)
            .await
        {
            // The marker moved; other devices see it in the list.
            tracing::warn!(cause = %error, "cannot tell the room of a read");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
