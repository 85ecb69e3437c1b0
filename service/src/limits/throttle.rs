//! Login throttling: after too many failed logins for one username in a
//! window, further attempts are answered 429 until the window ends. It
//! slows password guessing without locking the owner out for long.
//! This is the in-process count; [`crate::limits`] shares it across
//! instances through Redis and falls back to it when Redis is away.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::locks::LockExt;

/// Usernames tracked at most by default (any username, existing or not,
/// can be tried): past it the oldest window is dropped. About 100 bytes
/// each.
pub const MAX_TRACKED: usize = 50_000;

/// Failed login counts by canonical username.
pub struct LoginThrottle {
    windows: Mutex<Windows>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(MAX_TRACKED)
    }
}

/// The open windows, and the order they opened in (so expired ones are
/// dropped from the front, without a pass over all of them).
struct Windows {
    failures: HashMap<String, (u32, Instant)>,
    opened: VecDeque<(Instant, String)>,
    max_tracked: usize,
}

impl Windows {
    /// Drops the windows that ended by `now`, and while `room` more do not
    /// fit, the oldest.
    fn sweep(&mut self, now: Instant, room: usize) {
        while let Some((opened, username)) = self.opened.front() {
            let ended = now.duration_since(*opened) >= LoginThrottle::WINDOW;
            if !ended && self.failures.len() + room <= self.max_tracked {
                break;
            }
            // A window opened again later is queued again: drop only this one.
            if self
                .failures
                .get(username)
                .is_some_and(|(_, at)| at == opened)
            {
                self.failures.remove(username);
            }
            self.opened.pop_front();
        }
    }
}

impl LoginThrottle {
    /// A throttle tracking at most `max_tracked` usernames.
    pub fn new(max_tracked: usize) -> Self {
        Self {
            windows: Mutex::new(Windows {
                failures: HashMap::new(),
                opened: VecDeque::new(),
                max_tracked: max_tracked.max(1),
            }),
        }
    }

    /// Failed attempts allowed per username and window.
    pub const MAX_FAILURES: u32 = 10;
    /// Length of the window.
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// Whether `username` may try to log in now.
    pub fn allows(&self, username: &str) -> bool {
        let windows = self.lock();
        match windows.failures.get(username) {
            Some((count, since)) => *count < Self::MAX_FAILURES || since.elapsed() >= Self::WINDOW,
            None => true,
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, username: &str) {
        let now = Instant::now();
        let mut windows = self.lock();
        windows.sweep(now, 1);
        let Windows {
            failures, opened, ..
        } = &mut *windows;
        let entry = failures.entry(username.to_owned()).or_insert_with(|| {
            opened.push_back((now, username.to_owned()));
            (0, now)
        });
        if now.duration_since(entry.1) >= Self::WINDOW {
            *entry = (0, now);
            opened.push_back((now, username.to_owned()));
        }
        entry.0 += 1;
        metrics::gauge!("login_throttle_usernames").set(failures.len() as f64);
    }

    /// Forgets the failures of a username that logged in.
    pub fn succeeded(&self, username: &str) {
        self.lock().failures.remove(username);
    }

    /// Usernames tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().failures.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock_or_recover()
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

    #[test]
    fn any_number_of_usernames_tracks_at_most_the_bound_and_the_newest_still_count() {
        let throttle = LoginThrottle::default();
        for n in 0..MAX_TRACKED + 1_000 {
            throttle.failed(&format!("user{n}"));
        }
        assert_eq!(throttle.tracked(), MAX_TRACKED);
        assert_eq!(throttle.lock().opened.len(), MAX_TRACKED);
        let newest = format!("user{}", MAX_TRACKED + 999);
        for _ in 1..LoginThrottle::MAX_FAILURES {
            throttle.failed(&newest);
        }
        assert!(!throttle.allows(&newest));
    }
}
