//! `typing {roomId}`: members only; relayed to the room's other sockets as
//! `typing {roomId, userId}`, at most once per user and room per second
//! (the rest are dropped without an error). Never stored.

use serde_json::{json, Value};
use socketioxide::{
    adapter::Adapter,
    extract::{Extension, SocketRef, State, TryData},
};

use super::{
    error::{Failure, SocketError},
    payload::room_of,
    respond::Responder,
    RealtimeState,
};
use crate::{domain::UserId, fanout::room_channel};

/// `typing {roomId}`; an ack, when asked for, is `{"status": "ok"}` or the
/// error, whether or not this one was relayed.
pub async fn on_typing<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<UserId>,
    State(state): State<RealtimeState>,
    TryData(payload): TryData<Value>,
    respond: Responder<A>,
) {
    let room = match room_of(payload) {
        Ok(room) => room,
        Err(failure) => return respond.fail(&failure),
    };
    match state.membership.audience_of(room, user).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return respond.fail(&Failure::new(SocketError::RoomNotFound, Some(room)));
        }
        Err(error) => return respond.fail(&Failure::new(error, Some(room))),
    }
    if state.limits.allow_typing(user, room).await {
        let typing = json!({ "roomId": room, "userId": user });
        if let Err(error) = socket.to(room_channel(room)).emit("typing", &typing).await {
            tracing::debug!(cause = %error, "a typing notice was not relayed");
        }
        metrics::counter!("typing_relayed_total").increment(1);
    }
    respond.ok(&json!({ "status": "ok" }));
}
