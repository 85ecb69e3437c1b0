//! The reconnect mode (`LOAD_RECONNECT`): a share of the chatters drops its
//! socket every few seconds while sending goes on, as a phone losing the
//! network would, opens another and joins with `since` = the newest
//! message it has, so the service replays what it missed ("Catch-up after
//! a reconnect" in the API). A replay cut short (`complete: false`) is
//! finished over HTTP (`context=after`). Everything arrives in the same
//! ledger as ever, which proves each message reached each recipient once
//! and in order.

use std::{sync::OnceLock, time::Duration};

use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

use super::{Chatter, CONNECT_TIMEOUT, JOIN_TIMEOUT};
use crate::{
    chaos::recovery,
    clock,
    config::Settings,
    conversation::{Conversation, Timing},
    latency::Kind,
    socket::{ChatSocket, Client, Inbound, Received, SocketError},
    state::{Counters, RejoinCounters, RunState},
};

/// The shortest time between two drops of one chatter.
const MIN_GAP: Duration = Duration::from_secs(2);
/// The longest: gaps are drawn evenly between the two (5 s on average).
const MAX_GAP: Duration = Duration::from_secs(8);
/// The first pause after a failed rejoin; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// True when chatter `index` is one of the `share` that reconnect: one in
/// every `1 / share`, spread evenly over the chatters (so over the rooms,
/// and over both members of the pairs).
pub fn reconnects(index: usize, share: f64) -> bool {
    ((index + 1) as f64 * share).floor() > (index as f64 * share).floor()
}

/// When a reconnecting chatter drops its socket next.
#[derive(Debug)]
pub(super) struct RejoinSchedule {
    next: Instant,
    /// splitmix64's state: the gaps are random, and the same for the same
    /// chatter and run.
    state: u64,
}

impl RejoinSchedule {
    /// The schedule of chatter `index`, sending from `start`; `None` when it
    /// is not one that reconnects.
    pub(super) fn for_chatter(settings: &Settings, index: usize, start: Instant) -> Option<Self> {
        let share = settings.reconnect?;
        if !reconnects(index, share) {
            return None;
        }
        let seed = settings.run_tag.bytes().fold(index as u64, |seed, byte| {
            seed.rotate_left(8) ^ u64::from(byte)
        });
        let mut schedule = Self {
            next: start,
            state: seed,
        };
        schedule.advance(start);
        Some(schedule)
    }

    /// When the next drop is due.
    pub(super) fn next(&self) -> Instant {
        self.next
    }

    /// The next drop is a random gap after `now`.
    pub(super) fn advance(&mut self, now: Instant) {
        let fraction = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        self.next = now + MIN_GAP + (MAX_GAP - MIN_GAP).mul_f64(fraction);
    }

    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Drops the chatter's socket, opens another on the same instance and joins
/// with `since`, trying until `deadline`; false when no socket could be
/// had back. Messages due meanwhile wait for the new socket.
pub(super) async fn drop_and_rejoin(
    run: &RunState,
    chatter: &mut Chatter,
    conversation: &mut Conversation,
    timings: &mut Vec<Timing>,
    deadline: Instant,
) -> bool {
    let dropped_at = Instant::now();
    chatter.socket.cut().await;
    conversation.dropped();
    // What arrived before the cut was received: take it in, so `since` is
    // the newest message the chatter really has. Anything later from the
    // old socket is left out, and replayed.
    while let Ok(received) = chatter.events.try_recv() {
        conversation.receive(received, timings);
    }
    let Some(since) = conversation.last_seen() else {
        // Not dropped before a room-mate's message arrived (`quiet`).
        return false;
    };
    let counters = &run.counters.rejoins;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let connection = conversation.next_connection();
        match join_since(run, chatter, connection, since).await {
            Ok((socket, ack)) => {
                let latency = dropped_at.elapsed();
                run.latencies.record(Kind::Rejoin, latency, 0);
                timings.push(Timing {
                    kind: Kind::Rejoin,
                    latency,
                    error: None,
                });
                Counters::bump(&counters.done);
                let replayed = ack["replayed"].as_u64().unwrap_or(0);
                RejoinCounters::add(&counters.replayed, replayed);
                chatter.socket = socket;
                if ack["complete"] == false {
                    Counters::bump(&counters.incomplete);
                    // Rare, and worth a look when far under the service's
                    // limit: say which.
                    eprintln!(
                        "chatter {}: join since {since}: {ack}: paging the rest",
                        chatter.index
                    );
                    page_the_rest(
                        run,
                        chatter,
                        conversation,
                        connection,
                        replayed,
                        since,
                        timings,
                    )
                    .await;
                }
                conversation.rejoined(dropped_at, timings);
                return true;
            }
            Err(error) => run.counters.error(&format!("rejoin:{error}")),
        }
        if Instant::now() + backoff >= deadline {
            Counters::bump(&counters.failed);
            return false;
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A new socket as connection `connection`, joined with `since`, and the
/// join's ack.
async fn join_since(
    run: &RunState,
    chatter: &Chatter,
    connection: u32,
    since: u64,
) -> Result<(ChatSocket, Value), String> {
    let settings = &run.settings;
    let socket = ChatSocket::connect(
        Client::for_pipeline(settings.pipeline),
        &settings.hosts[chatter.instance],
        &chatter.token,
        chatter.sender.clone(),
        connection,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|error| match error {
        SocketError::Refused(_) => "refused".to_owned(),
        SocketError::Timeout => "connect_timeout".to_owned(),
        _ => "transport".to_owned(),
    })?;
    // Nothing else is in flight on a new socket: one ack at a time holds.
    let joined = socket
        .request(
            "join",
            json!({ "roomId": chatter.room_id, "since": since.to_string() }),
            JOIN_TIMEOUT,
        )
        .await;
    match joined {
        Ok(ack) if ack["status"] == "ok" => Ok((socket, ack)),
        other => {
            socket.disconnect().await;
            Err(match other {
                Ok(ack) => {
                    let name = ack["error"]["name"].as_str().unwrap_or("unnamed");
                    format!("join_refused:{name}")
                }
                Err(_) => "join_timeout".to_owned(),
            })
        }
    }
}

/// After a replay cut short: the replayed messages first, then the rest of
/// the room read over HTTP from the last one, then what came live, less
/// what the pages already had, so each arrives once and in order.
async fn page_the_rest(
    run: &RunState,
    chatter: &mut Chatter,
    conversation: &mut Conversation,
    connection: u32,
    replayed: u64,
    since: u64,
    timings: &mut Vec<Timing>,
) {
    // The replay came before the ack, so it is all in the channel now.
    let mut arrived = Vec::new();
    while let Ok(received) = chatter.events.try_recv() {
        arrived.push(received);
    }
    let (split, cursor) = replay_cursor(&arrived, connection, replayed, since);
    let live = arrived.split_off(split);
    for received in arrived {
        conversation.receive(received, timings);
    }
    let host = &run.settings.hosts[chatter.instance];
    let read =
        recovery::messages_after(http(), host, &chatter.token, &chatter.room_id, cursor).await;
    match read {
        Ok(messages) => {
            let counters = &run.counters.rejoins;
            RejoinCounters::add(&counters.paged, messages.len() as u64);
            let through = messages
                .iter()
                .filter_map(|message| recovery::message_id(&message["id"]))
                .max();
            let history = Received {
                at_us: clock::now_micros(),
                connection,
                event: Inbound::History(messages),
            };
            conversation.receive(history, timings);
            if let Some(through) = through {
                conversation.paged_through(through);
            }
        }
        // What the pages would have had is missing: the ledger says so.
        Err(error) => run.counters.error(&format!("rejoin_paging:{error}")),
    }
    for received in live {
        conversation.receive(received, timings);
    }
}

/// Where the replay ends among the events that `arrived` on `connection`:
/// the number of events up to its `replayed`-th `reply`, and the id to page
/// from (the newest replayed, or `since` when nothing was).
fn replay_cursor(arrived: &[Received], connection: u32, replayed: u64, since: u64) -> (usize, u64) {
    let mut cursor = since;
    let mut replies = 0;
    for (position, received) in arrived.iter().enumerate() {
        if replies >= replayed {
            return (position, cursor);
        }
        let Inbound::Reply(message) = &received.event else {
            continue;
        };
        if received.connection != connection {
            continue;
        }
        replies += 1;
        if let Some(id) = recovery::message_id(&message["id"]) {
            cursor = cursor.max(id);
        }
    }
    (arrived.len(), cursor)
}

/// One HTTP client for the pages, shared by every chatter.
fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: u64, connection: u32) -> Received {
        Received {
            at_us: 0,
            connection,
            event: Inbound::Reply(json!({ "id": id.to_string() })),
        }
    }

    fn notice(connection: u32) -> Received {
        Received {
            at_us: 0,
            connection,
            event: Inbound::Notification(json!({ "name": "presence" })),
        }
    }

    #[test]
    fn the_share_picks_that_many_chatters_spread_evenly() {
        let picked: Vec<usize> = (0..20).filter(|&index| reconnects(index, 0.2)).collect();
        assert_eq!(picked, vec![4, 9, 14, 19]);
        assert_eq!((0..1000).filter(|&i| reconnects(i, 0.2)).count(), 200);
        assert_eq!((0..1000).filter(|&i| reconnects(i, 1.0)).count(), 1000);
        // Both members of pairs, and every room of ten, get their share.
        let even = (0..1000).filter(|&i| i % 2 == 0 && reconnects(i, 0.2));
        assert_eq!(even.count(), 100);
        for room in 0..100 {
            let members = (room * 10..room * 10 + 10).filter(|&i| reconnects(i, 0.2));
            assert_eq!(members.count(), 2, "room {room}");
        }
    }

    #[test]
    fn drops_come_every_two_to_eight_seconds_at_random() {
        let start = Instant::now();
        let mut schedule = RejoinSchedule {
            next: start,
            state: 42,
        };
        let mut gaps = Vec::new();
        for _ in 0..1000 {
            schedule.advance(start);
            gaps.push(schedule.next() - start);
        }
        assert!(gaps.iter().all(|gap| (MIN_GAP..=MAX_GAP).contains(gap)));
        let mean = gaps.iter().sum::<Duration>() / 1000;
        assert!(
            (Duration::from_millis(4500)..Duration::from_millis(5500)).contains(&mean),
            "{mean:?}"
        );
        let distinct: std::collections::BTreeSet<_> = gaps.iter().collect();
        assert!(distinct.len() > 900);
    }

    #[test]
    fn the_replay_ends_at_its_last_reply_and_paging_starts_from_it() {
        let arrived = vec![
            reply(7, 1),  // the dropped socket's, left out
            reply(11, 2), // replayed
            notice(2),
            reply(12, 2), // replayed, the last
            reply(40, 2), // live
            reply(41, 2),
        ];
        assert_eq!(replay_cursor(&arrived, 2, 2, 10), (4, 12));
    }

    #[test]
    fn a_replay_of_nothing_pages_from_since() {
        let arrived = vec![reply(40, 2)];
        assert_eq!(replay_cursor(&arrived, 2, 0, 10), (0, 10));
        assert_eq!(replay_cursor(&[], 2, 3, 10), (0, 10));
        // Fewer replies than the ack said: page from the newest there is.
        assert_eq!(replay_cursor(&[reply(11, 2)], 2, 5, 10), (1, 11));
    }
}
