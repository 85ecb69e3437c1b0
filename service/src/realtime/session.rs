//! A socket lives no longer than the session it was opened with.
//!
//! Every socket joins the Socket.IO room of its session, through which
//! [`crate::sessions::ending`] reaches it on logout. Expiry is watched by
//! a timer per socket on the socket's own instance, so no instance needs
//! to poll.

use std::time::SystemTime;

use socketioxide::{adapter::Adapter, extract::SocketRef};
use tokio::task::AbortHandle;

use crate::{
    fanout::session_channel,
    sessions::{ending::Ended, Session},
};

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
