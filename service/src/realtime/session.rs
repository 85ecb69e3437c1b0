//! A socket lives no longer than the session it was opened with.
//!
//! Every socket joins the Socket.IO room of its session. When the session
//! ends by logout, by "log out everywhere" or by expiry, its sockets hear
//! `error {"name": "session_ended", "message": <why>}` and are
//! disconnected, on every instance (the emit and the disconnect travel
//! through the adapter like any other). Expiry is watched by a timer per
//! socket on the socket's own instance, so no instance needs to poll.

use std::time::SystemTime;

use serde_json::json;
use socketioxide::{adapter::Adapter, extract::SocketRef};
use tokio::task::AbortHandle;

use crate::{
    pipeline::fanout::{session_channel, Fanout, FanoutError},
    sessions::Session,
};

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

    fn notice(self) -> serde_json::Value {
        json!({ "name": "session_ended", "message": self.message() })
    }
}

/// The expiry timer of a socket, stopped when the socket goes.
#[derive(Clone)]
struct ExpiryTimer(AbortHandle);

/// Ties `socket` to `session`: it joins the session's room and is
/// disconnected when the session expires.
pub fn bind<A: Adapter>(socket: &SocketRef<A>, session: &Session) {
    socket.join(session_channel(&session.id));
    let left = session
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let expiring = socket.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(left).await;
        tracing::info!(socket = %expiring.id, "session expired; disconnecting its socket");
        let _ = expiring.emit("error", &Ended::Expired.notice());
        let _ = expiring.disconnect();
    });
    socket.extensions.insert(ExpiryTimer(timer.abort_handle()));
}

/// Stops the expiry timer of a socket that disconnected.
pub fn unbind<A: Adapter>(socket: &SocketRef<A>) {
    if let Some(ExpiryTimer(timer)) = socket.extensions.get::<ExpiryTimer>() {
        timer.abort();
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
