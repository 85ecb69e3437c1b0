//! `join {roomId, since?}`: members only; with `since`, the room's messages
//! newer than it come first, then the live stream (see [`super::catch_up`]).

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
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
    limits::rate_limit::Bucket,
    locks::LockExt,
};

/// Plain `join`s one socket may send per second, and at once: enough to
/// join every room of a long conversation list on connect. Each may read
/// the store (a room not in the membership cache).
const JOINS_PER_SECOND: f64 = 20.0;
const JOIN_BURST: f64 = 200.0;
/// `join`s with `since` one socket may send per second, and at once (each
/// reads up to 1,001 messages): a reconnect rejoins each room once. Per
/// user, on this instance, [`crate::limits::Limits::allow_catch_up`] holds a
/// reconnect loop to the same.
const CATCH_UPS_PER_SECOND: f64 = 2.0;
const CATCH_UP_BURST: f64 = 100.0;

/// A socket's budget of joins and catch-ups.
#[derive(Clone)]
pub struct JoinBudget(Arc<Mutex<(Bucket, Bucket)>>);

impl JoinBudget {
    /// A full budget.
    pub fn new() -> Self {
        let now = std::time::Instant::now();
        Self(Arc::new(Mutex::new((
            Bucket::full(JOIN_BURST, now),
            Bucket::full(CATCH_UP_BURST, now),
        ))))
    }

    fn allows(&self, catching_up: bool) -> bool {
        let now = std::time::Instant::now();
        let mut buckets = self.0.lock_or_recover();
        if catching_up {
            buckets.1.take(CATCH_UPS_PER_SECOND, CATCH_UP_BURST, now)
        } else {
            buckets.0.take(JOINS_PER_SECOND, JOIN_BURST, now)
        }
    }
}

impl Default for JoinBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// `join {roomId, since?}`.
pub async fn on_join<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<UserId>,
    Extension(budget): Extension<JoinBudget>,
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
        let catching_up = since.is_some();
        if !budget.allows(catching_up) || (catching_up && !state.limits.allow_catch_up(user)) {
            metrics::counter!("joins_refused_total").increment(1);
            return Err(Failure::new(SocketError::TooManyJoins, Some(room)));
        }
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

/// How far past this instance's clock a `since` may be: every instance
/// makes ids by its own clock, and clocks differ a little.
const CLOCK_SKEW_MS: i64 = 5_000;

/// Whether `since` can be an id the server handed out by `now_ms`.
///
/// `since` is a position among time-ordered ids, not a row to read back:
/// the id of the sender's own `accepted` ack is valid before the message is
/// stored (the catch-up then replays what is stored after it, and what is
/// stored later arrives live), and an id of before the room existed means
/// "from the start". Reading it back refused the ack's id until the
/// pipeline had stored it (2 of 3 reconnect loops on the stack).
fn is_of_the_past(since: MessageId, now_ms: i64) -> bool {
    since.unix_millis() <= now_ms.saturating_add(CLOCK_SKEW_MS)
}

/// Replays `room` after `since` to `socket`, then joins it to the room.
async fn catch_up<A: Adapter>(
    socket: &SocketRef<A>,
    state: &RealtimeState,
    user: UserId,
    room: RoomId,
    since: MessageId,
) -> Result<Value, SocketError> {
    if !is_of_the_past(since, Utc::now().timestamp_millis()) {
        return Err(SocketError::BadRequest(
            "since is not an id of this room's past (it is from the future)".to_owned(),
        ));
    }
    // Step 1 of `catch_up`: nothing reaches the socket live from here on.
    socket.leave(room_channel(room));
    let Some(pending) = state
        .catch_ups
        .start(room, socket.id.to_string(), since)
        .await
    else {
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
    let replay_ends = tokio::time::Instant::now() + state.catch_ups.replay_within();
    let mut written = true;
    for message in &replay {
        if !emit_paced(socket, message, replay_ends).await {
            written = false;
            break;
        }
        replayed.insert(message.id);
    }
    // Step 3b: what was held meanwhile waits for room too. The replay has
    // just filled the buffer, so emitted at once in step 4 some of it
    // would be dropped while the client is reading. Within the replay's
    // time: a busy room could keep this from ever ending.
    let mut left_group = false;
    while written && tokio::time::Instant::now() < replay_ends {
        let held = state.catch_ups.take_held(&pending).unwrap_or_default();
        if held.is_empty() {
            break;
        }
        // A member who left the group while this ran gets no more of it.
        left_group = !is_member(state, room, user).await;
        if left_group {
            break;
        }
        for delivery in held.iter().filter(|d| !replayed.contains(&d.id)) {
            if !emit_paced(socket, &delivery.reply, replay_ends).await {
                written = false;
                break;
            }
        }
    }
    complete &= written;
    // A member who left the group while this ran is not joined back.
    let still_member = !left_group && is_member(state, room, user).await;
    state
        .catch_ups
        .finish(room, &pending, replayed.clone(), |recorded, ended| {
            if ended.overflowed {
                complete = false;
            }
            if ended.left || !still_member {
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

/// Whether `user` is a member of `room` now (a store that does not
/// answer counts as no: the catch-up then neither sends more nor joins).
async fn is_member(state: &RealtimeState, room: RoomId, user: UserId) -> bool {
    matches!(state.membership.audience_of(room, user).await, Ok(Some(_)))
}

/// How long a replay waits for a client that does not read.
const STALLED: Duration = Duration::from_secs(10);

/// Emits one replayed `reply`, waiting while the socket's buffer is full
/// (a replay is up to 1,000 events, which with other events waiting can
/// pass the buffer when the client reads slower than the server writes).
/// False when the socket is gone, stalled, or the replay's time is over:
/// the rest would not reach it either.
async fn emit_paced<A: Adapter>(
    socket: &SocketRef<A>,
    message: &impl Serialize,
    replay_ends: tokio::time::Instant,
) -> bool {
    let deadline = (tokio::time::Instant::now() + STALLED).min(replay_ends);
    let mut waiting = None;
    loop {
        match socket.emit("reply", message) {
            Ok(()) => return true,
            Err(SendError::Socket(EmitError::InternalChannelFull))
                if tokio::time::Instant::now() < deadline =>
            {
                waiting.get_or_insert_with(WaitingForClient::new);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(error) => {
                tracing::debug!(cause = %error, "the replay stopped");
                return false;
            }
        }
    }
}

/// A replay waiting for its client to read, counted in the gauge
/// `catch_up_replays_waiting` while it lives: slow clients, seen.
struct WaitingForClient;

impl WaitingForClient {
    fn new() -> Self {
        metrics::gauge!("catch_up_replays_waiting").increment(1.0);
        Self
    }
}

impl Drop for WaitingForClient {
    fn drop(&mut self) {
        metrics::gauge!("catch_up_replays_waiting").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageIdGenerator;

    #[test]
    fn since_may_be_any_id_made_up_to_now_and_a_little_past_it() {
        let now = Utc::now().timestamp_millis();
        let fresh = MessageIdGenerator::new(3).next_id();
        assert!(is_of_the_past(fresh, now), "an id just handed out");
        assert!(
            is_of_the_past(MessageId::from_i64(123).unwrap(), now),
            "before any room: from the start"
        );
        assert!(
            is_of_the_past(MessageId::floor_at(now + CLOCK_SKEW_MS), now),
            "another instance's clock"
        );
        assert!(!is_of_the_past(
            MessageId::floor_at(now + CLOCK_SKEW_MS + 1),
            now
        ));
        assert!(!is_of_the_past(MessageId::from_i64(i64::MAX).unwrap(), now));
    }
}
