//! When a chatter marks its room read: as a client with the room open
//! would, up to the newest message received, but not once per message: at
//! most once per interval (a second). The first message after a quiet spell
//! is marked at once; the ones that follow within the interval are marked
//! together, by the newest, when it is over.

use std::time::Duration;

use tokio::time::Instant;

/// How often a chatter marks its room read at most.
pub const READ_INTERVAL: Duration = Duration::from_secs(1);

/// The newest message received, the newest marked, and when the next mark
/// may leave.
#[derive(Debug, Clone)]
pub struct ReadThrottle {
    interval: Duration,
    /// The highest message id received.
    newest: Option<u64>,
    /// The highest message id a `read` was sent for.
    marked: Option<u64>,
    /// The next `read` may not leave before this.
    allowed_from: Instant,
}

impl ReadThrottle {
    /// A throttle letting one `read` through per `interval`, the first one
    /// from `now` on.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            newest: None,
            marked: None,
            allowed_from: now,
        }
    }

    /// Message `id` arrived. Ids grow with time, so the largest is the
    /// newest whatever order messages of different authors arrive in.
    pub fn received(&mut self, id: u64) {
        self.newest = Some(self.newest.map_or(id, |newest| newest.max(id)));
    }

    /// When the next `read` should leave; `None` while nothing newer than
    /// the last one waits to be marked.
    pub fn due(&self) -> Option<Instant> {
        (self.newest > self.marked).then_some(self.allowed_from)
    }

    /// The id to mark read at `now`, if one waits and the interval since the
    /// last `read` is over; it counts as sent.
    pub fn take(&mut self, now: Instant) -> Option<u64> {
        if self.due()? > now {
            return None;
        }
        self.marked = self.newest;
        self.allowed_from = now + self.interval;
        self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn nothing_received_is_nothing_to_mark() {
        let start = Instant::now();
        let mut throttle = ReadThrottle::new(READ_INTERVAL, start);
        assert_eq!(throttle.due(), None);
        assert_eq!(throttle.take(start + ms(5_000)), None);
    }

    #[test]
    fn the_first_message_is_marked_at_once() {
        let start = Instant::now();
        let mut throttle = ReadThrottle::new(READ_INTERVAL, start);
        throttle.received(100);
        assert_eq!(throttle.due(), Some(start));
        assert_eq!(throttle.take(start + ms(3)), Some(100));
        assert_eq!(throttle.due(), None, "marked, nothing newer");
        assert_eq!(throttle.take(start + ms(2_000)), None);
    }

    #[test]
    fn messages_within_the_interval_are_marked_together_by_the_newest() {
        let start = Instant::now();
        let mut throttle = ReadThrottle::new(READ_INTERVAL, start);
        throttle.received(100);
        assert_eq!(throttle.take(start), Some(100));
        throttle.received(101);
        throttle.received(103);
        throttle.received(102);
        assert_eq!(throttle.due(), Some(start + READ_INTERVAL));
        assert_eq!(throttle.take(start + ms(999)), None);
        assert_eq!(throttle.take(start + ms(1_000)), Some(103));
        assert_eq!(throttle.due(), None);
    }

    #[test]
    fn an_older_message_arriving_late_is_not_marked_again() {
        let start = Instant::now();
        let mut throttle = ReadThrottle::new(READ_INTERVAL, start);
        throttle.received(200);
        assert_eq!(throttle.take(start), Some(200));
        throttle.received(150);
        assert_eq!(throttle.due(), None);
        assert_eq!(throttle.take(start + ms(5_000)), None);
    }

    #[test]
    fn after_a_quiet_spell_the_next_message_is_marked_at_once() {
        let start = Instant::now();
        let mut throttle = ReadThrottle::new(READ_INTERVAL, start);
        throttle.received(1);
        assert_eq!(throttle.take(start), Some(1));
        let later = start + ms(7_300);
        throttle.received(2);
        assert!(throttle.due().is_some_and(|due| due <= later));
        assert_eq!(throttle.take(later), Some(2));
        assert_eq!(throttle.take(later + ms(10)), None);
    }

    #[test]
    fn a_steady_stream_is_marked_at_most_once_a_second_and_never_loses_the_newest() {
        let start = Instant::now();
        let mut throttle = ReadThrottle::new(READ_INTERVAL, start);
        let mut sent = Vec::new();
        // A message every 70 ms for ten seconds; the chatter looks after
        // every message and whenever the throttle says a mark is due.
        let mut now = start;
        let mut next_message = start;
        let mut id = 0;
        while now < start + ms(10_000) {
            if now >= next_message {
                id += 1;
                throttle.received(id);
                next_message += ms(70);
            }
            if let Some(marked) = throttle.take(now) {
                sent.push((now, marked));
            }
            now = throttle
                .due()
                .map_or(next_message, |due| due.min(next_message))
                .max(now + ms(1));
        }
        assert!((10..=11).contains(&sent.len()), "{} reads", sent.len());
        for pair in sent.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= READ_INTERVAL, "too close");
            assert!(pair[1].1 > pair[0].1, "each mark moves forward");
        }
        // The last messages are marked once the interval is over.
        if let Some(due) = throttle.due() {
            assert_eq!(throttle.take(due), Some(id));
        }
    }
}
