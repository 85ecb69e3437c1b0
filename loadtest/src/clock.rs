//! One process-wide monotonic clock.
//!
//! Every timestamp the load tool compares (a message's scheduled send time,
//! carried in its text, and the instant a `reply` arrives on another socket)
//! is a count of microseconds since one [`Instant`] taken at start-up. Both
//! ends of a measurement live in this process, so no wall clock (and no
//! clock skew) is involved.

use std::{
    sync::OnceLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// The monotonic origin and the wall-clock time (Unix µs) taken with it.
static ORIGIN: OnceLock<(Instant, u64)> = OnceLock::new();

fn origins() -> (Instant, u64) {
    *ORIGIN.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
            });
        (Instant::now(), wall)
    })
}

/// The origin of the clock; fixed by the first call.
pub fn origin() -> Instant {
    origins().0
}

/// The wall-clock time (Unix µs) of a process-clock reading. Only for
/// comparing with the service's own timestamps (`createdAt`), which share
/// this machine's wall clock.
pub fn wall_micros(micros: u64) -> u64 {
    origins().1.saturating_add(micros)
}

/// Microseconds from the origin to `instant` (0 for instants before it).
pub fn micros(instant: Instant) -> u64 {
    u64::try_from(instant.saturating_duration_since(origin()).as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds from the origin to now.
pub fn now_micros() -> u64 {
    micros(Instant::now())
}

/// The instant `micros` after the origin.
pub fn instant_of(micros: u64) -> Instant {
    origin() + Duration::from_micros(micros)
}

/// The time from `earlier` to `later`, both in clock microseconds; zero when
/// `later` is not later.
pub fn between(earlier: u64, later: u64) -> Duration {
    Duration::from_micros(later.saturating_sub(earlier))
}
