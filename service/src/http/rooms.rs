//! `/api/v1/rooms`: the private room of two users, and a room's history.
//! Groups are in [`super::groups`].

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Router,
};
use serde::{Deserialize, Serialize};

use super::{
    error::{ApiError, Result},
    extract::{parse_limit, AuthUser, Query},
    groups, read_state,
    state::AppState,
};
use crate::domain::{HistoryPage, Message, MessageId, RoomId, UserId};

const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: usize = 100;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rooms", get(private_room).post(groups::create))
        .route("/api/v1/rooms/{room_id}", get(groups::get))
        .route("/api/v1/rooms/{room_id}/members", post(groups::add_members))
        .route("/api/v1/rooms/{room_id}/members/me", delete(groups::leave))
        .route("/api/v1/rooms/{room_id}/read", post(read_state::mark_read))
        .route("/api/v1/rooms/{room_id}/messages", get(history))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomQuery {
    peer_id: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomBody {
    room_id: RoomId,
}

/// `GET /api/v1/rooms?peerId=`: the private room of the caller and the
/// peer; without `peerId`, the caller's conversation list.
#[tracing::instrument(skip_all, fields(user_id = %caller.id))]
async fn private_room(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(query): Query<RoomQuery>,
) -> Result<Response> {
    let Some(peer) = query.peer_id.as_deref() else {
        let list = read_state::conversations(
            &state,
            &caller,
            query.limit.as_deref(),
            query.before.as_deref(),
        )
        .await?;
        return Ok(axum::Json(list).into_response());
    };
    let peer = UserId::parse(peer)?;
    if peer == caller.id {
        return Err(ApiError::BadRequest(
            "peerId must be another user".to_owned(),
        ));
    }
    if state.storage.accounts.by_id(peer).await?.is_none() {
        return Err(ApiError::NotFound("peer not found".to_owned()));
    }
    let room_id = state.storage.rooms.private_room(caller.id, peer).await?;
    Ok(axum::Json(RoomBody { room_id }).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryQuery {
    latest_message_id: Option<String>,
    context: Option<String>,
    limit: Option<String>,
}

/// Turns the query into a page, refusing combinations that mean nothing.
fn parse_page(query: &HistoryQuery) -> Result<HistoryPage> {
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let id = query
        .latest_message_id
        .as_deref()
        .map(|raw| {
            MessageId::parse(raw).map_err(|e| ApiError::BadRequest(format!("latestMessageId: {e}")))
        })
        .transpose()?;
    match (query.context.as_deref(), id) {
        (None, None) => Ok(HistoryPage::Latest { limit }),
        (None | Some("before"), Some(id)) => Ok(HistoryPage::Before { id, limit }),
        (Some("after"), Some(id)) => Ok(HistoryPage::After { id, limit }),
        (Some("before" | "after"), None) => Err(ApiError::BadRequest(
            "context needs latestMessageId".to_owned(),
        )),
        (Some(_), _) => Err(ApiError::BadRequest(
            "context must be 'before' or 'after'".to_owned(),
        )),
    }
}

#[tracing::instrument(skip_all, fields(user_id = %caller.id, room_id = %room_id))]
async fn history(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(room_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<Vec<Message>>> {
    let room = RoomId::parse(&room_id)?;
    let page = parse_page(&query)?;
    if state
        .membership
        .audience_of(room, caller.id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("room not found".to_owned()));
    }
    Ok(axum::Json(
        state.storage.messages.history(room, page).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: Option<&str>, context: Option<&str>, limit: Option<&str>) -> HistoryQuery {
        HistoryQuery {
            latest_message_id: id.map(str::to_owned),
            context: context.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    #[test]
    fn paging_parameters_follow_the_contract() {
        assert_eq!(
            parse_page(&query(None, None, None)).unwrap(),
            HistoryPage::Latest { limit: 10 }
        );
        let id = MessageId::parse("12345").unwrap();
        assert_eq!(
            parse_page(&query(Some("12345"), Some("after"), Some("100"))).unwrap(),
            HistoryPage::After { id, limit: 100 }
        );
        assert_eq!(
            parse_page(&query(Some("12345"), None, None)).unwrap(),
            HistoryPage::Before { id, limit: 10 }
        );
    }

    #[test]
    fn nonsense_paging_is_refused() {
        for (id, context, limit) in [
            (None, Some("before"), None),
            (Some("12"), Some("sideways"), None),
            (Some("x"), None, None),
            (None, None, Some("0")),
            (None, None, Some("101")),
            (None, None, Some("ten")),
        ] {
            assert!(
                parse_page(&query(id, context, limit)).is_err(),
                "{id:?} {context:?} {limit:?}"
            );
        }
    }
}
