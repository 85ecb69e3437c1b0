//! Finding a chatter's room during its setup: the private room of a pair
//! (`GET /rooms?peerId=`), or the group room its first member creates with
//! `POST /rooms` once every member registered, while the others wait for
//! the id on the [`crate::coord::RoomBoard`].

use goose::prelude::*;
use tokio::time::Instant;

use super::{at, SetupError};
use crate::{
    http,
    state::{RunState, SetupStage},
};

/// The room chatter `index` (holding `token`) talks in. Waits for its
/// room-mates, or for the room's creator, until `deadline`.
pub(super) async fn find(
    user: &mut GooseUser,
    run: &RunState,
    index: usize,
    token: &str,
    deadline: Instant,
) -> Result<String, SetupError> {
    let rooms = run.settings.rooms();
    let room = rooms.room_of(index);
    if !rooms.is_group() {
        let partner = rooms.others(index).next().unwrap_or(index);
        // The partner starts right after or right before this chatter; the
        // wait is bounded so a partner that failed does not hold this one
        // forever.
        let partner_id = run
            .registry
            .user_id(partner, deadline)
            .await
            .ok_or_else(|| "partner did not register in time".to_owned())
            .map_err(at(SetupStage::Partner))?;
        return http::room(user, token, &partner_id)
            .await
            .map_err(at(SetupStage::Room));
    }
    let creator = rooms.creator(index);
    if creator != index {
        return run
            .rooms
            .room_id(room, deadline)
            .await
            .ok_or_else(|| {
                format!("room {room} was not made: its creator, chatter {creator}, failed or was too slow")
            })
            .map_err(at(SetupStage::Room));
    }
    let mut participants = Vec::with_capacity(rooms.recipients());
    for member in rooms.others(index) {
        let id = run
            .registry
            .user_id(member, deadline)
            .await
            .ok_or_else(|| format!("room-mate {member} did not register in time"))
            .map_err(at(SetupStage::Partner))?;
        participants.push(id);
    }
    let name = format!("lt{} room {room}", run.settings.run_tag);
    let room_id = http::create_room(user, token, &name, &participants)
        .await
        .map_err(at(SetupStage::Room))?;
    run.rooms.ready(room, room_id.clone());
    Ok(room_id)
}
