//! Ending a session's sockets. When a session ends by logout, by "log out
//! everywhere" or by expiry, its sockets hear `error {"name":
//! "session_ended", "message": <why>}` and are disconnected, on every
//! instance: each socket joined the Socket.IO room of its session
//! ([`session_channel`]), and the emit and the disconnect travel through
//! the [`Fanout`] like any other.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use crate::fanout::{session_channel, Fanout, FanoutError};

/// How long closing an ended session's sockets is retried.
const END_RETRY_FOR: Duration = Duration::from_secs(300);

/// Why a session ended, as its sockets are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `POST /api/v1/accounts/logout` with this session's token.
    Logout,
    /// `POST /api/v1/accounts/logout-all` by any session of the user.
    LogoutEverywhere,
    /// The token's lifetime ran out.
    Expired,
}

impl Ended {
    fn message(self) -> &'static str {
        match self {
            Self::Logout => "the session was logged out",
            Self::LogoutEverywhere => "every session of this account was logged out",
            Self::Expired => "the session expired",
        }
    }

    /// The payload of the `error` event the session's sockets hear.
    pub fn notice(self) -> serde_json::Value {
        json!({ "name": "session_ended", "message": self.message() })
    }
}

/// Tells the sockets of the sessions `ids`, on every instance, why their
/// session ended, and disconnects them.
pub async fn end(fanout: &dyn Fanout, ids: &[String], why: Ended) -> Result<(), FanoutError> {
    if ids.is_empty() {
        return Ok(());
    }
    let rooms: Vec<String> = ids.iter().map(|id| session_channel(id)).collect();
    fanout
        .emit(rooms.clone(), Vec::new(), "error", &why.notice())
        .await?;
    fanout.disconnect(rooms).await
}

/// Closes the ended sessions' sockets. The sessions are already gone (no
/// new handshake or HTTP call succeeds with them); if the sockets cannot be
/// reached right now (the adapter lost Redis), the close is retried in the
/// background until it can, for up to [`END_RETRY_FOR`].
pub async fn end_or_retry(fanout: Arc<dyn Fanout>, ids: &[String], why: Ended) {
    if end(fanout.as_ref(), ids, why).await.is_ok() {
        return;
    }
    let ids = ids.to_vec();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            tokio::time::sleep(pause).await;
            match end(fanout.as_ref(), &ids, why).await {
                Ok(()) => return,
                Err(error) if started.elapsed() > END_RETRY_FOR => {
                    tracing::error!(cause = %error, "could not close the ended sessions' sockets");
                    return;
                }
                Err(_) => pause = (pause * 2).min(Duration::from_secs(5)),
            }
        }
    });
}
