//! The handshake guard of `/chats`: a socket connects only with a live
//! session token, from the `Authorization` header (bare or `Bearer`) or,
//! where a client cannot set headers, the auth payload `{"token"}`.

use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
};

use super::RealtimeState;
use crate::{http::extract::bearer_token, sessions::Token};

/// Why a handshake was refused; the text is the client's `connect_error`.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No token, or one that is unknown, expired or revoked.
    #[error("unauthorized")]
    Unauthorized,
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
    let token = bearer_token(&socket.req_parts().headers).or_else(|| {
        auth.ok()
            .as_ref()
            .and_then(|auth| auth.get("token"))
            .and_then(Value::as_str)
            .and_then(token_from_text)
    });
    let Some(token) = token else {
        return Err(Refused::Unauthorized);
    };
    match state.sessions.resolve(&token).await {
        Ok(Some(session)) => {
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

/// A token from the auth payload, which may carry the `Bearer ` scheme too.
fn token_from_text(raw: &str) -> Option<Token> {
    let raw = raw.trim();
    let token = match raw.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
        Some(_) => return None,
        None => raw,
    };
    Token::from_client(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_payload_token_may_be_bare_or_bearer() {
        let token = Token::generate();
        assert_eq!(token_from_text(token.expose()), Some(token.clone()));
        let bearer = format!("Bearer {}", token.expose());
        assert_eq!(token_from_text(&bearer), Some(token));
        assert_eq!(token_from_text("Basic abc"), None);
    }
}
