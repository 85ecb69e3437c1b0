//! A per-user token bucket for `message`, in this process. It is the
//! whole limit in the embedded mode; with Redis, [`crate::limits`] counts
//! across instances and uses this one only while Redis does not answer.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::domain::UserId;
use crate::locks::LockExt;

/// How many users to track before forgetting those whose bucket is full.
const TRACKED_USERS: usize = 50_000;

/// Allows `rate` messages per second per user, with bursts of `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

/// One token bucket: `rate` tokens a second, at most `burst` kept.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket of `burst` tokens at `now`.
    pub fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            updated: now,
        }
    }

    /// Takes one token at `now`; `false` when there is none.
    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl RateLimiter {
    /// `rate` messages per second, sustained; `burst` at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `user`; `false` when they are over the limit.
    pub fn check(&self, user: UserId) -> bool {
        self.check_at(user, Instant::now())
    }

    /// [`Self::check`] at an explicit time, so tests need no clock.
    pub fn check_at(&self, user: UserId, now: Instant) -> bool {
        let mut buckets = self.buckets.lock_or_recover();
        if buckets.len() >= TRACKED_USERS && !buckets.contains_key(&user) {
            // A bucket refilled to the brim says nothing a fresh one would not.
            let full_after = Duration::from_secs_f64(self.burst / self.rate);
            buckets.retain(|_, bucket| now.duration_since(bucket.updated) < full_after);
        }
        buckets
            .entry(user)
            .or_insert(Bucket::full(self.burst, now))
            .take(self.rate, self.burst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused() {
        let limiter = RateLimiter::new(1, 3);
        let (user, now) = (UserId::random(), Instant::now());
        assert!((0..3).all(|_| limiter.check_at(user, now)));
        assert!(!limiter.check_at(user, now));
    }

    #[test]
    fn tokens_come_back_with_time() {
        let limiter = RateLimiter::new(2, 1);
        let (user, now) = (UserId::random(), Instant::now());
        assert!(limiter.check_at(user, now));
        assert!(!limiter.check_at(user, now + Duration::from_millis(100)));
        assert!(limiter.check_at(user, now + Duration::from_millis(600)));
    }

    #[test]
    fn users_do_not_share_a_bucket() {
        let limiter = RateLimiter::new(1, 1);
        let now = Instant::now();
        assert!(limiter.check_at(UserId::random(), now));
        assert!(limiter.check_at(UserId::random(), now));
    }
}
