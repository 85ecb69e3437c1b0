//! Login throttling: after too many failed logins for one username in a
//! window, further attempts are answered 429 until the window ends. It
//! slows password guessing without locking the owner out for long.
//! This is the in-process count; [`crate::limits`] shares it across
//! instances through Redis and falls back to it when Redis is away.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::locks::LockExt;

/// Usernames tracked before old windows are swept.
const SWEEP_AT: usize = 10_000;

/// Failed login counts by canonical username.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// Failed attempts allowed per username and window.
    pub const MAX_FAILURES: u32 = 10;
    /// Length of the window.
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// Whether `username` may try to log in now.
    pub fn allows(&self, username: &str) -> bool {
        let failures = self.lock();
        match failures.get(username) {
            Some((count, since)) => *count < Self::MAX_FAILURES || since.elapsed() >= Self::WINDOW,
            None => true,
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, username: &str) {
        let mut failures = self.lock();
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let entry = failures
            .entry(username.to_owned())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets the failures of a username that logged in.
    pub fn succeeded(&self, username: &str) {
        self.lock().remove(username);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures.lock_or_recover()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_failures_close_the_door_and_success_reopens_it() {
        let throttle = LoginThrottle::default();
        for _ in 0..LoginThrottle::MAX_FAILURES {
            assert!(throttle.allows("ada"));
            throttle.failed("ada");
        }
        assert!(!throttle.allows("ada"));
        assert!(throttle.allows("bob"), "other users are not affected");
        throttle.succeeded("ada");
        assert!(throttle.allows("ada"));
    }
}
