//! Chaos mode: a chatter whose socket was lost (its instance or a backend
//! was killed) opens another, on either instance, and reads what it missed
//! through history.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::Chatter;
use crate::{
    chaos::recovery::{self, CatchUp},
    conversation::Conversation,
    state::{Counters, RunState},
};

/// Opens a new socket after the old one was lost, joins the room and starts
/// reading what was missed; false when no instance took the chatter back
/// before `deadline`.
pub(super) async fn replace_socket(
    run: &Arc<RunState>,
    chatter: &mut Chatter,
    conversation: &mut Conversation,
    deadline: Instant,
) -> bool {
    // Often dead already; do not let a half-closed one hold things up.
    let _ = tokio::time::timeout(Duration::from_secs(2), chatter.socket.disconnect()).await;
    let Some(chaos) = run.chaos.as_ref() else {
        return false;
    };
    let connection = conversation.connection() + 1;
    let reconnected = recovery::reconnect(
        run,
        &chatter.token,
        &chatter.room_id,
        conversation.instance(),
        &chatter.sender,
        connection,
        deadline,
    )
    .await;
    let Some(reconnected) = reconnected else {
        Counters::bump(&chaos.reconnect_failures);
        return false;
    };
    Counters::bump(&chaos.reconnects);
    chatter.socket = reconnected.socket;
    chatter.instance = reconnected.instance;
    conversation.reconnected(connection, reconnected.instance);
    recovery::spawn_catch_up(
        run.clone(),
        CatchUp {
            instance: reconnected.instance,
            token: chatter.token.clone(),
            room_id: chatter.room_id.clone(),
            after: conversation.last_seen(),
            connection,
            deadline,
        },
        chatter.sender.clone(),
    );
    true
}
