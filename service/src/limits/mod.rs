//! Abuse limits counted across instances: the per-user `message` rate,
//! the per-username login throttle, and one `typing` per user and room per
//! second.
//!
//! With Redis, every instance counts in the same keys, so adding instances
//! does not multiply what a client is allowed. Without Redis (the embedded
//! mode) the in-process counters are the whole truth, as there is one
//! instance.
//!
//! When Redis does not answer, each instance falls back to its own
//! in-process counters (which it keeps up to date all along). That is
//! neither failing open (an outage would lift every limit) nor failing
//! closed (an outage of the limit store would stop every chat and login):
//! for the length of the outage a deployment of `n` instances allows at
//! most `n` times the limit, as it did before the limits were shared.
//!
//! - [`rate_limit`]: the in-process token bucket for `message`.
//! - [`throttle`]: the in-process count of failed logins.
//! - [`sockets`]: sockets per user, on this instance.

pub mod rate_limit;
pub mod sockets;
pub mod throttle;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use self::{rate_limit::RateLimiter, throttle::LoginThrottle};
use crate::domain::{RoomId, UserId};
use crate::locks::LockExt;
use crate::redis_link::RedisLink;
use crate::telemetry::Muted;

/// How long a limit check may wait for Redis before falling back.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Generic cell rate algorithm in one round trip: the key holds the
/// theoretical arrival time (ms, Redis's own clock, so instances' clocks
/// do not matter).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
if next_tat - now > interval * burst then return 0 end
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now) + 1)
return 1
";

/// Shared counters in Redis, under the service's key prefix.
struct Shared {
    connection: RedisLink,
    prefix: String,
    gcra: redis::Script,
    /// A fallback is logged once per
    /// [`MUTE_FOR`](crate::telemetry::MUTE_FOR) while it lasts.
    fallback_warnings: Muted,
}

impl Shared {
    fn warn_fallback(&self, what: &str, error: &dyn std::fmt::Display) {
        if self.fallback_warnings.may_log() {
            tracing::warn!(cause = %error, "{what}: Redis does not answer; counting per instance");
        }
        metrics::counter!("limits_fallback_total", "limit" => what.to_owned()).increment(1);
    }
}

/// Runs a Redis call with the limits' timeout.
async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
    }
}

/// The limits of one service instance.
pub struct Limits {
    rate: RateLimiter,
    rate_per_second: u32,
    burst: u32,
    logins: LoginThrottle,
    typing: TypingThrottle,
    catch_ups: RateLimiter,
    shared: Option<Shared>,
}

/// Catch-ups (`join` with `since`) one user may start per second on one
/// instance, and at once: a reconnect rejoins each of up to 100 rooms, a
/// reconnect loop is held to a few a second.
const CATCH_UPS_PER_SECOND: u32 = 5;
const CATCH_UP_BURST: u32 = 200;

/// How often a user's `typing` in one room is relayed at most.
const TYPING_EVERY: Duration = Duration::from_secs(1);
/// Entries the local typing throttle keeps before it drops stale ones.
const TYPING_ENTRIES: usize = 10_000;

/// The last relayed `typing` per user and room, in this process.
#[derive(Default)]
struct TypingThrottle {
    last: Mutex<HashMap<(UserId, RoomId), Instant>>,
}

impl TypingThrottle {
    fn check(&self, user: UserId, room: RoomId) -> bool {
        let mut last = self.last.lock_or_recover();
        let now = Instant::now();
        if last.len() >= TYPING_ENTRIES {
            last.retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
        }
        match last.get(&(user, room)) {
            Some(at) if now.duration_since(*at) < TYPING_EVERY => false,
            _ => {
                last.insert((user, room), now);
                true
            }
        }
    }
}

impl Limits {
    /// In-process limits only (the embedded mode).
    pub fn local(rate_per_second: u32, burst: u32) -> Self {
        Self {
            rate: RateLimiter::new(rate_per_second, burst),
            rate_per_second: rate_per_second.max(1),
            burst: burst.max(1),
            logins: LoginThrottle::default(),
            typing: TypingThrottle::default(),
            catch_ups: RateLimiter::new(CATCH_UPS_PER_SECOND, CATCH_UP_BURST),
            shared: None,
        }
    }

    /// Limits shared through Redis, keys under `prefix`.
    pub fn shared(
        rate_per_second: u32,
        burst: u32,
        connection: RedisLink,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            shared: Some(Shared {
                connection,
                prefix: prefix.into(),
                gcra: redis::Script::new(GCRA),
                fallback_warnings: Muted::default(),
            }),
            ..Self::local(rate_per_second, burst)
        }
    }

    /// The same limits, the in-process login throttle tracking at most
    /// `max_tracked` usernames.
    pub fn tracking_logins(self, max_tracked: usize) -> Self {
        Self {
            logins: LoginThrottle::new(max_tracked),
            ..self
        }
    }

    /// Whether a `typing` of `user` in `room` is relayed now: the first in
    /// a second, across instances (`SET NX` with a one-second expiry).
    pub async fn allow_typing(&self, user: UserId, room: RoomId) -> bool {
        let local = self.typing.check(user, room);
        let Some(shared) = &self.shared else {
            return local;
        };
        let mut connection = shared.connection.clone();
        let mut set = redis::cmd("SET");
        set.arg(format!("{}typing:{user}:{room}", shared.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(TYPING_EVERY.as_millis() as u64);
        match bounded(set.query_async::<Option<String>>(&mut connection)).await {
            Ok(set) => set.is_some(),
            Err(error) => {
                shared.warn_fallback("typing", &error);
                local
            }
        }
    }

    /// Whether `user` may start one more catch-up on this instance (and
    /// counts it). In process only: what it guards is this instance's
    /// memory and the reads it sends.
    pub fn allow_catch_up(&self, user: UserId) -> bool {
        self.catch_ups.check(user)
    }

    /// The `message` rate per second and the burst, per user.
    pub fn message_rate(&self) -> (f64, f64) {
        (f64::from(self.rate_per_second), f64::from(self.burst))
    }

    /// Whether `user` may send one more message now (and counts it).
    pub async fn allow_message(&self, user: UserId) -> bool {
        // The local bucket is always charged, so a fallback starts from
        // what this instance has seen rather than from a full bucket.
        let local = self.rate.check(user);
        let Some(shared) = &self.shared else {
            return local;
        };
        let interval_ms = 1000.0 / f64::from(self.rate_per_second);
        let mut connection = shared.connection.clone();
        let mut call = shared
            .gcra
            .key(format!("{}rate:message:{user}", shared.prefix));
        call.arg(interval_ms).arg(self.burst);
        match bounded(call.invoke_async::<i64>(&mut connection)).await {
            Ok(allowed) => allowed == 1,
            Err(error) => {
                shared.warn_fallback("message rate", &error);
                local
            }
        }
    }

    /// Whether a login for `username` may be tried now.
    pub async fn login_allowed(&self, username: &str) -> bool {
        let local = self.logins.allows(username);
        let Some(shared) = &self.shared else {
            return local;
        };
        let key = login_key(&shared.prefix, username);
        let mut connection = shared.connection.clone();
        let mut command = redis::cmd("GET");
        let call = command
            .arg(&key)
            .query_async::<Option<u32>>(&mut connection);
        match bounded(call).await {
            Ok(failures) => failures.unwrap_or(0) < LoginThrottle::MAX_FAILURES,
            Err(error) => {
                shared.warn_fallback("login throttle", &error);
                local
            }
        }
    }

    /// Counts a failed login for `username`; the window starts at the
    /// first failure.
    pub async fn login_failed(&self, username: &str) {
        self.logins.failed(username);
        let Some(shared) = &self.shared else {
            return;
        };
        let key = login_key(&shared.prefix, username);
        let window = LoginThrottle::WINDOW.as_secs();
        let mut connection = shared.connection.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(&key, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(window)
            .arg("NX")
            .ignore();
        if let Err(error) = bounded(pipe.query_async::<()>(&mut connection)).await {
            shared.warn_fallback("login throttle", &error);
        }
    }

    /// Clears the failures of `username` after a successful login.
    pub async fn login_succeeded(&self, username: &str) {
        self.logins.succeeded(username);
        let Some(shared) = &self.shared else {
            return;
        };
        let key = login_key(&shared.prefix, username);
        let mut connection = shared.connection.clone();
        let mut command = redis::cmd("DEL");
        let call = command.arg(&key).query_async::<()>(&mut connection);
        if let Err(error) = bounded(call).await {
            shared.warn_fallback("login throttle", &error);
        }
    }
}

fn login_key(prefix: &str, username: &str) -> String {
    format!("{prefix}throttle:login:{username}")
}
