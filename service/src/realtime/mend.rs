//! Making this instance's sockets whole after an outage of its Redis
//! subscription.
//!
//! Messages other instances relayed while this instance's subscription
//! was down never reach it: Redis pub/sub keeps nothing, and the pipeline's
//! settle time only narrows that window. Each time an outage ends
//! ([`AdapterHealth::outages`]), every room with a socket joined here is
//! caught up from the history, with the machinery of `join {since}`
//! ([`super::catch_up`]), for all its sockets at once:
//!
//! 1. every socket of every such room leaves the room and records its
//!    deliveries (no live `reply` reaches it from here on);
//! 2. each room's history is read from a little before the outage began;
//! 3. for each socket, under the catch-ups' write side (no delivery in
//!    flight): the messages of the history this instance had *not*
//!    delivered before step 1 (`seen` did not have them), and what was
//!    recorded since, are emitted as `reply` in id order, once each; the
//!    socket joins the room again.
//!
//! A message delivered here before step 1 reached the room's sockets live,
//! so it is not sent again; one that arrives by the relay after the mend
//! is not delivered again either (the mend marks it in `seen`). Only
//! `reply` is mended: a `sent` or `inbox` notification lost in the gap
//! stays lost (the conversation list, read over HTTP, has the message).
//! At most [`MAX_REPLAY`] messages per room; a room with more gets the
//! newest of them missing, as a catch-up with `complete: false` would, and
//! a warning in the log.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use serde_json::value::RawValue;
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::{
    catch_up::{Pending, MAX_REPLAY},
    local_delivery::LocalDelivery,
    redis_driver::{AdapterHealth, Outage},
};
use crate::{
    domain::{HistoryPage, MessageId, RoomId},
    fanout::room_channel,
    store::Messages,
};

/// Rooms whose history is read at once.
const READS_AT_ONCE: usize = 16;
/// How long one room's history read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Mends this instance's sockets after each outage `health` announces.
pub async fn after_outages<A: Adapter>(
    health: AdapterHealth,
    local: Arc<LocalDelivery<A>>,
    messages: Arc<dyn Messages>,
) {
    let mut outages = health.outages();
    while outages.changed().await.is_ok() {
        let Some(outage) = *outages.borrow_and_update() else {
            continue;
        };
        mend(&local, messages.as_ref(), outage).await;
    }
}

/// One socket of a room being mended.
struct Mending<A: Adapter> {
    socket: SocketRef<A>,
    pending: Arc<Pending>,
}

async fn mend<A: Adapter>(local: &LocalDelivery<A>, messages: &dyn Messages, outage: Outage) {
    let Ok(namespace) = local.namespace() else {
        return;
    };
    let from = MessageId::floor_at(outage.began_unix_ms);
    let rooms: Vec<RoomId> = namespace
        .clone()
        .local()
        .rooms()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|room| room.strip_prefix("room:"))
        .filter_map(|id| RoomId::parse(id).ok())
        .collect();
    // Step 1, for every room before any history is read.
    let mut mending: Vec<(RoomId, Vec<Mending<A>>)> = Vec::with_capacity(rooms.len());
    for room in rooms {
        let channel = room_channel(room);
        let mut sockets = Vec::new();
        for socket in namespace.clone().local().within(channel.clone()).sockets() {
            socket.leave(channel.clone());
            // A socket whose own catch-up runs is joined when that ends.
            if let Some(pending) = local
                .catch_ups()
                .start(room, socket.id.to_string(), from)
                .await
            {
                sockets.push(Mending { socket, pending });
            }
        }
        mending.push((room, sockets));
    }
    let rooms = mending.len();
    let mended: usize = futures::stream::iter(mending)
        .map(|(room, sockets)| mend_room(local, messages, room, from, sockets))
        .buffer_unordered(READS_AT_ONCE)
        .fold(0, |total, sent| async move { total + sent })
        .await;
    metrics::counter!("adapter_mends_total").increment(1);
    metrics::counter!("adapter_mended_replies_total").increment(mended as u64);
    tracing::info!(
        rooms,
        replies = mended,
        outage = outage.count,
        "sockets mended after the adapter's outage"
    );
}

/// Steps 2 and 3 for one room; the replies it sent.
async fn mend_room<A: Adapter>(
    local: &LocalDelivery<A>,
    messages: &dyn Messages,
    room: RoomId,
    from: MessageId,
    sockets: Vec<Mending<A>>,
) -> usize {
    if sockets.is_empty() {
        return 0;
    }
    let page = HistoryPage::After {
        id: from,
        limit: MAX_REPLAY,
    };
    let history = match tokio::time::timeout(READ_TIMEOUT, messages.history(room, page)).await {
        Ok(Ok(history)) => history,
        failed => {
            let cause = match failed {
                Ok(Err(error)) => error.to_string(),
                _ => format!("no answer within {READ_TIMEOUT:?}"),
            };
            tracing::warn!(%room, %cause, "cannot read a room's history to mend its sockets");
            Vec::new()
        }
    };
    if history.len() >= MAX_REPLAY {
        tracing::warn!(%room, "more than {MAX_REPLAY} messages to mend; the newest are left out");
    }
    // Not delivered here before step 1: the sockets missed them. Marked so
    // that a late relay of one does not deliver it a second time.
    let mut missed: BTreeMap<MessageId, Box<RawValue>> = BTreeMap::new();
    for message in history {
        if local.seen().first_time(message.id, room) {
            if let Ok(reply) = serde_json::value::to_raw_value(&message) {
                missed.insert(message.id, reply);
            }
        }
    }
    let mut sent = 0;
    for Mending { socket, pending } in sockets {
        let missed = &missed;
        local
            .catch_ups()
            .finish(room, &pending, Default::default(), |recorded, ended| {
                let mut replies: BTreeMap<MessageId, &RawValue> =
                    missed.iter().map(|(id, reply)| (*id, &**reply)).collect();
                for delivery in &recorded {
                    replies.entry(delivery.id).or_insert(&delivery.reply);
                }
                for reply in replies.values() {
                    if socket.emit("reply", reply).is_ok() {
                        sent += 1;
                    }
                }
                if !ended.left {
                    socket.join(room_channel(room));
                }
            })
            .await;
    }
    sent
}
