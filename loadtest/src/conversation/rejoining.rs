//! The conversation's side of the reconnect mode (`LOAD_RECONNECT`): when
//! a socket may be dropped, what the drop and the rejoin mean for the
//! messages due, and what of the old socket and of a paged catch-up is
//! left out so the ledger counts each message once.
//!
//! The chatter does the dropping and the rejoining
//! (`crate::chatter`'s `rejoin`); the counts are the run's, in
//! [`RejoinCounters`].

use tokio::time::Instant;

use super::{Conversation, Timing};
use crate::{
    clock,
    latency::Kind,
    socket::{Inbound, Received},
    state::{Counters, RejoinCounters},
};

impl Conversation {
    /// The socket may be dropped now: it is open, nothing on it awaits an
    /// answer (a message's ack, its `sent` notice, a read's ack: a drop
    /// would make their outcome unknown, the chaos mode's business), and a
    /// room-mate's message has arrived, so there is a `since` to rejoin
    /// with.
    pub fn quiet(&self) -> bool {
        self.socket_open
            && self.in_flight.is_empty()
            && self.awaiting_notice.is_empty()
            && self.reads_settled()
            && self.last_seen.is_some()
    }

    /// The socket was dropped on purpose: nothing leaves until
    /// [`Self::rejoined`]. Not a `disconnect` of the report.
    pub fn dropped(&mut self) {
        if self.socket_open {
            self.socket_open = false;
            self.run.counters.socket_closed();
        }
    }

    /// A new connection number: events of the earlier ones are left out
    /// from now on ([`Self::stale`]).
    pub fn next_connection(&mut self) -> u32 {
        self.connection += 1;
        self.connection
    }

    /// The new socket is joined; the socket was dropped at `dropped_at`.
    /// The messages due meanwhile leave now: how long each waited is timed.
    pub fn rejoined(&mut self, dropped_at: Instant, timings: &mut Vec<Timing>) {
        if !self.socket_open {
            self.socket_open = true;
            self.run.counters.socket_opened();
        }
        let now_us = clock::now_micros();
        let dropped_us = clock::micros(dropped_at.into_std());
        let counters = &self.run.counters.rejoins;
        RejoinCounters::add(&counters.held, self.backlog.len() as u64);
        let held: Vec<u64> = self
            .backlog
            .iter()
            .map(|&(_, scheduled_us)| scheduled_us.max(dropped_us))
            .collect();
        for from_us in held {
            self.succeeded(Kind::HeldForRejoin, from_us, now_us, timings);
        }
    }

    /// The room's messages up to `id` were read over HTTP: a live `reply`
    /// up to it is one the chatter has already.
    pub fn paged_through(&mut self, id: u64) {
        self.paged_through = Some(self.paged_through.map_or(id, |through| through.max(id)));
    }

    /// True for an event of a socket the chatter dropped, in the reconnect
    /// mode: it came after the drop, so it was never received (the new
    /// socket replays a `reply`). Only replies are counted: a dropped
    /// rust_socketio socket says it closed, as expected.
    pub(super) fn stale(&self, received: &Received) -> bool {
        let stale = self.rejoins && received.connection != self.connection;
        if stale && matches!(received.event, Inbound::Reply(_)) {
            Counters::bump(&self.run.counters.rejoins.stale);
        }
        stale
    }

    /// True for a live `reply` already read over HTTP.
    pub(super) fn already_paged(&self, id: &str) -> bool {
        let paged = paged_before(self.paged_through, id);
        if paged {
            Counters::bump(&self.run.counters.rejoins.paged_overlap);
        }
        paged
    }
}

/// True when message `id` is one of the pages read up to `through`.
fn paged_before(through: Option<u64>, id: &str) -> bool {
    through
        .zip(id.parse::<u64>().ok())
        .is_some_and(|(through, id)| id <= through)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_reply_up_to_the_last_page_is_one_the_chatter_has() {
        assert!(paged_before(Some(100), "100"));
        assert!(paged_before(Some(100), "99"));
        assert!(!paged_before(Some(100), "101"));
        assert!(!paged_before(None, "5"));
        assert!(!paged_before(Some(100), "not-an-id"));
    }
}
