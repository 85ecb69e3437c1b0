//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 passes), on the blocking pool so a slow hash never stalls the runtime.
//!
//! Hashes in flight are bounded: each takes 19 MiB and a core for tens of
//! milliseconds, and without a bound 200 concurrent failed logins took one
//! instance from 115 to 1,188 MiB (tokio's blocking pool grows to 512
//! threads). At most one hash per core runs, at most [`MAX_WAITING`] wait
//! for their turn, for at most [`WAIT_AT_MOST`]; the rest are refused with
//! [`Busy`] at once (HTTP 503).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        LazyLock,
    },
    time::Duration,
};

use tokio::sync::{Semaphore, SemaphorePermit};

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use crate::domain::Password;

/// Hashes waiting for a turn, past which a request is refused at once.
pub const MAX_WAITING: usize = 64;
/// How long a hash waits for its turn at most.
pub const WAIT_AT_MOST: Duration = Duration::from_secs(2);

/// Too many hashes in flight and waiting: try again in a moment.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks at once; try again in a moment")]
pub struct Busy;

/// Why a hash was not made.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// See [`Busy`].
    #[error(transparent)]
    Busy(#[from] Busy),
    /// A bug.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Turns to hash: `running` permits at once, up to [`MAX_WAITING`] waiting.
struct Gate {
    running: Semaphore,
    waiting: AtomicUsize,
}

impl Gate {
    fn new(running: usize) -> Self {
        Self {
            running: Semaphore::new(running),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A turn, or [`Busy`] when `MAX_WAITING` wait already or the turn
    /// does not come within `wait`.
    async fn turn(&self, wait: Duration) -> Result<SemaphorePermit<'_>, Busy> {
        if let Ok(permit) = self.running.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("password_hashes_refused_total").increment(1);
            return Err(Busy);
        }
        let permit = tokio::time::timeout(wait, self.running.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("password_hashes_refused_total").increment(1);
                Err(Busy)
            }
        }
    }
}

/// One hash per core at a time, in this process.
static GATE: LazyLock<Gate> =
    LazyLock::new(|| Gate::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

async fn turn() -> Result<SemaphorePermit<'static>, Busy> {
    GATE.turn(WAIT_AT_MOST).await
}

/// The PHC string of a fresh salted hash of `password`.
pub async fn hash(password: Password) -> Result<String, HashError> {
    let _turn = turn().await?;
    let hashed = tokio::task::spawn_blocking(move || {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let salt = SaltString::encode_b64(&bytes)
            .map_err(|error| anyhow::anyhow!("salt encoding failed: {error}"))?;
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("hashing failed: {error}"))
    })
    .await
    .map_err(anyhow::Error::from)?;
    Ok(hashed?)
}

/// Whether `password` matches the PHC string `hash`. When `hash` is `None`
/// (no such account) a dummy hash is checked anyway, so an unknown username
/// takes as long to refuse as a wrong password.
pub async fn verify(password: Password, hash: Option<String>) -> Result<bool, Busy> {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                         4dtsS8mHEcVjSLhJfJvvHuXQgGn8vGvHQuzKqr0bTKA";
    let known = hash.is_some();
    let _turn = turn().await?;
    let checked = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DUMMY.to_owned());
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    Ok(known && checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse battery").unwrap();
        let hash = hash(password.clone()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify(password, Some(hash.clone())).await.unwrap());
        let wrong = Password::parse("wrong horse battery").unwrap();
        assert!(!verify(wrong, Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!verify(password, None).await.unwrap());
    }

    #[tokio::test]
    async fn turns_past_the_running_and_the_waiting_are_refused() {
        let gate = Arc::new(Gate::new(2));
        let (a, b) = (gate.turn(WAIT_AT_MOST).await, gate.turn(WAIT_AT_MOST).await);
        assert!(a.is_ok() && b.is_ok());
        // A third waits, and gets the turn the first gives back.
        let third = tokio::spawn({
            let gate = gate.clone();
            async move { gate.turn(WAIT_AT_MOST).await.is_ok() }
        });
        while gate.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        drop(a);
        assert!(third.await.unwrap());
        let c = gate.turn(WAIT_AT_MOST).await.unwrap();
        // With MAX_WAITING waiting, one more is refused at once.
        let waiters: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.turn(Duration::from_millis(200)).await.is_ok() })
            })
            .collect();
        while gate.waiting.load(Ordering::Acquire) < MAX_WAITING {
            tokio::task::yield_now().await;
        }
        assert!(gate.turn(WAIT_AT_MOST).await.is_err());
        // Their turn never came (b and c are held): refused after the wait.
        for waiter in waiters {
            assert!(!waiter.await.unwrap());
        }
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        drop((b, c));
    }
}
