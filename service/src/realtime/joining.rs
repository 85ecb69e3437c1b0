//! `join {roomId, since?}`: members only; with `since`, the room's messages
//! newer than it come first, then the live stream (see [`super::catch_up`]).

use std::{collections::HashSet, time::Duration};

use serde::Serialize;
use serde_json::{json, Value};
use socketioxide::{
    adapter::Adapter,
    extract::{Extension, SocketRef, State, TryData},
    SendError, SocketError as EmitError,
};
use tracing::{field, Instrument, Span};

use super::{
    catch_up::MAX_REPLAY,
    error::{Failure, SocketError},
    payload::{parse_join, room_hint},
    respond::Responder,
    RealtimeState,
};
use crate::{
    domain::{HistoryPage, MessageId, RoomId, UserId},
    fanout::room_channel,
};

/// `join {roomId, since?}`.
pub async fn on_join<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<UserId>,
    State(state): State<RealtimeState>,
    TryData(payload): TryData<Value>,
    respond: Responder<A>,
) {
    let span = tracing::info_span!("socket.join", user_id = %user, room_id = field::Empty);
    let joined = async {
        let value = payload.map_err(|_| Failure::bad_shape())?;
        let (room, since) =
            parse_join(&value).map_err(|error| Failure::new(error, room_hint(&value)))?;
        Span::current().record("room_id", field::display(room));
        match state.membership.audience_of(room, user).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Failure::new(SocketError::RoomNotFound, Some(room))),
            Err(error) => return Err(Failure::new(error, Some(room))),
        }
        match since {
            None => {
                // A catch-up running for this socket joins it when it ends.
                if !state
                    .catch_ups
                    .is_catching_up(room, &socket.id.to_string())
                    .await
                {
                    socket.join(room_channel(room));
                }
                Ok(json!({ "status": "ok" }))
            }
            Some(since) => catch_up(&socket, &state, user, room, since)
                .await
                .map_err(|error| Failure::new(error, Some(room))),
        }
    }
    .instrument(span)
    .await;
    match joined {
        Ok(ack) => respond.ok(&ack),
        Err(failure) => respond.fail(&failure),
    }
}

/// Replays `room` after `since` to `socket`, then joins it to the room.
async fn catch_up<A: Adapter>(
    socket: &SocketRef<A>,
    state: &RealtimeState,
    user: UserId,
    room: RoomId,
    since: MessageId,
) -> Result<Value, SocketError> {
    if !state.messages.contains(room, since).await? {
        return Err(SocketError::BadRequest(
            "since is not a message of this room".to_owned(),
        ));
    }
    // Step 1 of `catch_up`: nothing reaches the socket live from here on.
    socket.leave(room_channel(room));
    let Some(pending) = state.catch_ups.start(room, socket.id.to_string()).await else {
        return Err(SocketError::BadRequest(
            "a catch-up of this room is already running on this socket".to_owned(),
        ));
    };
    let page = state
        .messages
        .history(
            room,
            HistoryPage::After {
                id: since,
                limit: MAX_REPLAY + 1,
            },
        )
        .await;
    let mut replay = match page {
        Ok(page) => page,
        Err(error) => {
            state.catch_ups.abandon(room, &pending).await;
            return Err(error.into());
        }
    };
    // The page is newest first; the replay goes oldest first.
    replay.reverse();
    let mut complete = replay.len() <= MAX_REPLAY;
    replay.truncate(MAX_REPLAY);
    let mut replayed = HashSet::with_capacity(replay.len());
    for message in &replay {
        if !emit_paced(socket, message).await {
            complete = false;
            break;
        }
        replayed.insert(message.id);
    }
    // A member who left the group while this ran is not joined back.
    let still_member = matches!(state.membership.audience_of(room, user).await, Ok(Some(_)));
    state
        .catch_ups
        .finish(room, &pending, replayed.clone(), |recorded, left| {
            if left || !still_member {
                return;
            }
            for delivery in recorded.iter().filter(|d| !replayed.contains(&d.id)) {
                if socket.emit("reply", &delivery.reply).is_err() {
                    complete = false;
                }
            }
            socket.join(room_channel(room));
        })
        .await;
    metrics::counter!("catch_ups_total").increment(1);
    metrics::counter!("catch_up_replayed_total").increment(replayed.len() as u64);
    Ok(json!({ "status": "ok", "replayed": replayed.len(), "complete": complete }))
}

/// How long a replay waits for a client that does not read.
const STALLED: Duration = Duration::from_secs(10);

/// Emits one replayed `reply`, waiting while the socket's buffer is full
/// (a replay is up to 1,000 events, which with other events waiting can
/// pass the buffer when the client reads slower than the server writes). False when the socket is
/// gone or stalled: the rest of the replay would not reach it either.
async fn emit_paced<A: Adapter>(socket: &SocketRef<A>, message: &impl Serialize) -> bool {
    let deadline = tokio::time::Instant::now() + STALLED;
    loop {
        match socket.emit("reply", message) {
            Ok(()) => return true,
            Err(SendError::Socket(EmitError::InternalChannelFull))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(error) => {
                tracing::debug!(cause = %error, "the replay stopped");
                return false;
            }
        }
    }
}
