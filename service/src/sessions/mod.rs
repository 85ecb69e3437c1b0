//! Login sessions: opaque random tokens mapped to a user, with a lifetime,
//! revocable. Only a SHA-256 digest of each token is kept, so a dump of the
//! session store hands out no working token.

pub mod ending;
pub mod memory;
pub mod redis;

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{domain::UserId, store::StoreError};

/// A bearer token: 256 random bits, URL-safe base64. Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Takes a token as a client sent it. Anything that is not a plausible
    /// token is `None`, so it never reaches the store.
    pub fn from_client(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let plausible = (16..=256).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        plausible.then(|| Self(raw.to_owned()))
    }

    /// Takes a token from an `Authorization` value or an auth payload:
    /// bare, or after the `Bearer` scheme. Other schemes are no token.
    pub fn from_authorization(value: &str) -> Option<Self> {
        let value = value.trim();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
            Some(_) => return None,
            None => value,
        };
        Self::from_client(token)
    }

    /// The token text, to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest under which the token is stored.
    pub fn digest(&self) -> String {
        Sha256::digest(self.0.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A live session: whose it is, its id and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user it logs in.
    pub user: UserId,
    /// Its id: the token's digest. Names the session's sockets; it is no
    /// credential (the token cannot be had from it), yet it is not logged.
    pub id: String,
    /// When it expires.
    pub expires_at: SystemTime,
}

/// Where sessions live.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Records a new session of `user` for `ttl`.
    async fn issue(&self, user: UserId, ttl: Duration) -> Result<Token, StoreError>;
    /// The live session of a token.
    async fn resolve(&self, token: &Token) -> Result<Option<Session>, StoreError>;
    /// Ends a session and returns its id; ending an unknown one is not an
    /// error.
    async fn revoke(&self, token: &Token) -> Result<String, StoreError>;
    /// Ends every session of `user` and returns their ids.
    async fn revoke_all(&self, user: UserId) -> Result<Vec<String>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (Token::generate(), Token::generate());
        assert_ne!(a, b);
        assert!(a.expose().len() >= 43);
        assert_eq!(Token::from_client(a.expose()), Some(a));
    }

    #[test]
    fn implausible_tokens_are_refused_before_any_lookup() {
        for bad in ["", "short", "has spaces in it....", "a:b:c:d:e:f:g:h:i:j"] {
            assert!(Token::from_client(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_authorization_value_is_read_bare_or_after_bearer() {
        let token = Token::generate();
        assert_eq!(
            Token::from_authorization(token.expose()),
            Some(token.clone())
        );
        let bearer = format!("Bearer {}", token.expose());
        assert_eq!(Token::from_authorization(&bearer), Some(token));
        assert_eq!(
            Token::from_authorization("Basic dXNlcjpwYXNzd29yZA=="),
            None
        );
        assert_eq!(Token::from_authorization(""), None);
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = Token::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}
