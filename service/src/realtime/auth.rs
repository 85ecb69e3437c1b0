//! The handshake guard of `/chats`: a socket connects only with a live
//! session token, from the `Authorization` header (bare or `Bearer`) or,
//! where a client cannot set headers, the auth payload `{"token"}`.

use axum::http::header::AUTHORIZATION;
use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
};

use super::RealtimeState;
use crate::sessions::Token;

/// Why a handshake was refused; the text is the client's `connect_error`.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No token, or one that is unknown, expired or revoked.
    #[error("unauthorized")]
    Unauthorized,
    /// The user has `MAX_SOCKETS_PER_USER` sockets open on this instance.
    #[error("too many sockets for this user")]
    TooManySockets,
    /// The session store did not answer.
    #[error("service unavailable")]
    Unavailable,
}

/// Connect middleware: resolves the token, records the user on the socket
/// (for the `Extension<UserId>` extractor of every handler) and sets the
/// socket up before the client is told it is connected.
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<RealtimeState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let header = socket.req_parts().headers.get(AUTHORIZATION);
    let token = header
        .and_then(|value| value.to_str().ok())
        .and_then(Token::from_authorization)
        .or_else(|| {
            auth.ok()
                .as_ref()
                .and_then(|auth| auth.get("token"))
                .and_then(Value::as_str)
                .and_then(Token::from_authorization)
        });
    let Some(token) = token else {
        return Err(Refused::Unauthorized);
    };
    match state.sessions.resolve(&token).await {
        Ok(Some(session)) => {
            let Some(slot) = state.sockets_per_user.open(session.user) else {
                metrics::counter!("sockets_refused_total", "reason" => "per_user").increment(1);
                return Err(Refused::TooManySockets);
            };
            socket.extensions.insert(slot);
            socket.extensions.insert(session.user);
            super::handlers::register(&socket, session.user, &state);
            super::session::bind(&socket, &session);
            Ok(())
        }
        Ok(None) => Err(Refused::Unauthorized),
        Err(error) => {
            tracing::warn!(cause = %error, "session store unavailable at handshake");
            Err(Refused::Unavailable)
        }
    }
}
