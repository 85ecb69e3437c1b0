//! Group rooms: `POST /api/v1/rooms`, `GET /api/v1/rooms/{roomId}`,
//! `POST /api/v1/rooms/{roomId}/members`,
//! `DELETE /api/v1/rooms/{roomId}/members/me`. The rules live in
//! [`crate::membership::groups`]; this is parsing and shapes.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};

use super::{
    error::{ApiError, Result},
    extract::{AuthUser, Json},
    state::AppState,
};
use crate::{
    domain::{MessageId, Room, RoomId, RoomName, UserId},
    membership::groups::GroupError,
};

impl From<GroupError> for ApiError {
    fn from(error: GroupError) -> Self {
        match error {
            GroupError::TooFewMembers | GroupError::NotAGroup | GroupError::OverLimit(_) => {
                Self::BadRequest(error.to_string())
            }
            GroupError::RoomNotFound | GroupError::UserNotFound(_) => {
                Self::NotFound(error.to_string())
            }
            GroupError::SocketsUnreachable(cause) => {
                tracing::warn!(cause = %cause, "the sockets cannot be reached");
                Self::Unavailable("redis")
            }
            GroupError::Store(error) => error.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewGroup {
    name: Option<String>,
    participant_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewMembers {
    user_ids: Option<Vec<String>>,
}

/// A room as `GET /api/v1/rooms/{roomId}` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoomDetail {
    #[serde(flatten)]
    room: Room,
    /// Each member's read marker.
    read_markers: BTreeMap<UserId, MessageId>,
    /// Members online now.
    online: Vec<UserId>,
}

/// `POST /api/v1/rooms`: a new group of the caller and `participantIds`.
#[tracing::instrument(skip_all, fields(user_id = %caller.id))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(body): Json<NewGroup>,
) -> Result<(StatusCode, axum::Json<Room>)> {
    let name = RoomName::parse(body.name.as_deref().ok_or_else(|| required("name"))?)
        .map_err(|error| ApiError::BadRequest(error.0))?;
    let others = user_ids("participantIds", body.participant_ids)?;
    let room = state.groups.create(caller.id, name, &others).await?;
    Ok((StatusCode::CREATED, axum::Json(room)))
}

/// `GET /api/v1/rooms/{roomId}`: either kind, members only.
#[tracing::instrument(skip_all, fields(user_id = %caller.id, room_id = %room_id))]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(room_id): Path<String>,
) -> Result<axum::Json<RoomDetail>> {
    let room = state
        .groups
        .get(caller.id, RoomId::parse(&room_id)?)
        .await?;
    let read_markers = state.storage.read_state.markers(room.room_id).await?;
    Ok(axum::Json(RoomDetail {
        read_markers: read_markers
            .into_iter()
            .filter(|(user, _)| room.participant_ids.contains(user))
            .collect(),
        online: state.presence.online(&room.participant_ids).await?,
        room,
    }))
}

/// `POST /api/v1/rooms/{roomId}/members`: a member adds `userIds`.
#[tracing::instrument(skip_all, fields(user_id = %caller.id, room_id = %room_id))]
pub(super) async fn add_members(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(room_id): Path<String>,
    Json(body): Json<NewMembers>,
) -> Result<axum::Json<Room>> {
    let room = RoomId::parse(&room_id)?;
    let users = user_ids("userIds", body.user_ids)?;
    if users.is_empty() {
        return Err(ApiError::BadRequest("userIds must not be empty".to_owned()));
    }
    Ok(axum::Json(state.groups.add(caller.id, room, &users).await?))
}

/// `DELETE /api/v1/rooms/{roomId}/members/me`: the caller leaves a group.
#[tracing::instrument(skip_all, fields(user_id = %caller.id, room_id = %room_id))]
pub(super) async fn leave(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(room_id): Path<String>,
) -> Result<StatusCode> {
    state
        .groups
        .leave(caller.id, RoomId::parse(&room_id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn required(field: &str) -> ApiError {
    ApiError::BadRequest(format!("{field} is required"))
}

/// Parses a list of user ids, naming the first bad one.
fn user_ids(field: &str, raw: Option<Vec<String>>) -> Result<Vec<UserId>> {
    raw.ok_or_else(|| required(field))?
        .iter()
        .enumerate()
        .map(|(index, id)| {
            UserId::parse(id)
                .map_err(|error| ApiError::BadRequest(format!("{field}[{index}]: {error}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_name_the_bad_one() {
        let good = UserId::random().to_string();
        assert_eq!(
            user_ids("userIds", Some(vec![good.clone()])).unwrap(),
            vec![UserId::parse(&good).unwrap()]
        );
        let error = user_ids("userIds", Some(vec![good, "nope".to_owned()])).unwrap_err();
        assert!(error.to_string().starts_with("userIds[1]:"), "{error}");
        assert!(user_ids("userIds", None).is_err());
    }
}
